//! Access tokens: single flight, several nodes on one real Redis, proactive
//! refresh, errcode handling and dead lock holders, all against the local
//! fake WeChat (the running app's side is in `token_app`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use wxgate::clock::SystemClock;
use wxgate::platform::wechat_api::{
    CallError, ClientSettings, CustomMessage, ErrCode, RetryPolicy, TokenSource, TypingCommand,
    WechatApi, WechatClient, WechatError,
};
use wxgate::store::{MemoryStore, Namespace, RedisSettings, RedisStore, RedisTarget, Store};
use wxgate::token::{AccessToken, TokenError, TokenManager, TokenSettings};

use crate::support::fake_wechat::{APP_ID, APP_SECRET};
use crate::support::{FakeWechat, RedisServer};

const LOCK_KEY: &str = "wxgate:{wxfake0123456789}:access_token:lock";

fn client(fake: &FakeWechat, source: TokenSource) -> Arc<WechatClient> {
    Arc::new(
        WechatClient::new(ClientSettings {
            base_url: fake.base_url(),
            timeout: Duration::from_secs(2),
            app_id: APP_ID.into(),
            app_secret: wxgate::secret::Secret::new(APP_SECRET),
            token_source: source,
        })
        .unwrap(),
    )
}

fn redis_store(redis: &RedisServer) -> Arc<dyn Store> {
    Arc::new(
        RedisStore::open(&RedisSettings {
            target: RedisTarget::Single { url: redis.url() },
            tls_ca_file: None,
            timeout: Duration::from_millis(500),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_millis(500),
        })
        .unwrap(),
    )
}

/// One "node": its own HTTP client and token manager on a (shared) store.
fn node(
    fake: &FakeWechat,
    store: Arc<dyn Store>,
    source: TokenSource,
    margin: Duration,
) -> TokenManager {
    let mut settings = TokenSettings::new(margin, Duration::from_millis(2500));
    settings.backoff_base = Duration::from_millis(300);
    TokenManager::new(
        client(fake, source),
        store,
        &Namespace::for_app(APP_ID),
        Arc::new(SystemClock),
        settings,
    )
}

/// Runs `callers` concurrent `token()` calls on each node; returns the
/// tokens and the longest wait.
async fn burst(nodes: &[TokenManager], callers: usize) -> (Vec<AccessToken>, Duration) {
    let mut tasks = Vec::new();
    for n in nodes {
        for _ in 0..callers {
            let n = n.clone();
            tasks.push(tokio::spawn(async move {
                let started = Instant::now();
                let t = n.token().await.expect("every caller gets a token");
                (t.access_token, started.elapsed())
            }));
        }
    }
    let mut tokens = Vec::new();
    let mut max_wait = Duration::ZERO;
    for t in tasks {
        let (token, waited) = t.await.unwrap();
        tokens.push(token);
        max_wait = max_wait.max(waited);
    }
    (tokens, max_wait)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_callers_in_one_process_cause_one_fetch() {
    let fake = FakeWechat::start().await;
    fake.set_delay(Duration::from_millis(200));
    let n = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );

    let (tokens, max_wait) = burst(std::slice::from_ref(&n), 200).await;

    assert_eq!(fake.token_requests(), 1);
    assert!(tokens
        .iter()
        .all(|t| t.expose() == fake.current_token().unwrap()));
    println!(
        "single process: 200 callers, {} token fetch, max caller wait {max_wait:?}",
        fake.token_requests()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_sharing_redis_fetch_once_under_concurrent_demand() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    fake.set_delay(Duration::from_millis(200));
    let a = node(
        &fake,
        redis_store(&redis),
        TokenSource::Classic,
        Duration::from_secs(300),
    );
    let b = node(
        &fake,
        redis_store(&redis),
        TokenSource::Classic,
        Duration::from_secs(300),
    );

    let (tokens, max_wait) = burst(&[a.clone(), b.clone()], 100).await;

    let fetches = fake.token_requests();
    println!("multi-node: 2 nodes x 100 callers on one Redis, {fetches} token fetch(es), max caller wait {max_wait:?}");
    assert_eq!(fetches, 1, "the nodes must share one fetch");
    assert_eq!(a.status().fetches + b.status().fetches, 1);
    let first = &tokens[0];
    assert!(
        tokens.iter().all(|t| t == first),
        "all callers share one token"
    );
    // The classic endpoint invalidates on every fetch: the shared token is the latest.
    assert_eq!(first.expose(), fake.current_token().unwrap());
    // A second burst is served from the caches: no fetch, no waiting on WeChat.
    let (_, warm_wait) = burst(&[a, b], 100).await;
    assert_eq!(fake.token_requests(), 1);
    assert!(
        warm_wait < Duration::from_millis(200),
        "warm callers waited {warm_wait:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_refreshed_before_they_expire_across_two_nodes() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    // Four-second tokens from the classic endpoint (each fetch invalidates the
    // previous token after a short overlap), refreshed two seconds early.
    fake.set_lifetime(Duration::from_secs(4));
    let margin = Duration::from_secs(2);
    let a = node(&fake, redis_store(&redis), TokenSource::Classic, margin);
    let b = node(&fake, redis_store(&redis), TokenSource::Classic, margin);
    a.token().await.unwrap();
    let _ra = a.spawn_refresher();
    let _rb = b.spawn_refresher();

    // Callers on both nodes use their token against the fake for 9 s
    // (over two lifetimes); the fake refuses expired or superseded tokens.
    let started = Instant::now();
    let mut max_wait = Duration::ZERO;
    let mut calls = 0u32;
    let mut seen = std::collections::HashSet::new();
    while started.elapsed() < Duration::from_secs(9) {
        for n in [&a, &b] {
            let t0 = Instant::now();
            let token = n.token().await.unwrap().access_token;
            max_wait = max_wait.max(t0.elapsed());
            let ips = client(&fake, TokenSource::Classic)
                .callback_ips(&token)
                .await;
            assert!(
                ips.is_ok(),
                "a caller got a token WeChat refused: {:?}",
                ips.unwrap_err()
            );
            seen.insert(token.expose().to_owned());
            calls += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let fetches = fake.token_requests();
    println!(
        "proactive refresh: {calls} calls over 9 s, {} distinct tokens, {fetches} fetches by 2 nodes, max caller wait {max_wait:?}",
        seen.len()
    );
    assert!(
        seen.len() >= 3,
        "tokens were replaced before expiry ({} seen)",
        seen.len()
    );
    // One node refreshes for both: about one fetch per two seconds, not two.
    assert!(
        fetches <= 7,
        "{fetches} fetches: the nodes refreshed separately"
    );
    assert!(
        max_wait < Duration::from_millis(500),
        "callers waited {max_wait:?} during refreshes"
    );
}

#[tokio::test]
async fn an_expired_token_on_an_api_call_is_refreshed_once_and_the_call_retried() {
    let fake = FakeWechat::start().await;
    let tokens = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let api = WechatApi::new(client(&fake, TokenSource::Stable), tokens.clone());
    let stale = tokens.token().await.unwrap().access_token;
    fake.expire(stale.expose());

    api.send_custom(&CustomMessage::text("OPENID", "Hello World"))
        .await
        .unwrap();

    assert_eq!(
        fake.api_calls("custom/send"),
        2,
        "one refused call, one retry"
    );
    assert_eq!(fake.token_requests(), 2, "one refresh");
    assert_eq!(
        fake.forced_requests(),
        0,
        "an expired token needs no force_refresh"
    );
    assert_ne!(tokens.token().await.unwrap().access_token, stale);
}

#[tokio::test]
async fn a_refused_token_that_wechat_still_hands_out_is_force_refreshed() {
    let fake = FakeWechat::start().await;
    let tokens = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let api = WechatApi::new(client(&fake, TokenSource::Stable), tokens.clone());
    fake.fail_next_api_calls(&[40014]);

    api.typing("OPENID", TypingCommand::Typing).await.unwrap();

    assert_eq!(fake.api_calls("custom/typing"), 2);
    // Initial fetch, a plain one that returned the refused token, a forced one.
    assert_eq!((fake.token_requests(), fake.forced_requests()), (3, 1));
}

#[tokio::test]
async fn a_token_refused_twice_is_not_refreshed_in_a_loop() {
    let fake = FakeWechat::start().await;
    let tokens = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Classic,
        Duration::from_secs(300),
    );
    let api = WechatApi::new(client(&fake, TokenSource::Classic), tokens);
    fake.fail_next_api_calls(&[42001, 42001, 42001]);

    let err = api.callback_ips().await.unwrap_err();

    assert!(
        matches!(&err, CallError::Wechat(e) if e.code() == Some(ErrCode::AccessTokenExpired)),
        "{err}"
    );
    assert_eq!(fake.api_calls("getcallbackip"), 2, "one retry, no more");
    assert_eq!(fake.token_requests(), 2);
}

#[tokio::test]
async fn quota_exceeded_backs_off_with_a_clear_error_and_no_hot_loop() {
    let fake = FakeWechat::start().await;
    let tokens = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let api = WechatApi::new(client(&fake, TokenSource::Stable), tokens);

    // On an API call: one call, then the endpoint rests.
    fake.fail_next_api_calls(&[45009]);
    let err = api
        .send_custom(&CustomMessage::text("OPENID", "hi"))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("45009") && err.to_string().contains("quota"),
        "{err}"
    );
    for _ in 0..20 {
        let err = api
            .send_custom(&CustomMessage::text("OPENID", "hi"))
            .await
            .unwrap_err();
        assert!(matches!(err, CallError::CoolingDown { .. }), "{err}");
    }
    assert_eq!(
        fake.api_calls("custom/send"),
        1,
        "no call during the cool-down"
    );

    // On a token request: one request, then the manager backs off.
    let fresh = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let before = fake.token_requests();
    fake.fail_next_token_requests(&[45009]);
    let err = fresh.token().await.unwrap_err();
    assert!(err.to_string().contains("45009"), "{err}");
    for _ in 0..20 {
        let err = fresh.token().await.unwrap_err();
        assert!(matches!(err, TokenError::BackingOff { .. }), "{err}");
        assert!(err.to_string().contains("quota"), "{err}");
    }
    assert_eq!(
        fake.token_requests() - before,
        1,
        "no token request during the backoff"
    );
    assert!(fresh.status().last_error.unwrap().contains("45009"));
}

#[tokio::test]
async fn system_busy_is_retried_a_bounded_number_of_times_with_pauses() {
    let fake = FakeWechat::start().await;
    let tokens = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let policy = RetryPolicy {
        busy_retries: 2,
        busy_delay: Duration::from_millis(40),
        quota_cooldown: Duration::from_secs(60),
    };
    let api = WechatApi::new(client(&fake, TokenSource::Stable), tokens).with_policy(policy);
    fake.fail_next_api_calls(&[-1, -1, -1, -1]);

    let started = Instant::now();
    let err = api.callback_ips().await.unwrap_err();

    assert!(
        matches!(&err, CallError::Wechat(e) if e.code() == Some(ErrCode::SystemBusy)),
        "{err}"
    );
    assert_eq!(
        fake.api_calls("getcallbackip"),
        3,
        "the call and two retries"
    );
    // Two pauses of at least half of 40 ms and 80 ms (jitter halves at most).
    assert!(
        started.elapsed() >= Duration::from_millis(60),
        "{:?}",
        started.elapsed()
    );
    // The fourth scripted failure is still queued; the next call consumes it
    // and succeeds on its first retry.
    assert_eq!(api.callback_ips().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_host_outside_the_ip_whitelist_gets_an_error_naming_the_setting() {
    let fake = FakeWechat::start().await;
    let n = node(
        &fake,
        Arc::new(MemoryStore::new()),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    fake.fail_next_token_requests(&[40164]);
    let err = n.token().await.unwrap_err().to_string();
    assert!(
        err.contains("IP whitelist") && err.contains("40164") && err.contains("203.0.113.7"),
        "{err}"
    );
}

/// An account with the fake's app id and `secret`, its API the fake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_left_by_a_dead_node_delays_the_others_only_until_it_expires() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    let n = node(
        &fake,
        redis_store(&redis),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let lock_ttl = n.settings().lock_ttl;

    // A node took the lock and died before storing a token.
    let reply = redis.command(&[
        "SET",
        LOCK_KEY,
        "dead-node",
        "NX",
        "PX",
        &lock_ttl.as_millis().to_string(),
    ]);
    assert!(reply.starts_with("+OK"), "{reply}");
    let started = Instant::now();
    let token = n.token().await.unwrap();
    let waited = started.elapsed();

    assert_eq!(token.access_token.expose(), fake.current_token().unwrap());
    assert_eq!(fake.token_requests(), 1);
    assert!(
        waited >= lock_ttl - Duration::from_millis(100),
        "fetched under a live lock after {waited:?}"
    );
    assert!(
        waited < lock_ttl + Duration::from_secs(2),
        "waited {waited:?}"
    );
    println!("dead lock holder: other node waited {waited:?} (lock TTL {lock_ttl:?})");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dropped_mid_refresh_does_not_block_the_others_past_the_lock_ttl() {
    let redis = RedisServer::start();
    let fake = FakeWechat::start().await;
    // WeChat is slow: the first node is still fetching when it "dies".
    fake.set_delay(Duration::from_millis(1500));
    let a = node(
        &fake,
        redis_store(&redis),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let b = node(
        &fake,
        redis_store(&redis),
        TokenSource::Stable,
        Duration::from_secs(300),
    );
    let lock_ttl = a.settings().lock_ttl;

    let doomed = tokio::spawn(async move { a.token().await });
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis.command(&["EXISTS", LOCK_KEY]).contains(":1") {
        assert!(Instant::now() < deadline, "node A never took the lock");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lock_taken = Instant::now();
    // Mid-refresh means its request is at WeChat (on a loaded machine the
    // lock can be seen before the request is sent).
    while fake.token_requests() == 0 {
        assert!(Instant::now() < deadline, "node A never asked WeChat");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    doomed.abort();
    assert!(doomed.await.unwrap_err().is_cancelled());
    fake.set_delay(Duration::ZERO);

    let t = b.token().await.unwrap();
    let blocked = lock_taken.elapsed();

    assert!(!t.access_token.expose().is_empty());
    assert!(
        blocked < lock_ttl + Duration::from_secs(2),
        "B was blocked {blocked:?}"
    );
    // A's request reached WeChat before it died; B made its own.
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(b.status().fetches, 1);
    println!("node dropped mid-refresh: the other node had a token {blocked:?} after the lock was taken (TTL {lock_ttl:?})");
}

#[tokio::test]
async fn wechat_errors_never_carry_the_secret_or_the_token() {
    // Nothing listens on port 9 of loopback: a transport error whose
    // underlying message would include the URL (and its query).
    let c = WechatClient::new(ClientSettings {
        base_url: "http://127.0.0.1:9".into(),
        timeout: Duration::from_secs(1),
        app_id: APP_ID.into(),
        app_secret: wxgate::secret::Secret::new(APP_SECRET),
        token_source: TokenSource::Classic,
    })
    .unwrap();
    let err = c.classic_token().await.unwrap_err();
    assert!(
        matches!(
            err,
            WechatError::Transport { .. } | WechatError::Timeout { .. }
        ),
        "{err:?}"
    );
    let text = format!("{err} {err:?}");
    assert!(!text.contains(APP_SECRET), "{text}");
    let err = c
        .callback_ips(&AccessToken::new("SECRET_TOKEN_VALUE"))
        .await
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains("SECRET_TOKEN_VALUE"));
}
