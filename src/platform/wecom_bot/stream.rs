//! A 智能机器人's streams: the first answer to a message names a stream,
//! and WeCom pulls it ("流式消息刷新") until it says `finish`. Each
//! stream's state — the text so far, finished or not — lives in the store
//! under the account's namespace, keyed by the stream id, so that any node
//! answers a refresh. The turn that fills it runs the account's responder
//! once per `msgid` (a retried `msgid` gets the same stream); a streamed
//! upstream's parts are appended as they arrive. An answer finished after
//! WeCom stopped pulling goes through the message's `response_url`.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::MAX_STREAM_BYTES;
use crate::clock::Clock;
use crate::conversation::{join, Responder, Response};
use crate::domain::split::split_text;
use crate::domain::{Message, Reply};
use crate::platform::feishu::markdown_of;
use crate::store::{Namespace, Store};

/// How long WeCom keeps pulling a stream (6 minutes from the message).
pub const STREAM_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How long a stream's state is kept: past the window and past the hour
/// `response_url` stays usable.
const STATE_TTL: Duration = Duration::from_secs(2 * 3600);

/// One stream as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct StreamState {
    /// The text so far (markdown).
    pub content: String,
    /// The answer is complete.
    pub finish: bool,
    /// When the stream was opened (Unix seconds).
    #[serde(default)]
    pub opened: i64,
}

/// What to answer a callback with: the plaintext JSON to seal, or nothing.
pub type StreamAnswer = Option<String>;

/// The stream reply of `state` under `id`: WeCom's plaintext answer.
fn stream_reply(id: &str, state: &StreamState) -> String {
    let content = split_text(&state.content, MAX_STREAM_BYTES)
        .into_iter()
        .next()
        .unwrap_or("");
    json!({
        "msgtype": "stream",
        "stream": {"id": id, "finish": state.finish, "content": content},
    })
    .to_string()
}

/// The text of a reply as the bot shows it (markdown); empty for what has
/// no form here (nothing to say, WeChat media ids).
fn content_of(reply: &Reply) -> String {
    markdown_of(reply).unwrap_or_default()
}

/// The streams of one account, and the turns that fill them.
pub struct Streams {
    store: Arc<dyn Store>,
    namespace: Namespace,
    responder: Arc<dyn Responder>,
    dedup_window: Duration,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    allowed_prefix: String,
}

impl Streams {
    /// The streams of an account whose answers come from `responder`;
    /// `response_url` must live under `api_base_url`.
    pub fn new(
        store: Arc<dyn Store>,
        namespace: Namespace,
        responder: Arc<dyn Responder>,
        dedup_window: Duration,
        api_base_url: &str,
        timeout: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("wxgate/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Streams {
            store,
            namespace,
            responder,
            dedup_window: dedup_window.max(STREAM_WINDOW),
            clock,
            http,
            allowed_prefix: format!("{}/", api_base_url.trim_end_matches('/')),
        }
    }

    fn state_key(&self, id: &str) -> String {
        self.namespace.key(&format!("wecom_bot:stream:{id}"))
    }

    /// The stream id of a message: derived from its `msgid`, so that a
    /// retry on any node names the same stream.
    fn stream_id(&self, msgid: &str) -> String {
        let digest = Sha256::digest(format!("{}\n{msgid}", self.namespace.key("")).as_bytes());
        format!("wxgate-{}", hex::encode(&digest[..12]))
    }

    /// The stream's state; `Err` when the store cannot be read.
    async fn load(&self, id: &str) -> Result<Option<StreamState>, ()> {
        match self.store.get(&self.state_key(id)).await {
            Ok(bytes) => Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok())),
            Err(e) => {
                tracing::warn!(error = %e, "could not read the stream's state");
                Err(())
            }
        }
    }

    async fn save(&self, id: &str, state: &StreamState) {
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        if let Err(e) = self
            .store
            .set(&self.state_key(id), &bytes, Some(STATE_TTL))
            .await
        {
            tracing::warn!(error = %e, "could not keep the stream's state");
        }
    }

    /// Answers a refresh: the content so far, `finish` once done. A stream
    /// the store does not know is answered finished and empty, so that
    /// WeCom stops pulling it; while the store cannot be read, unfinished
    /// and empty, so that WeCom asks again.
    pub async fn refresh(&self, id: &str) -> String {
        let state = match self.load(id).await {
            Ok(Some(state)) => state,
            Ok(None) => StreamState {
                finish: true,
                ..StreamState::default()
            },
            Err(()) => StreamState::default(),
        };
        stream_reply(id, &state)
    }

    /// Answers a user's message: a rule's answer finished at once, an
    /// upstream's as a new stream filled while WeCom pulls it. A retried
    /// `msgid` gets the same stream, its answer computed once.
    pub async fn start(self: &Arc<Self>, message: Arc<Message>) -> StreamAnswer {
        let msgid = message
            .fields
            .child_text("BotMsgId")
            .unwrap_or_default()
            .to_owned();
        let id = self.stream_id(&msgid);
        let claim_key = self.namespace.key(&format!("wecom_bot:msg:{msgid}"));
        let opened = self.clock.now_unix();
        let first = match self
            .store
            .set_nx(&claim_key, id.as_bytes(), self.dedup_window)
            .await
        {
            Ok(first) => first,
            Err(e) => {
                // Without the store nobody knows of a retry; answering twice
                // beats not answering.
                tracing::warn!(error = %e, "store unavailable for the msgid claim; answering");
                true
            }
        };
        if !first {
            tracing::info!("retried msgid answered with its stream");
            let state = self.load(&id).await.ok().flatten().unwrap_or(StreamState {
                opened,
                ..StreamState::default()
            });
            return Self::answer(&id, &state);
        }
        let (future, parts) = match self.responder.respond(&message) {
            Response::Ready(reply) => {
                let state = StreamState {
                    content: content_of(&reply),
                    finish: true,
                    opened,
                };
                self.save(&id, &state).await;
                return Self::answer(&id, &state);
            }
            Response::Pending(future) => (future, None),
            Response::Deferred(d) => (d.future, d.parts),
        };
        let state = StreamState {
            content: String::new(),
            finish: false,
            opened,
        };
        self.save(&id, &state).await;
        let streams = self.clone();
        let response_url = message
            .fields
            .child_text("ResponseUrl")
            .unwrap_or_default()
            .to_owned();
        let span = tracing::Span::current();
        let stream_id = id.clone();
        tokio::spawn(tracing::Instrument::instrument(
            async move {
                let mut done = Vec::new();
                let mut future = future;
                let last = match parts {
                    None => future.await,
                    Some(mut parts) => loop {
                        tokio::select! {
                            biased;
                            part = parts.recv() => match part {
                                Some(part) => {
                                    done.push(part);
                                    let so_far = content_of(&join(done.clone(), Reply::Success));
                                    streams.save(&stream_id, &StreamState {
                                        content: so_far, finish: false, opened,
                                    }).await;
                                }
                                None => break future.await,
                            },
                            last = &mut future => {
                                while let Ok(part) = parts.try_recv() {
                                    done.push(part);
                                }
                                break last;
                            }
                        }
                    },
                };
                let whole = content_of(&join(done, last));
                streams
                    .save(
                        &stream_id,
                        &StreamState {
                            content: whole.clone(),
                            finish: true,
                            opened,
                        },
                    )
                    .await;
                let late = streams.clock.now_unix().saturating_sub(opened)
                    >= STREAM_WINDOW.as_secs() as i64;
                if late && !whole.is_empty() {
                    streams.push_late(&response_url, &whole).await;
                }
            },
            span,
        ));
        Self::answer(&id, &state)
    }

    /// The first answer: nothing for a finished stream with nothing in it.
    fn answer(id: &str, state: &StreamState) -> StreamAnswer {
        if state.finish && state.content.is_empty() {
            return None;
        }
        Some(stream_reply(id, state))
    }

    /// Sends `content` as one markdown message through `response_url` (an
    /// answer finished after WeCom stopped pulling its stream).
    async fn push_late(&self, response_url: &str, content: &str) {
        if !response_url.starts_with(&self.allowed_prefix) {
            tracing::warn!("the message's response_url is not under the account's api_base_url; late answer dropped");
            return;
        }
        let content = split_text(content, MAX_STREAM_BYTES)
            .into_iter()
            .next()
            .unwrap_or("");
        let body = json!({"msgtype": "markdown", "markdown": {"content": content}});
        match self.http.post(response_url).json(&body).send().await {
            Ok(response) => {
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                let errcode = answer.get("errcode").and_then(Value::as_i64).unwrap_or(-1);
                if status.is_success() && errcode == 0 {
                    tracing::info!("late answer sent through the response_url");
                } else {
                    tracing::warn!(%status, errcode, "response_url refused the late answer");
                }
            }
            Err(e) => tracing::warn!(error = %e.without_url(), "response_url unreachable"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_replies_are_wecoms_json() {
        let state = StreamState {
            content: "**价格**".into(),
            finish: false,
            opened: 0,
        };
        let v: Value = serde_json::from_str(&stream_reply("s1", &state)).unwrap();
        assert_eq!(
            v,
            json!({"msgtype": "stream", "stream": {"id": "s1", "finish": false, "content": "**价格**"}})
        );
        let long = StreamState {
            content: "字".repeat(10_000),
            finish: true,
            opened: 0,
        };
        let v: Value = serde_json::from_str(&stream_reply("s", &long)).unwrap();
        assert!(v["stream"]["content"].as_str().unwrap().len() <= MAX_STREAM_BYTES);
        assert_eq!(
            Streams::answer(
                "s",
                &StreamState {
                    finish: true,
                    ..StreamState::default()
                }
            ),
            None
        );
    }
}
