//! One upstream: its HTTP client, its concurrency cap, and the call.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;
use tokio::sync::Semaphore;

use super::history::History;
use super::settings::{Protocol, UpstreamSettings};
use super::{openai, webhook};
use crate::domain::{Message, Reply};

/// Upstream answers are small JSON documents; anything bigger is refused.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Why an upstream gave no usable answer. Never carries a secret.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// No answer within `timeout_ms`.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The request failed (connection refused, reset, TLS…).
    #[error("request failed: {0}")]
    Transport(String),
    /// A status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// A 2xx answer that is not what the protocol says.
    #[error("malformed answer: {0}")]
    Malformed(String),
}

impl UpstreamError {
    /// The `kind` label of `wxgate_agent_failures_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            UpstreamError::Timeout(_) => "timeout",
            UpstreamError::Transport(_) | UpstreamError::Status(_) => "error",
            UpstreamError::Malformed(_) => "malformed",
        }
    }
}

/// A configured upstream, ready to call.
pub struct Upstream {
    pub(super) settings: UpstreamSettings,
    pub(super) http: reqwest::Client,
    pub(super) permits: Arc<Semaphore>,
    /// Conversation memory (`openai` only).
    pub(super) history: Option<History>,
}

impl Upstream {
    /// Builds the client; `history` is required for `openai` upstreams.
    pub fn new(
        settings: UpstreamSettings,
        history: Option<History>,
    ) -> Result<Upstream, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Upstream {
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            settings,
            http,
            history,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// Asks the upstream for the reply to `message`.
    pub async fn call(&self, message: &Message, app_id: &str) -> Result<Reply, UpstreamError> {
        let timeout = self.settings.timeout;
        let call = async {
            match &self.settings.protocol {
                Protocol::Webhook { secret } => {
                    webhook::call(self, secret.as_ref(), message, app_id).await
                }
                Protocol::OpenAi(openai) => openai::call(self, openai, message).await,
            }
        };
        // reqwest's timeout covers the body too; this also bounds the store.
        tokio::time::timeout(timeout + Duration::from_millis(50), call)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(timeout)))
    }

    /// Sends a request and reads a bounded body: `(status, body)`.
    pub(super) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let timeout = self.settings.timeout;
        let transport = |e: reqwest::Error| {
            if e.is_timeout() {
                UpstreamError::Timeout(timeout)
            } else {
                UpstreamError::Transport(e.without_url().to_string())
            }
        };
        let mut response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::Malformed(format!(
                    "answer larger than {MAX_RESPONSE_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if !(200..300).contains(&status) {
            return Err(UpstreamError::Status(status));
        }
        Ok((status, body))
    }
}
