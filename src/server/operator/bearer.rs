//! The one bearer-key check of the operator routes, as an extractor:
//! `Authorized<Admin>` for `/admin/*`, `Authorized<Internal>` for
//! `/internal/*`. A route whose key is not configured does not exist (404,
//! like any unknown path); a missing or wrong key is 401.
//!
//! Failed attempts are limited per client address: after
//! [`MAX_FAILURES`] in a [`WINDOW`], every keyed request from that address
//! gets 429 until the window ends, the right key included (so guessing
//! gains nothing). They are logged as one summary line per [`WINDOW`]
//! (written at the first failure after it ends), not a line each.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

use crate::secret::Secret;
use crate::server::AppState;

/// Which key guards a route.
pub trait Guard: Send + Sync + 'static {
    /// Names the key in logs.
    const WHAT: &'static str;
    /// The key, when configured.
    fn key(state: &AppState) -> Option<&Secret>;
}

/// `[admin] api_key`.
pub struct Admin;

impl Guard for Admin {
    const WHAT: &'static str = "admin";
    fn key(state: &AppState) -> Option<&Secret> {
        state.inner.admin_key.as_ref()
    }
}

/// `[token] internal_api_key`.
pub struct Internal;

impl Guard for Internal {
    const WHAT: &'static str = "internal";
    fn key(state: &AppState) -> Option<&Secret> {
        state.inner.token_endpoint.as_ref().map(|e| &e.api_key)
    }
}

/// Proof that the request presented `G`'s key.
pub struct Authorized<G>(PhantomData<G>);

/// Why an operator request is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Denied {
    /// The key is not configured: the route does not exist.
    Disabled,
    /// Missing or wrong key.
    Unauthorized,
    /// Too many failed attempts from this client.
    Limited,
}

/// Failed attempts a client may make per [`WINDOW`].
pub const MAX_FAILURES: u32 = 10;
/// The rate-limit window, and the interval of the summary log line.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at most (memory bound); beyond, the table starts afresh.
const MAX_CLIENTS: usize = 10_000;

/// Failed operator-key attempts per client, one table per server.
#[derive(Default)]
pub struct KeyFailures(Mutex<Failures>);

impl KeyFailures {
    fn table(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `client` is over its limit now; a refused attempt counts
    /// (the console's sign-in shares the limit of the bearer keys).
    pub(crate) fn refuse(&self, client: IpAddr, what: &'static str) -> bool {
        let now = Instant::now();
        let mut failures = self.table();
        let limited = failures.limited(client, now);
        if limited {
            failures.note(client, now, true, what);
        }
        limited
    }

    /// Notes a wrong key from `client`.
    pub(crate) fn note_failure(&self, client: IpAddr, what: &'static str) {
        self.table().note(client, Instant::now(), false, what);
    }
}

/// Failed attempts per client in the current window, and what the next
/// summary line reports.
#[derive(Default)]
struct Failures {
    clients: HashMap<IpAddr, (Instant, u32)>,
    since_summary: u64,
    summary_at: Option<Instant>,
    limited_since_summary: u64,
}

impl Failures {
    /// Whether `client` is over its limit now.
    fn limited(&mut self, client: IpAddr, now: Instant) -> bool {
        match self.clients.get(&client) {
            Some((start, count)) if now.duration_since(*start) < WINDOW => *count >= MAX_FAILURES,
            _ => false,
        }
    }

    /// Notes a failed (or refused) attempt; logs the summary when due.
    fn note(&mut self, client: IpAddr, now: Instant, limited: bool, what: &'static str) {
        if self.clients.len() >= MAX_CLIENTS {
            self.clients
                .retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if self.clients.len() >= MAX_CLIENTS {
                self.clients.clear();
            }
        }
        let entry = self.clients.entry(client).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        self.since_summary += 1;
        if limited {
            self.limited_since_summary += 1;
        }
        let due = self
            .summary_at
            .is_none_or(|at| now.duration_since(at) >= WINDOW);
        if due {
            tracing::warn!(
                route = what,
                failed = self.since_summary,
                refused_rate_limited = self.limited_since_summary,
                clients = self.clients.len(),
                window_secs = WINDOW.as_secs(),
                "operator requests with a missing or wrong bearer key (summary)"
            );
            self.since_summary = 0;
            self.limited_since_summary = 0;
            self.summary_at = Some(now);
        }
    }
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        match self {
            Denied::Disabled => StatusCode::NOT_FOUND.into_response(),
            Denied::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(serde_json::json!({ "error": "unauthorized" })),
            )
                .into_response(),
            Denied::Limited => (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, WINDOW.as_secs().to_string())],
                Json(serde_json::json!({ "error": "too many failed attempts" })),
            )
                .into_response(),
        }
    }
}

impl<G: Guard> FromRequestParts<AppState> for Authorized<G> {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Denied> {
        let key = G::key(state).ok_or(Denied::Disabled)?;
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.ip());
        let now = Instant::now();
        let failures = || {
            state
                .inner
                .key_failures
                .0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        };
        if let Some(client) = client {
            let mut failures = failures();
            if failures.limited(client, now) {
                failures.note(client, now, true, G::WHAT);
                return Err(Denied::Limited);
            }
        }
        if presents(&parts.headers, key) {
            return Ok(Authorized(PhantomData));
        }
        match client {
            Some(client) => failures().note(client, now, false, G::WHAT),
            None => tracing::debug!(route = G::WHAT, "wrong bearer key, client unknown"),
        }
        Err(Denied::Unauthorized)
    }
}

/// `Authorization: Bearer <key>` (the scheme in any case, surrounding
/// whitespace ignored), compared in constant time.
pub fn presents(headers: &HeaderMap, key: &Secret) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let value = value.trim();
    let Some((scheme, presented)) = value.split_once(' ') else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && bool::from(presented.trim().as_bytes().ct_eq(key.expose().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_key_is_accepted() {
        let key = Secret::new("0123456789abcdef");
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(presents(&with("Bearer 0123456789abcdef"), &key));
        assert!(presents(&with("bearer  0123456789abcdef "), &key));
        assert!(!presents(&with("Bearer 0123456789abcdeX"), &key));
        assert!(!presents(&with("Bearer 0123456789abcde"), &key));
        assert!(!presents(&with("Bearer 0123456789abcdef0"), &key));
        assert!(!presents(&with("Basic 0123456789abcdef"), &key));
        assert!(!presents(&with("Bearer"), &key));
        assert!(!presents(&HeaderMap::new(), &key));
    }
}
