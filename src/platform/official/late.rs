//! Late answers to Official Account users through the customer-service
//! API (PROTOCOL §7), with the typing indicator while the user waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::conversation::{LateDelivery, LateFuture};
use crate::domain::{Message, Reply};
use crate::metrics::Metrics;
use crate::platform::send::{message_bodies, send_in_order, SendPolicy};
use crate::platform::wechat_api::{CustomMessage, TypingCommand, WechatApi};

/// Sends late replies with `/cgi-bin/message/custom/send`.
pub struct CustomServiceDelivery {
    api: WechatApi,
    metrics: Arc<Metrics>,
    policy: SendPolicy,
    typing: bool,
    /// Typing calls in flight, by message, so the answer never overtakes
    /// the indicator (which would then linger after it).
    typing_calls: Mutex<HashMap<String, JoinHandle<()>>>,
}

impl CustomServiceDelivery {
    /// Sends through `api`; shows "typing…" while waiting when `typing`.
    pub fn new(api: WechatApi, metrics: Arc<Metrics>, typing: bool) -> Self {
        CustomServiceDelivery {
            api,
            metrics,
            policy: SendPolicy::default(),
            typing,
            typing_calls: Mutex::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: SendPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn calls(&self) -> std::sync::MutexGuard<'_, HashMap<String, JoinHandle<()>>> {
        self.typing_calls.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn message_key(message: &Message) -> String {
    format!(
        "{}:{}:{}",
        message.from_user,
        message.create_time,
        message.msg_id.unwrap_or(0)
    )
}

impl LateDelivery for CustomServiceDelivery {
    fn waiting(&self, message: &Arc<Message>) {
        if !self.typing || message.from_user.is_empty() {
            return;
        }
        let api = self.api.clone();
        let to = message.from_user.clone();
        // Once: it shows for 15 s or until the answer arrives. Repeating it
        // would answer 45081 (already typing) and spend quota.
        let call = tokio::spawn(async move {
            if let Err(e) = api.typing(&to, TypingCommand::Typing).await {
                tracing::debug!(error = %e, "typing indicator not shown");
            }
        });
        let mut calls = self.calls();
        calls.retain(|_, c| !c.is_finished());
        calls.insert(message_key(message), call);
    }

    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let typing = self.calls().remove(&message_key(&message));
        let api = self.api.clone();
        let metrics = self.metrics.clone();
        let policy = self.policy.clone();
        Box::pin(async move {
            let parts = custom_messages(&message.from_user, &reply)?;
            if let Some(call) = typing {
                let _ = tokio::time::timeout(Duration::from_secs(3), call).await;
            }
            let sent = send_in_order(
                &reply,
                &parts,
                &policy,
                &metrics,
                "customer-service message",
                |m| api.send_custom(m),
            )
            .await?;
            if sent > 0 {
                tracing::info!(
                    messages = sent,
                    "late answer sent through the customer-service API"
                );
            }
            Ok(())
        })
    }
}

/// The customer-service messages that carry `reply` to `to`, in order:
/// text split at line and sentence ends, the first article of news.
pub fn custom_messages(to: &str, reply: &Reply) -> Result<Vec<CustomMessage>, String> {
    Ok(message_bodies(reply, 1, true)?
        .into_iter()
        .map(|body| CustomMessage {
            touser: to.to_owned(),
            body,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn bodies(reply: &Reply) -> Vec<serde_json::Value> {
        custom_messages("o_1", reply)
            .unwrap()
            .into_iter()
            .map(|m| serde_json::to_value(m).unwrap())
            .collect()
    }

    #[test]
    fn every_reply_kind_maps_to_its_custom_form() {
        assert!(bodies(&Reply::Success).is_empty());
        assert_eq!(
            bodies(&Reply::Voice {
                media_id: "V".into()
            }),
            [json!({"touser":"o_1","msgtype":"voice","voice":{"media_id":"V"}})]
        );
        assert_eq!(
            bodies(&Reply::Video {
                media_id: "M".into(),
                title: Some("T".into()),
                description: None
            }),
            [json!({"touser":"o_1","msgtype":"video","video":{"media_id":"M","title":"T"}})]
        );
        let news = Reply::News {
            articles: vec![
                crate::domain::Article {
                    title: "A".into(),
                    description: "D".into(),
                    pic_url: "P".into(),
                    url: "U".into(),
                },
                crate::domain::Article::default(),
            ],
        };
        assert_eq!(
            bodies(&news),
            [json!({"touser":"o_1","msgtype":"news","news":{"articles":[
                {"title":"A","description":"D","url":"U","picurl":"P"}]}})]
        );
        assert!(
            custom_messages("o_1", &Reply::TransferCustomerService { kf_account: None }).is_err()
        );
    }

    #[test]
    fn long_text_becomes_several_messages_in_order() {
        let text = "第一段的内容。".repeat(200);
        let parts = bodies(&Reply::Text {
            content: text.clone(),
        });
        assert!(parts.len() > 1);
        let joined: String = parts
            .iter()
            .map(|p| p["text"]["content"].as_str().unwrap())
            .collect();
        assert_eq!(joined, text);
    }
}
