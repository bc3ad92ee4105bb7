//! Feishu's event bodies into the domain, pure: the URL check, schema 2.0
//! events, and `im.message.receive_v1` messages as a domain [`Message`]
//! (docs/platforms/feishu.md).

use serde::Deserialize;
use serde_json::Value;

use crate::domain::{Message, MessageKind};
use crate::platform::convert::{str_at, Fields};

/// The event type of a message sent to the bot.
pub const MESSAGE_RECEIVE: &str = "im.message.receive_v1";

/// What one (decrypted) body is.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `{"type":"url_verification","challenge","token"}`: echo the challenge.
    UrlVerification {
        /// To echo.
        challenge: String,
        /// The Verification Token it claims.
        token: String,
    },
    /// A schema 2.0 event.
    Event(Box<Event>),
    /// Anything else with a token (a schema 1.0 event): acknowledged, not answered.
    Other {
        /// The Verification Token it claims.
        token: String,
        /// Its type, for the log.
        kind: String,
    },
}

impl Body {
    /// The Verification Token the body carries.
    pub fn token(&self) -> &str {
        match self {
            Body::UrlVerification { token, .. } | Body::Other { token, .. } => token,
            Body::Event(e) => &e.header.token,
        }
    }
}

/// A schema 2.0 event: its header and its payload.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    /// Who, what, when.
    pub header: Header,
    /// The payload (kept as JSON: only messages are read).
    #[serde(default)]
    pub event: Value,
}

/// The header of a schema 2.0 event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Header {
    /// Unique per event; the same on every re-push.
    #[serde(default)]
    pub event_id: String,
    /// `im.message.receive_v1`, …
    #[serde(default)]
    pub event_type: String,
    /// The Verification Token.
    #[serde(default)]
    pub token: String,
    /// The app the event is for.
    #[serde(default)]
    pub app_id: String,
    /// Milliseconds since the epoch, as text.
    #[serde(default)]
    pub create_time: String,
}

/// Why a body is not one Feishu would send.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum EventError {
    /// Not a JSON object.
    #[error("body is not a JSON object")]
    NotJson,
    /// A schema 2.0 body without a usable header.
    #[error("malformed event: {0}")]
    Malformed(&'static str),
}

/// The body as JSON, with `encrypt` when it is encrypted.
pub fn envelope(body: &[u8]) -> Result<(Value, Option<String>), EventError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| EventError::NotJson)?;
    if !value.is_object() {
        return Err(EventError::NotJson);
    }
    let encrypt = value
        .get("encrypt")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((value, encrypt))
}

/// Reads a (decrypted) body.
pub fn parse(value: Value) -> Result<Body, EventError> {
    let text = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    if value.get("type").and_then(Value::as_str) == Some("url_verification") {
        return Ok(Body::UrlVerification {
            challenge: text(&value, "challenge"),
            token: text(&value, "token"),
        });
    }
    if value.get("schema").and_then(Value::as_str) == Some("2.0") {
        let event: Event =
            serde_json::from_value(value).map_err(|_| EventError::Malformed("header"))?;
        if event.header.event_id.is_empty() || event.header.event_type.is_empty() {
            return Err(EventError::Malformed(
                "header without event_id or event_type",
            ));
        }
        return Ok(Body::Event(Box::new(event)));
    }
    let kind = value
        .get("event")
        .map(|e| text(e, "type"))
        .unwrap_or_else(|| text(&value, "type"));
    Ok(Body::Other {
        token: text(&value, "token"),
        kind,
    })
}

/// Which group messages are answered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MentionPolicy {
    /// Group messages must mention the bot.
    pub require_mention: bool,
    /// The bot's open_id; without it any mention counts as the bot's.
    pub bot_open_id: Option<String>,
}

/// What becomes of a message event.
#[derive(Debug, Clone, PartialEq)]
pub enum Converted {
    /// A message to answer.
    Message(Box<Message>),
    /// Not answered, and why (for the log).
    Ignored(&'static str),
}

pub use crate::platform::numeric_id;

/// A mention in a message: its placeholder key, the name, and the open_id.
struct Mention {
    key: String,
    name: String,
    open_id: String,
}

fn mentions(message: &Value) -> Vec<Mention> {
    message
        .get("mentions")
        .and_then(Value::as_array)
        .map(|all| {
            all.iter()
                .map(|m| Mention {
                    key: str_at(m, &["key"]).to_owned(),
                    name: str_at(m, &["name"]).to_owned(),
                    open_id: str_at(m, &["id", "open_id"]).to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The text of a `post`: its title and every text-bearing element, a line
/// per paragraph (any locale: the first one found).
fn post_text(content: &Value) -> String {
    // Pushed posts are `{title, content}`; sent ones `{zh_cn: {title, content}}`.
    let post = if content.get("content").is_some() {
        content
    } else {
        content
            .as_object()
            .and_then(|o| o.values().find(|v| v.get("content").is_some()))
            .unwrap_or(content)
    };
    let mut lines = Vec::new();
    let title = str_at(post, &["title"]);
    if !title.is_empty() {
        lines.push(title.to_owned());
    }
    for paragraph in post
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let line: String = paragraph
            .as_array()
            .into_iter()
            .flatten()
            .map(|el| match str_at(el, &["tag"]) {
                "at" => format!("@{}", str_at(el, &["user_id"])),
                "img" | "media" | "emotion" | "hr" => String::new(),
                _ => str_at(el, &["text"]).to_owned(),
            })
            .collect();
        lines.push(line);
    }
    lines.join("\n")
}

/// An `im.message.receive_v1` event as a domain message: from the sender's
/// open_id to the app, text (a post's text too) with the bot's mention
/// removed and others' shown as `@name`, images by `image_key`, anything
/// else `Unknown` with its `message_type`. The original ids and content
/// are kept in the fields (`MessageId`, `EventId`, `ChatId`, `ChatType`,
/// `MessageType`, `RawContent`). Group messages that do not mention the
/// bot are ignored when `policy` says so; so are messages not from a user.
pub fn to_message(event: &Event, policy: &MentionPolicy) -> Result<Converted, EventError> {
    let message = event
        .event
        .get("message")
        .ok_or(EventError::Malformed("message event without message"))?;
    let message_id = str_at(message, &["message_id"]);
    if message_id.is_empty() {
        return Err(EventError::Malformed("message without message_id"));
    }
    let sender = str_at(&event.event, &["sender", "sender_id", "open_id"]);
    if sender.is_empty() {
        return Err(EventError::Malformed("message without sender open_id"));
    }
    if !matches!(
        str_at(&event.event, &["sender", "sender_type"]),
        "" | "user"
    ) {
        return Ok(Converted::Ignored("not sent by a user"));
    }
    let chat_type = str_at(message, &["chat_type"]);
    let all_mentions = mentions(message);
    let is_bot = |m: &Mention| match &policy.bot_open_id {
        Some(bot) => &m.open_id == bot,
        None => true,
    };
    let mentioned = all_mentions.iter().any(is_bot);
    if chat_type == "group" && policy.require_mention && !mentioned {
        return Ok(Converted::Ignored(
            "group message without a mention of the bot",
        ));
    }
    let message_type = str_at(message, &["message_type"]);
    let raw_content = str_at(message, &["content"]);
    let content: Value = serde_json::from_str(raw_content).unwrap_or(Value::Null);
    let unmention = |text: &str| {
        let mut text = text.to_owned();
        for m in all_mentions.iter().filter(|m| !m.key.is_empty()) {
            let with = if is_bot(m) {
                String::new()
            } else {
                format!("@{}", m.name)
            };
            text = text.replace(&m.key, &with);
        }
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let create_ms: i64 = str_at(message, &["create_time"])
        .parse()
        .or_else(|_| event.header.create_time.parse())
        .unwrap_or(0);
    let create_time = create_ms / 1000;
    let mut fields = Fields::addressed(&event.header.app_id, sender, create_time);
    let mut push = |name: &str, text: &str| fields.push(name, text);
    let (msg_type, kind) = match message_type {
        "text" | "post" => {
            let text = if message_type == "text" {
                unmention(str_at(&content, &["text"]))
            } else {
                unmention(&post_text(&content))
            };
            push("MsgType", "text");
            push("Content", &text);
            (
                "text",
                MessageKind::Text {
                    content: text,
                    biz_msg_menu_id: None,
                },
            )
        }
        "image" => {
            let key = str_at(&content, &["image_key"]);
            push("MsgType", "image");
            push("MediaId", key);
            (
                "image",
                MessageKind::Image {
                    pic_url: String::new(),
                    media_id: key.to_owned(),
                },
            )
        }
        other => {
            push("MsgType", other);
            (other, MessageKind::Unknown)
        }
    };
    let msg_id = numeric_id(message_id);
    push("MsgId", &msg_id.to_string());
    push("MessageId", message_id);
    push("EventId", &event.header.event_id);
    push("ChatId", str_at(message, &["chat_id"]));
    push("ChatType", chat_type);
    push("MessageType", message_type);
    push("RawContent", raw_content);
    Ok(Converted::Message(Box::new(Message {
        to_user: event.header.app_id.clone(),
        from_user: sender.to_owned(),
        create_time,
        msg_type: msg_type.to_owned(),
        msg_id: Some(msg_id),
        kind,
        fields: fields.into_element(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(message: Value) -> Event {
        Event {
            header: Header {
                event_id: "ev1".into(),
                event_type: MESSAGE_RECEIVE.into(),
                token: "tok".into(),
                app_id: "cli_a".into(),
                create_time: "1700000000000".into(),
            },
            event: json!({
                "sender": {"sender_id": {"open_id": "ou_user"}, "sender_type": "user"},
                "message": message,
            }),
        }
    }

    fn text_of(c: Converted) -> String {
        match c {
            Converted::Message(m) => m.text().unwrap_or_default().to_owned(),
            Converted::Ignored(why) => panic!("ignored: {why}"),
        }
    }

    #[test]
    fn a_text_message_becomes_a_domain_text_without_the_bots_mention() {
        let e = event(json!({
            "message_id": "om_1", "chat_id": "oc_1", "chat_type": "group",
            "message_type": "text",
            "content": "{\"text\":\"@_user_1 hi @_user_2\"}",
            "mentions": [
                {"key": "@_user_1", "name": "bot", "id": {"open_id": "ou_bot"}},
                {"key": "@_user_2", "name": "Ann", "id": {"open_id": "ou_ann"}},
            ],
        }));
        let policy = MentionPolicy {
            require_mention: true,
            bot_open_id: Some("ou_bot".into()),
        };
        let Converted::Message(m) = to_message(&e, &policy).unwrap() else {
            panic!("answered")
        };
        assert_eq!(m.text(), Some("hi @Ann"));
        assert_eq!(m.from_user, "ou_user");
        assert_eq!(m.to_user, "cli_a");
        assert_eq!(m.create_time, 1_700_000_000);
        assert_eq!(m.msg_id, Some(numeric_id("om_1")));
        assert_eq!(m.fields.child_text("MessageId"), Some("om_1"));
        assert_eq!(m.fields.child_text("ChatType"), Some("group"));
    }

    #[test]
    fn group_messages_need_the_bots_mention_when_configured() {
        let plain = json!({"message_id": "om_2", "chat_type": "group", "message_type": "text",
            "content": "{\"text\":\"hello all\"}"});
        let policy = MentionPolicy {
            require_mention: true,
            bot_open_id: None,
        };
        assert!(matches!(
            to_message(&event(plain.clone()), &policy).unwrap(),
            Converted::Ignored(_)
        ));
        let open = MentionPolicy::default();
        assert_eq!(
            text_of(to_message(&event(plain), &open).unwrap()),
            "hello all"
        );
        // Someone else's mention is not the bot's, when the bot is known.
        let other = json!({"message_id": "om_3", "chat_type": "group", "message_type": "text",
            "content": "{\"text\":\"@_user_1 look\"}",
            "mentions": [{"key": "@_user_1", "name": "Ann", "id": {"open_id": "ou_ann"}}]});
        let known = MentionPolicy {
            require_mention: true,
            bot_open_id: Some("ou_bot".into()),
        };
        assert!(matches!(
            to_message(&event(other), &known).unwrap(),
            Converted::Ignored(_)
        ));
        // Direct messages need no mention.
        let p2p = json!({"message_id": "om_4", "chat_type": "p2p", "message_type": "text",
            "content": "{\"text\":\"hi\"}"});
        assert_eq!(text_of(to_message(&event(p2p), &known).unwrap()), "hi");
    }

    #[test]
    fn posts_read_as_text_and_images_by_key() {
        let post = json!({"message_id": "om_5", "chat_type": "p2p", "message_type": "post",
            "content": json!({"title": "T", "content": [[{"tag": "text", "text": "a "}, {"tag": "a", "text": "link", "href": "https://x"}], [{"tag": "img", "image_key": "k"}]]}).to_string()});
        assert_eq!(
            text_of(to_message(&event(post), &MentionPolicy::default()).unwrap()),
            "T a link"
        );
        let image = json!({"message_id": "om_6", "chat_type": "p2p", "message_type": "image",
            "content": "{\"image_key\":\"img_v2_1\"}"});
        let Converted::Message(m) = to_message(&event(image), &MentionPolicy::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.msg_type, "image");
        assert_eq!(m.fields.child_text("MediaId"), Some("img_v2_1"));
        let sticker = json!({"message_id": "om_7", "chat_type": "p2p", "message_type": "sticker", "content": "{}"});
        let Converted::Message(m) = to_message(&event(sticker), &MentionPolicy::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(m.msg_type, "sticker");
        assert_eq!(m.kind, MessageKind::Unknown);
    }

    #[test]
    fn bodies_are_told_apart_and_junk_is_refused() {
        let url =
            parse(json!({"type": "url_verification", "challenge": "c", "token": "t"})).unwrap();
        assert_eq!(
            url,
            Body::UrlVerification {
                challenge: "c".into(),
                token: "t".into()
            }
        );
        assert!(matches!(
            parse(json!({"schema": "2.0", "header": {}})),
            Err(EventError::Malformed(_))
        ));
        assert!(matches!(
            parse(json!({"schema": "2.0", "header": 5})),
            Err(EventError::Malformed(_))
        ));
        assert!(
            matches!(parse(json!({"uuid": "u", "token": "t", "event": {"type": "message"}})).unwrap(), Body::Other { kind, .. } if kind == "message")
        );
        assert_eq!(envelope(b"[1]"), Err(EventError::NotJson));
        assert_eq!(envelope(b"\xff"), Err(EventError::NotJson));
        let missing = Event {
            event: json!({"message": {"message_id": "om"}}),
            ..event(json!({}))
        };
        assert!(to_message(&missing, &MentionPolicy::default()).is_err());
    }
}
