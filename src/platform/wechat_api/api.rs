//! Calls made with the shared access token, and what to do when they fail.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use thiserror::Error;
use tokio::time::Instant;

use super::{
    AppMessage, CustomMessage, KfSendRequest, KfSyncRequest, KfSyncResponse, MediaFile, Remedy,
    TypingCommand, WechatClient, WechatError,
};
use crate::token::{AccessToken, TokenError, TokenManager};

/// How hard to try when WeChat is busy or throttling.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after "system busy" (-1), each after a jittered, doubling pause.
    pub busy_retries: u32,
    /// The first pause after "system busy".
    pub busy_delay: Duration,
    /// After "quota exceeded" (45009), calls to that endpoint fail at once
    /// for about this long instead of spending more quota.
    pub quota_cooldown: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            busy_retries: 2,
            busy_delay: Duration::from_millis(500),
            quota_cooldown: Duration::from_secs(60),
        }
    }
}

/// Why a call with the access token failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CallError {
    /// No access token could be had.
    #[error(transparent)]
    Token(#[from] TokenError),
    /// WeChat refused the call (after the retries the remedy allows).
    #[error(transparent)]
    Wechat(#[from] WechatError),
    /// The endpoint recently answered 45009; not calling it again yet.
    #[error("{endpoint}: API quota exceeded (errcode 45009); not calling WeChat again for {remaining:?}")]
    CoolingDown {
        /// The endpoint path.
        endpoint: &'static str,
        /// Until calls resume.
        remaining: Duration,
    },
}

/// The WeChat API with token handling: see the [module docs](super).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub struct WechatApi {
    client: Arc<WechatClient>,
    tokens: TokenManager,
    policy: RetryPolicy,
    /// Endpoint → when calls may resume after a 45009.
    cooldowns: Arc<Mutex<HashMap<&'static str, Instant>>>,
}

impl WechatApi {
    /// Calls through `client` with tokens from `tokens`.
    pub fn new(client: Arc<WechatClient>, tokens: TokenManager) -> Self {
        WechatApi {
            client,
            tokens,
            policy: RetryPolicy::default(),
            cooldowns: Arc::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: RetryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The token manager.
    pub fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// `getcallbackip`.
    pub async fn callback_ips(&self) -> Result<Vec<String>, CallError> {
        self.call("/cgi-bin/getcallbackip", |t| async move {
            self.client.callback_ips(&t).await
        })
        .await
    }

    /// Sends a customer-service message.
    pub async fn send_custom(&self, message: &CustomMessage) -> Result<(), CallError> {
        self.call("/cgi-bin/message/custom/send", |t| async move {
            self.client.send_custom(&t, message).await
        })
        .await
    }

    /// Sends a WeCom app message.
    pub async fn send_app_message(&self, message: &AppMessage) -> Result<(), CallError> {
        self.call("/cgi-bin/message/send", |t| async move {
            self.client.send_app_message(&t, message).await
        })
        .await
    }

    /// Pulls one page of Customer Service messages.
    pub async fn kf_sync_msg(&self, request: &KfSyncRequest) -> Result<KfSyncResponse, CallError> {
        self.call("/cgi-bin/kf/sync_msg", |t| async move {
            self.client.kf_sync_msg(&t, request).await
        })
        .await
    }

    /// Sends a Customer Service message; returns its id.
    pub async fn kf_send_msg(&self, message: &KfSendRequest) -> Result<String, CallError> {
        self.call("/cgi-bin/kf/send_msg", |t| async move {
            self.client.kf_send_msg(&t, message).await
        })
        .await
    }

    /// Uploads temporary media of `kind` (`image`, `voice`, `video`); its `media_id`.
    pub async fn upload_media(&self, kind: &str, file: MediaFile<'_>) -> Result<String, CallError> {
        self.call("/cgi-bin/media/upload", |t| async move {
            self.client.upload_media(&t, kind, file).await
        })
        .await
    }

    /// Shows or hides the typing indicator.
    pub async fn typing(&self, to: &str, command: TypingCommand) -> Result<(), CallError> {
        self.call("/cgi-bin/message/custom/typing", |t| async move {
            self.client.typing(&t, to, command).await
        })
        .await
    }

    /// Runs `call` with the current token. When WeChat says the token is
    /// invalid or expired (40001/40014/42001) the token is replaced once and
    /// the call retried once; "system busy" is retried a bounded number of
    /// times with jittered pauses; "quota exceeded" is returned at once and
    /// the endpoint rests for [`RetryPolicy::quota_cooldown`]. Every other
    /// error is returned as it is. Never loops.
    pub async fn call<T, F, Fut>(&self, endpoint: &'static str, call: F) -> Result<T, CallError>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T, WechatError>>,
    {
        self.check_cooldown(endpoint)?;
        let mut token = self.tokens.token().await?.access_token;
        let mut refreshed = false;
        let mut busy = 0u32;
        loop {
            let error = match call(token.clone()).await {
                Ok(value) => return Ok(value),
                Err(e) => e,
            };
            let Some(code) = error.code() else {
                return Err(error.into());
            };
            match code.remedy() {
                Remedy::RefreshToken if !refreshed => {
                    tracing::warn!(
                        endpoint,
                        errcode = code.code(),
                        "access token refused; refreshing once"
                    );
                    refreshed = true;
                    token = self.tokens.replace(&token).await?.access_token;
                }
                Remedy::BackOff if code.code() == -1 && busy < self.policy.busy_retries => {
                    busy += 1;
                    let pause = jitter(
                        self.policy
                            .busy_delay
                            .saturating_mul(1 << (busy - 1).min(8)),
                    );
                    tracing::warn!(
                        endpoint,
                        pause_ms = pause.as_millis() as u64,
                        "WeChat busy; retrying"
                    );
                    tokio::time::sleep(pause).await;
                }
                Remedy::BackOff if code.code() != -1 => {
                    let rest = jitter(self.policy.quota_cooldown);
                    tracing::error!(endpoint, error = %error, rest_secs = rest.as_secs(), "WeChat API quota exceeded");
                    self.cooldowns
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(endpoint, Instant::now() + rest);
                    return Err(error.into());
                }
                _ => return Err(error.into()),
            }
        }
    }

    fn check_cooldown(&self, endpoint: &'static str) -> Result<(), CallError> {
        let cooldowns = self.cooldowns.lock().unwrap_or_else(|p| p.into_inner());
        match cooldowns.get(endpoint) {
            Some(&until) if Instant::now() < until => Err(CallError::CoolingDown {
                endpoint,
                remaining: until - Instant::now(),
            }),
            _ => Ok(()),
        }
    }
}

/// Between half and all of `d`.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}
