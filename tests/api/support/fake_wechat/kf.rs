//! 微信客服 on `qyapi.weixin.qq.com`: sync_msg pages and cursors, the
//! callback Token, the gate that holds a pull, and send_msg.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::post;
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::wecom::{text_error, wecom_error, wecom_fail};
use super::{authorize, check_call, count_call, Fake, FakeWechat, Host, TokenQuery};

pub(super) fn routes() -> Router<Arc<Fake>> {
    Router::new()
        .route("/cgi-bin/kf/sync_msg", post(kf_sync))
        .route("/cgi-bin/kf/send_msg", post(kf_send))
}

/// 微信客服 state.
pub(super) struct Kf {
    /// open_kfid → every message ever pushed, in order; cursors index into it.
    queues: HashMap<String, Vec<Value>>,
    page_size: usize,
    token_lifetime: Duration,
    /// Callback Token → when it stops working.
    tokens: HashMap<String, Instant>,
    issued_tokens: u64,
    /// Bodies of every sync_msg call, in order.
    sync_bodies: Vec<Value>,
    next_sync_errors: VecDeque<i64>,
    next_send_errors: VecDeque<i64>,
    hold: Option<Hold>,
}

/// `hold_syncs_after(pass)`: calls after the first `pass` wait for a release.
struct Hold {
    pass: u64,
    seen: u64,
}

impl Default for Kf {
    fn default() -> Self {
        Kf {
            queues: HashMap::new(),
            page_size: 1000,
            // The callback Token lives 10 minutes.
            token_lifetime: Duration::from_secs(600),
            tokens: HashMap::new(),
            issued_tokens: 0,
            sync_bodies: Vec::new(),
            next_sync_errors: VecDeque::new(),
            next_send_errors: VecDeque::new(),
            hold: None,
        }
    }
}

impl FakeWechat {
    /// Appends sync_msg message objects (see [`kf_text`], [`kf_event`]) to the
    /// queue of `open_kfid`.
    pub fn kf_push(&self, open_kfid: &str, msgs: Vec<Value>) {
        self.with(|i| {
            i.kf.queues
                .entry(open_kfid.to_owned())
                .or_default()
                .extend(msgs)
        });
    }

    /// A callback Token, as a `kf_msg_or_event` notification for `open_kfid`
    /// carries; sync_msg accepts it until it expires (10 minutes unless
    /// [`FakeWechat::set_kf_token_lifetime`] says otherwise).
    pub fn kf_notification_token(&self, open_kfid: &str) -> String {
        self.with(|i| {
            i.kf.issued_tokens += 1;
            let mut token = format!(
                "ENC{:04}{}",
                i.kf.issued_tokens,
                URL_SAFE_NO_PAD.encode(open_kfid)
            );
            // The real Token is at most 128 bytes.
            token.truncate(128);
            let expires = Instant::now() + i.kf.token_lifetime;
            i.kf.tokens.insert(token.clone(), expires);
            token
        })
    }

    /// Callback Tokens issued from now on live this long.
    pub fn set_kf_token_lifetime(&self, lifetime: Duration) {
        self.with(|i| i.kf.token_lifetime = lifetime);
    }

    /// Makes a callback Token expired, as if its 10 minutes were up.
    pub fn expire_kf_token(&self, token: &str) {
        self.with(|i| {
            if let Some(at) = i.kf.tokens.get_mut(token) {
                *at = Instant::now();
            }
        });
    }

    /// sync_msg returns at most `n` messages a page, whatever the `limit`
    /// (WeCom may return fewer than asked; `has_more` says whether to go on).
    pub fn set_kf_page_size(&self, n: usize) {
        assert!(n > 0, "a page holds at least one message");
        self.with(|i| i.kf.page_size = n);
    }

    /// (cursor, open_kfid) of every sync_msg call, as sent, failed ones included.
    pub fn kf_sync_calls(&self) -> Vec<(Option<String>, String)> {
        self.with(|i| {
            i.kf.sync_bodies
                .iter()
                .map(|b| {
                    let cursor = b["cursor"].as_str().map(str::to_owned);
                    (
                        cursor,
                        b["open_kfid"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
    }

    /// The bodies of every sync_msg call (to check `token`, `limit`, …).
    pub fn kf_sync_requests(&self) -> Vec<Value> {
        self.with(|i| i.kf.sync_bodies.clone())
    }

    /// The next sync_msg calls answer these errcodes, in order.
    pub fn fail_next_syncs(&self, codes: &[i64]) {
        self.with(|i| i.kf.next_sync_errors.extend(codes));
    }

    /// Every sync_msg call after the next `n` (counted from now) waits until
    /// [`FakeWechat::release_syncs`]; this stands for a node that dies
    /// mid-pull. A client may give up on a held call: that holds nothing else.
    pub fn hold_syncs_after(&self, n: u64) {
        self.with(|i| i.kf.hold = Some(Hold { pass: n, seen: 0 }));
    }

    /// Lets the held sync_msg calls go on and stops holding new ones.
    pub fn release_syncs(&self) {
        self.with(|i| {
            i.kf.hold = None;
            // Under the same lock as the hold decision: no call misses it.
            self.state.release.send_modify(|g| *g += 1);
        });
    }

    /// sync_msg calls waiting at the gate right now.
    pub fn held_syncs(&self) -> usize {
        self.state.held.load(Ordering::SeqCst)
    }

    /// The next kf send_msg calls (only) answer these errcodes, in order.
    pub fn fail_next_kf_sends(&self, codes: &[i64]) {
        self.with(|i| i.kf.next_send_errors.extend(codes));
    }

    /// Bodies of the accepted kf send_msg calls, in order.
    pub fn kf_sends(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/kf/send_msg")
    }
}

/// A customer's text message as sync_msg returns it (origin 3).
pub fn kf_text(
    msgid: &str,
    external_userid: &str,
    open_kfid: &str,
    send_time: i64,
    content: &str,
) -> Value {
    json!({
        "msgid": msgid,
        "open_kfid": open_kfid,
        "external_userid": external_userid,
        "send_time": send_time,
        "origin": 3,
        "msgtype": "text",
        "text": { "content": content },
    })
}

/// The customer entering the session (origin 4, `enter_session`). As in
/// WeCom's samples, `open_kfid` and `external_userid` are inside `event`
/// only, not at the top level.
pub fn kf_event(msgid: &str, external_userid: &str, open_kfid: &str, send_time: i64) -> Value {
    json!({
        "msgid": msgid,
        "send_time": send_time,
        "origin": 4,
        "msgtype": "event",
        "event": {
            "event_type": "enter_session",
            "open_kfid": open_kfid,
            "external_userid": external_userid,
            "scene": "",
            "welcome_code": format!("WELCOME_{msgid}"),
        },
    })
}

/// Ties a cursor to its open_kfid, so one account's cursor fails on another.
fn kf_tag(open_kfid: &str) -> u64 {
    let mut h = DefaultHasher::new();
    open_kfid.hash(&mut h);
    h.finish()
}

fn encode_cursor(open_kfid: &str, position: usize) -> String {
    URL_SAFE_NO_PAD.encode(format!("{position}.{:016x}", kf_tag(open_kfid)))
}

fn decode_cursor(open_kfid: &str, cursor: &str) -> Option<usize> {
    let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(cursor).ok()?).ok()?;
    let (position, tag) = raw.split_once('.')?;
    (tag == format!("{:016x}", kf_tag(open_kfid)))
        .then(|| position.parse().ok())
        .flatten()
}

/// Counts a sync_msg call waiting at the gate, for as long as it waits.
struct Held<'a>(&'a AtomicUsize);

impl<'a> Held<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Held(count)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn kf_sync(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Json<Value> {
    const ENDPOINT: &str = "/cgi-bin/kf/sync_msg";
    let token = q.access_token.as_deref();
    // Record the call, and decide under the lock whether it waits at the gate.
    let wait_past = {
        let mut i = fake.inner.lock().unwrap();
        count_call(&mut i, ENDPOINT, token);
        i.kf.sync_bodies.push(body.clone());
        i.kf.hold.as_mut().and_then(|h| {
            h.seen += 1;
            (h.seen > h.pass).then(|| *fake.release.borrow())
        })
    };
    if let Some(generation) = wait_past {
        // If the client gives up, hyper may drop this future: the guard still
        // counts down, and nothing else waits on this call.
        let _held = Held::new(&fake.held);
        let mut release = fake.release.subscribe();
        let _ = release.wait_for(|g| *g > generation).await;
    }
    let mut i = fake.inner.lock().unwrap();
    if let Some(e) = authorize(&mut i, Host::Wecom, token) {
        return e;
    }
    if let Some(code) = i.kf.next_sync_errors.pop_front() {
        return wecom_error(code);
    }
    sync_page(&i.kf, &body).unwrap_or_else(|e| e)
}

/// One sync_msg answer: the page after the cursor, or WeCom's error.
fn sync_page(kf: &Kf, body: &Value) -> Result<Json<Value>, Json<Value>> {
    let open_kfid = body["open_kfid"]
        .as_str()
        .filter(|k| !k.is_empty())
        .ok_or_else(|| wecom_error(95000))?;
    if !body["token"].is_null() {
        let valid = body["token"]
            .as_str()
            .and_then(|t| kf.tokens.get(t))
            .is_some_and(|at| *at > Instant::now());
        if !valid {
            return Err(wecom_error(95007));
        }
    }
    let limit = match &body["limit"] {
        Value::Null => 1000,
        v => v
            .as_u64()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| wecom_fail(40058, "invalid limit"))? as usize,
    };
    if !(body["voice_format"].is_null() || matches!(body["voice_format"].as_u64(), Some(0 | 1))) {
        return Err(wecom_fail(40058, "invalid voice_format"));
    }
    let queue = kf.queues.get(open_kfid).map(Vec::as_slice).unwrap_or(&[]);
    let start = match &body["cursor"] {
        // WeCom starts from the oldest message when the cursor is absent or empty.
        Value::Null => 0,
        Value::String(c) if c.is_empty() => 0,
        Value::String(c) => decode_cursor(open_kfid, c)
            .filter(|p| *p <= queue.len())
            .ok_or_else(|| wecom_fail(40058, "invalid cursor"))?,
        _ => return Err(wecom_fail(40058, "invalid cursor")),
    };
    let end = queue.len().min(start + limit.min(kf.page_size));
    Ok(Json(json!({
        "errcode": 0,
        "errmsg": "ok",
        "next_cursor": encode_cursor(open_kfid, end),
        "has_more": u8::from(end < queue.len()),
        "msg_list": &queue[start..end],
    })))
}

/// The errcode WeCom answers to a malformed kf message, if any.
fn kf_message_error(body: &Value) -> Option<Json<Value>> {
    let present = |k: &str| body[k].as_str().is_some_and(|v| !v.is_empty());
    if !present("touser") {
        return Some(wecom_error(40096));
    }
    if !present("open_kfid") {
        return Some(wecom_error(95000));
    }
    match &body["msgid"] {
        Value::Null => {}
        Value::String(id) if id.len() > 32 => {
            return Some(wecom_fail(40058, "msgid exceed max length"))
        }
        Value::String(id)
            if id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {}
        _ => return Some(wecom_fail(40058, "invalid msgid")),
    }
    let code = match body["msgtype"].as_str() {
        Some("text") => text_error(&body["text"]["content"]),
        Some(kind @ ("image" | "voice" | "video" | "file")) => {
            (!body[kind]["media_id"].is_string()).then_some(40007)
        }
        Some(kind @ ("link" | "miniprogram" | "msgmenu" | "location" | "business_card")) => {
            (!body[kind].is_object()).then_some(40008)
        }
        _ => Some(40008),
    };
    code.map(wecom_error)
}

async fn kf_send(
    State(fake): State<Arc<Fake>>,
    Query(q): Query<TokenQuery>,
    Json(body): Json<Value>,
) -> Json<Value> {
    const ENDPOINT: &str = "/cgi-bin/kf/send_msg";
    if let Some(e) = check_call(&fake, ENDPOINT, Host::Wecom, q.access_token.as_deref()) {
        return e;
    }
    let mut i = fake.inner.lock().unwrap();
    if let Some(code) = i.kf.next_send_errors.pop_front() {
        return wecom_error(code);
    }
    if let Some(e) = kf_message_error(&body) {
        return e;
    }
    let msgid = match body["msgid"].as_str() {
        Some(id) => id.to_owned(),
        None => i.next_msgid("fake_kf_msgid_"),
    };
    i.outbox.push((ENDPOINT, body));
    Json(json!({ "errcode": 0, "errmsg": "ok", "msgid": msgid }))
}
