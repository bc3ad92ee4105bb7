//! Answers that arrive in parts (a streamed upstream): the channel the
//! responder hands complete parts through, and what the engine does with
//! them while the rest is still coming.
//!
//! Every part not yet delivered is kept in the store under the turn's
//! message (`PendingAnswers::push_parts`), so that whichever push of that
//! message gives up first — on this node or another — can answer with the
//! parts so far; the turn keeps its own copy of all of them for an answer
//! that is ready in time.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::after::deliver_after;
use super::conversations::Conversations;
use super::dedup::{Dedup, DedupKey};
use super::strategy::Strategy;
use super::{LateDelivery, Render, ReplyFuture};
use crate::domain::{Message, Reply};
use crate::metrics::Metrics;

/// Where a streamed answer's parts arrive, in order.
pub type Parts = mpsc::UnboundedReceiver<Reply>;

/// Where the responder sends a streamed answer's parts.
pub type PartsSender = mpsc::UnboundedSender<Reply>;

/// `parts` then `last` as one reply: texts joined with a blank line. A
/// non-text `last` is the reply only when there are no parts (a streamed
/// answer is text; anything else is logged and dropped).
pub fn join(parts: Vec<Reply>, last: Reply) -> Reply {
    let mut texts: Vec<String> = Vec::with_capacity(parts.len() + 1);
    let mut push = |reply: Reply| match reply {
        Reply::Text { content } => texts.push(content),
        Reply::Success => {}
        other => {
            tracing::warn!(
                msg_type = other.msg_type().unwrap_or("-"),
                "a non-text reply after streamed text parts is dropped"
            );
        }
    };
    if parts.is_empty() {
        return last;
    }
    parts.into_iter().for_each(&mut push);
    push(last);
    if texts.is_empty() {
        return Reply::Success;
    }
    Reply::Text {
        content: texts.join("\n\n"),
    }
}

/// Waits for `future` and gathers every part it streamed before it: the
/// whole answer, for paths that cannot deliver parts early (a sweep, an
/// account without conversations).
pub(crate) fn gathered(future: ReplyFuture, parts: Option<Parts>) -> ReplyFuture {
    let Some(mut parts) = parts else {
        return future;
    };
    Box::pin(async move {
        let mut all = Vec::new();
        let mut future = future;
        let last = loop {
            tokio::select! {
                biased;
                part = parts.recv() => match part {
                    Some(part) => all.push(part),
                    None => break future.await,
                },
                last = &mut future => break last,
            }
        };
        while let Ok(part) = parts.try_recv() {
            all.push(part);
        }
        join(all, last)
    })
}

/// One turn's streamed answer, on the turn's side.
pub(super) struct Streamed {
    parts: Parts,
    /// Every part so far, for an answer ready while its push still waits.
    all: Vec<Reply>,
    /// A part could not be sent: the rest waits for the next message, in order.
    failed: bool,
}

/// What the turn needs to deliver parts itself.
pub(super) struct TurnContext<'a> {
    pub c: &'a Conversations,
    pub key: &'a DedupKey,
    pub message: &'a Arc<Message>,
    pub render: &'a Arc<dyn Render>,
    pub dedup: &'a Arc<dyn Dedup>,
    pub late: &'a Arc<dyn LateDelivery>,
    pub metrics: &'a Metrics,
}

impl Streamed {
    pub(super) fn new(parts: Parts) -> Self {
        Streamed {
            parts,
            all: Vec::new(),
            failed: false,
        }
    }

    /// Runs `future` to its end, keeping each part where pushes find it;
    /// under `late_send`, once the push has stopped waiting (`tx` closed),
    /// each part is sent as soon as it is complete, in order. Returns what
    /// followed the last part.
    pub(super) async fn run(
        &mut self,
        cx: &TurnContext<'_>,
        future: ReplyFuture,
        tx: &mut oneshot::Sender<Reply>,
        strategy: Strategy,
    ) -> Reply {
        let sends = strategy == Strategy::LateSend;
        let mut future = future;
        let mut closed = false;
        let mut streaming = true;
        loop {
            tokio::select! {
                biased;
                part = self.parts.recv(), if streaming => match part {
                    Some(part) => {
                        self.all.push(part.clone());
                        cx.c.pending.push_parts(cx.key.as_str(), vec![part], false).await;
                        if closed && sends {
                            self.send_ready(cx).await;
                        }
                    }
                    None => streaming = false,
                },
                _ = tx.closed(), if !closed && sends => {
                    closed = true;
                    self.send_ready(cx).await;
                }
                last = &mut future => {
                    while let Ok(part) = self.parts.try_recv() {
                        self.all.push(part.clone());
                        cx.c.pending.push_parts(cx.key.as_str(), vec![part], false).await;
                    }
                    return last;
                }
            }
        }
    }

    /// Sends the parts no one has delivered yet, as one answer.
    async fn send_ready(&mut self, cx: &TurnContext<'_>) {
        if self.failed {
            return;
        }
        let ready = cx.c.pending.take_parts(cx.key.as_str()).await;
        if ready.is_empty() {
            return;
        }
        tracing::info!(
            parts = ready.len(),
            "streamed part sent before the answer is complete"
        );
        let strategy = Strategy::LateSend;
        let sent = deliver_after(
            cx.c,
            cx.key,
            cx.message,
            cx.render,
            join(ready, Reply::Success),
            strategy,
            cx.dedup,
            cx.late,
            cx.metrics,
        )
        .await;
        if !sent {
            // What was refused is kept (or logged as lost); what follows
            // must not overtake it.
            self.failed = true;
        }
    }

    /// The whole answer: every part, then `last`.
    pub(super) fn whole(&self, last: &Reply) -> Reply {
        join(self.all.clone(), last.clone())
    }

    /// What no one delivered: the parts still kept, then `last`; the
    /// strategy it goes by (after a refused part, the next message).
    pub(super) async fn rest(
        &self,
        cx: &TurnContext<'_>,
        last: Reply,
        strategy: Strategy,
    ) -> (Reply, Strategy) {
        let kept = cx.c.pending.take_parts(cx.key.as_str()).await;
        let strategy = if self.failed {
            Strategy::NextMessage
        } else {
            strategy
        };
        (join(kept, last), strategy)
    }
}
