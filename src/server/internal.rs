//! `GET /internal/access_token`: the shared token for other internal services.
//!
//! Off (404) unless `[token] internal_api_key` is set; callers authenticate
//! with `Authorization: Bearer <key>`; `?account=NAME` asks for another
//! account's token than the primary one's. The answer is never cached and
//! the token is never logged.

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::AppState;
use crate::clock::Clock;
use crate::secret::Secret;
use crate::token::{TokenError, TokenManager};

/// What the endpoint needs: the tokens, the key guarding them, the clock.
#[derive(Clone)]
pub struct TokenEndpoint {
    /// The account's token manager.
    pub tokens: TokenManager,
    /// The bearer key callers must present.
    pub api_key: Secret,
    /// For `expires_in`.
    pub clock: std::sync::Arc<dyn Clock>,
}

#[derive(Serialize)]
struct TokenBody<'a> {
    access_token: &'a str,
    expires_at: i64,
    expires_in: i64,
}

/// Why the endpoint did not answer with a token.
enum InternalError {
    /// Missing or wrong bearer key (401).
    Unauthorized,
    /// No token could be had (503).
    Unavailable(TokenError),
}

impl IntoResponse for InternalError {
    fn into_response(self) -> Response {
        match self {
            InternalError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(serde_json::json!({ "error": "unauthorized" })),
            )
                .into_response(),
            InternalError::Unavailable(e) => {
                tracing::error!(error = %e, "no access token for /internal/access_token");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    Json(serde_json::json!({ "error": e.to_string() })),
                )
                    .into_response()
            }
        }
    }
}

/// `?account=NAME` picks another account than the primary one.
#[derive(Deserialize)]
pub(super) struct Which {
    account: Option<String>,
}

pub(super) async fn access_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(which): Query<Which>,
) -> Response {
    let Some(endpoint) = state.inner.token_endpoint.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !authorized(&headers, &endpoint.api_key) {
        tracing::debug!("internal access token request with a missing or wrong bearer key");
        return InternalError::Unauthorized.into_response();
    }
    let tokens = match which.account.as_deref() {
        None => &endpoint.tokens,
        Some(name) => match state
            .endpoints()
            .iter()
            .find(|e| e.name == name)
            .and_then(|e| e.tokens.as_ref())
        {
            Some(tokens) => tokens,
            None => {
                return (
                    StatusCode::NOT_FOUND,
                    Json(serde_json::json!({
                        "error": "no account of that name with API credentials"
                    })),
                )
                    .into_response()
            }
        },
    };
    let token = match tokens.token().await {
        Ok(t) => t,
        Err(e) => return InternalError::Unavailable(e).into_response(),
    };
    let body = TokenBody {
        access_token: token.access_token.expose(),
        expires_at: token.expires_at,
        expires_in: token.expires_in(endpoint.clock.now_unix()),
    };
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `Authorization: Bearer <key>`, compared in constant time.
fn authorized(headers: &HeaderMap, key: &Secret) -> bool {
    let Some(presented) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return false;
    };
    bool::from(presented.trim().as_bytes().ct_eq(key.expose().as_bytes()))
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
        assert!(authorized(&with("Bearer 0123456789abcdef"), &key));
        assert!(!authorized(&with("Bearer 0123456789abcdeX"), &key));
        assert!(!authorized(&with("Bearer 0123456789abcde"), &key));
        assert!(!authorized(&with("Basic 0123456789abcdef"), &key));
        assert!(!authorized(&HeaderMap::new(), &key));
    }
}
