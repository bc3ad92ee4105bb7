//! The rules editor's API. A draft is one account's `default_reply` and
//! `[[rules]]` as TOML; it is put into the config file's text in place of
//! the account's rules, and that whole text is checked by
//! [`reload::check_text`]: the parse, validation and replacement check of
//! a reload, so the editor accepts exactly what a reload would. Nothing is
//! written until it passes.
//!
//! - `GET  rules/{account}`: the draft, its rows, where it lives;
//! - `POST rules/{account}/validate {toml}`: errors naming file and rule,
//!   or the rows and the diff against the rules in force;
//! - `POST rules/{account}/test {toml?, sample}`: which rule answers the
//!   sample under the draft ([`simulate::test_rules`], as `wxgate rules
//!   test`);
//! - `PUT  rules/{account} {toml}`: backup, atomic write, reload;
//! - `GET  backups`, `GET backups/{id}/rules/{account}`, `POST
//!   backups/{id}/restore`.

// The errors here are the HTTP answers themselves, made once per request.
#![allow(clippy::result_large_err)]

use std::path::Path;
use std::sync::Arc;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::draft::{self, DraftError};
use super::session::{self, Session};
use super::{error, files, Console};
use crate::config::{Config, ConfigError};
use crate::platform::simulate::{self as sim, Kind, Parties};
use crate::reload::{self, ReloadError, Reloader};
use crate::server::operator::admin::diff_json;
use crate::server::AppState;

/// The reloader and console, or the answer that the server has none.
fn parts(state: &AppState) -> Result<(Arc<Reloader>, &Console), Response> {
    let console = session::console(state).map_err(IntoResponse::into_response)?;
    let reloader = state.reloader().ok_or_else(|| {
        error(
            StatusCode::CONFLICT,
            "this server was not started from a config file",
        )
    })?;
    Ok((reloader, console))
}

/// As [`parts`], for a route naming an account: 404 when there is none.
fn for_account<'a>(
    state: &'a AppState,
    account: &str,
) -> Result<(Arc<Reloader>, &'a Console), Response> {
    let parts = parts(state)?;
    if !known(state, account) {
        return Err(error(StatusCode::NOT_FOUND, "no such account"));
    }
    Ok(parts)
}

fn read(path: &Path) -> Result<String, Response> {
    std::fs::read_to_string(path).map_err(|e| {
        tracing::error!(error = %e, path = %path.display(), "console cannot read the config file");
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read the config file",
        )
    })
}

fn known(state: &AppState, account: &str) -> bool {
    state.endpoints().iter().any(|e| e.name == account)
}

/// The problems of a refused text, one per line, each naming the file (by
/// its name: where it lives on the server is no business of the page) and
/// (for rule errors) the rule.
fn problems(e: &ReloadError) -> Vec<String> {
    match e {
        ReloadError::Config(ConfigError::Invalid { path, problems }) => {
            let file = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| path.display().to_string());
            problems.iter().map(|p| format!("{file}: {p}")).collect()
        }
        other => vec![other.to_string()],
    }
}

/// A draft that cannot be checked, as a 422 answer.
fn refused(errors: Vec<String>) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({ "ok": false, "errors": errors })),
    )
        .into_response()
}

fn draft_refused(e: DraftError) -> Response {
    refused(vec![e.to_string()])
}

/// The file text with the draft in place, checked: the fresh config and
/// the rules diff.
fn check(
    reloader: &Reloader,
    account: &str,
    toml: &str,
) -> Result<(String, Config, serde_json::Value), Response> {
    let text = read(reloader.path())?;
    let spliced = draft::splice(&text, account, toml).map_err(draft_refused)?;
    let running = reloader.running();
    match reload::check_text(&running, reloader.path(), &spliced) {
        Ok((fresh, diff)) => Ok((spliced, fresh, diff_json(&diff))),
        Err(e) => Err(refused(problems(&e))),
    }
}

/// `GET /console/api/rules/{account}`.
pub(super) async fn show(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
) -> Response {
    let (reloader, _) = match for_account(&state, &account) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let text = match read(reloader.path()) {
        Ok(t) => t,
        Err(r) => return r,
    };
    let (toml, place) = match (
        draft::extract(&text, &account),
        draft::place(&text, &account),
    ) {
        (Ok(t), Ok(p)) => (t, p),
        (Err(e), _) | (_, Err(e)) => return draft_refused(e),
    };
    let names: Vec<String> = state.endpoints().iter().map(|e| e.name.clone()).collect();
    let shared_with = match place {
        draft::Place::Top => draft::sharing_top(&text, &names),
        draft::Place::Entry(_) => vec![account.clone()],
    };
    Json(json!({
        "account": account,
        "file": reloader.path().display().to_string(),
        "place": match place { draft::Place::Top => "top level", draft::Place::Entry(_) => "its [[accounts]] entry" },
        "shared_with": shared_with,
        "toml": toml,
        "rows": draft::rows(&toml),
        "in_force": state.endpoints().iter().find(|e| e.name == account).map(|e| e.rules.load().len()),
    }))
    .into_response()
}

#[derive(Deserialize)]
pub(super) struct DraftBody {
    toml: String,
}

/// `POST /console/api/rules/{account}/validate {toml}`.
pub(super) async fn validate(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
    Json(body): Json<DraftBody>,
) -> Response {
    let (reloader, _) = match for_account(&state, &account) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = tokio::task::spawn_blocking(move || {
        check(&reloader, &account, &body.toml).map(|(_, _, diff)| (diff, body.toml))
    })
    .await;
    match result {
        Ok(Ok((diff, toml))) => Json(json!({
            "ok": true,
            "errors": [],
            "rows": draft::rows(&toml),
            "diff": diff,
        }))
        .into_response(),
        Ok(Err(r)) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A sample message for the tester.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum Sample {
    Text {
        content: String,
    },
    Voice {
        recognition: Option<String>,
    },
    Event {
        event: String,
        key: Option<String>,
    },
    Image,
    Location {
        label: Option<String>,
    },
    Link {
        title: Option<String>,
        url: Option<String>,
    },
}

impl Sample {
    fn kind(self) -> Kind {
        match self {
            Sample::Text { content } => Kind::Text(content),
            Sample::Voice { recognition } => Kind::Voice {
                recognition: recognition.filter(|r| !r.is_empty()),
            },
            Sample::Event { event, key } => Kind::event(&event, key.filter(|k| !k.is_empty())),
            Sample::Image => Kind::Image {
                pic_url: "https://example.com/sample.jpg".into(),
            },
            Sample::Location { label } => Kind::Location {
                lat: 39.9042,
                lng: 116.4074,
                label: label.unwrap_or_default(),
            },
            Sample::Link { title, url } => Kind::Link {
                title: title.unwrap_or_default(),
                url: url.unwrap_or_else(|| "https://example.com/".into()),
            },
        }
    }
}

#[derive(Deserialize)]
pub(super) struct TestBody {
    /// The draft; the file's rules when absent.
    toml: Option<String>,
    sample: Sample,
}

/// The sender of the tester's samples.
const SAMPLE_USER: &str = "oConsoleSampleUser0000000000";

/// `POST /console/api/rules/{account}/test {toml?, sample}`.
pub(super) async fn test(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
    Json(body): Json<TestBody>,
) -> Response {
    let (reloader, _) = match for_account(&state, &account) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let result = tokio::task::spawn_blocking(move || {
        let config = match body.toml {
            Some(toml) => check(&reloader, &account, &toml)?.1,
            None => reloader.running(),
        };
        let entry = config
            .find_account(Some(&account))
            .map_err(|e| error(StatusCode::NOT_FOUND, &e))?;
        let parties = Parties {
            from_user: SAMPLE_USER.into(),
            to_user: entry
                .account
                .app_id
                .clone()
                .unwrap_or_else(|| "gh_sample".into()),
        };
        sim::test_rules(&entry.account, &entry.rules, &body.sample.kind(), &parties)
            .map_err(|e| error(StatusCode::UNPROCESSABLE_ENTITY, &e))
    })
    .await;
    match result {
        Ok(Ok(test)) => {
            let content = test.reply.as_ref().and_then(|r| {
                r.fields
                    .iter()
                    .find(|(k, _)| k == "Content")
                    .map(|(_, v)| v.clone())
            });
            let mut value = serde_json::to_value(&test).unwrap_or_default();
            value["content"] = json!(content);
            Json(value).into_response()
        }
        Ok(Err(r)) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Backs the file up, writes `text` atomically and reloads; on a refused
/// reload the previous text goes back.
fn write_and_reload(
    reloader: &Reloader,
    console: &Console,
    previous: &str,
    text: &str,
) -> Result<(String, crate::reload::ReloadReport), Response> {
    let path = reloader.path();
    let internal = |what: &str, e: std::io::Error| {
        tracing::error!(error = %e, path = %path.display(), "console: {what}");
        error(StatusCode::INTERNAL_SERVER_ERROR, what)
    };
    let backup =
        files::back_up(path, console.now()).map_err(|e| internal("cannot back up the file", e))?;
    files::write_atomically(path, text).map_err(|e| internal("cannot write the file", e))?;
    match reloader.reload() {
        Ok(report) => {
            files::prune(path, console.settings.keep_backups);
            Ok((backup, report))
        }
        Err(e) => {
            // Checked before writing, so only a change on disk meanwhile
            // gets here: put the file back as it was.
            if let Err(w) = files::write_atomically(path, previous) {
                tracing::error!(error = %w, "console: cannot put the previous file back");
            }
            Err((
                StatusCode::CONFLICT,
                Json(json!({ "ok": false, "errors": problems(&e) })),
            )
                .into_response())
        }
    }
}

/// `PUT /console/api/rules/{account} {toml}`: validate, back up, write, reload.
pub(super) async fn save(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
    Json(body): Json<DraftBody>,
) -> Response {
    let (reloader, console) = match for_account(&state, &account) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let _saving = console.saving.lock().await;
    let state2 = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let console = session::console(&state2).map_err(IntoResponse::into_response)?;
        let previous = read(reloader.path())?;
        let (text, _, _) = check(&reloader, &account, &body.toml)?;
        let (backup, report) = write_and_reload(&reloader, console, &previous, &text)?;
        tracing::warn!(account = %account, backup = %backup, rules = %reload::describe(&report.diff), "console saved the rules");
        Ok::<_, Response>((backup, report))
    })
    .await;
    match result {
        Ok(Ok((backup, report))) => Json(json!({
            "ok": true,
            "saved": true,
            "backup": backup,
            "rules": report.rules,
            "diff": diff_json(&report.diff),
        }))
        .into_response(),
        Ok(Err(r)) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `GET /console/api/backups`: newest first.
pub(super) async fn backups(_: Session, State(state): State<AppState>) -> Response {
    let (reloader, _) = match parts(&state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    Json(json!({ "backups": files::backups(reloader.path()) })).into_response()
}

/// `GET /console/api/backups/{id}/rules/{account}`: that account's rules
/// in the backup (the rest of the file, secrets included, stays on disk).
pub(super) async fn backup(
    _: Session,
    State(state): State<AppState>,
    UrlPath((id, account)): UrlPath<(String, String)>,
) -> Response {
    let (reloader, _) = match parts(&state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(path) = files::backup_path(reloader.path(), &id).filter(|p| p.is_file()) else {
        return error(StatusCode::NOT_FOUND, "no such backup");
    };
    let text = match read(&path) {
        Ok(t) => t,
        Err(r) => return r,
    };
    match draft::extract(&text, &account) {
        Ok(toml) => {
            Json(json!({ "id": id, "account": account, "rows": draft::rows(&toml), "toml": toml }))
                .into_response()
        }
        Err(e) => draft_refused(e),
    }
}

/// `POST /console/api/backups/{id}/restore`: the backup checked as a
/// reload would, the file in force backed up, the backup written back and
/// reloaded.
pub(super) async fn restore(
    _: Session,
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let (reloader, console) = match parts(&state) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let Some(path) = files::backup_path(reloader.path(), &id).filter(|p| p.is_file()) else {
        return error(StatusCode::NOT_FOUND, "no such backup");
    };
    let _saving = console.saving.lock().await;
    let state2 = state.clone();
    let result = tokio::task::spawn_blocking(move || {
        let console = session::console(&state2).map_err(IntoResponse::into_response)?;
        let text = read(&path)?;
        let previous = read(reloader.path())?;
        if let Err(e) = reload::check_text(&reloader.running(), reloader.path(), &text) {
            return Err(refused(problems(&e)));
        }
        let (backup, report) = write_and_reload(&reloader, console, &previous, &text)?;
        tracing::warn!(restored = %id, backup = %backup, rules = %reload::describe(&report.diff), "console restored a config backup");
        Ok((backup, report))
    })
    .await;
    match result {
        Ok(Ok((backup, report))) => Json(json!({
            "ok": true,
            "restored": true,
            "backup": backup,
            "rules": report.rules,
            "diff": diff_json(&report.diff),
        }))
        .into_response(),
        Ok(Err(r)) => r,
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
