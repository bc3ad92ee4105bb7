//! Console sessions: the admin key exchanged for a random session id in a
//! cookie (`HttpOnly`, `SameSite=Strict`, `Secure` behind TLS), kept in a
//! server-side table that forgets it after `console.session_ttl_secs`
//! without a request, and at the latest a day after sign-in
//! ([`MAX_SESSION_AGE_SECS`]); a per-session CSRF token that every change
//! (`POST`, `PUT`, `DELETE`) must carry in `X-CSRF-Token`.
//!
//! The id and the token are 32 random bytes each; the admin key and the
//! token are compared in constant time. Sign-in failures count against the operator keys' per-client
//! limit ([`bearer::KeyFailures`](crate::server::operator::bearer)).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use subtle::ConstantTimeEq;

use super::Console;
use crate::server::AppState;

/// The session cookie's name.
pub const COOKIE: &str = "wxgate_console";
/// The header that carries the CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Sessions kept at most; the one closest to its end goes first.
const MAX_SESSIONS: usize = 64;
/// However active (the overview polls every 2 s), a session ends this long
/// after its sign-in: a forgotten open tab does not stay signed in for ever.
pub const MAX_SESSION_AGE_SECS: i64 = 24 * 3600;

/// One signed-in browser.
#[derive(Clone)]
struct Entry {
    csrf: String,
    /// Unix seconds (the app's clock) after which it is gone.
    expires_at: i64,
    /// When it was signed in.
    created_at: i64,
}

/// The server-side session table.
#[derive(Default)]
pub struct Sessions(Mutex<HashMap<String, Entry>>);

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

impl Sessions {
    /// A new session: its id and CSRF token.
    pub fn create(&self, now: i64, ttl: i64) -> (String, String) {
        let (id, csrf) = (random_token(), random_token());
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        table.retain(|_, e| e.expires_at > now);
        while table.len() >= MAX_SESSIONS {
            let Some(first) = table
                .iter()
                .min_by_key(|(_, e)| e.expires_at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            table.remove(&first);
        }
        table.insert(
            id.clone(),
            Entry {
                csrf: csrf.clone(),
                expires_at: now + ttl,
                created_at: now,
            },
        );
        (id, csrf)
    }

    /// The session's CSRF token when `id` is signed in at `now`; its end
    /// moves `ttl` on.
    fn touch(&self, id: &str, now: i64, ttl: i64) -> Option<String> {
        let mut table = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let entry = table.get_mut(id)?;
        if entry.expires_at <= now || now - entry.created_at >= MAX_SESSION_AGE_SECS {
            table.remove(id);
            return None;
        }
        entry.expires_at = now + ttl;
        Some(entry.csrf.clone())
    }

    /// Ends a session.
    pub fn remove(&self, id: &str) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The session id in the request's cookies.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim().to_owned())
}

/// Whether the browser reached us over TLS: a trusted proxy said so in
/// `X-Forwarded-Proto` (wxgate itself speaks plain HTTP).
pub fn over_tls(parts_headers: &HeaderMap, peer: Option<SocketAddr>, state: &AppState) -> bool {
    let Some(peer) = peer else {
        return false;
    };
    crate::security::contains(&state.inner.trusted_proxies, peer.ip())
        && parts_headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// The `Set-Cookie` value of a session (`id` empty: the one that ends it).
pub fn set_cookie(id: &str, ttl_secs: i64, secure: bool) -> String {
    let max_age = if id.is_empty() { 0 } else { ttl_secs };
    format!(
        "{COOKIE}={id}; Path=/console; Max-Age={max_age}; HttpOnly; SameSite=Strict{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A signed-in console request (with a valid CSRF token when it changes
/// something).
pub struct Session {
    /// The session id.
    pub id: String,
    /// Its CSRF token.
    pub csrf: String,
}

/// Why a console request is refused.
#[derive(Debug)]
pub enum Refused {
    /// The console is off: the route does not exist.
    Disabled,
    /// No session, or it ended.
    SignedOut,
    /// A change without the session's CSRF token.
    Csrf,
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Disabled => StatusCode::NOT_FOUND.into_response(),
            Refused::SignedOut => (
                StatusCode::UNAUTHORIZED,
                Json(serde_json::json!({ "error": "signed_out" })),
            )
                .into_response(),
            Refused::Csrf => (
                StatusCode::FORBIDDEN,
                Json(serde_json::json!({ "error": "csrf_token_missing_or_wrong" })),
            )
                .into_response(),
        }
    }
}

/// The console of `state`, or [`Refused::Disabled`].
pub fn console(state: &AppState) -> Result<&Console, Refused> {
    state.inner.console.as_deref().ok_or(Refused::Disabled)
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Refused;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Refused> {
        let console = console(state)?;
        let id = cookie(&parts.headers).ok_or(Refused::SignedOut)?;
        let csrf = console
            .sessions
            .touch(&id, console.now(), console.ttl_secs())
            .ok_or(Refused::SignedOut)?;
        let changes = !matches!(parts.method, Method::GET | Method::HEAD);
        if changes {
            let presented = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !bool::from(presented.as_bytes().ct_eq(csrf.as_bytes())) {
                tracing::warn!("console change refused: missing or wrong CSRF token");
                return Err(Refused::Csrf);
            }
        }
        Ok(Session { id, csrf })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_after_their_ttl_without_a_request() {
        let sessions = Sessions::default();
        let (id, csrf) = sessions.create(1000, 60);
        assert_eq!(
            sessions.touch(&id, 1059, 60).as_deref(),
            Some(csrf.as_str())
        );
        // Touched at 1059: alive until 1119.
        assert!(sessions.touch(&id, 1118, 60).is_some());
        assert!(sessions.touch(&id, 1178, 60).is_none(), "expired");
        assert!(sessions.touch(&id, 1179, 60).is_none(), "and gone");
        assert!(sessions.touch("nope", 1000, 60).is_none());
    }

    #[test]
    fn an_active_session_still_ends_a_day_after_sign_in() {
        let sessions = Sessions::default();
        let (id, _) = sessions.create(0, 3600);
        let mut now = 0;
        while now + 1800 < MAX_SESSION_AGE_SECS {
            now += 1800;
            assert!(sessions.touch(&id, now, 3600).is_some(), "at {now}");
        }
        assert!(sessions.touch(&id, MAX_SESSION_AGE_SECS, 3600).is_none());
    }

    #[test]
    fn the_table_is_bounded() {
        let sessions = Sessions::default();
        let first = sessions.create(0, 100).0;
        for i in 0..MAX_SESSIONS {
            sessions.create(i as i64 + 1, 100);
        }
        assert!(sessions.touch(&first, 50, 100).is_none(), "evicted");
    }

    #[test]
    fn the_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; wxgate_console=abc ; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h).as_deref(), Some("abc"));
        assert!(set_cookie("x", 60, true).contains("; Secure"));
        assert!(set_cookie("", 60, false).contains("Max-Age=0"));
    }
}
