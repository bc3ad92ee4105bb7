//! WeChat Customer Service (微信客服): pull on notification, answer, move the
//! cursor (PROTOCOL §4 kf notification, §7 `kf/sync_msg`, `kf/send_msg`).
//!
//! Guarantees, across restarts and nodes sharing one store:
//! - one pull per `open_kfid` at a time: a lock in the store (owner-checked,
//!   renewed while the pull runs); another node's notification waits for it
//!   and then pulls from where it stopped;
//! - the cursor is written only after every message of its page is handled,
//!   so a node dying mid-page leaves the page to be pulled again;
//! - each answered message is marked done (by its `msgid`), so pulling a
//!   page again never answers a message twice;
//! - messages older than `max_message_age` (sent while wxgate was down) are
//!   not answered: an automatic answer hours late does more harm than good.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::callback::Dialect;
use crate::domain::{Capabilities, LateSend};
use thiserror::Error;
use tokio::task::JoinHandle;

use crate::clock::Clock;
use crate::config::KfSettings;
use crate::conversation::{Responder, Response};
use crate::domain::{Message, Reply};
use crate::message::xml::push_cdata_element;
use crate::message::MessageError;
use crate::metrics::Metrics;
use crate::platform::send::{message_bodies, send_with_retry, SendPolicy};
use crate::platform::wechat_api::{CallError, KfMessage, KfSendRequest, KfSyncRequest, WechatApi};
use crate::store::{Namespace, Store, StoreError};

/// 微信客服's callback speaks WeCom's dialect (it is a WeCom callback).
pub const DIALECT: Dialect = super::wecom::DIALECT;

/// What 微信客服 can do: nothing in the callback (it only says "there is
/// news"); `kf/send_msg` up to 5 messages within 48 h of the customer's
/// last message, text up to 2048 bytes (PROTOCOL §7).
pub fn capabilities() -> Capabilities {
    Capabilities {
        passive_reply: None,
        push_retries: None,
        late_send: Some(LateSend {
            max_text_bytes: crate::agent::split::MAX_TEXT_BYTES,
            messages_per_turn: Some(5),
            window: Some(Duration::from_secs(48 * 3600)),
        }),
        typing: false,
        media_upload: true,
        streaming: false,
    }
}

/// `origin` of a message written by the customer.
const ORIGIN_CUSTOMER: i64 = 3;
/// How long a message stays marked done: `sync_msg` without a cursor goes
/// back three days.
const DONE_TTL: Duration = Duration::from_secs(4 * 86_400);
/// Upper bound on deciding one answer (upstreams have their own timeouts).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(120);
/// Pages of one pull, at most (a safety net against a cursor that never ends).
const MAX_PAGES: u32 = 10_000;
/// How often a node waiting for another node's pull looks at the lock.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// Why a pull stopped early. The cursor stays where the last fully handled
/// page left it; the next notification resumes from there.
#[derive(Debug, Error)]
pub enum KfError {
    /// The shared store failed.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// `kf/sync_msg` failed.
    #[error("kf/sync_msg: {0}")]
    Sync(CallError),
    /// Another node held the pull lock for longer than its TTL allows.
    #[error("open_kfid {0}: another node's pull did not finish in time")]
    LockBusy(String),
    /// The lock expired under this pull (the store was unreachable for too
    /// long): stopped before moving the cursor.
    #[error("the pull lock was lost; stopped before moving the cursor")]
    LockLost,
}

/// What one pull did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PullReport {
    /// `sync_msg` pages read.
    pub pages: u32,
    /// Customer messages answered (or answered with `success`: nothing to send).
    pub answered: u32,
    /// Too old to answer.
    pub stale: u32,
    /// Not from the customer (system events, servicers' messages).
    pub not_customer: u32,
    /// Already handled by an earlier pull.
    pub duplicate: u32,
    /// Could not be answered (send refused, unsupported reply).
    pub failed: u32,
}

#[derive(Default)]
struct Running {
    /// A notification arrived during the pull: pull again with this token.
    again: Option<String>,
}

/// Pulls and answers one Customer Service account's messages.
pub struct KfPuller {
    api: WechatApi,
    store: Arc<dyn Store>,
    namespace: Namespace,
    responder: Arc<dyn Responder>,
    settings: KfSettings,
    clock: Arc<dyn Clock>,
    metrics: Arc<Metrics>,
    policy: SendPolicy,
    /// Pulls running in this process, by open_kfid.
    running: Mutex<HashMap<String, Running>>,
}

/// What the puller is made of.
pub struct KfParts {
    /// The WeCom API with the Customer Service secret's token.
    pub api: WechatApi,
    /// Where cursors, locks and done marks live.
    pub store: Arc<dyn Store>,
    /// The account's namespace.
    pub namespace: Namespace,
    /// Decides the answers (rules, upstreams).
    pub responder: Arc<dyn Responder>,
    /// `[accounts.kf]`.
    pub settings: KfSettings,
    /// For message ages.
    pub clock: Arc<dyn Clock>,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

impl KfPuller {
    /// Builds a puller.
    pub fn new(parts: KfParts) -> Self {
        KfPuller {
            api: parts.api,
            store: parts.store,
            namespace: parts.namespace,
            responder: parts.responder,
            settings: parts.settings,
            clock: parts.clock,
            metrics: parts.metrics,
            policy: SendPolicy::default(),
            running: Mutex::default(),
        }
    }

    /// Replaces the send retry policy.
    pub fn with_policy(mut self, policy: SendPolicy) -> Self {
        self.policy = policy;
        self
    }

    fn running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A notification arrived: pull in the background. While a pull of this
    /// open_kfid runs in this process, further notifications only ask it to
    /// pull once more when it is done.
    pub fn notify(self: &Arc<Self>, open_kfid: &str, token: &str) {
        {
            let mut running = self.running();
            if let Some(state) = running.get_mut(open_kfid) {
                state.again = Some(token.to_owned());
                return;
            }
            running.insert(open_kfid.to_owned(), Running::default());
        }
        let this = Arc::clone(self);
        let open_kfid = open_kfid.to_owned();
        let token = token.to_owned();
        tokio::spawn(async move { this.run(open_kfid, token).await });
    }

    async fn run(self: Arc<Self>, open_kfid: String, mut token: String) {
        loop {
            match self.pull(&open_kfid, &token).await {
                Ok(report) => tracing::info!(
                    open_kfid = %open_kfid,
                    pages = report.pages,
                    answered = report.answered,
                    stale = report.stale,
                    duplicate = report.duplicate,
                    failed = report.failed,
                    "customer service messages pulled"
                ),
                Err(e) => tracing::warn!(
                    open_kfid = %open_kfid,
                    error = %e,
                    "customer service pull stopped; the next notification resumes from the saved cursor"
                ),
            }
            let mut running = self.running();
            match running.get_mut(&open_kfid).and_then(|s| s.again.take()) {
                Some(next) => token = next,
                None => {
                    running.remove(&open_kfid);
                    return;
                }
            }
        }
    }

    /// One pull of `open_kfid` under the cross-node lock: page after page
    /// until `has_more` is 0. `token` is the notification's `Token`.
    pub async fn pull(&self, open_kfid: &str, token: &str) -> Result<PullReport, KfError> {
        let lock = self.acquire(open_kfid).await?;
        let result = self.pull_locked(open_kfid, token, &lock).await;
        lock.release(self.store.as_ref()).await;
        result
    }

    fn key(&self, open_kfid: &str, what: &str) -> String {
        self.namespace
            .key(&format!("kf:{}:{what}", safe_key(open_kfid)))
    }

    /// Takes the pull lock, waiting while another node holds it.
    async fn acquire(&self, open_kfid: &str) -> Result<PullLock, KfError> {
        let key = self.key(open_kfid, "lock");
        let owner = format!("{:032x}", rand::random::<u128>());
        let ttl = self.settings.lock_ttl;
        // A holder renews its lock, so waiting longer than a TTL (plus a
        // margin) means it is stuck; the lock then expires by itself and a
        // later notification pulls.
        let give_up = tokio::time::Instant::now() + ttl + Duration::from_secs(5);
        loop {
            if self.store.set_nx(&key, owner.as_bytes(), ttl).await? {
                break;
            }
            if tokio::time::Instant::now() >= give_up {
                return Err(KfError::LockBusy(open_kfid.to_owned()));
            }
            tokio::time::sleep(LOCK_POLL).await;
        }
        let lost = Arc::new(AtomicBool::new(false));
        let renew = {
            let store = self.store.clone();
            let key = key.clone();
            let owner = owner.clone();
            let lost = lost.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    match store.compare_and_expire(&key, owner.as_bytes(), ttl).await {
                        Ok(true) => {}
                        Ok(false) => {
                            lost.store(true, Ordering::SeqCst);
                            return;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot renew the pull lock"),
                    }
                }
            })
        };
        Ok(PullLock {
            key,
            owner,
            lost,
            renew,
        })
    }

    async fn pull_locked(
        &self,
        open_kfid: &str,
        token: &str,
        lock: &PullLock,
    ) -> Result<PullReport, KfError> {
        let cursor_key = self.key(open_kfid, "cursor");
        let mut cursor = self
            .store
            .get(&cursor_key)
            .await?
            .and_then(|c| String::from_utf8(c).ok());
        let mut report = PullReport::default();
        while report.pages < MAX_PAGES {
            let request = KfSyncRequest {
                cursor: cursor.clone(),
                token: Some(token.to_owned()),
                limit: self.settings.sync_limit,
                voice_format: 0,
                open_kfid: open_kfid.to_owned(),
            };
            let page = self
                .api
                .kf_sync_msg(&request)
                .await
                .map_err(KfError::Sync)?;
            report.pages += 1;
            for message in &page.msg_list {
                let outcome = self.handle(open_kfid, message).await?;
                self.metrics.kf_message(outcome.label());
                outcome.count(&mut report);
            }
            if lock.lost.load(Ordering::SeqCst) {
                return Err(KfError::LockLost);
            }
            if !page.next_cursor.is_empty() {
                self.store
                    .set(&cursor_key, page.next_cursor.as_bytes(), None)
                    .await?;
                cursor = Some(page.next_cursor);
            }
            if page.has_more != 1 || cursor.is_none() {
                break;
            }
        }
        Ok(report)
    }

    /// Answers one message unless it was answered before. A store failure
    /// stops the pull (unsure whether the message was answered, it is left
    /// for the next pull, and the cursor does not move).
    async fn handle(&self, open_kfid: &str, m: &KfMessage) -> Result<Handled, KfError> {
        if m.origin != ORIGIN_CUSTOMER {
            return Ok(Handled::NotCustomer);
        }
        let done_key = self.key(open_kfid, &format!("done:{}", safe_key(&m.msgid)));
        if self.store.get(&done_key).await?.is_some() {
            return Ok(Handled::Duplicate);
        }
        let outcome = self.answer(m).await;
        // Failed answers are marked too: retrying a refused send later
        // cannot help, and a person can pick the message up.
        if let Err(e) = self.store.set(&done_key, b"1", Some(DONE_TTL)).await {
            tracing::warn!(error = %e, msgid = %m.msgid, "cannot mark a customer service message done");
        }
        Ok(outcome)
    }

    async fn answer(&self, m: &KfMessage) -> Handled {
        let age = self.clock.now_unix().saturating_sub(m.send_time);
        if age > self.settings.max_message_age.as_secs() as i64 {
            tracing::info!(
                msgid = %m.msgid,
                age_secs = age,
                "customer service message too old to answer; left for a person"
            );
            return Handled::Stale;
        }
        let message = match to_message(m) {
            Ok(message) => Arc::new(message),
            Err(e) => {
                tracing::warn!(msgid = %m.msgid, error = %e, "customer service message not understood");
                return Handled::Failed;
            }
        };
        let decide = async {
            match self.responder.respond(&message) {
                Response::Ready(reply) => reply,
                Response::Pending(future) => future.await,
                // No passive answer here: wait for the upstream itself.
                Response::Deferred(deferred) => deferred.future.await,
            }
        };
        let reply = match tokio::time::timeout(ANSWER_TIMEOUT, decide).await {
            Ok(reply) => reply,
            Err(_) => {
                tracing::warn!(msgid = %m.msgid, "no answer decided in time");
                return Handled::Failed;
            }
        };
        let bodies = match message_bodies(&kf_reply(reply), 1, false) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(msgid = %m.msgid, error = %e, "answer cannot be sent to a customer service session");
                return Handled::Failed;
            }
        };
        for (i, body) in bodies.into_iter().enumerate() {
            let request = KfSendRequest {
                touser: m.external_userid.clone(),
                open_kfid: m.open_kfid.clone(),
                msgid: Some(send_msgid(&m.msgid, i)),
                body,
            };
            if let Err((kind, e)) =
                send_with_retry(&self.policy, || self.api.kf_send_msg(&request)).await
            {
                tracing::warn!(msgid = %m.msgid, kind, error = %e, "customer service answer not sent");
                return Handled::Failed;
            }
        }
        Handled::Answered
    }
}

/// What became of one pulled message.
enum Handled {
    Answered,
    Stale,
    NotCustomer,
    Duplicate,
    Failed,
}

impl Handled {
    fn label(&self) -> &'static str {
        match self {
            Handled::Answered => "answered",
            Handled::Stale => "stale",
            Handled::NotCustomer => "not_customer",
            Handled::Duplicate => "duplicate",
            Handled::Failed => "failed",
        }
    }

    fn count(&self, report: &mut PullReport) {
        let field = match self {
            Handled::Answered => &mut report.answered,
            Handled::Stale => &mut report.stale,
            Handled::NotCustomer => &mut report.not_customer,
            Handled::Duplicate => &mut report.duplicate,
            Handled::Failed => &mut report.failed,
        };
        *field += 1;
    }
}

/// The cross-node pull lock of one open_kfid.
struct PullLock {
    key: String,
    owner: String,
    lost: Arc<AtomicBool>,
    renew: JoinHandle<()>,
}

impl PullLock {
    async fn release(self, store: &dyn Store) {
        self.renew.abort();
        if let Err(e) = store
            .compare_and_delete(&self.key, self.owner.as_bytes())
            .await
        {
            tracing::warn!(error = %e, "cannot release the pull lock; it expires by itself");
        }
    }
}

impl Drop for PullLock {
    fn drop(&mut self) {
        self.renew.abort();
    }
}

/// Ids from WeChat as key parts: kept when short and plain, hashed otherwise.
fn safe_key(id: &str) -> String {
    if !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        id.to_owned()
    } else {
        hex::encode(Sha1::digest(id.as_bytes()))
    }
}

/// Our `msgid` for part `part` of the answer to `msgid`: at most 32 bytes of
/// `[0-9a-f_]`, the same on every node and every retry.
fn send_msgid(msgid: &str, part: usize) -> String {
    let digest = hex::encode(Sha1::digest(msgid.as_bytes()));
    format!("{}_{part}", &digest[..28])
}

/// Customer Service sessions take text, media and links, not news cards or
/// music: news become their text.
fn kf_reply(reply: Reply) -> Reply {
    match reply {
        Reply::News { articles } => {
            let content = articles
                .iter()
                .map(|a| {
                    [a.title.as_str(), a.description.as_str(), a.url.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("\n")
                })
                .collect::<Vec<_>>()
                .join("\n\n");
            if content.is_empty() {
                Reply::Success
            } else {
                Reply::Text { content }
            }
        }
        other => other,
    }
}

fn str_at<'a>(m: &'a KfMessage, object: &str, field: &str) -> &'a str {
    m.rest
        .get(object)
        .and_then(|o| o.get(field))
        .and_then(|v| v.as_str())
        .unwrap_or("")
}

fn num_at(m: &KfMessage, object: &str, field: &str) -> String {
    m.rest
        .get(object)
        .and_then(|o| o.get(field))
        .and_then(|v| v.as_f64())
        .map(|v| v.to_string())
        .unwrap_or_default()
}

/// The pulled message in the form the rules and upstreams know: a WeChat
/// XML message from the customer (`FromUserName` = external_userid) to the
/// Customer Service account (`ToUserName` = open_kfid). Types without an
/// Official Account equivalent keep their `msgtype` and become `Unknown`.
fn to_message(m: &KfMessage) -> Result<Message, MessageError> {
    let mut xml = String::with_capacity(256);
    xml.push_str("<xml>");
    push_cdata_element(&mut xml, "ToUserName", &m.open_kfid);
    push_cdata_element(&mut xml, "FromUserName", &m.external_userid);
    push_cdata_element(&mut xml, "CreateTime", &m.send_time.to_string());
    push_cdata_element(&mut xml, "MsgType", &m.msgtype);
    match m.msgtype.as_str() {
        "text" => {
            push_cdata_element(&mut xml, "Content", str_at(m, "text", "content"));
            let menu = str_at(m, "text", "menu_id");
            if !menu.is_empty() {
                push_cdata_element(&mut xml, "bizmsgmenuid", menu);
            }
        }
        "image" | "voice" | "video" | "file" => {
            push_cdata_element(&mut xml, "MediaId", str_at(m, &m.msgtype, "media_id"));
        }
        "location" => {
            push_cdata_element(&mut xml, "Location_X", &num_at(m, "location", "latitude"));
            push_cdata_element(&mut xml, "Location_Y", &num_at(m, "location", "longitude"));
            push_cdata_element(&mut xml, "Label", str_at(m, "location", "address"));
        }
        "link" => {
            push_cdata_element(&mut xml, "Title", str_at(m, "link", "title"));
            push_cdata_element(&mut xml, "Description", str_at(m, "link", "desc"));
            push_cdata_element(&mut xml, "Url", str_at(m, "link", "url"));
        }
        _ => {}
    }
    push_cdata_element(&mut xml, "OpenKfId", &m.open_kfid);
    push_cdata_element(&mut xml, "KfMsgId", &m.msgid);
    xml.push_str("</xml>");
    Message::parse(xml.as_bytes())
}

/// Acknowledges `kf_msg_or_event` at once and starts the pull; every other
/// message goes to the inner responder.
pub struct KfResponder {
    puller: Arc<KfPuller>,
    inner: Arc<dyn Responder>,
}

impl KfResponder {
    /// Wraps `inner`; notifications go to `puller`.
    pub fn new(puller: Arc<KfPuller>, inner: Arc<dyn Responder>) -> Self {
        KfResponder { puller, inner }
    }
}

impl Responder for KfResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        if !message.event_name().eq_ignore_ascii_case("kf_msg_or_event") {
            return self.inner.respond(message);
        }
        let fields = &message.fields;
        let token = fields.child_text("Token").unwrap_or("").trim();
        match fields.child_text("OpenKfId").map(str::trim) {
            Some(open_kfid) if !open_kfid.is_empty() => self.puller.notify(open_kfid, token),
            // Older notifications lack OpenKfId (PROTOCOL §4): nothing to
            // pull by, so say so instead of guessing.
            _ => tracing::warn!(
                "kf_msg_or_event without OpenKfId: cannot tell which Customer Service account to pull"
            ),
        }
        Response::Ready(Reply::Success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn kf(value: serde_json::Value) -> KfMessage {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn pulled_messages_become_wechat_messages() {
        let m = to_message(&kf(json!({
            "msgid": "from_msgid_1", "open_kfid": "wkAJ", "external_userid": "wmX",
            "send_time": 1700000000, "origin": 3, "msgtype": "text",
            "text": {"content": "你好 ]]> <b>", "menu_id": "101"}
        })))
        .unwrap();
        assert_eq!(m.text(), Some("你好 ]]> <b>"));
        assert_eq!((m.from_user.as_str(), m.to_user.as_str()), ("wmX", "wkAJ"));
        assert_eq!(m.create_time, 1700000000);
        assert_eq!(m.fields.child_text("KfMsgId"), Some("from_msgid_1"));

        let loc = to_message(&kf(json!({
            "msgid": "2", "open_kfid": "wk", "external_userid": "wm", "send_time": 1,
            "origin": 3, "msgtype": "location",
            "location": {"latitude": 23.1, "longitude": 113.3, "name": "n", "address": "a"}
        })))
        .unwrap();
        assert_eq!(loc.msg_type, "location");
        let odd = to_message(&kf(json!({
            "msgid": "3", "open_kfid": "wk", "external_userid": "wm", "send_time": 1,
            "origin": 3, "msgtype": "channels_shop_product", "channels_shop_product": {}
        })))
        .unwrap();
        assert_eq!(odd.kind, crate::message::MessageKind::Unknown);
    }

    #[test]
    fn send_ids_are_short_stable_and_distinct() {
        let a = send_msgid("from_msgid_4622416642169452483", 0);
        assert!(a.len() <= 32 && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
        assert_eq!(a, send_msgid("from_msgid_4622416642169452483", 0));
        assert_ne!(a, send_msgid("from_msgid_4622416642169452483", 1));
        assert_ne!(a, send_msgid("from_msgid_4622416642169452484", 0));
        assert_eq!(safe_key("wk_AJ-2"), "wk_AJ-2");
        assert_eq!(safe_key("a:b").len(), 40);
    }

    #[test]
    fn news_become_text_for_customer_service() {
        let reply = kf_reply(Reply::News {
            articles: vec![crate::domain::Article {
                title: "T".into(),
                description: "D".into(),
                pic_url: "P".into(),
                url: "U".into(),
            }],
        });
        assert_eq!(
            reply,
            Reply::Text {
                content: "T\nD\nU".into()
            }
        );
    }
}
