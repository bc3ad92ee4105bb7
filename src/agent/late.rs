//! Late answers through the customer-service API (PROTOCOL §7): text split
//! into ordered messages WeChat accepts, media and news in their JSON forms,
//! bounded retries, and the typing indicator while the user waits.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;

use super::split::{split_text, MAX_TEXT_BYTES};
use crate::delivery::{LateDelivery, LateFuture};
use crate::message::{Message, Reply};
use crate::metrics::Metrics;
use crate::wechat_api::{
    Article, CallError, CustomBody, CustomMessage, ErrCode, MediaContent, MusicContent,
    NewsContent, TextContent, TypingCommand, VideoContent, WechatApi,
};

/// How hard to try to send one customer-service message. Token refreshes
/// (40001/42001) are the [`WechatApi`]'s business and happen underneath.
#[derive(Debug, Clone)]
pub struct SendPolicy {
    /// Attempts per message, the first included.
    pub attempts: u32,
    /// First pause after -1 (busy) or 45009 (quota); doubles, with jitter.
    pub backoff: Duration,
    /// Longest single pause; a longer quota cooldown gives up instead.
    pub max_wait: Duration,
}

impl Default for SendPolicy {
    fn default() -> Self {
        SendPolicy {
            attempts: 3,
            backoff: Duration::from_secs(1),
            max_wait: Duration::from_secs(90),
        }
    }
}

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
            let sent = send_in_order(&parts, &policy, &metrics, "customer-service message", |m| {
                api.send_custom(m)
            })
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

/// Sends the parts of one late answer in order, each under `policy`, and
/// counts the delivery (or the failure that stopped it). `what` names a
/// part in the error. Returns how many were sent.
pub async fn send_in_order<'a, M, F, Fut>(
    parts: &'a [M],
    policy: &SendPolicy,
    metrics: &Metrics,
    what: &str,
    mut send_one: F,
) -> Result<usize, String>
where
    F: FnMut(&'a M) -> Fut,
    Fut: std::future::Future<Output = Result<(), CallError>>,
{
    let count = parts.len();
    for (i, part) in parts.iter().enumerate() {
        if let Err((kind, e)) = send_with_retry(policy, || send_one(part)).await {
            metrics.agent_failure(kind);
            return Err(format!(
                "{what} {} of {count} not sent ({kind}): {e}",
                i + 1
            ));
        }
    }
    if count > 0 {
        metrics.agent_delivery("late");
    }
    Ok(count)
}

/// Runs one send attempt after another under `policy`, for any WeChat
/// send API (custom send, WeCom app messages, Customer Service): busy (-1)
/// and quota (45009) are retried a bounded number of times; 45015 (outside
/// the 48 h window) and 45047 (reply quota spent) are final, as retrying
/// cannot help.
pub async fn send_with_retry<T, F, Fut>(
    policy: &SendPolicy,
    mut attempt_once: F,
) -> Result<T, (&'static str, CallError)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, CallError>>,
{
    let mut attempt = 1u32;
    loop {
        let error = match attempt_once().await {
            Ok(value) => return Ok(value),
            Err(e) => e,
        };
        let code = match &error {
            CallError::Wechat(w) => w.code(),
            _ => None,
        };
        let pause = match (&error, code) {
            (_, Some(ErrCode::OutOfWindow)) => return Err(("send_45015", error)),
            (_, Some(ErrCode::ResponseCountLimit)) => return Err(("send_45047", error)),
            (_, Some(ErrCode::SystemBusy | ErrCode::QuotaExceeded)) => {
                let base = policy.backoff.saturating_mul(1 << (attempt - 1).min(8));
                base.mul_f64(rand::thread_rng().gen_range(0.5..=1.0))
            }
            (CallError::CoolingDown { remaining, .. }, _) => *remaining,
            _ => return Err(("send_error", error)),
        };
        if attempt >= policy.attempts || pause > policy.max_wait {
            return Err(("send_error", error));
        }
        tracing::warn!(attempt, pause_ms = pause.as_millis() as u64, error = %error, "customer-service send failed; retrying");
        attempt += 1;
        tokio::time::sleep(pause).await;
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

/// The message bodies that carry `reply`, in order: text split at line and
/// sentence ends, news cut to `max_articles`; music only where `music` is
/// supported. Shared by every send API, whose bodies have the same JSON forms.
pub fn message_bodies(
    reply: &Reply,
    max_articles: usize,
    music: bool,
) -> Result<Vec<CustomBody>, String> {
    let one = |body: CustomBody| Ok(vec![body]);
    match reply {
        Reply::Success => Ok(Vec::new()),
        Reply::Text { content } => Ok(split_text(content, MAX_TEXT_BYTES)
            .into_iter()
            .map(|part| CustomBody::Text {
                text: TextContent {
                    content: part.to_owned(),
                },
            })
            .collect()),
        Reply::Image { media_id } => one(CustomBody::Image {
            image: MediaContent {
                media_id: media_id.clone(),
            },
        }),
        Reply::Voice { media_id } => one(CustomBody::Voice {
            voice: MediaContent {
                media_id: media_id.clone(),
            },
        }),
        Reply::Video {
            media_id,
            title,
            description,
        } => one(CustomBody::Video {
            video: VideoContent {
                media_id: media_id.clone(),
                thumb_media_id: None,
                title: title.clone(),
                description: description.clone(),
            },
        }),
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } if music => one(CustomBody::Music {
            music: MusicContent {
                title: title.clone(),
                description: description.clone(),
                musicurl: music_url.clone(),
                hqmusicurl: hq_music_url.clone(),
                thumb_media_id: thumb_media_id.clone(),
            },
        }),
        // WeChat takes one article per customer-service news message.
        Reply::News { articles } if !articles.is_empty() => one(CustomBody::News {
            news: NewsContent {
                articles: articles
                    .iter()
                    .take(max_articles.max(1))
                    .map(|a| Article {
                        title: a.title.clone(),
                        description: a.description.clone(),
                        url: a.url.clone(),
                        picurl: a.pic_url.clone(),
                    })
                    .collect(),
            },
        }),
        Reply::News { .. } => Ok(Vec::new()),
        other => Err(format!(
            "a {} reply cannot be sent through this send API",
            other.msg_type().unwrap_or("success")
        )),
    }
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
                crate::message::Article {
                    title: "A".into(),
                    description: "D".into(),
                    pic_url: "P".into(),
                    url: "U".into(),
                },
                crate::message::Article::default(),
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
