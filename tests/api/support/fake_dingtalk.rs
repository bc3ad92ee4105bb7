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
//! The callbacks themselves come from the tests, signed with
//! [`signed_headers`].

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
}

impl Drop for FakeDingTalk {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A robot message callback body: `text` from `staff_id`, with its
/// `sessionWebhook` expiring at `expires_ms`.
pub fn robot_text(msg_id: &str, text: &str, webhook: &str, expires_ms: i64) -> String {
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
        "conversationType": "2",
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
