//! Several nodes on one real Redis: retries deduplicated across nodes, and
//! the callback IP allowlist filled from (a fake of) WeChat's API.

use std::sync::Arc;
use std::time::Duration;

use crate::support::fake_wechat::APP_ID;
use crate::support::responders::{CountingRule, SlowResponder};
use crate::support::{
    concurrent_pushes, content_of, text_xml, AccountSpec, CallbackClient, FakeWechat, RedisServer,
    TestApp, TestConfig,
};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn two_nodes_on_one_redis_handle_each_message_once() {
    let redis = RedisServer::start();
    // One responder behind both nodes, so its call count spans the cluster.
    let slow = SlowResponder::new(Duration::from_millis(300));
    let node = |responder: Arc<SlowResponder>| {
        TestApp::builder()
            .config(TestConfig::fixture("safe").redis(&redis.url()))
            .now(NOW)
            .responder(responder)
            .spawn()
    };
    let a = Arc::new(node(slow.clone()).await);
    let b = Arc::new(node(slow.clone()).await);

    let wechat = CallbackClient::fixture("safe");
    for round in 0..5u64 {
        let (query, body) = wechat.encrypted(
            &text_xml(&format!("cluster {round}"), NOW, 9000 + round),
            NOW,
        );
        // WeChat's retries land on different nodes, concurrently.
        let nodes = [a.clone(), b.clone(), a.clone(), b.clone()];
        for (status, reply) in concurrent_pushes(&nodes, &query, &body).await {
            assert_eq!(status, 200);
            assert_eq!(content_of(&reply), format!("slow:cluster {round}"));
        }
        // And one more, later, on the other node.
        let (_, reply) = b.post(&query, body).await;
        assert_eq!(content_of(&reply), format!("slow:cluster {round}"));
    }
    assert_eq!(
        slow.calls(),
        5,
        "five messages, each delivered five times over two nodes, handled once each"
    );
    let hits = |m: &str| {
        m.lines()
            .filter(|l| l.starts_with("wxgate_dedup_hits_total"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum::<u64>()
    };
    assert_eq!(hits(&a.metrics.render()) + hits(&b.metrics.render()), 20);
}

#[tokio::test]
async fn a_rules_answer_is_recorded_beside_the_reply_and_a_retry_right_after_it_is_a_duplicate() {
    let redis = RedisServer::start();
    let rule = Arc::new(CountingRule::default());
    let node = || {
        TestApp::builder()
            .config(TestConfig::fixture("safe").redis(&redis.url()))
            .now(NOW)
            .responder(rule.clone())
            .spawn()
    };
    let (a, b) = (node().await, node().await);
    let wechat = CallbackClient::fixture("safe");
    for round in 0..20u64 {
        let (query, body) =
            wechat.encrypted(&text_xml(&format!("quick {round}"), NOW, 7000 + round), NOW);
        let (status, first) = a.post(&query, body.clone()).await;
        assert_eq!(status, 200);
        // At once, on the other node: the record may still be on its way.
        let (status, again) = b.post(&query, body).await;
        assert_eq!(status, 200);
        assert_eq!(content_of(&first), format!("rule:quick {round}"));
        assert_eq!(content_of(&again), content_of(&first));
    }
    assert_eq!(rule.calls(), 20, "each message answered by the rule once");
}

#[tokio::test]
async fn wechat_callback_ip_allowlist_is_fetched_and_enforced() {
    let fake = FakeWechat::start().await;
    let redis = RedisServer::start();
    let config = TestConfig::new()
        .account(AccountSpec::official_api("abc"))
        .token_api(&fake)
        .set("token.timeout_secs", 2)
        .redis(&redis.url())
        .set("security.ip_allowlist", "wechat");
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    // The fake publishes 127.0.0.1, 127.0.0.2 and 101.226.103.0/25.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (status, body) = app.get("/readyz").await;
        if status == 200 {
            assert!(body.contains("callback_ips"), "{body}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "allowlist never loaded: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let url = format!("{}{}", app.base, app.wechat.verify_query(NOW, "ok"));
    assert_eq!(
        reqwest::get(&url).await.unwrap().status(),
        200,
        "127.0.0.1 is a WeChat address here"
    );
    let outsider = reqwest::Client::builder()
        .local_address(Some("127.0.0.3".parse().unwrap()))
        .build()
        .unwrap();
    assert_eq!(outsider.get(&url).send().await.unwrap().status(), 403);
    // The list is shared through the store for nodes that cannot reach WeChat.
    let stored = redis.command(&["GET", &format!("wxgate:{{{APP_ID}}}:callback_ips")]);
    assert!(stored.contains("101.226.103.0/25"), "{stored}");
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("wxgate_token_refreshes_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_forbidden_ip_total{account=\"default\"} 1"),
        "{metrics}"
    );
}
