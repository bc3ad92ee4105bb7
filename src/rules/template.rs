//! Placeholders in reply text: `{from_user}`, `{to_user}`, `{content}`,
//! `{event}`, `{event_key}`, `{msg_type}`, `{create_time}`; `{{` and `}}` escape.

use crate::domain::Message;

/// The placeholder names a template may use.
pub const PLACEHOLDERS: &[&str] = &[
    "from_user",
    "to_user",
    "content",
    "event",
    "event_key",
    "msg_type",
    "create_time",
];

/// Checks a template; returns the first problem.
pub fn validate(template: &str) -> Result<(), String> {
    expand_with(template, |name| {
        if PLACEHOLDERS.contains(&name) {
            Ok(String::new())
        } else {
            Err(format!(
                "unknown placeholder {{{name}}} (known: {})",
                PLACEHOLDERS.join(", ")
            ))
        }
    })
    .map(|_| ())
}

/// True if expanding could change the text.
pub fn has_placeholders(template: &str) -> bool {
    template.contains('{') || template.contains('}')
}

/// Expands a validated template for a message; `{content}` is
/// [`Message::text`] (a text, or a voice's transcript).
pub fn expand(template: &str, message: &Message) -> String {
    expand_with_content(template, message, message.text())
}

/// Expands a validated template with `content` as `{content}` (empty when
/// `None`): the rules pass the text they matched on.
pub fn expand_with_content(template: &str, message: &Message, content: Option<&str>) -> String {
    expand_with(template, |name| {
        Ok(match name {
            "from_user" => message.from_user.clone(),
            "to_user" => message.to_user.clone(),
            "content" => content.unwrap_or_default().to_owned(),
            "event" => message.event_name().to_owned(),
            "event_key" => message.event_key().to_owned(),
            "msg_type" => message.msg_type.clone(),
            "create_time" => message.create_time.to_string(),
            _ => String::new(),
        })
    })
    .unwrap_or_else(|_| template.to_owned())
}

fn expand_with(
    template: &str,
    mut value: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("{{") {
            out.push('{');
            rest = after;
        } else if let Some(after) = tail.strip_prefix("}}") {
            out.push('}');
            rest = after;
        } else if tail.starts_with('}') {
            return Err("unmatched '}' (write '}}' for a literal brace)".into());
        } else {
            let Some(end) = tail.find('}') else {
                return Err("unclosed '{' (write '{{' for a literal brace)".into());
            };
            out.push_str(&value(&tail[1..end])?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message() -> Message {
        Message::parse(
            "<xml><ToUserName>gh_1</ToUserName><FromUserName>o_2</FromUserName><CreateTime>7</CreateTime><MsgType>text</MsgType><Content>hi {x}</Content></xml>".as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn expands_known_placeholders() {
        assert_eq!(
            expand(
                "{from_user}->{to_user}: {content} @{create_time} {{literal}}",
                &message()
            ),
            "o_2->gh_1: hi {x} @7 {literal}"
        );
    }

    #[test]
    fn rejects_unknown_and_unbalanced() {
        assert!(validate("{nope}")
            .unwrap_err()
            .contains("unknown placeholder {nope}"));
        assert!(validate("{content").is_err());
        assert!(validate("a } b").is_err());
        assert!(validate("{content} and {{ }}").is_ok());
    }
}
