//! Answers as DingTalk robot messages: the JSON of the callback's response
//! body and of a `sessionWebhook` send, and the late channel: the
//! message's `sessionWebhook` before it expires, else the robot send API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::api::{DingTalkApi, DingTalkCode, DingTalkError, RobotMessage};
use crate::clock::Clock;
use crate::conversation::{LateDelivery, LateError, LateFailure, LateFuture};
use crate::domain::split::split_text;
use crate::domain::{Message, Reply};
use crate::metrics::Metrics;

/// Longest markdown in one message: the send API's `msgParam` takes at
/// most 15 000 bytes (title and JSON escapes included), the session
/// webhook about 20 000.
pub const MAX_MARKDOWN_BYTES: usize = 12 * 1024;

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

/// How often a send the platform called transient (throttled, DingTalk
/// unavailable, the network) is tried, and the first pause (doubling).
const SEND_ATTEMPTS: u32 = 3;
const SEND_BACKOFF: Duration = Duration::from_secs(1);

/// Sends late answers through the message's `sessionWebhook` while it
/// lives (it must be under the account's API base URL), else through the
/// robot send API with an access token: `batchSend` to the sender of a
/// direct message, `groupMessages/send` to a group. An answer neither can
/// carry is kept for the user's next message.
pub struct RobotDelivery {
    http: reqwest::Client,
    allowed_prefix: String,
    clock: Arc<dyn Clock>,
    api: Option<DingTalkApi>,
    metrics: Arc<Metrics>,
}

/// Why the `sessionWebhook` did not carry an answer.
enum WebhookMiss {
    /// Absent, foreign, expired or refused before anything was sent: the
    /// send API may carry the whole answer.
    Unusable(String),
    /// Refused after `sent` messages went through.
    Partly { sent: usize, why: String },
}

impl RobotDelivery {
    /// Sends to webhooks under `api_base_url` (`https://oapi.dingtalk.com`),
    /// and through `api` when the webhook cannot.
    pub fn new(
        api_base_url: &str,
        timeout: Duration,
        clock: Arc<dyn Clock>,
        api: Option<DingTalkApi>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let http = crate::outbound::client(timeout).unwrap_or_default();
        RobotDelivery {
            http,
            allowed_prefix: format!("{}/", api_base_url.trim_end_matches('/')),
            clock,
            api,
            metrics,
        }
    }
}

/// Where the send API delivers an answer to `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// A direct chat: the sender's userId (`senderStaffId`).
    User(String),
    /// A group: its `openConversationId` (the callback's `conversationId`).
    Group(String),
}

fn target_of(message: &Message) -> Option<Target> {
    let field = |name| message.fields.child_text(name).unwrap_or_default();
    match field("ConversationType") {
        "2" => Some(field("ConversationId"))
            .filter(|c| !c.is_empty())
            .map(|c| Target::Group(c.to_owned())),
        _ => Some(field("SenderStaffId"))
            .filter(|u| !u.is_empty())
            .map(|u| Target::User(u.to_owned())),
    }
}

async fn send_by_webhook(
    http: &reqwest::Client,
    webhook: &str,
    bodies: &[Value],
) -> Result<(), WebhookMiss> {
    for (sent, body) in bodies.iter().enumerate() {
        let refused = |why: String| {
            if sent == 0 {
                WebhookMiss::Unusable(why)
            } else {
                WebhookMiss::Partly { sent, why }
            }
        };
        let response = match http.post(webhook).json(body).send().await {
            Ok(r) => r,
            Err(e) => return Err(refused(format!("sessionWebhook: {}", e.without_url()))),
        };
        let status = response.status();
        let answer: Value = response.json().await.unwrap_or(Value::Null);
        let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(-1);
        if !status.is_success() || errcode != 0 {
            return Err(refused(format!(
                "sessionWebhook refused the message: HTTP {status}, errcode {errcode}"
            )));
        }
    }
    Ok(())
}

/// The markdown messages of the send API for `bodies` (the webhook's JSON).
fn robot_messages(bodies: &[Value]) -> Vec<RobotMessage> {
    bodies
        .iter()
        .map(|b| {
            RobotMessage::markdown(
                b["markdown"]["title"].as_str().unwrap_or_default(),
                b["markdown"]["text"].as_str().unwrap_or_default(),
            )
        })
        .collect()
}

/// The text of `reply` from message `from` on, to keep; the whole reply
/// when it is not text and nothing was sent.
fn rest_of(reply: &Reply, bodies: &[Value], from: usize) -> Option<Reply> {
    match reply {
        Reply::Text { .. } => {
            let rest: Vec<&str> = bodies
                .get(from..)
                .unwrap_or_default()
                .iter()
                .filter_map(|b| b["markdown"]["text"].as_str())
                .collect();
            (!rest.is_empty()).then(|| Reply::Text {
                content: rest.join("\n"),
            })
        }
        other => (from == 0).then(|| other.clone()),
    }
}

/// One send through the API, transient refusals retried a bounded number
/// of times.
async fn send_by_api(
    api: &DingTalkApi,
    target: &Target,
    message: &RobotMessage,
) -> Result<(), DingTalkError> {
    let mut attempt = 1;
    loop {
        let result = match target {
            Target::User(user) => api.send_to_user(user, message).await.and_then(|answer| {
                if !answer.flow_controlled_staff_id_list.is_empty() {
                    Err(DingTalkError::Api {
                        endpoint: super::api::BATCH_SEND,
                        status: 200,
                        code: "flowControlledStaffIdList".into(),
                        message: "the user is flow-controlled".into(),
                    })
                } else if !answer.invalid_staff_id_list.is_empty() {
                    Err(DingTalkError::Api {
                        endpoint: super::api::BATCH_SEND,
                        status: 200,
                        code: "invalidStaffIdList".into(),
                        message: "the user is not a member of the organisation".into(),
                    })
                } else {
                    Ok(())
                }
            }),
            Target::Group(group) => api.send_to_group(group, message).await,
        };
        let transient = match &result {
            Ok(()) => return Ok(()),
            // Flow control is a transient refusal of its own.
            Err(DingTalkError::Api { code, .. }) if code == "flowControlledStaffIdList" => true,
            Err(e) => e.is_transient(),
        };
        if !transient || attempt >= SEND_ATTEMPTS {
            return result;
        }
        let pause = SEND_BACKOFF.saturating_mul(1 << (attempt - 1));
        if let Err(e) = &result {
            tracing::warn!(attempt, pause_ms = pause.as_millis() as u64, error = %e, "DingTalk robot send failed; retrying");
        }
        attempt += 1;
        tokio::time::sleep(pause).await;
    }
}

impl LateDelivery for RobotDelivery {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let http = self.http.clone();
        let api = self.api.clone();
        let metrics = self.metrics.clone();
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
        let target = target_of(&message);
        let is_event = message.msg_type == "event";
        Box::pin(async move {
            if is_event {
                metrics.agent_failure("dingtalk_event_answer_dropped");
                return Err(LateError::other(
                    "the answer to a DingTalk event has nowhere to go: dropped",
                ));
            }
            let bodies = messages(&reply);
            if bodies.is_empty() {
                return Ok(());
            }
            let miss = if webhook.is_empty() {
                WebhookMiss::Unusable("the message has no sessionWebhook".into())
            } else if !allowed {
                WebhookMiss::Unusable(
                    "the message's sessionWebhook is not under the account's api_base_url; not sending there".into(),
                )
            } else if expires_ms.is_none_or(|e| e <= now_ms) {
                WebhookMiss::Unusable("the message's sessionWebhook has expired".into())
            } else {
                match send_by_webhook(&http, &webhook, &bodies).await {
                    Ok(()) => {
                        tracing::info!("late answer sent through the DingTalk sessionWebhook");
                        metrics.agent_delivery("late");
                        return Ok(());
                    }
                    Err(miss) => miss,
                }
            };
            let (from, why) = match miss {
                WebhookMiss::Unusable(why) => (0, why),
                WebhookMiss::Partly { sent, why } => (sent, why),
            };
            let keep = |what: String| LateError {
                kind: LateFailure::OutOfWindow,
                rest: rest_of(&reply, &bodies, from),
                message: what,
            };
            let (Some(api), Some(target)) = (api, target) else {
                return Err(keep(format!(
                    "{why}, and the robot send API cannot reach this conversation (no app_id, or no senderStaffId / conversationId)"
                )));
            };
            tracing::info!(reason = %why, "sending the late answer through the DingTalk robot send API");
            let parts = robot_messages(&bodies);
            for (i, part) in parts.iter().enumerate().skip(from) {
                let Err(e) = send_by_api(&api, &target, part).await else {
                    continue;
                };
                let unsent = rest_of(&reply, &bodies, i);
                let what = format!(
                    "{why}; robot send API message {} of {}: {e}",
                    i + 1,
                    parts.len()
                );
                return Err(match e.code() {
                    Some(DingTalkCode::NoPermission) => {
                        metrics.agent_failure("dingtalk_no_permission");
                        tracing::warn!("the DingTalk app lacks 企业内机器人发送消息权限: answers the sessionWebhook cannot carry wait for the user's next message");
                        LateError {
                            kind: LateFailure::OutOfWindow,
                            rest: unsent,
                            message: what,
                        }
                    }
                    _ if e.is_transient()
                        || matches!(&e, DingTalkError::Api { code, .. } if code == "flowControlledStaffIdList") =>
                    {
                        metrics.agent_failure("dingtalk_send_busy");
                        LateError {
                            kind: LateFailure::QuotaSpent,
                            rest: unsent,
                            message: what,
                        }
                    }
                    // Refused for good (a bad parameter, an unknown user,
                    // the robot not in the group): keeping it would not
                    // help.
                    _ => {
                        metrics.agent_failure("dingtalk_send_refused");
                        LateError::other(what)
                    }
                });
            }
            metrics.agent_delivery("late");
            tracing::info!(
                messages = parts.len() - from,
                "late answer sent through the DingTalk robot send API"
            );
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
