//! A master, its replica and one Sentinel (real `redis-server`s started by
//! the harness), and a `SENTINEL FAILOVER` in the middle of a steady stream
//! of messages to two nodes: every message is answered 200 with a
//! well-formed reply, the store follows the new master by itself, a
//! message is handled twice only when docs/operations.md says it can be
//! (its first delivery fell in the failover or met a store error), and the
//! access token is still fetched once. And with the Sentinel gone the
//! nodes stay with the master they have; passwords for the master and for
//! the Sentinel are used, and a wrong one is reported without being shown.

use std::time::{Duration, Instant};

use wxgate::message::xml::parse_str;

use crate::support::fake_wechat::APP_ID;
use crate::support::responders::SlowResponder;
use crate::support::{
    eventually_async, text_xml, AccountSpec, FakeWechat, RedisSentinel, TestApp, TestConfig,
    ACCOUNT, SENTINEL_MASTER, SENTINEL_MASTER_PASSWORD,
};

const NOW: i64 = 1_750_000_000;
const MESSAGES: u64 = 200;

fn config(sentinel: &RedisSentinel, wechat: &FakeWechat) -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::official_api(&ACCOUNT.token))
        .token_api(wechat)
        .set("token.timeout_secs", 2)
        .set("store.backend", "redis")
        .set("store.sentinel.master_name", SENTINEL_MASTER)
        .set("store.sentinel.urls", vec![sentinel.sentinel_url()])
}

fn store_errors(apps: &[&TestApp]) -> u64 {
    apps.iter()
        .map(|app| {
            app.metrics
                .render()
                .lines()
                .filter(|l| l.starts_with("wxgate_store_errors_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// The reply is well-formed XML addressed back to the sender, answering
/// `text`.
fn well_formed(reply: &str, text: &str) {
    let xml = parse_str(reply).unwrap_or_else(|e| panic!("not XML ({e}): {reply}"));
    assert_eq!(xml.child_text("ToUserName"), Some(ACCOUNT.openid.as_str()));
    assert_eq!(
        xml.child_text("Content"),
        Some(format!("slow:{text}").as_str())
    );
}

#[tokio::test]
async fn a_sentinel_failover_under_a_message_stream_loses_no_answer() {
    let sentinel = RedisSentinel::start();
    let wechat = FakeWechat::start().await;
    let handler = SlowResponder::new(Duration::from_millis(2));
    let node = || {
        TestApp::builder()
            .config(config(&sentinel, &wechat))
            .now(NOW)
            .responder(handler.clone())
            .spawn()
    };
    let (a, b) = (node().await, node().await);
    assert_eq!(a.get("/readyz").await.0, 200);
    let (first_master, replica) = sentinel.ports();

    // Each message goes to one node, then WeChat's retry to the other.
    // From the failover until both nodes have left the old master (which
    // keeps accepting writes until the Sentinel demotes it, seconds later,
    // and then drops them), and when the store failed during its first
    // delivery, a message may be handled again: remember which.
    assert_eq!(
        sentinel.first_master_clients(),
        2,
        "one connection per node"
    );
    let mut excused = Vec::new();
    let mut failover: Option<(Instant, Option<Instant>)> = None;
    for i in 0..MESSAGES {
        if i == MESSAGES / 4 {
            sentinel.failover();
            failover = Some((Instant::now(), None));
        }
        if let Some((started, done @ None)) = &mut failover {
            if sentinel.promoted() && sentinel.first_master_clients() == 0 {
                *done = Some(Instant::now());
                println!(
                    "both nodes on the new master {:?} after the failover",
                    started.elapsed()
                );
            }
        }
        let in_failover = matches!(failover, Some((_, None)));
        let text = format!("stream {i}");
        let xml = text_xml(&text, NOW, 50_000 + i);
        let (first, retry) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let errors_before = store_errors(&[&a, &b]);
        let (status, reply) = first.post_plain(&xml).await;
        assert_eq!(status, 200, "{text}: {reply}");
        well_formed(&reply, &text);
        if in_failover || store_errors(&[&a, &b]) > errors_before {
            excused.push(text.clone());
        }
        let (status, reply) = retry.post_plain(&xml).await;
        assert_eq!(status, 200, "{text} retried: {reply}");
        well_formed(&reply, &text);
        // A steady stream, not a burst.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (_, done) = failover.expect("the failover was asked for");
    if done.is_none() {
        // A slow machine: the stream ended first. The nodes still leave the
        // old master by themselves, on their next operation.
        assert!(
            eventually_async(Duration::from_secs(20), || async {
                a.get("/readyz").await;
                b.get("/readyz").await;
                sentinel.promoted() && sentinel.first_master_clients() == 0
            })
            .await,
            "the nodes never left the old master"
        );
    }
    assert_eq!(sentinel.master_port(), replica, "the replica was promoted");
    assert_ne!(replica, first_master);

    let handled = handler.handled();
    println!(
        "{} of {MESSAGES} messages excused, {} handled twice",
        excused.len(),
        handled.len() - MESSAGES as usize
    );
    for i in 0..MESSAGES {
        let text = format!("stream {i}");
        let times = handled.iter().filter(|h| **h == text).count();
        assert!(times >= 1, "{text} never handled");
        assert!(
            times == 1 || excused.contains(&text),
            "{text} handled {times} times outside the failover"
        );
    }
    assert!(
        excused.len() < MESSAGES as usize / 2,
        "most messages are not excused: {excused:?}"
    );

    // The nodes write to the new master now: a new message and its retry
    // are handled once, the record on the promoted replica.
    let before = handler.calls();
    let xml = text_xml("after the failover", NOW, 99_999);
    let (status, reply) = a.post_plain(&xml).await;
    assert_eq!(status, 200);
    well_formed(&reply, "after the failover");
    let (_, reply) = b.post_plain(&xml).await;
    well_formed(&reply, "after the failover");
    assert_eq!(handler.calls(), before + 1);
    assert_eq!(a.get("/readyz").await.0, 200);
    assert_eq!(b.get("/readyz").await.0, 200);

    // The token survived the failover: a third node finds it on the new
    // master instead of fetching one.
    let token_key = format!("wxgate:{{{APP_ID}}}:access_token");
    assert!(sentinel
        .command(replica, &["EXISTS", &token_key])
        .contains(":1"));
    let c = node().await;
    assert_eq!(c.get("/readyz").await.0, 200);
    assert_eq!(wechat.token_requests(), 1, "the token was fetched once");
}

#[tokio::test]
async fn without_the_sentinel_the_nodes_stay_with_the_master_they_have() {
    let mut sentinel = RedisSentinel::start();
    let wechat = FakeWechat::start().await;
    let handler = SlowResponder::new(Duration::from_millis(2));
    let app = TestApp::builder()
        .config(config(&sentinel, &wechat))
        .now(NOW)
        .responder(handler.clone())
        .spawn()
        .await;
    assert_eq!(app.get("/readyz").await.0, 200);
    sentinel.stop_sentinel();
    // Long enough a stream for the master to be due for several rechecks
    // with the Sentinels (every second), each of which fails.
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(2500) {
        let text = format!("alone {i}");
        let (status, reply) = app.post_plain(&text_xml(&text, NOW, 60_000 + i)).await;
        assert_eq!(status, 200, "{reply}");
        well_formed(&reply, &text);
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(store_errors(&[&app]), 0, "every store operation succeeded");
    assert_eq!(handler.calls() as u64, i);
    assert_eq!(app.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn the_master_and_the_sentinel_passwords_are_used_and_never_shown() {
    let sentinel = RedisSentinel::start_with_passwords();
    let wechat = FakeWechat::start().await;
    let handler = SlowResponder::new(Duration::from_millis(2));
    let with = |password: &str| {
        config(&sentinel, &wechat).set("store.sentinel.password", password.to_owned())
    };
    let app = TestApp::builder()
        .config(with(SENTINEL_MASTER_PASSWORD))
        .now(NOW)
        .responder(handler.clone())
        .spawn()
        .await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, reply) = app.post_plain(&text_xml("with passwords", NOW, 1)).await;
    assert_eq!(status, 200);
    well_formed(&reply, "with passwords");
    let (master, _) = sentinel.ports();
    assert_ne!(sentinel.command(master, &["DBSIZE"]), ":0\r\n");

    let wrong = TestApp::builder()
        .config(with("not-the-password"))
        .now(NOW)
        .responder(handler.clone())
        .spawn()
        .await;
    let (status, body) = wrong.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    for secret in [
        SENTINEL_MASTER_PASSWORD,
        "not-the-password",
        "sentinel-secret-2",
    ] {
        assert!(!body.contains(secret), "{body}");
    }
}
