//! `qyapi.weixin.qq.com` for WeCom apps: gettoken (one token per secret,
//! shared with 微信客服) and app messages.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_call, token_scripted, Fake, FakeWechat, Host, Inner, TokenQuery};

/// The WeCom corp (CorpID); the WeCom fixtures are encrypted for the same id.
pub const CORP_ID: &str = "ww5d3c1b9a7e2f4086";
/// Secret of the self-built app [`AGENT_ID`] (43 characters, like WeCom's).
pub const CORP_SECRET: &str = "fakeWecomAppSecret0123456789abcdefghijklmno";
/// Secret of 微信客服. Its tokens are separate from the app's: one token per secret.
pub const KF_SECRET: &str = "fakeWecomKfSecret0123456789abcdefghijklmnop";
/// AgentID of the self-built app.
pub const AGENT_ID: i64 = 1000002;

/// WeCom's limit on text content, in bytes.
const TEXT_LIMIT: usize = 2048;

pub(super) fn routes() -> Router<Arc<Fake>> {
    Router::new()
        .route("/cgi-bin/gettoken", get(wecom_token))
        .route("/cgi-bin/message/send", post(wecom_send))
}

impl Inner {
    /// A WeCom token for `secret`, which becomes that secret's current one.
    fn mint_wecom(&mut self, secret: &'static str, now: Instant) -> String {
        self.issued += 1;
        let token = format!("FAKE_WECOM_TOKEN_{:04}_{}", self.issued, "w".repeat(100));
        self.valid.insert(token.clone(), now + self.lifetime);
        self.token_secrets.insert(token.clone(), secret);
        self.wecom_current.insert(secret, token.clone());
        token
    }

    pub(super) fn next_msgid(&mut self, prefix: &str) -> String {
        self.msgids += 1;
        format!("{prefix}{:08}", self.msgids)
    }
}

/// A WeCom error answer, errmsg in WeCom's shape (hint, ip, link to the code).
pub(super) fn wecom_error(code: i64) -> Json<Value> {
    let message = match code {
        -1 => "system busy",
        40001 => "invalid credential",
        40004 => "invalid media type",
        40006 => "invalid file size",
        40007 => "invalid media_id",
        40008 => "invalid message type",
        40009 => "invalid image size",
        40010 => "invalid voice size",
        40011 => "invalid video size",
        40012 => "invalid thumb size",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40056 => "invalid agentid",
        40058 => "invalid parameter",
        40096 => "invalid external userid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        41005 => "media data missing",
        41011 => "agentid missing",
        42001 => "access_token expired",
        44004 => "empty content",
        45002 => "content size out of limit",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
        48001 => "api unauthorized",
        81013 => "user & party & tag all invalid",
        95000 => "invalid open_kfid",
        95001 => "send msg count limit",
        95002 => "send msg time limit",
        95007 => "invalid msg token",
        95013 => "conversation end",
        95018 => "send msg session status invalid",
        _ => "error",
    };
    wecom_fail(code, message)
}

pub(super) fn wecom_fail(code: i64, message: &str) -> Json<Value> {
    Json(json!({
        "errcode": code,
        "errmsg": format!("{message}, hint: [0000-fake], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"),
    }))
}

impl FakeWechat {
    /// The WeCom secret `token` was issued for ([`CORP_SECRET`] or
    /// [`KF_SECRET`]); `None` for Official Account tokens and unknown ones.
    pub fn token_secret(&self, token: &str) -> Option<String> {
        self.with(|i| i.token_secrets.get(token).map(|s| s.to_string()))
    }

    /// The next WeCom app messages (only) answer these errcodes, in order.
    pub fn fail_next_wecom_sends(&self, codes: &[i64]) {
        self.with(|i| i.next_wecom_send_errors.extend(codes));
    }

    /// Bodies of the accepted WeCom app messages (`message/send`), in order.
    pub fn wecom_sends(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/message/send")
    }
}

#[derive(Deserialize)]
struct WecomTokenQuery {
    corpid: Option<String>,
    corpsecret: Option<String>,
}

async fn wecom_token(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<WecomTokenQuery>,
) -> Json<Value> {
    if let Some(code) = token_scripted(&fake).await {
        return wecom_error(code);
    }
    let corpid = q.corpid.as_deref().unwrap_or("");
    let secret = match q.corpsecret.as_deref().unwrap_or("") {
        _ if corpid.is_empty() => return wecom_error(41002),
        _ if corpid != CORP_ID => return wecom_error(40013),
        "" => return wecom_error(41004),
        s if s == CORP_SECRET => CORP_SECRET,
        s if s == KF_SECRET => KF_SECRET,
        _ => return wecom_error(40001),
    };
    let mut i = fake.inner.lock().unwrap();
    let now = Instant::now();
    // While the secret's token is valid, the same token comes back.
    let current = i
        .wecom_current
        .get(secret)
        .and_then(|t| i.remaining(t, now).map(|left| (t.clone(), left)))
        .filter(|(_, left)| !left.is_zero());
    let (token, left) = match current {
        Some(pair) => pair,
        None => {
            let t = i.mint_wecom(secret, now);
            (t, i.lifetime)
        }
    };
    Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "access_token": token,
        "expires_in": left.as_secs(),
    }))
}

/// The errcode WeCom answers to a malformed text `content`, if any.
pub(super) fn text_error(content: &Value) -> Option<i64> {
    match content.as_str() {
        None | Some("") => Some(44004),
        Some(c) if c.len() > TEXT_LIMIT => Some(45002),
        Some(_) => None,
    }
}

/// The errcode WeCom answers to a malformed app message, if any.
fn app_message_error(body: &Value) -> Option<i64> {
    match &body["agentid"] {
        Value::Null => return Some(41011),
        // An integer, and this corp's app.
        id if id.as_i64() != Some(AGENT_ID) => return Some(40056),
        _ => {}
    }
    let kind_error = match body["msgtype"].as_str() {
        Some(kind @ ("text" | "markdown")) => text_error(&body[kind]["content"]),
        Some(kind @ ("image" | "voice" | "video" | "file")) => {
            (!body[kind]["media_id"].is_string()).then_some(40007)
        }
        Some(kind @ ("textcard" | "news" | "mpnews")) => (!body[kind].is_object()).then_some(40008),
        _ => Some(40008),
    };
    if kind_error.is_some() {
        return kind_error;
    }
    let has_recipient = ["touser", "toparty", "totag"]
        .iter()
        .any(|k| body[*k].as_str().is_some_and(|v| !v.trim().is_empty()));
    (!has_recipient).then_some(81013)
}

async fn wecom_send(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Json<Value> {
    const ENDPOINT: &str = "/cgi-bin/message/send";
    if let Some(e) = check_call(&fake, ENDPOINT, Host::Wecom, q.access_token.as_deref()) {
        return e;
    }
    let mut i = fake.inner.lock().unwrap();
    if let Some(code) = i.next_wecom_send_errors.pop_front() {
        return wecom_error(code);
    }
    if let Some(code) = app_message_error(&body) {
        return wecom_error(code);
    }
    i.outbox.push((ENDPOINT, body));
    let msgid = i.next_msgid("FAKE_WECOM_MSGID_");
    Json(json!({ "errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": msgid }))
}
