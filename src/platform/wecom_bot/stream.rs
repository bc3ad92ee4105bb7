//! A 智能机器人's streams: the first answer to a message names a stream,
//! and WeCom pulls it ("流式消息刷新") until it says `finish`. Each
//! stream's state — the text so far, finished or not — lives in the store
//! under the account's namespace, keyed by the stream id (derived from the
//! message's `msgid`, so that a retry on any node names the same stream),
//! so that any node answers a refresh.
//!
//! The answer itself is a conversation turn like any other platform's: the
//! delivery engine runs it (ordered per conversation, written down until
//! done, drained on shutdown, run again by another node after a crash).
//! What the engine renders into the callback's answer is [`BotRender`]'s
//! stream JSON; the late channel is [`StreamDelivery`], which appends each
//! part to the stream as it comes, marks it finished when the turn is
//! over, and sends an answer finished after WeCom stopped pulling through
//! the message's `response_url`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::MAX_STREAM_BYTES;
use crate::clock::Clock;
use crate::conversation::{
    LateDelivery, LateError, LateFailure, LateFuture, Outcome, Recorded, Render,
};
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
    /// `content` is the interim text, shown until the answer's first part
    /// replaces it.
    #[serde(default)]
    pub placeholder: bool,
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

/// The first answer: nothing for a finished stream with nothing in it.
fn answer_of(id: &str, state: &StreamState) -> StreamAnswer {
    if state.finish && state.content.is_empty() {
        return None;
    }
    Some(stream_reply(id, state))
}

/// Why a stream's state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("the stream's state is unavailable: {0}")]
pub struct StreamStoreError(String);

/// The streams of one account: their state in the store.
pub struct Streams {
    store: Arc<dyn Store>,
    namespace: Namespace,
    clock: Arc<dyn Clock>,
}

impl Streams {
    /// The streams of an account, kept in `store` under `namespace`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace, clock: Arc<dyn Clock>) -> Self {
        Streams {
            store,
            namespace,
            clock,
        }
    }

    fn state_key(&self, id: &str) -> String {
        self.namespace.key(&format!("wecom_bot:stream:{id}"))
    }

    /// The stream id of a message: derived from its `msgid`, so that a
    /// retry on any node names the same stream.
    pub fn stream_id(&self, message: &Message) -> String {
        let msgid = message.fields.child_text("BotMsgId").unwrap_or_default();
        let digest = Sha256::digest(format!("{}\n{msgid}", self.namespace.key("")).as_bytes());
        format!("wxgate-{}", hex::encode(&digest[..12]))
    }

    /// The stream's state.
    async fn load(&self, id: &str) -> Result<Option<StreamState>, StreamStoreError> {
        match self.store.get(&self.state_key(id)).await {
            Ok(bytes) => Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok())),
            Err(e) => Err(StreamStoreError(e.to_string())),
        }
    }

    async fn save(&self, id: &str, state: &StreamState) -> Result<(), StreamStoreError> {
        let bytes = serde_json::to_vec(state).unwrap_or_default();
        self.store
            .set(&self.state_key(id), &bytes, Some(STATE_TTL))
            .await
            .map_err(|e| StreamStoreError(e.to_string()))
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
            Err(e) => {
                tracing::warn!(error = %e, "stream refresh answered empty");
                StreamState::default()
            }
        };
        stream_reply(id, &state)
    }

    /// How the engine renders its answers to `message`: into its stream.
    pub fn render_for(&self, message: &Message) -> Arc<BotRender> {
        Arc::new(BotRender {
            id: self.stream_id(message),
            rendered: Mutex::new(None),
        })
    }

    /// What the callback answers once the engine has decided: a finished
    /// answer is kept as the stream's state (for a refresh WeCom may still
    /// send), an open stream is written down unless its turn already has,
    /// and a retry gets the stream as it is now.
    pub async fn settle(
        &self,
        render: &BotRender,
        outcome: Outcome,
        answer: Recorded,
    ) -> StreamAnswer {
        let id = render.id.as_str();
        let rendered = render
            .rendered
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let opened = self.clock.now_unix();
        match (outcome, rendered) {
            (Outcome::Duplicate, _) => match self.load(id).await {
                Ok(Some(state)) => answer_of(id, &state),
                _ => answer.as_deref().map(str::to_owned),
            },
            (Outcome::Merged | Outcome::Overload, _) | (_, None) => {
                answer.as_deref().map(str::to_owned)
            }
            (_, Some(mut state)) => {
                state.opened = opened;
                let key = self.state_key(id);
                let bytes = serde_json::to_vec(&state).unwrap_or_default();
                // An open stream is created only when its turn has not
                // written to it yet; a finished one is the whole answer.
                let written = if state.finish {
                    self.store.set(&key, &bytes, Some(STATE_TTL)).await
                } else {
                    self.store.set_nx(&key, &bytes, STATE_TTL).await.map(|_| ())
                };
                if let Err(e) = written {
                    tracing::warn!(error = %e, "could not keep the stream's state");
                }
                answer.as_deref().map(str::to_owned)
            }
        }
    }
}

/// Renders the engine's answers to one message as its stream: the whole
/// answer finished, an interim one (the answer follows) open.
pub struct BotRender {
    id: String,
    rendered: Mutex<Option<StreamState>>,
}

impl BotRender {
    fn rendered(&self, state: StreamState) -> Recorded {
        let answer = answer_of(&self.id, &state);
        *self.rendered.lock().unwrap_or_else(|p| p.into_inner()) = Some(state);
        answer.map(Into::into)
    }
}

impl Render for BotRender {
    fn render(&self, reply: &Reply) -> Recorded {
        self.rendered(StreamState {
            content: content_of(reply),
            finish: true,
            ..StreamState::default()
        })
    }

    fn interim(&self, reply: &Reply) -> Recorded {
        self.rendered(StreamState {
            content: content_of(reply),
            finish: false,
            placeholder: true,
            ..StreamState::default()
        })
    }
}

/// Renders the answer to an `enter_chat` event: the welcome text WeCom
/// shows when a user opens the bot's direct chat for the first time that
/// day (the only event it takes a text answer to, and only in the
/// callback's response). Nothing for what has no text, and nothing while
/// an answer is still being computed: a welcome has no late channel.
pub struct WelcomeRender;

impl Render for WelcomeRender {
    fn render(&self, reply: &Reply) -> Recorded {
        let content = content_of(reply);
        if content.is_empty() {
            return None;
        }
        let content = split_text(&content, MAX_STREAM_BYTES)
            .into_iter()
            .next()
            .unwrap_or("");
        Some(
            json!({"msgtype": "text", "text": {"content": content}})
                .to_string()
                .into(),
        )
    }

    fn interim(&self, _reply: &Reply) -> Recorded {
        None
    }
}

/// A 智能机器人's late channel: the message's stream while WeCom pulls it,
/// then its `response_url` (one markdown message within the hour).
#[derive(Clone)]
pub struct StreamDelivery {
    streams: Arc<Streams>,
    http: reqwest::Client,
    allowed_prefix: String,
}

impl StreamDelivery {
    /// Fills `streams`; `response_url` must live under `api_base_url`.
    pub fn new(streams: Arc<Streams>, api_base_url: &str, timeout: Duration) -> Self {
        let http = crate::outbound::client(timeout).unwrap_or_default();
        StreamDelivery {
            streams,
            http,
            allowed_prefix: format!("{}/", api_base_url.trim_end_matches('/')),
        }
    }

    /// The stream's state, or a new one opened now.
    async fn state(&self, id: &str) -> Result<StreamState, StreamStoreError> {
        Ok(self.streams.load(id).await?.unwrap_or(StreamState {
            opened: self.streams.clock.now_unix(),
            ..StreamState::default()
        }))
    }

    async fn append(&self, message: &Message, text: &str) -> Result<(), StreamStoreError> {
        let id = self.streams.stream_id(message);
        let mut state = self.state(&id).await?;
        if state.placeholder || state.content.is_empty() {
            state.content = text.to_owned();
        } else {
            state.content.push_str("\n\n");
            state.content.push_str(text);
        }
        state.placeholder = false;
        self.streams.save(&id, &state).await
    }

    async fn finish(&self, message: &Message) -> Result<(), LateError> {
        let id = self.streams.stream_id(message);
        let mut state = self.state(&id).await.map_err(|e| retry_later(e, None))?;
        if state.placeholder {
            state.content.clear();
            state.placeholder = false;
        }
        state.finish = true;
        if let Err(e) = self.streams.save(&id, &state).await {
            tracing::warn!(error = %e, "could not mark the stream finished");
        }
        let late = self.streams.clock.now_unix().saturating_sub(state.opened)
            >= STREAM_WINDOW.as_secs() as i64;
        if !late || state.content.is_empty() {
            return Ok(());
        }
        let response_url = message.fields.child_text("ResponseUrl").unwrap_or_default();
        self.push_late(response_url, &state.content).await
    }

    /// Sends `content` as one markdown message through `response_url` (an
    /// answer finished after WeCom stopped pulling its stream).
    async fn push_late(&self, response_url: &str, content: &str) -> Result<(), LateError> {
        if !response_url.starts_with(&self.allowed_prefix) {
            return Err(LateError::other(
                "the message's response_url is not under the account's api_base_url; late answer dropped",
            ));
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
                    Ok(())
                } else {
                    Err(LateError::other(format!(
                        "response_url refused the late answer: HTTP {status}, errcode {errcode}"
                    )))
                }
            }
            Err(e) => Err(LateError::other(format!(
                "response_url unreachable: {}",
                e.without_url()
            ))),
        }
    }
}

/// A store failure: the same write may go through later.
fn retry_later(e: StreamStoreError, rest: Option<Reply>) -> LateError {
    LateError {
        kind: LateFailure::RetryLater,
        rest,
        message: e.to_string(),
    }
}

impl LateDelivery for StreamDelivery {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let text = content_of(&reply);
        let this = self.clone();
        Box::pin(async move {
            if text.is_empty() {
                return Ok(());
            }
            if !message.is_user_message() {
                return Err(LateError::other(
                    "an answer to a 智能机器人 event came after its callback was answered: a welcome has no late channel",
                ));
            }
            this.append(&message, &text)
                .await
                .map_err(|e| retry_later(e, Some(reply)))
        })
    }

    fn restarted(&self, message: Arc<Message>) -> LateFuture {
        let streams = self.streams.clone();
        Box::pin(async move {
            let id = streams.stream_id(&message);
            let state = streams.load(&id).await.map_err(|e| retry_later(e, None))?;
            if let Some(state) = state {
                let fresh = StreamState {
                    opened: state.opened,
                    ..StreamState::default()
                };
                streams
                    .save(&id, &fresh)
                    .await
                    .map_err(|e| retry_later(e, None))?;
            }
            Ok(())
        })
    }

    fn finished(&self, message: Arc<Message>) -> LateFuture {
        let this = self.clone();
        Box::pin(async move {
            if !message.is_user_message() {
                return Ok(());
            }
            this.finish(&message).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::domain::Element;
    use crate::store::{KeyFormat, MemoryStore};

    fn message(msgid: &str) -> Arc<Message> {
        let field = |name: &str, text: &str| Element {
            name: name.into(),
            text: text.into(),
            children: Vec::new(),
        };
        Arc::new(Message {
            to_user: "bot".into(),
            from_user: "zhangsan".into(),
            create_time: 0,
            msg_type: "text".into(),
            msg_id: Some(1),
            kind: crate::domain::MessageKind::Unknown,
            fields: Element {
                name: "xml".into(),
                text: String::new(),
                children: vec![
                    field("BotMsgId", msgid),
                    field("ResponseUrl", "http://127.0.0.1:9/cgi-bin/aibot/response"),
                ],
            },
        })
    }

    fn delivery(clock: Arc<ManualClock>) -> (Arc<Streams>, StreamDelivery) {
        let streams = Arc::new(Streams::new(
            Arc::new(MemoryStore::new()),
            Namespace::new("bot", KeyFormat::Tagged),
            clock,
        ));
        let late = StreamDelivery::new(
            streams.clone(),
            "http://127.0.0.1:9",
            Duration::from_millis(200),
        );
        (streams, late)
    }

    fn text(content: &str) -> Reply {
        Reply::Text {
            content: content.into(),
        }
    }

    async fn state(streams: &Streams, message: &Message) -> StreamState {
        streams
            .load(&streams.stream_id(message))
            .await
            .unwrap()
            .unwrap()
    }

    #[tokio::test]
    async fn parts_replace_the_interim_text_then_grow_until_finished() {
        let clock = Arc::new(ManualClock::new(1_000));
        let (streams, late) = delivery(clock);
        let m = message("m1");
        let render = streams.render_for(&m);
        let opening = render.interim(&text("正在思考…")).unwrap();
        assert!(opening.contains("\"finish\":false"), "{opening}");
        let settled = streams
            .settle(
                &render,
                Outcome::Deferred(crate::conversation::Strategy::LateSend),
                Some(opening.clone()),
            )
            .await;
        assert_eq!(settled.as_deref(), Some(&*opening));
        assert!(state(&streams, &m).await.placeholder);
        late.deliver(m.clone(), text("一")).await.unwrap();
        late.deliver(m.clone(), text("二")).await.unwrap();
        let so_far = state(&streams, &m).await;
        assert_eq!(
            (so_far.content.as_str(), so_far.finish),
            ("一\n\n二", false)
        );
        late.finished(m.clone()).await.unwrap();
        assert!(state(&streams, &m).await.finish);
        // A retry now gets the stream as it is.
        let retry = streams
            .settle(&streams.render_for(&m), Outcome::Duplicate, Some(opening))
            .await
            .unwrap();
        let v: Value = serde_json::from_str(&retry).unwrap();
        assert_eq!(
            (&v["stream"]["content"], &v["stream"]["finish"]),
            (&json!("一\n\n二"), &json!(true))
        );
    }

    #[tokio::test]
    async fn a_restarted_turn_starts_the_stream_over_and_an_empty_answer_clears_the_interim() {
        let clock = Arc::new(ManualClock::new(1_000));
        let (streams, late) = delivery(clock);
        let m = message("m2");
        late.deliver(m.clone(), text("半句")).await.unwrap();
        late.restarted(m.clone()).await.unwrap();
        assert_eq!(state(&streams, &m).await.content, "");
        late.deliver(m.clone(), text("整句。")).await.unwrap();
        late.finished(m.clone()).await.unwrap();
        assert_eq!(state(&streams, &m).await.content, "整句。");

        let other = message("m3");
        let render = streams.render_for(&other);
        let opening = render.interim(&text("正在思考…"));
        streams
            .settle(
                &render,
                Outcome::Deferred(crate::conversation::Strategy::LateSend),
                opening,
            )
            .await;
        late.finished(other.clone()).await.unwrap();
        let done = state(&streams, &other).await;
        assert_eq!((done.content.as_str(), done.finish), ("", true));
    }

    #[tokio::test]
    async fn an_answer_finished_after_the_window_must_be_pushed_and_a_failed_push_is_an_error() {
        let clock = Arc::new(ManualClock::new(1_000));
        let (streams, late) = delivery(clock.clone());
        let m = message("m4");
        late.deliver(m.clone(), text("很久以后")).await.unwrap();
        clock.set(1_000 + STREAM_WINDOW.as_secs() as i64);
        // Nothing listens on the response_url's port: the push fails, and
        // says so (the engine counts it as a dropped late answer).
        let e = late.finished(m.clone()).await.unwrap_err();
        assert!(e.message.contains("response_url"), "{e}");
        assert!(state(&streams, &m).await.finish);
    }

    #[test]
    fn stream_replies_are_wecoms_json() {
        let state = StreamState {
            content: "**价格**".into(),
            finish: false,
            ..StreamState::default()
        };
        let v: Value = serde_json::from_str(&stream_reply("s1", &state)).unwrap();
        assert_eq!(
            v,
            json!({"msgtype": "stream", "stream": {"id": "s1", "finish": false, "content": "**价格**"}})
        );
        let long = StreamState {
            content: "字".repeat(10_000),
            finish: true,
            ..StreamState::default()
        };
        let v: Value = serde_json::from_str(&stream_reply("s", &long)).unwrap();
        assert!(v["stream"]["content"].as_str().unwrap().len() <= MAX_STREAM_BYTES);
        assert_eq!(
            answer_of(
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
