//! Sending late answers through any of the WeChat family's send APIs
//! (customer-service, WeCom app messages, 微信客服): the reply as the
//! ordered message bodies these APIs share, and bounded retries.

use std::time::Duration;

use rand::Rng;

use super::wechat_api::{
    Article, CallError, CustomBody, ErrCode, MediaContent, MusicContent, NewsContent, TextContent,
    VideoContent,
};
use crate::conversation::{LateError, LateFailure};
use crate::domain::split::{split_text, MAX_TEXT_BYTES};
use crate::domain::Reply;
use crate::metrics::Metrics;

/// How hard to try to send one customer-service message. Token refreshes
/// (40001/42001) are the [`WechatApi`](super::wechat_api::WechatApi)'s business and happen underneath.
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

/// Sends the parts of one late answer (`reply`) in order, each under
/// `policy`, and counts the delivery (or the failure that stopped it).
/// `what` names a part in the error. Returns how many were sent; on a
/// refusal, the error says which kind and carries what was not sent.
pub async fn send_in_order<'a, M, F, Fut>(
    reply: &Reply,
    parts: &'a [M],
    policy: &SendPolicy,
    metrics: &Metrics,
    what: &str,
    mut send_one: F,
) -> Result<usize, LateError>
where
    F: FnMut(&'a M) -> Fut,
    Fut: std::future::Future<Output = Result<(), CallError>>,
{
    let count = parts.len();
    for (i, part) in parts.iter().enumerate() {
        if let Err((kind, e)) = send_with_retry(policy, || send_one(part)).await {
            metrics.agent_failure(kind);
            return Err(LateError {
                kind: match kind {
                    "send_48001" => LateFailure::NoPermission,
                    "send_45015" => LateFailure::OutOfWindow,
                    "send_45047" => LateFailure::QuotaSpent,
                    _ => LateFailure::Other,
                },
                rest: unsent(reply, i),
                message: format!("{what} {} of {count} not sent ({kind}): {e}", i + 1),
            });
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
            (_, Some(ErrCode::ApiUnauthorized)) => return Err(("send_48001", error)),
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

/// What of `reply` was not sent when part `sent` (0-based) was refused:
/// the text from that part on, or the whole of a one-part reply.
pub fn unsent(reply: &Reply, sent: usize) -> Option<Reply> {
    match reply {
        Reply::Text { content } => {
            let parts = split_text(content, MAX_TEXT_BYTES);
            let rest = parts.get(sent..).unwrap_or_default().join("\n");
            (!rest.trim().is_empty()).then_some(Reply::Text { content: rest })
        }
        Reply::Success => None,
        other => (sent == 0).then(|| other.clone()),
    }
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
