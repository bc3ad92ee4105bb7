//! Reply decisions and late-delivery hooks swapped into the app.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wxgate::conversation::{LateDelivery, LateFuture, Responder, Response};
use wxgate::message::{Message, Reply};

/// Answers "slow:<content>" after `delay`, counting its calls and keeping
/// the texts it handled.
pub struct SlowResponder {
    delay: Duration,
    calls: AtomicUsize,
    handled: Mutex<Vec<String>>,
}

impl SlowResponder {
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(SlowResponder {
            delay,
            calls: AtomicUsize::new(0),
            handled: Mutex::default(),
        })
    }
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
    /// The texts of the messages handled, in the order they came.
    pub fn handled(&self) -> Vec<String> {
        self.handled.lock().unwrap().clone()
    }
}

impl Responder for SlowResponder {
    fn respond(&self, message: &Arc<Message>) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let text = message.text().unwrap_or_default().to_owned();
        self.handled.lock().unwrap().push(text.clone());
        let delay = self.delay;
        let content = format!("slow:{text}");
        Response::Pending(Box::pin(async move {
            tokio::time::sleep(delay).await;
            Reply::Text { content }
        }))
    }
}

/// Answers "rule:<content>" at once, as a rule does, counting its calls.
#[derive(Default)]
pub struct CountingRule {
    calls: AtomicUsize,
}

impl CountingRule {
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

impl Responder for CountingRule {
    fn respond(&self, message: &Arc<Message>) -> Response {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Response::Ready(Reply::Text {
            content: format!("rule:{}", message.text().unwrap_or_default()),
        })
    }
}

/// Records late replies: (recipient, reply).
#[derive(Default)]
pub struct RecordingLate(pub Mutex<Vec<(String, Reply)>>);

impl LateDelivery for RecordingLate {
    fn deliver(&self, message: Arc<Message>, reply: Reply) -> LateFuture {
        self.0
            .lock()
            .unwrap()
            .push((message.from_user.clone(), reply));
        Box::pin(async { Ok(()) })
    }
}
