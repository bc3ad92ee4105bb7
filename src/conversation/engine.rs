//! The delivery engine of one account: every push is answered within the
//! platform's deadline (or, under `retry_hold`, held on purpose), retries
//! are recognised, excess load is answered at once, and an answer that
//! misses the passive budget reaches the user by the account's strategy.
//!
//! Slow turns (an upstream call) of one conversation run one at a time,
//! across nodes, under a lease in the store (`lock.rs`), so the history
//! an upstream keeps sees every turn and answers go out in the order the
//! questions came. Instant answers (rules) take no lease. The account's
//! conversations are in `conversations.rs`; what becomes of an answer that
//! came too late for its push is in `after.rs`.
//!
//! Kept in one file (about 720 lines) on purpose: the paths of one push —
//! first delivery, retry, held push, slow turn, sweep — share the engine's
//! private state and read best top to bottom, in the order a push meets them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, Notify, Semaphore};
use tokio::time::Instant;
use tracing::Instrument;

use super::after::deliver_after;
use super::conversations::Conversations;
use super::dedup::{Claim, Dedup, DedupKey, Recorded, Waited};
use super::jobs::Jobs;
use super::pending::compose;
use super::store_dedup::LEASE;
use super::strategy::Strategy;
use super::stream::{join, Streamed, TurnContext};
use super::{
    Deferred, DeliverySettings, LateDelivery, Outcome, Parts, Render, ReplyFuture, Responder,
    Response,
};
use crate::domain::{Message, Reply};
use crate::metrics::{KindLabel, Metrics};

/// Slow turns running in the background, so that shutdown can wait for them.
#[derive(Default)]
struct Tasks {
    running: AtomicUsize,
    idle: Notify,
}

struct TaskGuard {
    tasks: Arc<Tasks>,
    metrics: Arc<Metrics>,
}

impl Tasks {
    fn enter(self: &Arc<Self>, metrics: &Arc<Metrics>) -> TaskGuard {
        self.running.fetch_add(1, Ordering::SeqCst);
        metrics.turns_in_flight.inc();
        TaskGuard {
            tasks: self.clone(),
            metrics: metrics.clone(),
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.metrics.turns_in_flight.dec();
        if self.tasks.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.tasks.idle.notify_waiters();
        }
    }
}

/// The delivery machinery for one account.
pub struct Delivery {
    dedup: Arc<dyn Dedup>,
    responder: Arc<dyn Responder>,
    late: Arc<dyn LateDelivery>,
    permits: Arc<Semaphore>,
    settings: DeliverySettings,
    metrics: Arc<Metrics>,
    conversations: Option<Arc<Conversations>>,
    tasks: Arc<Tasks>,
}

/// What answers when a pending reply is not ready in time.
enum Interim {
    /// The `[delivery]` fallback: the deadline passed.
    Fallback(Reply),
    /// An upstream's interim answer: its passive budget passed.
    Upstream(Reply),
}

impl Delivery {
    /// Assembles the machinery.
    pub fn new(
        dedup: Arc<dyn Dedup>,
        responder: Arc<dyn Responder>,
        late: Arc<dyn LateDelivery>,
        settings: DeliverySettings,
        metrics: Arc<Metrics>,
    ) -> Self {
        Delivery {
            dedup,
            responder,
            late,
            permits: Arc::new(Semaphore::new(settings.max_in_flight.max(1))),
            settings,
            metrics,
            conversations: None,
            tasks: Arc::default(),
        }
    }

    /// Delivers slow answers by `conversations`' strategy, in order per
    /// conversation, keeping what cannot be delivered for the next message.
    pub fn with_conversations(mut self, conversations: Arc<Conversations>) -> Self {
        self.conversations = Some(conversations);
        self
    }

    /// The conversations, when slow answers are delivered by a strategy.
    pub fn conversations(&self) -> Option<&Arc<Conversations>> {
        self.conversations.as_ref()
    }

    /// The dedup backend (for readiness).
    pub fn dedup(&self) -> &Arc<dyn Dedup> {
        &self.dedup
    }

    /// Waits up to `grace` for the slow turns still running (upstream calls,
    /// late sends); returns how many did not finish.
    pub async fn drain(&self, grace: Duration) -> usize {
        let deadline = Instant::now() + grace;
        loop {
            let idle = self.tasks.idle.notified();
            let running = self.tasks.running.load(Ordering::SeqCst);
            if running == 0 {
                return 0;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.tasks.running.load(Ordering::SeqCst);
            }
        }
    }

    /// Decides the answer to an authenticated message, rendered by `render`.
    /// `started` is when the request arrived (on tokio's clock, which tests
    /// pause); the deadline counts from then.
    pub async fn answer(
        &self,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        started: Instant,
    ) -> (Recorded, Outcome) {
        // Beyond the limit, answer at once: queueing would run into WeChat's
        // 5 s timeout and its retry storm.
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.overload.inc();
            tracing::warn!("over the concurrency limit; overload reply sent");
            return (render.render(&self.settings.overload), Outcome::Overload);
        };
        let from_user = message.is_user_message() && !message.from_user.is_empty();
        if let (Some(c), true) = (&self.conversations, from_user) {
            if let Some(reply) = c.over_limit(message).await {
                tracing::info!("over the user's rate limit; the rate-limit text answered");
                return (render.render(&reply), Outcome::RateLimited);
            }
        }
        let key = DedupKey::for_message(message);
        match self.dedup.claim(&key).await {
            Ok(Claim::First { push }) => {
                if push > 1 {
                    self.metrics.lease_takeovers.inc();
                    tracing::warn!(
                        push,
                        "the handler of an earlier delivery is gone; this delivery takes the message over"
                    );
                }
                self.first(&key, push, message, render, started, true).await
            }
            Ok(Claim::Done(answer)) => {
                self.hit("replayed");
                tracing::info!("retry answered from the dedup record");
                (answer, Outcome::Duplicate)
            }
            Ok(Claim::InFlight { push }) => {
                self.hit("in_flight");
                tracing::info!(
                    push,
                    "retry while an earlier delivery is in flight; waiting for its answer"
                );
                self.retry(&key, push, message, render, started).await
            }
            Err(e) => {
                // Fail open: answering twice is better than not answering.
                self.metrics.store_error("dedup_claim");
                tracing::warn!(error = %e, "dedup unavailable; handling without it");
                self.first(&key, 1, message, render, started, false).await
            }
        }
    }

    /// The first (or a taken-over) delivery of a message.
    async fn first(
        &self,
        key: &DedupKey,
        push: u32,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        started: Instant,
        record: bool,
    ) -> (Recorded, Outcome) {
        let conv = self
            .conversations
            .clone()
            .filter(|_| message.is_user_message() && !message.from_user.is_empty());
        // Answers kept for this user travel first.
        let carried = match &conv {
            Some(c) => c.pending.take(&message.from_user).await,
            None => Vec::new(),
        };
        if let Some(c) = conv.as_ref().filter(|c| c.is_fetch_word(message)) {
            let nothing = Reply::Text {
                content: c.settings.nothing_pending.clone(),
            };
            let reply = self.carry(c, message, carried, None, nothing).await;
            let answer = render.render(&reply);
            self.record(key, record, &answer).await;
            return (answer, Outcome::Fetched);
        }
        let response = match (self.responder.respond(message), &conv) {
            // Without passive replies every answer is a turn: it goes out
            // through the late channel, in the conversation's order, and
            // written down until it is sent.
            (Response::Ready(reply), Some(c)) if !c.settings.passive => {
                Response::Deferred(Deferred::late(Box::pin(std::future::ready(reply))))
            }
            (Response::Pending(future), Some(c)) if !c.settings.passive => {
                Response::Deferred(Deferred::late(future))
            }
            (response, _) => response,
        };
        let (answer, outcome) =
            match response {
                Response::Ready(reply) => {
                    let reply = match &conv {
                        Some(c) => {
                            self.carry(c, message, carried, Some(reply), Reply::Success)
                                .await
                        }
                        None => reply,
                    };
                    let (answer, outcome) = Self::rendered(render.as_ref(), &reply);
                    if record && self.dedup.remote() {
                        // One round trip on the path (the claim): the record
                        // goes beside the reply. A retry in between finds the
                        // claim and waits for the record; a crash in between
                        // leaves a claim that lapses, and a retry (only if
                        // WeChat lost the reply) answers the same rule again.
                        let (dedup, key, recorded) =
                            (self.dedup.clone(), key.clone(), answer.clone());
                        let metrics = self.metrics.clone();
                        tokio::spawn(async move {
                        if let Err(e) = dedup.complete(&key, recorded).await {
                            metrics.store_error("dedup_complete");
                            tracing::warn!(error = %e, "cannot record the answer for retries");
                        }
                    }.instrument(tracing::Span::current()));
                        return (answer, outcome);
                    }
                    (answer, outcome)
                }
                Response::Pending(future) => {
                    self.put_back(&conv, message, carried).await;
                    let left = self.left(started);
                    let fallback = self.settings.fallback.clone();
                    self.race(message, render, future, left, Interim::Fallback(fallback))
                        .await
                }
                Response::Deferred(d) => match conv {
                    Some(c) if c.settings.debounce.is_some() && message.text().is_some() => {
                        let window = c.settings.debounce.unwrap_or_default();
                        drop(d);
                        let Some(merged) = c.debounce(message, window).await else {
                            c.pending.push_front(&message.from_user, carried).await;
                            let answer = render.render(&Reply::Success);
                            self.record(key, record, &answer).await;
                            return (answer, Outcome::Merged);
                        };
                        let merged = Arc::new(merged);
                        let d = match self.responder.respond(&merged) {
                            Response::Deferred(d) => d,
                            Response::Ready(reply) => Deferred {
                                future: Box::pin(std::future::ready(reply)),
                                budget: self.settings.deadline,
                                interim: Reply::Success,
                                parts: None,
                            },
                            Response::Pending(future) => Deferred {
                                future,
                                budget: self.settings.deadline,
                                interim: Reply::Success,
                                parts: None,
                            },
                        };
                        return self
                            .turn(&c, key, push, &merged, render, d, started, carried)
                            .await;
                    }
                    Some(c) => {
                        // The turn records its own answer: retries may be
                        // answered by a later push than this one.
                        return self
                            .turn(&c, key, push, message, render, d, started, carried)
                            .await;
                    }
                    None => {
                        let left = self.left(started).min(d.budget);
                        let interim = Interim::Upstream(d.interim.clone());
                        self.race(message, render, d.into_whole(), left, interim)
                            .await
                    }
                },
            };
        self.record(key, record, &answer).await;
        (answer, outcome)
    }

    fn left(&self, started: Instant) -> Duration {
        self.settings.deadline.saturating_sub(started.elapsed())
    }

    async fn record(&self, key: &DedupKey, record: bool, answer: &Recorded) {
        if record {
            if let Err(e) = self.dedup.complete(key, answer.clone()).await {
                self.metrics.store_error("dedup_complete");
                tracing::warn!(error = %e, "cannot record the answer for retries");
            }
        }
    }

    /// The passive reply carrying kept answers (and `own`), and what stays kept.
    /// The passive reply carrying the kept answers `carried` first, then
    /// `own`; what does not fit is put back at the front of the queue. With
    /// nothing carried, `own`, or else `otherwise`.
    async fn carry(
        &self,
        c: &Conversations,
        message: &Message,
        carried: Vec<Reply>,
        own: Option<Reply>,
        otherwise: Reply,
    ) -> Reply {
        if carried.is_empty() {
            return own.unwrap_or(otherwise);
        }
        let n = carried.len();
        let (reply, rest) = compose(
            carried,
            own,
            c.settings.max_text_bytes,
            &c.settings.more_marker,
        );
        let delivered = n.saturating_sub(rest.len().min(n));
        for _ in 0..delivered {
            self.metrics.pending("delivered");
        }
        c.pending.push_front(&message.from_user, rest).await;
        reply
    }

    async fn put_back(
        &self,
        conv: &Option<Arc<Conversations>>,
        message: &Message,
        carried: Vec<Reply>,
    ) {
        if let Some(c) = conv {
            c.pending.push_front(&message.from_user, carried).await;
        }
    }

    /// A retry while an earlier delivery is in flight.
    async fn retry(
        &self,
        key: &DedupKey,
        push: u32,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        started: Instant,
    ) -> (Recorded, Outcome) {
        let conv = self.conversations.clone();
        let strategy = match &conv {
            Some(c) => c.effective().await,
            None => Strategy::LateSend,
        };
        let wait = match (&conv, strategy) {
            (Some(c), Strategy::RetryHold) => c.settings.timing.budget(),
            _ => self.settings.deadline,
        }
        .saturating_sub(started.elapsed());
        match self.dedup.wait(key, wait).await {
            Waited::Answer(answer) => {
                if strategy == Strategy::RetryHold && conv.is_some() {
                    self.metrics.agent_delivery("on_retry");
                }
                (answer, Outcome::Duplicate)
            }
            Waited::TakeOver => {
                self.metrics.lease_takeovers.inc();
                tracing::warn!(
                    push,
                    "the handler of this message is gone; this delivery takes it over"
                );
                Box::pin(self.first(key, push, message, render, started, true)).await
            }
            Waited::TimedOut => match (&conv, strategy) {
                (Some(c), Strategy::RetryHold) => {
                    self.held_or_marker(c, key, push, render, started).await
                }
                _ => {
                    self.metrics.deadline_fallbacks.inc();
                    (render.render(&self.settings.fallback), Outcome::Deadline)
                }
            },
        }
    }

    /// Under `retry_hold`, a push whose answer is not ready: held (so that
    /// WeChat pushes again), or on the last push the marker.
    async fn held_or_marker(
        &self,
        c: &Conversations,
        key: &DedupKey,
        push: u32,
        render: &Arc<dyn Render>,
        started: Instant,
    ) -> (Recorded, Outcome) {
        let timing = c.settings.timing;
        if push < timing.pushes {
            tracing::info!(
                push,
                pushes = timing.pushes,
                "answer not ready; push held so that WeChat pushes again"
            );
            // The answer may still come while the push is held; it is then
            // recorded and the next push carries it.
            tokio::time::sleep_until(started + timing.hold()).await;
            return (None, Outcome::Held);
        }
        // What a streamed answer has sent so far goes first.
        let so_far = self.parts_so_far(c, key).await;
        let marker = render.render(&join(
            so_far,
            Reply::Text {
                content: c.settings.pending_marker.clone(),
            },
        ));
        match self.dedup.settle(key, marker.clone()).await {
            Ok(true) => {
                tracing::info!(
                    push,
                    "last push: marker answered, the answer waits for the next message"
                );
                (marker, Outcome::Pending)
            }
            _ => match self.dedup.wait(key, Duration::from_millis(200)).await {
                Waited::Answer(answer) => {
                    self.metrics.agent_delivery("on_retry");
                    (answer, Outcome::Duplicate)
                }
                _ => (marker, Outcome::Pending),
            },
        }
    }

    /// A slow turn: the upstream call runs in its own task, under the
    /// conversation's lease; this push waits for it within its budget.
    #[allow(clippy::too_many_arguments)]
    async fn turn(
        &self,
        c: &Arc<Conversations>,
        key: &DedupKey,
        push: u32,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        d: Deferred,
        started: Instant,
        carried: Vec<Reply>,
    ) -> (Recorded, Outcome) {
        let strategy = c.effective().await;
        if !c.settings.passive || c.settings.streaming {
            return self
                .unanswered_turn(c, key, message, render, d, strategy, carried)
                .await;
        }
        let (tx, mut rx) = oneshot::channel::<Reply>();
        let streams = d.parts.is_some();
        self.spawn_turn(c, key, message, render, d.future, d.parts, strategy, tx);
        let budget = match strategy {
            Strategy::RetryHold => c.settings.timing.budget(),
            _ => self.settings.deadline.min(d.budget),
        };
        let wait = budget.saturating_sub(started.elapsed());
        let mut early = Vec::new();
        let in_time = match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(reply)) => Some(reply),
            Ok(Err(_)) => {
                tracing::error!("conversation turn failed; fallback sent");
                let answer = render.render(&self.settings.fallback);
                c.pending.push_front(&message.from_user, carried).await;
                self.record(key, true, &answer).await;
                return (answer, Outcome::Deadline);
            }
            Err(_) => {
                // A streamed answer's parts so far answer this push, taken
                // before the turn may send them itself (once `rx` closes).
                if streams && matches!(strategy, Strategy::LateSend | Strategy::Passive) {
                    early = self.parts_so_far(c, key).await;
                }
                // Close first so a result racing the timer is either taken
                // here or delivered by the turn.
                rx.close();
                rx.try_recv().ok()
            }
        };
        if let Some(reply) = in_time {
            self.metrics
                .agent_delivery(if push > 1 { "on_retry" } else { "passive" });
            let reply = self
                .carry(c, message, carried, Some(reply), Reply::Success)
                .await;
            let (answer, outcome) = Self::rendered(render.as_ref(), &reply);
            self.record(key, true, &answer).await;
            return (answer, outcome);
        }
        match strategy {
            Strategy::RetryHold => {
                c.pending.push_front(&message.from_user, carried).await;
                self.held_or_marker(c, key, push, render, started).await
            }
            Strategy::LateSend | Strategy::Passive | Strategy::NextMessage => {
                let interim = match strategy {
                    Strategy::NextMessage => Reply::Text {
                        content: c.settings.pending_marker.clone(),
                    },
                    _ => d.interim,
                };
                let own = (!early.is_empty()).then(|| join(early, Reply::Success));
                if own.is_some() {
                    self.metrics.agent_delivery("streamed");
                }
                let reply = self.carry(c, message, carried, own, interim).await;
                if strategy == Strategy::LateSend {
                    self.late.waiting(message);
                }
                tracing::info!(
                    waited_ms = wait.as_millis() as u64,
                    strategy = strategy.as_str(),
                    "upstream still working; interim answer sent, the result follows"
                );
                let answer = render.interim(&reply);
                self.record(key, true, &answer).await;
                // Answered: WeChat will not push this message again.
                c.jobs.mark_answered(key.as_str()).await;
                (answer, Outcome::Deferred(strategy))
            }
        }
    }

    /// A turn on a platform that takes no answer in the push's response
    /// (Feishu), or whose response opens a stream the late channel fills
    /// (a 智能机器人): the push is acknowledged at once with the interim
    /// answer, and the turn's task delivers the answer by `strategy` (a
    /// streamed one part by part, in order), after the answers kept for
    /// the user.
    #[allow(clippy::too_many_arguments)]
    async fn unanswered_turn(
        &self,
        c: &Arc<Conversations>,
        key: &DedupKey,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        d: Deferred,
        strategy: Strategy,
        carried: Vec<Reply>,
    ) -> (Recorded, Outcome) {
        let interim = d.interim.clone();
        let (future, parts) = if carried.is_empty() {
            (d.future, d.parts)
        } else {
            let whole = d.into_whole();
            let future: ReplyFuture = Box::pin(async move { join(carried, whole.await) });
            (future, None)
        };
        // No push waits for the answer: the turn sends all of it.
        let (tx, rx) = oneshot::channel::<Reply>();
        drop(rx);
        // Acknowledged: the platform will not push this message again, so
        // a sweep may take the turn over as soon as its node is gone.
        c.jobs.mark_answered(key.as_str()).await;
        self.spawn_turn(c, key, message, render, future, parts, strategy, tx);
        let answer = render.interim(&interim);
        self.record(key, true, &answer).await;
        (answer, Outcome::Deferred(strategy))
    }

    /// Runs the upstream call under the conversation's lease, then hands the
    /// answer to the waiting push, or delivers it by `strategy`.
    #[allow(clippy::too_many_arguments)]
    fn spawn_turn(
        &self,
        c: &Arc<Conversations>,
        key: &DedupKey,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        future: ReplyFuture,
        parts: Option<Parts>,
        strategy: Strategy,
        mut tx: oneshot::Sender<Reply>,
    ) {
        let guard = self.tasks.enter(&self.metrics);
        let (c, key, message, render) = (c.clone(), key.clone(), message.clone(), render.clone());
        let (dedup, late, metrics) = (self.dedup.clone(), self.late.clone(), self.metrics.clone());
        tokio::spawn(
            async move {
                let _guard = guard;
                // Written down first: a stop or crash from here on leaves the
                // turn for another node's sweep.
                c.jobs.start(key.as_str(), &message, strategy).await;
                // Keep this node's claim and job alive while the turn runs, so
                // that a retry elsewhere waits rather than taking it over.
                let renew = keep_alive(&c.jobs, key.as_str(), Some((&dedup, &key)));
                let _turn = c
                    .locks
                    .acquire(&c.key_of(&message), c.settings.turn_patience)
                    .await;
                let went_late = match parts {
                    None => {
                        let reply = future.await;
                        match tx.send(reply) {
                            Ok(()) => false,
                            Err(reply) => {
                                deliver_after(
                                    &c, &key, &message, &render, reply, strategy, &dedup, &late,
                                    &metrics,
                                )
                                .await;
                                true
                            }
                        }
                    }
                    Some(parts) => {
                        let cx = TurnContext {
                            c: &c,
                            key: &key,
                            message: &message,
                            render: &render,
                            dedup: &dedup,
                            late: &late,
                            metrics: &metrics,
                        };
                        let mut streamed = Streamed::new(parts);
                        let last = streamed.run(&cx, future, &mut tx, strategy).await;
                        // Ready while the push waits: all of it answers the push.
                        let went_late = tx.send(streamed.whole(&last)).is_err();
                        if went_late {
                            let (rest, strategy) = streamed.rest(&cx, last, strategy).await;
                            deliver_after(
                                &c, &key, &message, &render, rest, strategy, &dedup, &late,
                                &metrics,
                            )
                            .await;
                        }
                        // Parts a push took while the whole was answered are
                        // part of that answer: nothing of the turn stays kept.
                        c.pending.take_parts(key.as_str()).await;
                        went_late
                    }
                };
                if went_late {
                    finish_late(&late, &message, &metrics).await;
                }
                drop(renew);
                c.jobs.finish(key.as_str()).await;
            }
            .instrument(tracing::Span::current()),
        );
    }

    /// The parts of a streamed answer no one has delivered yet, within one
    /// passive reply; what does not fit stays for the turn to deliver.
    async fn parts_so_far(&self, c: &Conversations, key: &DedupKey) -> Vec<Reply> {
        let parts = c.pending.take_parts(key.as_str()).await;
        if parts.is_empty() {
            return parts;
        }
        let room = c
            .settings
            .max_text_bytes
            .saturating_sub(c.settings.pending_marker.len() + 2);
        let (head, rest) = compose(parts, None, room, "");
        c.pending.push_parts(key.as_str(), rest, true).await;
        vec![head]
    }

    /// Runs again the slow turns whose node is gone (stopped or crashed
    /// mid-turn): called periodically by the application. A turn held for
    /// WeChat's retries is left to them until they are over; its answer
    /// then waits for the user's next message.
    pub async fn sweep(&self) -> usize {
        let Some(c) = self.conversations.clone() else {
            return 0;
        };
        let timing = c.settings.timing;
        let orphans = c.jobs.orphans(timing.hold() * timing.pushes).await;
        let count = orphans.len();
        for (id, record) in orphans {
            let strategy = match record.strategy.parse::<Strategy>() {
                Ok(Strategy::LateSend) => Strategy::LateSend,
                Ok(Strategy::Passive) => Strategy::Passive,
                _ => Strategy::NextMessage,
            };
            tracing::warn!(
                strategy = strategy.as_str(),
                "a turn cut by a stopped node is run again"
            );
            self.metrics.lease_takeovers.inc();
            let guard = self.tasks.enter(&self.metrics);
            let message = Arc::new(record.message);
            let (c, responder) = (c.clone(), self.responder.clone());
            let (dedup, late, metrics) =
                (self.dedup.clone(), self.late.clone(), self.metrics.clone());
            tokio::spawn(async move {
                let _guard = guard;
                let renew = keep_alive(&c.jobs, &id, None);
                let _turn = c
                    .locks
                    .acquire(&c.key_of(&message), c.settings.turn_patience)
                    .await;
                if let Err(e) = late.restarted(message.clone()).await {
                    tracing::warn!(error = %e, "the late channel could not start the answer over");
                }
                let reply = match responder.respond(&message) {
                    Response::Ready(reply) => reply,
                    Response::Pending(future) => future.await,
                    Response::Deferred(d) => d.into_whole().await,
                };
                let key = DedupKey::from_raw(&id);
                let render: Arc<dyn Render> = Arc::new(|_: &Reply| None);
                deliver_after(
                    &c, &key, &message, &render, reply, strategy, &dedup, &late, &metrics,
                )
                .await;
                finish_late(&late, &message, &metrics).await;
                drop(renew);
                c.jobs.finish(&id).await;
            });
        }
        count
    }

    fn rendered(render: &dyn Render, reply: &Reply) -> (Recorded, Outcome) {
        let answer = render.render(reply);
        let outcome = if answer.is_some() {
            Outcome::Replied
        } else {
            Outcome::Success
        };
        (answer, outcome)
    }

    /// Runs a slow decision in its own task and waits for it for `wait`;
    /// `interim` answers when it is not ready by then, and the eventual result
    /// goes to the late-delivery hook.
    async fn race(
        &self,
        message: &Arc<Message>,
        render: &Arc<dyn Render>,
        future: ReplyFuture,
        wait: Duration,
        interim: Interim,
    ) -> (Recorded, Outcome) {
        let (tx, mut rx) = oneshot::channel::<Reply>();
        let late_message = message.clone();
        let late = self.late.clone();
        let metrics = self.metrics.clone();
        let guard = self.tasks.enter(&self.metrics);
        tokio::spawn(
            async move {
                let _guard = guard;
                let reply = future.await;
                if let Err(reply) = tx.send(reply) {
                    // WeChat has been answered already: deliver late.
                    let kind = match late.deliver(late_message, reply).await {
                        Ok(()) => "delivered",
                        Err(e) => {
                            tracing::warn!(error = %e, "late reply not delivered");
                            "dropped"
                        }
                    };
                    metrics
                        .late_results
                        .get_or_create(&KindLabel { kind })
                        .inc();
                }
            }
            .instrument(tracing::Span::current()),
        );
        let in_time = |reply: &Reply| {
            if matches!(interim, Interim::Upstream(_)) {
                self.metrics.agent_delivery("passive");
            }
            Self::rendered(render.as_ref(), reply)
        };
        match tokio::time::timeout(wait, &mut rx).await {
            Ok(Ok(reply)) => in_time(&reply),
            Ok(Err(_)) => {
                // The task died (a panic in the responder): answer the fallback.
                tracing::error!("responder task failed; fallback sent");
                (render.render(&self.settings.fallback), Outcome::Deadline)
            }
            Err(_) => {
                // Close first so a result racing the timer is either taken here or delivered late.
                rx.close();
                if let Ok(reply) = rx.try_recv() {
                    return in_time(&reply);
                }
                self.late.waiting(message);
                match interim {
                    Interim::Fallback(fallback) => {
                        self.metrics.deadline_fallbacks.inc();
                        tracing::warn!(
                            deadline_ms = self.settings.deadline.as_millis() as u64,
                            "deadline passed; fallback sent"
                        );
                        (render.render(&fallback), Outcome::Deadline)
                    }
                    Interim::Upstream(reply) => {
                        tracing::info!(
                            waited_ms = wait.as_millis() as u64,
                            "upstream still working; interim answer sent, the result follows"
                        );
                        (
                            render.interim(&reply),
                            Outcome::Deferred(Strategy::LateSend),
                        )
                    }
                }
            }
        }
    }

    fn hit(&self, kind: &'static str) {
        self.metrics
            .dedup_hits
            .get_or_create(&KindLabel { kind })
            .inc();
    }
}

/// Tells the late channel the turn has delivered all it had; what the
/// channel then fails to send (a stream's one late push) is logged and
/// counted as a dropped late answer.
async fn finish_late(late: &Arc<dyn LateDelivery>, message: &Arc<Message>, metrics: &Metrics) {
    if let Err(e) = late.finished(message.clone()).await {
        metrics
            .late_results
            .get_or_create(&KindLabel { kind: "dropped" })
            .inc();
        tracing::warn!(error = %e, "the late answer could not be completed");
    }
}

/// Renews a running turn's job (and this node's claim on its message, when
/// given) every third of a lease, until dropped.
fn keep_alive(jobs: &Jobs, id: &str, claim: Option<(&Arc<dyn Dedup>, &DedupKey)>) -> Renewal {
    let (jobs, id) = (jobs.clone(), id.to_owned());
    let claim = claim.map(|(dedup, key)| (dedup.clone(), key.clone()));
    Renewal(tokio::spawn(async move {
        loop {
            tokio::time::sleep(LEASE / 3).await;
            if let Some((dedup, key)) = &claim {
                dedup.renew(key).await;
            }
            jobs.renew(&id).await;
        }
    }))
}

/// A renewal task, stopped when dropped.
struct Renewal(tokio::task::JoinHandle<()>);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}
