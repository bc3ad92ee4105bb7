//! The media side of the `openai` protocol, apart from its exchange: a
//! picture as an image input of the request (`vision = true`), and an
//! answer that is one markdown image as a media answer (`image_answers =
//! true`), which the agent bridge uploads (`agent::media`).

use serde::Serialize;

use super::protocol::Answer;
use crate::agent::history::ChatMessage;
use crate::agent::media::{MediaAnswer, MediaKind};
use crate::domain::{Message, MessageKind, Reply};

/// One message of a request: as remembered, or with a picture.
#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum Outgoing<'a> {
    Chat(&'a ChatMessage),
    Parts {
        role: &'static str,
        content: [ContentPart<'a>; 2],
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(super) enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
pub(super) struct ImageUrl<'a> {
    url: &'a str,
}

/// What history keeps of a picture instead of its URL (WeChat's picture
/// URLs do not last, and sending a picture again on every turn costs).
pub const PICTURE_PLACEHOLDER: &str = "[图片]";

/// The request's messages: `messages` as they are, the last one (the
/// user's) with `picture` as an image input when there is one.
pub(super) fn outgoing<'a>(
    messages: &'a [ChatMessage],
    picture: Option<&'a str>,
) -> Vec<Outgoing<'a>> {
    let mut out: Vec<Outgoing<'a>> = messages.iter().map(Outgoing::Chat).collect();
    if let (Some(url), Some(last)) = (picture, messages.last()) {
        out.pop();
        out.push(Outgoing::Parts {
            role: "user",
            content: [
                ContentPart::Text {
                    text: &last.content,
                },
                ContentPart::ImageUrl {
                    image_url: ImageUrl { url },
                },
            ],
        });
    }
    out
}

/// The picture of an image message, for a `vision` upstream.
pub fn vision_picture(message: &Message, vision: bool) -> Option<&str> {
    match &message.kind {
        MessageKind::Image { pic_url, .. } if vision => {
            Some(pic_url.trim()).filter(|u| u.starts_with("http://") || u.starts_with("https://"))
        }
        _ => None,
    }
}

/// The URL and alt text of an answer that is one markdown image
/// (`![alt](https://…)`) and nothing else.
pub fn lone_image(answer: &str) -> Option<(String, String)> {
    use pulldown_cmark::{Event, Parser, Tag, TagEnd};
    let (mut url, mut alt, mut inside) = (None, String::new(), false);
    for event in Parser::new(answer.trim()) {
        match event {
            Event::Start(Tag::Paragraph) | Event::End(TagEnd::Paragraph) => {}
            Event::Start(Tag::Image { dest_url, .. }) if url.is_none() => {
                url = Some(dest_url.into_string());
                inside = true;
            }
            Event::End(TagEnd::Image) if inside => inside = false,
            Event::Text(t) | Event::Code(t) if inside => alt.push_str(&t),
            Event::SoftBreak | Event::HardBreak if inside => alt.push(' '),
            _ => return None,
        }
    }
    let url = url?;
    let web = ["http://", "https://"].iter().any(|scheme| {
        url.get(..scheme.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(scheme))
    });
    web.then(|| (url, alt.trim().to_owned()))
}

/// `reply` as an image answer when `image_answers` is on and it is a lone
/// markdown image; as it is otherwise.
pub(super) fn image_answer(reply: Reply, image_answers: bool) -> Answer {
    match &reply {
        Reply::Text { content } if image_answers => match lone_image(content) {
            Some((url, alt)) => Answer::Media(MediaAnswer {
                kind: MediaKind::Image,
                url,
                title: Some(alt).filter(|a| !a.is_empty()),
                description: None,
            }),
            None => reply.into(),
        },
        _ => reply.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_lone_web_image_is_an_image_answer() {
        assert_eq!(
            lone_image(" ![一只猫](https://e.com/cat.png) \n"),
            Some(("https://e.com/cat.png".into(), "一只猫".into()))
        );
        assert_eq!(
            lone_image("![](http://e.com/a.jpg \"t\")"),
            Some(("http://e.com/a.jpg".into(), String::new()))
        );
        for not in [
            "看这张图 ![猫](https://e.com/cat.png)",
            "![a](https://e.com/1.png)\n\n![b](https://e.com/2.png)",
            "![a](data:image/png;base64,AAAA)",
            "![a](/relative.png)",
            "[link](https://e.com/cat.png)",
            "plain text",
        ] {
            assert_eq!(lone_image(not), None, "{not}");
        }
        let text = |content: &str| Reply::Text {
            content: content.into(),
        };
        assert_eq!(
            image_answer(text("![猫](https://e.com/cat.png)"), false),
            Answer::Reply(text("![猫](https://e.com/cat.png)"))
        );
        assert!(matches!(
            image_answer(text("![猫](https://e.com/cat.png)"), true),
            Answer::Media(MediaAnswer {
                kind: MediaKind::Image,
                ..
            })
        ));
    }

    #[test]
    fn a_picture_goes_as_an_image_input_after_the_text() {
        let messages = [
            ChatMessage::new("system", "s"),
            ChatMessage::new("user", "请描述这张图片"),
        ];
        let value = serde_json::to_value(outgoing(&messages, Some("https://e.com/p.jpg"))).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"role": "system", "content": "s"},
                {"role": "user", "content": [
                    {"type": "text", "text": "请描述这张图片"},
                    {"type": "image_url", "image_url": {"url": "https://e.com/p.jpg"}},
                ]},
            ])
        );
        let plain = serde_json::to_value(outgoing(&messages, None)).unwrap();
        assert_eq!(
            plain[1],
            serde_json::json!({"role": "user", "content": "请描述这张图片"})
        );
    }
}
