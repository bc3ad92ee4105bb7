//! One upstream: its protocol, its HTTP client, its concurrency cap, and
//! the call. The protocols ([`webhook`], [`openai`]) implement
//! [`Protocol`] from `protocol.rs` and know nothing of each other.

mod chat_media;
pub mod openai;
mod protocol;
pub mod webhook;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use super::history::History;
use super::settings::{ProtocolSettings, UpstreamSettings};
use crate::domain::Message;
pub use protocol::{Answer, CallFuture, Emit, Http, LocalFuture, Protocol, UpstreamError};

/// A configured upstream, ready to call.
pub struct Upstream {
    pub(super) settings: UpstreamSettings,
    http: Http,
    protocol: Box<dyn Protocol>,
    pub(super) permits: Arc<Semaphore>,
}

impl Upstream {
    /// Builds the client and the protocol; `history` is where an `openai`
    /// upstream keeps each user's conversation.
    pub fn new(settings: UpstreamSettings, history: History) -> Result<Upstream, reqwest::Error> {
        let http = Http::new(settings.url.clone(), settings.timeout)?;
        let protocol: Box<dyn Protocol> = match &settings.protocol {
            ProtocolSettings::Webhook { secret } => Box::new(webhook::Webhook::new(secret.clone())),
            ProtocolSettings::OpenAi(o) => Box::new(openai::OpenAi::new(o.clone(), history)),
        };
        Ok(Upstream {
            permits: Arc::new(Semaphore::new(settings.max_concurrency)),
            settings,
            http,
            protocol,
        })
    }

    /// The configured name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The protocol's own answer to `message`, when it needs no call.
    pub fn intercept(&self, message: &Arc<Message>) -> Option<LocalFuture> {
        self.protocol.intercept(message)
    }

    /// True when its answers arrive in parts (`stream = true`).
    pub fn streams(&self) -> bool {
        self.protocol.streams()
    }

    /// Asks the upstream for the reply to `message`; a streaming upstream
    /// hands complete parts to `emit` as they arrive.
    pub async fn call(
        &self,
        message: &Message,
        app_id: &str,
        emit: Emit<'_>,
    ) -> Result<Answer, UpstreamError> {
        let timeout = self.settings.timeout;
        let call = self.protocol.call(&self.http, message, app_id, emit);
        // reqwest's timeout covers the body too; this also bounds the store.
        tokio::time::timeout(timeout + Duration::from_millis(50), call)
            .await
            .unwrap_or(Err(UpstreamError::Timeout(timeout)))
    }
}
