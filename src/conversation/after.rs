//! What becomes of an answer that came after its push stopped waiting,
//! by the strategy in force.

use std::sync::Arc;
use std::time::Duration;

use super::conversations::Conversations;
use super::dedup::{Dedup, DedupKey};
use super::strategy::Strategy;
use super::{LateDelivery, LateFailure, Render};
use crate::domain::{Message, Reply};
use crate::metrics::{KindLabel, Metrics};

/// Sends of one late answer in all when the platform asks to retry later.
const LATE_ATTEMPTS: u32 = 3;
/// The pause before the second send; doubled before each further one.
const LATE_BACKOFF: Duration = Duration::from_secs(1);

/// Sends `reply` through `late`; what the platform asks to retry later
/// (rate limit, busy, no answer) is sent again, the part not yet sent,
/// after a pause that doubles, up to [`LATE_ATTEMPTS`] sends in all. The
/// turn's job stays written down meanwhile: a stop during a pause leaves
/// the answer to the next node's sweep.
async fn late_send(
    late: &Arc<dyn LateDelivery>,
    message: &Arc<Message>,
    reply: Reply,
) -> Result<(), super::LateError> {
    let mut reply = reply;
    let mut pause = LATE_BACKOFF;
    let mut attempt = 1;
    loop {
        let e = match late.deliver(message.clone(), reply).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let rest = match (&e.kind, &e.rest) {
            (LateFailure::RetryLater, Some(rest)) if attempt < LATE_ATTEMPTS => rest.clone(),
            _ => return Err(e),
        };
        tracing::warn!(
            attempt,
            pause_ms = pause.as_millis() as u64,
            error = %e,
            "late answer not sent yet; trying again"
        );
        tokio::time::sleep(pause).await;
        pause *= 2;
        attempt += 1;
        reply = rest;
    }
}

/// An answer that came after the push stopped waiting, delivered by the
/// strategy: recorded for the next push (`retry_hold`), sent (`late_send`),
/// or kept for the next message; what the send API refuses is kept too.
/// False when a late send did not go through (the answer was kept or lost).
#[allow(clippy::too_many_arguments)]
pub(super) async fn deliver_after(
    c: &Conversations,
    key: &DedupKey,
    message: &Arc<Message>,
    render: &Arc<dyn Render>,
    reply: Reply,
    strategy: Strategy,
    dedup: &Arc<dyn Dedup>,
    late: &Arc<dyn LateDelivery>,
    metrics: &Metrics,
) -> bool {
    if matches!(reply, Reply::Success) {
        return true;
    }
    match strategy {
        Strategy::RetryHold => {
            // The next push carries it, unless the last push gave up first.
            match dedup.settle(key, render.render(&reply)).await {
                Ok(true) => tracing::info!("answer ready; the next push carries it"),
                _ => {
                    c.keep(message, vec![reply]).await;
                }
            }
        }
        Strategy::NextMessage => c.keep(message, vec![reply]).await,
        Strategy::LateSend => match late_send(late, message, reply).await {
            Ok(()) => {
                metrics
                    .late_results
                    .get_or_create(&KindLabel { kind: "delivered" })
                    .inc();
                return true;
            }
            Err(e) => {
                metrics
                    .late_results
                    .get_or_create(&KindLabel { kind: "dropped" })
                    .inc();
                let rest = e.rest.clone();
                match e.kind {
                    LateFailure::NoPermission => {
                        tracing::warn!(error = %e, "the account has no customer-service permission (48001); answers now wait for the user's next message");
                        c.refusals.refuse().await;
                        c.keep(message, rest.into_iter().collect()).await;
                    }
                    LateFailure::OutOfWindow | LateFailure::QuotaSpent => {
                        tracing::warn!(error = %e, "the send API took no more messages for this user; the rest waits for the next message");
                        c.keep(message, rest.into_iter().collect()).await;
                    }
                    LateFailure::Other | LateFailure::RetryLater => {
                        metrics.agent_delivery("expired");
                        tracing::error!(error = %e, "late answer not delivered and not kept: lost");
                    }
                }
                return false;
            }
        },
        Strategy::Passive => {
            metrics.agent_delivery("expired");
            tracing::warn!(
                "answer came after the passive budget and the strategy is passive: dropped"
            );
        }
    }
    true
}
