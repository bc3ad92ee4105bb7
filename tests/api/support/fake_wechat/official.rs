//! `api.weixin.qq.com`: the two token endpoints, the callback IP list,
//! custom messages and typing.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{check_call, token_scripted, Fake, FakeWechat, Host, Inner, TokenQuery};

pub const APP_ID: &str = "wxfake0123456789";
pub const APP_SECRET: &str = "fake-app-secret-0123456789abcdef";

pub(super) fn routes() -> Router<Arc<Fake>> {
    Router::new()
        .route("/cgi-bin/token", get(classic_token))
        .route("/cgi-bin/stable_token", post(stable_token))
        .route("/cgi-bin/getcallbackip", get(callback_ip))
        .route("/cgi-bin/message/custom/send", post(custom_send))
        .route("/cgi-bin/message/custom/typing", post(typing))
}

impl Inner {
    /// WeChat pre-rotates 300 s before expiry of a 7200 s token; scaled here.
    fn pre_rotation(&self) -> Duration {
        (self.lifetime / 24).max(Duration::from_millis(500))
    }

    /// How long a classic token keeps working once a newer one is issued:
    /// about five minutes for real; here at least 2 s, because token
    /// managers schedule in whole seconds of the Unix clock.
    fn overlap(&self) -> Duration {
        (self.lifetime / 24).max(Duration::from_secs(2))
    }

    fn mint(&mut self, now: Instant) -> String {
        self.issued += 1;
        let token = format!("FAKE_TOKEN_{:04}_{}", self.issued, "x".repeat(100));
        self.valid.insert(token.clone(), now + self.lifetime);
        self.current = Some(token.clone());
        token
    }
}

pub(super) fn error(code: i64) -> Json<Value> {
    let message = match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40004 => "invalid media type",
        40006 => "invalid meida size",
        40009 => "invalid image size",
        40010 => "invalid voice size",
        40011 => "invalid video size",
        40012 => "invalid thumb size",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40125 => "invalid appsecret",
        40164 => "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
        41001 => "access_token missing",
        41005 => "media data missing",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        45015 => "response out of time limit or subscription is canceled",
        45047 => "out of response count limit",
        45072 => "command field invalid",
        48001 => "api unauthorized",
        _ => "error",
    };
    Json(json!({ "errcode": code, "errmsg": format!("{message} rid: 0000-fake") }))
}

impl FakeWechat {
    /// Stable token requests with `force_refresh: true`.
    pub fn forced_requests(&self) -> u64 {
        self.state.forced_requests.load(Ordering::SeqCst)
    }

    /// The next custom sends (only) answer these errcodes, in order.
    pub fn fail_next_sends(&self, codes: &[i64]) {
        self.with(|i| i.next_send_errors.extend(codes));
    }

    /// Bodies of the accepted custom sends, in order.
    pub fn custom_sends(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/message/custom/send")
    }

    /// The texts of the accepted custom sends, in order (empty for other kinds).
    pub fn sent_texts(&self) -> Vec<String> {
        self.custom_sends()
            .iter()
            .map(|b| b["text"]["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// Bodies of the accepted typing calls, in order.
    pub fn typing_calls(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/message/custom/typing")
    }

    /// The token the stable endpoint would hand out now.
    pub fn current_token(&self) -> Option<String> {
        self.with(|i| i.current.clone())
    }
}

/// Common checks and scripted failures of both Official Account token endpoints.
async fn token_preamble(
    fake: &Fake,
    grant_type: &str,
    appid: &str,
    bad_secret: Option<i64>,
) -> Option<Json<Value>> {
    if let Some(code) = token_scripted(fake).await {
        return Some(error(code));
    }
    if grant_type != "client_credential" {
        return Some(error(40002));
    }
    if appid != APP_ID {
        return Some(error(40013));
    }
    bad_secret.map(error)
}

#[derive(Deserialize)]
struct ClassicQuery {
    grant_type: Option<String>,
    appid: Option<String>,
    secret: Option<String>,
}

async fn classic_token(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<ClassicQuery>,
) -> Json<Value> {
    let bad_secret = (q.secret.as_deref() != Some(APP_SECRET)).then_some(40001);
    if let Some(e) = token_preamble(
        &fake,
        q.grant_type.as_deref().unwrap_or(""),
        q.appid.as_deref().unwrap_or(""),
        bad_secret,
    )
    .await
    {
        return e;
    }
    let mut i = fake.inner.lock().unwrap();
    let now = Instant::now();
    // The previous token keeps working for a short overlap only.
    let overlap = now + i.overlap();
    if let Some(old) = i.current.clone() {
        if let Some(at) = i.valid.get_mut(&old) {
            *at = (*at).min(overlap);
        }
    }
    let token = i.mint(now);
    let lifetime = i.lifetime.as_secs();
    Json(json!({ "access_token": token, "expires_in": lifetime }))
}

#[derive(Deserialize)]
struct StableBody {
    grant_type: String,
    appid: String,
    secret: String,
    #[serde(default)]
    force_refresh: bool,
}

async fn stable_token(
    State(fake): State<Arc<Fake>>,
    body: Option<Json<StableBody>>,
) -> Json<Value> {
    let Some(Json(body)) = body else {
        // The real endpoint accepts JSON only.
        fake.token_requests.fetch_add(1, Ordering::SeqCst);
        return error(47001);
    };
    let bad_secret = (body.secret != APP_SECRET).then_some(40125);
    if let Some(e) = token_preamble(&fake, &body.grant_type, &body.appid, bad_secret).await {
        return e;
    }
    if body.force_refresh {
        fake.forced_requests.fetch_add(1, Ordering::SeqCst);
    }
    let mut i = fake.inner.lock().unwrap();
    let now = Instant::now();
    if body.force_refresh {
        if let Some(old) = i.current.take() {
            i.valid.remove(&old);
        }
    }
    let reuse = i
        .current
        .clone()
        .and_then(|t| i.remaining(&t, now).map(|left| (t, left)))
        .filter(|(_, left)| *left > i.pre_rotation());
    let (token, left) = match reuse {
        Some(pair) => pair,
        None => {
            let t = i.mint(now);
            (t, i.lifetime)
        }
    };
    Json(json!({ "access_token": token, "expires_in": left.as_secs() }))
}

async fn callback_ip(State(fake): State<Arc<Fake>>, Query(q): Query<TokenQuery>) -> Json<Value> {
    if let Some(e) = check_call(
        &fake,
        "/cgi-bin/getcallbackip",
        Host::Oa,
        q.access_token.as_deref(),
    ) {
        return e;
    }
    Json(json!({ "ip_list": ["127.0.0.1", "127.0.0.2", "101.226.103.0/25"] }))
}

async fn custom_send(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Some(e) = check_call(
        &fake,
        "/cgi-bin/message/custom/send",
        Host::Oa,
        q.access_token.as_deref(),
    ) {
        return e;
    }
    if let Some(code) = fake.inner.lock().unwrap().next_send_errors.pop_front() {
        return error(code);
    }
    let valid = body["touser"].as_str().is_some_and(|t| !t.is_empty())
        && match body["msgtype"].as_str() {
            Some("text") => body["text"]["content"].is_string(),
            Some("news") => body["news"]["articles"]
                .as_array()
                .is_some_and(|a| a.len() == 1),
            Some(kind @ ("image" | "voice" | "video")) => body[kind]["media_id"].is_string(),
            Some("music") => body["music"]["thumb_media_id"].is_string(),
            _ => false,
        };
    if !valid {
        return Json(json!({ "errcode": 40008, "errmsg": "invalid message type" }));
    }
    // WeChat's limit on text (45002 content size out of limit).
    if body["text"]["content"]
        .as_str()
        .is_some_and(|t| t.len() > 2048)
    {
        return Json(json!({ "errcode": 45002, "errmsg": "content size out of limit" }));
    }
    let mut i = fake.inner.lock().unwrap();
    i.outbox.push(("/cgi-bin/message/custom/send", body));
    Json(json!({ "errcode": 0, "errmsg": "ok" }))
}

async fn typing(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Json<Value> {
    if let Some(e) = check_call(
        &fake,
        "/cgi-bin/message/custom/typing",
        Host::Oa,
        q.access_token.as_deref(),
    ) {
        return e;
    }
    match body["command"].as_str() {
        Some("Typing" | "CancelTyping") if body["touser"].is_string() => {
            let mut i = fake.inner.lock().unwrap();
            i.outbox.push(("/cgi-bin/message/custom/typing", body));
            Json(json!({ "errcode": 0, "errmsg": "ok" }))
        }
        _ => error(45072),
    }
}
