//! What becomes of an answer that came after its push stopped waiting,
//! by the strategy in force.

use std::sync::Arc;

use super::conversations::Conversations;
use super::dedup::{Dedup, DedupKey};
use super::strategy::Strategy;
use super::{LateDelivery, LateFailure, Render};
use crate::domain::{Message, Reply};
use crate::metrics::{KindLabel, Metrics};

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
        Strategy::LateSend => match late.deliver(message.clone(), reply.clone()).await {
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
                    LateFailure::Other => {
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
