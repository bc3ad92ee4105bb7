//! A local stand-in for `open.feishu.cn` / `open.larksuite.com`, faithful
//! where wxgate depends on it (docs/platforms/feishu.md lists the pages):
//!
//! - `POST /open-apis/auth/v3/tenant_access_token/internal` with JSON
//!   `{app_id, app_secret}`: an unknown app id → code 10003 (invalid
//!   param), a wrong secret → 10014 (app secret invalid), a body that is not
//!   JSON → 10003. Feishu hands out the current token while it has more than
//!   30 minutes left and a new one after; the fake keeps one token until a
//!   test expires it. Answers `{code: 0, msg: "ok", tenant_access_token,
//!   expire}`.
//! - `POST /open-apis/im/v1/messages/{message_id}/reply` with
//!   `Authorization: Bearer <tenant_access_token>`: no or a malformed header
//!   → 99991661, an unknown or expired token → 99991663 (HTTP 400, as
//!   Feishu). A `message_id` that is not `om_…` → 230001 (invalid
//!   message_id); a withdrawn one ([`FakeFeishu::withdraw`]) → 230011. The
//!   body: `msg_type` one of Feishu's, `content` a string holding a JSON
//!   object (`text` needs a `text` string, `post` a locale with a `content`
//!   array) → else 230001; `uuid` at most 50 characters → else 230001. A
//!   request repeating a `uuid` within the hour is answered with the first
//!   reply's id and not recorded again (Feishu's idempotency).
//!
//! Tests can queue codes for the next replies, expire the token, count
//! token requests and read every accepted reply in order.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The fake app's App ID.
pub const FEISHU_APP_ID: &str = "cli_wxgatefixture01";
/// Its App Secret.
pub const FEISHU_APP_SECRET: &str = "feishuFakeAppSecret0123456789";
/// The message types Feishu's reply API takes.
const MSG_TYPES: &[&str] = &[
    "text",
    "post",
    "image",
    "file",
    "audio",
    "media",
    "sticker",
    "interactive",
    "share_chat",
    "share_user",
];

/// One accepted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct Replied {
    /// The message replied to.
    pub message_id: String,
    /// `msg_type`.
    pub msg_type: String,
    /// `content`, parsed.
    pub content: Value,
    /// `uuid`, when sent.
    pub uuid: Option<String>,
}

impl Replied {
    /// The markdown of a `post` with one `md` element, or a `text`'s text.
    pub fn text(&self) -> String {
        match self.msg_type.as_str() {
            "text" => self.content["text"].as_str().unwrap_or("").to_owned(),
            _ => self.content["zh_cn"]["content"][0][0]["text"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        }
    }
}

#[derive(Default)]
struct Inner {
    token: Option<String>,
    issued: usize,
    replies: Vec<Replied>,
    next_codes: VecDeque<i64>,
    uuids: HashMap<String, String>,
    withdrawn: HashSet<String>,
    refused_tokens: Vec<(i64, String)>,
}

#[derive(Default)]
struct Fake {
    inner: Mutex<Inner>,
    token_requests: AtomicUsize,
}

/// The running fake; stops when dropped.
pub struct FakeFeishu {
    addr: SocketAddr,
    state: Arc<Fake>,
    server: tokio::task::JoinHandle<()>,
}

fn code(status: StatusCode, code: i64, msg: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({"code": code, "msg": msg, "error": {"log_id": "fake"}})),
    )
}

async fn tenant_token(State(fake): State<Arc<Fake>>, body: String) -> (StatusCode, Json<Value>) {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return code(StatusCode::BAD_REQUEST, 10003, "invalid param");
    };
    if body["app_id"] != FEISHU_APP_ID {
        return code(StatusCode::BAD_REQUEST, 10003, "invalid param");
    }
    if body["app_secret"] != FEISHU_APP_SECRET {
        return code(StatusCode::BAD_REQUEST, 10014, "app secret invalid");
    }
    let mut i = fake.inner.lock().unwrap();
    let token = match &i.token {
        Some(t) => t.clone(),
        None => {
            i.issued += 1;
            let t = format!("t-fake{:04}", i.issued);
            i.token = Some(t.clone());
            t
        }
    };
    (
        StatusCode::OK,
        Json(json!({"code": 0, "msg": "ok", "tenant_access_token": token, "expire": 7200})),
    )
}

fn content_ok(msg_type: &str, content: &Value) -> bool {
    match msg_type {
        "text" => content["text"].is_string(),
        "post" => content.as_object().is_some_and(|locales| {
            !locales.is_empty() && locales.values().all(|l| l["content"].is_array())
        }),
        _ => content.is_object(),
    }
}

async fn reply(
    State(fake): State<Arc<Fake>>,
    Path(message_id): Path<String>,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, Json<Value>) {
    let bearer = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let mut i = fake.inner.lock().unwrap();
    let Some(token) = bearer.filter(|t| !t.is_empty()) else {
        return code(
            StatusCode::BAD_REQUEST,
            99991661,
            "Missing access token for authorization",
        );
    };
    if i.token.as_deref() != Some(token) {
        i.refused_tokens.push((99991663, token.to_owned()));
        return code(
            StatusCode::BAD_REQUEST,
            99991663,
            "Invalid access token for authorization",
        );
    }
    if let Some(scripted) = i.next_codes.pop_front() {
        if scripted == 99991663 {
            // The token stops working, as when Feishu revoked it.
            i.token = None;
        }
        return code(StatusCode::BAD_REQUEST, scripted, "scripted failure");
    }
    if !message_id.starts_with("om_") {
        return code(StatusCode::BAD_REQUEST, 230001, "invalid message_id");
    }
    if i.withdrawn.contains(&message_id) {
        return code(
            StatusCode::BAD_REQUEST,
            230011,
            "The message was withdrawn.",
        );
    }
    let Ok(body) = serde_json::from_str::<Value>(&body) else {
        return code(StatusCode::BAD_REQUEST, 230001, "invalid request body");
    };
    let msg_type = body["msg_type"].as_str().unwrap_or("");
    if !MSG_TYPES.contains(&msg_type) {
        return code(StatusCode::BAD_REQUEST, 230001, "invalid msg_type");
    }
    let content = body["content"]
        .as_str()
        .and_then(|c| serde_json::from_str::<Value>(c).ok());
    let Some(content) = content.filter(|c| content_ok(msg_type, c)) else {
        return code(StatusCode::BAD_REQUEST, 230001, "invalid content");
    };
    let uuid = body["uuid"].as_str().map(str::to_owned);
    if uuid.as_ref().is_some_and(|u| u.chars().count() > 50) {
        return code(StatusCode::BAD_REQUEST, 230001, "invalid uuid");
    }
    if let Some(first) = uuid.as_ref().and_then(|u| i.uuids.get(u)) {
        let first = first.clone();
        return (
            StatusCode::OK,
            Json(json!({"code": 0, "msg": "success", "data": {"message_id": first}})),
        );
    }
    let new_id = format!("om_reply{:04}", i.replies.len() + 1);
    if let Some(u) = &uuid {
        i.uuids.insert(u.clone(), new_id.clone());
    }
    i.replies.push(Replied {
        message_id: message_id.clone(),
        msg_type: msg_type.to_owned(),
        content,
        uuid,
    });
    (
        StatusCode::OK,
        Json(json!({"code": 0, "msg": "success", "data": {
            "message_id": new_id, "parent_id": message_id, "root_id": message_id,
            "msg_type": msg_type,
        }})),
    )
}

impl FakeFeishu {
    pub async fn start() -> FakeFeishu {
        let state = Arc::new(Fake::default());
        let router = Router::new()
            .route(
                "/open-apis/auth/v3/tenant_access_token/internal",
                post(tenant_token),
            )
            .route("/open-apis/im/v1/messages/{message_id}/reply", post(reply))
            .with_state(state.clone());
        let (addr, server) = super::serve_local(router).await;
        FakeFeishu {
            addr,
            state,
            server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every accepted reply, in the order it arrived.
    pub fn replies(&self) -> Vec<Replied> {
        self.state.inner.lock().unwrap().replies.clone()
    }

    /// Token requests so far.
    pub fn token_requests(&self) -> usize {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// The next replies answer these codes, in order.
    pub fn fail_next_replies(&self, codes: &[i64]) {
        self.state.inner.lock().unwrap().next_codes.extend(codes);
    }

    /// The current token stops working (99991663 on its next use).
    pub fn expire_token(&self) {
        self.state.inner.lock().unwrap().token = None;
    }

    /// The message was withdrawn: replying to it answers 230011.
    pub fn withdraw(&self, message_id: &str) {
        self.state
            .inner
            .lock()
            .unwrap()
            .withdrawn
            .insert(message_id.to_owned());
    }

    /// Tokens refused so far, with the code they got.
    pub fn refused_tokens(&self) -> Vec<(i64, String)> {
        self.state.inner.lock().unwrap().refused_tokens.clone()
    }
}

impl Drop for FakeFeishu {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// An `im.message.receive_v1` event body (schema 2.0) from `open_id`.
/// `mentions` are `(key, open_id)` pairs, the keys standing in the text.
pub fn message_event(
    token: &str,
    event_id: &str,
    message_id: &str,
    chat_type: &str,
    text: &str,
    mentions: &[(&str, &str)],
) -> String {
    let mentions: Vec<Value> = mentions
        .iter()
        .map(|(key, open_id)| {
            json!({"key": key, "name": "wxgate bot", "id": {"open_id": open_id}, "tenant_key": "tk"})
        })
        .collect();
    json!({
        "schema": "2.0",
        "header": {
            "event_id": event_id,
            "event_type": "im.message.receive_v1",
            "create_time": "1700000000000",
            "token": token,
            "app_id": FEISHU_APP_ID,
            "tenant_key": "tk",
        },
        "event": {
            "sender": {"sender_id": {"open_id": "ou_sender0001"}, "sender_type": "user", "tenant_key": "tk"},
            "message": {
                "message_id": message_id,
                "create_time": "1700000000000",
                "chat_id": "oc_chat0001",
                "chat_type": chat_type,
                "message_type": "text",
                "content": json!({"text": text}).to_string(),
                "mentions": mentions,
            },
        },
    })
    .to_string()
}

/// `body` as Feishu sends it with an Encrypt Key: `{"encrypt": …}`.
pub fn sealed(body: &str, encrypt_key: &str) -> String {
    use wxgate::platform::feishu::crypto::EventCipher;
    let cipher = EventCipher::new(&wxgate::config::Secret::new(encrypt_key));
    json!({"encrypt": cipher.encrypt(body, [0x42; 16])}).to_string()
}

/// The `X-Lark-*` headers of `body`, signed with `encrypt_key`.
pub fn signed_headers(body: &str, encrypt_key: &str) -> Vec<(&'static str, String)> {
    use wxgate::platform::feishu::crypto::signature;
    let (ts, nonce) = ("1700000000", "wxgate-nonce");
    let sig = signature(
        ts,
        nonce,
        &wxgate::config::Secret::new(encrypt_key),
        body.as_bytes(),
    );
    vec![
        ("x-lark-request-timestamp", ts.to_owned()),
        ("x-lark-request-nonce", nonce.to_owned()),
        ("x-lark-signature", sig),
    ]
}
