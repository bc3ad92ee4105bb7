//! DingTalk's new-style open API (`api.dingtalk.com`) wxgate calls: the
//! internal app's access token (`POST /v1.0/oauth2/accessToken`, a
//! [`TokenFetcher`] behind the shared [`TokenManager`]) and the robot send
//! API (`oToMessages/batchSend` for direct chats, `groupMessages/send` for
//! groups), with the documented error shape: HTTP 4xx/5xx and
//! `{"code","message","requestid"}`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::config::Secret;
use crate::token::{
    AccessToken, FetchError, FetchErrorKind, FetchFuture, FetchedToken, TokenError, TokenFetcher,
    TokenManager,
};

/// `POST`: an internal app's access token from its AppKey and AppSecret.
pub const ACCESS_TOKEN: &str = "/v1.0/oauth2/accessToken";
/// `POST`: robot messages to up to 20 users' direct chats with the robot.
pub const BATCH_SEND: &str = "/v1.0/robot/oToMessages/batchSend";
/// `POST`: a robot message to a group the robot is in.
pub const GROUP_SEND: &str = "/v1.0/robot/groupMessages/send";
/// The header carrying the access token.
pub const TOKEN_HEADER: &str = "x-acs-dingtalk-access-token";
/// Most users of one `batchSend`.
pub const MAX_USER_IDS: usize = 20;

/// Longest answer read from the API.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How wxgate treats an error of the new API, from its HTTP status and
/// `code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DingTalkCode {
    /// 401 `InvalidAuthentication` (the token is invalid or expired): get a
    /// new token and retry once.
    TokenInvalid,
    /// 403 `Forbidden.AccessDenied.AccessTokenPermissionDenied`: the app
    /// lacks the permission (企业内机器人发送消息权限).
    NoPermission,
    /// 429, or 403 `Forbidden.AccessDenied.QpsLimit…` / `Throttling…`: the
    /// rate limit; retry later.
    Throttled,
    /// 5xx (`systemError`, `ServiceUnavailable`): DingTalk's trouble; retry later.
    Unavailable,
    /// Any other 4xx (`invalidParameter.*`, an unknown robotCode or user,
    /// the robot not in the group): retrying cannot help.
    Invalid,
}

impl DingTalkCode {
    /// The meaning of an HTTP status with DingTalk's `code`.
    pub fn classify(status: u16, code: &str) -> DingTalkCode {
        let lower = code.to_ascii_lowercase();
        if status == 401 || lower.starts_with("invalidauthentication") {
            DingTalkCode::TokenInvalid
        } else if status == 429 || lower.contains("qpslimit") || lower.starts_with("throttling") {
            DingTalkCode::Throttled
        } else if lower.contains("permissiondenied") || (status == 403 && lower.is_empty()) {
            DingTalkCode::NoPermission
        } else if status >= 500 {
            DingTalkCode::Unavailable
        } else {
            DingTalkCode::Invalid
        }
    }
}

/// Why a DingTalk API call failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DingTalkError {
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
        /// What failed (no URL).
        reason: String,
    },
    /// DingTalk refused the call.
    #[error("{endpoint}: HTTP {status} {code}: {message}")]
    Api {
        /// The endpoint path.
        endpoint: &'static str,
        /// The HTTP status.
        status: u16,
        /// DingTalk's `code` (empty when the body had none).
        code: String,
        /// DingTalk's `message`.
        message: String,
    },
    /// An answer that does not decode.
    #[error("{endpoint}: undecodable answer: {reason}")]
    Decode {
        /// The endpoint path.
        endpoint: &'static str,
        /// Why.
        reason: String,
    },
    /// No access token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
}

impl DingTalkError {
    /// What the refusal means, when DingTalk refused.
    pub fn code(&self) -> Option<DingTalkCode> {
        match self {
            DingTalkError::Api { status, code, .. } => Some(DingTalkCode::classify(*status, code)),
            _ => None,
        }
    }

    /// Worth trying again later: throttled, DingTalk unavailable, the
    /// network, or no token for now.
    pub fn is_transient(&self) -> bool {
        match self {
            DingTalkError::Api { .. } => matches!(
                self.code(),
                Some(DingTalkCode::Throttled | DingTalkCode::Unavailable)
            ),
            DingTalkError::Token(e) => !e.is_config(),
            DingTalkError::Timeout { .. } | DingTalkError::Transport { .. } => true,
            DingTalkError::Decode { .. } => false,
        }
    }
}

/// What the client needs.
#[derive(Debug, Clone)]
pub struct DingTalkClientSettings {
    /// `https://api.dingtalk.com` or a fake.
    pub base_url: String,
    /// Upper bound on every call.
    pub timeout: Duration,
    /// The AppKey (`ding…`), also the robotCode of the app's robot.
    pub app_key: String,
    /// The AppSecret.
    pub app_secret: Secret,
}

/// A client of DingTalk's new-style open API. Share it in an `Arc`.
#[derive(Debug)]
pub struct DingTalkClient {
    http: reqwest::Client,
    settings: DingTalkClientSettings,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TokenAnswer {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expire_in: i64,
}

#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// What `batchSend` answers on success: the users it did not send to.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BatchSendAnswer {
    /// The id to query the send's progress by.
    pub process_query_key: String,
    /// Users that are not (valid) members of the organisation.
    pub invalid_staff_id_list: Vec<String>,
    /// Users not sent to because of flow control.
    pub flow_controlled_staff_id_list: Vec<String>,
}

/// One robot message of the send API: a template key and its parameters
/// serialized to a JSON string, as the API wants them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RobotMessage {
    /// `sampleMarkdown`, `sampleText`, …
    pub msg_key: &'static str,
    /// The parameters object as a string (`{"title","text"}` for markdown).
    pub msg_param: String,
}

impl RobotMessage {
    /// A `sampleMarkdown` message.
    pub fn markdown(title: &str, text: &str) -> Self {
        RobotMessage {
            msg_key: "sampleMarkdown",
            msg_param: serde_json::json!({"title": title, "text": text}).to_string(),
        }
    }
}

impl DingTalkClient {
    /// Builds the HTTP client (rustls, bounded in time, no redirects).
    pub fn new(mut settings: DingTalkClientSettings) -> Result<Self, DingTalkError> {
        settings.base_url = settings.base_url.trim_end_matches('/').to_owned();
        let http =
            crate::outbound::client(settings.timeout).map_err(|e| DingTalkError::Transport {
                endpoint: "(client)",
                reason: e.without_url().to_string(),
            })?;
        Ok(DingTalkClient { http, settings })
    }

    /// The robotCode of the app's robot: its AppKey.
    pub fn robot_code(&self) -> &str {
        &self.settings.app_key
    }

    /// `POST /v1.0/oauth2/accessToken`.
    pub async fn access_token(&self) -> Result<FetchedToken, DingTalkError> {
        let s = &self.settings;
        let request = self
            .http
            .post(format!("{}{ACCESS_TOKEN}", s.base_url))
            .json(&serde_json::json!({
                "appKey": s.app_key,
                "appSecret": s.app_secret.expose(),
            }));
        let answer: TokenAnswer = self.send(ACCESS_TOKEN, request).await?;
        if answer.access_token.is_empty() || answer.expire_in <= 0 {
            return Err(DingTalkError::Decode {
                endpoint: ACCESS_TOKEN,
                reason: format!(
                    "empty token or non-positive expireIn ({})",
                    answer.expire_in
                ),
            });
        }
        Ok(FetchedToken {
            access_token: AccessToken::new(answer.access_token),
            expires_in: Duration::from_secs(answer.expire_in.unsigned_abs()),
        })
    }

    /// `POST /v1.0/robot/oToMessages/batchSend` to `user_ids` (at most 20).
    pub async fn batch_send(
        &self,
        token: &AccessToken,
        user_ids: &[&str],
        message: &RobotMessage,
    ) -> Result<BatchSendAnswer, DingTalkError> {
        if user_ids.is_empty() || user_ids.len() > MAX_USER_IDS {
            return Err(DingTalkError::Decode {
                endpoint: BATCH_SEND,
                reason: format!("{} user ids; 1 to {MAX_USER_IDS} allowed", user_ids.len()),
            });
        }
        let body = serde_json::json!({
            "robotCode": self.settings.app_key,
            "userIds": user_ids,
            "msgKey": message.msg_key,
            "msgParam": message.msg_param,
        });
        let request = self
            .http
            .post(format!("{}{BATCH_SEND}", self.settings.base_url))
            .header(TOKEN_HEADER, token.expose())
            .json(&body);
        self.send(BATCH_SEND, request).await
    }

    /// `POST /v1.0/robot/groupMessages/send` to `open_conversation_id`.
    pub async fn group_send(
        &self,
        token: &AccessToken,
        open_conversation_id: &str,
        message: &RobotMessage,
    ) -> Result<(), DingTalkError> {
        let body = serde_json::json!({
            "robotCode": self.settings.app_key,
            "openConversationId": open_conversation_id,
            "msgKey": message.msg_key,
            "msgParam": message.msg_param,
        });
        let request = self
            .http
            .post(format!("{}{GROUP_SEND}", self.settings.base_url))
            .header(TOKEN_HEADER, token.expose())
            .json(&body);
        let _: serde_json::Value = self.send(GROUP_SEND, request).await?;
        Ok(())
    }

    /// Sends, reads a bounded body; a non-2xx status is DingTalk's refusal
    /// with its `code` and `message`.
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        endpoint: &'static str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, DingTalkError> {
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                DingTalkError::Timeout {
                    endpoint,
                    after: self.settings.timeout,
                }
            } else {
                DingTalkError::Transport {
                    endpoint,
                    reason: e.without_url().to_string(),
                }
            }
        };
        let (status, body) = crate::outbound::send_bounded(request, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                crate::outbound::BoundedError::Transport(e) => transport(e),
                crate::outbound::BoundedError::TooLarge(max) => DingTalkError::Decode {
                    endpoint,
                    reason: format!("answer larger than {max} bytes"),
                },
            })?;
        if !status.is_success() {
            let e: ErrorBody = serde_json::from_slice(&body).unwrap_or_default();
            return Err(DingTalkError::Api {
                endpoint,
                status: status.as_u16(),
                code: e.code.chars().take(128).collect(),
                message: e.message.chars().take(256).collect(),
            });
        }
        serde_json::from_slice(&body).map_err(|e| DingTalkError::Decode {
            endpoint,
            reason: e.to_string(),
        })
    }
}

impl TokenFetcher for DingTalkClient {
    fn fetch(&self, _force_refresh: bool) -> FetchFuture<'_> {
        // DingTalk hands out the current token while it lives (and renews
        // it near its end): there is nothing to force.
        Box::pin(async move {
            self.access_token().await.map_err(|e| {
                let kind = match &e {
                    DingTalkError::Api { status, code, .. } => {
                        match DingTalkCode::classify(*status, code) {
                            DingTalkCode::Throttled => FetchErrorKind::Throttled,
                            DingTalkCode::Unavailable => FetchErrorKind::Unavailable,
                            // A wrong AppKey or AppSecret.
                            _ => FetchErrorKind::Credentials,
                        }
                    }
                    _ => FetchErrorKind::Unavailable,
                };
                FetchError::new(kind, e)
            })
        })
    }
}

/// The robot send API with token handling: a call refused for its token
/// (401 `InvalidAuthentication`) gets a new token and is retried once.
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct DingTalkApi {
    client: Arc<DingTalkClient>,
    tokens: TokenManager,
}

impl DingTalkApi {
    /// Calls through `client` with tokens from `tokens`.
    pub fn new(client: Arc<DingTalkClient>, tokens: TokenManager) -> Self {
        DingTalkApi { client, tokens }
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// Sends `message` to one user's direct chat with the robot.
    pub async fn send_to_user(
        &self,
        user_id: &str,
        message: &RobotMessage,
    ) -> Result<BatchSendAnswer, DingTalkError> {
        let token = self.tokens.token().await?;
        match self
            .client
            .batch_send(&token.access_token, &[user_id], message)
            .await
        {
            Err(e) if e.code() == Some(DingTalkCode::TokenInvalid) => {
                tracing::info!(error = %e, "DingTalk refused the access token; refreshing it once");
                let fresh = self.tokens.replace(&token.access_token).await?;
                self.client
                    .batch_send(&fresh.access_token, &[user_id], message)
                    .await
            }
            other => other,
        }
    }

    /// Sends `message` to a group.
    pub async fn send_to_group(
        &self,
        open_conversation_id: &str,
        message: &RobotMessage,
    ) -> Result<(), DingTalkError> {
        let token = self.tokens.token().await?;
        match self
            .client
            .group_send(&token.access_token, open_conversation_id, message)
            .await
        {
            Err(e) if e.code() == Some(DingTalkCode::TokenInvalid) => {
                tracing::info!(error = %e, "DingTalk refused the access token; refreshing it once");
                let fresh = self.tokens.replace(&token.access_token).await?;
                self.client
                    .group_send(&fresh.access_token, open_conversation_id, message)
                    .await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_classified() {
        use DingTalkCode::*;
        for (status, code, want) in [
            (401, "InvalidAuthentication", TokenInvalid),
            (
                403,
                "Forbidden.AccessDenied.AccessTokenPermissionDenied",
                NoPermission,
            ),
            (403, "Forbidden.AccessDenied.QpsLimitForApi", Throttled),
            (429, "Throttling.Api", Throttled),
            (500, "systemError", Unavailable),
            (503, "ServiceUnavailable", Unavailable),
            (400, "invalidParameter.userIds.empty", Invalid),
            (400, "invalidParameter.robotCode.auth", Invalid),
        ] {
            assert_eq!(
                DingTalkCode::classify(status, code),
                want,
                "{status} {code}"
            );
        }
    }

    #[test]
    fn markdown_params_are_a_json_string() {
        let m = RobotMessage::markdown("标题", "**正文**");
        assert_eq!(m.msg_key, "sampleMarkdown");
        let v: serde_json::Value = serde_json::from_str(&m.msg_param).unwrap();
        assert_eq!(v, serde_json::json!({"title": "标题", "text": "**正文**"}));
    }
}
