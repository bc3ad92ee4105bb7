//! The conversations of one account: their settings, their pending
//! answers, their turn leases, their jobs, and what the send API refused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use super::jobs::Jobs;
use super::lock::ConversationLocks;
use super::pending::PendingAnswers;
use super::strategy::{PushTiming, Strategy};
use crate::domain::{ConversationKey, Message, MessageKind, Reply};
use crate::metrics::Metrics;
use crate::store::{Namespace, Store};

/// How a conversation's slow answers are delivered (`[agent]`, resolved
/// against the platform's capabilities by the application).
#[derive(Debug, Clone)]
pub struct ConversationSettings {
    /// The strategy in force (`auto` already resolved).
    pub strategy: Strategy,
    /// The platform's push deadline, pushes and the margin kept for proxies.
    pub timing: PushTiming,
    /// The platform takes an answer in the push's own response. When it
    /// does not (Feishu), every answer, a rule's too, is a turn whose
    /// answer goes through the late channel, in order, written down.
    pub passive: bool,
    /// The platform's passive reply opens an answer it then shows as it
    /// grows (a WeCom 智能机器人's stream): a slow turn answers its push
    /// with that opening at once instead of waiting for the passive
    /// budget, and every part goes to the late channel, which fills it.
    pub streaming: bool,
    /// How long an answer waits for the user's next message.
    pub pending_ttl: Duration,
    /// Longest text of one passive reply.
    pub max_text_bytes: usize,
    /// Ends a reply when more answers wait (e.g. "（回复任意文字继续）").
    pub more_marker: String,
    /// Answered while the answer is kept for the next message.
    pub pending_marker: String,
    /// A text that only fetches pending answers (never sent to an upstream).
    pub fetch_word: Option<String>,
    /// Answered to the fetch word when nothing waits.
    pub nothing_pending: String,
    /// At most this many messages per user and minute, then this text.
    pub rate_limit: Option<(u32, String)>,
    /// Texts of one user arriving within this window become one turn.
    pub debounce: Option<Duration>,
    /// How long a turn waits for the conversation's earlier turns.
    pub turn_patience: Duration,
    /// After a 48001, how long the account counts as lacking the send
    /// permission before late sends are tried again.
    pub refusal_recheck: Duration,
}

/// The conversations of one account: their pending answers, their turn
/// leases, and what the send API refused.
pub struct Conversations {
    pub(super) settings: ConversationSettings,
    store: Arc<dyn Store>,
    namespace: Namespace,
    pub(super) pending: PendingAnswers,
    pub(super) locks: ConversationLocks,
    pub(super) refusals: SendRefusals,
    pub(super) jobs: Jobs,
    metrics: Arc<Metrics>,
}

impl Conversations {
    /// The conversations of the account whose keys live under `namespace`.
    pub fn new(
        store: Arc<dyn Store>,
        namespace: Namespace,
        settings: ConversationSettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Conversations {
            pending: PendingAnswers::new(
                store.clone(),
                namespace.clone(),
                settings.pending_ttl,
                metrics.clone(),
            ),
            locks: ConversationLocks::new(store.clone(), namespace.clone()),
            refusals: SendRefusals::new(
                store.clone(),
                namespace.key("late_send_refused"),
                settings.refusal_recheck,
            ),
            jobs: Jobs::new(store.clone(), namespace.clone(), settings.pending_ttl),
            settings,
            store,
            namespace,
            metrics,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &ConversationSettings {
        &self.settings
    }

    /// The pending answers.
    pub fn pending(&self) -> &PendingAnswers {
        &self.pending
    }

    /// What the send API refused.
    pub fn refusals(&self) -> &SendRefusals {
        &self.refusals
    }

    /// The strategy for a turn now: late send moves to the next message
    /// while the account is known to lack the send permission.
    pub async fn effective(&self) -> Strategy {
        match self.settings.strategy {
            Strategy::LateSend if self.refusals.refused().await => Strategy::NextMessage,
            s => s,
        }
    }

    /// One line for `/readyz`.
    pub async fn describe(&self) -> String {
        let configured = self.settings.strategy;
        match (configured, self.refusals.refused().await) {
            (Strategy::LateSend, true) => format!(
                "next_message (late_send refused with 48001: the account has no customer-service permission; rechecked every {} s)",
                self.settings.refusal_recheck.as_secs()
            ),
            _ => configured.as_str().to_owned(),
        }
    }

    pub(super) fn key_of(&self, message: &Message) -> ConversationKey {
        ConversationKey::new(self.namespace.key(""), message.from_user.clone())
    }

    /// True when `message` is over its sender's rate limit.
    pub(super) async fn over_limit(&self, message: &Message) -> Option<Reply> {
        let (limit, text) = self.settings.rate_limit.as_ref()?;
        // A window opens with the user's first message and lasts a minute.
        let key = self.namespace.key(&format!("rate:{}", message.from_user));
        match self.store.incr(&key, Duration::from_secs(60)).await {
            Ok(n) if n > i64::from(*limit) => Some(Reply::Text {
                content: text.clone(),
            }),
            Ok(_) => None,
            Err(e) => {
                self.metrics.store_error("rate_limit");
                tracing::warn!(error = %e, "rate limit unavailable; the message is handled");
                None
            }
        }
    }

    pub(super) fn is_fetch_word(&self, message: &Message) -> bool {
        match (&self.settings.fetch_word, &message.kind) {
            (Some(word), MessageKind::Text { content, .. }) => content.trim() == word,
            _ => false,
        }
    }

    /// Merges the texts `message`'s user sends within the debounce window
    /// into one turn: `Some(merged)` for the message that opened the window
    /// (after the window, with every text in arrival order), `None` for the
    /// ones merged into it. Fails open (the message is its own turn).
    pub(super) async fn debounce(&self, message: &Message, window: Duration) -> Option<Message> {
        let MessageKind::Text { content, .. } = &message.kind else {
            return Some(message.clone());
        };
        let texts = self
            .namespace
            .key(&format!("debounce:{}:texts", message.from_user));
        let leader = self
            .namespace
            .key(&format!("debounce:{}:leader", message.from_user));
        // Every text goes in first; the leader takes them all after the
        // window, having given up leadership just before, so a text is
        // either taken by it or finds no leader and leads the next window.
        let owner = format!("{:016x}", rand::random::<u64>()).into_bytes();
        let queued = self
            .store
            .list_push(&texts, &[content.clone().into_bytes()], window * 4)
            .await;
        let lead = self.store.set_nx(&leader, &owner, window * 2).await;
        match (queued, lead) {
            (Ok(()), Ok(false)) => {
                tracing::info!("text merged into the turn its user opened just before");
                return None;
            }
            (Ok(()), Ok(true)) => {}
            _ => return Some(message.clone()),
        }
        tokio::time::sleep(window).await;
        let _ = self.store.compare_and_delete(&leader, &owner).await;
        let parts: Vec<String> = match self.store.list_take(&texts).await {
            Ok(values) => values
                .into_iter()
                .map(|v| String::from_utf8_lossy(&v).into_owned())
                .collect(),
            Err(_) => vec![content.clone()],
        };
        if parts.is_empty() {
            return None;
        }
        let merged = parts.join("\n");
        let mut m = message.clone();
        if let MessageKind::Text { content, .. } = &mut m.kind {
            content.clone_from(&merged);
        }
        if let Some(field) = m.fields.children.iter_mut().find(|f| f.name == "Content") {
            field.text = merged;
        }
        Some(m)
    }

    /// Keeps `reply` for the user's next message.
    pub(super) async fn keep(&self, message: &Message, replies: Vec<Reply>) {
        if self.pending.push(&message.from_user, replies).await {
            tracing::info!("answer kept for the user's next message");
        }
    }
}

/// What the send API refused, remembered in the store so that every node
/// knows, and rechecked after a while (the account may get verified).
pub struct SendRefusals {
    store: Arc<dyn Store>,
    key: String,
    recheck: Duration,
    /// (refused, read at): the store is read at most once per second.
    cached: Mutex<Option<(bool, Instant)>>,
}

impl SendRefusals {
    fn new(store: Arc<dyn Store>, key: String, recheck: Duration) -> Self {
        SendRefusals {
            store,
            key,
            recheck,
            cached: Mutex::new(None),
        }
    }

    /// True while the send permission is known to be missing.
    pub async fn refused(&self) -> bool {
        let now = Instant::now();
        if let Some((refused, at)) = *self.cached.lock().unwrap_or_else(|p| p.into_inner()) {
            if now.duration_since(at) < Duration::from_secs(1) {
                return refused;
            }
        }
        let refused = matches!(self.store.get(&self.key).await, Ok(Some(_)));
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((refused, now));
        refused
    }

    /// Remembers that the platform refused the send permission.
    pub async fn refuse(&self) {
        if let Err(e) = self
            .store
            .set(&self.key, b"48001", Some(self.recheck))
            .await
        {
            tracing::warn!(error = %e, "cannot remember the refused send permission");
        }
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((true, Instant::now()));
    }
}
