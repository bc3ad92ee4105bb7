//! What real senders put in their pushes: characters XML 1.0 forbids,
//! whitespace around CDATA, older formats without `MediaId`, millisecond
//! `CreateTime`. Every one is answered with 200 and a well-formed reply.

use wxgate::message::xml::parse_str;

use crate::support::{TestApp, ACCOUNT};

const NOW: i64 = 1_750_000_000;

/// Control characters (and U+FFFE/U+FFFF) that no XML document may hold.
fn forbidden(c: char) -> bool {
    !matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// A text message with `content` as is: the harness's builders write
/// through the gateway's own CDATA writer, which would remove the very
/// characters under test.
fn raw_text(content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{}]]></ToUserName><FromUserName><![CDATA[{}]]></FromUserName><CreateTime>{NOW}</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>{content}</Content><MsgId>{msg_id}</MsgId></xml>",
        ACCOUNT.original_id, ACCOUNT.openid
    )
}

#[tokio::test]
async fn control_characters_never_reach_a_reply() {
    let content = "a\u{0}b\u{1}c\u{8}d\u{b}e\u{c}f\u{1b}g\u{1f}h\u{fffe}i\u{ffff}j";
    for mode in ["plain", "safe"] {
        let app = TestApp::builder().mode(mode).now(NOW).spawn().await;
        let xml = raw_text(&format!("<![CDATA[{content}]]>"), 7);
        let (status, body) = if mode == "plain" {
            app.post_plain(&xml).await
        } else {
            app.post_encrypted(&xml).await
        };
        assert_eq!(status, 200, "{mode}: {body}");
        let reply = if mode == "plain" {
            body
        } else {
            app.wechat.open_reply(&body)
        };
        assert!(!reply.chars().any(forbidden), "{mode}: {reply:?}");
        let tree = parse_str(&reply).unwrap();
        assert_eq!(
            tree.child_text("Content"),
            Some("echo: abcdefghij"),
            "{mode}"
        );
        // A character reference to one is removed as well.
        let xml = raw_text("x&#1;y&#x1F;z\u{2}", 8);
        let (status, body) = if mode == "plain" {
            app.post_plain(&xml).await
        } else {
            app.post_encrypted(&xml).await
        };
        assert_eq!(status, 200, "{mode}: {body}");
        let reply = if mode == "plain" {
            body
        } else {
            app.wechat.open_reply(&body)
        };
        assert!(!reply.chars().any(forbidden), "{mode}: {reply:?}");
        let tree = parse_str(&reply).unwrap();
        assert_eq!(tree.child_text("Content"), Some("echo: xyz"), "{mode}");
    }
}

#[tokio::test]
async fn older_formats_and_indented_cdata_are_answered() {
    let app = TestApp::builder().mode("plain").now(NOW).spawn().await;
    let (to, from) = (&ACCOUNT.original_id, &ACCOUNT.openid);
    // An image with PicUrl only (no MediaId), addressed with whitespace
    // around the CDATA, stamped in milliseconds.
    let xml = format!(
        "<xml>\n <ToUserName> <![CDATA[{to}]]>\n </ToUserName>\n <FromUserName>\t<![CDATA[{from}]]> </FromUserName>\n <CreateTime>{NOW}123</CreateTime>\n <MsgType> <![CDATA[image]]> </MsgType>\n <PicUrl><![CDATA[http://mmbiz.qpic.cn/x.jpg]]></PicUrl>\n <MsgId>1234567890123456</MsgId>\n</xml>"
    );
    let (status, reply) = app.post_plain(&xml).await;
    assert_eq!(status, 200, "{reply}");
    let tree = parse_str(&reply).unwrap();
    assert_eq!(tree.child_text("MsgType"), Some("image"), "the image rule");
    assert_eq!(tree.child_text("ToUserName"), Some(from.as_str()));
    assert_eq!(tree.child_text("FromUserName"), Some(to.as_str()));
    app.assert_still_serving().await;
}
