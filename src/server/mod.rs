//! The HTTP face of wxgate: routes, extractors, status codes, the layer stack.
//!
//! Knows axum and [`crate::callback`]; never AES or XML internals.

mod error;
mod health;
mod weixin;

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::extract::DefaultBodyLimit;
use axum::http::Request;
use axum::routing::get;
use axum::Router;
use tower_http::trace::TraceLayer;
use tracing::field::Empty;

use crate::callback::Callback;
use crate::rules::RuleSet;
pub use error::ApiError;
pub use health::{Probe, ProbeFuture};

/// Everything the handlers share. Cheap to clone (one `Arc`).
///
/// One state struct rather than one extractor per dependency: the handlers
/// need most of it, and a single `Arc` keeps cloning per request trivial.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    callback: Callback,
    /// Swapped atomically on reload; requests in flight keep the old set.
    rules: ArcSwap<RuleSet>,
    probes: Vec<Arc<dyn Probe>>,
    started: Instant,
}

impl AppState {
    /// Builds the state from its parts.
    pub fn new(callback: Callback, rules: Arc<RuleSet>, probes: Vec<Arc<dyn Probe>>) -> Self {
        AppState {
            inner: Arc::new(Shared {
                callback,
                rules: ArcSwap::new(rules),
                probes,
                started: Instant::now(),
            }),
        }
    }

    /// The callback pipeline.
    pub fn callback(&self) -> &Callback {
        &self.inner.callback
    }

    /// The rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.inner.rules.load_full()
    }

    /// Replaces the rules; requests already running finish with the old ones.
    pub fn replace_rules(&self, rules: Arc<RuleSet>) {
        self.inner.rules.store(rules);
    }
}

/// Settings of the router that come from the config.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Callback path, e.g. `/weixin`.
    pub path: String,
    /// Body limit in bytes (413 above).
    pub max_body_bytes: usize,
}

/// The application router. Tests drive it with `oneshot`; the server binds it.
///
/// Layers, outermost first: the trace span (so every log line of a request is
/// inside it, including rejections), then the body limit.
pub fn router(state: AppState, settings: &RouterSettings) -> Router {
    Router::new()
        .route(&settings.path, get(weixin::verify).post(weixin::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .layer(DefaultBodyLimit::max(settings.max_body_bytes))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Path only: the query carries the sender's OpenID.
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        msg_type = Empty,
                        outcome = Empty,
                    )
                })
                .on_request(())
                .on_response(
                    |res: &axum::response::Response,
                     latency: std::time::Duration,
                     _span: &tracing::Span| {
                        tracing::info!(
                            status = res.status().as_u16(),
                            latency_us = latency.as_micros() as u64,
                            "request finished"
                        );
                    },
                )
                .on_failure(()),
        )
        .with_state(state)
}
