//! What the console's conversations page sees beyond the callback handler:
//! 微信客服's messages never pass it (the notification only starts a pull),
//! so the responder the puller asks is wrapped; and answers sent late (after
//! the interim text) go through the account's late channel, which is
//! wrapped too. Each message and its reply go to the console's recent ring.

use std::sync::Arc;
use std::time::Instant;

use crate::conversation::{Deferred, LateDelivery, LateFuture, Responder, Response};
use crate::domain::{Message, Reply};
use crate::server::console::recent::Observed;
use crate::server::console::Console;

/// The outcome label of a pulled message answered through `kf/send_msg`.
const OUTCOME: &str = "pulled";
/// How its answer went.
const STRATEGY: &str = "kf_send";

/// A responder whose answers are also kept for the console.
pub(super) struct ObservedResponder {
    pub inner: Arc<dyn Responder>,
    pub console: Arc<Console>,
    pub account: String,
}

fn record(console: &Console, account: &str, message: &Message, reply: &Reply, started: Instant) {
    console.observe(Observed {
        account,
        message,
        outcome: OUTCOME,
        strategy: Some(STRATEGY),
        reply: Some(reply.clone()),
        millis: started.elapsed().as_millis() as u64,
    });
}

impl Responder for ObservedResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        let started = Instant::now();
        let (console, account, message) =
            (self.console.clone(), self.account.clone(), message.clone());
        match self.inner.respond(&message) {
            Response::Ready(reply) => {
                record(&console, &account, &message, &reply, started);
                Response::Ready(reply)
            }
            Response::Pending(future) => Response::Pending(Box::pin(async move {
                let reply = future.await;
                record(&console, &account, &message, &reply, started);
                reply
            })),
            // The puller sends a streamed answer whole: kept whole here too.
            Response::Deferred(deferred) => {
                let (budget, interim) = (deferred.budget, deferred.interim.clone());
                let whole = deferred.into_whole();
                Response::Deferred(Deferred {
                    future: Box::pin(async move {
                        let reply = whole.await;
                        record(&console, &account, &message, &reply, started);
                        reply
                    }),
                    budget,
                    interim,
                    parts: None,
                })
            }
        }
    }
}

/// A late channel whose deliveries are also kept for the console: the
/// answer that came after WeChat was answered with the interim text.
pub(super) struct ObservedLate {
    pub inner: Arc<dyn LateDelivery>,
    pub console: Arc<Console>,
    pub account: String,
}

impl LateDelivery for ObservedLate {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        let started = Instant::now();
        let (console, account) = (self.console.clone(), self.account.clone());
        let kept = reply.clone();
        let delivery = self.inner.deliver(message.clone(), reply);
        Box::pin(async move {
            let result = delivery.await;
            console.observe(Observed {
                account: &account,
                message: &message,
                outcome: if result.is_ok() {
                    "late_sent"
                } else {
                    "late_failed"
                },
                strategy: Some("late_send"),
                reply: Some(kept),
                millis: started.elapsed().as_millis() as u64,
            });
            result
        })
    }

    fn waiting(&self, message: &Arc<Message>) {
        self.inner.waiting(message);
    }

    fn restarted(&self, message: Arc<Message>) -> LateFuture {
        self.inner.restarted(message)
    }

    fn finished(&self, message: Arc<Message>) -> LateFuture {
        self.inner.finished(message)
    }
}
