//! Streamed answers end to end (`stream = true` on an `openai` upstream):
//! the fake upstream holds its stream at points the test releases, so that
//! what reached the user before the stream ended is seen without timing.

use std::time::Duration;

use toml::Table;

use crate::support::{
    agent_config, eventually, plain_content, table, text_xml, Behaviour, FakeUpstream, FakeWechat,
    StreamPlan, TestApp,
};

const NOW: i64 = 1_750_000_000;

fn streaming(llm: &FakeUpstream) -> Table {
    table([
        ("name", "agent".into()),
        ("protocol", "openai".into()),
        ("url", llm.openai_base().into()),
        ("model", "test-model".into()),
        ("stream", true.into()),
        ("timeout_ms", 20_000.into()),
    ])
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
