//! The HTTP face of wxgate: routes, extractors, status codes, the layer stack.
//!
//! Two routers: the public one, built from each account's callback route
//! ([`callback`](self) handlers over the platform's dialect), and the
//! [`operator`] one (health, metrics, admin, internal). [`router`] joins
//! them behind one layer stack. Knows axum and the platforms' callback
//! dialect; never AES or XML internals.

mod access;
mod callback;
mod client_ip;
pub mod console;
mod error;
pub mod operator;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Extension, Router};
use ipnet::IpNet;
use tower::Layer;

use crate::config::Secret;
use crate::conversation::{Delivery, SharedRules};
use crate::metrics::Metrics;
use crate::platform::callback::Callback;
use crate::reload::Reloader;
use crate::rules::RuleSet;
use crate::security::Allowlist;
use crate::token::TokenManager;
pub use error::ApiError;
pub use operator::{Probe, ProbeFuture, TokenEndpoint};

/// One account's callback endpoint: what its handlers need.
pub struct Endpoint {
    /// The account name (`default` for `[account]`).
    pub name: String,
    /// The same name as the `account` label of its metrics.
    pub account: crate::metrics::AccountName,
    /// `official`, `wecom`, `kf` or `feishu`.
    pub kind: &'static str,
    /// Its path, e.g. `/weixin` or `/weixin/shop`.
    pub path: String,
    /// The callback pipeline (WeChat family).
    pub callback: Callback,
    /// Feishu's callback pipeline: set for Feishu accounts, whose path
    /// takes JSON events instead.
    pub feishu: Option<crate::platform::feishu::FeishuCallback>,
    /// DingTalk's callback pipeline: set for DingTalk robots, whose path
    /// takes their JSON callbacks instead.
    pub dingtalk: Option<crate::platform::dingtalk::DingTalkCallback>,
    /// A DingTalk app's encrypted event callbacks (事件订阅), pushed to the
    /// same path: set when the account has a token and encoding_aes_key.
    pub dingtalk_events: Option<crate::platform::dingtalk::DingTalkEvents>,
    /// A WeCom 智能机器人's callback pipeline and streams: set for
    /// `wecom_bot` accounts, whose path takes their JSON callbacks instead.
    pub wecom_bot: Option<WeComBotEndpoint>,
    /// Swapped atomically on reload; requests in flight keep the old set.
    pub rules: SharedRules,
    /// Dedup, deadline and overload handling.
    pub delivery: Delivery,
    /// The token manager (token metrics), when the account makes API calls.
    pub tokens: Option<TokenManager>,
    /// Who may call this account's path (WeChat's and WeCom's callback
    /// addresses differ, so each account has its own list).
    pub allowlist: Arc<Allowlist>,
}

/// What a 智能机器人's path needs: its callback pipeline and its streams.
pub struct WeComBotEndpoint {
    /// Signature, envelope and sealing.
    pub callback: crate::platform::wecom_bot::WeComBotCallback,
    /// The stream state and the turns that fill it.
    pub streams: Arc<crate::platform::wecom_bot::Streams>,
}

/// Everything the handlers share. Cheap to clone (one `Arc`).
///
/// One state struct rather than one extractor per dependency: the handlers
/// need most of it, and a single `Arc` keeps cloning per request trivial.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    /// Every account; the first is the primary one.
    endpoints: Vec<Arc<Endpoint>>,
    metrics: Arc<Metrics>,
    trusted_proxies: Vec<IpNet>,
    probes: Vec<Arc<dyn Probe>>,
    reloader: Option<Arc<Reloader>>,
    admin_key: Option<Secret>,
    /// `GET /internal/access_token`, when enabled.
    token_endpoint: Option<TokenEndpoint>,
    started: Instant,
    /// Failed operator-key attempts per client (the rate limit).
    key_failures: operator::bearer::KeyFailures,
    /// The operator console, when enabled.
    console: Option<Arc<console::Console>>,
}

/// The parts an [`AppState`] is made of.
pub struct StateParts {
    /// Every account's endpoint, the primary one first. Not empty.
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Metrics registry.
    pub metrics: Arc<Metrics>,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Readiness probes.
    pub probes: Vec<Arc<dyn Probe>>,
    /// Reloads the config file (`POST /admin/reload`).
    pub reloader: Option<Arc<Reloader>>,
    /// Bearer key of the admin routes (off when `None`).
    pub admin_key: Option<Secret>,
    /// `GET /internal/access_token` (off when `None`).
    pub token_endpoint: Option<TokenEndpoint>,
    /// The operator console (off when `None`).
    pub console: Option<Arc<console::Console>>,
}

impl AppState {
    /// Builds the state from its parts.
    ///
    /// # Panics
    /// When `parts.endpoints` is empty (a configuration always has an account).
    pub fn new(parts: StateParts) -> Self {
        assert!(
            !parts.endpoints.is_empty(),
            "a server needs at least one account"
        );
        AppState {
            inner: Arc::new(Shared {
                endpoints: parts.endpoints,
                metrics: parts.metrics,
                trusted_proxies: parts.trusted_proxies,
                probes: parts.probes,
                reloader: parts.reloader,
                admin_key: parts.admin_key,
                token_endpoint: parts.token_endpoint,
                started: Instant::now(),
                key_failures: operator::bearer::KeyFailures::default(),
                console: parts.console,
            }),
        }
    }

    /// The config reloader, when the server was started from a file.
    pub fn reloader(&self) -> Option<Arc<Reloader>> {
        self.inner.reloader.clone()
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.inner.metrics
    }

    /// Every account's endpoint, the primary one first.
    pub fn endpoints(&self) -> &[Arc<Endpoint>] {
        &self.inner.endpoints
    }

    /// The primary account's endpoint.
    pub fn primary(&self) -> &Arc<Endpoint> {
        &self.inner.endpoints[0]
    }

    /// The primary account's callback pipeline.
    pub fn callback(&self) -> &Callback {
        &self.primary().callback
    }

    /// The operator console, when enabled.
    pub fn console(&self) -> Option<&console::Console> {
        self.inner.console.as_deref()
    }

    /// The primary account's rules in force now.
    pub fn rules(&self) -> Arc<RuleSet> {
        self.primary().rules.load_full()
    }
}

/// Settings of the router that come from the config.
#[derive(Debug, Clone)]
pub struct RouterSettings {
    /// Body limit in bytes (413 above).
    pub max_body_bytes: usize,
}

/// The public router: each account's callback route. Each account's
/// handlers get its endpoint as an extension: one `Arc` clone per request,
/// no lookup by path.
pub fn public_router(state: &AppState) -> Router<AppState> {
    let mut routes = Router::new();
    for endpoint in state.endpoints() {
        if endpoint.feishu.is_some() {
            routes = routes.route(
                &endpoint.path,
                axum::routing::post(callback::feishu_receive)
                    .layer(Extension(Arc::clone(endpoint))),
            );
            continue;
        }
        if endpoint.wecom_bot.is_some() {
            routes = routes.route(
                &endpoint.path,
                axum::routing::get(callback::wecom_bot_verify)
                    .post(callback::wecom_bot_receive)
                    .layer(Extension(Arc::clone(endpoint))),
            );
            continue;
        }
        if endpoint.dingtalk.is_some() {
            routes = routes.route(
                &endpoint.path,
                axum::routing::post(callback::dingtalk_receive)
                    .layer(Extension(Arc::clone(endpoint))),
            );
            continue;
        }
        routes = routes.route(
            &endpoint.path,
            get(callback::verify)
                .post(callback::receive)
                .layer(Extension(Arc::clone(endpoint))),
        );
    }
    routes
}

/// The application router: the public and operator routes on one listener.
/// Tests drive it with `oneshot`; the server binds it.
///
/// Layers, outermost first: the access log (and the request's span, so every
/// log line of a request carries its id, rejections included), then the
/// body limit.
pub fn router(state: AppState, settings: &RouterSettings) -> Router {
    let routes = public_router(&state).merge(operator::router(&state));
    layered(routes, state, settings)
}

/// The routers of two listeners (`[admin] listen`): the public one, with
/// the callbacks and `/healthz` only, and the operator one. Same layers as
/// [`router`].
pub fn split_routers(state: AppState, settings: &RouterSettings) -> (Router, Router) {
    let public = public_router(&state).merge(operator::health_router());
    let operator = operator::router(&state);
    (
        layered(public, state.clone(), settings),
        layered(operator, state, settings),
    )
}

fn layered(routes: Router<AppState>, state: AppState, settings: &RouterSettings) -> Router {
    // Around the whole router rather than through `Router::layer`, which
    // boxes each layer into every route and clones the boxes per request.
    let limited = DefaultBodyLimit::max(settings.max_body_bytes).layer(routes.with_state(state));
    Router::new().fallback_service(access::AccessLog::new(limited))
}
