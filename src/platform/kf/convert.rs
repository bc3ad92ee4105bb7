//! 微信客服's JSON messages into the domain, and answers into what a
//! session takes.

use sha1::{Digest, Sha1};

use crate::domain::{Message, MessageKind, Reply};
use crate::message::MessageError;
use crate::platform::convert::Fields;
use crate::platform::wechat_api::KfMessage;

/// Ids from WeChat as key parts: kept when short and plain, hashed otherwise.
pub(super) fn safe_key(id: &str) -> String {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        id.to_owned()
    } else {
        hex::encode(Sha1::digest(id.as_bytes()))
    }
}

/// Our `msgid` for part `part` of the answer to `msgid`: at most 32 bytes of
/// `[0-9a-f_]`, the same on every node and every retry.
pub(super) fn send_msgid(msgid: &str, part: usize) -> String {
    let digest = hex::encode(Sha1::digest(msgid.as_bytes()));
    format!("{}_{part}", &digest[..28])
}

/// Customer Service sessions take text, media and links, not news cards or
/// music: news become their text.
pub(super) fn kf_reply(reply: Reply) -> Reply {
    match reply {
        Reply::News { articles } => {
            let content = articles
                .iter()
                .map(|a| {
                    [a.title.as_str(), a.description.as_str(), a.url.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            if content.is_empty() {
                Reply::Success
            } else {
                Reply::Text { content }
            }
        }
        other => other,
    }
}

fn str_at<'a>(m: &'a KfMessage, object: &str, field: &str) -> &'a str {
    m.rest
        .get(object)
        .and_then(|o| o.get(field))
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

fn num_at(m: &KfMessage, object: &str, field: &str) -> Option<f64> {
    m.rest
        .get(object)
        .and_then(|o| o.get(field))
        .and_then(|v| v.as_f64())
}

/// The pulled message in the domain's form: from the customer
/// (`from_user` = external_userid) to the Customer Service account
/// (`to_user` = open_kfid), with its fields under the names the rules and
/// placeholders know (`Content`, `MediaId`, …, plus `OpenKfId` and
/// `KfMsgId`). Types the domain has no kind for keep their `msgtype` and
/// become `Unknown`. A location without coordinates is refused.
pub(super) fn to_message(m: &KfMessage) -> Result<Message, MessageError> {
    let mut fields = Fields::addressed(&m.open_kfid, &m.external_userid, m.send_time);
    fields.push("MsgType", &m.msgtype);
    let kind = match m.msgtype.as_str() {
        "text" => {
            let content = str_at(m, "text", "content");
            fields.push("Content", content);
            let menu = str_at(m, "text", "menu_id");
            if !menu.is_empty() {
                fields.push("bizmsgmenuid", menu);
            }
            MessageKind::Text {
                content: content.to_owned(),
                biz_msg_menu_id: Some(menu.to_owned()).filter(|m| !m.is_empty()),
            }
        }
        kind @ ("image" | "voice" | "video" | "file") => {
            let media_id = str_at(m, kind, "media_id").to_owned();
            fields.push("MediaId", &media_id);
            match kind {
                "image" => MessageKind::Image {
                    pic_url: String::new(),
                    media_id,
                },
                "voice" => MessageKind::Voice {
                    media_id,
                    format: String::new(),
                    recognition: None,
                },
                "video" => MessageKind::Video {
                    media_id,
                    thumb_media_id: String::new(),
                },
                _ => MessageKind::Unknown,
            }
        }
        "location" => {
            let latitude = num_at(m, "location", "latitude");
            let longitude = num_at(m, "location", "longitude");
            let label = str_at(m, "location", "address");
            for (name, value) in [("Location_X", latitude), ("Location_Y", longitude)] {
                fields.push(name, &value.map(|v| v.to_string()).unwrap_or_default());
            }
            fields.push("Label", label);
            MessageKind::Location {
                latitude: latitude.ok_or(MessageError::MissingField("Location_X"))?,
                longitude: longitude.ok_or(MessageError::MissingField("Location_Y"))?,
                scale: None,
                label: label.to_owned(),
            }
        }
        "link" => {
            let (title, description, url) = (
                str_at(m, "link", "title"),
                str_at(m, "link", "desc"),
                str_at(m, "link", "url"),
            );
            fields.push("Title", title);
            fields.push("Description", description);
            fields.push("Url", url);
            MessageKind::Link {
                title: title.to_owned(),
                description: description.to_owned(),
                url: url.to_owned(),
            }
        }
        _ => MessageKind::Unknown,
    };
    fields.push("OpenKfId", &m.open_kfid);
    fields.push("KfMsgId", &m.msgid);
    Ok(Message {
        to_user: m.open_kfid.clone(),
        from_user: m.external_userid.clone(),
        create_time: m.send_time,
        msg_type: m.msgtype.trim().to_owned(),
        msg_id: None,
        kind,
        fields: fields.into_element(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kf(value: serde_json::Value) -> KfMessage {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pulled_messages_become_wechat_messages() {
        let m = to_message(&kf(json!({
            "msgid": "from_msgid_1", "open_kfid": "wkAJ", "external_userid": "wmX",
            "send_time": 1700000000, "origin": 3, "msgtype": "text",
            "text": {"content": "你好 ]]> <b>", "menu_id": "101"}
        })))
        .unwrap();
        assert_eq!(m.text(), Some("你好 ]]> <b>"));
        assert_eq!((m.from_user.as_str(), m.to_user.as_str()), ("wmX", "wkAJ"));
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(m.fields.child_text("KfMsgId"), Some("from_msgid_1"));

        let loc = to_message(&kf(json!({
            "msgid": "2", "open_kfid": "wk", "external_userid": "wm", "send_time": 1,
            "origin": 3, "msgtype": "location",
            "location": {"latitude": 23.1, "longitude": 113.3, "name": "n", "address": "a"}
        })))
        .unwrap();
        assert_eq!(loc.msg_type, "location");
        let odd = to_message(&kf(json!({
            "msgid": "3", "open_kfid": "wk", "external_userid": "wm", "send_time": 1,
            "origin": 3, "msgtype": "channels_shop_product", "channels_shop_product": {}
        })))
        .unwrap();
        assert_eq!(odd.kind, MessageKind::Unknown);
    }

    #[test]
    fn send_ids_are_short_stable_and_distinct() {
        let a = send_msgid("from_msgid_4622416642169452483", 0);
        assert!(a.len() <= 32 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(a, send_msgid("from_msgid_4622416642169452483", 0));
        assert_ne!(a, send_msgid("from_msgid_4622416642169452483", 1));
        assert_ne!(a, send_msgid("from_msgid_4622416642169452484", 0));
        assert_eq!(safe_key("wk_AJ-2"), "wk_AJ-2");
        assert_eq!(safe_key("a:b").len(), 40);
    }

    #[test]
    fn news_become_text_for_customer_service() {
        let reply = kf_reply(Reply::News {
            articles: vec![crate::domain::Article {
                title: "T".into(),
                description: "D".into(),
                pic_url: "P".into(),
                url: "U".into(),
            }],
        });
        assert_eq!(
            reply,
            Reply::Text {
                content: "T\nD\nU".into()
            }
        );
    }
}
