//! DingTalk's callback pipeline, HTTP-free: the signature against the
//! clock, the body into the domain, and answers rendered as the response.

use std::sync::Arc;

use thiserror::Error;

use super::event::{self, DingTalkEventError};
use super::events::EventError;
use super::sign::{self, SignError};
use crate::clock::Clock;
use crate::config::{AccountConfig, AccountKind, Secret};
use crate::conversation::Recorded;
use crate::domain::{Message, Reply};

/// Why a DingTalk callback is refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DingTalkCallbackError {
    /// The signature is missing, wrong or more than an hour off: 403.
    #[error("{0}")]
    Sign(#[from] SignError),
    /// The body is not a robot message: 400.
    #[error("malformed body: {0}")]
    Malformed(#[from] DingTalkEventError),
    /// An encrypted event push refused (403 when not authentic, else 400).
    #[error("event push: {0}")]
    Event(#[from] EventError),
    /// An event push to an account without `token` and `encoding_aes_key`: 400.
    #[error("event push, but the account has no token and encoding_aes_key for DingTalk's event callbacks")]
    EventsNotConfigured,
}

impl DingTalkCallbackError {
    /// True for failures of authenticity: 403.
    pub fn is_forbidden(&self) -> bool {
        match self {
            DingTalkCallbackError::Sign(_) => true,
            DingTalkCallbackError::Event(e) => e.is_forbidden(),
            _ => false,
        }
    }

    /// The ciphertext of an event push does not decrypt.
    pub fn is_decrypt(&self) -> bool {
        matches!(self, DingTalkCallbackError::Event(e) if e.is_decrypt())
    }

    /// A short stable label for logs and metrics.
    pub fn label(&self) -> &'static str {
        match self {
            DingTalkCallbackError::Sign(SignError::Stale { .. }) => "stale_timestamp",
            DingTalkCallbackError::Sign(SignError::Missing(_) | SignError::BadTimestamp) => {
                "missing_param"
            }
            DingTalkCallbackError::Sign(_) => "bad_signature",
            DingTalkCallbackError::Malformed(_) => "malformed_message",
            DingTalkCallbackError::Event(e) => e.label(),
            DingTalkCallbackError::EventsNotConfigured => "events_not_configured",
        }
    }
}

/// One DingTalk robot's callback logic.
#[derive(Debug, Clone)]
pub struct DingTalkCallback {
    app_secret: Secret,
    clock: Arc<dyn Clock>,
}

impl DingTalkCallback {
    /// The pipeline of a DingTalk account; `None` for other kinds.
    pub fn for_account(account: &AccountConfig, clock: Arc<dyn Clock>) -> Option<Self> {
        if account.kind != AccountKind::DingTalk {
            return None;
        }
        Some(DingTalkCallback {
            app_secret: account.app_secret.clone()?,
            clock,
        })
    }

    /// Authenticates (headers `timestamp` and `sign`) and reads one callback.
    pub fn open(
        &self,
        timestamp: Option<&str>,
        given_sign: Option<&str>,
        body: &[u8],
    ) -> Result<Arc<Message>, DingTalkCallbackError> {
        let now_ms = self.clock.now_unix().saturating_mul(1000);
        sign::verify(timestamp, given_sign, &self.app_secret, now_ms)?;
        Ok(Arc::new(event::to_message(body)?))
    }

    /// The response body carrying `reply` (the first message of it; the
    /// rest of a long answer does not fit one response), `None` for no answer.
    pub fn render(reply: &Reply) -> Recorded {
        super::messages(reply)
            .into_iter()
            .next()
            .map(|m| Arc::from(m.to_string()))
    }
}
