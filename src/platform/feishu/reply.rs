//! Answers as Feishu replies, and the callback side that sends them: a
//! Feishu push is acknowledged with 200 at once and its answer — a rule's
//! as much as an upstream's — goes through the reply API.

use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::api::{FeishuApi, ReplyBody};
use crate::conversation::{Responder, Response};
use crate::domain::split::split_text;
use crate::domain::{Message, Reply};
use crate::metrics::{KindLabel, Metrics};

/// Longest markdown sent in one `post` (Feishu takes 30 KB per request,
/// content and wrapping included).
pub const MAX_POST_BYTES: usize = 28 * 1024;

/// A reply as the markdown Feishu renders; `None` for what has no Feishu
/// form (nothing to say, a transfer, WeChat media ids).
pub fn markdown_of(reply: &Reply) -> Option<String> {
    let link = |title: &str, url: &str| {
        let title = title.replace(['[', ']'], "");
        match (title.is_empty(), url.is_empty()) {
            (_, true) => title,
            (true, false) => url.to_owned(),
            (false, false) => format!("[{title}]({})", url.replace(')', "%29")),
        }
    };
    match reply {
        Reply::Text { content } if !content.trim().is_empty() => Some(content.clone()),
        Reply::News { articles } => {
            let items: Vec<String> = articles
                .iter()
                .map(|a| {
                    let head = format!("**{}**", link(&a.title, &a.url));
                    if a.description.is_empty() {
                        head
                    } else {
                        format!("{head}\n{}", a.description)
                    }
                })
                .collect();
            Some(items.join("\n\n")).filter(|s| !s.is_empty())
        }
        Reply::Music {
            title, music_url, ..
        } => music_url
            .as_deref()
            .map(|url| link(title.as_deref().unwrap_or(""), url)),
        _ => None,
    }
}

/// The reply bodies of an answer to `message_id`: its markdown as `post`
/// messages with one `md` element each, split to fit; each with a `uuid`
/// derived from the message and the part, so that a repeated send is one
/// message on Feishu's side.
pub fn reply_bodies(message_id: &str, reply: &Reply) -> Vec<ReplyBody> {
    let Some(markdown) = markdown_of(reply) else {
        return Vec::new();
    };
    let digest = hex::encode(Sha256::digest(message_id.as_bytes()));
    split_text(&markdown, MAX_POST_BYTES)
        .into_iter()
        .enumerate()
        .map(|(part, text)| ReplyBody {
            msg_type: "post",
            content: json!({"zh_cn": {"content": [[{"tag": "md", "text": text}]]}}).to_string(),
            uuid: format!("wxgate-{}-{part}", &digest[..32]),
        })
        .collect()
}

/// Acknowledges every Feishu message at once (Feishu takes no answer in
/// the response) and sends the inner responder's answer, when it is ready,
/// through the reply API.
pub struct FeishuResponder {
    api: FeishuApi,
    inner: Arc<dyn Responder>,
    metrics: Arc<Metrics>,
}

impl FeishuResponder {
    /// Wraps `inner`; answers go out through `api`.
    pub fn new(api: FeishuApi, inner: Arc<dyn Responder>, metrics: Arc<Metrics>) -> Self {
        FeishuResponder {
            api,
            inner,
            metrics,
        }
    }
}

impl Responder for FeishuResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let future = match self.inner.respond(message) {
            Response::Ready(reply) => Box::pin(std::future::ready(reply)),
            Response::Pending(future) => future,
            Response::Deferred(d) => d.into_whole(),
        };
        let (api, metrics) = (self.api.clone(), self.metrics.clone());
        let message_id = message
            .fields
            .child_text("MessageId")
            .unwrap_or_default()
            .to_owned();
        let span = tracing::Span::current();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let reply = future.await;
                let bodies = reply_bodies(&message_id, &reply);
                if bodies.is_empty() && !matches!(reply, Reply::Success) {
                    tracing::warn!(
                        msg_type = reply.msg_type().unwrap_or("-"),
                        "this answer has no Feishu form (WeChat media, transfer); nothing sent"
                    );
                }
                for body in &bodies {
                    let kind = match api.reply(&message_id, body).await {
                        Ok(()) => "delivered",
                        Err(e) => {
                            tracing::warn!(error = %e, "Feishu reply failed");
                            "failed"
                        }
                    };
                    metrics
                        .late_results
                        .get_or_create(&KindLabel { kind })
                        .inc();
                    if kind == "failed" {
                        break;
                    }
                }
                if !bodies.is_empty() {
                    tracing::info!(
                        messages = bodies.len(),
                        "answer sent through the Feishu reply API"
                    );
                }
            },
            span,
        ));
        Response::Ready(Reply::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Article;

    #[test]
    fn answers_become_markdown_posts() {
        let text = reply_bodies(
            "om_1",
            &Reply::Text {
                content: "**hi**".into(),
            },
        );
        assert_eq!(text.len(), 1);
        assert_eq!(text[0].msg_type, "post");
        let content: serde_json::Value = serde_json::from_str(&text[0].content).unwrap();
        assert_eq!(content["zh_cn"]["content"][0][0]["tag"], "md");
        assert_eq!(content["zh_cn"]["content"][0][0]["text"], "**hi**");
        assert!(text[0].uuid.len() <= 50);
        let news = Reply::News {
            articles: vec![Article {
                title: "A [1]".into(),
                description: "D".into(),
                url: "https://e.x/a)".into(),
                pic_url: String::new(),
            }],
        };
        assert_eq!(
            markdown_of(&news).unwrap(),
            "**[A 1](https://e.x/a%29)**\nD"
        );
        assert!(reply_bodies("om_1", &Reply::Success).is_empty());
        assert!(reply_bodies(
            "om_1",
            &Reply::Image {
                media_id: "m".into()
            }
        )
        .is_empty());
        let long = "字".repeat(20_000);
        let parts = reply_bodies("om_1", &Reply::Text { content: long });
        assert!(parts.len() > 1 && parts.iter().all(|p| p.content.len() < 30 * 1024));
        assert_ne!(parts[0].uuid, parts[1].uuid);
    }
}
