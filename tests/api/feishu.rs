//! Feishu/Lark bots through the real server against the fake Feishu API:
//! the URL check (plain and encrypted, from the recorded vectors), rule and
//! upstream answers through the reply API, Feishu's re-push answered once,
//! signatures, group mentions and the token refreshed on 99991663; the
//! conversation engine's turn order and history, shutdown drain, restart
//! on the same Redis, and the retry or give-up of a refused reply.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fake_feishu::{message_event, sealed, signed_headers};
use crate::support::{
    eventually, fixtures_dir, openai_upstream, table, webhook_upstream, AccountSpec, Behaviour,
    BinaryServer, ConsoleApp, FakeFeishu, FakeUpstream, RedisServer, TestApp, TestConfig,
};

const TOKEN: &str = "wxgateFeishuVerificationToken";
const ENCRYPT_KEY: &str = "wxgateFeishuEncryptKey2026";
const PATH: &str = "/feishu";

const RULES: &str = r#"
[[rules]]
match = { text = "价格" }
reply = { type = "text", content = "**价格表**见官网" }
[[rules]]
match = { msg_type = "image" }
reply = { type = "text", content = "图片收到了" }
[default_reply]
type = "text"
content = "收到：{content}"
"#;

/// A Feishu bot at `/feishu` against `fake`, with [`RULES`].
fn feishu_config(fake: &FakeFeishu, encrypt_key: Option<&str>) -> TestConfig {
    let mut account = AccountSpec::feishu(TOKEN)
        .name("bot")
        .set("path", PATH)
        .set("api_base_url", fake.base_url())
        .rules(RULES);
    if let Some(key) = encrypt_key {
        account = account.set("encrypt_key", key);
    }
    TestConfig::new()
        .add_account(account)
        .set("token.timeout_secs", 2)
        .source("feishu.toml")
}

async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).spawn().await
}

/// POSTs `body` with `headers` to the bot's path: status and body.
async fn push(app: &TestApp, body: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut request = app
        .http
        .post(format!("{}{PATH}", app.base))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let res = request.send().await.expect("POST");
    (res.status().as_u16(), res.text().await.unwrap())
}

fn vectors() -> Value {
    let text = std::fs::read_to_string(fixtures_dir().join("feishu/vectors.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

#[tokio::test]
async fn the_url_check_echoes_the_challenge_plain_and_encrypted() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    let check = json!({"challenge": "c-123", "token": TOKEN, "type": "url_verification"});
    let (status, body) = push(&app, &check.to_string(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"challenge": "c-123"})
    );
    // Another app's token is refused.
    let wrong = json!({"challenge": "c", "token": "someone-else", "type": "url_verification"});
    assert_eq!(push(&app, &wrong.to_string(), &[]).await.0, 403);
    // Without a key, an encrypted body is a configuration mismatch.
    assert_eq!(
        push(&app, &sealed(&check.to_string(), ENCRYPT_KEY), &[])
            .await
            .0,
        400
    );

    // The recorded encrypted check (written by scripts/gen_feishu_vectors.py
    // with Python's `cryptography`), as Feishu sends it: unsigned.
    let app = spawn(feishu_config(&fake, Some(ENCRYPT_KEY))).await;
    let v = vectors();
    let case = v["decrypt"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["plaintext"]
                .as_str()
                .unwrap()
                .contains("url_verification")
        })
        .unwrap();
    assert_eq!(case["encrypt_key"], ENCRYPT_KEY);
    let body = json!({"encrypt": case["encrypt"]}).to_string();
    let (status, answer) = push(&app, &body, &[]).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!({"challenge": "ajls384kdjx98XX"})
    );
    // With a key set, plain bodies are refused.
    assert_eq!(push(&app, &check.to_string(), &[]).await.0, 400);
    assert!(fake.replies().is_empty());
}

#[tokio::test]
async fn a_message_is_acknowledged_at_once_and_answered_by_a_rule_through_the_reply_api() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    let event = message_event(TOKEN, "ev_1", "om_msg1", "p2p", "价格", &[]);
    let (status, body) = push(&app, &event, &[]).await;
    assert_eq!((status, body.as_str()), (200, "{}"));
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    let reply = &fake.replies()[0];
    assert_eq!(reply.message_id, "om_msg1");
    // Text goes as a post whose md element Feishu renders.
    assert_eq!(reply.msg_type, "post");
    assert_eq!(reply.content["zh_cn"]["content"][0][0]["tag"], "md");
    assert_eq!(reply.text(), "**价格表**见官网");
    assert!(reply.uuid.as_deref().is_some_and(|u| u.len() <= 50));
    assert_eq!(fake.token_requests(), 1);
}

#[tokio::test]
async fn a_repush_of_a_handled_event_is_answered_once() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    let first = message_event(TOKEN, "ev_r1", "om_r1", "p2p", "hello", &[]);
    assert_eq!(push(&app, &first, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    // Feishu pushes the same event again (15 s, 5 min, 1 h, 6 h later) when
    // it missed the 200: acknowledged, not answered again.
    assert_eq!(push(&app, &first, &[]).await, (200, "{}".to_owned()));
    // A later message is answered: had the re-push been answered, its reply
    // would have been sent before this one.
    let next = message_event(TOKEN, "ev_r2", "om_r2", "p2p", "again", &[]);
    assert_eq!(push(&app, &next, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() >= 2).await);
    let replied: Vec<String> = fake.replies().into_iter().map(|r| r.message_id).collect();
    assert_eq!(replied, ["om_r1", "om_r2"]);
    assert_eq!(fake.replies()[1].text(), "收到：again");
}

#[tokio::test]
async fn signed_pushes_are_checked_and_a_bad_signature_is_refused() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, Some(ENCRYPT_KEY))).await;
    let event = sealed(
        &message_event(TOKEN, "ev_s1", "om_s1", "p2p", "价格", &[]),
        ENCRYPT_KEY,
    );
    let mut headers = signed_headers(&event, ENCRYPT_KEY);
    // Another key's signature, and none at all: 403, nothing answered.
    let forged = signed_headers(&event, "not-the-key");
    assert_eq!(push(&app, &event, &forged).await.0, 403);
    assert_eq!(push(&app, &event, &[]).await.0, 403);
    headers[1].1.push('x');
    assert_eq!(push(&app, &event, &headers).await.0, 403);
    // Signed right: answered.
    let good = signed_headers(&event, ENCRYPT_KEY);
    assert_eq!(push(&app, &event, &good).await, (200, "{}".to_owned()));
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    assert_eq!(fake.replies()[0].message_id, "om_s1");
    // The right signature over a body of another app's token: 403.
    let alien = sealed(
        &message_event("other-token", "ev_s2", "om_s2", "p2p", "价格", &[]),
        ENCRYPT_KEY,
    );
    assert_eq!(
        push(&app, &alien, &signed_headers(&alien, ENCRYPT_KEY))
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn group_messages_are_answered_only_when_they_mention_the_bot() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    let chatter = message_event(TOKEN, "ev_g1", "om_g1", "group", "午饭吃什么", &[]);
    assert_eq!(push(&app, &chatter, &[]).await, (200, "{}".to_owned()));
    let asked = message_event(
        TOKEN,
        "ev_g2",
        "om_g2",
        "group",
        "@_user_1 价格",
        &[("@_user_1", "ou_bot0001")],
    );
    assert_eq!(push(&app, &asked, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || !fake.replies().is_empty()).await);
    let replies = fake.replies();
    // The unmentioned message (pushed first) got nothing; the mention is
    // removed before the rules see the text.
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].message_id, "om_g2");
    assert_eq!(replies[0].text(), "**价格表**见官网");
}

#[tokio::test]
async fn a_slow_upstream_is_answered_late_through_the_reply_api() {
    let fake = FakeFeishu::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(600),
        json!({"type": "text", "content": "这是**上游**的回答"}),
    ))
    .await;
    let config = feishu_config(&fake, None)
        .set("agent.passive_budget_ms", 100)
        .upstream(table([
            ("name", "agent".into()),
            ("protocol", "webhook".into()),
            ("url", hook.hook_url().into()),
            ("timeout_ms", 5000.into()),
            ("format", "markdown".into()),
        ]))
        .set("accounts", toml::Value::Array(vec![]))
        .add_account(
            AccountSpec::feishu(TOKEN)
                .name("bot")
                .set("path", PATH)
                .set("api_base_url", fake.base_url())
                .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"agent\"\n"),
        );
    let app = spawn(config).await;
    let event = message_event(TOKEN, "ev_u1", "om_u1", "p2p", "讲讲", &[]);
    // Acknowledged without the answer, which comes later.
    assert_eq!(push(&app, &event, &[]).await, (200, "{}".to_owned()));
    assert!(eventually(Duration::from_secs(6), || fake.replies().len() == 1).await);
    assert_eq!(hook.hook_requests().len(), 1);
    let reply = &fake.replies()[0];
    assert_eq!(reply.message_id, "om_u1");
    // Feishu renders markdown: the upstream's passes through unflattened.
    assert_eq!(reply.text(), "这是**上游**的回答");
}

#[tokio::test]
async fn a_refused_token_is_replaced_once_and_the_reply_retried() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    assert_eq!(fake.token_requests(), 1, "the token is fetched at start");
    fake.expire_token();
    let event = message_event(TOKEN, "ev_t1", "om_t1", "p2p", "价格", &[]);
    assert_eq!(push(&app, &event, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.refused_tokens().len(), 1);
    assert_eq!(fake.refused_tokens()[0].0, 99991663);
    // A withdrawn message (230011) is not retried and answers nothing.
    fake.withdraw("om_t2");
    let gone = message_event(TOKEN, "ev_t2", "om_t2", "p2p", "价格", &[]);
    assert_eq!(push(&app, &gone, &[]).await.0, 200);
    let next = message_event(TOKEN, "ev_t3", "om_t3", "p2p", "价格", &[]);
    assert_eq!(push(&app, &next, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 2).await);
    let replied: Vec<String> = fake.replies().into_iter().map(|r| r.message_id).collect();
    assert_eq!(replied, ["om_t1", "om_t3"]);
    assert_eq!(fake.token_requests(), 2);
    // Feishu revoking the token mid-call (99991663 on a known token): one
    // new token, one retry, one reply.
    fake.fail_next_replies(&[99991663]);
    let revoked = message_event(TOKEN, "ev_t4", "om_t4", "p2p", "价格", &[]);
    assert_eq!(push(&app, &revoked, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 3).await);
    assert_eq!(fake.replies()[2].message_id, "om_t4");
    assert_eq!(fake.token_requests(), 3);
}

#[tokio::test]
async fn wrong_credentials_fail_the_start() {
    let fake = FakeFeishu::start().await;
    let config = feishu_config(&fake, None).set("accounts", toml::Value::Array(vec![]));
    let config = config.add_account(
        AccountSpec::feishu(TOKEN)
            .name("bot")
            .set("app_secret", "wrong-secret")
            .set("api_base_url", fake.base_url()),
    );
    let built = wxgate::Application::build_with(config.build(), Default::default()).await;
    let err = built.err().expect("the build fails");
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("10014"), "{err}");
}

#[tokio::test]
async fn verify_url_speaks_feishu_plain_and_encrypted() {
    let fake = FakeFeishu::start().await;
    for key in [None, Some(ENCRYPT_KEY)] {
        let app = spawn(feishu_config(&fake, key)).await;
        let entry = app.config.find_account(Some("bot")).unwrap();
        let url = format!("{}{PATH}", app.base);
        let echoed = wxgate::platform::simulate::verify_url(&entry.account, &url)
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert!(!echoed.is_empty());
    }
    // Against a WeChat account's path, the check fails with a reason.
    let app = spawn(feishu_config(&fake, None)).await;
    let entry = app.config.find_account(Some("bot")).unwrap();
    let wrong = format!("{}/not-feishu", app.base);
    assert!(
        wxgate::platform::simulate::verify_url(&entry.account, &wrong)
            .await
            .is_err()
    );
}

#[test]
fn the_platforms_example_has_one_account_of_every_kind_and_is_accepted() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/platforms.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let config = TestConfig::from_file(&path).build();
    let mut kinds: Vec<&str> = config
        .accounts
        .iter()
        .map(|a| a.account.kind.as_str())
        .collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        ["dingtalk", "feishu", "kf", "official", "wecom", "wecom_bot"]
    );
    for kind in kinds {
        assert!(stdout.contains(&format!("({kind}, ")), "{kind}: {stdout}");
    }
}

#[tokio::test]
async fn the_dedup_record_outlives_feishus_last_repush() {
    // Feishu re-pushes at 15 s, 5 min, 1 h and 6 h: the record of a handled
    // message must live past 6 h, whatever [delivery] says.
    let redis = RedisServer::start();
    let fake = FakeFeishu::start().await;
    let config = feishu_config(&fake, None)
        .redis(&redis.url())
        .set("delivery.dedup_window_secs", 60);
    let app = spawn(config).await;
    let event = message_event(TOKEN, "ev_d1", "om_d1", "p2p", "价格", &[]);
    assert_eq!(push(&app, &event, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    let keys = redis.command(&["KEYS", "*dedup:cli_*"]);
    let key = keys
        .lines()
        .find(|l| l.contains("dedup:cli_"))
        .unwrap_or_else(|| panic!("no dedup record: {keys:?}"))
        .to_owned();
    let ttl = redis.command(&["PTTL", &key]);
    let ttl_ms: i64 = ttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(ttl_ms > (7 * 3600 + 6 * 60) * 1000, "{key}: {ttl_ms} ms");
    // And the re-push is acknowledged without a second reply.
    assert_eq!(push(&app, &event, &[]).await.0, 200);
    let next = message_event(TOKEN, "ev_d2", "om_d2", "p2p", "价格", &[]);
    assert_eq!(push(&app, &next, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() >= 2).await);
    let replied: Vec<String> = fake.replies().into_iter().map(|r| r.message_id).collect();
    assert_eq!(replied, ["om_d1", "om_d2"]);
}

#[tokio::test]
async fn posts_and_images_reach_the_rules_too() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    let as_kind = |event_id: &str, message_id: &str, kind: &str, content: Value| {
        let mut v: Value =
            serde_json::from_str(&message_event(TOKEN, event_id, message_id, "p2p", "", &[]))
                .unwrap();
        v["event"]["message"]["message_type"] = kind.into();
        v["event"]["message"]["content"] = content.to_string().into();
        v.to_string()
    };
    let post = as_kind(
        "ev_k1",
        "om_k1",
        "post",
        json!({"title": "", "content": [[{"tag": "text", "text": "价格"}]]}),
    );
    assert_eq!(push(&app, &post, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    let image = as_kind(
        "ev_k2",
        "om_k2",
        "image",
        json!({"image_key": "img_v2_abc"}),
    );
    assert_eq!(push(&app, &image, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 2).await);
    let mut texts: Vec<(String, String)> = fake
        .replies()
        .into_iter()
        .map(|r| (r.message_id.clone(), r.text()))
        .collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            ("om_k1".to_owned(), "**价格表**见官网".to_owned()),
            ("om_k2".to_owned(), "图片收到了".to_owned())
        ]
    );
}

/// A Feishu bot at `/feishu` whose every message goes to `upstream`.
fn feishu_agent(fake: &FakeFeishu, upstream: toml::Table) -> TestConfig {
    feishu_config(fake, None)
        .set("agent.passive_budget_ms", 100)
        .upstream(upstream)
        .set("accounts", toml::Value::Array(vec![]))
        .add_account(
            AccountSpec::feishu(TOKEN)
                .name("bot")
                .set("path", PATH)
                .set("api_base_url", fake.base_url())
                .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"agent\"\n"),
        )
}

/// POSTs a Feishu event to a server at `base`.
async fn push_to(base: &str, body: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .post(format!("{base}{PATH}"))
        .header("content-type", "application/json; charset=utf-8")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn two_quick_messages_to_a_slow_upstream_are_answered_in_order_with_full_history() {
    let fake = FakeFeishu::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_slow_prefix("slow", Duration::from_millis(1500));
    llm.set_chat_delay(Duration::from_millis(50));
    let extra = table([("history_turns", 5.into()), ("timeout_ms", 10_000.into())]);
    let app = spawn(feishu_agent(&fake, openai_upstream(&llm, extra))).await;
    let first = message_event(TOKEN, "ev_o1", "om_o1", "p2p", "slow first", &[]);
    let second = message_event(TOKEN, "ev_o2", "om_o2", "p2p", "fast second", &[]);
    // Both acknowledged at once, the second while the first is still thought about.
    assert_eq!(push(&app, &first, &[]).await, (200, "{}".to_owned()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(push(&app, &second, &[]).await, (200, "{}".to_owned()));
    assert!(
        eventually(Duration::from_secs(8), || fake.replies().len() >= 2).await,
        "{:?}",
        fake.replies()
    );
    let replies: Vec<(String, String)> = fake
        .replies()
        .into_iter()
        .map(|r| (r.message_id.clone(), r.text()))
        .collect();
    assert_eq!(
        replies,
        [
            ("om_o1".to_owned(), "answer 1: slow first".to_owned()),
            ("om_o2".to_owned(), "answer 2: fast second".to_owned()),
        ],
        "answers in the order the questions came"
    );
    // The second call waited for the first turn and saw it.
    let chats = llm.chat_requests();
    let history = chats[1].history();
    assert_eq!(
        history,
        [
            "user:slow first",
            "assistant:answer 1: slow first",
            "user:fast second",
        ]
    );
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_late_results_total{kind=\"delivered\"} 2"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_shutdown_waits_for_a_pending_reply() {
    let fake = FakeFeishu::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(1500),
        json!({"type": "text", "content": "等到了"}),
    ))
    .await;
    let config = feishu_agent(&fake, webhook_upstream(&hook, table([])))
        .set("delivery.shutdown_grace_secs", 10);
    let app = spawn(config).await;
    let event = message_event(TOKEN, "ev_w1", "om_w1", "p2p", "慢慢来", &[]);
    assert_eq!(push(&app, &event, &[]).await, (200, "{}".to_owned()));
    assert!(eventually(Duration::from_secs(3), || !hook.hook_requests().is_empty()).await);
    assert!(fake.replies().is_empty(), "the upstream is still working");
    // Stopping waits for the turn: when the server is gone, the reply is sent.
    app.stop().await.unwrap().unwrap();
    let texts: Vec<String> = fake.replies().iter().map(|r| r.text()).collect();
    assert_eq!(texts, ["等到了"]);
}

#[tokio::test]
async fn sigterm_mid_call_then_a_restart_on_the_same_redis_replies_once() {
    let redis = RedisServer::start();
    let fake = FakeFeishu::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_secs(3),
        json!({"type": "text", "content": "深思熟虑的回答"}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    feishu_agent(
        &fake,
        webhook_upstream(&hook, table([("timeout_ms", 10_000.into())])),
    )
    .redis(&redis.url())
    .set("delivery.shutdown_grace_secs", 1)
    .write(&path);
    let mut first = BinaryServer::start(&path).await;
    let event = message_event(TOKEN, "ev_c1", "om_c1", "p2p", "想一想", &[]);
    assert_eq!(push_to(&first.base, &event).await, (200, "{}".to_owned()));
    assert!(eventually(Duration::from_secs(3), || !hook.hook_requests().is_empty()).await);
    first.terminate();
    // It stops after its grace period, with the upstream call unfinished.
    assert!(
        eventually(Duration::from_secs(5), || first.exited()).await,
        "the node did not stop"
    );
    assert!(fake.replies().is_empty(), "the first node's call was cut");

    // A new node on the same Redis finds the cut turn and runs it again.
    let _again = BinaryServer::start(&path).await;
    assert!(
        eventually(Duration::from_secs(15), || !fake.replies().is_empty()).await,
        "the reply never came"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let replies = fake.replies();
    assert_eq!(replies.len(), 1, "replied once: {replies:?}");
    assert_eq!(replies[0].message_id, "om_c1");
    assert_eq!(replies[0].text(), "深思熟虑的回答");
    assert_eq!(hook.hook_requests().len(), 2, "the call ran again");
}

#[tokio::test]
async fn a_rate_limit_is_retried_and_a_final_refusal_given_up_and_counted() {
    let fake = FakeFeishu::start().await;
    let app = spawn(feishu_config(&fake, None)).await;
    // 230020 (rate limited): the engine sends again after a pause.
    fake.fail_next_replies(&[230020]);
    let limited = message_event(TOKEN, "ev_l1", "om_l1", "p2p", "价格", &[]);
    assert_eq!(push(&app, &limited, &[]).await, (200, "{}".to_owned()));
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    assert_eq!(fake.replies()[0].message_id, "om_l1");
    // 230002 (the bot is not in the chat): given up at once, logged and counted.
    fake.fail_next_replies(&[230002]);
    let refused = message_event(TOKEN, "ev_l2", "om_l2", "p2p", "价格", &[]);
    assert_eq!(push(&app, &refused, &[]).await, (200, "{}".to_owned()));
    let dropped = "wxgate_late_results_total{kind=\"dropped\"} 1";
    app.wait_for_metric(dropped).await;
    let metrics = app.metrics.render();
    for line in [
        "wxgate_agent_failures_total{kind=\"feishu_rate_limited\"} 1",
        "wxgate_agent_failures_total{kind=\"feishu_230002\"} 1",
        "wxgate_late_results_total{kind=\"delivered\"} 1",
    ] {
        assert!(metrics.contains(line), "{line}: {metrics}");
    }
    // Not retried: the next message is answered, and only once more.
    let next = message_event(TOKEN, "ev_l3", "om_l3", "p2p", "价格", &[]);
    assert_eq!(push(&app, &next, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 2).await);
    let replied: Vec<String> = fake.replies().into_iter().map(|r| r.message_id).collect();
    assert_eq!(replied, ["om_l1", "om_l3"]);
}

#[tokio::test]
async fn the_consoles_conversations_page_lists_feishu_answers() {
    let fake = FakeFeishu::start().await;
    let config = ConsoleApp::config().add_account(
        AccountSpec::feishu(TOKEN)
            .name("bot")
            .set("path", PATH)
            .set("api_base_url", fake.base_url())
            .rules(RULES),
    );
    let console = ConsoleApp::start(config).await;
    let event = message_event(TOKEN, "ev_v1", "om_v1", "p2p", "价格", &[]);
    assert_eq!(push(&console.app, &event, &[]).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || fake.replies().len() == 1).await);
    let (entries, text) = console.signed_in().await.conversations("bot").await;
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["outcome"], "late_sent");
    assert_eq!(entries[0]["strategy"], "late_send");
    assert_eq!(entries[0]["reply_type"], "text");
    assert!(!text.contains("ou_sender0001"), "ids are shortened: {text}");
}

/// `simulate` for a Feishu account: the bot's account as configured, or
/// with `token` / `encrypt_key` replaced (another app's secrets).
fn simulator_account(
    app: &TestApp,
    token: Option<&str>,
    encrypt_key: Option<&str>,
) -> wxgate::config::AccountConfig {
    let mut account = app
        .config
        .find_account(Some("bot"))
        .unwrap()
        .account
        .clone();
    if let Some(token) = token {
        account.token = wxgate::config::Secret::new(token);
    }
    if let (Some(key), wxgate::config::AccountKind::Feishu(settings)) =
        (encrypt_key, &mut account.kind)
    {
        settings.encrypt_key = Some(wxgate::config::Secret::new(key));
    }
    account
}

async fn simulate_text(
    app: &TestApp,
    account: &wxgate::config::AccountConfig,
    text: &str,
) -> Result<wxgate::platform::simulate::JsonReply, wxgate::platform::simulate::SimError> {
    use wxgate::platform::simulate::{send_json, Kind, Parties, Wait};
    let parties = Parties {
        from_user: "ou_simulated_user".into(),
        to_user: "unused".into(),
    };
    send_json(
        account,
        &format!("{}{PATH}", app.base),
        &Kind::Text(text.into()),
        &parties,
        Wait::default(),
        &mut |_| {},
    )
    .await
}

#[tokio::test]
async fn simulate_sends_a_message_event_the_rules_answer_through_the_reply_api() {
    let fake = FakeFeishu::start().await;
    for key in [None, Some(ENCRYPT_KEY)] {
        let app = spawn(feishu_config(&fake, key)).await;
        let before = fake.replies().len();
        let account = simulator_account(&app, None, None);
        let reply = simulate_text(&app, &account, "价格")
            .await
            .unwrap_or_else(|e| panic!("{key:?}: {e}"));
        assert_eq!((reply.status, &reply.answer), (200, &json!({})));
        assert_eq!(reply.encrypted, key.is_some());
        assert!(reply.message_id.starts_with("om_"), "{}", reply.message_id);
        assert!(reply.note.as_deref().unwrap_or("").contains("reply API"));
        // The answer went to the reply API, for the simulated message.
        assert!(
            eventually(Duration::from_secs(3), || fake.replies().len() > before).await,
            "{key:?}: no reply"
        );
        let replies = fake.replies();
        let last = replies.last().unwrap();
        assert_eq!(last.message_id, reply.message_id);
        assert_eq!(last.text(), "**价格表**见官网");
    }
}

#[tokio::test]
async fn simulate_with_another_apps_secrets_reports_the_refusal() {
    let fake = FakeFeishu::start().await;
    // Without an Encrypt Key the Verification Token authenticates.
    let app = spawn(feishu_config(&fake, None)).await;
    let wrong = simulator_account(&app, Some("not-the-token"), None);
    let err = simulate_text(&app, &wrong, "价格").await.unwrap_err();
    assert!(
        matches!(
            err,
            wxgate::platform::simulate::SimError::Refused { status: 403, .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Verification Token"), "{err}");
    // With one, another key's body does not open.
    let app = spawn(feishu_config(&fake, Some(ENCRYPT_KEY))).await;
    let wrong = simulator_account(&app, None, Some("another-encrypt-key"));
    let err = simulate_text(&app, &wrong, "价格").await.unwrap_err();
    assert!(
        matches!(
            err,
            wxgate::platform::simulate::SimError::Refused { status: 403, .. }
        ),
        "{err}"
    );
    assert!(fake.replies().is_empty());
}
