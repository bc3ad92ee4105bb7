//! `GET /internal/access_token`: the shared token for other internal services.
//!
//! Off (404) unless `[token] internal_api_key` is set; callers authenticate
//! with `Authorization: Bearer <key>`; `?account=NAME` asks for another
//! account's token than the primary one's. The answer is never cached and
//! the token is never logged.

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::bearer::{Authorized, Internal};
use crate::clock::Clock;
use crate::secret::Secret;
use crate::server::AppState;
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
    /// No token could be had (503).
    Unavailable(TokenError),
}

impl IntoResponse for InternalError {
    fn into_response(self) -> Response {
        match self {
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
    _: Authorized<Internal>,
    State(state): State<AppState>,
    Query(which): Query<Which>,
) -> Response {
    let Some(endpoint) = state.inner.token_endpoint.as_ref() else {
        return StatusCode::NOT_FOUND.into_response();
    };
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
