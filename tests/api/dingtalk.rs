//! DingTalk robots through the real server against the fake DingTalk: a
//! rule answered in the response, a slow upstream answered late through
//! the `sessionWebhook`, an expired or foreign webhook not used, and
//! signatures an hour off refused.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::fake_dingtalk::{
    event_crypto, event_push, robot_message, robot_text, signed_headers, DINGTALK_APP_KEY,
    DINGTALK_APP_SECRET, DINGTALK_EVENT_AES_KEY, DINGTALK_EVENT_TOKEN,
};
use crate::support::{
    eventually, table, AccountSpec, Behaviour, FakeDingTalk, FakeUpstream, TestApp, TestConfig,
};

const NOW: i64 = 1_700_000_000;
const PATH: &str = "/dingtalk";
const INTERIM: &str = "正在思考…";

const RULES: &str = r#"
[[rules]]
match = { text = "价格" }
reply = { type = "text", content = "**价格表**见官网" }
[default_reply]
type = "upstream"
upstream = "agent"
"#;

fn config(fake: &FakeDingTalk, upstream: &FakeUpstream) -> TestConfig {
    TestConfig::new()
        .add_account(
            AccountSpec::dingtalk()
                .name("robot")
                .set("path", PATH)
                .set("api_base_url", fake.base_url())
                .set("robot_api_base_url", fake.base_url())
                .set("token", DINGTALK_EVENT_TOKEN)
                .set("encoding_aes_key", DINGTALK_EVENT_AES_KEY)
                .rules(RULES),
        )
        .set("agent.passive_budget_ms", 100)
        .set("agent.interim_text", INTERIM)
        .upstream(table([
            ("name", "agent".into()),
            ("protocol", "webhook".into()),
            ("url", upstream.hook_url().into()),
            ("timeout_ms", 5000.into()),
        ]))
        .source("dingtalk.toml")
}

async fn spawn(fake: &FakeDingTalk, upstream: &FakeUpstream) -> TestApp {
    TestApp::builder()
        .config(config(fake, upstream))
        .now(NOW)
        .spawn()
        .await
}

fn slow(ms: u64, content: &str) -> Behaviour {
    Behaviour::Slow(
        Duration::from_millis(ms),
        json!({"type": "text", "content": content}),
    )
}

fn signed_now() -> Vec<(&'static str, String)> {
    signed_headers(NOW * 1000, DINGTALK_APP_SECRET)
}

/// Pushes an encrypted event with `query` (`signature=…&timestamp=…&nonce=…`).
async fn push_event(app: &TestApp, query: &str, body: &str) -> (u16, String) {
    let res = app
        .http
        .post(format!("{}{PATH}?{query}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("POST");
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn metrics(app: &TestApp) -> String {
    app.get("/metrics").await.1
}

async fn push(app: &TestApp, body: &str, headers: &[(&str, String)]) -> (u16, String) {
    let mut request = app
        .http
        .post(format!("{}{PATH}", app.base))
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let res = request.send().await.expect("POST");
    (res.status().as_u16(), res.text().await.unwrap())
}

fn markdown_text(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or_else(|_| panic!("not JSON: {body}"));
    assert_eq!(v["msgtype"], "markdown", "{body}");
    v["markdown"]["text"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn a_rule_is_answered_in_the_response() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn(&fake, &hook).await;
    let webhook = fake.session("s1");
    let body = robot_text("msgA1", "价格", &webhook, (NOW + 5400) * 1000);
    let (status, answer) = push(&app, &body, &signed_now()).await;
    assert_eq!(status, 200);
    assert_eq!(markdown_text(&answer), "**价格表**见官网");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["markdown"]["title"], "价格表见官网");
    assert!(fake.sent().is_empty());
    assert!(hook.hook_requests().is_empty());
}

#[tokio::test]
async fn a_signature_an_hour_off_or_wrong_is_refused() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn(&fake, &hook).await;
    let body = robot_text("msgB1", "价格", &fake.session("s1"), (NOW + 5400) * 1000);
    let hour = 3600 * 1000;
    for at in [NOW * 1000 - hour - 1, NOW * 1000 + hour + 1] {
        let (status, _) = push(&app, &body, &signed_headers(at, DINGTALK_APP_SECRET)).await;
        assert_eq!(status, 403, "signed at {at}");
    }
    // Within the hour it is accepted.
    let (status, _) = push(
        &app,
        &body,
        &signed_headers(NOW * 1000 - hour + 1000, DINGTALK_APP_SECRET),
    )
    .await;
    assert_eq!(status, 200);
    // Another secret's signature, or none: 403; a body that is no message: 400.
    let forged = signed_headers(NOW * 1000, "not-the-secret");
    assert_eq!(push(&app, &body, &forged).await.0, 403);
    assert_eq!(push(&app, &body, &[]).await.0, 403);
    assert_eq!(push(&app, "[1,2]", &signed_now()).await.0, 400);
    assert!(hook.hook_requests().is_empty());
}

#[tokio::test]
async fn a_slow_upstream_is_answered_late_through_the_session_webhook() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(slow(600, "上游的**回答**")).await;
    let app = spawn(&fake, &hook).await;
    let body = robot_text(
        "msgC1",
        "讲讲",
        &fake.session("s-late"),
        (NOW + 5400) * 1000,
    );
    let (status, answer) = push(&app, &body, &signed_now()).await;
    assert_eq!(status, 200);
    assert_eq!(markdown_text(&answer), INTERIM);
    assert!(eventually(Duration::from_secs(6), || fake.sent().len() == 1).await);
    let (session, sent) = &fake.sent()[0];
    assert_eq!(session, "s-late");
    // DingTalk renders markdown: the answer is sent as markdown, unflattened.
    assert_eq!(sent["msgtype"], "markdown");
    assert_eq!(sent["markdown"]["text"], "上游的**回答**");
}

#[tokio::test]
async fn an_expired_or_foreign_session_webhook_is_not_used() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(slow(400, "迟到的回答")).await;
    let app = spawn(&fake, &hook).await;
    let headers = signed_now();
    // Expired a second ago.
    let expired = robot_text("msgD1", "讲讲", &fake.session("s-old"), (NOW - 1) * 1000);
    assert_eq!(push(&app, &expired, &headers).await.0, 200);
    // A webhook outside the account's api_base_url.
    let foreign = robot_text(
        "msgD2",
        "再讲讲",
        "http://127.0.0.1:9/robot/sendBySession?session=x",
        (NOW + 5400) * 1000,
    );
    assert_eq!(push(&app, &foreign, &headers).await.0, 200);
    assert!(eventually(Duration::from_secs(5), || hook.hook_requests().len() == 2).await);
    // Both turns ran; neither answer went anywhere. A later message with a
    // live webhook is answered through it, so the sender is not stuck.
    let live = robot_text(
        "msgD3",
        "还在吗",
        &fake.session("s-new"),
        (NOW + 5400) * 1000,
    );
    assert_eq!(push(&app, &live, &headers).await.0, 200);
    assert!(eventually(Duration::from_secs(6), || !fake.sent().is_empty()).await);
    assert!(
        fake.sent().iter().all(|(s, _)| s == "s-new"),
        "{:?}",
        fake.sent()
    );
}

#[tokio::test]
async fn check_url_is_answered_with_the_encrypted_success_and_forgeries_are_refused() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn(&fake, &hook).await;
    let (query, body) = event_push(
        r#"{"EventType":"check_url"}"#,
        "1700000000000",
        "n1",
        DINGTALK_APP_KEY,
    );
    let (status, answer) = push_event(&app, &query, &body).await;
    assert_eq!(status, 200, "{answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    let opened = event_crypto(DINGTALK_APP_KEY).open_signed(
        DINGTALK_EVENT_TOKEN,
        v["timeStamp"].as_str().unwrap(),
        v["nonce"].as_str().unwrap(),
        v["encrypt"].as_str().unwrap(),
        v["msg_signature"].as_str().unwrap(),
    );
    assert_eq!(opened.as_deref(), Ok("success"));
    // A bad signature and another app's envelope: 403; no encrypt JSON: 400.
    let forged = query.replacen("signature=", "signature=0", 1);
    assert_eq!(push_event(&app, &forged, &body).await.0, 403);
    let (q2, b2) = event_push(r#"{"EventType":"check_url"}"#, "1", "n2", "dingsomeoneelse");
    assert_eq!(push_event(&app, &q2, &b2).await.0, 403);
    assert_eq!(push_event(&app, &query, "{\"encrypt\": 5}").await.0, 403);
    assert!(metrics(&app).await.contains("outcome=\"verified\""));
}

#[tokio::test]
async fn an_expired_webhook_is_answered_through_batch_send_with_one_token() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(slow(300, "迟到的**回答**")).await;
    let app = spawn(&fake, &hook).await;
    for id in ["msgE1", "msgE2"] {
        let body = robot_message(id, "讲讲", &fake.session("s-old"), (NOW - 1) * 1000, "1");
        assert_eq!(push(&app, &body, &signed_now()).await.0, 200);
    }
    assert!(eventually(Duration::from_secs(8), || fake.api_sent().len() == 2).await);
    assert!(fake.sent().is_empty());
    for (endpoint, sent) in fake.api_sent() {
        assert_eq!(endpoint, "batchSend");
        assert_eq!(sent["userIds"], json!(["manager0001"]));
        assert_eq!(sent["msgKey"], "sampleMarkdown");
        let param: Value = serde_json::from_str(sent["msgParam"].as_str().unwrap()).unwrap();
        assert_eq!(param["text"], "迟到的**回答**");
    }
    assert_eq!(fake.token_fetches(), 1);
    // A revoked token is refetched once; a give-up refusal is counted.
    fake.revoke_tokens();
    let body = robot_message(
        "msgE3",
        "再讲",
        &fake.session("s-old"),
        (NOW - 1) * 1000,
        "2",
    );
    assert_eq!(push(&app, &body, &signed_now()).await.0, 200);
    assert!(eventually(Duration::from_secs(8), || fake.api_sent().len() == 3).await);
    assert_eq!(fake.api_sent()[2].0, "groupMessages/send");
    assert_eq!(fake.api_sent()[2].1["openConversationId"], "cidwxgate0001");
    assert_eq!(fake.token_fetches(), 2);
    fake.refuse_next_send(400, "invalidParameter.robotCode.auth");
    let body = robot_message(
        "msgE4",
        "还有",
        &fake.session("s-old"),
        (NOW - 1) * 1000,
        "1",
    );
    assert_eq!(push(&app, &body, &signed_now()).await.0, 200);
    let refused = "wxgate_agent_failures_total{kind=\"dingtalk_send_refused\"} 1";
    app.wait_for_metric(refused).await;
    assert_eq!(fake.api_sent().len(), 3);
}

#[tokio::test]
async fn a_re_pushed_event_is_acknowledged_again_and_answered_once() {
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn(&fake, &hook).await;
    let answered = |outcome: &str| {
        format!(
            "wxgate_requests_total{{outcome=\"{outcome}\",msg_type=\"event\",account=\"robot\"}} 1"
        )
    };
    let seen = |line: String| {
        let app = &app;
        crate::support::eventually_async(Duration::from_secs(5), move || {
            let line = line.clone();
            async move { metrics(app).await.lines().any(|l| l == line) }
        })
    };
    let event = r#"{"EventType":"user_add_org","EventId":"ev-repush-1","UserId":["u1"]}"#;
    let (query, body) = event_push(event, "1700000000000", "n1", DINGTALK_APP_KEY);
    let (status, answer) = push_event(&app, &query, &body).await;
    assert_eq!(status, 200, "{answer}");
    assert!(seen(answered("success")).await, "the event was answered");
    // DingTalk pushes it again: a fresh envelope (nonce, timestamp), the same event.
    let (query, body) = event_push(event, "1700000005000", "n2", DINGTALK_APP_KEY);
    let (status, answer) = push_event(&app, &query, &body).await;
    assert_eq!(status, 200, "acknowledged again: {answer}");
    let v: Value = serde_json::from_str(&answer).unwrap();
    assert!(v["encrypt"].is_string(), "{answer}");
    assert!(
        seen(answered("duplicate")).await,
        "the re-push was recognised as the same event: {}",
        metrics(&app).await
    );
    let all = metrics(&app).await;
    assert!(
        all.lines().any(|l| l == answered("success")),
        "answered once: {all}"
    );
}

#[tokio::test]
async fn the_consoles_conversations_page_lists_answers_given_in_the_response() {
    let fake = FakeDingTalk::start().await;
    let config = crate::support::ConsoleApp::config().add_account(
        AccountSpec::dingtalk()
            .name("robot")
            .set("path", PATH)
            .set("api_base_url", fake.base_url())
            .rules("[[rules]]\nmatch = { text = \"价格\" }\nreply = { type = \"text\", content = \"**价格表**见官网\" }\n"),
    );
    let console = crate::support::ConsoleApp::start(config).await;
    let now_ms = crate::support::now_unix() * 1000;
    let body = robot_text("msgV1", "价格", &fake.session("s1"), now_ms + 5_400_000);
    let headers = signed_headers(now_ms, DINGTALK_APP_SECRET);
    let (status, answer) = push(&console.app, &body, &headers).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(markdown_text(&answer), "**价格表**见官网");
    let (entries, text) = console.signed_in().await.conversations("robot").await;
    assert_eq!(entries.len(), 1, "{text}");
    assert_eq!(entries[0]["outcome"], "replied");
    assert_eq!(entries[0]["msg_type"], "text");
    assert_eq!(entries[0]["reply_type"], "text");
}

/// The robot's account as configured, changed by `edit` (another app's secrets).
fn simulator_account(
    app: &TestApp,
    edit: impl FnOnce(&mut wxgate::config::AccountConfig),
) -> wxgate::config::AccountConfig {
    let mut account = app
        .config
        .find_account(Some("robot"))
        .unwrap()
        .account
        .clone();
    edit(&mut account);
    account
}

/// The app on the real clock: simulate signs with the time of day.
async fn spawn_now(fake: &FakeDingTalk, upstream: &FakeUpstream) -> TestApp {
    TestApp::builder()
        .config(config(fake, upstream))
        .now(crate::support::now_unix())
        .spawn()
        .await
}

async fn simulate(
    app: &TestApp,
    account: &wxgate::config::AccountConfig,
    kind: wxgate::platform::simulate::Kind,
) -> Result<wxgate::platform::simulate::JsonReply, wxgate::platform::simulate::SimError> {
    use wxgate::platform::simulate::{send_json, Parties, Wait};
    let parties = Parties {
        from_user: "simulated-user".into(),
        to_user: "$:LWCP_v1:$bot".into(),
    };
    let url = format!("{}{PATH}", app.base);
    send_json(account, &url, &kind, &parties, Wait::default(), &mut |_| {}).await
}

#[tokio::test]
async fn simulate_sends_a_signed_robot_message_answered_in_the_response() {
    use wxgate::platform::simulate::{Kind, SimError};
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn_now(&fake, &hook).await;
    let reply = simulate(
        &app,
        &simulator_account(&app, |_| {}),
        Kind::Text("价格".into()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.answer["msgtype"], "markdown", "{}", reply.answer);
    assert_eq!(reply.text.as_deref(), Some("**价格表**见官网"));
    assert!(reply.message_id.starts_with("msg"), "{}", reply.message_id);
    // An encrypted event is acknowledged with the encrypted success.
    let event = simulate(
        &app,
        &simulator_account(&app, |_| {}),
        Kind::event("user_add_org", None),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(event.encrypted);
    assert_eq!(event.answer, json!("success"));
    // Another AppSecret's signature is refused, and reported as such.
    let wrong = simulator_account(&app, |a| {
        a.app_secret = Some(wxgate::config::Secret::new("not-the-app-secret"));
    });
    let err = simulate(&app, &wrong, Kind::Text("价格".into()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SimError::Refused { status: 403, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("AppSecret"), "{err}");
    // A kind with no DingTalk form is refused before anything is sent.
    let err = simulate(&app, &simulator_account(&app, |_| {}), Kind::Video)
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::Unsupported(_)), "{err}");
    assert!(err.to_string().contains("text, image, event"), "{err}");
    assert!(fake.sent().is_empty() && fake.api_sent().is_empty());
    assert!(hook.hook_requests().is_empty());
}

#[tokio::test]
async fn verify_url_sends_check_url_and_checks_the_encrypted_success() {
    use wxgate::platform::simulate::{verify_url, SimError};
    let fake = FakeDingTalk::start().await;
    let hook = FakeUpstream::start(Behaviour::Reply(json!({"type": "text", "content": "x"}))).await;
    let app = spawn(&fake, &hook).await;
    let url = format!("{}{PATH}", app.base);
    let right = simulator_account(&app, |_| {});
    assert_eq!(
        verify_url(&right, &url)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        "success"
    );
    // Another token: the server refuses the push.
    let wrong = simulator_account(&app, |a| {
        a.token = wxgate::config::Secret::new("not-the-event-token");
    });
    let err = verify_url(&wrong, &url).await.unwrap_err();
    assert!(
        matches!(err, SimError::Refused { status: 403, .. }),
        "{err}"
    );
    // Another receive id (corp_id): the envelope is another app's.
    let other = simulator_account(&app, |a| {
        let key = a.crypto.as_ref().unwrap().key().clone();
        a.crypto = Some(wxgate::crypto::MessageCrypto::new(key, "dingsomeoneelse"));
    });
    assert!(verify_url(&other, &url).await.is_err());
    // A robot-only account has no URL check, and says so.
    let robot_only = simulator_account(&app, |a| {
        a.token = wxgate::config::Secret::new("");
        a.crypto = None;
    });
    let err = verify_url(&robot_only, &url).await.unwrap_err();
    assert!(matches!(err, SimError::Settings(_)), "{err}");
    assert!(err.to_string().contains("no URL check"), "{err}");
}
