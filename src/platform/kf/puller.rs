//! The pull: one per `open_kfid` across every node, from the cursor in the
//! store, each customer message answered once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::task::JoinHandle;

use super::convert::{kf_reply, safe_key, send_msgid, to_message};
use crate::clock::Clock;
use crate::config::KfSettings;
use crate::conversation::{Responder, Response};
use crate::metrics::Metrics;
use crate::platform::send::{message_bodies, send_with_retry, SendPolicy};
use crate::platform::wechat_api::{CallError, KfMessage, KfSendRequest, KfSyncRequest, WechatApi};
use crate::store::{Namespace, Store, StoreError};

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
                Response::Deferred(deferred) => deferred.into_whole().await,
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
