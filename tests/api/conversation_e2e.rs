//! Conversations through the real server: the fake WeChat API, fake
//! upstreams, a real `redis-server` shared by two nodes, and the real
//! binary stopped mid-call and started again.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use toml::Table;

use crate::support::{
    agent_config, eventually, eventually_async, openai_upstream, plain_content, table, text_xml,
    webhook_upstream, AccountSpec, Behaviour, BinaryServer, CallbackClient, FakeUpstream,
    FakeWechat, RedisServer, TestApp, TestConfig, ACCOUNT, AGENT_RULES, INTERIM,
};

fn openai(upstream: &FakeUpstream) -> Table {
    let extra = table([("history_turns", 5.into()), ("timeout_ms", 10_000.into())]);
    openai_upstream(upstream, extra)
}

fn webhook(upstream: &FakeUpstream) -> Table {
    webhook_upstream(upstream, table([("timeout_ms", 10_000.into())]))
}

fn unix_now() -> i64 {
    crate::support::now_unix()
}

#[tokio::test]
async fn a_refused_send_permission_flips_the_account_to_the_next_message() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_delay(Duration::from_millis(800));
    // An unverified account: custom send answers 48001.
    wechat.fail_next_sends(&[48001]);
    let app = TestApp::builder()
        .config(agent_config(&wechat, openai(&llm)))
        .spawn()
        .await;
    let (_, ready) = app.get("/readyz").await;
    let ready: Value = serde_json::from_str(&ready).unwrap();
    assert_eq!(
        ready["checks"]["delivery"]["status"], "late_send",
        "{ready}"
    );

    let (status, body) = app.post_plain(&text_xml("第一个问题", app.now(), 1)).await;
    assert_eq!(status, 200);
    assert_eq!(plain_content(&body), INTERIM);
    assert!(
        eventually_async(Duration::from_secs(5), || async {
            let (_, ready) = app.get("/readyz").await;
            ready.contains("next_message")
        })
        .await,
        "the refusal is remembered and shown"
    );
    assert!(wechat.sent_texts().is_empty(), "nothing got through");
    // The next message carries the kept answer, then its own.
    let (_, body) = app.post_plain(&text_xml("菜单", app.now(), 2)).await;
    assert_eq!(plain_content(&body), "answer 1: 第一个问题\n\nstatic menu");
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_agent_failures_total{kind=\"send_48001\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn two_nodes_on_one_redis_answer_one_users_turns_in_order_with_full_history() {
    let redis = RedisServer::start();
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_slow_prefix("slow", Duration::from_millis(1500));
    llm.set_chat_delay(Duration::from_millis(50));
    let node = || async {
        TestApp::builder()
            .config(agent_config(&wechat, openai(&llm)).redis(&redis.url()))
            .spawn()
            .await
    };
    let (a, b) = (node().await, node().await);
    let first = {
        let xml = text_xml("slow first", a.now(), 11);
        let a = &a;
        async move { a.post_plain(&xml).await }
    };
    let second = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        b.post_plain(&text_xml("fast second", b.now(), 12)).await
    };
    let ((s1, b1), (s2, b2)) = tokio::join!(first, second);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(plain_content(&b1), INTERIM);
    assert_eq!(plain_content(&b2), INTERIM, "the second waits its turn");
    assert!(
        eventually(Duration::from_secs(8), || wechat.sent_texts().len() >= 2).await,
        "{:?}",
        wechat.sent_texts()
    );
    assert_eq!(
        wechat.sent_texts(),
        ["answer 1: slow first", "answer 2: fast second"],
        "answers in the order the questions came"
    );
    // The third turn's history holds both earlier turns.
    let (_, b3) = a.post_plain(&text_xml("fast third", a.now(), 13)).await;
    assert_eq!(plain_content(&b3), "answer 3: fast third");
    let chats = llm.chat_requests();
    let history = chats[2].history();
    assert_eq!(
        history,
        [
            "user:slow first",
            "assistant:answer 1: slow first",
            "user:fast second",
            "assistant:answer 2: fast second",
            "user:fast third",
        ]
    );
}

async fn post(base: &str, client: &CallbackClient, xml: &str) -> (u16, String) {
    let (query, body) = client.plain(xml, unix_now());
    let res = reqwest::Client::new()
        .post(format!("{base}{query}"))
        .body(body)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn sigterm_mid_call_then_a_restart_on_the_same_redis_delivers_once() {
    let redis = RedisServer::start();
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_secs(3),
        serde_json::json!({"type": "text", "content": "深思熟虑的回答"}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    let cfg = agent_config(&wechat, webhook(&hook))
        .redis(&redis.url())
        .set("delivery.shutdown_grace_secs", 1);
    cfg.write(&path);
    let client = CallbackClient::for_entry(cfg.build().primary());
    run_and_stop(&path, &client).await;
    assert!(
        wechat.sent_texts().is_empty(),
        "the first node's call was cut"
    );
    assert_eq!(hook.hook_requests().len(), 1);

    // A new node on the same Redis finds the cut turn and runs it again.
    let _again = BinaryServer::start(&path).await;
    assert!(
        eventually(Duration::from_secs(15), || !wechat.sent_texts().is_empty()).await,
        "the answer never arrived"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(wechat.sent_texts(), ["深思熟虑的回答"], "delivered once");
}

async fn run_and_stop(path: &Path, client: &CallbackClient) {
    let mut first = BinaryServer::start(path).await;
    let (status, body) = post(&first.base, client, &text_xml("想一想", unix_now(), 21)).await;
    assert_eq!(status, 200);
    assert_eq!(plain_content(&body), INTERIM);
    first.terminate();
    // It stops after its grace period, with the upstream call unfinished.
    let stopped = eventually(Duration::from_secs(5), || first.exited()).await;
    assert!(stopped, "the node did not stop");
}

#[tokio::test]
async fn sigkill_of_one_node_mid_call_then_a_retry_to_the_other_gets_the_answer() {
    let redis = RedisServer::start();
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_secs(2),
        serde_json::json!({"type": "text", "content": "活下来的回答"}),
    ))
    .await;
    // No API credentials: the account can only answer passively, so the
    // automatic strategy holds WeChat's pushes for the answer.
    let cfg = TestConfig::new()
        .account(AccountSpec::token_only(&ACCOUNT.token))
        .set("agent.passive_budget_ms", 400)
        .upstream(webhook(&hook))
        .rules(AGENT_RULES)
        .redis(&redis.url());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    cfg.write(&path);
    let client = CallbackClient::for_entry(cfg.build().primary());
    let (mut doomed, survivor) = (
        BinaryServer::start(&path).await,
        BinaryServer::start(&path).await,
    );
    let xml = text_xml("撑住", unix_now(), 31);
    let push = {
        let (base, client, xml) = (doomed.base.clone(), client.clone(), xml.clone());
        tokio::spawn(async move {
            let (query, body) = client.plain(&xml, unix_now());
            reqwest::Client::new()
                .post(format!("{base}{query}"))
                .body(body)
                .send()
                .await
        })
    };
    assert!(
        eventually(Duration::from_secs(3), || !hook.hook_requests().is_empty()).await,
        "the first node never called the upstream"
    );
    doomed.child.kill().unwrap();
    doomed.child.wait().unwrap();
    assert!(
        push.await.unwrap().is_err(),
        "the killed node answered nothing"
    );
    // WeChat pushes again about 5 s after the first push; by then the dead
    // node's leases (3 s) have lapsed.
    tokio::time::sleep(wxgate::conversation::LEASE + Duration::from_millis(500)).await;
    let (status, body) = post(&survivor.base, &client, &xml).await;
    assert_eq!(status, 200);
    assert_eq!(plain_content(&body), "活下来的回答");
    assert_eq!(
        hook.hook_requests().len(),
        2,
        "the survivor ran the call again"
    );
}
