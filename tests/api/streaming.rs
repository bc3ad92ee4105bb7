//! Streamed answers end to end (`stream = true` on an `openai` upstream):
//! the fake upstream holds its stream at points the test releases, so that
//! what reached the user before the stream ended is seen without timing.

use std::time::Duration;

use toml::Table;

use crate::support::fake_wechat::{kf_text, CORP_ID, KF_SECRET};
use crate::support::{
    agent_config, eventually, kf_notification_xml, openai_upstream, plain_content, table, text_xml,
    AccountSpec, Behaviour, CallbackClient, FakeUpstream, FakeWechat, StreamPlan, TestApp,
    TestConfig,
};

const NOW: i64 = 1_750_000_000;

fn streaming(llm: &FakeUpstream) -> Table {
    openai_upstream(
        llm,
        table([("stream", true.into()), ("timeout_ms", 20_000.into())]),
    )
}

async fn spawn(wechat: &FakeWechat, llm: &FakeUpstream) -> TestApp {
    TestApp::builder()
        .config(agent_config(wechat, streaming(llm)))
        .now(NOW)
        .spawn()
        .await
}

#[tokio::test]
async fn a_streamed_answer_reaches_the_user_in_parts_before_the_stream_ends() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let long = "这一段比较长，用来凑够下一部分需要的长度。".repeat(8);
    let deltas = [
        "第一部分：流式回答的开头已经完整，**先发出去**。\n\n".to_owned(),
        format!("第二部分：{long}"),
        "\n\n".to_owned(),
        "最后一句。".to_owned(),
    ];
    llm.set_stream(StreamPlan {
        deltas: deltas.to_vec(),
        hold_before: vec![1, 3],
        done: true,
    });
    let app = spawn(&wechat, &llm).await;

    // The passive budget passes while the stream is held after its first
    // paragraph: that paragraph, converted from markdown, is the reply.
    let (status, body) = app.post_plain(&text_xml("讲讲", NOW, 1)).await;
    assert_eq!(status, 200);
    assert_eq!(
        plain_content(&body),
        "第一部分：流式回答的开头已经完整，先发出去。"
    );
    assert_eq!(llm.streamed_deltas(), 1, "the stream is still open");
    assert_eq!(llm.chat_requests()[0].body["stream"], true);

    // The second paragraph is sent as soon as it is complete, while the
    // stream is held again before its last sentence.
    llm.release_stream();
    let second = format!("第二部分：{long}");
    assert!(
        eventually(Duration::from_secs(5), || wechat.sent_texts()
            == [second.clone()])
        .await,
        "{:?}",
        wechat.sent_texts()
    );
    assert_eq!(llm.streamed_deltas(), 3, "the stream is still open");

    // The end: the rest follows, in order, and nothing is sent twice.
    llm.release_stream();
    let expected = [second.clone(), "最后一句。".to_owned()];
    assert!(
        eventually(Duration::from_secs(5), || wechat.sent_texts() == expected).await,
        "{:?}",
        wechat.sent_texts()
    );

    // History keeps the whole answer as the user saw it.
    let (_, _) = app.post_plain(&text_xml("然后呢", NOW + 1, 2)).await;
    assert!(eventually(Duration::from_secs(5), || llm.chat_requests().len() == 2).await);
    let messages = llm.chat_requests()[1].body["messages"].clone();
    let remembered = messages[1]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(messages[1]["role"], "assistant");
    assert_eq!(remembered, deltas.concat().trim());
}

#[tokio::test]
async fn a_stream_that_breaks_off_keeps_what_arrived_and_says_the_rest_failed() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_stream(StreamPlan {
        deltas: vec!["已经收到的".into(), "半个回答。".into()],
        hold_before: vec![],
        done: false,
    });
    let app = spawn(&wechat, &llm).await;
    let (status, body) = app.post_plain(&text_xml("讲讲", NOW, 1)).await;
    assert_eq!(status, 200);
    assert_eq!(
        plain_content(&body),
        format!(
            "已经收到的半个回答。\n\n{}",
            wxgate::agent::DEFAULT_STREAM_CUT_TEXT
        )
    );
}

#[tokio::test]
async fn a_customer_service_account_sends_a_streamed_answer_whole() {
    const KF_TOKEN: &str = "kfCallbackToken";
    const KF_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    const OPEN_KFID: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let first = "第一段：这一段足够长，会在流里先成为一个完整的部分。\n\n";
    llm.set_stream(StreamPlan {
        deltas: vec![first.into(), "第二段。".into()],
        hold_before: vec![],
        done: true,
    });
    let now = crate::support::now_unix();
    wechat.kf_push(
        OPEN_KFID,
        vec![kf_text(
            "from_msgid_1",
            "wm_customer",
            OPEN_KFID,
            now,
            "讲讲",
        )],
    );
    let config = TestConfig::new()
        .add_account(
            AccountSpec::kf(KF_TOKEN, KF_KEY, CORP_ID, KF_SECRET)
                .name("service")
                .set("path", "/kf")
                .api(&wechat)
                .rules("[default_reply]\ntype = \"upstream\"\nupstream = \"agent\"\n"),
        )
        .upstream(streaming(&llm))
        .source("kf-stream.toml");
    let app = TestApp::builder().config(config).now(now).spawn().await;
    let token = wechat.kf_notification_token(OPEN_KFID);
    let (query, body) = CallbackClient::kf(KF_TOKEN, KF_KEY, CORP_ID)
        .encrypted(&kf_notification_xml(&token, OPEN_KFID, now), now);
    assert_eq!(app.post(&query, body).await.0, 200);
    assert!(
        eventually(Duration::from_secs(5), || !wechat.kf_sends().is_empty()).await,
        "nothing sent"
    );
    // Every part, not only what followed the last one.
    let sent = wechat.kf_sends()[0]["text"]["content"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert_eq!(sent, format!("{}\n\n第二段。", first.trim()));
}
