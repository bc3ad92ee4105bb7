//! Media answers and pictures in, end to end: an upstream answers a picture
//! by URL, wxgate downloads it from the local file server under the guard,
//! uploads it to the fake WeChat API, caches the id and replies with it —
//! or, when it cannot, sends the link as text. And a `vision` upstream gets
//! the user's picture as an image input.

use std::time::Duration;

use serde_json::{json, Value};
use toml::Table;
use wxgate::message::xml::parse_str;

use crate::support::fake_wechat::{kf_text, CORP_ID, CORP_SECRET, KF_SECRET};
use crate::support::{
    self, eventually, image_xml, kf_notification_xml, openai_upstream, plain_content, table,
    text_xml, webhook_upstream, wecom_image, AccountSpec, Behaviour, CallbackClient, FakeUpstream,
    FakeWechat, FileServer, TestApp, TestConfig, ACCOUNT, AGENT_RULES, INTERIM,
};

const NOW: i64 = 1_750_000_000;
/// A few bytes standing for a PNG (nothing decodes them).
const PNG: &[u8] = b"\x89PNG\r\n\x1a\nfake picture bytes";

async fn spawn(config: TestConfig) -> TestApp {
    TestApp::builder().config(config).now(NOW).spawn().await
}

fn webhook(upstream: &FakeUpstream) -> Table {
    webhook_upstream(upstream, Table::new())
}

fn openai(upstream: &FakeUpstream, mut extra: Table) -> Table {
    extra.insert("model".into(), "vision-model".into());
    openai_upstream(upstream, extra)
}

fn image_answer(url: &str) -> Behaviour {
    Behaviour::Reply(json!({ "type": "image", "url": url }))
}

/// The agent account with downloads from the loopback file server allowed.
fn media_config(wechat: &FakeWechat, upstream: Table) -> TestConfig {
    support::agent_config(wechat, upstream)
        .set("agent.allow_private_media", true)
        .source("media.toml")
}

/// `(MsgType, Image/MediaId)` of a plain passive reply.
fn image_reply(body: &str) -> (String, String) {
    let xml = parse_str(body).unwrap_or_else(|e| panic!("not reply XML ({e}): {body}"));
    let msg_type = xml.child_text("MsgType").unwrap_or_default().to_owned();
    let media_id = xml
        .child("Image")
        .and_then(|i| i.child_text("MediaId"))
        .unwrap_or_default()
        .to_owned();
    (msg_type, media_id)
}

fn media_failures(app: &TestApp) -> bool {
    app.metrics
        .render()
        .contains("wxgate_agent_failures_total{kind=\"media\"}")
}

#[tokio::test]
async fn an_image_url_is_uploaded_once_and_answered_by_its_media_id() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/cat.png", "image/png", PNG);
    let hook = FakeUpstream::start(image_answer(&files.url("/cat.png"))).await;
    let app = spawn(media_config(&wechat, webhook(&hook))).await;

    let (status, body) = app.post_plain(&text_xml("来张猫图", NOW, 1)).await;
    assert_eq!(status, 200);
    let (msg_type, media_id) = image_reply(&body);
    assert_eq!(msg_type, "image", "{body}");
    let uploads = wechat.media_uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(media_id, uploads[0].media_id);
    assert_eq!(uploads[0].kind, "image");
    assert_eq!(uploads[0].bytes, PNG);
    assert_eq!(uploads[0].content_type, "image/png");
    assert_eq!(uploads[0].filename, "image.png");

    // The same URL again: the cached id, no download, no upload.
    let (_, body) = app.post_plain(&text_xml("再来一张", NOW, 2)).await;
    assert_eq!(image_reply(&body), ("image".to_owned(), media_id));
    assert_eq!(wechat.media_uploads().len(), 1);
    assert_eq!(files.hits("/cat.png"), 1);
    assert!(!media_failures(&app));
}

#[tokio::test]
async fn without_the_upload_permission_the_link_is_sent_as_text() {
    let wechat = FakeWechat::start().await;
    wechat.refuse_uploads(48001);
    let files = FileServer::start().await;
    files.serve("/cat.png", "image/png", PNG);
    let url = files.url("/cat.png");
    let hook = FakeUpstream::start(image_answer(&url)).await;
    let app = spawn(media_config(&wechat, webhook(&hook))).await;

    let (_, body) = app.post_plain(&text_xml("来张猫图", NOW, 1)).await;
    // Official Account text renders anchors.
    assert_eq!(plain_content(&body), format!("<a href=\"{url}\">{url}</a>"));
    assert_eq!(wechat.api_calls("/cgi-bin/media/upload"), 1);
    assert!(wechat.media_uploads().is_empty());
    assert!(media_failures(&app), "{}", app.metrics.render());
}

#[tokio::test]
async fn an_account_without_the_api_sends_the_link_without_downloading() {
    let files = FileServer::start().await;
    files.serve("/cat.png", "image/png", PNG);
    let url = files.url("/cat.png");
    let hook = FakeUpstream::start(image_answer(&url)).await;
    let config = TestConfig::new()
        .account(AccountSpec::token_only(&ACCOUNT.token))
        .set("agent.allow_private_media", true)
        .upstream(webhook(&hook))
        .rules(AGENT_RULES);
    let app = spawn(config).await;
    let (_, body) = app.post_plain(&text_xml("来张猫图", NOW, 1)).await;
    assert_eq!(plain_content(&body), format!("<a href=\"{url}\">{url}</a>"));
    assert_eq!(files.hits("/cat.png"), 0);
    assert!(media_failures(&app));
}

#[tokio::test]
async fn private_addresses_are_refused_unless_allowed() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/cat.png", "image/png", PNG);
    let hook = FakeUpstream::start(image_answer(&files.url("/cat.png"))).await;
    // The allow switch left off.
    let config = support::agent_config(&wechat, webhook(&hook)).source("media.toml");
    let app = spawn(config).await;

    // An address literal, and a name that resolves to loopback.
    for (i, url) in [files.url("/cat.png"), files.named_url("/cat.png")]
        .into_iter()
        .enumerate()
    {
        hook.set_behaviour(image_answer(&url));
        let (_, body) = app
            .post_plain(&text_xml("来张猫图", NOW, i as u64 + 1))
            .await;
        assert_eq!(plain_content(&body), format!("<a href=\"{url}\">{url}</a>"));
    }
    assert_eq!(files.hits("/cat.png"), 0, "nothing was downloaded");
    assert_eq!(wechat.api_calls("/cgi-bin/media/upload"), 0);
    assert!(media_failures(&app));
}

#[tokio::test]
async fn wrong_content_types_and_files_too_big_are_refused() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve(
        "/page.png",
        "text/html; charset=utf-8",
        b"<html>not a picture</html>",
    );
    // Over the Official Account's 2 MB for pictures.
    files.serve("/huge.png", "image/png", &vec![7u8; 2 * 1024 * 1024 + 1]);
    // A voice the Official Account takes (MP3), and one it does not (WAV).
    files.serve("/hello.mp3", "audio/mpeg", b"ID3 fake mp3 bytes");
    files.serve("/hello.wav", "audio/wav", b"RIFF fake wav bytes");
    let hook = FakeUpstream::start(Behaviour::NoContent).await;
    let app = spawn(media_config(&wechat, webhook(&hook))).await;

    for (i, (kind, path)) in [
        ("image", "/page.png"),
        ("image", "/huge.png"),
        ("voice", "/hello.wav"),
    ]
    .into_iter()
    .enumerate()
    {
        let url = files.url(path);
        hook.set_behaviour(Behaviour::Reply(json!({ "type": kind, "url": url })));
        let (_, body) = app.post_plain(&text_xml("媒体", NOW, i as u64 + 1)).await;
        assert_eq!(
            plain_content(&body),
            format!("<a href=\"{url}\">{url}</a>"),
            "{path}"
        );
        assert_eq!(files.hits(path), 1, "{path}");
    }
    assert_eq!(wechat.api_calls("/cgi-bin/media/upload"), 0);

    hook.set_behaviour(Behaviour::Reply(
        json!({ "type": "voice", "url": files.url("/hello.mp3") }),
    ));
    let (_, body) = app.post_plain(&text_xml("语音", NOW, 9)).await;
    let xml = parse_str(&body).unwrap();
    assert_eq!(xml.child_text("MsgType"), Some("voice"), "{body}");
    let uploads = wechat.media_uploads();
    assert_eq!((uploads.len(), uploads[0].kind.as_str()), (1, "voice"));
    assert_eq!(
        xml.child("Voice").and_then(|v| v.child_text("MediaId")),
        Some(uploads[0].media_id.as_str())
    );
}

#[tokio::test]
async fn a_slow_download_is_sent_late_by_its_media_id() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    // Past the 400 ms passive budget.
    files.serve_after("/slow.png", "image/png", PNG, Duration::from_millis(900));
    let hook = FakeUpstream::start(image_answer(&files.url("/slow.png"))).await;
    let app = spawn(media_config(&wechat, webhook(&hook))).await;

    let (_, body) = app.post_plain(&text_xml("来张猫图", NOW, 1)).await;
    assert_eq!(plain_content(&body), INTERIM);
    assert!(
        eventually(Duration::from_secs(5), || !wechat.custom_sends().is_empty()).await,
        "the image never went late"
    );
    let sent = &wechat.custom_sends()[0];
    assert_eq!(sent["msgtype"], "image", "{sent}");
    assert_eq!(
        sent["image"]["media_id"].as_str(),
        Some(wechat.media_uploads()[0].media_id.as_str())
    );
}

#[tokio::test]
async fn a_lone_markdown_image_from_a_chat_model_becomes_an_image() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/chart.gif", "image/gif", b"GIF89a fake gif");
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let url = files.url("/chart.gif");
    llm.set_chat_answer(&format!("![销量图]({url})"));
    let upstream = openai(&llm, table([("image_answers", true.into())]));
    let app = spawn(media_config(&wechat, upstream)).await;

    let (_, body) = app.post_plain(&text_xml("画个图", NOW, 1)).await;
    let (msg_type, media_id) = image_reply(&body);
    assert_eq!(msg_type, "image", "{body}");
    assert_eq!(media_id, wechat.media_uploads()[0].media_id);
    assert_eq!(wechat.media_uploads()[0].filename, "image.gif");

    // Anything more than the image stays text, converted from markdown.
    llm.set_chat_answer(&format!("这是图：![销量图]({url})"));
    let (_, body) = app.post_plain(&text_xml("再画", NOW, 2)).await;
    assert_eq!(
        plain_content(&body),
        format!("这是图：<a href=\"{url}\">销量图</a>")
    );
    assert_eq!(wechat.media_uploads().len(), 1);
}

/// The content of the last message of a chat request.
fn last_user_content(body: &Value) -> Value {
    body["messages"].as_array().unwrap().last().unwrap()["content"].clone()
}

#[tokio::test]
async fn a_vision_request_carries_the_picture_and_history_a_placeholder() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let upstream = openai(
        &llm,
        table([("vision", true.into()), ("history_turns", 2.into())]),
    );
    let app = spawn(support::agent_config(&wechat, upstream).source("vision.toml")).await;
    let pic = "http://mmbiz.qpic.cn/mmbiz_jpg/xyz/0";

    let (_, body) = app.post_plain(&image_xml(pic, NOW, 1)).await;
    assert!(plain_content(&body).starts_with("answer 1:"), "{body}");
    let request = &llm.chat_requests()[0].body;
    assert_eq!(
        last_user_content(request),
        json!([
            {"type": "text", "text": "请描述这张图片。"},
            {"type": "image_url", "image_url": {"url": pic}},
        ])
    );

    // The next turn remembers the picture by a placeholder, not its URL.
    app.post_plain(&text_xml("它是什么颜色", NOW, 2)).await;
    let request = &llm.chat_requests()[1].body;
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(messages[0]["content"], "[图片] 请描述这张图片。");
    assert!(!request.to_string().contains(pic), "{request}");
    assert_eq!(last_user_content(request), "它是什么颜色");
}

#[tokio::test]
async fn without_vision_a_picture_is_not_sent_to_a_chat_model() {
    let wechat = FakeWechat::start().await;
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    let app =
        spawn(support::agent_config(&wechat, openai(&llm, Table::new())).source("v.toml")).await;
    let (status, body) = app
        .post_plain(&image_xml("http://mmbiz.qpic.cn/x/0", NOW, 1))
        .await;
    assert_eq!((status, body.as_str()), (200, "success"));
    assert!(llm.chat_requests().is_empty());
}

#[tokio::test]
async fn wecom_pictures_go_to_vision_and_images_come_back_by_wecom_upload() {
    const WC_TOKEN: &str = "wecomTestToken";
    const WC_KEY: &str = "Qm8tZ2Vu4lW3cK9pR7sY1vX5bN0aD6fH2jL8eT4uI3o";
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/answer.jpg", "image/jpeg", b"\xff\xd8\xff fake jpeg");
    let llm = FakeUpstream::start(Behaviour::NoContent).await;
    llm.set_chat_answer(&format!("![]({})", files.url("/answer.jpg")));
    let upstream = openai(
        &llm,
        table([("vision", true.into()), ("image_answers", true.into())]),
    );
    let config = TestConfig::new()
        .account(
            AccountSpec::wecom(WC_TOKEN, WC_KEY, CORP_ID)
                .set("corp_secret", CORP_SECRET)
                .api(&wechat),
        )
        .set("agent.passive_budget_ms", 2000)
        .set("agent.allow_private_media", true)
        .upstream(upstream)
        .set(
            "default_reply",
            table([("type", "upstream".into()), ("upstream", "agent".into())]),
        );
    let app = spawn(config).await;
    let pic = "https://wework.qpic.cn/wwpic/1/0";
    let (q, b) = app.wechat.encrypted(&wecom_image(pic, NOW, 5), NOW);
    let (status, body) = app.post(&q, b).await;
    assert_eq!(status, 200);
    let reply = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(reply.child_text("MsgType"), Some("image"));
    let uploads = wechat.media_uploads();
    assert_eq!(uploads.len(), 1);
    assert_eq!(
        reply.child("Image").and_then(|i| i.child_text("MediaId")),
        Some(uploads[0].media_id.as_str())
    );
    // The upload carried the WeCom token.
    let token = &wechat.api_call_tokens("/cgi-bin/media/upload")[0];
    assert_eq!(wechat.token_secret(token).as_deref(), Some(CORP_SECRET));
    assert_eq!(
        last_user_content(&llm.chat_requests()[0].body)[1]["image_url"]["url"],
        pic
    );
}

#[tokio::test]
async fn a_customer_service_answer_goes_as_an_image_uploaded_with_its_token() {
    const KF_TOKEN: &str = "kfCallbackToken";
    const KF_KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";
    const OPEN_KFID: &str = "wkAJ2GCAAASSm4_FhToWMFea0xAFfd3Q";
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/menu.jpg", "image/jpeg", b"\xff\xd8\xff fake jpeg menu");
    let hook = FakeUpstream::start(image_answer(&files.url("/menu.jpg"))).await;
    let now = support::now_unix();
    wechat.kf_push(
        OPEN_KFID,
        vec![kf_text(
            "from_msgid_1",
            "wm_customer",
            OPEN_KFID,
            now,
            "菜单图",
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
        .set("agent.allow_private_media", true)
        .upstream(webhook(&hook))
        .source("kf-media.toml");
    let app = TestApp::builder().config(config).now(now).spawn().await;
    let token = wechat.kf_notification_token(OPEN_KFID);
    let (query, body) = CallbackClient::kf(KF_TOKEN, KF_KEY, CORP_ID)
        .encrypted(&kf_notification_xml(&token, OPEN_KFID, now), now);
    let (status, _) = app.post(&query, body).await;
    assert_eq!(status, 200);

    assert!(
        eventually(Duration::from_secs(5), || !wechat.kf_sends().is_empty()).await,
        "nothing sent"
    );
    let sent = &wechat.kf_sends()[0];
    assert_eq!(sent["msgtype"], "image", "{sent}");
    let uploads = wechat.media_uploads();
    assert_eq!(
        sent["image"]["media_id"].as_str(),
        Some(uploads[0].media_id.as_str())
    );
    let token = &wechat.api_call_tokens("/cgi-bin/media/upload")[0];
    assert_eq!(wechat.token_secret(token).as_deref(), Some(KF_SECRET));
}

#[tokio::test]
async fn a_video_keeps_its_title_and_any_refusal_sends_the_link() {
    let wechat = FakeWechat::start().await;
    let files = FileServer::start().await;
    files.serve("/clip.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42 fake");
    files.serve("/other.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42 other");
    let hook = FakeUpstream::start(Behaviour::Reply(json!({
        "type": "video", "url": files.url("/clip.mp4"), "title": "演示", "description": "一段视频",
    })))
    .await;
    let app = spawn(media_config(&wechat, webhook(&hook))).await;

    let (_, body) = app.post_plain(&text_xml("视频", NOW, 1)).await;
    let xml = parse_str(&body).unwrap();
    assert_eq!(xml.child_text("MsgType"), Some("video"), "{body}");
    let video = xml.child("Video").unwrap();
    assert_eq!(
        (
            video.child_text("MediaId"),
            video.child_text("Title"),
            video.child_text("Description")
        ),
        (
            Some(wechat.media_uploads()[0].media_id.as_str()),
            Some("演示"),
            Some("一段视频")
        )
    );
    assert_eq!(wechat.media_uploads()[0].kind, "video");

    // WeChat refusing the file for any reason: the link, labelled by the title.
    wechat.refuse_uploads(40004);
    let url = files.url("/other.mp4");
    hook.set_behaviour(Behaviour::Reply(
        json!({ "type": "video", "url": url, "title": "演示" }),
    ));
    let (_, body) = app.post_plain(&text_xml("另一段", NOW, 2)).await;
    assert_eq!(plain_content(&body), format!("<a href=\"{url}\">演示</a>"));
    assert_eq!(wechat.media_uploads().len(), 1);
}
