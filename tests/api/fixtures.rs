//! Every recorded fixture, in every mode, through the real server.

use std::collections::BTreeMap;

use wxgate::message::xml::{parse_str, Element};

use crate::support::{fixtures_dir, TestApp, ACCOUNT};

#[derive(serde::Deserialize)]
struct Manifest {
    kinds: BTreeMap<String, Kind>,
}

#[derive(serde::Deserialize)]
struct Kind {
    create_time: i64,
    msg_type: String,
    fields: BTreeMap<String, serde_json::Value>,
}

fn manifest() -> Manifest {
    let text =
        std::fs::read_to_string(fixtures_dir().join("xml/manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest parses")
}

fn read(mode: &str, name: &str, ext: &str) -> String {
    let path = fixtures_dir().join(format!("xml/{mode}/{name}.{ext}"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the rules in `support::RULES` answer to each fixture: reply MsgType
/// (`None` = `success`) and, for text, the content.
fn expected(name: &str, kind: &Kind) -> (Option<&'static str>, Option<String>) {
    let content = kind
        .fields
        .get("Content")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    let key = kind
        .fields
        .get("EventKey")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    match name {
        "text" => (Some("text"), Some(format!("hi {}", ACCOUNT.openid))),
        "text_no_cdata" | "text_cdata_terminator" | "text_emoji" => {
            (Some("text"), Some(format!("echo: {content}")))
        }
        "image" => (Some("image"), None),
        "voice" | "voice_no_recognition" => (Some("voice"), None),
        "video" => (Some("video"), None),
        "shortvideo" => (Some("music"), None),
        "location" => (Some("news"), None),
        "link" => (Some("transfer_customer_service"), None),
        "event_subscribe" => (Some("text"), Some("welcome".into())),
        "event_subscribe_qrscene" => (Some("text"), Some(format!("qr {key}"))),
        "event_scan" => (Some("text"), Some(format!("scanned {key}"))),
        "event_click" => (Some("news"), None),
        // A user message of a type wxgate does not know still gets the default reply.
        "unknown_msgtype" => (Some("text"), Some("echo: ".into())),
        _ if kind.msg_type == "event" => (None, None),
        other => panic!("fixture {other} has no expectation: add one"),
    }
}

fn check_reply(mode: &str, name: &str, kind: &Kind, xml: &Element) {
    let (want_type, want_content) = expected(name, kind);
    let ctx = format!("{mode}/{name}");
    assert_eq!(xml.child_text("MsgType"), want_type, "{ctx}");
    assert_eq!(
        xml.child_text("ToUserName"),
        Some(ACCOUNT.openid.as_str()),
        "{ctx}: reply must go to the sender"
    );
    assert_eq!(
        xml.child_text("FromUserName"),
        Some(ACCOUNT.original_id.as_str()),
        "{ctx}: reply must come from the account"
    );
    assert!(
        xml.child_text("CreateTime")
            .is_some_and(|t| t.parse::<i64>().is_ok()),
        "{ctx}"
    );
    if let Some(content) = want_content {
        assert_eq!(xml.child_text("Content"), Some(content.as_str()), "{ctx}");
    }
    match name {
        // Answering a user message: exactly one article even though three are configured.
        "location" => {
            assert_eq!(xml.child_text("ArticleCount"), Some("1"), "{ctx}");
            assert_eq!(xml.child("Articles").unwrap().children.len(), 1, "{ctx}");
        }
        // Answering an event: every configured article.
        "event_click" => {
            assert_eq!(xml.child_text("ArticleCount"), Some("2"), "{ctx}");
            assert_eq!(xml.child("Articles").unwrap().children.len(), 2, "{ctx}");
        }
        "image" => assert_eq!(
            xml.child("Image").and_then(|i| i.child_text("MediaId")),
            Some("IMG_MEDIA")
        ),
        "voice" => assert_eq!(
            xml.child("Voice").and_then(|i| i.child_text("MediaId")),
            Some("VOICE_MEDIA")
        ),
        "video" => assert_eq!(
            xml.child("Video").and_then(|i| i.child_text("Title")),
            Some("T")
        ),
        "shortvideo" => assert_eq!(
            xml.child("Music")
                .and_then(|i| i.child_text("ThumbMediaId")),
            Some("THUMB")
        ),
        _ => {}
    }
}

async fn run_mode(mode: &str) {
    let manifest = manifest();
    assert!(
        manifest.kinds.len() >= 29,
        "every message and event kind has a fixture"
    );
    let app = TestApp::builder().mode(mode).now(0).spawn().await;
    for (name, kind) in &manifest.kinds {
        app.clock.set(kind.create_time);
        let query = read(mode, name, "query");
        let body = read(mode, name, "xml");
        let (status, reply) = app.post(&format!("/weixin?{query}"), body).await;
        assert_eq!(status, 200, "{mode}/{name}: {reply}");
        let (want_type, _) = expected(name, kind);
        if want_type.is_none() {
            assert_eq!(reply, "success", "{mode}/{name}");
            continue;
        }
        let xml = if mode == "plain" {
            reply
        } else {
            app.wechat.open_reply(&reply)
        };
        let doc = parse_str(&xml)
            .unwrap_or_else(|e| panic!("{mode}/{name}: reply is not XML ({e}): {xml}"));
        check_reply(mode, name, kind, &doc);
    }
}

#[tokio::test]
async fn every_fixture_in_plain_mode() {
    run_mode("plain").await;
}

#[tokio::test]
async fn every_fixture_in_compatible_mode() {
    run_mode("compatible").await;
}

#[tokio::test]
async fn every_fixture_in_safe_mode() {
    run_mode("safe").await;
}

#[test]
fn every_fixture_parses_into_the_right_type() {
    use wxgate::message::{Event, Message, MessageKind};
    for (name, kind) in manifest().kinds {
        let msg = Message::parse(read("plain", &name, "xml").as_bytes())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(msg.msg_type, kind.msg_type, "{name}");
        assert_eq!(msg.create_time, kind.create_time, "{name}");
        if let Some(id) = kind.fields.get("MsgId").or(kind.fields.get("MsgID")) {
            assert_eq!(
                msg.msg_id.map(|i| i.to_string()).as_deref(),
                id.as_str(),
                "{name}"
            );
        }
        let typed_ok = match name.as_str() {
            "text" | "text_no_cdata" | "text_cdata_terminator" | "text_emoji" => {
                matches!(&msg.kind, MessageKind::Text { content, .. } if Some(content.as_str()) == kind.fields["Content"].as_str())
            }
            "image" => matches!(msg.kind, MessageKind::Image { .. }),
            "voice" => {
                matches!(&msg.kind, MessageKind::Voice { recognition: Some(r), .. } if !r.is_empty())
            }
            "voice_no_recognition" => matches!(msg.kind, MessageKind::Voice { .. }),
            "video" => matches!(msg.kind, MessageKind::Video { .. }),
            "shortvideo" => matches!(msg.kind, MessageKind::ShortVideo { .. }),
            "location" => {
                matches!(msg.kind, MessageKind::Location { latitude, .. } if latitude > 0.0)
            }
            "link" => matches!(msg.kind, MessageKind::Link { .. }),
            "event_subscribe" => matches!(
                msg.event(),
                Some(Event::Subscribe {
                    event_key: None,
                    ..
                })
            ),
            "event_subscribe_qrscene" => {
                matches!(msg.event(), Some(Event::Subscribe { event_key: Some(k), ticket: Some(_) }) if k.starts_with("qrscene_"))
            }
            "event_unsubscribe" => matches!(msg.event(), Some(Event::Unsubscribe)),
            "event_scan" => matches!(msg.event(), Some(Event::Scan { .. })),
            "event_location" => matches!(msg.event(), Some(Event::Location { .. })),
            "event_click" => matches!(msg.event(), Some(Event::Click { .. })),
            "event_view" => matches!(
                msg.event(),
                Some(Event::View {
                    menu_id: Some(_),
                    ..
                })
            ),
            "event_scancode_push" => {
                matches!(msg.event(), Some(Event::ScancodePush(s)) if !s.scan_result.is_empty())
            }
            "event_scancode_waitmsg" => {
                matches!(msg.event(), Some(Event::ScancodeWaitmsg(s)) if !s.scan_type.is_empty())
            }
            "event_pic_sysphoto" => {
                matches!(msg.event(), Some(Event::PicSysphoto(p)) if p.pic_md5.len() == 1)
            }
            "event_pic_photo_or_album" => {
                matches!(msg.event(), Some(Event::PicPhotoOrAlbum(p)) if p.pic_md5.len() == 2)
            }
            "event_pic_weixin" => matches!(msg.event(), Some(Event::PicWeixin(_))),
            "event_location_select" => {
                matches!(msg.event(), Some(Event::LocationSelect { label, .. }) if !label.is_empty())
            }
            "event_view_miniprogram" => matches!(msg.event(), Some(Event::ViewMiniprogram { .. })),
            "event_templatesendjobfinish" => {
                matches!(msg.event(), Some(Event::TemplateSendJobFinish { .. }))
            }
            "event_masssendjobfinish" => matches!(
                msg.event(),
                Some(Event::MassSendJobFinish {
                    sent_count: Some(_),
                    ..
                })
            ),
            "unknown_msgtype" => msg.kind == MessageKind::Unknown && msg.fields.children.len() >= 6,
            "unknown_event" => {
                msg.event() == Some(&Event::Unknown) && msg.fields.children.len() >= 6
            }
            other => panic!("fixture {other} has no type expectation: add one"),
        };
        assert!(typed_ok, "{name} parsed as {:?}", msg.kind);
    }
}
