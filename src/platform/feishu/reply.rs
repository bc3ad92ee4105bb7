//! Answers as Feishu replies, and Feishu's late channel: a Feishu push is
//! acknowledged with 200 at once (it takes nothing in the response) and
//! the conversation engine hands every answer — a rule's as much as an
//! upstream's — to [`FeishuDelivery`], which sends it through the reply API.

use std::sync::Arc;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::api::{FeishuApi, ReplyBody};
use crate::conversation::{LateDelivery, LateError, LateFailure, LateFuture};
use crate::domain::split::split_text;
use crate::domain::{Message, Reply};
use crate::metrics::Metrics;

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

/// The markdown of an answer as the texts of its `post` messages, in
/// order, each within [`MAX_POST_BYTES`].
fn post_texts(reply: &Reply) -> Vec<String> {
    markdown_of(reply)
        .map(|markdown| {
            split_text(&markdown, MAX_POST_BYTES)
                .into_iter()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The `uuid` of a post with `text` answering `message_id`, the
/// `occurrence`-th of that text in one send: a send repeated after a
/// crash or a lost answer carries the same uuids, and Feishu (which
/// remembers them for an hour) posts each part once.
fn uuid_of(message_id: &str, text: &str, occurrence: usize) -> String {
    let mut hash = Sha256::new();
    for field in [message_id.as_bytes(), text.as_bytes()] {
        hash.update((field.len() as u64).to_be_bytes());
        hash.update(field);
    }
    hash.update((occurrence as u64).to_be_bytes());
    // 7 + 32 characters: within Feishu's 50.
    format!("wxgate-{}", &hex::encode(hash.finalize())[..32])
}

/// The reply bodies of an answer to `message_id`: its markdown as `post`
/// messages with one `md` element each, split to fit; each with a `uuid`
/// derived from the message and the part's text, so that a repeated send
/// is one message on Feishu's side.
pub fn reply_bodies(message_id: &str, reply: &Reply) -> Vec<ReplyBody> {
    bodies_of(message_id, &post_texts(reply))
}

fn bodies_of(message_id: &str, texts: &[String]) -> Vec<ReplyBody> {
    texts
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let occurrence = texts[..i].iter().filter(|t| *t == text).count();
            ReplyBody {
                msg_type: "post",
                content: json!({"zh_cn": {"content": [[{"tag": "md", "text": text}]]}}).to_string(),
                uuid: uuid_of(message_id, text, occurrence),
            }
        })
        .collect()
}

/// Feishu's late channel: answers go to the message they answer through
/// `im/v1/messages/{message_id}/reply`, part after part. A refusal says
/// what the engine should do: retry later (rate limit, Feishu busy or
/// unreachable: the unsent parts are sent again), or give up (the message
/// withdrawn, the bot out of the chat, a request Feishu will never take).
/// Feishu has no send window and no per-turn quota, so nothing is kept
/// for the user's next message.
pub struct FeishuDelivery {
    api: FeishuApi,
    metrics: Arc<Metrics>,
}

impl FeishuDelivery {
    /// Sends through `api`.
    pub fn new(api: FeishuApi, metrics: Arc<Metrics>) -> Self {
        FeishuDelivery { api, metrics }
    }
}

impl LateDelivery for FeishuDelivery {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let (api, metrics) = (self.api.clone(), self.metrics.clone());
        Box::pin(async move {
            let message_id = message.fields.child_text("MessageId").unwrap_or_default();
            let texts = post_texts(&reply);
            if texts.is_empty() {
                return Err(LateError::other(format!(
                    "a {} answer has no Feishu form (WeChat media, a transfer); nothing sent",
                    reply.msg_type().unwrap_or("success")
                )));
            }
            let bodies = bodies_of(message_id, &texts);
            for (i, body) in bodies.iter().enumerate() {
                if let Err(e) = api.reply(message_id, body).await {
                    metrics.agent_failure(e.label());
                    let kind = if e.is_transient() {
                        LateFailure::RetryLater
                    } else {
                        LateFailure::Other
                    };
                    return Err(LateError {
                        kind,
                        rest: Some(Reply::Text {
                            content: texts[i..].join("\n"),
                        }),
                        message: format!("Feishu reply {} of {} not sent: {e}", i + 1, texts.len()),
                    });
                }
            }
            metrics.agent_delivery("late");
            tracing::info!(
                messages = bodies.len(),
                "answer sent through the Feishu reply API"
            );
            Ok(())
        })
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

    #[test]
    fn a_repeated_send_carries_the_same_uuids_and_parts_differ() {
        let long = format!("{}\n{}", "甲".repeat(8_000), "乙".repeat(8_000));
        let reply = Reply::Text { content: long };
        let first = reply_bodies("om_1", &reply);
        assert_eq!(first.len(), 2);
        // The same answer again (a retry, a sweep after a crash): the same uuids.
        assert_eq!(first, reply_bodies("om_1", &reply));
        // What a refused second part leaves to send again keeps its uuid.
        let texts = post_texts(&reply);
        let rest = Reply::Text {
            content: texts[1..].join("\n"),
        };
        assert_eq!(reply_bodies("om_1", &rest)[0].uuid, first[1].uuid);
        // Another message, or the same text twice in one answer: other uuids.
        assert_ne!(reply_bodies("om_2", &reply)[0].uuid, first[0].uuid);
        let twice = bodies_of("om_1", &["a".to_owned(), "a".to_owned()]);
        assert_ne!(twice[0].uuid, twice[1].uuid);
        assert!(first.iter().all(|b| b.uuid.chars().count() <= 50));
    }
}
