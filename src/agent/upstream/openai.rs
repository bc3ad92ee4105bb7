//! `protocol = "openai"`: an OpenAI-compatible chat-completions endpoint
//! (OpenAI, Ollama, vLLM, llama.cpp, …), with per-user memory and a reset
//! command that clears it. With `vision = true` a picture goes to the model
//! as an image input; with `image_answers = true` an answer that is one
//! markdown image and nothing else becomes an image reply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::chat_media::{image_answer, outgoing, vision_picture, Outgoing, PICTURE_PLACEHOLDER};
use super::protocol::{CallFuture, Http, LocalFuture, Protocol, UpstreamError};
use crate::agent::history::{ChatMessage, History};
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
