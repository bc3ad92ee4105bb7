//! The accounts page (what to paste into the WeChat console, with the
//! token and EncodingAESKey masked until revealed, and the verify button)
//! and the conversations page (the recent ring, the pending answers).

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::session::{self, Session};
use super::{error, Console};
use crate::config::{AccountEntry, AccountKind, Config};
use crate::platform::simulate as sim;
use crate::server::AppState;

/// The running configuration: the reloader's, which the server started
/// from. `None` for a server built without a file.
fn running(state: &AppState) -> Option<Config> {
    state.reloader().map(|r| r.running())
}

/// `••••••••` with the last two characters, for a secret's length and
/// ending to be compared by eye without it being shown.
fn masked(secret: &str) -> String {
    let tail: String = secret
        .chars()
        .rev()
        .take(2)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{}{tail}", "•".repeat(8))
}

/// The EncodingAESKey as configured (and as the WeChat console shows it).
fn encoding_aes_key(entry: &AccountEntry) -> Option<String> {
    entry
        .account
        .encoding_aes_key
        .as_ref()
        .map(|k| k.expose().to_owned())
}

fn callback_url(console: &Console, entry: &AccountEntry) -> Option<String> {
    console
        .settings
        .public_url
        .as_ref()
        .map(|base| format!("{base}{}", entry.path))
}

fn kind_detail(kind: &AccountKind) -> Value {
    match kind {
        AccountKind::Official => json!("official"),
        AccountKind::WeCom { agent_id } => json!(format!("wecom (AgentID {agent_id})")),
        AccountKind::Kf(_) => json!("kf"),
        AccountKind::Feishu(f) if f.lark => json!("feishu (Lark)"),
        AccountKind::Feishu(_) => json!("feishu"),
        AccountKind::DingTalk => json!("dingtalk"),
        AccountKind::WeComBot => json!("wecom_bot"),
    }
}

/// `GET /console/api/accounts`.
pub(super) async fn list(_: Session, State(state): State<AppState>) -> Response {
    let Ok(console) = session::console(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(config) = running(&state) else {
        return error(
            StatusCode::CONFLICT,
            "this server was not started from a config file",
        );
    };
    let accounts: Vec<Value> = config
        .accounts
        .iter()
        .map(|entry| {
            let endpoint = state.endpoints().iter().find(|e| e.name == entry.name);
            let caps = crate::platform::capabilities(&entry.account, config.agent.typing);
            json!({
                "name": entry.name,
                "kind": kind_detail(&entry.account.kind),
                "path": entry.path,
                "mode": entry.account.mode.as_str(),
                "app_id": entry.account.app_id,
                "url": callback_url(console, entry),
                "token": masked(entry.account.token.expose()),
                "encoding_aes_key": encoding_aes_key(entry).map(|k| masked(&k)),
                "api_credentials": entry.account.has_api_credentials(),
                "strategy": endpoint
                    .and_then(|e| e.delivery.conversations())
                    .map(|c| c.settings().strategy.as_str())
                    .unwrap_or("passive (rules only)"),
                "rules": entry.rules.len(),
                "capabilities": {
                    "passive_reply_ms": caps.passive_deadline().map(|d| d.as_millis() as u64),
                    "push_retries": caps.push_retries.is_some(),
                    "late_send": caps.can_send_late(),
                    "typing": caps.typing,
                    "media_upload": caps.media_upload,
                    "streaming": caps.streaming,
                    "text_links": caps.text_links,
                },
            })
        })
        .collect();
    Json(json!({ "accounts": accounts, "public_url": console.settings.public_url })).into_response()
}

/// `POST /console/api/accounts/{account}/reveal`: the token and
/// EncodingAESKey in clear, to paste into the WeChat console. The only
/// answer of the console that holds a secret; every call is logged.
pub(super) async fn reveal(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
) -> Response {
    let Some(config) = running(&state) else {
        return error(
            StatusCode::CONFLICT,
            "this server was not started from a config file",
        );
    };
    let Ok(entry) = config.find_account(Some(&account)) else {
        return error(StatusCode::NOT_FOUND, "no such account");
    };
    tracing::warn!(account = %account, "console: the account's token and EncodingAESKey were revealed");
    (
        [(axum::http::header::CACHE_CONTROL, "no-store")],
        Json(json!({
            "token": entry.account.token.expose(),
            "encoding_aes_key": encoding_aes_key(entry),
        })),
    )
        .into_response()
}

/// `POST /console/api/accounts/{account}/verify`: WeChat's URL
/// verification against the public URL, as `wxgate verify-url` does it.
pub(super) async fn verify(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
) -> Response {
    let Ok(console) = session::console(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(config) = running(&state) else {
        return error(
            StatusCode::CONFLICT,
            "this server was not started from a config file",
        );
    };
    let Ok(entry) = config.find_account(Some(&account)) else {
        return error(StatusCode::NOT_FOUND, "no such account");
    };
    let Some(url) = callback_url(console, entry) else {
        return error(
            StatusCode::CONFLICT,
            "set console.public_url to the URL WeChat calls",
        );
    };
    let result = sim::verify_url(&entry.account, &url).await;
    tracing::info!(account = %account, url = %url, passed = result.is_ok(), "console: URL verification");
    match result {
        Ok(_) => Json(json!({ "ok": true, "url": url })).into_response(),
        Err(e) => Json(json!({ "ok": false, "url": url, "error": e.to_string() })).into_response(),
    }
}

#[derive(Deserialize)]
pub(super) struct Search {
    user: Option<String>,
}

/// `GET /console/api/conversations/{account}?user=…`: the recent
/// messages, newest first, filtered by a piece of the shortened OpenID.
pub(super) async fn conversations(
    _: Session,
    State(state): State<AppState>,
    UrlPath(account): UrlPath<String>,
    Query(search): Query<Search>,
) -> Response {
    let Ok(console) = session::console(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(endpoint) = state.endpoints().iter().find(|e| e.name == account) else {
        return error(StatusCode::NOT_FOUND, "no such account");
    };
    let user = search
        .user
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty());
    let entries = console.recent.list(&account, user);
    // The answers kept for a next message, counted by the metrics (this
    // process, every account): queued, delivered, expired.
    let mut counts = serde_json::Map::new();
    for sample in state.metrics().samples() {
        if sample.name == "wxgate_pending_answers_total" {
            if let Some(kind) = sample.label("kind") {
                counts.insert(kind.to_owned(), json!(sample.value));
            }
        }
    }
    let pending = endpoint.delivery.conversations().map(|c| {
        json!({
            "strategy": c.settings().strategy.as_str(),
            "ttl_secs": c.settings().pending_ttl.as_secs(),
            "answers": counts,
        })
    });
    Json(json!({
        "account": account,
        "show_content": console.settings.show_content,
        "entries": entries,
        "pending": pending,
    }))
    .into_response()
}
