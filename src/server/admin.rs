//! `POST /admin/reload`, behind the admin bearer key. Without a configured
//! key the admin routes answer 404, as if they did not exist.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;

/// Why an admin request is refused.
pub(super) enum Denied {
    /// No admin key configured: the routes do not exist.
    Disabled,
    /// Missing or wrong key.
    Unauthorized,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Disabled => StatusCode::NOT_FOUND.into_response(),
            Denied::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [("www-authenticate", "Bearer")],
                "unauthorized",
            )
                .into_response(),
        }
    }
}

/// Checks `Authorization: Bearer <key>`.
pub(super) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), Denied> {
    let Some(key) = &state.inner.admin_key else {
        return Err(Denied::Disabled);
    };
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(presented.as_bytes().ct_eq(key.expose().as_bytes())) {
        Ok(())
    } else {
        tracing::warn!("admin request with a missing or wrong bearer key");
        Err(Denied::Unauthorized)
    }
}

pub(super) async fn reload(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(denied) = authorize(&state, &headers) {
        return denied.into_response();
    }
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
