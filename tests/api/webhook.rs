//! URL verification and message handling in the three modes.

use wxgate::message::xml::parse_str;

use crate::support::{text_xml, AccountSpec, CallbackClient, TestApp, TestConfig, ACCOUNT, RULES};

const NOW: i64 = 1_750_000_000;

#[tokio::test]
async fn url_verification_echoes_exactly_in_every_mode() {
    for mode in ["plain", "compatible", "safe"] {
        let app = TestApp::builder().mode(mode).now(NOW).spawn().await;
        // An echostr with characters that need URL-encoding comes back decoded, byte for byte.
        let (status, body) = app.get(&app.wechat.verify_query(NOW, "a%2Bb%2F%3D9")).await;
        assert_eq!((status, body.as_str()), (200, "a+b/=9"), "{mode}");
        let (status, body) = app
            .get(&app.wechat.verify_query(NOW, "1616140317555161061"))
            .await;
        assert_eq!(
            (status, body.as_str()),
            (200, "1616140317555161061"),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn plain_mode_answers_plain_xml() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let (status, body) = app.post_plain(&text_xml("微博", NOW, 1)).await;
    assert_eq!(status, 200);
    let doc = parse_str(&body).unwrap();
    assert_eq!(doc.child_text("MsgType"), Some("news"));
    assert_eq!(doc.child_text("ArticleCount"), Some("1"));
    assert_eq!(doc.child_text("ToUserName"), Some(ACCOUNT.openid.as_str()));
    assert_eq!(doc.child_text("CreateTime"), Some(NOW.to_string().as_str()));
}

#[tokio::test]
async fn safe_mode_reply_is_encrypted_signed_and_decrypts() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    let (status, body) = app.post_encrypted(&text_xml("hello wxgate", NOW, 2)).await;
    assert_eq!(status, 200, "{body}");
    let xml = app.wechat.open_reply(&body);
    let doc = parse_str(&xml).unwrap();
    assert_eq!(
        doc.child_text("Content"),
        Some(format!("hi {}", ACCOUNT.openid).as_str())
    );
    // The envelope's TimeStamp is the server's clock.
    let env = wxgate::message::envelope::parse_encrypted_reply(body.as_bytes())
        .unwrap()
        .unwrap();
    assert_eq!(env.timestamp, NOW.to_string());
}

#[tokio::test]
async fn cdata_terminator_survives_the_whole_round_trip() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    let (status, body) = app.post_encrypted(&text_xml("a]]>b<&>", NOW, 3)).await;
    assert_eq!(status, 200);
    let doc = parse_str(&app.wechat.open_reply(&body)).unwrap();
    assert_eq!(doc.child_text("Content"), Some("echo: a]]>b<&>"));
}

#[tokio::test]
async fn compatible_mode_answers_in_kind() {
    let app = TestApp::builder().mode("compatible").now(NOW).spawn().await;
    // Plain request → plain reply.
    let (status, body) = app.post_plain(&text_xml("hello wxgate", NOW, 4)).await;
    assert_eq!(status, 200);
    assert_eq!(
        parse_str(&body).unwrap().child_text("MsgType"),
        Some("text")
    );
    // Encrypted request → encrypted reply.
    let (status, body) = app.post_encrypted(&text_xml("hello wxgate", NOW, 5)).await;
    assert_eq!(status, 200);
    assert_eq!(
        parse_str(&app.wechat.open_reply(&body))
            .unwrap()
            .child_text("MsgType"),
        Some("text")
    );
}

#[tokio::test]
async fn compatible_mode_uses_the_decrypted_copy_not_the_plain_fields() {
    let app = TestApp::builder().mode("compatible").now(NOW).spawn().await;
    let (query, body) = app.wechat.encrypted(&text_xml("hello wxgate", NOW, 6), NOW);
    // Forge the unauthenticated plaintext duplicates next to <Encrypt>.
    let forged = body.replace(
        "<Encrypt>",
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[微博]]></Content><Encrypt>",
    );
    let (status, reply) = app.post(&query, forged).await;
    assert_eq!(status, 200);
    assert_eq!(
        parse_str(&app.wechat.open_reply(&reply))
            .unwrap()
            .child_text("MsgType"),
        Some("text")
    );
}

#[tokio::test]
async fn success_is_never_encrypted() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    let xml = format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{NOW}</CreateTime><MsgType>event</MsgType><Event>unsubscribe</Event></xml>",
        ACCOUNT.original_id, ACCOUNT.openid
    );
    let (status, body) = app.post_encrypted(&xml).await;
    assert_eq!((status, body.as_str()), (200, "success"));
}

#[tokio::test]
async fn previous_key_still_decrypts_during_rotation() {
    // The account rotated its key: the old one moves to previous_encoding_aes_key.
    let new_key = "NewKeyNewKeyNewKeyNewKeyNewKeyNewKeyNewKeyA";
    let config = TestConfig::new()
        .account(
            AccountSpec::fixture("safe")
                .set("encoding_aes_key", new_key)
                .set(
                    "previous_encoding_aes_key",
                    ACCOUNT.encoding_aes_key.as_str(),
                ),
        )
        .rules(RULES);
    // WeChat still encrypts with the old key.
    let app = TestApp::builder()
        .config(config)
        .now(NOW)
        .wechat(CallbackClient::fixture("safe"))
        .spawn()
        .await;
    let (status, body) = app.post_encrypted(&text_xml("hello wxgate", NOW, 7)).await;
    assert_eq!(status, 200, "{body}");
    // Answered with the key that decrypted the request (the old one).
    assert_eq!(
        parse_str(&app.wechat.open_reply(&body))
            .unwrap()
            .child_text("MsgType"),
        Some("text")
    );
}

#[tokio::test]
async fn health_and_readiness() {
    let app = TestApp::builder().mode("safe").now(NOW).spawn().await;
    assert_eq!(app.get("/healthz").await, (200, "ok".to_owned()));
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["ready"], true);
    assert_eq!(json["mode"], "safe");
    assert_eq!(json["checks"]["store"]["ok"], true);
    assert!(json["rules"].as_u64().unwrap() > 5);
}
