//! WeCom 智能机器人 end to end, through the real server: the URL check, a
//! rule's answer finished in the first reply, a streamed upstream pulled by
//! the fake WeCom client in order until `finish` (the fake upstream holds
//! its stream at points the test releases, so partial content is seen
//! without timing), a retried `msgid` answered once, a bad signature
//! refused, and an answer finished after the refresh window pushed through
//! `response_url`. The answers are the conversation engine's turns: two
//! quick messages are answered in order with the first in the second's
//! history, a node stopped mid-answer leaves the stream to the next node,
//! and the console sees the answers.

use std::time::Duration;

use serde_json::{json, Value};
use toml::Table;

use crate::support::fake_wecom_bot::{
    bot_text, FakeResponseUrl, WeComBotClient, BOT_KEY, BOT_TOKEN,
};
use crate::support::{
    eventually, eventually_async, now_unix, openai_upstream, table, webhook_upstream, AccountSpec,
    Behaviour, BinaryServer, ConsoleApp, FakeUpstream, RedisServer, StreamPlan, TestApp,
    TestConfig, AGENT_RULES,
};

const NOW: i64 = 1_760_000_000;
const PATH: &str = "/wecom-bot";

fn account(fake: &FakeResponseUrl) -> AccountSpec {
    AccountSpec::wecom_bot(BOT_TOKEN, BOT_KEY)
        .name("aibot")
        .set("path", PATH)
        .set("api_base_url", fake.base_url())
}

fn streaming(llm: &FakeUpstream) -> Table {
    openai_upstream(
        llm,
        table([("stream", true.into()), ("timeout_ms", 20_000.into())]),
    )
}

async fn with_rules(fake: &FakeResponseUrl) -> (TestApp, WeComBotClient) {
    let config = TestConfig::new()
        .rules("[[rules]]\nmatch = { text = \"价格\" }\nreply = { type = \"text\", content = \"**价格表**见官网\" }\n")
        .add_account(account(fake));
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", app.base));
    (app, client)
}

async fn with_upstream(fake: &FakeResponseUrl, llm: &FakeUpstream) -> (TestApp, WeComBotClient) {
    let config = TestConfig::new()
        .add_account(account(fake))
        .upstream(streaming(llm))
        .rules(AGENT_RULES);
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", app.base));
    (app, client)
}

/// Refreshes `id` as WeCom does until `done` holds of the stream (5 s at
/// most); the last stream seen.
async fn pull_until(
    client: &WeComBotClient,
    id: &str,
    ts: i64,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let last = std::sync::Mutex::new(Value::Null);
    let ok = eventually_async(Duration::from_secs(5), || async {
        let stream = client.refresh(id, ts).await;
        let hit = done(&stream);
        *last.lock().unwrap() = stream;
        hit
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(ok, "never reached: {last}");
    last
}

#[tokio::test]
async fn wecom_bot_url_verification_answers_the_decrypted_echostr() {
    let fake = FakeResponseUrl::start().await;
    let (_app, client) = with_rules(&fake).await;
    assert_eq!(
        client.verify("wxgate-echo-7", NOW).await,
        (200, "wxgate-echo-7".to_owned())
    );
    // A stale timestamp is refused, not echoed.
    assert_eq!(client.verify("wxgate-echo-8", NOW - 3600).await.0, 403);
}

#[tokio::test]
async fn wecom_bot_verify_url_speaks_the_bots_url_check() {
    let fake = FakeResponseUrl::start().await;
    // verify-url stamps the real time: the server's clock agrees.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let config = TestConfig::new().add_account(account(&fake));
    let app = TestApp::builder().config(config).now(now).spawn().await;
    let entry = app.config.find_account(Some("aibot")).unwrap();
    let url = format!("{}{PATH}", app.base);
    assert!(wxgate::platform::simulate::verify_url(&entry.account, &url)
        .await
        .is_ok());
    let wrong = format!("{}/not-the-bot", app.base);
    assert!(
        wxgate::platform::simulate::verify_url(&entry.account, &wrong)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn wecom_bot_rule_answer_is_finished_in_the_first_reply() {
    let fake = FakeResponseUrl::start().await;
    let (_app, client) = with_rules(&fake).await;
    let answer = client
        .send(
            &bot_text("msg-rule-1", "价格", &fake.response_url("c1")),
            NOW,
        )
        .await;
    assert_eq!(answer.status, 200);
    let stream = answer.stream();
    assert_eq!(stream["finish"], true);
    // Markdown passes through: WeCom renders it.
    assert_eq!(stream["content"], "**价格表**见官网");
    assert!(stream["id"].as_str().unwrap().starts_with("wxgate-"));
    // A refresh of it (should WeCom send one) says the same.
    let again = client.refresh(stream["id"].as_str().unwrap(), NOW).await;
    assert_eq!(
        (&again["finish"], &again["content"]),
        (&stream["finish"], &stream["content"])
    );
    assert!(fake.pushed().is_empty());
}

#[tokio::test]
async fn wecom_bot_streamed_answer_is_pulled_in_order_until_finish() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    // The upstream cuts parts at paragraph ends once they are long enough
    // (40 bytes for the first, 300 for the next).
    let one = "第一段：流式回答的开头已经完整，可以先显示。";
    let two = format!(
        "第二段，**加粗**。{}",
        "这一段比较长，用来凑够下一部分需要的长度。".repeat(8)
    );
    llm.set_stream(StreamPlan {
        deltas: vec![
            format!("{one}\n\n"),
            two.clone(),
            "\n\n".into(),
            "最后一句。".into(),
        ],
        hold_before: vec![1, 3],
        done: true,
    });
    let (_app, client) = with_upstream(&fake, &llm).await;
    let first = client
        .send(
            &bot_text("msg-stream-1", "讲讲", &fake.response_url("c2")),
            NOW,
        )
        .await;
    let stream = first.stream().clone();
    assert_eq!(stream["finish"], false);
    let id = stream["id"].as_str().unwrap().to_owned();

    let mut seen: Vec<Value> = vec![stream];

    // Held after the first paragraph: the refreshes show it, unfinished.
    let mut last = pull_until(&client, &id, NOW, |v| v["content"] == one).await;
    assert_eq!(last["finish"], false);
    assert_eq!(llm.streamed_deltas(), 1, "the stream is still open");
    seen.push(last.clone());

    // The second paragraph, still unfinished.
    llm.release_stream();
    last = pull_until(&client, &id, NOW + 1, |v| {
        v["content"] == format!("{one}\n\n{two}")
    })
    .await;
    assert_eq!(last["finish"], false);
    seen.push(last.clone());

    // The end: the whole answer, finished.
    llm.release_stream();
    last = pull_until(&client, &id, NOW + 2, |v| v["finish"] == true).await;
    assert_eq!(last["content"], format!("{one}\n\n{two}\n\n最后一句。"));
    seen.push(last.clone());

    // In order: each pull's content begins with the one before it.
    for pair in seen.windows(2) {
        let (a, b) = (
            pair[0]["content"].as_str().unwrap(),
            pair[1]["content"].as_str().unwrap(),
        );
        assert!(b.starts_with(a), "{a:?} then {b:?}");
        assert_eq!(pair[0]["id"], pair[1]["id"]);
    }
    assert_eq!(llm.chat_requests().len(), 1);
    assert!(
        fake.pushed().is_empty(),
        "finished within the window: no push"
    );
}

#[tokio::test]
async fn wecom_bot_retried_msgid_is_answered_once() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_stream(StreamPlan {
        deltas: vec!["一次就好。".into()],
        hold_before: vec![0],
        done: true,
    });
    let (_app, client) = with_upstream(&fake, &llm).await;
    let message = bot_text("msg-retry-1", "讲讲", &fake.response_url("c3"));
    let first = client.send(&message, NOW).await;
    let retry = client.send(&message, NOW + 1).await;
    assert_eq!(first.stream()["id"], retry.stream()["id"]);
    assert_eq!(retry.stream()["finish"], false);
    llm.release_stream();
    let id = first.stream()["id"].as_str().unwrap().to_owned();
    let last = pull_until(&client, &id, NOW + 2, |v| v["finish"] == true).await;
    assert_eq!(last["content"], "一次就好。");
    // Once more after the end: the same stream, finished; one upstream call.
    let late_retry = client.send(&message, NOW + 3).await;
    assert_eq!(late_retry.stream()["content"], "一次就好。");
    assert_eq!(late_retry.stream()["finish"], true);
    assert_eq!(llm.chat_requests().len(), 1);
}

#[tokio::test]
async fn wecom_bot_bad_signature_is_refused() {
    let fake = FakeResponseUrl::start().await;
    let (_app, client) = with_rules(&fake).await;
    let message = bot_text("msg-bad-1", "价格", &fake.response_url("c4"));
    let answer = client
        .send_with(&message, NOW, |q| {
            q.retain(|(k, _)| *k != "msg_signature");
            q.push(("msg_signature", "0".repeat(40)));
        })
        .await;
    assert_eq!(answer.status, 403);
    // Nothing was claimed: the genuine callback is answered.
    let answer = client.send(&message, NOW).await;
    assert_eq!(answer.stream()["finish"], true);
}

#[tokio::test]
async fn wecom_bot_answer_after_the_refresh_window_goes_through_response_url() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_stream(StreamPlan {
        deltas: vec!["很久之后的回答。".into()],
        hold_before: vec![0],
        done: true,
    });
    let (app, client) = with_upstream(&fake, &llm).await;
    let first = client
        .send(
            &bot_text("msg-late-1", "讲讲", &fake.response_url("c5")),
            NOW,
        )
        .await;
    assert_eq!(first.stream()["finish"], false);
    // WeCom stops pulling after about 6 minutes; the answer comes later.
    app.clock.set(NOW + 7 * 60);
    llm.release_stream();
    assert!(eventually(Duration::from_secs(5), || fake.pushed().len() == 1).await);
    let pushed = &fake.pushed()[0];
    assert_eq!(pushed["msgtype"], "markdown");
    assert_eq!(pushed["markdown"]["content"], "很久之后的回答。");
}

#[tokio::test]
async fn wecom_bot_streams_live_in_the_store_so_any_node_answers_a_refresh() {
    let redis = RedisServer::start();
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_stream(StreamPlan {
        deltas: vec!["两个节点，一个回答。".into()],
        hold_before: vec![0],
        done: true,
    });
    let config = || {
        TestConfig::new()
            .add_account(account(&fake))
            .upstream(streaming(&llm))
            .rules(AGENT_RULES)
            .redis(&redis.url())
    };
    let a = TestApp::builder().config(config()).now(NOW).spawn().await;
    let b = TestApp::builder().config(config()).now(NOW).spawn().await;
    let on_a = WeComBotClient::new(format!("{}{PATH}", a.base));
    let on_b = WeComBotClient::new(format!("{}{PATH}", b.base));
    let message = bot_text("msg-nodes-1", "讲讲", &fake.response_url("c6"));
    let first = on_a.send(&message, NOW).await;
    let id = first.stream()["id"].as_str().unwrap().to_owned();
    // WeCom's retry lands on the other node: the same stream, no second turn.
    let retry = on_b.send(&message, NOW + 1).await;
    assert_eq!(retry.stream()["id"], id.as_str());
    assert_eq!(on_b.refresh(&id, NOW + 1).await["finish"], false);
    llm.release_stream();
    let last = pull_until(&on_b, &id, NOW + 2, |v| v["finish"] == true).await;
    assert_eq!(last["content"], "两个节点，一个回答。");
    assert_eq!(llm.chat_requests().len(), 1);
}

#[tokio::test]
async fn wecom_bot_two_quick_messages_are_answered_in_order_with_full_history() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_slow_prefix("slow", Duration::from_millis(1500));
    llm.set_chat_delay(Duration::from_millis(50));
    let extra = table([("history_turns", 5.into()), ("timeout_ms", 10_000.into())]);
    let config = TestConfig::new()
        .add_account(account(&fake))
        .upstream(openai_upstream(&llm, extra))
        .rules(AGENT_RULES);
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", app.base));
    // Both streams open at once, the second while the first is thought about.
    let first = client
        .send(
            &bot_text("msg-o1", "slow first", &fake.response_url("o1")),
            NOW,
        )
        .await;
    let second = client
        .send(
            &bot_text("msg-o2", "fast second", &fake.response_url("o2")),
            NOW,
        )
        .await;
    let ids: Vec<String> = [&first, &second]
        .iter()
        .map(|a| {
            assert_eq!(a.stream()["finish"], false, "{:?}", a.stream());
            a.stream()["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_ne!(ids[0], ids[1]);
    let one = pull_until(&client, &ids[0], NOW + 1, |v| v["finish"] == true).await;
    let two = pull_until(&client, &ids[1], NOW + 1, |v| v["finish"] == true).await;
    assert_eq!(one["content"], "answer 1: slow first");
    assert_eq!(two["content"], "answer 2: fast second");
    // The second call waited for the first turn and saw it.
    let chats = llm.chat_requests();
    assert_eq!(chats.len(), 2);
    assert_eq!(
        chats[1].history(),
        [
            "user:slow first",
            "assistant:answer 1: slow first",
            "user:fast second",
        ]
    );
    assert!(fake.pushed().is_empty());
}

#[tokio::test]
async fn wecom_bot_a_node_stopped_mid_answer_leaves_the_stream_to_the_next_node() {
    let redis = RedisServer::start();
    let fake = FakeResponseUrl::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_secs(3),
        json!({"type": "text", "content": "深思熟虑的回答"}),
    ))
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wxgate.toml");
    TestConfig::new()
        .add_account(account(&fake))
        .upstream(webhook_upstream(
            &hook,
            table([("timeout_ms", 10_000.into())]),
        ))
        .rules(AGENT_RULES)
        .redis(&redis.url())
        .set("delivery.shutdown_grace_secs", 1)
        .write(&path);
    let mut first = BinaryServer::start(&path).await;
    let client = WeComBotClient::new(format!("{}{PATH}", first.base));
    let now = now_unix();
    let message = bot_text("msg-cut-1", "想一想", &fake.response_url("cut"));
    let opened = client.send(&message, now).await;
    assert_eq!(opened.stream()["finish"], false);
    let id = opened.stream()["id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(3), || !hook.hook_requests().is_empty()).await);
    first.terminate();
    assert!(
        eventually(Duration::from_secs(5), || first.exited()).await,
        "the node did not stop"
    );

    // A new node on the same Redis runs the cut turn again into the same
    // stream, which WeCom keeps pulling from it.
    let again = BinaryServer::start(&path).await;
    let client = WeComBotClient::new(format!("{}{PATH}", again.base));
    let last = std::sync::Mutex::new(Value::Null);
    let done = eventually_async(Duration::from_secs(20), || async {
        let stream = client.refresh(&id, now_unix()).await;
        let finished = stream["finish"] == true;
        *last.lock().unwrap() = stream;
        finished
    })
    .await;
    let last = last.into_inner().unwrap();
    assert!(done, "never finished: {last}");
    assert_eq!(last["content"], "深思熟虑的回答");
    assert_eq!(hook.hook_requests().len(), 2, "the call ran again");
    // WeCom's retry of the message gets the stream as it is now.
    let retry = client.send(&message, now_unix()).await;
    assert_eq!(retry.stream()["id"], id.as_str());
    assert_eq!(retry.stream()["content"], "深思熟虑的回答");
    assert_eq!(hook.hook_requests().len(), 2, "no third call");
    assert!(fake.pushed().is_empty(), "within the window: no push");
}

#[tokio::test]
async fn wecom_bot_answers_are_on_the_consoles_conversations_page() {
    let fake = FakeResponseUrl::start().await;
    let config = ConsoleApp::config().add_account(account(&fake).rules(
        "[[rules]]\nmatch = { text = \"价格\" }\nreply = { type = \"text\", content = \"**价格表**见官网\" }\n",
    ));
    let console = ConsoleApp::start(config).await;
    let client = WeComBotClient::new(format!("{}{PATH}", console.app.base));
    let answer = client
        .send(
            &bot_text("msg-console-1", "价格", &fake.response_url("v1")),
            now_unix(),
        )
        .await;
    assert_eq!(answer.stream()["finish"], true);
    let (entries, text) = console.signed_in().await.conversations("aibot").await;
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["outcome"], "replied");
    assert_eq!(entries[0]["reply_type"], "text");
    assert!(!text.contains("zhangsan"), "ids are shortened: {text}");
}

/// The bot on the real clock (simulate stamps the time of day), answered
/// by [`AGENT_RULES`]: `菜单` by a rule, the rest by `llm` through a webhook.
async fn with_hook(fake: &FakeResponseUrl, llm: &FakeUpstream) -> TestApp {
    let config = TestConfig::new()
        .add_account(account(fake))
        .upstream(webhook_upstream(llm, table([])))
        .rules(AGENT_RULES);
    TestApp::builder()
        .config(config)
        .now(crate::support::now_unix())
        .spawn()
        .await
}

async fn simulate(
    app: &TestApp,
    account: &wxgate::config::AccountConfig,
    text: &str,
    wait: wxgate::platform::simulate::Wait,
    seen: &mut Vec<wxgate::platform::simulate::StreamSnapshot>,
) -> Result<wxgate::platform::simulate::JsonReply, wxgate::platform::simulate::SimError> {
    use wxgate::platform::simulate::{send_json, Kind, Parties};
    let parties = Parties {
        from_user: "zhangsan".into(),
        to_user: "unused".into(),
    };
    let url = format!("{}{PATH}", app.base);
    let mut on_refresh = |s: &wxgate::platform::simulate::StreamSnapshot| seen.push(s.clone());
    send_json(
        account,
        &url,
        &Kind::Text(text.into()),
        &parties,
        wait,
        &mut on_refresh,
    )
    .await
}

fn pulled_every(ms: u64, wait_ms: u64) -> wxgate::platform::simulate::Wait {
    wxgate::platform::simulate::Wait {
        wait: Duration::from_millis(wait_ms),
        every: Duration::from_millis(ms),
    }
}

#[tokio::test]
async fn simulate_refreshes_the_stream_until_it_is_finished() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(300),
        json!({"type": "text", "content": "慢慢想好的**回答**"}),
    ))
    .await;
    let app = with_hook(&fake, &llm).await;
    let entry = app.config.find_account(Some("aibot")).unwrap();
    // A rule's answer is finished in the first reply: nothing to refresh.
    let mut seen = Vec::new();
    let rule = simulate(
        &app,
        &entry.account,
        "菜单",
        pulled_every(50, 5000),
        &mut seen,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(rule.encrypted && rule.finished);
    assert_eq!(rule.text.as_deref(), Some("static menu"));
    assert_eq!(rule.answer["stream"]["finish"], true);
    assert!(rule.refreshes.is_empty() && seen.is_empty());
    // The upstream's answer is pulled until it is finished.
    let reply = simulate(
        &app,
        &entry.account,
        "讲讲",
        pulled_every(50, 5000),
        &mut seen,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.answer["stream"]["finish"], false, "{}", reply.answer);
    assert!(reply.finished, "{reply:?}");
    assert_eq!(reply.text.as_deref(), Some("慢慢想好的**回答**"));
    let last = reply.refreshes.last().expect("refreshed");
    assert!(last.finish);
    assert_eq!(seen, reply.refreshes);
    assert_eq!(llm.hook_requests().len(), 1);
    assert!(fake.pushed().is_empty());
}

#[tokio::test]
async fn simulate_gives_up_after_the_wait_and_reports_refusals() {
    let fake = FakeResponseUrl::start().await;
    let llm = FakeUpstream::start(Behaviour::Slow(
        Duration::from_secs(4),
        json!({"type": "text", "content": "太慢了"}),
    ))
    .await;
    let app = with_hook(&fake, &llm).await;
    let entry = app.config.find_account(Some("aibot")).unwrap();
    let mut seen = Vec::new();
    let started = std::time::Instant::now();
    let reply = simulate(
        &app,
        &entry.account,
        "讲讲",
        pulled_every(50, 300),
        &mut seen,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the wait is bounded"
    );
    assert!(!reply.finished);
    assert!(
        reply.note.as_deref().unwrap_or("").contains("not finished"),
        "{reply:?}"
    );
    // Another token: the server refuses the callback, and simulate says so.
    let mut wrong = entry.account.clone();
    wrong.token = wxgate::config::Secret::new("not-the-bot-token");
    let err = simulate(&app, &wrong, "讲讲", pulled_every(50, 300), &mut seen)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            wxgate::platform::simulate::SimError::Refused { status: 403, .. }
        ),
        "{err}"
    );
}

/// The callbacks recorded by `scripts/gen_wecom_bot_vectors.py` (written
/// from WeCom's documentation, checked with wechatpy), sent as they are.
#[tokio::test]
async fn recorded_callbacks_are_verified_opened_and_answered() {
    let text =
        std::fs::read_to_string(crate::support::fixtures_dir().join("wecom_bot/vectors.json"))
            .unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    let fake = FakeResponseUrl::start().await;
    let (app, client) = with_rules(&fake).await;
    let case = |kind: &str| {
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == kind)
            .unwrap_or_else(|| panic!("no {kind} case"))
            .clone()
    };
    let query = |c: &Value| -> Vec<(&'static str, String)> {
        let s = |k: &str| c[k].as_str().unwrap().to_owned();
        vec![
            ("msg_signature", s("msg_signature")),
            ("timestamp", s("timestamp")),
            ("nonce", s("nonce")),
        ]
    };
    // The URL check: the echostr's plaintext.
    let check = case("url_check");
    let mut q = query(&check);
    q.push(("echostr", check["encrypt"].as_str().unwrap().to_owned()));
    let res = app
        .http
        .get(format!("{}{PATH}", app.base))
        .query(&q)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        check["plaintext"].as_str().unwrap()
    );
    // A direct text: the rule's answer, finished in the first reply.
    let message = case("message");
    let body = json!({ "encrypt": message["encrypt"] }).to_string();
    let answer = client.send_recorded(&query(&message), body.clone()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.stream()["finish"], true);
    assert_eq!(answer.stream()["content"], "**价格表**见官网");
    // WeCom's retry of the same recording: the same stream.
    let again = client.send_recorded(&query(&message), body).await;
    assert_eq!(again.stream()["id"], answer.stream()["id"]);
    // An event is acknowledged with an empty 200; a tampered recording is refused.
    let event = case("event");
    let body = json!({ "encrypt": event["encrypt"] }).to_string();
    let acknowledged = client.send_recorded(&query(&event), body.clone()).await;
    assert_eq!((acknowledged.status, acknowledged.plain), (200, None));
    let mut forged = query(&event);
    forged[1].1 = (NOW + 1).to_string();
    assert_eq!(client.send_recorded(&forged, body).await.status, 403);
}

#[tokio::test]
async fn wecom_bot_a_shutdown_waits_for_the_stream_to_be_finished() {
    let redis = RedisServer::start();
    let fake = FakeResponseUrl::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(1500),
        json!({"type": "text", "content": "等到了"}),
    ))
    .await;
    let config = || {
        TestConfig::new()
            .add_account(account(&fake))
            .upstream(webhook_upstream(&hook, table([])))
            .rules(AGENT_RULES)
            .redis(&redis.url())
            .set("delivery.shutdown_grace_secs", 10)
    };
    let first = TestApp::builder().config(config()).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", first.base));
    let opened = client
        .send(
            &bot_text("msg-drain-1", "慢慢来", &fake.response_url("d1")),
            NOW,
        )
        .await;
    assert_eq!(opened.stream()["finish"], false);
    let id = opened.stream()["id"].as_str().unwrap().to_owned();
    assert!(eventually(Duration::from_secs(3), || !hook.hook_requests().is_empty()).await);
    // Stopping waits for the turn: once the node is gone, the stream is done.
    first.stop().await.unwrap().unwrap();
    let other = TestApp::builder().config(config()).now(NOW).spawn().await;
    let stream = WeComBotClient::new(format!("{}{PATH}", other.base))
        .refresh(&id, NOW + 2)
        .await;
    assert_eq!(
        (&stream["finish"], &stream["content"]),
        (&json!(true), &json!("等到了"))
    );
    assert_eq!(hook.hook_requests().len(), 1, "not run again");
}

#[tokio::test]
async fn wecom_bot_entering_the_chat_is_welcomed_by_a_rule_once() {
    let fake = FakeResponseUrl::start().await;
    let config = TestConfig::new()
        .rules("[[rules]]\nmatch = { event = \"enter_chat\" }\nreply = { type = \"text\", content = \"你好，我是机器人\" }\n")
        .add_account(account(&fake));
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", app.base));
    let event = |msgid: &str, eventtype: &str| {
        json!({"msgid": msgid, "aibotid": crate::support::fake_wecom_bot::BOT_ID, "create_time": NOW,
            "chattype": "single", "from": {"userid": "zhangsan"},
            "msgtype": "event", "event": {"eventtype": eventtype}})
    };
    let welcome = json!({"msgtype": "text", "text": {"content": "你好，我是机器人"}});
    let first = client.send(&event("ev-enter-1", "enter_chat"), NOW).await;
    assert_eq!(first.plain.as_ref(), Some(&welcome));
    // WeCom's retry of the callback: the same welcome, from the dedup record.
    let retry = client
        .send(&event("ev-enter-1", "enter_chat"), NOW + 1)
        .await;
    assert_eq!(retry.plain.as_ref(), Some(&welcome));
    // Other events have no answer.
    let other = client
        .send(&event("ev-card-1", "template_card_event"), NOW)
        .await;
    assert_eq!((other.status, other.plain), (200, None));
    let metrics = app.metrics.render();
    for outcome in ["replied", "duplicate", "ignored"] {
        let line = format!(
            "wxgate_requests_total{{outcome=\"{outcome}\",msg_type=\"event\",account=\"aibot\"}} 1"
        );
        assert!(metrics.lines().any(|l| l == line), "{line}: {metrics}");
    }
}

#[tokio::test]
async fn wecom_bot_a_welcome_too_slow_for_the_response_is_not_shown_and_counted() {
    let fake = FakeResponseUrl::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(600),
        json!({"type": "text", "content": "迟到的欢迎"}),
    ))
    .await;
    let config = TestConfig::new()
        .add_account(account(&fake))
        .upstream(webhook_upstream(&hook, table([])))
        .rules("[[rules]]\nmatch = { event = \"enter_chat\" }\nreply = { type = \"upstream\", upstream = \"agent\" }\n")
        .set("agent.passive_budget_ms", 100)
        .set("agent.interim_text", "正在思考…");
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let client = WeComBotClient::new(format!("{}{PATH}", app.base));
    let event = json!({"msgid": "ev-enter-slow", "aibotid": crate::support::fake_wecom_bot::BOT_ID,
        "create_time": NOW, "chattype": "single", "from": {"userid": "zhangsan"},
        "msgtype": "event", "event": {"eventtype": "enter_chat"}});
    // Neither the interim text nor a stream: a welcome is text in the response or nothing.
    let answer = client.send(&event, NOW).await;
    assert_eq!((answer.status, answer.plain), (200, None));
    let dropped = "wxgate_late_results_total{kind=\"dropped\"} 1";
    app.wait_for_metric(dropped).await;
    assert!(fake.pushed().is_empty());
}
