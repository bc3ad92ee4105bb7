//! Delivery guarantees: retries, deadlines, overload, forged callers, shutdown, metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use wxgate::message::Reply;

use crate::support::responders::{RecordingLate, SlowResponder};
use crate::support::{content_of, text_reply, text_xml, TestApp, TestConfig, ACCOUNT};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn retries_are_handled_once_and_answered_identically() {
    let slow = SlowResponder::new(Duration::from_millis(400));
    let app = Arc::new(
        TestApp::builder()
            .config(TestConfig::fixture("safe").set("delivery.dedup_window_secs", 2))
            .now(NOW)
            .responder(slow.clone())
            .spawn()
            .await,
    );
    let xml = text_xml("retry me", NOW, 4242);
    let (query, body) = app.wechat.encrypted(&xml, NOW);

    // First delivery and a retry while it is in flight.
    let first = {
        let (app, q, b) = (app.clone(), query.clone(), body.clone());
        tokio::spawn(async move { app.post(&q, b).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, in_flight) = app.post(&query, body.clone()).await;
    let (status0, first) = first.await.unwrap();
    assert_eq!((status0, status), (200, 200));
    // Retry after completion: same answer, freshly encrypted.
    let (status, after) = app.post(&query, body.clone()).await;
    assert_eq!(status, 200);
    assert_ne!(after, first, "each answer is a fresh envelope");
    for answer in [&first, &in_flight, &after] {
        assert_eq!(content_of(answer), "slow:retry me");
    }
    assert_eq!(slow.calls(), 1, "three deliveries, one handling");

    // After the window: a new delivery is handled again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, late) = app.post(&query, body).await;
    assert_eq!((status, content_of(&late).as_str()), (200, "slow:retry me"));
    assert_eq!(slow.calls(), 2);

    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_dedup_hits_total{kind=\"in_flight\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_dedup_hits_total{kind=\"replayed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wxgate_requests_total{outcome=\"duplicate\",msg_type=\"text\",account=\"default\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn events_are_deduplicated_by_sender_time_and_event() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let event = |key: &str| {
        format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{NOW}</CreateTime><MsgType>event</MsgType><Event>CLICK</Event><EventKey>{key}</EventKey></xml>",
            ACCOUNT.original_id, ACCOUNT.openid
        )
    };
    app.post_plain(&event("A")).await;
    app.post_plain(&event("A")).await;
    app.post_plain(&event("B")).await;
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_dedup_hits_total{kind=\"replayed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wxgate_requests_total{outcome=\"replied\",msg_type=\"event\",account=\"default\"} 2"
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn slow_handler_is_cut_at_the_deadline_and_delivered_late() {
    let slow = SlowResponder::new(Duration::from_millis(1500));
    let late = Arc::new(RecordingLate::default());
    let config = TestConfig::fixture("safe")
        .set("delivery.deadline_ms", 300)
        .set("delivery.fallback_reply", text_reply("正在思考…"));
    let app = TestApp::builder()
        .config(config)
        .now(NOW)
        .responder(slow.clone())
        .late(late.clone())
        .spawn()
        .await;
    let started = Instant::now();
    let (status, body) = app.post_encrypted(&text_xml("think hard", NOW, 77)).await;
    let took = started.elapsed();
    assert_eq!(status, 200);
    assert_eq!(content_of(&body), "正在思考…");
    assert!(
        took < Duration::from_millis(1500),
        "answered before the handler finished ({took:?})"
    );
    // The eventual result is not lost: it reaches the late-delivery hook.
    let deadline = Instant::now() + Duration::from_secs(5);
    while late.0.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "late reply never delivered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delivered = late.0.lock().unwrap().clone();
    assert_eq!(
        delivered,
        vec![(
            ACCOUNT.openid.clone(),
            Reply::Text {
                content: "slow:think hard".into()
            }
        )]
    );
    // A retry gets the fallback that WeChat already saw, not a second handling.
    let (_, again) = app.post_encrypted(&text_xml("think hard", NOW, 77)).await;
    assert_eq!(content_of(&again), "正在思考…");
    assert_eq!(slow.calls(), 1);
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_deadline_fallbacks_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_late_results_total{kind=\"delivered\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn overload_is_answered_at_once_and_recovers() {
    let slow = SlowResponder::new(Duration::from_millis(800));
    let app = Arc::new(
        TestApp::builder()
            .config(
                TestConfig::fixture("safe")
                    .set("delivery.max_in_flight", 2)
                    .set("delivery.overload_reply", text_reply("客服稍等")),
            )
            .now(NOW)
            .responder(slow.clone())
            .spawn()
            .await,
    );
    let busy: Vec<_> = (0..2)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.post_encrypted(&text_xml("busy", NOW, 100 + i)).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let (status, body) = app
        .post_encrypted(&text_xml("one too many", NOW, 200))
        .await;
    assert_eq!(status, 200);
    assert_eq!(content_of(&body), "客服稍等");
    assert!(
        started.elapsed() < Duration::from_millis(600),
        "overload answered at once, not queued"
    );
    for task in busy {
        let (status, body) = task.await.unwrap();
        assert_eq!((status, content_of(&body).as_str()), (200, "slow:busy"));
    }
    // Load dropped: normal answers again.
    let (status, body) = app.post_encrypted(&text_xml("calm", NOW, 201)).await;
    assert_eq!((status, content_of(&body).as_str()), (200, "slow:calm"));
    assert!(app
        .metrics
        .render()
        .contains("wxgate_overload_replies_total 1"));
}

fn allowlist_config() -> TestConfig {
    TestConfig::fixture("plain")
        .set("security.trusted_proxies", vec!["127.0.0.1"])
        .set("security.ip_allowlist", "static")
        .set("security.extra_allowed_ips", vec!["203.0.113.0/24"])
}

#[tokio::test]
async fn forged_forwarding_headers_from_untrusted_peers_are_refused() {
    let app = TestApp::builder()
        .config(allowlist_config())
        .now(NOW)
        .spawn()
        .await;
    let xml = text_xml("hello wxgate", NOW, 1);
    let url = format!("{}{}", app.base, app.wechat.signed_query(NOW));

    // Through the trusted proxy (127.0.0.1) for an allowlisted client: accepted.
    let via_proxy = |xff: &'static str| {
        app.http
            .post(&url)
            .header("X-Forwarded-For", xff)
            .body(xml.clone())
            .send()
    };
    assert_eq!(via_proxy("203.0.113.5").await.unwrap().status(), 200);
    // Through the proxy for a client outside the list: refused.
    assert_eq!(via_proxy("198.51.100.1").await.unwrap().status(), 403);
    // The client forged an allowlisted hop on the left; the proxy appended the real one.
    assert_eq!(
        via_proxy("203.0.113.5, 198.51.100.1")
            .await
            .unwrap()
            .status(),
        403
    );
    let res = app
        .http
        .post(&url)
        .header("X-Real-IP", "203.0.113.9")
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "X-Real-IP from the trusted proxy");

    // A peer that is not a trusted proxy (127.0.0.2) forging the same headers: refused.
    let untrusted = reqwest::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .build()
        .unwrap();
    let res = untrusted
        .post(&url)
        .header("X-Forwarded-For", "203.0.113.5")
        .header("X-Real-IP", "203.0.113.5")
        .body(xml.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    assert!(app
        .metrics
        .render()
        .contains("wxgate_forbidden_ip_total{account=\"default\"} 3"));
}

#[tokio::test]
async fn shutdown_lets_every_accepted_request_finish() {
    let slow = SlowResponder::new(Duration::from_millis(600));
    let app = Arc::new(
        TestApp::builder()
            .mode("safe")
            .now(NOW)
            .responder(slow.clone())
            .spawn()
            .await,
    );
    let burst: Vec<_> = (0..20)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.post_encrypted(&text_xml("drain", NOW, 500 + i)).await })
        })
        .collect();
    // Let all 20 be accepted and in flight, then signal shutdown.
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.calls() < 20 {
        assert!(Instant::now() < deadline, "burst not accepted");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let task = app.stop();
    for request in burst {
        let (status, body) = request.await.unwrap();
        assert_eq!((status, content_of(&body).as_str()), (200, "slow:drain"));
    }
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("server stopped")
        .unwrap()
        .unwrap();
    // No new connections after shutdown.
    assert!(app
        .http
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .is_err());
}

#[tokio::test]
async fn metrics_endpoint_counts_outcomes_and_failures() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    app.post_encrypted(&text_xml("hello wxgate", NOW, 1)).await;
    let (query, body) = app.wechat.encrypted(&text_xml("x", NOW, 2), NOW);
    app.post(&query.replace("msg_signature=", "msg_signature=0"), body)
        .await;
    let (status, text) = app.get("/metrics").await;
    assert_eq!(status, 200);
    for needle in [
        "wxgate_requests_total{outcome=\"replied\",msg_type=\"text\",account=\"default\"} 1",
        "wxgate_requests_total{outcome=\"bad_signature\",msg_type=\"-\",account=\"default\"} 1",
        "wxgate_signature_failures_total{account=\"default\"} 1",
        "wxgate_request_duration_seconds_count{account=\"default\"} 1",
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}
