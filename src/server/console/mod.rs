//! The operator console: a web page at `/console` for the account owner
//! and the operator, served from assets embedded in the binary, with a
//! JSON API under `/console/api/` (see `docs/console.md`).
//!
//! - [`session`]: sign-in with the admin key, the session cookie, CSRF;
//! - `overview`: live numbers read from the metrics registry;
//! - `rules`: the rules editor (drafts validated as a reload would, the
//!   tester, atomic save with a backup, restore), over [`draft`] and
//!   [`files`];
//! - `accounts`: the accounts page (masked secrets, reveal, verify) and
//!   the conversations page over [`recent`].
//!
//! Every route exists only when `[console] enabled = true`; it is on the
//! operator listener (or, when explicitly allowed, the public one).

mod accounts;
pub mod draft;
pub mod files;
mod overview;
pub mod recent;
mod rules;
pub mod session;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::config::ConsoleConfig;
use crate::server::AppState;
use session::{Session, Sessions};

/// The console's state: its settings, sessions and recent messages.
pub struct Console {
    settings: ConsoleConfig,
    sessions: Sessions,
    recent: recent::Recent,
    clock: Arc<dyn Clock>,
    /// One save or restore at a time.
    saving: tokio::sync::Mutex<()>,
}

impl Console {
    /// The console for `settings`, its sessions timed by `clock`.
    pub fn new(settings: ConsoleConfig, clock: Arc<dyn Clock>) -> Self {
        Console {
            recent: recent::Recent::new(settings.recent_messages, settings.show_content),
            settings,
            sessions: Sessions::default(),
            clock,
            saving: tokio::sync::Mutex::new(()),
        }
    }

    fn now(&self) -> i64 {
        self.clock.now_unix()
    }

    fn ttl_secs(&self) -> i64 {
        self.settings.session_ttl.as_secs() as i64
    }

    /// Keeps one answered message for the conversations page.
    pub fn observe(&self, seen: recent::Observed<'_>) {
        self.recent.record(self.now(), seen);
    }
}

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/console.js");
const STYLE: &str = include_str!("assets/console.css");

/// The console's routes (none when it is off).
pub fn router(state: &AppState) -> Router<AppState> {
    if state.inner.console.is_none() {
        return Router::new();
    }
    Router::new()
        .route("/console", get(page))
        .route("/console/", get(page))
        .route("/console/console.js", get(script))
        .route("/console/console.css", get(style))
        .route("/console/api/login", post(login))
        .route("/console/api/logout", post(logout))
        .route("/console/api/session", get(whoami))
        .route("/console/api/overview", get(overview::overview))
        .route(
            "/console/api/rules/{account}",
            get(rules::show).put(rules::save),
        )
        .route(
            "/console/api/rules/{account}/validate",
            post(rules::validate),
        )
        .route("/console/api/rules/{account}/test", post(rules::test))
        .route("/console/api/backups", get(rules::backups))
        .route(
            "/console/api/backups/{id}/rules/{account}",
            get(rules::backup),
        )
        .route("/console/api/backups/{id}/restore", post(rules::restore))
        .route("/console/api/accounts", get(accounts::list))
        .route(
            "/console/api/accounts/{account}/reveal",
            post(accounts::reveal),
        )
        .route(
            "/console/api/accounts/{account}/verify",
            post(accounts::verify),
        )
        .route(
            "/console/api/conversations/{account}",
            get(accounts::conversations),
        )
}

/// Headers every console response carries: no caching, no framing, no
/// outside scripts.
fn hardened(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

async fn page() -> Response {
    hardened("text/html; charset=utf-8", INDEX)
}

async fn script() -> Response {
    hardened("text/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> Response {
    hardened("text/css; charset=utf-8", STYLE)
}

/// A JSON error answer: `{"error": …}` with more fields.
pub(super) fn error(status: StatusCode, what: &str) -> Response {
    (status, Json(json!({ "error": what }))).into_response()
}

#[derive(Deserialize)]
struct SignIn {
    key: String,
}

/// `POST /console/api/login {"key": …}`: the admin key for a session.
async fn login(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<SignIn>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let console = match session::console(&state) {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    let peer = peer.map(|Extension(ConnectInfo(p))| p);
    let failures = &state.inner.key_failures;
    if let Some(peer) = peer {
        if failures.refuse(peer.ip(), "console") {
            return crate::server::operator::bearer::Denied::Limited.into_response();
        }
    }
    let Ok(Json(SignIn { key })) = body else {
        return error(StatusCode::BAD_REQUEST, "send {\"key\": \"…\"} as JSON");
    };
    let Some(admin) = state.inner.admin_key.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !bool::from(key.trim().as_bytes().ct_eq(admin.expose().as_bytes())) {
        if let Some(peer) = peer {
            failures.note_failure(peer.ip(), "console");
        }
        return error(StatusCode::UNAUTHORIZED, "wrong key");
    }
    let (id, csrf) = console.sessions.create(console.now(), console.ttl_secs());
    let secure = session::over_tls(&headers, peer, &state);
    tracing::info!(client = ?peer.map(|p| p.ip()), "console sign-in");
    (
        [
            (
                header::SET_COOKIE,
                session::set_cookie(&id, console.ttl_secs(), secure),
            ),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Json(json!({ "csrf": csrf })),
    )
        .into_response()
}

/// `POST /console/api/logout`: ends the session.
async fn logout(
    State(state): State<AppState>,
    session: Session,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Ok(console) = session::console(&state) {
        console.sessions.remove(&session.id);
    }
    let secure = session::over_tls(&headers, peer.map(|Extension(ConnectInfo(p))| p), &state);
    (
        [(header::SET_COOKIE, session::set_cookie("", 0, secure))],
        Json(json!({ "signed_out": true })),
    )
        .into_response()
}

/// `GET /console/api/session`: the CSRF token and what the page shows.
async fn whoami(State(state): State<AppState>, session: Session) -> Response {
    let Ok(console) = session::console(&state) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let accounts: Vec<_> = state.endpoints().iter().map(|e| e.name.clone()).collect();
    Json(json!({
        "csrf": session.csrf,
        "show_content": console.settings.show_content,
        "accounts": accounts,
        "session_ttl_secs": console.ttl_secs(),
    }))
    .into_response()
}
