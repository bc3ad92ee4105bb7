//! A local stand-in for DingTalk's robot session webhooks
//! (`https://oapi.dingtalk.com/robot/sendBySession?session=…`), faithful
//! where wxgate depends on it (docs/platforms/dingtalk.md):
//!
//! - `POST /robot/sendBySession?session=S` with a JSON robot message:
//!   `msgtype` one of `text`, `markdown`, `link`, `actionCard`, `feedCard`;
//!   `text` needs `text.content`, `markdown` needs `markdown.title` and
//!   `markdown.text` (strings) → else errcode 40035 (参数错误). A session the
//!   fake did not hand out ([`FakeDingTalk::session`]) → errcode 300001; the
//!   code is the fake's own, the pages read name none. Accepted messages
//!   answer `{"errcode": 0, "errmsg": "ok"}` and are recorded in order.
//!
//! - `POST /v1.0/oauth2/accessToken` `{"appKey","appSecret"}` →
//!   `{"accessToken","expireIn": 7200}`; other credentials → HTTP 400
//!   `{"code":"invalidClientIdOrSecret",…}`. Each call counted.
//! - `POST /v1.0/robot/oToMessages/batchSend` and
//!   `/v1.0/robot/groupMessages/send` with the header
//!   `x-acs-dingtalk-access-token`: a token the fake did not issue, or one
//!   revoked ([`FakeDingTalk::revoke_tokens`]) → HTTP 401
//!   `{"code":"InvalidAuthentication",…}`; `robotCode` not the AppKey →
//!   400 `invalidParameter.robotCode.auth`; `userIds` empty or above 20 →
//!   400 `invalidParameter.userIds.empty` / `.overMax`; `msgKey` other than
//!   `sampleMarkdown`/`sampleText` → 400 `invalidParameter.msgKey.invalid`;
//!   `msgParam` not a JSON string → 400 `invalidParameter.msgParam.invalid`;
//!   a refusal queued with [`FakeDingTalk::refuse_next_send`] is answered
//!   first. Every error body is `{"code","message","requestid"}`. Accepted
//!   sends are recorded; `batchSend` answers `{"processQueryKey",
//!   "invalidStaffIdList": [], "flowControlledStaffIdList": []}`.
//!
//! The callbacks themselves come from the tests, signed with
//! [`signed_headers`]; event pushes are sealed with [`event_push`].

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

/// The fake robot's AppKey.
pub const DINGTALK_APP_KEY: &str = "dingwxgatefixture01";
/// Its AppSecret.
pub const DINGTALK_APP_SECRET: &str =
    "wxgateDingTalkAppSecret0123456789abcdefghijklmnopqrstuvwxyz0123";

#[derive(Default)]
struct Inner {
    sessions: HashSet<String>,
    sent: Vec<(String, Value)>,
    token_fetches: usize,
    tokens: HashSet<String>,
    api_sent: Vec<(String, Value)>,
    refusals: Vec<(u16, String)>,
}

/// The event subscription's token of the fake app.
pub const DINGTALK_EVENT_TOKEN: &str = "wxgateDingTalkEventToken";
/// Its EncodingAESKey.
pub const DINGTALK_EVENT_AES_KEY: &str = "wxgateDingTalkEventAesKey0123456789abcdefgh";

fn api_error(status: u16, code: &str, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        Json(json!({"code": code, "message": message, "requestid": "FAKE-REQUEST-ID"})),
    )
        .into_response()
}

async fn access_token(
    State(state): State<Arc<Mutex<Inner>>>,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut inner = state.lock().unwrap();
    inner.token_fetches += 1;
    if body["appKey"] != DINGTALK_APP_KEY || body["appSecret"] != DINGTALK_APP_SECRET {
        return api_error(
            400,
            "invalidClientIdOrSecret",
            "无效的clientId或者clientSecret",
        );
    }
    let token = format!("dt-token-{}", inner.token_fetches);
    inner.tokens.insert(token.clone());
    Json(json!({"accessToken": token, "expireIn": 7200})).into_response()
}

/// The checks both send APIs share; `Err` is the refusal to answer.
fn check_send(
    inner: &mut Inner,
    headers: &axum::http::HeaderMap,
    body: &Value,
) -> Result<(), Box<axum::response::Response>> {
    let token = headers
        .get("x-acs-dingtalk-access-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !inner.tokens.contains(token) {
        return Err(Box::new(api_error(
            401,
            "InvalidAuthentication",
            "不合法的access_token",
        )));
    }
    if !inner.refusals.is_empty() {
        let (status, code) = inner.refusals.remove(0);
        return Err(Box::new(api_error(status, &code, "refused by the fake")));
    }
    if body["robotCode"] != DINGTALK_APP_KEY {
        return Err(Box::new(api_error(
            400,
            "invalidParameter.robotCode.auth",
            "robotCode不匹配",
        )));
    }
    if !matches!(
        body["msgKey"].as_str(),
        Some("sampleMarkdown" | "sampleText")
    ) {
        return Err(Box::new(api_error(
            400,
            "invalidParameter.msgKey.invalid",
            "msgKey无效",
        )));
    }
    let param_ok = body["msgParam"]
        .as_str()
        .and_then(|p| serde_json::from_str::<Value>(p).ok())
        .is_some_and(|p| p.is_object());
    if !param_ok {
        return Err(Box::new(api_error(
            400,
            "invalidParameter.msgParam.invalid",
            "msgParam必须是JSON",
        )));
    }
    Ok(())
}

async fn batch_send(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut inner = state.lock().unwrap();
    if let Err(refused) = check_send(&mut inner, &headers, &body) {
        return *refused;
    }
    match body["userIds"].as_array().map(Vec::len) {
        None | Some(0) => return api_error(400, "invalidParameter.userIds.empty", "userIds为空"),
        Some(n) if n > 20 => {
            return api_error(400, "invalidParameter.userIds.overMax", "userIds超过上限")
        }
        _ => {}
    }
    inner.api_sent.push(("batchSend".into(), body));
    Json(json!({"processQueryKey": "pqk", "invalidStaffIdList": [], "flowControlledStaffIdList": []}))
        .into_response()
}

async fn group_send(
    State(state): State<Arc<Mutex<Inner>>>,
    headers: axum::http::HeaderMap,
    Json(body): Json<Value>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut inner = state.lock().unwrap();
    if let Err(refused) = check_send(&mut inner, &headers, &body) {
        return *refused;
    }
    if body["openConversationId"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
    {
        return api_error(
            400,
            "invalidParameter.openConversationId.empty",
            "openConversationId为空",
        );
    }
    inner.api_sent.push(("groupMessages/send".into(), body));
    Json(json!({"processQueryKey": "pqk"})).into_response()
}

/// The running fake; stops when dropped.
pub struct FakeDingTalk {
    addr: SocketAddr,
    state: Arc<Mutex<Inner>>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Deserialize)]
struct SessionQuery {
    session: Option<String>,
}

fn valid(body: &Value) -> bool {
    match body["msgtype"].as_str() {
        Some("text") => body["text"]["content"].is_string(),
        Some("markdown") => {
            body["markdown"]["title"].is_string() && body["markdown"]["text"].is_string()
        }
        Some("link" | "actionCard" | "feedCard") => true,
        _ => false,
    }
}

async fn send_by_session(
    State(state): State<Arc<Mutex<Inner>>>,
    Query(q): Query<SessionQuery>,
    body: String,
) -> Json<Value> {
    let mut inner = state.lock().unwrap();
    let Some(session) = q.session.filter(|s| inner.sessions.contains(s)) else {
        return Json(json!({"errcode": 300001, "errmsg": "session不存在或已过期"}));
    };
    let Some(body) = serde_json::from_str::<Value>(&body).ok().filter(valid) else {
        return Json(json!({"errcode": 40035, "errmsg": "缺少参数 json"}));
    };
    inner.sent.push((session, body));
    Json(json!({"errcode": 0, "errmsg": "ok"}))
}

impl FakeDingTalk {
    pub async fn start() -> FakeDingTalk {
        let state = Arc::new(Mutex::new(Inner::default()));
        let router = Router::new()
            .route("/robot/sendBySession", post(send_by_session))
            .route("/v1.0/oauth2/accessToken", post(access_token))
            .route("/v1.0/robot/oToMessages/batchSend", post(batch_send))
            .route("/v1.0/robot/groupMessages/send", post(group_send))
            .with_state(state.clone());
        let (addr, server) = super::serve_local(router).await;
        FakeDingTalk {
            addr,
            state,
            server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A session webhook URL the fake accepts.
    pub fn session(&self, name: &str) -> String {
        self.state.lock().unwrap().sessions.insert(name.to_owned());
        format!("{}/robot/sendBySession?session={name}", self.base_url())
    }

    /// Every accepted message, with its session, in order.
    pub fn sent(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().sent.clone()
    }

    /// Every message the send API accepted, with its endpoint
    /// (`batchSend` or `groupMessages/send`), in order.
    pub fn api_sent(&self) -> Vec<(String, Value)> {
        self.state.lock().unwrap().api_sent.clone()
    }

    /// How many access tokens were asked for.
    pub fn token_fetches(&self) -> usize {
        self.state.lock().unwrap().token_fetches
    }

    /// Every token issued so far stops working (401 on the next send).
    pub fn revoke_tokens(&self) {
        self.state.lock().unwrap().tokens.clear();
    }

    /// The next send (with a valid token) is refused with `status` and `code`.
    pub fn refuse_next_send(&self, status: u16, code: &str) {
        self.state
            .lock()
            .unwrap()
            .refusals
            .push((status, code.to_owned()));
    }
}

impl Drop for FakeDingTalk {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A robot message callback body: `text` from `manager0001` in a group,
/// with its `sessionWebhook` expiring at `expires_ms`.
pub fn robot_text(msg_id: &str, text: &str, webhook: &str, expires_ms: i64) -> String {
    robot_message(msg_id, text, webhook, expires_ms, "2")
}

/// As [`robot_text`] in a direct chat (`conversationType` 1) or a group (2).
pub fn robot_message(
    msg_id: &str,
    text: &str,
    webhook: &str,
    expires_ms: i64,
    conversation_type: &str,
) -> String {
    json!({
        "conversationId": "cidwxgate0001",
        "atUsers": [{"dingtalkId": "$:LWCP_v1:$bot"}],
        "chatbotCorpId": "dingcorp0001",
        "chatbotUserId": "$:LWCP_v1:$bot",
        "msgId": msg_id,
        "senderNick": "张三",
        "isAdmin": false,
        "senderStaffId": "manager0001",
        "sessionWebhookExpiredTime": expires_ms,
        "createAt": 1700000000000_i64,
        "senderCorpId": "dingcorp0001",
        "conversationType": conversation_type,
        "senderId": "$:LWCP_v1:$sender",
        "conversationTitle": "wxgate 测试群",
        "isInAtList": true,
        "sessionWebhook": webhook,
        "text": {"content": format!(" {text}")},
        "robotCode": DINGTALK_APP_KEY,
        "msgtype": "text",
    })
    .to_string()
}

/// The `timestamp` and `sign` headers of a callback sent at `at_ms`.
pub fn signed_headers(at_ms: i64, secret: &str) -> Vec<(&'static str, String)> {
    let ts = at_ms.to_string();
    let sign = wxgate::platform::dingtalk::sign::sign(&ts, &wxgate::config::Secret::new(secret));
    vec![("timestamp", ts), ("sign", sign)]
}

/// An encrypted event push of `plaintext`: the query (`signature`,
/// `timestamp`, `nonce`) and the body `{"encrypt"}`, sealed for
/// `receive_id` with the fake app's event token and key.
pub fn event_push(
    plaintext: &str,
    timestamp: &str,
    nonce: &str,
    receive_id: &str,
) -> (String, String) {
    let crypto = event_crypto(receive_id);
    let sealed = crypto.seal_signed(DINGTALK_EVENT_TOKEN, timestamp, nonce, plaintext);
    (
        format!(
            "signature={}&timestamp={timestamp}&nonce={nonce}",
            sealed.signature
        ),
        json!({"encrypt": sealed.encrypt}).to_string(),
    )
}

/// The fake app's event envelope for `receive_id`.
pub fn event_crypto(receive_id: &str) -> wxgate::crypto::MessageCrypto {
    let key = wxgate::crypto::AesKey::from_encoding_aes_key(DINGTALK_EVENT_AES_KEY).unwrap();
    wxgate::crypto::MessageCrypto::new(key, receive_id)
}
