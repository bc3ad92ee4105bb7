//! The token manager: cache, single flight, cross-node lock, background refresh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::{AccessToken, FetchError, FetchErrorKind, IssuedToken, TokenError, TokenFetcher};
use crate::clock::Clock;
use crate::store::{Namespace, Store};

/// The background refresher wakes at least this often, so it notices a clock
/// that jumped and a token another node replaced early.
const MAX_IDLE: Duration = Duration::from_secs(60);
/// Shortest pause between two background refreshes.
const MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Longest pause between background attempts after failures.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(10);

/// How the manager refreshes and coordinates.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// Refresh this long before the token expires (but not in the first half of its life).
    pub refresh_margin: Duration,
    /// TTL of the cross-node refresh lock: how long a node that died while
    /// refreshing can block the others. Must exceed a fetch's timeout.
    pub lock_ttl: Duration,
    /// How often a node waiting for another node's refresh reads the store.
    pub poll_interval: Duration,
    /// Longest a caller waits for another node's refresh before giving up.
    pub max_wait: Duration,
    /// Pause after the first failed fetch; doubles with each failure.
    pub backoff_base: Duration,
    /// Longest pause between fetches (also the pause after a credentials error).
    pub backoff_max: Duration,
}

impl TokenSettings {
    /// Defaults around the two settings that matter.
    pub fn new(refresh_margin: Duration, lock_ttl: Duration) -> Self {
        TokenSettings {
            refresh_margin,
            lock_ttl,
            poll_interval: Duration::from_millis(25),
            // The holder may take the whole TTL; after it expires, this node
            // takes the lock and fetches itself, which takes less than a TTL.
            max_wait: lock_ttl * 2 + Duration::from_secs(1),
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
        }
    }
}

/// What the manager knows about its own health (readiness, logs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStatus {
    /// Expiry of the cached token (Unix seconds), if there is one.
    pub expires_at: Option<i64>,
    /// When this node last got a new token, fetched or read from the store.
    pub last_refresh: Option<i64>,
    /// The last failure, cleared by the next success.
    pub last_error: Option<String>,
    /// How many fetches this node made from the issuer.
    pub fetches: u64,
    /// How many refresh attempts of this node failed.
    pub failures: u64,
}

/// Hands out the account's access token; see the [module docs](super).
///
/// Cheap to clone (one `Arc`); clones share the cache.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    fetcher: Arc<dyn TokenFetcher>,
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: TokenSettings,
    token_key: String,
    /// The token's key as versions before hash tags spelled it: read when
    /// `token_key` is empty and written beside it, so the nodes of a rolling
    /// upgrade share one token (see `Namespace::legacy_key`).
    legacy_token_key: Option<String>,
    lock_key: String,
    /// This manager's lock value, so only it can release the lock it took.
    owner: String,
    /// std `Mutex`es: held only to copy a few fields, never across an await.
    cache: Mutex<Option<IssuedToken>>,
    health: Mutex<Health>,
    /// Single flight: at most one refresh per process at a time; callers that
    /// queue behind it usually find the cache filled when they get in.
    flight: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Health {
    status: TokenStatus,
    failures: u32,
    backoff_until: Option<Instant>,
}

/// What a refresh must produce.
enum Need {
    /// Any token that has not expired (a caller without a token).
    Usable,
    /// A token not yet due for refresh (the background refresher).
    NotDue,
    /// Any usable token but this one, which WeChat just refused.
    Replace(AccessToken),
}

impl Need {
    fn met_by(&self, token: &IssuedToken, now: i64, margin_secs: i64) -> bool {
        match self {
            Need::Usable => token.usable(now),
            Need::NotDue => now < token.refresh_at(margin_secs),
            Need::Replace(bad) => token.access_token != *bad && token.usable(now),
        }
    }
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("token_key", &self.inner.token_key)
            .field("store", &self.inner.store)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager for the account whose keys live in `namespace`.
    pub fn new(
        fetcher: Arc<dyn TokenFetcher>,
        store: Arc<dyn Store>,
        namespace: &Namespace,
        clock: Arc<dyn Clock>,
        settings: TokenSettings,
    ) -> Self {
        TokenManager {
            inner: Arc::new(Inner {
                fetcher,
                store,
                clock,
                settings,
                token_key: namespace.key("access_token"),
                legacy_token_key: namespace.legacy_key("access_token"),
                lock_key: namespace.key("access_token:lock"),
                owner: format!("{:032x}", rand::random::<u128>()),
                cache: Mutex::new(None),
                health: Mutex::new(Health::default()),
                flight: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The current token: from the cache when it is usable (the usual case,
    /// no I/O), else refreshed, from the store or from the issuer.
    pub async fn token(&self) -> Result<IssuedToken, TokenError> {
        if let Some(t) = self.cached() {
            if t.usable(self.now()) {
                return Ok(t);
            }
        }
        self.refresh(Need::Usable).await
    }

    /// Reports that WeChat refused `bad` (40001/40014/42001) and returns a
    /// different token. Concurrent reports of the same token cause one
    /// refresh; the issuer is asked to force a new token only when it hands
    /// back the refused one.
    pub async fn replace(&self, bad: &AccessToken) -> Result<IssuedToken, TokenError> {
        self.refresh(Need::Replace(bad.clone())).await
    }

    /// Refreshes when the token is due; what the background refresher runs.
    pub async fn refresh_if_due(&self) -> Result<IssuedToken, TokenError> {
        self.refresh(Need::NotDue).await
    }

    /// Health for readiness and logs.
    pub fn status(&self) -> TokenStatus {
        let mut status = lock(&self.inner.health).status.clone();
        status.expires_at = self.cached().map(|t| t.expires_at);
        status
    }

    /// The settings in force.
    pub fn settings(&self) -> &TokenSettings {
        &self.inner.settings
    }

    /// Starts the background refresher; it stops when the guard is dropped.
    pub fn spawn_refresher(&self) -> RefresherGuard {
        let manager = self.clone();
        RefresherGuard(tokio::spawn(async move { manager.run_refresher().await }))
    }

    async fn run_refresher(self) {
        let mut failures = 0u32;
        loop {
            // At least MIN_INTERVAL between refreshes, whatever lifetime the
            // issuer reports: a token handed out with a second to live must
            // not turn this loop into a hot one.
            let wait = match self.cached() {
                Some(_) => self.until_due().max(MIN_INTERVAL),
                None => Duration::ZERO,
            };
            tokio::time::sleep(wait).await;
            match self.refresh_if_due().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    // Already logged where it happened.
                    failures = failures.saturating_add(1);
                    let delay = match e {
                        TokenError::BackingOff { remaining, .. } => remaining,
                        _ => jitter(exponential(
                            Duration::from_secs(1),
                            failures,
                            MAX_RETRY_DELAY,
                        )),
                    };
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    fn until_due(&self) -> Duration {
        let margin = self.margin_secs();
        let secs = self
            .cached()
            .map_or(0, |t| (t.refresh_at(margin) - self.now()).max(0));
        Duration::from_secs(secs.unsigned_abs()).min(MAX_IDLE)
    }

    async fn refresh(&self, need: Need) -> Result<IssuedToken, TokenError> {
        let started = Instant::now();
        let _flight = self.inner.flight.lock().await;
        if let Some(t) = self.cached() {
            if need.met_by(&t, self.now(), self.margin_secs()) {
                return Ok(t);
            }
        }
        self.check_backoff()?;
        let result = self.refresh_shared(&need, started).await;
        match &result {
            Ok(t) => self.adopt(t),
            Err(e) => self.note_failure(e),
        }
        result
    }

    /// Gets a token that meets `need` from the store, or fetches one holding
    /// the cross-node lock, or waits for the node that holds it.
    async fn refresh_shared(
        &self,
        need: &Need,
        started: Instant,
    ) -> Result<IssuedToken, TokenError> {
        let inner = &self.inner;
        let deadline = started + inner.settings.max_wait;
        loop {
            if let Some(t) = self.load(need).await? {
                return Ok(t);
            }
            if inner
                .store
                .set_nx(
                    &inner.lock_key,
                    inner.owner.as_bytes(),
                    inner.settings.lock_ttl,
                )
                .await?
            {
                let result = self.refresh_locked(need).await;
                if let Err(e) = inner
                    .store
                    .compare_and_delete(&inner.lock_key, inner.owner.as_bytes())
                    .await
                {
                    tracing::warn!(error = %e, "cannot release the access token lock; it expires by itself");
                }
                return result;
            }
            if Instant::now() >= deadline {
                return Err(TokenError::WaitTimedOut {
                    waited: started.elapsed(),
                });
            }
            tokio::time::sleep(inner.settings.poll_interval).await;
        }
    }

    async fn refresh_locked(&self, need: &Need) -> Result<IssuedToken, TokenError> {
        // Another node may have stored a token between our read and our lock.
        if let Some(t) = self.load(need).await? {
            return Ok(t);
        }
        let now = self.now();
        let mut fetched = self.fetch(false).await?;
        if let Need::Replace(bad) = need {
            if fetched.access_token == *bad {
                tracing::info!(
                    "the issuer handed back the refused access token; forcing a new one"
                );
                fetched = self.fetch(true).await?;
            }
        }
        // Life counted from before the request: errs on the early side.
        let issued = IssuedToken {
            access_token: fetched.access_token,
            fetched_at: now,
            expires_at: now + i64::try_from(fetched.expires_in.as_secs()).unwrap_or(i64::MAX / 2),
        };
        let inner = &self.inner;
        if let Err(e) = inner
            .store
            .set(&inner.token_key, &issued.encode(), Some(fetched.expires_in))
            .await
        {
            // This node can still use it; the others will fetch their own.
            tracing::warn!(error = %e, "fetched an access token but cannot share it");
        } else if let Some(legacy) = &inner.legacy_token_key {
            if let Err(e) = inner
                .store
                .set(legacy, &issued.encode(), Some(fetched.expires_in))
                .await
            {
                tracing::warn!(error = %e, "cannot write the access token under its older key");
            }
        }
        tracing::info!(
            expires_in = fetched.expires_in.as_secs(),
            "access token refreshed"
        );
        Ok(issued)
    }

    async fn fetch(&self, force_refresh: bool) -> Result<super::FetchedToken, TokenError> {
        lock(&self.inner.health).status.fetches += 1;
        let fetched = self
            .inner
            .fetcher
            .fetch(force_refresh)
            .await
            .map_err(TokenError::Fetch)?;
        if fetched.expires_in < Duration::from_secs(1) {
            return Err(TokenError::Fetch(FetchError::new(
                FetchErrorKind::Unavailable,
                format!(
                    "the issuer returned a token that expires in {:?}",
                    fetched.expires_in
                ),
            )));
        }
        Ok(fetched)
    }

    /// The stored token when it meets `need`.
    async fn load(&self, need: &Need) -> Result<Option<IssuedToken>, TokenError> {
        let inner = &self.inner;
        let mut stored = inner.store.get(&inner.token_key).await?;
        if let (None, Some(legacy)) = (&stored, &inner.legacy_token_key) {
            // Left by a node of an older version, which spelled keys
            // without hash tags.
            stored = inner.store.get(legacy).await?;
        }
        let Some(bytes) = stored else {
            return Ok(None);
        };
        let Some(token) = IssuedToken::decode(&bytes) else {
            tracing::warn!(key = %self.inner.token_key, "ignoring an unreadable stored access token");
            return Ok(None);
        };
        Ok(need
            .met_by(&token, self.now(), self.margin_secs())
            .then_some(token))
    }

    fn adopt(&self, token: &IssuedToken) {
        let changed = {
            let mut cache = lock(&self.inner.cache);
            let changed = cache.as_ref() != Some(token);
            *cache = Some(token.clone());
            changed
        };
        let mut health = lock(&self.inner.health);
        if changed {
            health.status.last_refresh = Some(self.now());
        }
        health.status.last_error = None;
        health.failures = 0;
        health.backoff_until = None;
    }

    fn note_failure(&self, error: &TokenError) {
        let settings = &self.inner.settings;
        let mut health = lock(&self.inner.health);
        health.status.last_error = Some(error.to_string());
        health.status.failures += 1;
        // Pause before the next attempt, so callers queued behind this one
        // (and the next burst) get the error at once instead of each waiting
        // for its own timeout. Fetch failures escalate (the issuer is
        // throttling or refusing us); store failures keep a short pause so
        // the manager recovers quickly when the store is back.
        let pause = match error {
            TokenError::Fetch(e) => {
                health.failures = health.failures.saturating_add(1);
                match e.kind() {
                    FetchErrorKind::Credentials | FetchErrorKind::NotAllowed => {
                        settings.backoff_max
                    }
                    _ => exponential(settings.backoff_base, health.failures, settings.backoff_max),
                }
            }
            _ => settings.backoff_base,
        };
        let pause = jitter(pause);
        health.backoff_until = Some(Instant::now() + pause);
        tracing::warn!(error = %error, backoff_ms = pause.as_millis() as u64, "access token refresh failed");
    }

    fn check_backoff(&self) -> Result<(), TokenError> {
        let health = lock(&self.inner.health);
        match health.backoff_until {
            Some(until) if Instant::now() < until => Err(TokenError::BackingOff {
                remaining: until - Instant::now(),
                last_error: health.status.last_error.clone().unwrap_or_default(),
            }),
            _ => Ok(()),
        }
    }

    fn cached(&self) -> Option<IssuedToken> {
        lock(&self.inner.cache).clone()
    }

    fn now(&self) -> i64 {
        self.inner.clock.now_unix()
    }

    fn margin_secs(&self) -> i64 {
        i64::try_from(self.inner.settings.refresh_margin.as_secs()).unwrap_or(i64::MAX / 2)
    }
}

/// Stops the background refresher when dropped.
#[derive(Debug)]
pub struct RefresherGuard(JoinHandle<()>);

impl Drop for RefresherGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every critical section only copies or assigns fields: a panic inside
    // one cannot leave the data inconsistent, so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `base * 2^(failures-1)`, capped.
fn exponential(base: Duration, failures: u32, max: Duration) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
    base.saturating_mul(factor).min(max)
}

/// Somewhere between half and all of `d`, so nodes that failed together do
/// not all retry in the same instant.
fn jitter(d: Duration) -> Duration {
    d.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
}

#[cfg(test)]
mod tests;
