//! `POST /admin/reload`, behind the admin bearer key. Without a configured
//! key the admin routes answer 404, as if they did not exist.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::bearer::{Admin, Authorized};
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
        }))
        .into_response(),
        Ok(Err(e)) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            Json(json!({ "reloaded": false, "error": e.to_string() })),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
