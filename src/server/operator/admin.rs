//! `POST /admin/reload`, behind the admin bearer key. Without a configured
//! key the admin routes answer 404, as if they did not exist.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::bearer::{Admin, Authorized};
use crate::reload::ReloadError;
use crate::rules::RulesDiff;
use crate::server::AppState;

pub(super) async fn reload(_: Authorized<Admin>, State(state): State<AppState>) -> Response {
    let Some(reloader) = state.inner.reloader.clone() else {
        return (
            StatusCode::CONFLICT,
            "this server was not started from a config file",
        )
            .into_response();
    };
    // Reading and compiling a big rule file is blocking work.
    let result = tokio::task::spawn_blocking(move || reloader.reload()).await;
    match result {
        Ok(Ok(report)) => Json(json!({
            "reloaded": true,
            "rules": report.rules,
            "restart_required": report.restart_required,
            "accounts": diff_json(&report.diff),
        }))
        .into_response(),
        // An invalid file: 422. A valid file that cannot replace the running
        // one (restart-only settings changed, rules emptied): 409.
        Ok(Err(e)) => {
            let status = match e {
                ReloadError::Config(_) => StatusCode::UNPROCESSABLE_ENTITY,
                _ => StatusCode::CONFLICT,
            };
            (
                status,
                Json(json!({
                    "reloaded": false,
                    "error": e.to_string(),
                    "restart_required": e.restart_required(),
                })),
            )
                .into_response()
        }
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// `{ "name": { "added": [...], "removed": [...], "changed": [...],
/// "default_reply_changed": bool } }`.
pub(crate) fn diff_json(diff: &[(String, RulesDiff)]) -> serde_json::Value {
    diff.iter()
        .map(|(name, d)| {
            (
                name.clone(),
                json!({
                    "added": d.added,
                    "removed": d.removed,
                    "changed": d.changed,
                    "default_reply_changed": d.default_reply_changed,
                }),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}
