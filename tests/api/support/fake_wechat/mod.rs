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
//! Both: `POST /cgi-bin/media/upload` (multipart), see [`media`].
//!
//! Tests can queue errcodes for the next token or API answers (or for the
//! next custom sends, app messages, kf syncs or kf sends only), delay token
//! answers, change the lifetime, expire a token, read call counts and the
//! tokens each call carried, read the accepted bodies in the order they
//! arrived, and hold sync_msg calls at a gate to stand for a node that dies
//! mid-pull.
//!
//! This module boots the server and holds what both hosts share: the
//! request log, token lifetimes and scripted failures. The endpoints live
//! per platform in [`official`], [`wecom`] and [`kf`].

mod kf;
mod media;
mod official;
mod wecom;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::{Json, Router};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::watch;

pub use kf::{kf_event, kf_text};
pub use official::{APP_ID, APP_SECRET};
pub use wecom::{AGENT_ID, CORP_ID, CORP_SECRET, KF_SECRET};

use official::error;
use wecom::wecom_error;

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
    kf: kf::Kf,
    media: media::Media,
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
            kf: kf::Kf::default(),
            media: media::Media::default(),
        }
    }
}

impl Inner {
    fn remaining(&self, token: &str, now: Instant) -> Option<Duration> {
        self.valid
            .get(token)
            .and_then(|at| at.checked_duration_since(now))
    }
}

impl FakeWechat {
    pub async fn start() -> FakeWechat {
        let state = Arc::new(Fake::default());
        let router = Router::new()
            .merge(official::routes())
            .merge(wecom::routes())
            .merge(kf::routes())
            .merge(media::routes())
            .with_state(state.clone());
        let (addr, server) = crate::support::serve_local(router).await;
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
