//! A local stand-in for `api.weixin.qq.com` (Official Account) and
//! `qyapi.weixin.qq.com` (WeCom), faithful where wxgate depends on it. Both
//! hosts are served by one server: point either base URL at [`FakeWechat::base_url`].
//!
//! Official Account:
//!
//! - `GET /cgi-bin/token` checks grant_type/appid/secret and issues a new
//!   token every time; the previous one keeps working only for a short overlap
//!   (scaled down from WeChat's five minutes).
//! - `POST /cgi-bin/stable_token` (JSON) returns the current token while it
//!   has more than the pre-rotation window left, else issues a new one (the
//!   old one living out its life); `force_refresh: true` issues a new one and
//!   invalidates the old at once.
//! - `getcallbackip`, `message/custom/send` and `message/custom/typing` check
//!   the access token like the real API: missing → 41001, unknown → 40001,
//!   expired → 42001.
//!
//! WeCom (企业微信) and 微信客服:
//!
//! - `GET /cgi-bin/gettoken?corpid=&corpsecret=` knows [`CORP_SECRET`] (the
//!   self-built app [`AGENT_ID`]) and [`KF_SECRET`] (微信客服). WeCom keeps one
//!   token per secret: asking again while it is valid returns the same token
//!   with the seconds it has left; a new one comes once it has expired. Wrong
//!   corpid → 40013, wrong secret → 40001, missing → 41002 / 41004.
//!   [`FakeWechat::token_secret`] tells which secret a token was issued for.
//! - The WeCom endpoints check the access token as WeCom does: missing →
//!   41001, unknown (an Official Account token too) → 40014, expired → 42001.
//!   The Official Account endpoints refuse WeCom tokens with 40001.
//! - `POST /cgi-bin/message/send` (app message): a numeric `agentid` equal to
//!   [`AGENT_ID`] (missing → 41011, other → 40056), a known `msgtype` (40008),
//!   text content present (44004) and at most 2048 bytes (45002), some
//!   recipient (81013). Answers `invaliduser: ""` and a fresh `msgid`.
//! - `POST /cgi-bin/kf/sync_msg`: one message queue per `open_kfid` (missing →
//!   95000), filled by [`FakeWechat::kf_push`]. A `token` must be one of
//!   [`FakeWechat::kf_notification_token`]'s, unexpired (95007 otherwise);
//!   `limit` 1..=1000, default 1000; `voice_format` 0 or 1; `cursor` opaque,
//!   absent or `""` for the start, any other unknown value → 40058. A page is
//!   at most min(limit, page size) messages, with `next_cursor` and `has_more`
//!   0/1; cursors are stateless, so a cursor can be replayed.
//! - `POST /cgi-bin/kf/send_msg`: `touser` (40096), `open_kfid` (95000),
//!   optional `msgid` of at most 32 bytes of `[0-9a-zA-Z_-]` (40058), text
//!   content present (44004) and at most 2048 bytes (45002). Answers the given
//!   `msgid` or a fresh one. The same `msgid` twice is recorded twice: WeCom
//!   documents the echo, not deduplication.
//!
//! Tests can queue errcodes for the next token or API answers (or for the
//! next custom sends, app messages, kf syncs or kf sends only), delay token
//! answers, change the lifetime, expire a token, read call counts and the
//! tokens each call carried, read the accepted bodies in the order they
//! arrived, and hold sync_msg calls at a gate to stand for a node that dies
//! mid-pull.

use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::watch;

pub const APP_ID: &str = "wxfake0123456789";
pub const APP_SECRET: &str = "fake-app-secret-0123456789abcdef";

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

pub struct FakeWechat {
    addr: SocketAddr,
    state: Arc<Fake>,
    server: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Fake {
    inner: Mutex<Inner>,
    token_requests: AtomicU64,
    forced_requests: AtomicU64,
    /// Bumped by `release_syncs`; a held sync_msg call waits for a newer value.
    release: watch::Sender<u64>,
    /// sync_msg calls waiting at the gate right now.
    held: AtomicUsize,
}

struct Inner {
    lifetime: Duration,
    delay: Duration,
    next_token_errors: VecDeque<i64>,
    next_api_errors: VecDeque<i64>,
    next_send_errors: VecDeque<i64>,
    next_wecom_send_errors: VecDeque<i64>,
    /// Accepted sends (custom, WeCom app, kf) and typing calls: (endpoint, body), in order.
    outbox: Vec<(&'static str, Value)>,
    /// token → when it stops working.
    valid: HashMap<String, Instant>,
    /// The token the stable endpoint hands out.
    current: Option<String>,
    issued: u64,
    /// endpoint → calls.
    api_calls: HashMap<&'static str, u64>,
    /// (endpoint, access_token as sent) of every API call, in order.
    call_tokens: Vec<(&'static str, Option<String>)>,
    /// WeCom token → the secret it was issued for (Official Account tokens are not here).
    token_secrets: HashMap<String, &'static str>,
    /// WeCom secret → its current token.
    wecom_current: HashMap<&'static str, String>,
    /// msgids handed out by message/send and kf/send_msg.
    msgids: u64,
    kf: Kf,
}

/// 微信客服 state.
struct Kf {
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

impl Default for Inner {
    fn default() -> Self {
        Inner {
            lifetime: Duration::from_secs(7200),
            delay: Duration::ZERO,
            next_token_errors: VecDeque::new(),
            next_api_errors: VecDeque::new(),
            next_send_errors: VecDeque::new(),
            next_wecom_send_errors: VecDeque::new(),
            outbox: Vec::new(),
            valid: HashMap::new(),
            current: None,
            issued: 0,
            api_calls: HashMap::new(),
            call_tokens: Vec::new(),
            token_secrets: HashMap::new(),
            wecom_current: HashMap::new(),
            msgids: 0,
            kf: Kf::default(),
        }
    }
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

    /// A WeCom token for `secret`, which becomes that secret's current one.
    fn mint_wecom(&mut self, secret: &'static str, now: Instant) -> String {
        self.issued += 1;
        let token = format!("FAKE_WECOM_TOKEN_{:04}_{}", self.issued, "w".repeat(100));
        self.valid.insert(token.clone(), now + self.lifetime);
        self.token_secrets.insert(token.clone(), secret);
        self.wecom_current.insert(secret, token.clone());
        token
    }

    fn next_msgid(&mut self, prefix: &str) -> String {
        self.msgids += 1;
        format!("{prefix}{:08}", self.msgids)
    }

    fn remaining(&self, token: &str, now: Instant) -> Option<Duration> {
        self.valid
            .get(token)
            .and_then(|at| at.checked_duration_since(now))
    }
}

fn error(code: i64) -> Json<Value> {
    let message = match code {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40125 => "invalid appsecret",
        40164 => "invalid ip 203.0.113.7 ipv6 ::ffff:203.0.113.7, not in whitelist",
        41001 => "access_token missing",
        42001 => "access_token expired",
        45009 => "reach max api daily quota limit",
        45015 => "response out of time limit or subscription is canceled",
        45047 => "out of response count limit",
        45072 => "command field invalid",
        _ => "error",
    };
    Json(json!({ "errcode": code, "errmsg": format!("{message} rid: 0000-fake") }))
}

/// A WeCom error answer, errmsg in WeCom's shape (hint, ip, link to the code).
fn wecom_error(code: i64) -> Json<Value> {
    let message = match code {
        -1 => "system busy",
        40001 => "invalid credential",
        40007 => "invalid media_id",
        40008 => "invalid message type",
        40013 => "invalid corpid",
        40014 => "invalid access_token",
        40056 => "invalid agentid",
        40058 => "invalid parameter",
        40096 => "invalid external userid",
        41001 => "access_token missing",
        41002 => "corpid missing",
        41004 => "corpsecret missing",
        41011 => "agentid missing",
        42001 => "access_token expired",
        44004 => "empty content",
        45002 => "content size out of limit",
        45009 => "api freq out of limit",
        45033 => "api concurrent out of limit",
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

fn wecom_fail(code: i64, message: &str) -> Json<Value> {
    Json(json!({
        "errcode": code,
        "errmsg": format!("{message}, hint: [0000-fake], from ip: 127.0.0.1, more info at https://open.work.weixin.qq.com/devtool/query?e={code}"),
    }))
}

impl FakeWechat {
    pub async fn start() -> FakeWechat {
        let state = Arc::new(Fake::default());
        let router = Router::new()
            .route("/cgi-bin/token", get(classic_token))
            .route("/cgi-bin/stable_token", post(stable_token))
            .route("/cgi-bin/getcallbackip", get(callback_ip))
            .route("/cgi-bin/message/custom/send", post(custom_send))
            .route("/cgi-bin/message/custom/typing", post(typing))
            .route("/cgi-bin/gettoken", get(wecom_token))
            .route("/cgi-bin/message/send", post(wecom_send))
            .route("/cgi-bin/kf/sync_msg", post(kf_sync))
            .route("/cgi-bin/kf/send_msg", post(kf_send))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeWechat {
            addr,
            state,
            server,
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        f(&mut self.state.inner.lock().unwrap())
    }

    /// Token requests of either kind, failed ones included.
    pub fn token_requests(&self) -> u64 {
        self.state.token_requests.load(Ordering::SeqCst)
    }

    /// Stable token requests with `force_refresh: true`.
    pub fn forced_requests(&self) -> u64 {
        self.state.forced_requests.load(Ordering::SeqCst)
    }

    /// Calls to an API endpoint (not the token endpoints), e.g. `custom/send`.
    pub fn api_calls(&self, endpoint: &str) -> u64 {
        self.with(|i| {
            i.api_calls
                .iter()
                .filter(|(k, _)| k.ends_with(endpoint))
                .map(|(_, v)| v)
                .sum()
        })
    }

    /// The next token requests answer these errcodes, in order.
    pub fn fail_next_token_requests(&self, codes: &[i64]) {
        self.with(|i| i.next_token_errors.extend(codes));
    }

    /// The next API calls answer these errcodes, in order.
    pub fn fail_next_api_calls(&self, codes: &[i64]) {
        self.with(|i| i.next_api_errors.extend(codes));
    }

    /// The next custom sends (only) answer these errcodes, in order.
    pub fn fail_next_sends(&self, codes: &[i64]) {
        self.with(|i| i.next_send_errors.extend(codes));
    }

    /// Bodies of the accepted custom sends, in order.
    pub fn custom_sends(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/message/custom/send")
    }

    /// Bodies of the accepted typing calls, in order.
    pub fn typing_calls(&self) -> Vec<Value> {
        self.outbox_of("/cgi-bin/message/custom/typing")
    }

    /// Endpoints of the accepted sends (custom, WeCom app, kf) and typing calls, in order.
    pub fn outbox_order(&self) -> Vec<&'static str> {
        self.with(|i| i.outbox.iter().map(|(e, _)| *e).collect())
    }

    fn outbox_of(&self, endpoint: &str) -> Vec<Value> {
        self.with(|i| {
            i.outbox
                .iter()
                .filter(|(e, _)| *e == endpoint)
                .map(|(_, b)| b.clone())
                .collect()
        })
    }

    /// Token answers arrive after this long.
    pub fn set_delay(&self, delay: Duration) {
        self.with(|i| i.delay = delay);
    }

    /// Tokens issued from now on live this long.
    pub fn set_lifetime(&self, lifetime: Duration) {
        self.with(|i| i.lifetime = lifetime);
    }

    /// Makes `token` expired, as if its two hours were up.
    pub fn expire(&self, token: &str) {
        self.with(|i| {
            if let Some(at) = i.valid.get_mut(token) {
                *at = Instant::now();
            }
        });
    }

    /// The token the stable endpoint would hand out now.
    pub fn current_token(&self) -> Option<String> {
        self.with(|i| i.current.clone())
    }

    /// The access tokens the calls to an API endpoint carried, in order
    /// (failed calls included; an absent token is an empty string).
    pub fn api_call_tokens(&self, endpoint: &str) -> Vec<String> {
        self.with(|i| {
            i.call_tokens
                .iter()
                .filter(|(e, _)| e.ends_with(endpoint))
                .map(|(_, t)| t.clone().unwrap_or_default())
                .collect()
        })
    }

    // ---- WeCom ----------------------------------------------------------

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

    // ---- 微信客服 ---------------------------------------------------------

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

impl Drop for FakeWechat {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Counts a token request of any kind, waits the set delay, and returns the
/// scripted failure, if any.
async fn token_scripted(fake: &Fake) -> Option<i64> {
    fake.token_requests.fetch_add(1, Ordering::SeqCst);
    let (delay, scripted) = {
        let mut i = fake.inner.lock().unwrap();
        (i.delay, i.next_token_errors.pop_front())
    };
    tokio::time::sleep(delay).await;
    scripted
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

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// Which API an endpoint belongs to: the two check tokens differently.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Host {
    /// api.weixin.qq.com
    Oa,
    /// qyapi.weixin.qq.com
    Wecom,
}

/// Counts the call and remembers the token it carried.
fn count_call(i: &mut Inner, endpoint: &'static str, token: Option<&str>) {
    *i.api_calls.entry(endpoint).or_default() += 1;
    i.call_tokens.push((endpoint, token.map(str::to_owned)));
}

/// Applies scripted failures, then validates the token as `host` does: an
/// unknown token is 40001 for the Official Account API and 40014 for WeCom,
/// and neither accepts the other's tokens.
fn authorize(i: &mut Inner, host: Host, token: Option<&str>) -> Option<Json<Value>> {
    let answer = |code| match host {
        Host::Oa => error(code),
        Host::Wecom => wecom_error(code),
    };
    if let Some(code) = i.next_api_errors.pop_front() {
        return Some(answer(code));
    }
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(answer(41001));
    };
    let ours = i.token_secrets.contains_key(token) == (host == Host::Wecom);
    match i.valid.get(token) {
        Some(at) if ours && *at <= Instant::now() => Some(answer(42001)),
        Some(_) if ours => None,
        _ => Some(answer(match host {
            Host::Oa => 40001,
            Host::Wecom => 40014,
        })),
    }
}

/// Counts the call, applies scripted failures, validates the token.
fn check_call(
    fake: &Fake,
    endpoint: &'static str,
    host: Host,
    token: Option<&str>,
) -> Option<Json<Value>> {
    let mut i = fake.inner.lock().unwrap();
    count_call(&mut i, endpoint, token);
    authorize(&mut i, host, token)
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

// ---- WeCom --------------------------------------------------------------

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
fn text_error(content: &Value) -> Option<i64> {
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

// ---- 微信客服 -------------------------------------------------------------

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
