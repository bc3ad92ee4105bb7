//! What every upstream protocol shares: the [`Protocol`] trait each one
//! implements, the bounded HTTP exchange it calls through, and the error
//! it fails with. The protocols know this file only; the upstream in
//! `mod.rs` knows them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use crate::agent::media::MediaAnswer;
use crate::domain::{Message, Reply};

/// Upstream answers are small JSON documents; anything bigger is refused.
pub(super) const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// A protocol's answer to come.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, UpstreamError>> + Send + 'a>>;

/// What an upstream answered: a reply as it is, or media by URL that the
/// agent bridge uploads first (see `agent::media`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A reply, ready to shape and send.
    Reply(Reply),
    /// A picture, voice or video to download and upload for its `media_id`.
    Media(MediaAnswer),
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Self {
        Answer::Reply(reply)
    }
}

/// Where a streaming protocol hands each complete part of its answer (raw,
/// as the upstream wrote it) while the rest is still arriving; `None` when
/// the answer is wanted whole. Parts handed on are not in the final reply.
pub type Emit<'a> = Option<&'a (dyn Fn(String) + Send + Sync)>;

/// A reply computed without calling the upstream (e.g. a reset command).
pub type LocalFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// One wire protocol an upstream speaks: how a message becomes a request
/// and an answer becomes a reply. Each protocol owns its settings (and, for
/// `openai`, the conversation history and the reset command).
pub trait Protocol: Send + Sync {
    /// The name used in the config file.
    fn name(&self) -> &'static str;

    /// Answers `message` without calling the upstream, when the protocol
    /// handles it itself. Runs before the concurrency cap. `None` by default.
    fn intercept(&self, _message: &Arc<Message>) -> Option<LocalFuture> {
        None
    }

    /// Asks the upstream for the reply to `message`. A protocol that
    /// streams hands complete parts to `emit` as they arrive and answers
    /// what follows the last of them.
    fn call<'a>(
        &'a self,
        http: &'a Http,
        message: &'a Message,
        app_id: &'a str,
        emit: Emit<'a>,
    ) -> CallFuture<'a>;

    /// True when `call` hands parts to `emit` (the answer is streamed).
    fn streams(&self) -> bool {
        false
    }
}

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

/// The HTTP side of one upstream: its client, URL and timeout.
pub struct Http {
    pub(super) client: reqwest::Client,
    pub(super) url: String,
    pub(super) timeout: Duration,
}

impl Http {
    /// A client bounded by `timeout`.
    pub fn new(url: String, timeout: Duration) -> Result<Http, reqwest::Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Http {
            client,
            url,
            timeout,
        })
    }

    /// A POST to the upstream's URL.
    pub fn post(&self) -> reqwest::RequestBuilder {
        self.client.post(&self.url)
    }

    /// Sends a request and returns the response once its status is 2xx,
    /// with its body still to read (a stream).
    pub async fn open(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            return Err(UpstreamError::Status(status));
        }
        Ok(response)
    }

    /// A reqwest failure as an upstream error (never with the URL).
    pub fn transport(&self, e: reqwest::Error) -> UpstreamError {
        if e.is_timeout() {
            UpstreamError::Timeout(self.timeout)
        } else {
            UpstreamError::Transport(e.without_url().to_string())
        }
    }

    /// Sends a request and reads a bounded body: `(status, body)`.
    pub async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(u16, Vec<u8>), UpstreamError> {
        let (status, body) = crate::outbound::send_bounded(request, MAX_RESPONSE_BYTES)
            .await
            .map_err(|e| match e {
                crate::outbound::BoundedError::Transport(e) => self.transport(e),
                crate::outbound::BoundedError::TooLarge(max) => {
                    UpstreamError::Malformed(format!("answer larger than {max} bytes"))
                }
            })?;
        let status = status.as_u16();
        if !(200..300).contains(&status) {
            return Err(UpstreamError::Status(status));
        }
        Ok((status, body))
    }
}
