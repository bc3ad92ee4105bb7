//! The Feishu/Lark open API wxgate calls: the app's `tenant_access_token`
//! (a [`TokenFetcher`] behind the shared [`TokenManager`]) and the message
//! reply API, with the documented error codes.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Secret;
use crate::token::{
    AccessToken, FetchError, FetchErrorKind, FetchFuture, FetchedToken, TokenError, TokenFetcher,
    TokenManager,
};

/// `POST`: the app's tenant access token from its id and secret.
pub const TENANT_TOKEN: &str = "/open-apis/auth/v3/tenant_access_token/internal";
/// `POST`, with the message id in place of `{message_id}`.
pub const REPLY: &str = "/open-apis/im/v1/messages/{message_id}/reply";

/// Longest answer read from the API.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Feishu's `code`, with the meanings wxgate acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeishuCode {
    /// 10003: invalid parameter (on the token endpoint: an unknown app_id).
    InvalidParam,
    /// 10014: the app secret is wrong.
    InvalidAppSecret,
    /// 99991661: the Authorization header is missing or malformed.
    TokenMissing,
    /// 99991663: the tenant access token is invalid or expired.
    TokenInvalid,
    /// 99991400 and 230020: the rate limit was hit.
    RateLimited,
    /// 230001: invalid request parameter (e.g. an unknown message_id).
    InvalidRequest,
    /// 230002: the bot is not in the chat.
    BotNotInChat,
    /// 230011: the message to reply to was withdrawn.
    MessageWithdrawn,
    /// 1500: Feishu's internal error, "retry later" (generic error codes).
    Internal,
    /// Any other code.
    Other(i64),
}

impl FeishuCode {
    /// The variant of a numeric code.
    pub fn from_code(code: i64) -> FeishuCode {
        match code {
            10003 => FeishuCode::InvalidParam,
            10014 => FeishuCode::InvalidAppSecret,
            99991661 => FeishuCode::TokenMissing,
            99991663 => FeishuCode::TokenInvalid,
            99991400 | 230020 => FeishuCode::RateLimited,
            230001 => FeishuCode::InvalidRequest,
            230002 => FeishuCode::BotNotInChat,
            230011 => FeishuCode::MessageWithdrawn,
            1500 => FeishuCode::Internal,
            other => FeishuCode::Other(other),
        }
    }

    /// The token is the problem: refresh it once and retry once.
    pub fn is_token(self) -> bool {
        matches!(self, FeishuCode::TokenMissing | FeishuCode::TokenInvalid)
    }
}

/// Why a Feishu call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum FeishuError {
    /// No answer in time.
    #[error("{endpoint}: no answer within {after:?}")]
    Timeout {
        /// The endpoint path.
        endpoint: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// Could not connect or read.
    #[error("{endpoint}: {reason}")]
    Transport {
        /// The endpoint path.
        endpoint: &'static str,
        /// What failed (no URL: it may carry ids).
        reason: String,
    },
    /// Feishu answered a non-zero `code`.
    #[error("{endpoint}: Feishu code {code}: {message}")]
    Api {
        /// The endpoint path.
        endpoint: &'static str,
        /// The numeric code.
        code: i64,
        /// Feishu's `msg`.
        message: String,
    },
    /// An HTTP error without a Feishu code.
    #[error("{endpoint}: HTTP {status}")]
    Status {
        /// The endpoint path.
        endpoint: &'static str,
        /// The status.
        status: u16,
    },
    /// An answer that does not decode.
    #[error("{endpoint}: undecodable answer: {reason}")]
    Decode {
        /// The endpoint path.
        endpoint: &'static str,
        /// Why.
        reason: String,
    },
    /// No tenant access token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl FeishuError {
    /// Feishu's code, when it answered one.
    pub fn code(&self) -> Option<FeishuCode> {
        match self {
            FeishuError::Api { code, .. } => Some(FeishuCode::from_code(*code)),
            _ => None,
        }
    }

    /// The same call may go through later: a rate limit, Feishu's internal
    /// error, an HTTP 429 or 5xx, no answer, or no token for now. Anything
    /// else (a bad request, the bot out of the chat, a withdrawn message,
    /// wrong credentials) fails again however often it is sent.
    pub fn is_transient(&self) -> bool {
        match self {
            FeishuError::Timeout { .. } | FeishuError::Transport { .. } => true,
            FeishuError::Api { .. } => matches!(
                self.code(),
                Some(FeishuCode::RateLimited | FeishuCode::Internal)
            ),
            FeishuError::Status { status, .. } => *status == 429 || *status >= 500,
            FeishuError::Token(e) => !e.is_config(),
            FeishuError::Decode { .. } => false,
        }
    }

    /// A short stable label for the failure metrics (`feishu_<code>` for
    /// the codes wxgate knows).
    pub fn label(&self) -> &'static str {
        match self {
            FeishuError::Timeout { .. } | FeishuError::Transport { .. } => "feishu_unreachable",
            FeishuError::Status { .. } => "feishu_http",
            FeishuError::Decode { .. } => "feishu_decode",
            FeishuError::Token(_) => "feishu_token",
            FeishuError::Api { .. } => match self.code() {
                Some(FeishuCode::RateLimited) => "feishu_rate_limited",
                Some(FeishuCode::Internal) => "feishu_1500",
                Some(FeishuCode::InvalidRequest) => "feishu_230001",
                Some(FeishuCode::BotNotInChat) => "feishu_230002",
                Some(FeishuCode::MessageWithdrawn) => "feishu_230011",
                Some(FeishuCode::TokenMissing | FeishuCode::TokenInvalid) => "feishu_token",
                _ => "feishu_api",
            },
        }
    }
}

/// What the client needs.
#[derive(Debug, Clone)]
pub struct FeishuClientSettings {
    /// `https://open.feishu.cn`, `https://open.larksuite.com` or a fake.
    pub base_url: String,
    /// Upper bound on every call.
    pub timeout: Duration,
    /// The app's App ID (`cli_…`).
    pub app_id: String,
    /// The app's App Secret.
    pub app_secret: Secret,
}

/// A client of the Feishu open API. Share it in an `Arc`.
#[derive(Debug)]
pub struct FeishuClient {
    http: reqwest::Client,
    settings: FeishuClientSettings,
}

#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    msg: String,
}

#[derive(Deserialize)]
struct TenantToken {
    #[serde(default)]
    tenant_access_token: String,
    #[serde(default)]
    expire: i64,
}

/// One reply: `msg_type` and its `content` (a JSON string).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyBody {
    /// `text`, `post`, …
    pub msg_type: &'static str,
    /// The content object serialized to a string, as the API wants it.
    pub content: String,
    /// Makes a retried request idempotent on Feishu's side (at most 50
    /// characters, deduplicated for an hour).
    pub uuid: String,
}

impl FeishuClient {
    /// Builds the HTTP client (rustls, bounded in time, no redirects).
    pub fn new(mut settings: FeishuClientSettings) -> Result<Self, FeishuError> {
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let http =
            crate::outbound::client(settings.timeout).map_err(|e| FeishuError::Transport {
                endpoint: "(client)",
                reason: e.to_string(),
            })?;
        Ok(FeishuClient { http, settings })
    }

    /// `POST /open-apis/auth/v3/tenant_access_token/internal`.
    pub async fn tenant_token(&self) -> Result<FetchedToken, FeishuError> {
        let s = &self.settings;
        let request = self
            .http
            .post(format!("{}{TENANT_TOKEN}", s.base_url))
            .json(&serde_json::json!({
                "app_id": s.app_id,
                "app_secret": s.app_secret.expose(),
            }));
        let answer: TenantToken = self.send(TENANT_TOKEN, request).await?;
        if answer.tenant_access_token.is_empty() || answer.expire <= 0 {
            return Err(FeishuError::Decode {
                endpoint: TENANT_TOKEN,
                reason: format!("empty token or non-positive expire ({})", answer.expire),
            });
        }
        Ok(FetchedToken {
            access_token: AccessToken::new(answer.tenant_access_token),
            expires_in: Duration::from_secs(answer.expire.unsigned_abs()),
        })
    }

    /// `POST /open-apis/im/v1/messages/{message_id}/reply`.
    pub async fn reply(
        &self,
        token: &AccessToken,
        message_id: &str,
        body: &ReplyBody,
    ) -> Result<(), FeishuError> {
        // The id goes into the path: only what Feishu's ids are made of.
        if message_id.is_empty()
            || !message_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(FeishuError::Decode {
                endpoint: REPLY,
                reason: "message_id is not an id".into(),
            });
        }
        let url = format!(
            "{}{}",
            self.settings.base_url,
            REPLY.replace("{message_id}", message_id)
        );
        let request = self.http.post(url).bearer_auth(token.expose()).json(body);
        let _: serde_json::Value = self.send(REPLY, request).await?;
        Ok(())
    }

    /// Sends, reads a bounded body, checks `code`, decodes `data` or the body.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, FeishuError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                FeishuError::Timeout {
                    endpoint,
                    after: self.settings.timeout,
                }
            } else {
                FeishuError::Transport {
                    endpoint,
                    reason: e.without_url().to_string(),
                }
            }
        };
        let (status, body) = crate::outbound::send_bounded(request, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                crate::outbound::BoundedError::Transport(e) => transport(e),
                crate::outbound::BoundedError::TooLarge(max) => FeishuError::Decode {
                    endpoint,
                    reason: format!("answer larger than {max} bytes"),
                },
            })?;
        // Feishu reports errors as a code in the body, often with HTTP 400.
        if let Ok(s) = serde_json::from_slice::<Status>(&body) {
            if s.code != 0 {
                return Err(FeishuError::Api {
                    endpoint,
                    code: s.code,
                    message: s.msg,
                });
            }
        }
        if !status.is_success() {
            return Err(FeishuError::Status {
                endpoint,
                status: status.as_u16(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| FeishuError::Decode {
            endpoint,
            reason: e.to_string(),
        })
    }
}

impl TokenFetcher for FeishuClient {
    fn fetch(&self, _force_refresh: bool) -> FetchFuture<'_> {
        // Feishu hands out the current token while it has more than 30
        // minutes left and a new one after: there is nothing to force.
        Box::pin(async move {
            self.tenant_token().await.map_err(|e| {
                let kind = match e.code() {
                    Some(FeishuCode::InvalidParam | FeishuCode::InvalidAppSecret) => {
                        FetchErrorKind::Credentials
                    }
                    Some(FeishuCode::RateLimited) => FetchErrorKind::Throttled,
                    _ => FetchErrorKind::Unavailable,
                };
                FetchError::new(kind, e)
            })
        })
    }
}

/// The Feishu API with token handling: a call refused for its token
/// (99991661, 99991663) gets a new token and is retried once. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FeishuApi {
    client: Arc<FeishuClient>,
    tokens: TokenManager,
}

impl FeishuApi {
    /// Calls through `client` with tenant tokens from `tokens`.
    pub fn new(client: Arc<FeishuClient>, tokens: TokenManager) -> Self {
        FeishuApi { client, tokens }
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// Replies to `message_id`.
    pub async fn reply(&self, message_id: &str, body: &ReplyBody) -> Result<(), FeishuError> {
        let token = self.tokens.token().await?;
        match self
            .client
            .reply(&token.access_token, message_id, body)
            .await
        {
            Err(e) if e.code().is_some_and(FeishuCode::is_token) => {
                tracing::info!(error = %e, "Feishu refused the tenant token; refreshing it once");
                let fresh = self.tokens.replace(&token.access_token).await?;
                self.client
                    .reply(&fresh.access_token, message_id, body)
                    .await
            }
            other => other,
        }
    }
}
