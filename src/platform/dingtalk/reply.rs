//! Answers as DingTalk robot messages: the JSON of the callback's response
//! body and of a `sessionWebhook` send, and the late channel that sends
//! through the message's `sessionWebhook` before it expires.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::clock::Clock;
use crate::conversation::{LateDelivery, LateError, LateFailure, LateFuture};
use crate::domain::split::split_text;
use crate::domain::{Message, Reply};

/// Longest markdown in one message (DingTalk takes about 20 000 bytes).
pub const MAX_MARKDOWN_BYTES: usize = 18 * 1024;

/// The markdown of a reply; `None` for what has no DingTalk form.
fn markdown_of(reply: &Reply) -> Option<String> {
    match reply {
        Reply::Text { content } if !content.trim().is_empty() => Some(content.clone()),
        Reply::News { articles } => {
            let items: Vec<String> = articles
                .iter()
                .map(|a| {
                    let title = a.title.replace(['[', ']'], "");
                    let head = if a.url.is_empty() {
                        format!("**{title}**")
                    } else {
                        format!("**[{title}]({})**", a.url.replace(')', "%29"))
                    };
                    match a.description.as_str() {
                        "" => head,
                        d => format!("{head}\n\n{d}"),
                    }
                })
                .collect();
            Some(items.join("\n\n")).filter(|s| !s.is_empty())
        }
        _ => None,
    }
}

/// A markdown message's title (what the notification shows): the first
/// line without markdown marks, at most 20 characters.
fn title_of(markdown: &str) -> String {
    let first = markdown
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let plain: String = first
        .chars()
        .filter(|c| !matches!(c, '#' | '*' | '_' | '`' | '>' | '[' | ']'))
        .collect();
    let title: String = plain.trim().chars().take(20).collect();
    if title.is_empty() {
        "消息".to_owned()
    } else {
        title
    }
}

/// The robot messages of an answer: markdown (DingTalk renders it), split
/// to fit; empty when the answer has no DingTalk form.
pub fn messages(reply: &Reply) -> Vec<Value> {
    let Some(markdown) = markdown_of(reply) else {
        return Vec::new();
    };
    split_text(&markdown, MAX_MARKDOWN_BYTES)
        .into_iter()
        .map(|text| {
            json!({"msgtype": "markdown", "markdown": {"title": title_of(text), "text": text}})
        })
        .collect()
}

/// Sends late answers through the message's `sessionWebhook`, which must
/// live under the account's API base URL and not have expired.
pub struct SessionWebhookDelivery {
    http: reqwest::Client,
    allowed_prefix: String,
    clock: Arc<dyn Clock>,
}

impl SessionWebhookDelivery {
    /// Sends to webhooks under `api_base_url` (`https://oapi.dingtalk.com`).
    pub fn new(api_base_url: &str, timeout: Duration, clock: Arc<dyn Clock>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        SessionWebhookDelivery {
            http,
            allowed_prefix: format!("{}/", api_base_url.trim_end_matches('/')),
            clock,
        }
    }
}

impl LateDelivery for SessionWebhookDelivery {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let http = self.http.clone();
        let webhook = message
            .fields
            .child_text("SessionWebhook")
            .unwrap_or_default()
            .to_owned();
        let expires_ms: Option<i64> = message
            .fields
            .child_text("SessionWebhookExpiredTime")
            .and_then(|t| t.parse().ok());
        let now_ms = self.clock.now_unix().saturating_mul(1000);
        let allowed = webhook.starts_with(&self.allowed_prefix);
        Box::pin(async move {
            if !allowed {
                return Err(LateError::other(
                    "the message's sessionWebhook is not under the account's api_base_url; not sending there",
                ));
            }
            if expires_ms.is_none_or(|e| e <= now_ms) {
                return Err(LateError {
                    kind: LateFailure::OutOfWindow,
                    rest: Some(reply),
                    message: "the message's sessionWebhook has expired".into(),
                });
            }
            for body in messages(&reply) {
                let response = http.post(&webhook).json(&body).send().await.map_err(|e| {
                    LateError::other(format!("sessionWebhook: {}", e.without_url()))
                })?;
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(-1);
                if !status.is_success() || errcode != 0 {
                    return Err(LateError::other(format!(
                        "sessionWebhook refused the message: HTTP {status}, errcode {errcode}"
                    )));
                }
            }
            tracing::info!("late answer sent through the DingTalk sessionWebhook");
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_markdown_messages() {
        let m = messages(&Reply::Text {
            content: "## 价格\n**便宜**".into(),
        });
        assert_eq!(
            m,
            vec![
                json!({"msgtype": "markdown", "markdown": {"title": "价格", "text": "## 价格\n**便宜**"}})
            ]
        );
        assert!(messages(&Reply::Success).is_empty());
        assert!(messages(&Reply::Image {
            media_id: "x".into()
        })
        .is_empty());
        assert_eq!(title_of("***"), "消息");
        let long = messages(&Reply::Text {
            content: "字".repeat(10_000),
        });
        assert!(long.len() > 1);
    }
}
