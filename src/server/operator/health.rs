//! `GET /healthz` (the process is alive) and `GET /readyz` (it can serve).

use std::future::Future;
use std::pin::Pin;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::AppState;

/// What a readiness probe returns: a short status on success, a reason on failure.
pub type ProbeFuture<'a> = Pin<Box<dyn Future<Output = Result<String, String>> + Send + 'a>>;

/// A dependency that must work for the server to be ready (the store, the token).
pub trait Probe: Send + Sync {
    /// Short name, e.g. `store`.
    fn name(&self) -> &str;
    /// Checks the dependency.
    fn check(&self) -> ProbeFuture<'_>;
}

pub(super) async fn healthz() -> &'static str {
    "ok"
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    let mut checks = serde_json::Map::new();
    let mut ready = true;
    for probe in &state.inner.probes {
        let result = probe.check().await;
        ready &= result.is_ok();
        let entry = match result {
            Ok(status) => json!({ "ok": true, "status": status }),
            Err(reason) => json!({ "ok": false, "error": reason }),
        };
        checks.insert(probe.name().to_owned(), entry);
    }
    let accounts: Vec<_> = state
        .endpoints()
        .iter()
        .map(|e| {
            json!({
                "name": e.name,
                "kind": e.kind,
                "path": e.path,
                "mode": e.callback.mode().as_str(),
                "rules": e.rules.load().len(),
            })
        })
        .collect();
    let body = json!({
        "ready": ready,
        "mode": state.callback().mode().as_str(),
        "rules": state.rules().len(),
        "accounts": accounts,
        "uptime_secs": state.inner.started.elapsed().as_secs(),
        "checks": checks,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}
