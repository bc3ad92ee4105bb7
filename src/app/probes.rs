//! Readiness probes of the parts an account depends on: the shared store,
//! each account's access token and callback IP list.

use std::sync::Arc;

use crate::clock::Clock;
use crate::conversation::Conversations;
use crate::security::Allowlist;
use crate::server::{Probe, ProbeFuture};
use crate::store::Store;
use crate::token::TokenManager;

/// Readiness of an account's callback IP allowlist: WeChat's list must be loaded.
pub(super) struct AllowlistProbe {
    /// `callback_ips`, or `callback_ips:{account}` after the first account.
    pub(super) name: String,
    pub(super) allowlist: Arc<Allowlist>,
}

impl Probe for AllowlistProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> ProbeFuture<'_> {
        let count = self.allowlist.fetched_len();
        Box::pin(async move {
            if count > 0 {
                Ok(format!("{count} WeChat callback IP ranges"))
            } else {
                Err(
                    "WeChat's callback IP list is not loaded yet; pushes would be refused"
                        .to_owned(),
                )
            }
        })
    }
}

/// Readiness of the shared store: a PING (Redis) with the reason when it fails.
pub(super) struct StoreProbe(pub(super) Arc<dyn Store>);

impl Probe for StoreProbe {
    fn name(&self) -> &str {
        "store"
    }
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async { self.0.ping().await.map_err(|e| e.to_string()) })
    }
}

/// Readiness of the access token: usable now, when it was last refreshed,
/// and the last error.
pub(super) struct TokenProbe {
    /// `token`, or `token:{account}` for the accounts after the first.
    pub(super) name: String,
    pub(super) tokens: TokenManager,
    pub(super) clock: Arc<dyn Clock>,
}

impl Probe for TokenProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> ProbeFuture<'_> {
        let status = self.tokens.status();
        let now = self.clock.now_unix();
        let result = match status.expires_at {
            Some(at) if at > now => {
                let refreshed = status
                    .last_refresh
                    .map_or("never".to_owned(), |t| t.to_string());
                let mut s = format!("valid for {} s, last refresh at {refreshed}", at - now);
                if let Some(e) = status.last_error {
                    s.push_str(&format!("; last error: {e}"));
                }
                Ok(s)
            }
            _ => Err(status
                .last_error
                .unwrap_or_else(|| "no access token yet".to_owned())),
        };
        Box::pin(std::future::ready(result))
    }
}

/// A probe name: `what` for the first account, `what:{name}` for the others.
pub(super) fn suffixed(what: &str, index: usize, name: &str) -> String {
    if index == 0 {
        what.to_owned()
    } else {
        format!("{what}:{name}")
    }
}

/// The delivery strategy of an account's slow answers, as `/readyz` shows
/// it: always ready; the status names the strategy in force (and says when
/// a 48001 moved late sends to the next message).
pub(super) struct DeliveryProbe {
    /// `delivery`, or `delivery:{account}` after the first account.
    pub(super) name: String,
    pub(super) conversations: Arc<Conversations>,
}

impl Probe for DeliveryProbe {
    fn name(&self) -> &str {
        &self.name
    }
    fn check(&self) -> ProbeFuture<'_> {
        Box::pin(async move { Ok(self.conversations.describe().await) })
    }
}
