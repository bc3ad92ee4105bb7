//! The operator's routes, in a router of their own so that they can move to
//! their own listener: `/healthz`, `/readyz`, `/metrics`, `/admin/*`
//! (behind `[admin] api_key`) and `/internal/*` (behind `[token]
//! internal_api_key`), both guarded by the one [`bearer`] extractor; and
//! the [console](super::console) when it is enabled.

pub(crate) mod admin;
pub mod bearer;
mod health;
mod internal;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;

pub use health::{Probe, ProbeFuture};
pub use internal::TokenEndpoint;

use super::AppState;

/// `/healthz` alone: what the public listener keeps when the operator
/// routes have a listener of their own (WeChat and balancers probe it).
pub fn health_router() -> Router<AppState> {
    Router::new().route("/healthz", get(health::healthz))
}

/// The operator router (state still to be supplied).
pub fn router(state: &AppState) -> Router<AppState> {
    let mut routes = Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics))
        .route("/admin/reload", post(admin::reload));
    if state.inner.token_endpoint.is_some() {
        // Without a key the route does not exist: 404, like any unknown path.
        routes = routes.route("/internal/access_token", get(internal::access_token));
    }
    routes.merge(super::console::router(state))
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let (fetches, failures) = state
        .endpoints()
        .iter()
        .filter_map(|e| e.tokens.as_ref())
        .map(|t| t.status())
        .fold((0, 0), |(f, e), s| (f + s.fetches, e + s.failures));
    state.metrics().sync_token_counts(fetches, failures);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics().render(),
    )
}
