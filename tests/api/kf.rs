//! WeChat Customer Service (微信客服): notifications start pulls; every
//! customer message is answered exactly once through `kf/send_msg`, by one
//! node or several on one real Redis, and across a crash mid-pull.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::fake_wechat::{kf_event, kf_text, CORP_ID, KF_SECRET};
use crate::support::{
    eventually, kf_notification_xml, now_unix, AccountSpec, BinaryServer, CallbackClient,
    FakeWechat, RedisServer, TestApp, TestConfig,
};

const KF_TOKEN: &str = "kfCallbackToken";
const KF_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
const OPEN_KFID: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";

/// The Customer Service account's rule and default reply (echoing the text).
const RULES: &str = r#"
[[rules]]
match = { text = "价格" }
reply = { type = "text", content = "价格表见官网" }
[default_reply]
type = "text"
content = "收到：{content}"
"#;

/// A Customer Service account at `/kf` against the fake API, with a rule
/// and a default reply echoing the text.
fn kf_config(wechat: &FakeWechat) -> TestConfig {
    TestConfig::new()
        .add_account(
            AccountSpec::kf(KF_TOKEN, KF_KEY, CORP_ID, KF_SECRET)
                .name("service")
                .set("path", "/kf")
                .api(wechat)
                .set("kf.max_message_age_secs", 600)
                .set("kf.sync_limit", 1000)
                .set("kf.lock_ttl_secs", 5)
                .rules(RULES),
        )
        .source("kf.toml")
}

async fn spawn(config: TestConfig, now: i64) -> TestApp {
    TestApp::builder().config(config).now(now).spawn().await
}

/// The encrypted `kf_msg_or_event` push announcing new messages.
fn notification(wechat: &FakeWechat, now: i64) -> (String, String) {
    let token = wechat.kf_notification_token(OPEN_KFID);
    CallbackClient::kf(KF_TOKEN, KF_KEY, CORP_ID)
        .encrypted(&kf_notification_xml(&token, OPEN_KFID, now), now)
}

/// Sends a fresh notification to a server at `base`; the HTTP status.
async fn notify_binary(wechat: &FakeWechat, base: &str) -> u16 {
    let (query, body) = notification(wechat, now_unix());
    reqwest::Client::new()
        .post(format!("{base}{query}"))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Customer messages `first..=last`, sent `age` seconds before `now`.
fn customer_messages(first: u32, last: u32, now: i64, age: i64) -> Vec<Value> {
    (first..=last)
        .map(|i| {
            kf_text(
                &format!("from_msgid_{i:04}"),
                &format!("wm_customer_{}", i % 3),
                OPEN_KFID,
                now - age,
                &format!("问题{i}"),
            )
        })
        .collect()
}

/// How many times each customer message was answered (by the `收到：问题N` text).
fn answers(wechat: &FakeWechat) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for send in wechat.kf_sends() {
        let content = send["text"]["content"].as_str().unwrap_or_default();
        *counts.entry(content.to_owned()).or_insert(0) += 1;
    }
    counts
}

fn expect_each_once(wechat: &FakeWechat, first: u32, last: u32) {
    let counts = answers(wechat);
    for i in first..=last {
        let text = format!("收到：问题{i}");
        assert_eq!(counts.get(&text), Some(&1), "{text}: {counts:?}");
    }
    assert_eq!(
        counts.values().sum::<usize>(),
        (last - first + 1) as usize,
        "nothing else was sent: {counts:?}"
    );
}

#[tokio::test]
async fn a_notification_pulls_every_page_and_answers_each_customer_message() {
    let wechat = FakeWechat::start().await;
    let now = now_unix();
    wechat.set_kf_page_size(2);
    let mut messages = customer_messages(1, 5, now, 5);
    // A system event and a message from weeks of downtime are not answered.
    messages.push(kf_event(
        "from_msgid_event",
        "wm_customer_1",
        OPEN_KFID,
        now,
    ));
    messages.push(kf_text(
        "from_msgid_old",
        "wm_customer_2",
        OPEN_KFID,
        now - 3600,
        "旧问题",
    ));
    messages.push(kf_text(
        "from_msgid_price",
        "wm_customer_2",
        OPEN_KFID,
        now,
        "价格",
    ));
    wechat.kf_push(OPEN_KFID, messages);
    let app = spawn(kf_config(&wechat), now).await;

    let (query, body) = notification(&wechat, now);
    let (status, reply) = app.post(&query, body).await;
    assert_eq!((status, reply.as_str()), (200, ""), "acknowledged at once");

    assert!(
        eventually(Duration::from_secs(5), || wechat.kf_sends().len() >= 6).await,
        "answers: {:?}",
        wechat.kf_sends()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sends = wechat.kf_sends();
    assert_eq!(sends.len(), 6, "{sends:?}");
    for i in 1..=5u32 {
        let send = sends
            .iter()
            .find(|s| s["text"]["content"] == format!("收到：问题{i}"))
            .unwrap_or_else(|| panic!("问题{i} unanswered: {sends:?}"));
        assert_eq!(send["touser"], format!("wm_customer_{}", i % 3));
        assert_eq!(send["open_kfid"], OPEN_KFID);
        assert_eq!(send["msgtype"], "text");
        let id = send["msgid"].as_str().unwrap();
        assert!(id.len() <= 32, "{id}");
    }
    assert!(sends
        .iter()
        .any(|s| s["text"]["content"] == "价格表见官网" && s["touser"] == "wm_customer_2"));
    // Pages followed with the cursor of the page before, using the kf secret's token.
    let calls = wechat.kf_sync_calls();
    assert_eq!(calls.len(), 4, "8 messages, 2 a page: {calls:?}");
    assert_eq!(calls[0].0, None);
    assert!(calls[1..]
        .iter()
        .all(|(cursor, kfid)| cursor.is_some() && kfid == OPEN_KFID));
    let tokens = wechat.api_call_tokens("/cgi-bin/kf/sync_msg");
    assert!(!tokens.is_empty());
    for token in tokens {
        assert_eq!(wechat.token_secret(&token).as_deref(), Some(KF_SECRET));
    }
    // Each pull passed the notification's Token.
    assert!(wechat
        .kf_sync_requests()
        .iter()
        .all(|r| r["token"].as_str().is_some_and(|t| t.starts_with("ENC"))));

    // A later notification reads from the saved cursor: nothing is answered again.
    wechat.kf_push(OPEN_KFID, customer_messages(6, 6, now, 1));
    let (query, body) = notification(&wechat, now);
    assert_eq!(app.post(&query, body).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || wechat.kf_sends().len() == 7).await);
    let calls = wechat.kf_sync_calls();
    assert!(
        calls[4].0.is_some() && calls[4].0 != calls[3].0,
        "resumed from the last page's cursor: {calls:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(wechat.kf_sends().len(), 7);
    let metrics = app.metrics.render();
    for needle in [
        "wxgate_kf_messages_total{kind=\"answered\"} 7",
        "wxgate_kf_messages_total{kind=\"stale\"} 1",
        "wxgate_kf_messages_total{kind=\"not_customer\"} 1",
    ] {
        assert!(metrics.contains(needle), "{needle} in {metrics}");
    }
}

#[tokio::test]
async fn two_nodes_on_one_redis_answer_each_customer_message_once() {
    let redis = RedisServer::start();
    let wechat = FakeWechat::start().await;
    let now = now_unix();
    wechat.set_kf_page_size(3);
    wechat.kf_push(OPEN_KFID, customer_messages(1, 10, now, 2));
    let a = Arc::new(spawn(kf_config(&wechat).redis(&redis.url()), now).await);
    let b = Arc::new(spawn(kf_config(&wechat).redis(&redis.url()), now).await);

    // Both nodes hear of the messages at the same moment, and again while
    // they pull (as WeChat's retries and new messages would).
    for round in 0..3u32 {
        if round == 1 {
            wechat.kf_push(OPEN_KFID, customer_messages(11, 14, now, 1));
        }
        let mut sends = Vec::new();
        for node in [&a, &b] {
            let (query, body) = notification(&wechat, now);
            let node = Arc::clone(node);
            sends.push(tokio::spawn(async move { node.post(&query, body).await.0 }));
        }
        for s in sends {
            assert_eq!(s.await.unwrap(), 200);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        eventually(Duration::from_secs(10), || wechat.kf_sends().len() >= 14).await,
        "answers: {:?}",
        answers(&wechat)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    expect_each_once(&wechat, 1, 14);
}

#[tokio::test]
async fn a_node_killed_mid_pull_is_resumed_from_the_saved_cursor_after_a_restart() {
    let redis = RedisServer::start();
    let wechat = FakeWechat::start().await;
    let now = now_unix();
    wechat.set_kf_page_size(2);
    wechat.kf_push(OPEN_KFID, customer_messages(1, 6, now, 2));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kf.toml");
    kf_config(&wechat).redis(&redis.url()).write(&path);

    // The first node handles page 1, then hangs inside the call for page 2
    // and is killed there, as a crash would.
    wechat.hold_syncs_after(1);
    let first = BinaryServer::start(&path).await;
    assert_eq!(notify_binary(&wechat, &first.base).await, 200);
    assert!(
        eventually(Duration::from_secs(10), || wechat.kf_sends().len() == 2
            && wechat.kf_sync_calls().len() == 2)
        .await,
        "page 1 answered, page 2 requested: {:?} {:?}",
        wechat.kf_sends(),
        wechat.kf_sync_calls()
    );
    drop(first); // SIGKILL
    let page2_cursor = wechat.kf_sync_calls()[1].0.clone();
    assert!(page2_cursor.is_some());
    wechat.release_syncs();

    // A new node, on the same Redis, hears of the messages and takes over
    // once the dead node's lock has expired.
    let second = BinaryServer::start(&path).await;
    assert_eq!(notify_binary(&wechat, &second.base).await, 200);
    assert!(
        eventually(Duration::from_secs(15), || wechat.kf_sends().len() >= 6).await,
        "answers: {:?}",
        answers(&wechat)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    expect_each_once(&wechat, 1, 6);
    // The new node started where the first left off: the saved cursor, not the beginning.
    let calls = wechat.kf_sync_calls();
    assert_eq!(calls[2].0, page2_cursor, "{calls:?}");
}
