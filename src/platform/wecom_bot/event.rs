//! A 智能机器人's decrypted callback into the domain, pure: a user message
//! (`msgtype` `text`, `image`, `mixed`, …), a stream refresh
//! (`msgtype = "stream"`), or an event (`enter_chat`, a card button) as a
//! domain event for the rules.

use serde_json::Value;

use crate::domain::{Event, Message, MessageKind};
use crate::platform::convert::{str_at, Fields};

/// Why a decrypted callback is not one WeCom would send.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum WeComBotEventError {
    /// Not a JSON object.
    #[error("plaintext is not a JSON object")]
    NotJson,
    /// A field every callback of its kind has is missing.
    #[error("callback without {0}")]
    Missing(&'static str),
}

/// What one callback asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum BotPush {
    /// A user's message, to be answered with a new stream.
    Message(Box<Message>),
    /// WeCom asks for the stream's content so far.
    Refresh {
        /// The stream's id, as wxgate answered it.
        stream_id: String,
        /// The bot the callback is for (`aibotid`).
        bot_id: String,
    },
    /// An event (entering the chat, a card button), as a domain event
    /// (`MsgType = event`, `Event` = its `eventtype`) the rules may answer.
    Event {
        /// The bot the callback is for (`aibotid`).
        bot_id: String,
        /// `event.eventtype`.
        event_type: String,
        /// The event as the rules see it.
        message: Box<Message>,
    },
}

/// Reads the decrypted plaintext. A message becomes a domain [`Message`]
/// from `from.userid` to the bot (`aibotid`), its text trimmed; a picture
/// an image with its URL; anything else `Unknown` with its `msgtype`. The
/// fields keep `BotMsgId`, `AiBotId`, `ChatId`, `ChatType` and
/// `ResponseUrl`.
pub fn read(plaintext: &str) -> Result<BotPush, WeComBotEventError> {
    let v: Value = serde_json::from_str(plaintext).map_err(|_| WeComBotEventError::NotJson)?;
    if !v.is_object() {
        return Err(WeComBotEventError::NotJson);
    }
    let bot_id = str_at(&v, &["aibotid"]).to_owned();
    let msgtype = str_at(&v, &["msgtype"]);
    match msgtype {
        "stream" => {
            let stream_id = str_at(&v, &["stream", "id"]);
            if stream_id.is_empty() {
                return Err(WeComBotEventError::Missing("stream.id"));
            }
            return Ok(BotPush::Refresh {
                stream_id: stream_id.to_owned(),
                bot_id,
            });
        }
        "event" => {
            let event_type = str_at(&v, &["event", "eventtype"]).to_owned();
            let message = Box::new(event_message(&v, &bot_id, &event_type));
            return Ok(BotPush::Event {
                bot_id,
                event_type,
                message,
            });
        }
        "" => return Err(WeComBotEventError::Missing("msgtype")),
        _ => {}
    }
    let msg_id = str_at(&v, &["msgid"]);
    if msg_id.is_empty() {
        return Err(WeComBotEventError::Missing("msgid"));
    }
    let sender = str_at(&v, &["from", "userid"]);
    if sender.is_empty() {
        return Err(WeComBotEventError::Missing("from.userid"));
    }
    let mut fields = Fields::addressed(&bot_id, sender, 0);
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
        "image" => {
            let url = str_at(&v, &["image", "url"]);
            push("MsgType", "image");
            push("PicUrl", url);
            (
                "image",
                MessageKind::Image {
                    pic_url: url.to_owned(),
                    media_id: String::new(),
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
    push("BotMsgId", msg_id);
    push("AiBotId", &bot_id);
    push("ChatId", str_at(&v, &["chatid"]));
    push("ChatType", str_at(&v, &["chattype"]));
    push("ResponseUrl", str_at(&v, &["response_url"]));
    Ok(BotPush::Message(Box::new(Message {
        to_user: bot_id,
        from_user: sender.to_owned(),
        create_time: 0,
        msg_type: msg_type.to_owned(),
        msg_id: Some(numeric),
        kind,
        fields: fields.into_element(),
    })))
}

/// An event callback as a domain event from `from.userid` (when WeCom
/// names one) to the bot, at its `create_time`. Its `msgid` is the event's
/// `Token`, so that WeCom's retries of it share one dedup key.
fn event_message(v: &Value, bot_id: &str, event_type: &str) -> Message {
    let sender = str_at(v, &["from", "userid"]);
    let create_time = v.get("create_time").and_then(Value::as_i64).unwrap_or(0);
    let msg_id = str_at(v, &["msgid"]);
    let mut fields = Fields::addressed(bot_id, sender, create_time);
    for (name, text) in [
        ("MsgType", "event"),
        ("Event", event_type),
        ("Token", msg_id),
        ("BotMsgId", msg_id),
        ("AiBotId", bot_id),
        ("ChatType", str_at(v, &["chattype"])),
    ] {
        fields.push(name, text);
    }
    Message {
        to_user: bot_id.to_owned(),
        from_user: sender.to_owned(),
        create_time,
        msg_type: "event".to_owned(),
        msg_id: None,
        kind: MessageKind::Event(Event::Unknown),
        fields: fields.into_element(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_becomes_a_domain_text() {
        let body = json!({
            "msgid": "CAIQ16HMjQYY", "aibotid": "AIBOTID", "chatid": "CHATID", "chattype": "group",
            "from": {"userid": "zhangsan"}, "response_url": "https://qyapi.weixin.qq.com/cgi-bin/aibot/response?response_code=RC",
            "msgtype": "text", "text": {"content": " @机器人 价格 "},
        });
        let BotPush::Message(m) = read(&body.to_string()).unwrap() else {
            panic!("not a message")
        };
        assert_eq!(m.text(), Some("@机器人 价格"));
        assert_eq!(m.from_user, "zhangsan");
        assert_eq!(m.to_user, "AIBOTID");
        assert_eq!(m.fields.child_text("BotMsgId"), Some("CAIQ16HMjQYY"));
        assert_eq!(m.fields.child_text("ChatType"), Some("group"));
        assert!(m
            .fields
            .child_text("ResponseUrl")
            .unwrap()
            .ends_with("response_code=RC"));
    }

    #[test]
    fn refreshes_events_and_junk() {
        let refresh =
            json!({"msgid": "m2", "aibotid": "B", "msgtype": "stream", "stream": {"id": "s1"}});
        assert_eq!(
            read(&refresh.to_string()).unwrap(),
            BotPush::Refresh {
                stream_id: "s1".into(),
                bot_id: "B".into()
            }
        );
        let event = json!({"msgid": "m3", "aibotid": "B", "create_time": 1700000000, "chattype": "single",
            "from": {"userid": "u1"}, "msgtype": "event", "event": {"eventtype": "enter_chat"}});
        let BotPush::Event {
            event_type,
            message,
            ..
        } = read(&event.to_string()).unwrap()
        else {
            panic!("not an event");
        };
        assert_eq!(event_type, "enter_chat");
        // A domain event the rules match on `event`, deduplicated by its msgid.
        assert!(!message.is_user_message());
        assert_eq!(message.event_name(), "enter_chat");
        assert_eq!(
            (message.from_user.as_str(), message.create_time),
            ("u1", 1_700_000_000)
        );
        assert_eq!(message.fields.child_text("Token"), Some("m3"));
        assert_eq!(read("[]"), Err(WeComBotEventError::NotJson));
        assert_eq!(read("{"), Err(WeComBotEventError::NotJson));
        assert_eq!(
            read(&json!({"msgtype": "stream"}).to_string()),
            Err(WeComBotEventError::Missing("stream.id"))
        );
        assert_eq!(
            read(&json!({"msgtype": "text", "from": {"userid": "u"}}).to_string()),
            Err(WeComBotEventError::Missing("msgid"))
        );
        assert_eq!(
            read(&json!({"msgtype": "text", "msgid": "m"}).to_string()),
            Err(WeComBotEventError::Missing("from.userid"))
        );
        let mixed =
            json!({"msgid": "m4", "aibotid": "B", "msgtype": "mixed", "from": {"userid": "u"}});
        let BotPush::Message(m) = read(&mixed.to_string()).unwrap() else {
            panic!("not a message")
        };
        assert_eq!(m.kind, MessageKind::Unknown);
    }
}
