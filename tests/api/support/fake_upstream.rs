//! Local stand-ins for agent upstreams, on a free loopback port:
//!
//! - `POST /hook`: a webhook that answers as its [`Behaviour`] says (fast,
//!   slow, failing, malformed, 204) and records each request's JSON body,
//!   raw bytes and `X-Wxgate-Signature` header;
//! - `POST /v1/chat/completions`: an OpenAI-compatible endpoint that records
//!   the messages it received and the `Authorization` header, and answers
//!   `answer <n>: <last user text>` (optionally after a delay), or a fixed
//!   answer set with [`FakeUpstream::set_chat_answer`]; a request with
//!   `"stream": true` is answered as server-sent events by the
//!   [`StreamPlan`] set with [`FakeUpstream::set_stream`], held at its hold
//!   points until the test calls [`FakeUpstream::release_stream`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};

/// How the webhook answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// This JSON at once.
    Reply(Value),
    /// This JSON after a pause.
    Slow(Duration, Value),
    /// This HTTP status, no JSON.
    Fail(u16),
    /// 200 with a body that is not JSON.
    Malformed,
    /// 204 No Content.
    NoContent,
}

/// A streamed answer: its deltas in order, where it waits for the test,
/// and how it ends.
#[derive(Debug, Clone)]
pub struct StreamPlan {
    pub deltas: Vec<String>,
    /// Before sending the delta at each of these indexes, the stream waits
    /// for one [`FakeUpstream::release_stream`].
    pub hold_before: Vec<usize>,
    /// `data: [DONE]` at the end; false ends the body without it, as a
    /// stream that breaks off.
    pub done: bool,
}

/// One recorded webhook request.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub body: Value,
    pub raw: Vec<u8>,
    pub signature: Option<String>,
}

/// One recorded chat-completions request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub body: Value,
    pub authorization: Option<String>,
}

impl ChatRequest {
    /// The conversation sent, one `role:content` line per message.
    pub fn history(&self) -> Vec<String> {
        self.body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                format!(
                    "{}:{}",
                    m["role"].as_str().unwrap(),
                    m["content"].as_str().unwrap()
                )
            })
            .collect()
    }
}

struct Inner {
    behaviour: Behaviour,
    hooks: Vec<HookRequest>,
    chats: Vec<ChatRequest>,
    chat_delay: Duration,
    /// Questions starting with this take this long instead.
    slow_prefix: Option<(String, Duration)>,
    /// Answered instead of `answer <n>: …` when set.
    chat_answer: Option<String>,
    stream: Option<StreamPlan>,
    /// Deltas sent by streams so far.
    streamed: usize,
}

pub struct FakeUpstream {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    gate: Arc<tokio::sync::Semaphore>,
    server: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    pub async fn start(behaviour: Behaviour) -> FakeUpstream {
        let state = Arc::new(Mutex::new(Inner {
            behaviour,
            hooks: Vec::new(),
            chats: Vec::new(),
            chat_delay: Duration::ZERO,
            slow_prefix: None,
            chat_answer: None,
            stream: None,
            streamed: 0,
        }));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let router = Router::new()
            .route("/hook", post(hook))
            .route("/v1/chat/completions", post(chat))
            .with_state((state.clone(), gate.clone()));
        let (addr, server) = super::serve_local(router).await;
        FakeUpstream {
            addr,
            state,
            gate,
            server,
        }
    }

    /// Streamed requests are answered by `plan` from now on.
    pub fn set_stream(&self, plan: StreamPlan) {
        self.state.lock().unwrap().stream = Some(plan);
    }

    /// Lets a held stream go on to its next hold point.
    pub fn release_stream(&self) {
        self.gate.add_permits(1);
    }

    /// How many deltas the streams have sent so far.
    pub fn streamed_deltas(&self) -> usize {
        self.state.lock().unwrap().streamed
    }

    /// The webhook URL.
    pub fn hook_url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    /// The OpenAI-style base URL (`…/v1`).
    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set_behaviour(&self, behaviour: Behaviour) {
        self.state.lock().unwrap().behaviour = behaviour;
    }

    pub fn set_chat_delay(&self, delay: Duration) {
        self.state.lock().unwrap().chat_delay = delay;
    }

    /// Questions starting with `prefix` are answered after `delay`.
    pub fn set_slow_prefix(&self, prefix: &str, delay: Duration) {
        self.state.lock().unwrap().slow_prefix = Some((prefix.to_owned(), delay));
    }

    /// Every chat completion answers `content` from now on (markdown, say).
    pub fn set_chat_answer(&self, content: &str) {
        self.state.lock().unwrap().chat_answer = Some(content.to_owned());
    }

    pub fn hook_requests(&self) -> Vec<HookRequest> {
        self.state.lock().unwrap().hooks.clone()
    }

    pub fn chat_requests(&self) -> Vec<ChatRequest> {
        self.state.lock().unwrap().chats.clone()
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.server.abort();
    }
}

type Shared = (Arc<Mutex<Inner>>, Arc<tokio::sync::Semaphore>);

async fn hook(State((state, _)): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let behaviour = {
        let mut inner = state.lock().unwrap();
        inner.hooks.push(HookRequest {
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            raw: body.to_vec(),
            signature: headers
                .get("x-wxgate-signature")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        inner.behaviour.clone()
    };
    match behaviour {
        Behaviour::Reply(v) => axum::Json(v).into_response(),
        Behaviour::Slow(pause, v) => {
            tokio::time::sleep(pause).await;
            axum::Json(v).into_response()
        }
        Behaviour::Fail(status) => StatusCode::from_u16(status).unwrap().into_response(),
        Behaviour::Malformed => "<html>oops</html>".into_response(),
        Behaviour::NoContent => StatusCode::NO_CONTENT.into_response(),
    }
}

async fn chat(
    State((state, gate)): State<Shared>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let (n, delay, fixed, plan) = {
        let mut inner = state.lock().unwrap();
        inner.chats.push(ChatRequest {
            body: body.clone(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        });
        let last = body["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_owned();
        let delay = match &inner.slow_prefix {
            Some((prefix, slow)) if last.starts_with(prefix.as_str()) => *slow,
            _ => inner.chat_delay,
        };
        let plan = inner.stream.clone().filter(|_| body["stream"] == true);
        (inner.chats.len(), delay, inner.chat_answer.clone(), plan)
    };
    if let Some(plan) = plan {
        return stream(plan, state, gate);
    }
    tokio::time::sleep(delay).await;
    let last = body["messages"]
        .as_array()
        .and_then(|m| m.last())
        .and_then(|m| m["content"].as_str())
        .unwrap_or_default()
        .to_owned();
    let answer = fixed.unwrap_or_else(|| format!("answer {n}: {last}"));
    axum::Json(json!({
        "id": format!("chatcmpl-{n}"),
        "object": "chat.completion",
        "model": body["model"],
        "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
    }))
    .into_response()
}

/// A streamed completion, one event per delta, written as the plan says.
fn stream(
    plan: StreamPlan,
    state: Arc<Mutex<Inner>>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::convert::Infallible>>(4);
    tokio::spawn(async move {
        for (i, delta) in plan.deltas.iter().enumerate() {
            if plan.hold_before.contains(&i) {
                let Ok(permit) = gate.acquire().await else {
                    return;
                };
                permit.forget();
            }
            let event = json!({"id": "chatcmpl-s", "object": "chat.completion.chunk",
                "choices": [{"index": 0, "delta": {"content": delta}, "finish_reason": null}]});
            if tx
                .send(Ok(Bytes::from(format!("data: {event}\n\n"))))
                .await
                .is_err()
            {
                return;
            }
            state.lock().unwrap().streamed += 1;
        }
        if plan.done {
            let _ = tx.send(Ok(Bytes::from_static(b"data: [DONE]\n\n"))).await;
        }
    });
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|chunk| (chunk, rx))
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}
