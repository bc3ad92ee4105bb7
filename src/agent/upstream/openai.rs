//! `protocol = "openai"`: an OpenAI-compatible chat-completions endpoint
//! (OpenAI, Ollama, vLLM, llama.cpp, …), with per-user memory and a reset
//! command that clears it. With `vision = true` a picture goes to the model
//! as an image input; with `image_answers = true` an answer that is one
//! markdown image and nothing else becomes an image reply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::protocol::{Answer, CallFuture, Http, LocalFuture, Protocol, UpstreamError};
use crate::agent::history::{ChatMessage, History};
use crate::agent::media::{MediaAnswer, MediaKind};
use crate::agent::settings::OpenAiSettings;
use crate::domain::{Message, MessageKind, Reply};

#[derive(Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [Outgoing<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
    stream: bool,
}

/// One message of a request: as remembered, or with a picture.
#[derive(Serialize)]
#[serde(untagged)]
enum Outgoing<'a> {
    Chat(&'a ChatMessage),
    Parts {
        role: &'static str,
        content: [ContentPart<'a>; 2],
    },
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ContentPart<'a> {
    Text { text: &'a str },
    ImageUrl { image_url: ImageUrl<'a> },
}

#[derive(Serialize)]
struct ImageUrl<'a> {
    url: &'a str,
}

/// What history keeps of a picture instead of its URL (WeChat's picture
/// URLs do not last, and sending a picture again on every turn costs).
pub const PICTURE_PLACEHOLDER: &str = "[图片]";

/// The request's messages: `messages` as they are, the last one (the
/// user's) with `picture` as an image input when there is one.
fn outgoing<'a>(messages: &'a [ChatMessage], picture: Option<&'a str>) -> Vec<Outgoing<'a>> {
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
fn image_answer(reply: Reply, image_answers: bool) -> Answer {
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

#[derive(Deserialize)]
struct ChatResponse {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: AnswerMessage,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
}

/// What the user said: the text, or (with `voice_as_text`) recognised
/// speech. `None` for pictures, events and the rest, which a chat model
/// cannot take.
pub fn user_text(message: &Message, voice_as_text: bool) -> Option<&str> {
    match &message.kind {
        MessageKind::Text { .. } => message.text(),
        MessageKind::Voice { .. } if voice_as_text => message.text(),
        _ => None,
    }
    .filter(|t| !t.trim().is_empty())
}

/// The answer text of a chat-completions response, without the
/// `<think>…</think>` preamble reasoning models put first.
pub fn parse_answer(body: &[u8]) -> Result<String, UpstreamError> {
    let response: ChatResponse = serde_json::from_slice(body)
        .map_err(|e| UpstreamError::Malformed(format!("not a chat completion: {e}")))?;
    let content = response
        .choices
        .into_iter()
        .next()
        .and_then(|c| c.message.content)
        .ok_or_else(|| UpstreamError::Malformed("no choices[0].message.content".into()))?;
    let content = match (content.find("<think>"), content.find("</think>")) {
        (Some(open), Some(close)) if open < close && content[..open].trim().is_empty() => {
            &content[close + "</think>".len()..]
        }
        _ => &content[..],
    };
    let content = content.trim();
    if content.is_empty() {
        return Err(UpstreamError::Malformed("empty answer".into()));
    }
    Ok(content.to_owned())
}

/// The chat-completions protocol, with the users' history.
pub struct OpenAi {
    settings: OpenAiSettings,
    history: History,
}

impl OpenAi {
    /// Keeps each user's conversation in `history`.
    pub fn new(settings: OpenAiSettings, history: History) -> Self {
        OpenAi { settings, history }
    }

    async fn exchange(&self, http: &Http, message: &Message) -> Result<Reply, UpstreamError> {
        let settings = &self.settings;
        let picture = vision_picture(message, settings.vision);
        let text = user_text(message, settings.voice_as_text)
            .or(picture.map(|_| settings.vision_prompt.as_str()));
        let Some(text) = text else {
            tracing::debug!(msg_type = %message.msg_type, "a chat upstream takes text (and pictures with vision) only; answering success");
            return Ok(Reply::Success);
        };
        let openid = &message.from_user;
        let remember = settings.history_turns > 0;
        let mut history = if remember {
            self.history.load(openid).await
        } else {
            Vec::new()
        };
        let mut messages = Vec::with_capacity(history.len() + 2);
        if let Some(prompt) = &settings.system_prompt {
            messages.push(ChatMessage::new("system", prompt.as_str()));
        }
        messages.extend(history.iter().cloned());
        messages.push(ChatMessage::new("user", text));
        let mut request = http.post().json(&ChatRequest {
            model: &settings.model,
            messages: &outgoing(&messages, picture),
            temperature: settings.temperature,
            stream: false,
        });
        if let Some(key) = &settings.api_key {
            request = request.bearer_auth(key.expose());
        }
        let (_, body) = http.send(request).await?;
        let answer = parse_answer(&body)?;
        if remember {
            let remembered = match picture {
                Some(_) => format!("{PICTURE_PLACEHOLDER} {text}"),
                None => text.to_owned(),
            };
            history.push(ChatMessage::new("user", remembered));
            history.push(ChatMessage::new("assistant", answer.as_str()));
            self.history
                .save(
                    openid,
                    history,
                    settings.history_turns,
                    settings.history_ttl,
                )
                .await;
        }
        Ok(Reply::Text { content: answer })
    }
}

impl Protocol for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    /// The reset command clears the user's history and is answered at once.
    fn intercept(&self, message: &Arc<Message>) -> Option<LocalFuture> {
        let text = user_text(message, self.settings.voice_as_text)?;
        if text.trim() != self.settings.reset_command {
            return None;
        }
        let (history, openid) = (self.history.clone(), message.from_user.clone());
        let content = self.settings.reset_reply.clone();
        Some(Box::pin(async move {
            history.clear(&openid).await;
            tracing::info!("conversation history cleared on request");
            Reply::Text { content }
        }))
    }

    fn call<'a>(
        &'a self,
        http: &'a Http,
        message: &'a Message,
        _app_id: &'a str,
    ) -> CallFuture<'a> {
        let image_answers = self.settings.image_answers;
        Box::pin(async move {
            let reply = self.exchange(http, message).await?;
            Ok(image_answer(reply, image_answers))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_from_the_first_choice() {
        let body = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":" 你好！ "},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_answer(body.as_bytes()).unwrap(), "你好！");
        let think = br#"{"choices":[{"message":{"content":"<think>\nhmm\n</think>\n\nanswer"}}]}"#;
        assert_eq!(parse_answer(think).unwrap(), "answer");
    }

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

    #[test]
    fn malformed_completions_are_refused() {
        for body in [
            &b"{}"[..],
            br#"{"choices":[]}"#,
            br#"{"choices":[{"message":{"content":null}}]}"#,
            br#"{"choices":[{"message":{"content":"  "}}]}"#,
            b"<html>",
        ] {
            assert_eq!(parse_answer(body).unwrap_err().kind(), "malformed");
        }
    }
}
