//! `protocol = "openai"`: an OpenAI-compatible chat-completions endpoint
//! (OpenAI, Ollama, vLLM, llama.cpp, …), with per-user memory and a reset
//! command that clears it. With `stream = true` the answer is read as
//! server-sent events and complete parts are handed on as they arrive.
//! With `vision = true` a picture goes to the model
//! as an image input; with `image_answers = true` an answer that is one
//! markdown image and nothing else becomes an image reply.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::chat_media::{image_answer, outgoing, vision_picture, Outgoing, PICTURE_PLACEHOLDER};
use super::protocol::{
    CallFuture, Emit, Http, LocalFuture, Protocol, UpstreamError, MAX_RESPONSE_BYTES,
};
use crate::agent::history::{ChatMessage, History};
use crate::agent::settings::OpenAiSettings;
use crate::domain::split::stream_cut;
use crate::domain::{Message, MessageKind, Reply};

/// The first streamed part goes out once it is this long (a heading alone
/// is not worth a message) …
const FIRST_PART_BYTES: usize = 40;
/// … and each later one once this much more is complete, so that a long
/// answer takes a few messages, not one per paragraph.
const NEXT_PART_BYTES: usize = 300;

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

/// One server-sent event of a streamed completion.
#[derive(Deserialize)]
struct StreamChunk {
    #[serde(default)]
    choices: Vec<StreamChoice>,
    error: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct StreamChoice {
    #[serde(default)]
    delta: Delta,
}

#[derive(Deserialize, Default)]
struct Delta {
    content: Option<String>,
}

/// A streamed answer as it arrives: the text so far, what of it was
/// handed on, and whether the stream broke off.
#[derive(Debug, Default)]
pub struct StreamedText {
    raw: String,
    emitted: usize,
    /// Why the stream broke off before `[DONE]`, if it did.
    pub cut: Option<UpstreamError>,
}

impl StreamedText {
    /// The answer so far without a `<think>…</think>` preamble; `None`
    /// while the preamble is still open.
    fn visible(&self) -> Option<&str> {
        let text = self.raw.trim_start();
        if let Some(rest) = text.strip_prefix("<think>") {
            return rest
                .find("</think>")
                .map(|close| rest[close + "</think>".len()..].trim_start());
        }
        if !text.is_empty() && "<think>".starts_with(text) {
            return None;
        }
        Some(text)
    }

    /// Appends a delta; hands each newly complete part to `emit`.
    fn push(&mut self, delta: &str, emit: Emit<'_>) {
        self.raw.push_str(delta);
        let Some(emit) = emit else { return };
        let emitted = self.emitted;
        let Some(visible) = self.visible() else {
            return;
        };
        let min = if emitted == 0 {
            FIRST_PART_BYTES
        } else {
            NEXT_PART_BYTES
        };
        if let Some(cut) = stream_cut(&visible[emitted..], min) {
            let part = visible[emitted..emitted + cut].trim();
            if !part.is_empty() {
                emit(part.to_owned());
            }
            self.emitted = emitted + cut;
        }
    }

    /// The whole answer (for history).
    pub fn whole(&self) -> &str {
        self.visible().unwrap_or_default().trim()
    }

    /// What was not handed on.
    pub fn rest(&self) -> &str {
        self.visible()
            .map(|v| v[self.emitted.min(v.len())..].trim())
            .unwrap_or_default()
    }
}

/// Where a streamed body comes from: the upstream's response, or a test's
/// chunks.
pub trait Chunks {
    /// The next piece of the body; `None` at its end.
    fn next_chunk(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, UpstreamError>> + Send;
}

struct Body<'a> {
    response: reqwest::Response,
    http: &'a Http,
}

impl Chunks for Body<'_> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        match self.response.chunk().await {
            Ok(chunk) => Ok(chunk.map(|c| c.to_vec())),
            Err(e) => Err(self.http.transport(e)),
        }
    }
}

impl Chunks for std::collections::VecDeque<Result<Vec<u8>, UpstreamError>> {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, UpstreamError> {
        self.pop_front().transpose()
    }
}

/// Reads a streamed completion (`data: {…}` events until `data: [DONE]`)
/// from `chunks`, handing complete parts to `emit`. A stream that breaks
/// off after some text keeps that text and says why in `cut`; one that
/// breaks off before any is an error.
pub async fn read_stream(
    mut chunks: impl Chunks,
    emit: Emit<'_>,
) -> Result<StreamedText, UpstreamError> {
    let mut text = StreamedText::default();
    let mut line = Vec::new();
    let mut data = String::new();
    let mut received = 0usize;
    let mut done = false;
    let failure = 'read: loop {
        let chunk = match chunks.next_chunk().await {
            Ok(Some(chunk)) => chunk,
            Err(e) => break 'read Some(e),
            Ok(None) => break 'read None,
        };
        received += chunk.len();
        if received > MAX_RESPONSE_BYTES {
            break Some(UpstreamError::Malformed(format!(
                "stream longer than {MAX_RESPONSE_BYTES} bytes"
            )));
        }
        for &byte in chunk.iter() {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            let l = String::from_utf8_lossy(&line)
                .trim_end_matches('\r')
                .to_owned();
            line.clear();
            if let Some(value) = l.strip_prefix("data:") {
                if !data.is_empty() {
                    data.push('\n');
                }
                data.push_str(value.strip_prefix(' ').unwrap_or(value));
                continue;
            }
            if !l.is_empty() {
                // `event:`, `id:`, `retry:` and `: comments`.
                continue;
            }
            // A blank line ends the event.
            let event = std::mem::take(&mut data);
            if event.is_empty() {
                continue;
            }
            if event.trim() == "[DONE]" {
                done = true;
                break 'read None;
            }
            match serde_json::from_str::<StreamChunk>(&event) {
                Ok(StreamChunk { error: Some(e), .. }) => {
                    let what = e
                        .get("message")
                        .and_then(|m| m.as_str())
                        .unwrap_or("error event");
                    break 'read Some(UpstreamError::Malformed(format!(
                        "the stream reported an error: {}",
                        what.chars().take(200).collect::<String>()
                    )));
                }
                Ok(chunk) => {
                    if let Some(delta) = chunk
                        .choices
                        .into_iter()
                        .next()
                        .and_then(|c| c.delta.content)
                    {
                        text.push(&delta, emit);
                    }
                }
                Err(e) => {
                    break 'read Some(UpstreamError::Malformed(format!(
                        "not a completion chunk: {e}"
                    )))
                }
            }
        }
    };
    let failure = failure.or_else(|| {
        (!done).then(|| UpstreamError::Malformed("the stream ended before [DONE]".into()))
    });
    if let Some(e) = failure {
        if text.whole().is_empty() {
            return Err(e);
        }
        text.cut = Some(e);
    } else if text.whole().is_empty() {
        return Err(UpstreamError::Malformed("empty answer".into()));
    }
    Ok(text)
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

    async fn exchange(
        &self,
        http: &Http,
        message: &Message,
        emit: Emit<'_>,
    ) -> Result<Reply, UpstreamError> {
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
            stream: settings.stream,
        });
        if let Some(key) = &settings.api_key {
            request = request.bearer_auth(key.expose());
        }
        let (answer, reply) = if settings.stream {
            self.streamed(http, request, emit).await?
        } else {
            let (_, body) = http.send(request).await?;
            let answer = parse_answer(&body)?;
            let reply = Reply::Text {
                content: answer.clone(),
            };
            (answer, reply)
        };
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
        Ok(reply)
    }

    /// A streamed exchange: the whole answer (for history) and the reply
    /// (what was not handed to `emit`, ended by the cut text when the
    /// stream broke off).
    async fn streamed(
        &self,
        http: &Http,
        request: reqwest::RequestBuilder,
        emit: Emit<'_>,
    ) -> Result<(String, Reply), UpstreamError> {
        let response = http.open(request).await?;
        let is_json = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if is_json {
            // A server that does not stream answers whole.
            let body = response.bytes().await.map_err(|e| http.transport(e))?;
            if body.len() > MAX_RESPONSE_BYTES {
                return Err(UpstreamError::Malformed("answer too large".into()));
            }
            let answer = parse_answer(&body)?;
            let reply = Reply::Text {
                content: answer.clone(),
            };
            return Ok((answer, reply));
        }
        let text = read_stream(Body { response, http }, emit).await?;
        let mut rest = text.rest().to_owned();
        if let Some(e) = &text.cut {
            tracing::warn!(kind = e.kind(), error = %e, "the upstream's stream broke off; what arrived is delivered, ended by the cut text");
            if !rest.is_empty() {
                rest.push_str("\n\n");
            }
            rest.push_str(&self.settings.stream_cut_text);
        }
        let reply = if rest.is_empty() {
            Reply::Success
        } else {
            Reply::Text { content: rest }
        };
        Ok((text.whole().to_owned(), reply))
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
        emit: Emit<'a>,
    ) -> CallFuture<'a> {
        let image_answers = self.settings.image_answers;
        Box::pin(async move {
            let reply = self.exchange(http, message, emit).await?;
            Ok(image_answer(reply, image_answers))
        })
    }

    fn streams(&self) -> bool {
        self.settings.stream
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;

    #[test]
    fn answers_are_read_from_the_first_choice() {
        let body = r#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":" 你好！ "},"finish_reason":"stop"}]}"#;
        assert_eq!(parse_answer(body.as_bytes()).unwrap(), "你好！");
        let think = br#"{"choices":[{"message":{"content":"<think>\nhmm\n</think>\n\nanswer"}}]}"#;
        assert_eq!(parse_answer(think).unwrap(), "answer");
    }

    fn sse(deltas: &[&str], done: bool) -> Vec<u8> {
        let mut body = String::from(": keep-alive\n\n");
        for d in deltas {
            let chunk = serde_json::json!({"choices":[{"index":0,"delta":{"content":d}}]});
            body.push_str(&format!("data: {chunk}\r\n\r\n"));
        }
        if done {
            body.push_str("data: [DONE]\n\n");
        }
        body.into_bytes()
    }

    /// The body cut into pieces of `size` bytes (lines and characters split).
    fn pieces(body: &[u8], size: usize) -> VecDeque<Result<Vec<u8>, UpstreamError>> {
        body.chunks(size).map(|c| Ok(c.to_vec())).collect()
    }

    fn read(
        chunks: VecDeque<Result<Vec<u8>, UpstreamError>>,
    ) -> (Result<StreamedText, UpstreamError>, Vec<String>) {
        let parts = std::sync::Mutex::new(Vec::new());
        let emit = |p: String| parts.lock().unwrap().push(p);
        let result = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_stream(chunks, Some(&emit)));
        (result, parts.into_inner().unwrap())
    }

    #[test]
    fn a_stream_hands_on_complete_paragraphs_in_order() {
        let deltas = [
            "第一段：这是一段足够长的开头，",
            "用来测试流式回答的第一部分。\n\n",
            "## 第二段\n\n",
            "短。\n\n",
            "最后",
            "一段没有结尾",
        ];
        for size in [1, 7, 64, 4096] {
            let (text, parts) = read(pieces(&sse(&deltas, true), size));
            let text = text.unwrap();
            assert_eq!(
                parts,
                ["第一段：这是一段足够长的开头，用来测试流式回答的第一部分。"],
                "size {size}"
            );
            assert!(text.cut.is_none());
            assert_eq!(text.rest(), "## 第二段\n\n短。\n\n最后一段没有结尾");
            assert_eq!(text.whole(), deltas.concat().trim());
        }
    }

    #[test]
    fn a_think_preamble_is_never_handed_on() {
        let long = "x".repeat(60);
        let deltas = [
            "<thi",
            "nk>\nreasoning\n\nmore reasoning that is long enough to be a part\n\n",
            "</think>\n\n",
            &long,
            "\n\nend",
        ];
        let (text, parts) = read(pieces(&sse(&deltas, true), 5));
        assert_eq!(parts, [long.as_str()]);
        assert_eq!(text.unwrap().whole(), format!("{long}\n\nend"));
    }

    #[test]
    fn a_stream_that_breaks_off_keeps_what_arrived() {
        let first = "a complete first paragraph, long enough to go out.\n\n";
        // The connection fails mid-answer.
        let mut chunks = pieces(&sse(&[first, "and half of"], false), 16);
        chunks.push_back(Err(UpstreamError::Transport("connection reset".into())));
        let (text, parts) = read(chunks);
        let text = text.unwrap();
        assert_eq!(parts, [first.trim()]);
        assert_eq!(text.rest(), "and half of");
        assert_eq!(text.cut.as_ref().unwrap().kind(), "error");
        // The body ends without [DONE].
        let (text, _) = read(pieces(&sse(&["only this"], false), 8));
        assert_eq!(text.unwrap().cut.unwrap().kind(), "malformed");
        // An error event.
        let mut body = sse(&["some text"], false);
        body.extend_from_slice(b"data: {\"error\":{\"message\":\"overloaded\"}}\n\n");
        let (text, _) = read(pieces(&body, 4096));
        let text = text.unwrap();
        assert!(text
            .cut
            .as_ref()
            .unwrap()
            .to_string()
            .contains("overloaded"));
        assert_eq!(text.rest(), "some text");
        // Nothing arrived at all: an error, answered by the fallback.
        let mut chunks = VecDeque::new();
        chunks.push_back(Err(UpstreamError::Transport("reset".into())));
        assert!(read(chunks).0.is_err());
        assert_eq!(
            read(pieces(&sse(&[], true), 8)).0.unwrap_err().kind(),
            "malformed"
        );
        assert_eq!(
            read(pieces(b"data: {not json}\n\n", 8))
                .0
                .unwrap_err()
                .kind(),
            "malformed"
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
