//! The agent bridge end to end: the real server, a fake upstream and the
//! fake WeChat API, all on loopback.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use toml::Table;

use crate::support::fake_wechat::APP_ID;
use crate::support::{
    self, eventually, openai_upstream, plain_content, table, text_reply, text_xml,
    webhook_upstream, Behaviour, FakeUpstream, FakeWechat, TestApp, TestConfig, ACCOUNT, INTERIM,
};

const NOW: i64 = 1_750_000_000;
const HOOK_SECRET: &str = "hook-secret-0123456789";
const LLM_KEY: &str = "sk-local-test-key";
/// The shared agent account, with a fallback text and the upstreams' secrets.
fn agent_config(wechat: &FakeWechat, upstream: Table) -> TestConfig {
    support::agent_config(wechat, upstream)
        .set("agent.fallback_text", "暂时无法回答")
        .env("HOOK_SECRET", HOOK_SECRET)
        .env("LLM_KEY", LLM_KEY)
        .source("agent.toml")
}

/// The app serving `config` at [`NOW`].
async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).now(NOW).spawn().await
}

fn webhook(upstream: &FakeUpstream) -> Table {
    webhook_upstream(upstream, table([("secret_env", "HOOK_SECRET".into())]))
}

fn openai(upstream: &FakeUpstream) -> Table {
    openai_upstream(
        upstream,
        table([
            ("system_prompt", "你是客服".into()),
            ("api_key_env", "LLM_KEY".into()),
            ("history_turns", 2.into()),
        ]),
    )
}

fn text_of(json: &str) -> Value {
    json!({ "type": "text", "content": json })
}

#[tokio::test]
async fn a_fast_answer_is_the_passive_reply_and_the_request_is_signed() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(text_of("你好，我是助手"))).await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;

    let (status, body) = app
        .post_plain(&text_xml("在吗", NOW, 4561255354251345929))
        .await;
    assert_eq!(
        (status, plain_content(&body).as_str()),
        (200, "你好，我是助手")
    );

    let requests = hook.hook_requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(
        r.body,
        json!({"app_id": APP_ID, "msg_id": "4561255354251345929", "msg_type": "text",
               "from_user": ACCOUNT.openid, "to_user": ACCOUNT.original_id,
               "create_time": NOW, "content": "在吗"})
    );
    assert_eq!(
        r.signature.as_deref(),
        Some(wxgate::agent::webhook::signature(HOOK_SECRET, &r.raw).as_str())
    );
    // Static rules still answer without the upstream.
    let (_, body) = app.post_plain(&text_xml("菜单", NOW, 2)).await;
    assert_eq!(plain_content(&body), "static menu");
    assert_eq!(hook.hook_requests().len(), 1);

    assert!(wechat.custom_sends().is_empty());
    assert!(
        wechat.typing_calls().is_empty(),
        "no typing for passive answers"
    );
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_agent_deliveries_total{kind=\"passive\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_upstream_duration_seconds_count{upstream=\"agent\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn no_reply_answers_success() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "success"}))).await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;
    assert_eq!(
        app.post_plain(&text_xml("a", NOW, 1)).await,
        (200, "success".into())
    );
    hook.set_behaviour(Behaviour::NoContent);
    assert_eq!(
        app.post_plain(&text_xml("b", NOW, 2)).await,
        (200, "success".into())
    );
}

#[tokio::test]
async fn a_slow_answer_gets_the_interim_reply_then_ordered_custom_messages() {
    let wechat = FakeWechat::start().await;
    // About 6 KB of sentences: three or four customer-service messages.
    let long: String = (1..=120)
        .map(|i| format!("这是第{i}句比较长的回答内容。"))
        .collect();
    assert!(long.len() > 4000);
    let hook =
        FakeUpstream::start(Behaviour::Slow(Duration::from_millis(1200), text_of(&long))).await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;

    let started = Instant::now();
    let (status, body) = app.post_plain(&text_xml("讲个长故事", NOW, 7)).await;
    let took = started.elapsed();
    assert_eq!((status, plain_content(&body).as_str()), (200, INTERIM));
    assert!(
        took < Duration::from_millis(1000),
        "answered at once ({took:?})"
    );

    assert!(
        eventually(Duration::from_secs(6), || wechat.sent_texts().concat()
            == long)
        .await,
        "the full answer never arrived: {:?}",
        wechat.sent_texts()
    );
    // Nothing more comes afterwards.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let parts = wechat.sent_texts();
    assert!(parts.len() >= 3, "{parts:?}");
    assert!(
        parts.iter().all(|p| p.len() <= 2000 && p.ends_with('。')),
        "{parts:?}"
    );
    assert_eq!(parts.concat(), long, "in order, nothing lost");
    for send in wechat.custom_sends() {
        assert_eq!(send["touser"], ACCOUNT.openid.as_str());
        assert_eq!(send["msgtype"], "text");
    }
    // "Typing…" once, before the answer.
    assert_eq!(
        wechat.typing_calls(),
        [json!({"touser": ACCOUNT.openid, "command": "Typing"})]
    );
    assert_eq!(wechat.outbox_order()[0], "/cgi-bin/message/custom/typing");
    let metrics = app.metrics.render();
    assert!(
        metrics.contains("wxgate_agent_deliveries_total{kind=\"late\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_late_results_total{kind=\"delivered\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "wxgate_requests_total{outcome=\"deferred\",msg_type=\"text\",account=\"default\"} 1"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("wxgate_deadline_fallbacks_total 0"),
        "{metrics}"
    );
}

#[tokio::test]
async fn late_media_and_news_use_their_custom_forms() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(700),
        json!({"type": "news", "articles": [
            {"title": "T1", "description": "D1", "url": "https://example.com/1", "pic_url": "https://example.com/1.jpg"},
            {"title": "T2", "url": "https://example.com/2"}]}),
    ))
    .await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;
    app.post_plain(&text_xml("news please", NOW, 1)).await;
    assert!(eventually(Duration::from_secs(4), || wechat.custom_sends().len() == 1).await);
    assert_eq!(
        wechat.custom_sends()[0]["news"],
        json!({"articles": [{"title": "T1", "description": "D1", "url": "https://example.com/1", "picurl": "https://example.com/1.jpg"}]})
    );

    hook.set_behaviour(Behaviour::Slow(
        Duration::from_millis(700),
        json!({"type": "image", "media_id": "MEDIA_1"}),
    ));
    app.post_plain(&text_xml("image please", NOW, 2)).await;
    assert!(eventually(Duration::from_secs(4), || wechat.custom_sends().len() == 2).await);
    assert_eq!(
        wechat.custom_sends()[1],
        json!({"touser": ACCOUNT.openid, "msgtype": "image", "image": {"media_id": "MEDIA_1"}})
    );
}

#[tokio::test]
async fn wechat_retries_of_a_slow_message_start_one_upstream_call_and_one_delivery() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(1500),
        text_of("慢慢的回答"),
    ))
    .await;
    let app = Arc::new(spawn(agent_config(&wechat, webhook(&hook))).await);
    let xml = text_xml("重试我", NOW, 99);
    // The first delivery, a retry while it is in flight, two after it was answered.
    let first = {
        let (app, xml) = (app.clone(), xml.clone());
        tokio::spawn(async move { app.post_plain(&xml).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let in_flight = app.post_plain(&xml).await;
    let first = first.await.unwrap();
    let later = app.post_plain(&xml).await;
    let last = app.post_plain(&xml).await;
    for (status, body) in [&first, &in_flight, &later, &last] {
        assert_eq!((*status, plain_content(body).as_str()), (200, INTERIM));
    }
    assert!(eventually(Duration::from_secs(5), || !wechat.custom_sends().is_empty()).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(hook.hook_requests().len(), 1, "one upstream call");
    assert_eq!(wechat.sent_texts(), ["慢慢的回答"], "one delivery");
    assert_eq!(wechat.typing_calls().len(), 1);
}

#[tokio::test]
async fn history_carries_across_turns_and_resets_on_the_command() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let app = spawn(agent_config(&wechat, openai(&llm))).await;

    let (_, a1) = app.post_plain(&text_xml("第一问", NOW, 1)).await;
    assert_eq!(plain_content(&a1), "answer 1: 第一问");
    let (_, a2) = app.post_plain(&text_xml("第二问", NOW, 2)).await;
    assert_eq!(plain_content(&a2), "answer 2: 第二问");
    let (_, a3) = app.post_plain(&text_xml("第三问", NOW, 3)).await;
    assert_eq!(plain_content(&a3), "answer 3: 第三问");

    let roles = |i: usize| -> Vec<(String, String)> {
        llm.chat_requests()[i].body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["role"].as_str().unwrap().to_owned(),
                    m["content"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let pairs = |list: &[(&str, &str)]| -> Vec<(String, String)> {
        list.iter()
            .map(|(r, c)| (r.to_string(), c.to_string()))
            .collect()
    };
    assert_eq!(
        roles(0),
        pairs(&[("system", "你是客服"), ("user", "第一问")])
    );
    assert_eq!(
        roles(1),
        pairs(&[
            ("system", "你是客服"),
            ("user", "第一问"),
            ("assistant", "answer 1: 第一问"),
            ("user", "第二问"),
        ])
    );
    // history_turns = 2: the oldest turn has been dropped by the third question.
    assert_eq!(
        roles(2),
        pairs(&[
            ("system", "你是客服"),
            ("user", "第一问"),
            ("assistant", "answer 1: 第一问"),
            ("user", "第二问"),
            ("assistant", "answer 2: 第二问"),
            ("user", "第三问"),
        ])
    );
    let first = &llm.chat_requests()[0];
    assert_eq!(first.body["model"], "test-model");
    assert_eq!(
        first.authorization.as_deref(),
        Some(format!("Bearer {LLM_KEY}").as_str())
    );

    // The reset command answers at once and never reaches the model.
    let (_, reset) = app.post_plain(&text_xml("/reset", NOW, 4)).await;
    assert_eq!(plain_content(&reset), wxgate::agent::DEFAULT_RESET_REPLY);
    assert_eq!(llm.chat_requests().len(), 3);
    let (_, a4) = app.post_plain(&text_xml("新话题", NOW, 5)).await;
    assert_eq!(plain_content(&a4), "answer 4: 新话题");
    assert_eq!(
        roles(3),
        pairs(&[("system", "你是客服"), ("user", "新话题")])
    );
}

#[tokio::test]
async fn a_slow_model_answers_late_and_its_answer_joins_the_history() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_delay(Duration::from_millis(800));
    let app = spawn(agent_config(&wechat, openai(&llm))).await;
    let (_, body) = app.post_plain(&text_xml("慢问题", NOW, 1)).await;
    assert_eq!(plain_content(&body), INTERIM);
    assert!(
        eventually(Duration::from_secs(4), || wechat.sent_texts()
            == ["answer 1: 慢问题"])
        .await,
        "{:?}",
        wechat.sent_texts()
    );
    llm.set_chat_delay(Duration::ZERO);
    let (_, body) = app.post_plain(&text_xml("下一个", NOW, 2)).await;
    assert_eq!(plain_content(&body), "answer 2: 下一个");
    let messages = &llm.chat_requests()[1].body["messages"];
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "answer 1: 慢问题"})
    );
}

#[tokio::test]
async fn history_keeps_only_the_configured_turns() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let app = spawn(agent_config(&wechat, openai(&llm))).await;
    for i in 1..=4 {
        app.post_plain(&text_xml(&format!("q{i}"), NOW, i)).await;
    }
    let sent = llm.chat_requests()[3].body["messages"].clone();
    let contents: Vec<_> = sent
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["content"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        contents,
        ["你是客服", "q2", "answer 2: q2", "q3", "answer 3: q3", "q4"]
    );
}

#[tokio::test]
async fn upstream_failures_answer_the_fallback_text() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Fail(500)).await;
    let mut upstream = webhook(&hook);
    upstream.insert("timeout_ms".into(), 200.into());
    let app = spawn(agent_config(&wechat, upstream)).await;
    let (_, body) = app.post_plain(&text_xml("a", NOW, 1)).await;
    assert_eq!(plain_content(&body), "暂时无法回答");
    hook.set_behaviour(Behaviour::Malformed);
    let (_, body) = app.post_plain(&text_xml("b", NOW, 2)).await;
    assert_eq!(plain_content(&body), "暂时无法回答");
    hook.set_behaviour(Behaviour::Reply(json!({"type": "text"})));
    let (_, body) = app.post_plain(&text_xml("c", NOW, 3)).await;
    assert_eq!(plain_content(&body), "暂时无法回答");
    // Slower than its own timeout (and faster than the passive budget).
    hook.set_behaviour(Behaviour::Slow(Duration::from_secs(3), text_of("too late")));
    let started = Instant::now();
    let (_, body) = app.post_plain(&text_xml("d", NOW, 4)).await;
    assert_eq!(plain_content(&body), "暂时无法回答");
    assert!(started.elapsed() < Duration::from_millis(400));
    let metrics = app.metrics.render();
    for kind in ["error", "malformed", "timeout"] {
        let want = if kind == "malformed" { 2 } else { 1 };
        assert!(
            metrics.contains(&format!(
                "wxgate_agent_failures_total{{kind=\"{kind}\"}} {want}"
            )),
            "{kind}: {metrics}"
        );
    }
    assert!(wechat.custom_sends().is_empty());
}

#[tokio::test]
async fn a_late_failure_is_delivered_as_the_fallback_text() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Fail(502)).await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;
    // An upstream that takes long to fail: slow, then not a reply.
    hook.set_behaviour(Behaviour::Slow(
        Duration::from_millis(700),
        json!("not a reply"),
    ));
    let (_, body) = app.post_plain(&text_xml("x", NOW, 1)).await;
    assert_eq!(plain_content(&body), INTERIM);
    assert!(
        eventually(Duration::from_secs(4), || wechat.sent_texts()
            == ["暂时无法回答"])
        .await
    );
}

#[tokio::test]
async fn out_of_window_and_quota_spent_are_never_retried() {
    for (code, kind) in [(45015, "send_45015"), (45047, "send_45047")] {
        let wechat = FakeWechat::start().await;
        let hook = FakeUpstream::start(Behaviour::Slow(
            Duration::from_millis(600),
            text_of(&"很长的句子。".repeat(400)),
        ))
        .await;
        let app = spawn(agent_config(&wechat, webhook(&hook))).await;
        wechat.fail_next_sends(&[code]);
        app.post_plain(&text_xml("late", NOW, 1)).await;
        let failed = format!("wxgate_agent_failures_total{{kind=\"{kind}\"}} 1");
        assert!(
            eventually(Duration::from_secs(4), || app
                .metrics
                .render()
                .contains(&failed))
            .await,
            "{code}: {}",
            app.metrics.render()
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        // One attempt; the remaining parts of the answer are not tried either.
        assert_eq!(wechat.api_calls("custom/send"), 1, "{code}");
        assert!(wechat.custom_sends().is_empty());
        let metrics = app.metrics.render();
        assert!(
            metrics.contains("wxgate_late_results_total{kind=\"dropped\"} 1"),
            "{metrics}"
        );
    }
}

#[tokio::test]
async fn busy_and_stale_tokens_on_send_are_retried_a_bounded_number_of_times() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(600),
        text_of("终于到了"),
    ))
    .await;
    let app = spawn(agent_config(&wechat, webhook(&hook))).await;
    // Busy once, then the token is refused once: both are recovered from.
    wechat.fail_next_sends(&[-1, 40001]);
    app.post_plain(&text_xml("late", NOW, 1)).await;
    assert!(
        eventually(Duration::from_secs(6), || wechat.sent_texts()
            == ["终于到了"])
        .await
    );
    assert_eq!(wechat.api_calls("custom/send"), 3);
}

#[tokio::test]
async fn beyond_the_concurrency_cap_the_overload_reply_applies_at_once() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Slow(
        Duration::from_millis(1000),
        text_of("done"),
    ))
    .await;
    let mut upstream = webhook(&hook);
    upstream.insert("max_concurrency".into(), 1.into());
    let config =
        agent_config(&wechat, upstream).set("delivery.overload_reply", text_reply("客服稍等"));
    let app = Arc::new(spawn(config).await);
    let first = {
        let app = app.clone();
        tokio::spawn(async move { app.post_plain(&text_xml("one", NOW, 1)).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (_, body) = app.post_plain(&text_xml("two", NOW, 2)).await;
    assert_eq!(plain_content(&body), "客服稍等");
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(plain_content(&first.await.unwrap().1), INTERIM);
    assert_eq!(hook.hook_requests().len(), 1);
    assert!(app
        .metrics
        .render()
        .contains("wxgate_agent_failures_total{kind=\"overload\"} 1"));
    // The permit comes back once the call ends.
    assert!(eventually(Duration::from_secs(3), || !wechat.custom_sends().is_empty()).await);
    hook.set_behaviour(Behaviour::Reply(text_of("free again")));
    let (_, body) = app.post_plain(&text_xml("three", NOW, 3)).await;
    assert_eq!(plain_content(&body), "free again");
}

#[tokio::test]
async fn flagged_answers_are_replaced_by_the_moderation_template() {
    let wechat = FakeWechat::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(text_of("不该说的话"))).await;
    // The moderation endpoint: another fake webhook answering {"flagged": …}.
    let moderation = FakeUpstream::start(Behaviour::Reply(json!({"flagged": true}))).await;
    let mut config = agent_config(&wechat, webhook(&hook)).build();
    config.agent.moderation = Some(wxgate::agent::ModerationSettings {
        url: moderation.hook_url(),
        template: "这个问题我无法回答".into(),
        timeout: Duration::from_secs(2),
    });
    let app = TestApp::builder().config(config).now(NOW).spawn().await;
    let (_, body) = app.post_plain(&text_xml("x", NOW, 1)).await;
    assert_eq!(plain_content(&body), "这个问题我无法回答");
    assert_eq!(
        moderation.hook_requests()[0].body,
        json!({"input": "不该说的话"})
    );
    moderation.set_behaviour(Behaviour::Reply(json!({"flagged": false})));
    let (_, body) = app.post_plain(&text_xml("y", NOW, 2)).await;
    assert_eq!(plain_content(&body), "不该说的话");
    // A check that fails does not let the answer through.
    moderation.set_behaviour(Behaviour::Fail(500));
    let (_, body) = app.post_plain(&text_xml("z", NOW, 3)).await;
    assert_eq!(plain_content(&body), "这个问题我无法回答");
}

#[test]
fn the_example_agent_configs_pass_check_config() {
    for name in ["agent-webhook.toml", "agent-openai.toml"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("config")
            .join(name);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_wxgate"))
            .args(["check-config", "--config"])
            .arg(&path)
            .env_remove("WXGATE_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
