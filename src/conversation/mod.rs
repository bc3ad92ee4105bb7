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

pub mod dedup;
mod store_dedup;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{oneshot, Semaphore};

use crate::domain::{Message, Reply};
use crate::metrics::{KindLabel, Metrics};
pub use crate::rules::SharedRules;
pub use dedup::{Claim, Dedup, DedupKey, MemoryDedup, Recorded};
pub use store_dedup::StoreDedup;

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
    /// Renders `reply`.
    fn render(&self, reply: &Reply) -> Recorded;
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
pub type LateFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// Where a reply goes when it was ready only after WeChat was answered
/// (the agent bridge sends it through the customer-service API).
pub trait LateDelivery: Send + Sync {
    /// Delivers `reply` to the sender of `message`.
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture;

    /// WeChat has just been answered without the result, which
    /// [`LateDelivery::deliver`] will bring later: a chance to show
    /// "typing…". Must not block. Does nothing by default.
    fn waiting(&self, _message: &Arc<Message>) {}
}

/// No late channel configured: the late reply is logged and counted.
pub struct NoLateDelivery;

impl LateDelivery for NoLateDelivery {
    fn deliver(&self, _message: Arc<Message>, reply: Reply) -> LateFuture {
        Box::pin(async move {
            Err(format!(
                "a {} reply arrived after the deadline and no late-delivery channel is configured",
                reply.msg_type().unwrap_or("success")
            ))
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
    /// An upstream's passive budget passed; the interim answer was sent and
    /// the result follows through the late-delivery hook.
    Deferred,
}

impl Outcome {
    /// Label for logs and metrics.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Replied => "replied",
            Outcome::Success => "success",
            Outcome::Duplicate => "duplicate",
            Outcome::Deadline => "deadline",
            Outcome::Overload => "overload",
            Outcome::Deferred => "deferred",
        }
    }
}

/// What answers when a pending reply is not ready in time.
enum Interim {
    /// The `[delivery]` fallback: the deadline passed.
    Fallback(Reply),
    /// An upstream's interim answer: its passive budget passed.
    Upstream(Reply),
}

/// The delivery machinery for one account.
pub struct Delivery {
    dedup: Arc<dyn Dedup>,
    responder: Arc<dyn Responder>,
    late: Arc<dyn LateDelivery>,
    permits: Arc<Semaphore>,
    settings: DeliverySettings,
    metrics: Arc<Metrics>,
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
        }
    }

    /// The dedup backend (for readiness).
    pub fn dedup(&self) -> &Arc<dyn Dedup> {
        &self.dedup
    }

    /// Decides the answer to an authenticated message, rendered by `render`.
    /// `started` is when the request arrived; the deadline counts from then.
    pub async fn answer(
        &self,
        message: &Arc<Message>,
        render: &dyn Render,
        started: Instant,
    ) -> (Recorded, Outcome) {
        // Beyond the limit, answer at once: queueing would run into WeChat's
        // 5 s timeout and its retry storm.
        let Ok(_permit) = self.permits.clone().try_acquire_owned() else {
            self.metrics.overload.inc();
            tracing::warn!("over the concurrency limit; overload reply sent");
            return (render.render(&self.settings.overload), Outcome::Overload);
        };
        let key = DedupKey::for_message(message);
        let record = match self.dedup.claim(&key).await {
            Ok(Claim::First) => true,
            Ok(Claim::Done(answer)) => {
                self.hit("replayed");
                tracing::info!("retry answered from the dedup record");
                return (answer, Outcome::Duplicate);
            }
            Ok(Claim::InFlight) => {
                self.hit("in_flight");
                tracing::info!(
                    "retry while the first delivery is in flight; waiting for its answer"
                );
                let left = self.settings.deadline.saturating_sub(started.elapsed());
                return match self.dedup.wait(&key, left).await {
                    Some(answer) => (answer, Outcome::Duplicate),
                    None => {
                        self.metrics.deadline_fallbacks.inc();
                        (render.render(&self.settings.fallback), Outcome::Deadline)
                    }
                };
            }
            Err(e) => {
                // Fail open: answering twice is better than not answering.
                self.metrics.store_error("dedup_claim");
                tracing::warn!(error = %e, "dedup unavailable; handling without it");
                false
            }
        };

        let (answer, outcome) = match self.responder.respond(message) {
            Response::Ready(reply) => Self::rendered(render, &reply),
            Response::Pending(future) => {
                let left = self.settings.deadline.saturating_sub(started.elapsed());
                let fallback = self.settings.fallback.clone();
                self.race(message, render, future, left, Interim::Fallback(fallback))
                    .await
            }
            Response::Deferred(d) => {
                let left = self
                    .settings
                    .deadline
                    .saturating_sub(started.elapsed())
                    .min(d.budget);
                self.race(
                    message,
                    render,
                    d.future,
                    left,
                    Interim::Upstream(d.interim),
                )
                .await
            }
        };
        if record {
            if let Err(e) = self.dedup.complete(&key, answer.clone()).await {
                self.metrics.store_error("dedup_complete");
                tracing::warn!(error = %e, "cannot record the answer for retries");
            }
        }
        (answer, outcome)
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
        render: &dyn Render,
        future: ReplyFuture,
        wait: Duration,
        interim: Interim,
    ) -> (Recorded, Outcome) {
        let (tx, mut rx) = oneshot::channel::<Reply>();
        let late_message = message.clone();
        let late = self.late.clone();
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
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
        });
        let in_time = |reply: &Reply| {
            if matches!(interim, Interim::Upstream(_)) {
                self.metrics.agent_delivery("passive");
            }
            Self::rendered(render, reply)
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
                        (render.render(&reply), Outcome::Deferred)
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
