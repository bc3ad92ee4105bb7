//! Voice in: WeChat's transcript (`<Recognition>`) is a voice message's
//! text for the rules, `{content}` and the upstreams; a voice without one
//! gets the voice fallback instead of the text rules or an upstream.

use std::path::Path;
use std::process::Command;

use toml::Table;
use wxgate::message::xml::parse_str;

use crate::support::{
    table, text_xml, voice_xml, wecom_voice, AccountSpec, Behaviour, FakeUpstream, FakeWechat,
    TestApp, TestConfig, ACCOUNT,
};

const NOW: i64 = 1_750_000_000;
const FALLBACK: &str = "没听清，请发文字。";

const RULES: &str = r#"
[[rules]]
name = "price"
match = { contains = "多少钱" }
reply = { type = "text", content = "价格表（你问：{content}）" }

[[rules]]
name = "hello"
match = { text = "你好" }
reply = { type = "text", content = "hi {from_user}" }

[default_reply]
type = "text"
content = "default"
"#;

fn content(body: &str) -> String {
    parse_str(body)
        .unwrap_or_else(|e| panic!("not reply XML ({e}): {body}"))
        .child_text("Content")
        .unwrap_or_default()
        .to_owned()
}

async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).now(NOW).spawn().await
}

fn rules_config() -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::token_only(&ACCOUNT.token))
        .rules(RULES)
        .source("voice.toml")
}

#[tokio::test]
async fn a_voice_transcript_matches_a_contains_rule_and_fills_content() {
    let app = spawn(rules_config()).await;
    let (status, body) = app
        .post_plain(&voice_xml(Some("这个多少钱？"), NOW, 1))
        .await;
    assert_eq!(status, 200);
    assert_eq!(content(&body), "价格表（你问：这个多少钱？）");
    // A transcript no rule matches gets the default reply, as a text would.
    let (_, body) = app.post_plain(&voice_xml(Some("天气"), NOW, 2)).await;
    assert_eq!(content(&body), "default");
}

#[tokio::test]
async fn a_voice_without_transcript_gets_the_voice_fallback() {
    let app = spawn(rules_config().set("agent.voice_fallback_text", FALLBACK)).await;
    let (status, body) = app.post_plain(&voice_xml(None, NOW, 1)).await;
    assert_eq!((status, content(&body).as_str()), (200, FALLBACK));
    // Texts are untouched by it.
    let (_, body) = app.post_plain(&text_xml("天气", NOW, 2)).await;
    assert_eq!(content(&body), "default");

    // Unconfigured, the built-in text says what to do.
    let app = spawn(rules_config()).await;
    let (_, body) = app.post_plain(&voice_xml(None, NOW, 3)).await;
    assert_eq!(content(&body), wxgate::rules::DEFAULT_VOICE_FALLBACK_TEXT);
}

#[tokio::test]
async fn voice_as_text_off_keeps_voice_out_of_the_text_rules() {
    let app = spawn(rules_config().set("agent.voice_as_text", false)).await;
    let (_, body) = app.post_plain(&voice_xml(Some("多少钱"), NOW, 1)).await;
    assert_eq!(content(&body), "default");
    let (_, body) = app.post_plain(&voice_xml(None, NOW, 2)).await;
    assert_eq!(content(&body), "default");
}

fn openai(upstream: &FakeUpstream) -> Table {
    table([
        ("name", "llm".into()),
        ("protocol", "openai".into()),
        ("url", upstream.openai_base().into()),
        ("model", "test-model".into()),
        ("history_turns", 0.into()),
        ("timeout_ms", 5000.into()),
    ])
}

#[tokio::test]
async fn an_openai_upstream_gets_the_transcript_and_no_call_without_one() {
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let wechat = FakeWechat::start().await;
    let config = TestConfig::new()
        .account(AccountSpec::official_api(&ACCOUNT.token))
        .token_api(&wechat)
        .set("agent.passive_budget_ms", 2000)
        .set("agent.voice_fallback_text", FALLBACK)
        .upstream(openai(&llm))
        .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"llm\"\n")
        .source("voice-llm.toml");
    let app = spawn(config).await;

    let (_, body) = app.post_plain(&voice_xml(Some("讲个笑话"), NOW, 1)).await;
    assert_eq!(content(&body), "answer 1: 讲个笑话");
    let chats = llm.chat_requests();
    assert_eq!(chats.len(), 1);
    let messages = chats[0].body["messages"].as_array().unwrap();
    assert_eq!(messages.last().unwrap()["content"], "讲个笑话");

    let (_, body) = app.post_plain(&voice_xml(None, NOW, 2)).await;
    assert_eq!(content(&body), FALLBACK);
    assert_eq!(
        llm.chat_requests().len(),
        1,
        "no call for a voice without text"
    );
}

#[tokio::test]
async fn a_webhook_gets_the_transcript_as_content() {
    let hook = FakeUpstream::start(Behaviour::Reply(
        serde_json::json!({"type": "text", "content": "ok"}),
    ))
    .await;
    let wechat = FakeWechat::start().await;
    let config = TestConfig::new()
        .account(AccountSpec::official_api(&ACCOUNT.token))
        .token_api(&wechat)
        .set("agent.passive_budget_ms", 2000)
        .upstream(table([
            ("name", "hook".into()),
            ("protocol", "webhook".into()),
            ("url", hook.hook_url().into()),
        ]))
        .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"hook\"\n")
        .source("voice-hook.toml");
    let app = spawn(config).await;
    let (_, body) = app.post_plain(&voice_xml(Some("你好"), NOW, 1)).await;
    assert_eq!(content(&body), "ok");
    let sent = &hook.hook_requests()[0].body;
    assert_eq!(
        (sent["msg_type"].as_str(), sent["content"].as_str()),
        (Some("voice"), Some("你好"))
    );
}

#[tokio::test]
async fn wecom_voice_is_read_by_its_transcript_too() {
    const WC_TOKEN: &str = "wecomTestToken";
    const WC_KEY: &str = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o";
    let config = TestConfig::new()
        .account(AccountSpec::wecom(
            WC_TOKEN,
            WC_KEY,
            crate::support::fake_wechat::CORP_ID,
        ))
        .rules(RULES)
        .set("agent.voice_fallback_text", FALLBACK)
        .source("wecom-voice.toml");
    let app = spawn(config).await;
    let (status, body) = app.post_encrypted(&wecom_voice(Some("你好"), NOW, 1)).await;
    assert_eq!(status, 200);
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("Content"), Some("hi zhangsan"));
    let (_, body) = app.post_encrypted(&wecom_voice(None, NOW, 2)).await;
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("Content"), Some(FALLBACK));
}

#[test]
fn rules_test_reads_a_voice_by_its_recognition() {
    let dir = tempfile::tempdir().unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/wxgate.toml");
    let bin = env!("CARGO_BIN_EXE_wxgate");
    let run = |args: &[&str]| {
        let out = Command::new(bin)
            .arg("--config")
            .arg(&example)
            .args(args)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let out = run(&["rules", "test", "voice", "--recognition", "多少钱"]);
    assert!(
        out.contains("matched rule: price") && out.contains("价格表"),
        "{out}"
    );
    let out = run(&["rules", "test", "voice"]);
    assert!(
        out.contains("voice fallback") && out.contains("没能识别这条语音"),
        "{out}"
    );
}
