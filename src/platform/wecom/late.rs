//! Late answers of a WeCom self-built app, through `/cgi-bin/message/send`.

use std::sync::Arc;

use crate::conversation::{LateDelivery, LateFuture};
use crate::domain::{Message, Reply, MAX_ARTICLES};
use crate::metrics::Metrics;
use crate::platform::send::{message_bodies, send_in_order, SendPolicy};
use crate::platform::wechat_api::{AppMessage, WechatApi};

/// Sends late replies as app messages from the account's AgentID.
pub struct AppDelivery {
    api: WechatApi,
    agent_id: i64,
    metrics: Arc<Metrics>,
    policy: SendPolicy,
}

impl AppDelivery {
    /// Sends through `api` as app `agent_id`.
    pub fn new(api: WechatApi, agent_id: i64, metrics: Arc<Metrics>) -> Self {
        AppDelivery {
            api,
            agent_id,
            metrics,
            policy: SendPolicy::default(),
        }
    }

    /// Replaces the retry policy.
    pub fn with_policy(mut self, policy: SendPolicy) -> Self {
        self.policy = policy;
        self
    }
}

/// The app messages that carry `reply` to `to`, in order. WeCom app news
/// take up to 8 articles; music does not exist there.
pub fn app_messages(to: &str, agent_id: i64, reply: &Reply) -> Result<Vec<AppMessage>, String> {
    Ok(message_bodies(reply, MAX_ARTICLES, false)?
        .into_iter()
        .map(|body| AppMessage {
            touser: to.to_owned(),
            agentid: agent_id,
            body,
        })
        .collect())
}

impl LateDelivery for AppDelivery {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let api = self.api.clone();
        let metrics = self.metrics.clone();
        let policy = self.policy.clone();
        let agent_id = self.agent_id;
        Box::pin(async move {
            let parts = app_messages(&message.from_user, agent_id, &reply)?;
            let sent = send_in_order(
                &reply,
                &parts,
                &policy,
                &metrics,
                "WeCom app message",
                |m| api.send_app_message(m),
            )
            .await?;
            if sent > 0 {
                tracing::info!(messages = sent, "late answer sent as a WeCom app message");
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn replies_become_app_messages() {
        let text = app_messages(
            "zhangsan",
            1000002,
            &Reply::Text {
                content: "hi".into(),
            },
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&text[0]).unwrap(),
            json!({"touser":"zhangsan","agentid":1000002,"msgtype":"text","text":{"content":"hi"}})
        );
        let articles = vec![crate::domain::Article::default(); 3];
        let news = app_messages("u", 7, &Reply::News { articles }).unwrap();
        assert_eq!(
            serde_json::to_value(&news[0]).unwrap()["news"]["articles"]
                .as_array()
                .map(Vec::len),
            Some(3)
        );
        assert!(app_messages(
            "u",
            7,
            &Reply::Music {
                title: None,
                description: None,
                music_url: None,
                hq_music_url: None,
                thumb_media_id: "t".into()
            }
        )
        .is_err());
    }
}
