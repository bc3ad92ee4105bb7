//! A hung Redis (a real `redis-server`, SIGSTOPped) costs milliseconds, not
//! seconds: each command is bounded by `store.timeout_ms`, and after
//! `store.breaker_failures` consecutive failures the circuit breaker fails
//! every store operation at once, `/readyz` answers 503 while it is open,
//! and it closes by itself once Redis answers again.

use std::time::{Duration, Instant};

use crate::support::{text_xml, RedisServer, TestApp, TestConfig};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn a_stalled_redis_costs_milliseconds_and_readyz_says_so() {
    let redis = RedisServer::start();
    let config = TestConfig::fixture("plain")
        .redis(&redis.url())
        .set("store.timeout_ms", 100)
        .set("store.breaker_failures", 3)
        .set("store.breaker_cooldown_ms", 300);
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let (status, _) = app.post_plain(&text_xml("warm up", NOW, 1)).await;
    assert_eq!(status, 200);
    assert_eq!(app.get("/readyz").await.0, 200);

    redis.pause();
    let mut latencies = Vec::new();
    for i in 0..20u64 {
        let started = Instant::now();
        let (status, body) = app.post_plain(&text_xml("during", NOW, 100 + i)).await;
        latencies.push(started.elapsed());
        assert_eq!(status, 200, "answered while Redis hangs: {body}");
    }
    // A few requests pay the timeout until the breaker opens; every one is
    // bounded by it, none by Redis.
    assert!(
        latencies.iter().all(|l| *l < Duration::from_millis(600)),
        "{latencies:?}"
    );
    let fast = latencies.iter().filter(|l| **l < Duration::from_millis(50));
    assert!(fast.count() >= 14, "the breaker fails fast: {latencies:?}");
    let started = Instant::now();
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "readyz fast"
    );

    redis.resume();
    let mut ready = false;
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        if app.get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "the breaker closes by itself once Redis answers");
    let started = Instant::now();
    let (status, _) = app.post_plain(&text_xml("after", NOW, 999)).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < Duration::from_millis(100));
}
