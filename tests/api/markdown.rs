//! Upstream answers made fit for WeChat, end to end: markdown from an
//! `openai` upstream arrives as plain text (links as `<a href>` on an
//! Official Account), converted before a long answer is split, and
//! characters XML 1.0 cannot hold never reach a reply.

use std::time::Duration;

use serde_json::json;
use toml::Table;
use wxgate::message::xml::parse_str;

use crate::support::{
    eventually, openai_upstream, plain_content, table, text_xml, AccountSpec, Behaviour,
    FakeUpstream, FakeWechat, TestApp, TestConfig, ACCOUNT, INTERIM,
};

const NOW: i64 = 1_750_000_000;

const MARKDOWN: &str = "## 价格\n\n我们有**两种**套餐：\n\n- 基础版：*5 元*\n- 高级版：`9 元`\n\n| 套餐 | 价格 |\n|---|---|\n| 基础 | 5 |\n\n> 限时优惠\n\n详见[价格页](https://example.com/pricing)。\n\n```\nprice --all\n```";

const PLAIN: &str = "价格\n\n我们有两种套餐：\n\n• 基础版：5 元\n• 高级版：9 元\n\n套餐 | 价格\n基础 | 5\n\n> 限时优惠\n\n详见<a href=\"https://example.com/pricing\">价格页</a>。\n\nprice --all";

fn config(wechat: &FakeWechat, upstream: Table) -> TestConfig {
    TestConfig::new()
        .account(AccountSpec::official_api(&ACCOUNT.token))
        .token_api(wechat)
        .set("agent.passive_budget_ms", 600)
        .set("agent.interim_text", INTERIM)
        .upstream(upstream)
        .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"agent\"\n")
        .source("markdown.toml")
}

fn openai(llm: &FakeUpstream, extra: &[(&str, &str)]) -> Table {
    let mut t = openai_upstream(llm, table([("history_turns", 0.into())]));
    for (k, v) in extra {
        t.insert((*k).into(), (*v).into());
    }
    t
}

async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).now(NOW).spawn().await
}

#[tokio::test]
async fn an_openai_markdown_answer_arrives_as_plain_text() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_answer(MARKDOWN);
    let app = spawn(config(&wechat, openai(&llm, &[]))).await;
    let (status, body) = app.post_plain(&text_xml("多少钱", NOW, 1)).await;
    assert_eq!((status, plain_content(&body).as_str()), (200, PLAIN));

    // `format = "plain"` sends the model's text as it is.
    let raw = spawn(config(&wechat, openai(&llm, &[("format", "plain")]))).await;
    let (_, body) = raw.post_plain(&text_xml("多少钱", NOW, 2)).await;
    assert_eq!(plain_content(&body), MARKDOWN);
}

#[tokio::test]
async fn a_long_markdown_answer_is_converted_before_it_is_split() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    // About 6 KB of bold sentences in paragraphs: several messages.
    let markdown: String = (1..=60)
        .map(|i| format!("**第{i}段**：这是比较长的回答内容，用来测试拆分。\n\n"))
        .collect();
    llm.set_chat_answer(&markdown);
    llm.set_chat_delay(Duration::from_millis(900));
    let app = spawn(config(&wechat, openai(&llm, &[]))).await;
    let (_, body) = app.post_plain(&text_xml("讲讲", NOW, 3)).await;
    assert_eq!(plain_content(&body), INTERIM);

    let expected: Vec<String> = (1..=60)
        .map(|i| format!("第{i}段：这是比较长的回答内容，用来测试拆分。"))
        .collect();
    let expected = expected.join("\n\n");
    // Cuts fall between paragraphs and drop the blank line there.
    assert!(
        eventually(Duration::from_secs(6), || wechat.sent_texts().join("\n\n")
            == expected)
        .await,
        "{:?}",
        wechat.sent_texts()
    );
    let parts = wechat.sent_texts();
    assert!(parts.len() >= 2, "{parts:?}");
    assert!(
        parts
            .iter()
            .all(|p| p.len() <= 2000 && !p.contains("**") && p.starts_with('第')),
        "cut at paragraphs, after conversion: {parts:?}"
    );
}

#[tokio::test]
async fn control_characters_never_reach_a_reply() {
    let wechat = FakeWechat::start().await;
    // A webhook (format plain): only the characters XML cannot hold go.
    let hook = FakeUpstream::start(Behaviour::Reply(json!({
        "type": "text", "content": "a\u{0}b\u{7}c\u{1b}[0m\td\u{FFFF}"
    })))
    .await;
    let hook_table = table([
        ("name", "agent".into()),
        ("protocol", "webhook".into()),
        ("url", hook.hook_url().into()),
    ]);
    let app = spawn(config(&wechat, hook_table)).await;
    let (status, body) = app.post_plain(&text_xml("hi", NOW, 4)).await;
    assert_eq!(status, 200);
    assert_eq!(plain_content(&body), "abc[0m\td");

    // News titles too.
    hook.set_behaviour(Behaviour::Reply(json!({
        "type": "news", "articles": [{"title": "t\u{1}itle", "url": "https://example.com/\u{2}"}]
    })));
    let (_, body) = app.post_plain(&text_xml("news", NOW, 5)).await;
    let xml = parse_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert!(body.contains("<Title><![CDATA[title]]></Title>"), "{body}");
    assert!(xml.child_text("ArticleCount").is_some());

    // And an openai (markdown) answer.
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_answer("**好**\u{0}的\u{8}");
    let app = spawn(config(&wechat, openai(&llm, &[]))).await;
    let (_, body) = app.post_plain(&text_xml("hi", NOW, 6)).await;
    assert_eq!(plain_content(&body), "好的");
}
