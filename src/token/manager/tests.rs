//! Manager logic against an in-memory store and a scripted fetcher, on
//! tokio's paused clock (so waits and expiries are exact and instant).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;
use crate::store::MemoryStore;
use crate::token::{FetchFuture, FetchedToken};

/// Unix time that advances with tokio's (paused) clock.
#[derive(Debug)]
struct TokioClock {
    base: i64,
    start: Instant,
}

impl TokioClock {
    fn new() -> Arc<Self> {
        Arc::new(TokioClock {
            base: 1_700_000_000,
            start: Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now_unix(&self) -> i64 {
        self.base + self.start.elapsed().as_secs() as i64
    }
}

/// Hands out `T1`, `T2`, … after `delay`, or the scripted failures first.
#[derive(Default)]
struct Scripted {
    calls: AtomicU64,
    forced: AtomicU64,
    failures: Mutex<VecDeque<FetchErrorKind>>,
    /// Answer the same token again (like the stable endpoint without force).
    sticky: bool,
    lifetime: Duration,
    delay: Duration,
}

impl Scripted {
    fn new(lifetime_secs: u64) -> Arc<Self> {
        Arc::new(Scripted {
            lifetime: Duration::from_secs(lifetime_secs),
            delay: Duration::from_millis(100),
            ..Default::default()
        })
    }
    fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl TokenFetcher for Scripted {
    fn fetch(&self, force_refresh: bool) -> FetchFuture<'_> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            if force_refresh {
                self.forced.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(self.delay).await;
            if let Some(kind) = self.failures.lock().unwrap().pop_front() {
                return Err(FetchError::new(kind, format!("scripted failure {kind:?}")));
            }
            let name = if self.sticky && !force_refresh {
                "T1".to_owned()
            } else {
                format!("T{n}")
            };
            Ok(FetchedToken {
                access_token: AccessToken::new(name),
                expires_in: self.lifetime,
            })
        })
    }
}

fn manager(
    fetcher: Arc<Scripted>,
    store: Arc<MemoryStore>,
    clock: Arc<TokioClock>,
) -> TokenManager {
    let mut settings = TokenSettings::new(Duration::from_secs(300), Duration::from_secs(2));
    settings.backoff_base = Duration::from_secs(2);
    TokenManager::new(
        fetcher,
        store,
        &Namespace::for_app("wxtest"),
        clock,
        settings,
    )
}

#[tokio::test(start_paused = true)]
async fn concurrent_callers_share_one_fetch() {
    let fetcher = Scripted::new(7200);
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let m = m.clone();
            tokio::spawn(async move { m.token().await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap().access_token.expose(), "T1");
    }
    assert_eq!(fetcher.calls(), 1);
    assert_eq!(m.status().fetches, 1);
}

#[tokio::test(start_paused = true)]
async fn a_token_an_older_version_stored_is_adopted_and_then_kept_under_both_keys() {
    // A node of a version before hash tags left its token under the old key.
    let store = Arc::new(MemoryStore::new());
    let clock = TokioClock::new();
    let old = IssuedToken {
        access_token: AccessToken::new("OLD"),
        fetched_at: clock.now_unix(),
        expires_at: clock.now_unix() + 7200,
    };
    store
        .set("wxgate:wxtest:access_token", &old.encode(), None)
        .await
        .unwrap();
    let fetcher = Scripted::new(7200);
    let m = manager(fetcher.clone(), store.clone(), clock.clone());
    assert_eq!(m.token().await.unwrap().access_token.expose(), "OLD");
    assert_eq!(fetcher.calls(), 0, "adopted, not fetched");

    // A refresh writes both spellings, so the older nodes find it too.
    let fresh = manager(fetcher.clone(), Arc::new(MemoryStore::new()), clock);
    let t = fresh.token().await.unwrap();
    let store = &fresh.inner.store;
    for key in ["wxgate:{wxtest}:access_token", "wxgate:wxtest:access_token"] {
        let stored = store.get(key).await.unwrap().expect(key);
        assert_eq!(IssuedToken::decode(&stored), Some(t.clone()), "{key}");
    }
}

#[tokio::test(start_paused = true)]
async fn two_managers_on_one_store_fetch_once() {
    let fetcher = Scripted::new(7200);
    let store = Arc::new(MemoryStore::new());
    let clock = TokioClock::new();
    let a = manager(fetcher.clone(), store.clone(), clock.clone());
    let b = manager(fetcher.clone(), store, clock);
    let (ta, tb) = tokio::join!(a.token(), b.token());
    assert_eq!(ta.unwrap().access_token, tb.unwrap().access_token);
    assert_eq!(fetcher.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn refresh_happens_margin_before_expiry_and_not_before() {
    let fetcher = Scripted::new(7200);
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let first = m.token().await.unwrap();
    m.refresh_if_due().await.unwrap();
    assert_eq!(fetcher.calls(), 1, "not due yet");
    tokio::time::advance(Duration::from_secs(6901)).await;
    let second = m.refresh_if_due().await.unwrap();
    assert_eq!(fetcher.calls(), 2);
    assert_ne!(first.access_token, second.access_token);
    assert!(second.expires_at > first.expires_at);
}

#[tokio::test(start_paused = true)]
async fn background_refresher_replaces_the_token_before_it_expires() {
    let fetcher = Scripted::new(7200);
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let first = m.token().await.unwrap();
    let _guard = m.spawn_refresher();
    // Sample the token every 10 s across three lifetimes: it is never expired.
    for _ in 0..(3 * 7200 / 10) {
        tokio::time::advance(Duration::from_secs(10)).await;
        tokio::task::yield_now().await;
        let now = m.inner.clock.now_unix();
        let t = m.token().await.unwrap();
        assert!(t.expires_at - now > 0, "token expired at {now}");
    }
    assert!(
        (3..=5).contains(&fetcher.calls()),
        "{} fetches",
        fetcher.calls()
    );
    assert_ne!(m.token().await.unwrap().access_token, first.access_token);
}

#[tokio::test(start_paused = true)]
async fn a_refused_token_is_replaced_once_for_many_reporters() {
    let fetcher = Scripted::new(7200);
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let bad = m.token().await.unwrap().access_token;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (m, bad) = (m.clone(), bad.clone());
            tokio::spawn(async move { m.replace(&bad).await })
        })
        .collect();
    for t in tasks {
        assert_ne!(t.await.unwrap().unwrap().access_token, bad);
    }
    assert_eq!(fetcher.calls(), 2);
    assert_eq!(fetcher.forced.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn force_refresh_only_when_the_issuer_hands_back_the_refused_token() {
    let fetcher = Arc::new(Scripted {
        sticky: true,
        lifetime: Duration::from_secs(7200),
        ..Default::default()
    });
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let bad = m.token().await.unwrap().access_token;
    assert_eq!(fetcher.forced.load(Ordering::SeqCst), 0);
    let fresh = m.replace(&bad).await.unwrap();
    assert_ne!(fresh.access_token, bad);
    assert_eq!(
        (fetcher.calls(), fetcher.forced.load(Ordering::SeqCst)),
        (3, 1)
    );
}

#[tokio::test(start_paused = true)]
async fn throttling_backs_off_instead_of_looping() {
    let fetcher = Scripted::new(7200);
    fetcher
        .failures
        .lock()
        .unwrap()
        .extend([FetchErrorKind::Throttled]);
    let m = manager(
        fetcher.clone(),
        Arc::new(MemoryStore::new()),
        TokioClock::new(),
    );
    let err = m.token().await.unwrap_err();
    assert!(
        matches!(err, TokenError::Fetch(ref e) if e.kind() == FetchErrorKind::Throttled),
        "{err}"
    );
    for _ in 0..50 {
        let err = m.token().await.unwrap_err();
        assert!(matches!(err, TokenError::BackingOff { .. }), "{err}");
        assert!(err.to_string().contains("scripted failure"), "{err}");
    }
    assert_eq!(fetcher.calls(), 1, "no call during the backoff");
    assert!(m.status().last_error.is_some());
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(m.token().await.is_ok());
    assert_eq!(fetcher.calls(), 2);
    assert_eq!(m.status().last_error, None);
}

#[tokio::test(start_paused = true)]
async fn a_credentials_error_is_a_config_error() {
    let fetcher = Scripted::new(7200);
    fetcher
        .failures
        .lock()
        .unwrap()
        .extend([FetchErrorKind::Credentials]);
    let m = manager(fetcher, Arc::new(MemoryStore::new()), TokioClock::new());
    assert!(m.token().await.unwrap_err().is_config());
}

#[tokio::test(start_paused = true)]
async fn a_lock_left_by_a_dead_node_delays_by_at_most_its_ttl() {
    let fetcher = Scripted::new(7200);
    let store = Arc::new(MemoryStore::new());
    let m = manager(fetcher.clone(), store.clone(), TokioClock::new());
    let lock_ttl = m.settings().lock_ttl;
    assert!(store
        .set_nx("wxgate:{wxtest}:access_token:lock", b"dead-node", lock_ttl)
        .await
        .unwrap());
    let started = Instant::now();
    let t = m.token().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(t.access_token.expose(), "T1");
    assert!(
        waited >= lock_ttl,
        "fetched while the lock was held ({waited:?})"
    );
    assert!(
        waited <= lock_ttl + Duration::from_millis(500),
        "waited {waited:?}"
    );
    assert_eq!(fetcher.calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn waiting_for_a_stuck_refresh_gives_up_with_a_clear_error() {
    let fetcher = Scripted::new(7200);
    let store = Arc::new(MemoryStore::new());
    let m = manager(fetcher.clone(), store.clone(), TokioClock::new());
    // A lock that never expires: nobody else will ever store a token.
    store
        .set("wxgate:{wxtest}:access_token:lock", b"stuck", None)
        .await
        .unwrap();
    let err = m.token().await.unwrap_err();
    assert!(matches!(err, TokenError::WaitTimedOut { .. }), "{err}");
    assert_eq!(fetcher.calls(), 0);
}

#[test]
fn exponential_backoff_is_capped() {
    let s = Duration::from_secs(1);
    let max = Duration::from_secs(60);
    let steps: Vec<_> = (1..=8).map(|f| exponential(s, f, max).as_secs()).collect();
    assert_eq!(steps, [1, 2, 4, 8, 16, 32, 60, 60]);
    assert_eq!(exponential(s, u32::MAX, max), max);
}
