//! The one bearer-key check of the operator routes, as an extractor:
//! `Authorized<Admin>` for `/admin/*`, `Authorized<Internal>` for
//! `/internal/*`. A route whose key is not configured does not exist (404,
//! like any unknown path); a missing or wrong key is 401.

use std::marker::PhantomData;

use axum::extract::FromRequestParts;
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
        }
    }
}

impl<G: Guard> FromRequestParts<AppState> for Authorized<G> {
    type Rejection = Denied;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Denied> {
        let key = G::key(state).ok_or(Denied::Disabled)?;
        if presents(&parts.headers, key) {
            Ok(Authorized(PhantomData))
        } else {
            tracing::warn!(
                route = G::WHAT,
                "operator request with a missing or wrong bearer key"
            );
            Err(Denied::Unauthorized)
        }
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
