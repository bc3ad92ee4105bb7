//! Conversations: what happens between a message arriving and its answer
//! reaching the user, whatever the platform. The platform's retries are
//! deduplicated, every push is answered within the deadline, excess load is
//! answered at once instead of queued into the platform's timeout.
//!
//! The decision itself comes from a [`Responder`] (the rules, or the agent
//! bridge); a result that arrives after the deadline goes to the platform's
//! [`LateDelivery`] channel instead of being lost. Everything here speaks
//! the domain's [`Message`] and [`Reply`]: the platform renders, through the
//! [`Render`] it passes in, and the store keeps what it rendered.
//!
//! Knows no XML, no HTTP and no platform.

mod after;
mod conversations;
pub mod dedup;
mod engine;
mod jobs;
mod lock;
mod pending;
mod store_dedup;
mod strategy;
mod stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::domain::{Message, Reply};
pub use crate::rules::SharedRules;
pub use conversations::{ConversationSettings, Conversations, SendRefusals};
pub use dedup::{Claim, Dedup, DedupKey, MemoryDedup, Recorded, Waited};
pub use engine::Delivery;
pub use jobs::{JobRecord, Jobs, JOB_LEASE};
pub use lock::{ConversationLocks, Turn};
pub use pending::{compose, PendingAnswers};
pub use store_dedup::{StoreDedup, LEASE};
pub use strategy::{
    ConversationOptions, PushTiming, Strategy, DEFAULT_FETCH_WORD, DEFAULT_MORE_MARKER,
    DEFAULT_NOTHING_PENDING, DEFAULT_PENDING_MARKER, DEFAULT_RATE_LIMITED,
};
pub use stream::{join, Parts, PartsSender};

/// A reply that may take time to compute.
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send + 'static>>;

/// What a responder answers: at once, or later.
pub enum Response {
    /// Known now (static rules): no task, no timer.
    Ready(Reply),
    /// Computed by a future, raced against the deadline; the delivery
    /// fallback answers when it is not ready in time.
    Pending(ReplyFuture),
    /// An upstream (agent) call with its own passive budget and interim answer.
    Deferred(Deferred),
}

/// A reply expected to be slow, with what to do while it is computed.
pub struct Deferred {
    /// The upstream call.
    pub future: ReplyFuture,
    /// How long WeChat's request waits for it (capped by the deadline).
    pub budget: Duration,
    /// Answered when the budget passes; the result then goes to the
    /// late-delivery hook.
    pub interim: Reply,
    /// A streamed answer's complete parts, in order, as they arrive; the
    /// future then yields what follows the last part. `None` when the
    /// answer comes whole.
    pub parts: Option<Parts>,
}

impl Deferred {
    /// `future`, with no passive budget and nothing answered meanwhile:
    /// its answer goes out through the late channel.
    pub fn late(future: ReplyFuture) -> Self {
        Deferred {
            future,
            budget: Duration::ZERO,
            interim: Reply::Success,
            parts: None,
        }
    }

    /// The whole answer, streamed parts and all, for a path that delivers
    /// it in one piece.
    pub fn into_whole(self) -> ReplyFuture {
        stream::gathered(self.future, self.parts)
    }
}

/// Decides the reply to a message.
pub trait Responder: Send + Sync {
    /// Starts deciding.
    fn respond(&self, message: &Arc<Message>) -> Response;
}

/// How the platform renders a reply to the message being answered: what
/// goes back to the platform and is recorded for its retries (`None` when
/// nothing is answered, e.g. `success`).
pub trait Render: Send + Sync {
    /// Renders `reply`, the whole answer to the push.
    fn render(&self, reply: &Reply) -> Recorded;

    /// Renders `reply` as what answers a push whose answer is still being
    /// computed and follows through the late channel (the interim text,
    /// the parts so far). The same as [`Render::render`] but on a
    /// platform whose late channel continues the push's answer (a
    /// 智能机器人's stream stays open).
    fn interim(&self, reply: &Reply) -> Recorded {
        self.render(reply)
    }
}

impl<F: Fn(&Reply) -> Recorded + Send + Sync> Render for F {
    fn render(&self, reply: &Reply) -> Recorded {
        self(reply)
    }
}

/// Answers from the keyword rules.
pub struct RulesResponder {
    rules: SharedRules,
}

impl RulesResponder {
    /// Reads the rules from `rules` on every message.
    pub fn new(rules: SharedRules) -> Self {
        RulesResponder { rules }
    }
}

impl Responder for RulesResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let decision = self.rules.load().evaluate(message);
        tracing::debug!(
            rule = decision.rule.as_deref().unwrap_or("-"),
            "rule decision"
        );
        if let Some(upstream) = &decision.upstream {
            // The configuration guarantees upstreams exist where rules name
            // them; this responder runs only when none are configured.
            tracing::error!(%upstream, "rule names an upstream, but no agent bridge runs; answering success");
        }
        Response::Ready(decision.reply)
    }
}

/// Future returned by [`LateDelivery::deliver`].
pub type LateFuture = Pin<Box<dyn Future<Output = Result<(), LateError>> + Send + 'static>>;

/// Why a late answer was not (wholly) delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateError {
    /// What refused it.
    pub kind: LateFailure,
    /// What was not sent (the whole answer when nothing was), to keep for
    /// the user's next message; `None` when nothing should be kept.
    pub rest: Option<Reply>,
    /// For the log.
    pub message: String,
}

/// The refusals a conversation reacts to; the rest are `Other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateFailure {
    /// The account lacks the send permission (WeChat 48001): unverified
    /// accounts have no customer-service API.
    NoPermission,
    /// Outside the window after the user's last message (WeChat 45015).
    OutOfWindow,
    /// The per-turn message quota is spent (WeChat 45047).
    QuotaSpent,
    /// The platform is rate-limited or busy, or did not answer: the same
    /// send may go through later. The engine sends `rest` again, a few
    /// times with growing pauses (`after.rs`), then gives up as for `Other`.
    RetryLater,
    /// Anything else, final: give up (the platform refused the message
    /// for good, busy beyond its own retries, a reply kind the API does
    /// not take).
    Other,
}

impl LateError {
    /// A failure that keeps nothing.
    pub fn other(message: impl Into<String>) -> Self {
        LateError {
            kind: LateFailure::Other,
            rest: None,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for LateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<String> for LateError {
    fn from(message: String) -> Self {
        LateError::other(message)
    }
}

/// Where a reply goes when it was ready only after WeChat was answered
/// (the agent bridge sends it through the customer-service API).
pub trait LateDelivery: Send + Sync {
    /// Delivers `reply` to the sender of `message`.
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture;

    /// WeChat has just been answered without the result, which
    /// [`LateDelivery::deliver`] will bring later: a chance to show
    /// "typing…". Must not block. Does nothing by default.
    fn waiting(&self, _message: &Arc<Message>) {}

    /// The turn that answers `message` runs again from the start (its node
    /// stopped mid-turn): what it delivered before may be delivered again.
    /// A channel that shows one growing answer per message (a stream)
    /// starts it over. Does nothing by default.
    fn restarted(&self, _message: Arc<Message>) -> LateFuture {
        Box::pin(std::future::ready(Ok(())))
    }

    /// Everything the turn answering `message` had to deliver late has
    /// been handed to [`LateDelivery::deliver`]: a stream is marked
    /// finished (or, after its refresh window, sent whole by the channel's
    /// one late push). Does nothing by default.
    fn finished(&self, _message: Arc<Message>) -> LateFuture {
        Box::pin(std::future::ready(Ok(())))
    }
}

/// No late channel configured: the late reply is logged and counted.
pub struct NoLateDelivery;

impl LateDelivery for NoLateDelivery {
    fn deliver(&self, _message: Arc<Message>, reply: Reply) -> LateFuture {
        Box::pin(async move {
            Err(LateError::other(format!(
                "a {} reply arrived after the deadline and no late-delivery channel is configured",
                reply.msg_type().unwrap_or("success")
            )))
        })
    }
}

/// Settings from `[delivery]`.
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Every POST is answered within this.
    pub deadline: Duration,
    /// Answer when the deadline passes.
    pub fallback: Reply,
    /// Answer when more than `max_in_flight` messages are being handled.
    pub overload: Reply,
    /// Concurrency limit on message handling.
    pub max_in_flight: usize,
}

/// How a message was answered (the `outcome` label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Handled now; a reply was sent.
    Replied,
    /// Handled now; `success` was sent.
    Success,
    /// A retry answered from the dedup record.
    Duplicate,
    /// The deadline passed; the fallback was sent.
    Deadline,
    /// Over the concurrency limit; the overload reply was sent.
    Overload,
    /// An upstream's passive budget passed; the interim answer (or the
    /// pending marker) was sent and the result follows by the strategy.
    Deferred(Strategy),
    /// A held push, left unanswered on purpose so that WeChat pushes again.
    Held,
    /// The last push: the marker was sent and the answer waits for the
    /// user's next message.
    Pending,
    /// Over the user's rate limit; the configured text was sent.
    RateLimited,
    /// A fetch word: only pending answers were sent.
    Fetched,
    /// Merged into the turn its user opened just before (`debounce_ms`).
    Merged,
}

impl Outcome {
    /// The delivery strategy that carries (or carried) the answer, when a
    /// strategy was involved: for the access line.
    pub fn strategy(self) -> Option<&'static str> {
        match self {
            Outcome::Deferred(s) => Some(s.as_str()),
            Outcome::Held | Outcome::Pending => Some(Strategy::RetryHold.as_str()),
            _ => None,
        }
    }

    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Replied => "replied",
            Outcome::Success => "success",
            Outcome::Duplicate => "duplicate",
            Outcome::Deadline => "deadline",
            Outcome::Overload => "overload",
            Outcome::Deferred(_) => "deferred",
            Outcome::Held => "held",
            Outcome::Pending => "pending",
            Outcome::RateLimited => "rate_limited",
            Outcome::Fetched => "fetched",
            Outcome::Merged => "merged",
        }
    }
}
