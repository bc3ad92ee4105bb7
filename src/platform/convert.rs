//! What the platforms that speak JSON (Feishu, DingTalk, the WeCom
//! 智能机器人, 微信客服's pulled messages) share when they turn a push into
//! a domain [`Message`](crate::domain::Message): reading a string out of a JSON path, the stable
//! number for a text message id, and the message's fields in WeChat's
//! names, in order. Pure.

use serde_json::Value;

use crate::domain::Element;

/// The string at `path` in `v`; empty when any step is missing or the
/// value is not a string.
pub fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    let mut here = v;
    for key in path {
        match here.get(key) {
            Some(next) => here = next,
            None => return "",
        }
    }
    here.as_str().unwrap_or("")
}

/// A stable 64-bit id for a platform's text message id (the domain's
/// `MsgId` is a number): the first 8 bytes of its SHA-256, the same on
/// every node. Feishu, DingTalk and the WeCom bot name messages by text.
pub fn numeric_id(message_id: &str) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(message_id.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(bytes)
}

/// A message's fields as WeChat names them (`ToUserName`, `MsgType`, …,
/// and each platform's own), in order, under an `<xml>`-named root: what
/// the rules and the agent read beside the typed message.
pub struct Fields(Element);

impl Default for Fields {
    fn default() -> Self {
        Fields(Element {
            name: "xml".to_owned(),
            ..Element::default()
        })
    }
}

impl Fields {
    /// The first fields every message has.
    pub fn addressed(to: &str, from: &str, create_time: i64) -> Self {
        let mut fields = Fields::default();
        fields.push("ToUserName", to);
        fields.push("FromUserName", from);
        fields.push("CreateTime", &create_time.to_string());
        fields
    }

    /// Adds `<name>text</name>`.
    pub fn push(&mut self, name: &str, text: &str) {
        self.0.children.push(Element {
            name: name.to_owned(),
            text: text.to_owned(),
            children: Vec::new(),
        });
    }

    /// The root element, for the message's `fields`.
    pub fn into_element(self) -> Element {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_fields() {
        let v = json!({"a": {"b": "x", "n": 1}});
        assert_eq!(str_at(&v, &["a", "b"]), "x");
        assert_eq!(str_at(&v, &["a", "n"]), "");
        assert_eq!(str_at(&v, &["a", "c", "d"]), "");
        let mut fields = Fields::addressed("to", "from", 7);
        fields.push("MsgType", "text");
        let root = fields.into_element();
        assert_eq!(root.name, "xml");
        assert_eq!(root.child_text("CreateTime"), Some("7"));
        assert_eq!(root.child_text("MsgType"), Some("text"));
        assert_eq!(numeric_id("m"), numeric_id("m"));
        assert_ne!(numeric_id("m"), numeric_id("n"));
    }
}
