//! DingTalk robot messages into the domain, pure: the JSON a robot's HTTP
//! callback receives (`msgtype`, `text.content`, `msgId`, `senderStaffId`,
//! `conversationType`, `sessionWebhook` and its expiry, …) as a domain
//! [`Message`].

use serde_json::Value;

use crate::domain::{Message, MessageKind};
use crate::platform::convert::{str_at, Fields};

/// Why a body is not a robot message DingTalk would send.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DingTalkEventError {
    /// Not a JSON object.
    #[error("body is not a JSON object")]
    NotJson,
    /// A field every robot message has is missing.
    #[error("robot message without {0}")]
    Missing(&'static str),
}

fn num_of(v: &Value, key: &str) -> Option<i64> {
    match v.get(key)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A robot message as a domain message: from the sender (`senderStaffId`,
/// else `senderId`) to the robot (`chatbotUserId`), text trimmed (DingTalk
/// puts a space after the @), a picture as an image with its
/// `downloadCode`, anything else `Unknown` with its `msgtype`. The fields
/// keep `DingTalkMsgId`, `ConversationId`, `ConversationType` (1 direct,
/// 2 group), `SessionWebhook`, `SessionWebhookExpiredTime` (ms),
/// `SenderNick`, `SenderStaffId` (empty for users outside the organisation).
pub fn to_message(body: &[u8]) -> Result<Message, DingTalkEventError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| DingTalkEventError::NotJson)?;
    if !v.is_object() {
        return Err(DingTalkEventError::NotJson);
    }
    let msg_id = str_at(&v, &["msgId"]);
    if msg_id.is_empty() {
        return Err(DingTalkEventError::Missing("msgId"));
    }
    let sender = match str_at(&v, &["senderStaffId"]) {
        "" => str_at(&v, &["senderId"]),
        staff => staff,
    };
    if sender.is_empty() {
        return Err(DingTalkEventError::Missing("senderId"));
    }
    let robot = match str_at(&v, &["chatbotUserId"]) {
        "" => str_at(&v, &["robotCode"]),
        id => id,
    };
    let create_time = num_of(&v, "createAt").unwrap_or(0) / 1000;
    let msgtype = str_at(&v, &["msgtype"]);
    let mut fields = Fields::addressed(robot, sender, create_time);
    let mut push = |name: &str, text: &str| fields.push(name, text);
    let (msg_type, kind) = match msgtype {
        "text" => {
            let content = str_at(&v, &["text", "content"]).trim().to_owned();
            push("MsgType", "text");
            push("Content", &content);
            (
                "text",
                MessageKind::Text {
                    content,
                    biz_msg_menu_id: None,
                },
            )
        }
        "picture" => {
            let code = str_at(&v, &["content", "downloadCode"]);
            push("MsgType", "image");
            push("MediaId", code);
            (
                "image",
                MessageKind::Image {
                    pic_url: String::new(),
                    media_id: code.to_owned(),
                },
            )
        }
        other => {
            push("MsgType", other);
            (other, MessageKind::Unknown)
        }
    };
    let numeric = crate::platform::numeric_id(msg_id);
    push("MsgId", &numeric.to_string());
    push("DingTalkMsgId", msg_id);
    push("ConversationId", str_at(&v, &["conversationId"]));
    push("ConversationType", str_at(&v, &["conversationType"]));
    push("SessionWebhook", str_at(&v, &["sessionWebhook"]));
    push(
        "SessionWebhookExpiredTime",
        &num_of(&v, "sessionWebhookExpiredTime")
            .map(|t| t.to_string())
            .unwrap_or_default(),
    );
    push("SenderNick", str_at(&v, &["senderNick"]));
    // The userId the robot send API addresses a direct chat by.
    push("SenderStaffId", str_at(&v, &["senderStaffId"]));
    Ok(Message {
        to_user: robot.to_owned(),
        from_user: sender.to_owned(),
        create_time,
        msg_type: msg_type.to_owned(),
        msg_id: Some(numeric),
        kind,
        fields: fields.into_element(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_message_becomes_a_domain_text() {
        let body = json!({
            "msgtype": "text", "text": {"content": " 价格 "}, "msgId": "msgABC==",
            "createAt": 1700000000123_i64, "conversationType": "2", "conversationId": "cid1",
            "senderId": "$:LWCP_v1:$x", "senderStaffId": "manager01", "chatbotUserId": "$:bot",
            "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
            "sessionWebhookExpiredTime": 1700005400000_i64, "senderNick": "张三",
        });
        let m = to_message(body.to_string().as_bytes()).unwrap();
        assert_eq!(m.text(), Some("价格"));
        assert_eq!(m.from_user, "manager01");
        assert_eq!(m.to_user, "$:bot");
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(
            m.fields.child_text("SessionWebhookExpiredTime"),
            Some("1700005400000")
        );
        assert_eq!(m.fields.child_text("ConversationType"), Some("2"));
        assert!(m.msg_id.is_some());
    }

    #[test]
    fn pictures_others_and_junk() {
        let pic = json!({"msgtype": "picture", "content": {"downloadCode": "dc1"}, "msgId": "m2", "senderId": "u"});
        let m = to_message(pic.to_string().as_bytes()).unwrap();
        assert_eq!(
            (m.msg_type.as_str(), m.fields.child_text("MediaId")),
            ("image", Some("dc1"))
        );
        let file = json!({"msgtype": "file", "msgId": "m3", "senderId": "u"});
        assert_eq!(
            to_message(file.to_string().as_bytes()).unwrap().kind,
            MessageKind::Unknown
        );
        assert_eq!(to_message(b"[]"), Err(DingTalkEventError::NotJson));
        assert_eq!(
            to_message(b"{\"senderId\":\"u\"}"),
            Err(DingTalkEventError::Missing("msgId"))
        );
        assert_eq!(
            to_message(b"{\"msgId\":\"m\"}"),
            Err(DingTalkEventError::Missing("senderId"))
        );
    }
}
