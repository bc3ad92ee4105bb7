use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::platform::callback::CallbackError;
use crate::platform::dingtalk::DingTalkCallbackError;
use crate::platform::feishu::FeishuCallbackError;
use crate::platform::wecom_bot::WeComBotCallbackError;

/// Everything a handler can answer with instead of a reply. Carries its
/// status; the body is a short fixed explanation, never request data.
#[derive(Debug)]
pub enum ApiError {
    /// Refused by the callback pipeline (400 or 403).
    Callback(CallbackError),
    /// Query string that does not parse (400).
    BadQuery,
    /// Body above the configured limit (413).
    TooLarge,
    /// Body could not be read (400).
    BadBody,
    /// Caller outside the callback IP allowlist (403).
    ForbiddenIp,
    /// Refused by Feishu's callback pipeline (400 or 403).
    Feishu(FeishuCallbackError),
    /// Refused by DingTalk's callback pipeline (400 or 403).
    DingTalk(DingTalkCallbackError),
    /// Refused by a 智能机器人's callback pipeline (400 or 403).
    WeComBot(WeComBotCallbackError),
}

impl ApiError {
    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Callback(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::ForbiddenIp => StatusCode::FORBIDDEN,
            ApiError::Feishu(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::Feishu(_) => StatusCode::BAD_REQUEST,
            ApiError::DingTalk(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::DingTalk(_) => StatusCode::BAD_REQUEST,
            ApiError::WeComBot(e) if e.is_forbidden() => StatusCode::FORBIDDEN,
            ApiError::WeComBot(_) => StatusCode::BAD_REQUEST,
            ApiError::Callback(_) | ApiError::BadQuery | ApiError::BadBody => {
                StatusCode::BAD_REQUEST
            }
            ApiError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// Stable label for logs.
    pub fn label(&self) -> &'static str {
        match self {
            ApiError::Callback(e) => e.label(),
            ApiError::BadQuery => "bad_query",
            ApiError::TooLarge => "body_too_large",
            ApiError::BadBody => "bad_body",
            ApiError::ForbiddenIp => "forbidden_ip",
            ApiError::Feishu(e) => e.label(),
            ApiError::DingTalk(e) => e.label(),
            ApiError::WeComBot(e) => e.label(),
        }
    }
}

impl From<CallbackError> for ApiError {
    fn from(e: CallbackError) -> Self {
        ApiError::Callback(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = match &self {
            ApiError::Callback(e) if e.is_forbidden() => {
                "forbidden: request is not authentic".to_owned()
            }
            ApiError::Callback(e) => format!("bad request: {e}"),
            ApiError::BadQuery => "bad request: malformed query string".to_owned(),
            ApiError::TooLarge => "payload too large".to_owned(),
            ApiError::BadBody => "bad request: body could not be read".to_owned(),
            ApiError::ForbiddenIp => "forbidden: caller not allowed".to_owned(),
            ApiError::Feishu(e) if e.is_forbidden() => {
                "forbidden: request is not authentic".to_owned()
            }
            ApiError::Feishu(e) => format!("bad request: {e}"),
            ApiError::DingTalk(e) if e.is_forbidden() => {
                "forbidden: request is not authentic".to_owned()
            }
            ApiError::DingTalk(e) => format!("bad request: {e}"),
            ApiError::WeComBot(e) if e.is_forbidden() => {
                "forbidden: request is not authentic".to_owned()
            }
            ApiError::WeComBot(e) => format!("bad request: {e}"),
        };
        (
            status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            detail,
        )
            .into_response()
    }
}
