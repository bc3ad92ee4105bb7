//! `GET /weixin` (URL verification) and `POST /weixin` (messages).
//! PROTOCOL §1.1 and §2. A Feishu account's path takes `POST` only: its
//! URL check and events, acknowledged at once ([`feishu_receive`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Extension;

use super::{client_ip, ApiError, AppState, Endpoint};
use crate::conversation::{Outcome, Render};
use crate::domain::{Message, Reply};
use crate::metrics::{msg_type_label, Metrics};
use crate::platform::callback::{CallbackError, CallbackQuery};
use crate::platform::dingtalk::{events, DingTalkCallback};
use crate::platform::feishu::{FeishuCallbackError, Opened, SignedBy};
use crate::telemetry::{short_id, AccessNote};

/// The callback's query parameters (no query string reads as none given).
fn query(uri: &Uri) -> Result<CallbackQuery, ApiError> {
    CallbackQuery::parse(uri.query().unwrap_or("")).map_err(|_| ApiError::BadQuery)
}

fn refuse(state: &AppState, endpoint: &Endpoint, e: ApiError) -> Response {
    let metrics = state.metrics();
    let account = &endpoint.account;
    metrics.request(account, e.label(), "-");
    match &e {
        ApiError::Callback(CallbackError::BadSignature) => {
            Metrics::count_for(&metrics.signature_failures, account);
        }
        ApiError::Callback(CallbackError::Decrypt(_)) => {
            Metrics::count_for(&metrics.decrypt_failures, account);
        }
        ApiError::Feishu(FeishuCallbackError::BadSignature | FeishuCallbackError::BadToken) => {
            Metrics::count_for(&metrics.signature_failures, account);
        }
        ApiError::DingTalk(e) if e.is_forbidden() => {
            Metrics::count_for(&metrics.signature_failures, account);
        }
        ApiError::DingTalk(e) if e.is_decrypt() => {
            Metrics::count_for(&metrics.decrypt_failures, account);
        }
        ApiError::WeComBot(e) if e.is_decrypt() => {
            Metrics::count_for(&metrics.decrypt_failures, account);
        }
        ApiError::WeComBot(e) if e.is_forbidden() => {
            Metrics::count_for(&metrics.signature_failures, account);
        }
        ApiError::Feishu(FeishuCallbackError::Decrypt(_)) => {
            Metrics::count_for(&metrics.decrypt_failures, account);
        }
        ApiError::ForbiddenIp => {
            Metrics::count_for(&metrics.forbidden_ip, account);
        }
        _ => {}
    }
    if e.status() == StatusCode::FORBIDDEN {
        tracing::warn!(reason = e.label(), "refused");
    } else {
        tracing::info!(reason = e.label(), "rejected");
    }
    if let ApiError::Callback(inner) = &e {
        tracing::debug!(error = %inner, "refusal detail");
    }
    if let ApiError::Feishu(inner) = &e {
        tracing::debug!(error = %inner, "refusal detail");
    }
    if let ApiError::DingTalk(inner) = &e {
        tracing::debug!(error = %inner, "refusal detail");
    }
    if let ApiError::WeComBot(inner) = &e {
        tracing::debug!(error = %inner, "refusal detail");
    }
    let label = e.label();
    noted(e.into_response(), "-", label, None)
}

/// Tells the access line (written by the router's layer) what happened.
fn noted(
    mut response: Response,
    msg_type: &'static str,
    outcome: &'static str,
    strategy: Option<&'static str>,
) -> Response {
    response.extensions_mut().insert(AccessNote {
        msg_type,
        outcome,
        strategy,
    });
    response
}

/// Refuses callers outside the allowlist (when one is configured).
fn check_caller(
    state: &AppState,
    endpoint: &Endpoint,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let allowlist = &endpoint.allowlist;
    if !allowlist.enabled() {
        return Ok(());
    }
    // Without a socket peer (in-process tests) there is nobody to trust.
    let Some(Extension(ConnectInfo(peer))) = peer else {
        return Err(ApiError::ForbiddenIp);
    };
    let ip = client_ip::resolve(peer.ip(), headers, &state.inner.trusted_proxies);
    if allowlist.allows(ip) {
        Ok(())
    } else {
        tracing::warn!(client = %ip, "caller not in the callback IP allowlist");
        Err(ApiError::ForbiddenIp)
    }
}

/// URL verification: echo `echostr` when the signature holds (for WeCom,
/// its decrypted plaintext).
pub(super) async fn verify(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let result = check_caller(&state, &endpoint, peer, &headers)
        .and_then(|()| query(&uri))
        .and_then(|q| endpoint.callback.verify_url(&q).map_err(ApiError::from));
    match result {
        Ok(echostr) => verified(&state, &endpoint, echostr),
        Err(e) => refuse(&state, &endpoint, e),
    }
}

/// A passed URL check: the echoed text, counted and noted as `verified`.
fn verified(state: &AppState, endpoint: &Endpoint, echo: String) -> Response {
    state.metrics().request(&endpoint.account, "verified", "-");
    noted(
        ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], echo).into_response(),
        "-",
        "verified",
        None,
    )
}

/// A message or event: verify, decrypt, decide (with dedup, deadline and
/// overload handling), seal.
pub(super) async fn receive(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let arrived = tokio::time::Instant::now();
    if let Err(e) = check_caller(&state, &endpoint, peer, &headers) {
        return refuse(&state, &endpoint, e);
    }
    let q = match query(&uri) {
        Ok(q) => q,
        Err(e) => return refuse(&state, &endpoint, e),
    };
    let body = match body_of(body) {
        Ok(b) => b,
        Err(e) => return refuse(&state, &endpoint, e),
    };
    let callback = &endpoint.callback;
    let inbound = match callback.open(&q, &body) {
        Ok(inbound) => inbound,
        Err(e) => return refuse(&state, &endpoint, ApiError::from(e)),
    };
    let msg_type = msg_type_label(&inbound.message.msg_type);
    let render: Arc<dyn Render> = {
        let (endpoint, inbound) = (endpoint.clone(), inbound.clone());
        Arc::new(move |reply: &Reply| endpoint.callback.render(&inbound, reply))
    };
    let (render, kept) = Kept::wrap(&state, render);
    let (answer, outcome) = endpoint
        .delivery
        .answer(&inbound.message, &render, arrived)
        .await;
    let body = callback.seal_rendered(&inbound, answer.as_deref());
    tracing::debug!(user = %short_id(&inbound.message.from_user), encrypted = inbound.encrypted(), "answered");
    let metrics = state.metrics();
    metrics.request(&endpoint.account, outcome.label(), msg_type);
    metrics.observe_latency(&endpoint.account, started.elapsed().as_secs_f64());
    observe(kept, &state, &endpoint, &inbound.message, outcome, started);
    let content_type = if answer.is_some() {
        "application/xml; charset=utf-8"
    } else {
        "text/plain; charset=utf-8"
    };
    noted(
        ([(header::CONTENT_TYPE, content_type)], body).into_response(),
        msg_type,
        outcome.label(),
        outcome.strategy(),
    )
}

/// With the console on, the reply rendered into a push's answer, kept for
/// the conversations page (answers sent later are kept by the late
/// channel's wrapper).
struct Kept {
    inner: Arc<dyn Render>,
    reply: std::sync::Mutex<Option<Reply>>,
}

impl Kept {
    /// `render`, keeping what it renders when the console is on.
    fn wrap(state: &AppState, render: Arc<dyn Render>) -> (Arc<dyn Render>, Option<Arc<Kept>>) {
        if state.console().is_none() {
            return (render, None);
        }
        let kept = Arc::new(Kept {
            inner: render,
            reply: std::sync::Mutex::new(None),
        });
        (kept.clone(), Some(kept))
    }

    fn keep(&self, reply: &Reply) {
        *self.reply.lock().unwrap_or_else(|p| p.into_inner()) = Some(reply.clone());
    }
}

impl Render for Kept {
    fn render(&self, reply: &Reply) -> crate::conversation::Recorded {
        self.keep(reply);
        self.inner.render(reply)
    }

    fn interim(&self, reply: &Reply) -> crate::conversation::Recorded {
        self.keep(reply);
        self.inner.interim(reply)
    }
}

/// Tells the console (when on) how `message` was answered, with the reply
/// `kept` from the answer.
fn observe(
    kept: Option<Arc<Kept>>,
    state: &AppState,
    endpoint: &Endpoint,
    message: &Message,
    outcome: Outcome,
    started: Instant,
) {
    let (Some(console), Some(kept)) = (state.console(), kept) else {
        return;
    };
    let reply = kept.reply.lock().unwrap_or_else(|p| p.into_inner()).take();
    console.observe(crate::server::console::recent::Observed {
        account: &endpoint.name,
        message,
        outcome: outcome.label(),
        strategy: outcome.strategy(),
        reply,
        millis: started.elapsed().as_millis() as u64,
    });
}

/// The request body, or why it cannot be read (413 beyond the limit).
fn body_of(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge,
        _ => ApiError::BadBody,
    })
}

/// A Feishu push: the URL check is answered with its challenge; an event
/// is acknowledged with `{}` at once, its answer going out through the
/// reply API (dedup on the message: a re-push is answered once).
pub(super) async fn feishu_receive(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let arrived = tokio::time::Instant::now();
    let body = match check_caller(&state, &endpoint, peer, &headers).and_then(|()| body_of(body)) {
        Ok(b) => b,
        Err(e) => return refuse(&state, &endpoint, e),
    };
    let Some(gate) = &endpoint.feishu else {
        return refuse(&state, &endpoint, ApiError::BadBody);
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signed = SignedBy {
        timestamp: header("x-lark-request-timestamp"),
        nonce: header("x-lark-request-nonce"),
        signature: header("x-lark-signature"),
    };
    let json = |value: serde_json::Value| {
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            value.to_string(),
        )
            .into_response()
    };
    let opened = match gate.open(signed, &body) {
        Ok(opened) => opened,
        Err(e) => return refuse(&state, &endpoint, ApiError::Feishu(e)),
    };
    let metrics = state.metrics();
    match opened {
        Opened::Challenge(challenge) => {
            metrics.request(&endpoint.account, "verified", "-");
            noted(
                json(serde_json::json!({ "challenge": challenge })),
                "-",
                "verified",
                None,
            )
        }
        Opened::Ignored(why) => {
            tracing::info!(reason = why, "Feishu event acknowledged, not answered");
            metrics.request(&endpoint.account, "ignored", "-");
            noted(json(serde_json::json!({})), "-", "ignored", None)
        }
        Opened::Message(message) => {
            let msg_type = msg_type_label(&message.msg_type);
            // Nothing goes back in the response: Feishu takes only the 200.
            let render: Arc<dyn Render> = Arc::new(|_: &Reply| None);
            let (_, outcome) = endpoint.delivery.answer(&message, &render, arrived).await;
            tracing::debug!(user = %short_id(&message.from_user), "acknowledged");
            metrics.request(&endpoint.account, outcome.label(), msg_type);
            metrics.observe_latency(&endpoint.account, started.elapsed().as_secs_f64());
            // Over the concurrency limit nothing was claimed or started:
            // a 503 makes Feishu push the event again (15 s later) instead
            // of it being lost behind a 200.
            let status = if outcome == crate::conversation::Outcome::Overload {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            noted(
                (status, json(serde_json::json!({}))).into_response(),
                msg_type,
                outcome.label(),
                outcome.strategy(),
            )
        }
    }
}

/// A DingTalk robot callback: signed with the AppSecret, answered in the
/// response when the answer is ready in time (else the interim answer, and
/// the rest through the message's `sessionWebhook` or the robot send API).
/// An encrypted event push (`{"encrypt"}`) to the same path goes to
/// [`dingtalk_event`].
pub(super) async fn dingtalk_receive(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    q: Result<Query<HashMap<String, String>>, QueryRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let arrived = tokio::time::Instant::now();
    let body = match check_caller(&state, &endpoint, peer, &headers).and_then(|()| body_of(body)) {
        Ok(b) => b,
        Err(e) => return refuse(&state, &endpoint, e),
    };
    let Some(gate) = &endpoint.dingtalk else {
        return refuse(&state, &endpoint, ApiError::BadBody);
    };
    if events::is_event_push(&body) {
        let q = match q {
            Ok(Query(q)) => q,
            Err(_) => return refuse(&state, &endpoint, ApiError::BadQuery),
        };
        return dingtalk_event(&state, &endpoint, &q, &body);
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let message = match gate.open(header("timestamp"), header("sign"), &body) {
        Ok(m) => m,
        Err(e) => return refuse(&state, &endpoint, ApiError::DingTalk(e)),
    };
    let msg_type = msg_type_label(&message.msg_type);
    let (render, kept) = Kept::wrap(&state, Arc::new(DingTalkCallback::render));
    let (answer, outcome) = endpoint.delivery.answer(&message, &render, arrived).await;
    let metrics = state.metrics();
    metrics.request(&endpoint.account, outcome.label(), msg_type);
    metrics.observe_latency(&endpoint.account, started.elapsed().as_secs_f64());
    observe(kept, &state, &endpoint, &message, outcome, started);
    let body = answer.as_deref().unwrap_or("{}").to_owned();
    noted(
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response(),
        msg_type,
        outcome.label(),
        outcome.strategy(),
    )
}

/// A DingTalk event push: verified and decrypted; `check_url` and every
/// event answered with the encrypted `success` at once. An event is then
/// offered to the rules (and upstreams) as a domain event, deduplicated
/// like a message; its answer has nowhere to go and is dropped, logged
/// and counted.
fn dingtalk_event(
    state: &AppState,
    endpoint: &Arc<Endpoint>,
    q: &HashMap<String, String>,
    body: &[u8],
) -> Response {
    use crate::platform::dingtalk::DingTalkCallbackError;
    let Some(events) = &endpoint.dingtalk_events else {
        return refuse(
            state,
            endpoint,
            ApiError::DingTalk(DingTalkCallbackError::EventsNotConfigured),
        );
    };
    let param = |a: &str, b: &str| q.get(a).or_else(|| q.get(b)).map(String::as_str);
    let signed = events::Signed {
        signature: param("signature", "msg_signature"),
        timestamp: param("timestamp", "timeStamp"),
        nonce: param("nonce", "nonce"),
    };
    let push = match events.open(signed, body) {
        Ok(p) => p,
        Err(e) => return refuse(state, endpoint, ApiError::DingTalk(e.into())),
    };
    let answer = events.success(
        signed.timestamp.unwrap_or_default(),
        signed.nonce.unwrap_or_default(),
    );
    let response = (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        answer.body.to_string(),
    )
        .into_response();
    let metrics = state.metrics().clone();
    match push {
        events::Push::CheckUrl => {
            metrics.request(&endpoint.account, "verified", "-");
            noted(response, "-", "verified", None)
        }
        events::Push::Event {
            event_type,
            id,
            plaintext,
        } => {
            tracing::info!(event = %event_type, "DingTalk event acknowledged");
            let app = endpoint.name.clone();
            let message = Arc::new(events::to_message(&event_type, &id, &plaintext, &app));
            let endpoint = endpoint.clone();
            let counted = metrics.clone();
            let render: Arc<dyn Render> = Arc::new(move |reply: &Reply| {
                if !matches!(reply, Reply::Success) {
                    counted.agent_failure("dingtalk_event_answer_dropped");
                    tracing::info!("the answer to a DingTalk event has nowhere to go: dropped");
                }
                None
            });
            // Acknowledged at once; the rules run after.
            tokio::spawn(async move {
                let arrived = tokio::time::Instant::now();
                let (_, outcome) = endpoint.delivery.answer(&message, &render, arrived).await;
                metrics.request(&endpoint.account, outcome.label(), "event");
            });
            noted(response, "event", "acknowledged", None)
        }
    }
}

/// A 智能机器人's URL verification: the plaintext of `echostr` when the
/// `msg_signature` holds.
pub(super) async fn wecom_bot_verify(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    let Some(bot) = &endpoint.wecom_bot else {
        return refuse(&state, &endpoint, ApiError::BadBody);
    };
    let result = check_caller(&state, &endpoint, peer, &headers)
        .and_then(|()| query(&uri))
        .and_then(|q| bot.callback.verify_url(&q).map_err(ApiError::WeComBot));
    match result {
        Ok(echo) => verified(&state, &endpoint, echo),
        Err(e) => refuse(&state, &endpoint, e),
    }
}

/// A 智能机器人 callback: a user's message is answered with a stream (a
/// rule's answer finished at once), a stream refresh with the content so
/// far, `enter_chat` with the rules' welcome text (if any), any other
/// event with an empty 200. Answers are WeCom's encrypted JSON.
pub(super) async fn wecom_bot_receive(
    State(state): State<AppState>,
    Extension(endpoint): Extension<Arc<Endpoint>>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    uri: Uri,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    use crate::platform::wecom_bot::BotPush;
    let started = Instant::now();
    let arrived = tokio::time::Instant::now();
    let Some(bot) = &endpoint.wecom_bot else {
        return refuse(&state, &endpoint, ApiError::BadBody);
    };
    let opened = check_caller(&state, &endpoint, peer, &headers)
        .and_then(|()| query(&uri))
        .and_then(|q| body_of(body).map(|b| (q, b)))
        .and_then(|(q, b)| bot.callback.open(&q, &b).map_err(ApiError::WeComBot));
    let push = match opened {
        Ok(push) => push,
        Err(e) => return refuse(&state, &endpoint, e),
    };
    let metrics = state.metrics();
    let (answer, msg_type, outcome) = match push {
        BotPush::Message(message) => {
            let message: Arc<Message> = Arc::from(message);
            let msg_type = msg_type_label(&message.msg_type);
            tracing::debug!(user = %short_id(&message.from_user), "智能机器人 message");
            let bot_render = bot.streams.render_for(&message);
            let (render, kept) = Kept::wrap(&state, bot_render.clone());
            let (answer, outcome) = endpoint.delivery.answer(&message, &render, arrived).await;
            let answer = bot.streams.settle(&bot_render, outcome, answer).await;
            observe(kept, &state, &endpoint, &message, outcome, started);
            (answer, msg_type, outcome.label())
        }
        BotPush::Refresh { stream_id, .. } => (
            Some(bot.streams.refresh(&stream_id).await),
            "stream",
            "refreshed",
        ),
        // Entering the chat: the rules may answer with a welcome text, in
        // the response only.
        BotPush::Event {
            event_type,
            message,
            ..
        } if event_type == "enter_chat" => {
            let message: Arc<Message> = Arc::from(message);
            let (render, kept) =
                Kept::wrap(&state, Arc::new(crate::platform::wecom_bot::WelcomeRender));
            let (answer, outcome) = endpoint.delivery.answer(&message, &render, arrived).await;
            observe(kept, &state, &endpoint, &message, outcome, started);
            (
                answer.as_deref().map(str::to_owned),
                "event",
                outcome.label(),
            )
        }
        BotPush::Event { event_type, .. } => {
            tracing::info!(event = %event_type, "智能机器人 event acknowledged, not answered");
            (None, "event", "ignored")
        }
    };
    metrics.request(&endpoint.account, outcome, msg_type);
    metrics.observe_latency(&endpoint.account, started.elapsed().as_secs_f64());
    let response = match answer {
        Some(plain) => (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bot.callback.seal(&plain),
        )
            .into_response(),
        None => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "").into_response(),
    };
    noted(response, msg_type, outcome, None)
}
