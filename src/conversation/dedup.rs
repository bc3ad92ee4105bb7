//! Recognising WeChat's retries (PROTOCOL §6): the first arrival is handled,
//! a retry during handling waits for the same answer, a later retry gets the
//! recorded answer again.

use std::collections::{hash_map, HashMap, VecDeque};
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::domain::Message;

/// What was answered: the plaintext reply XML, or `None` for `success`.
pub type Recorded = Option<Arc<str>>;

/// Boxed future used by the dedup trait (object safe, no extra crate).
pub type DedupFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Identifies one delivery of one message across WeChat's retries.
///
/// Shared rather than copied: the in-memory store keeps it twice (the map
/// and the eviction queue), and a clone is a reference count.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DedupKey(Arc<str>);

impl DedupKey {
    /// Messages: account + sender + MsgId. Events (no MsgId): account +
    /// sender + CreateTime + Event + EventKey (repeated LOCATION pushes share
    /// sender and CreateTime, so the event name and key are part of it).
    /// WeChat Customer Service notifications have no sender and may share a
    /// second: their `Token` tells them apart.
    pub fn for_message(message: &Message) -> DedupKey {
        // Built by hand rather than with format!: this runs on every request.
        let mut key = String::with_capacity(64);
        key.push_str(&message.to_user);
        key.push(':');
        key.push_str(&message.from_user);
        // Writing to a String cannot fail.
        match message.msg_id.filter(|_| message.is_user_message()) {
            Some(id) => {
                let _ = write!(key, ":m:{id}");
            }
            None => {
                let _ = write!(key, ":e:{}:", message.create_time);
                key.push_str(message.event_name());
                key.push(':');
                match message.fields.child_text("Token").filter(|t| !t.is_empty()) {
                    Some(token) => {
                        key.push_str("t:");
                        key.push_str(token);
                    }
                    None => key.push_str(message.event_key()),
                }
            }
        }
        DedupKey(Arc::from(key))
    }

    /// A key from its text form (tests, tools).
    pub fn from_raw(raw: &str) -> DedupKey {
        DedupKey(Arc::from(raw))
    }

    /// The key as text (store keys are derived from it).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The outcome of claiming a key.
pub enum Claim {
    /// Nobody is handling it: handle it, then [`Dedup::complete`]. `push`
    /// counts this message's deliveries, this one included: above 1, an
    /// earlier delivery's handler is gone (a node died) and this one takes
    /// over.
    First {
        /// 1 for the first delivery.
        push: u32,
    },
    /// Seen before and answered: answer the same.
    Done(Recorded),
    /// Seen before and still being handled: [`Dedup::wait`] for it.
    InFlight {
        /// This delivery's number (2 for WeChat's first retry).
        push: u32,
    },
}

/// What [`Dedup::wait`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Waited {
    /// The message was answered.
    Answer(Recorded),
    /// Its handler is gone (its lease ran out): the waiter now holds the
    /// claim and must handle the message itself.
    TakeOver,
    /// Still unanswered when the time was up (or the claim was abandoned).
    TimedOut,
}

/// A failure of the backing store; callers fail open (handle the message).
#[derive(Debug, Clone, thiserror::Error)]
#[error("dedup store: {0}")]
pub struct DedupError(pub String);

/// A dedup record store shared by the requests of one node (memory) or of
/// every node (Redis).
pub trait Dedup: Send + Sync {
    /// Claims `key`; exactly one caller per window gets [`Claim::First`].
    fn claim<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, Result<Claim, DedupError>>;
    /// Records the answer for `key`, waking retries that wait for it.
    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<(), DedupError>>;
    /// Records `answer` only while `key` is still unanswered: of several
    /// deliveries racing to answer one message, the first wins; `true` for
    /// it. A slow answer and the last retry giving up settle this way.
    fn settle<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<bool, DedupError>>;
    /// Keeps this node's claim on `key` alive while it is being handled (a
    /// claim not renewed lapses, so that another node can take over).
    fn renew<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()>;
    /// Forgets an unanswered claim, so that the next retry is handled afresh.
    fn abandon<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()>;
    /// Waits until `key` is answered, its handler is gone, or `timeout` passes.
    fn wait<'a>(&'a self, key: &'a DedupKey, timeout: Duration) -> DedupFuture<'a, Waited>;
    /// Short description for readiness (`memory`, `redis`).
    fn describe(&self) -> &'static str;

    /// True when recording an answer is a network round trip: the engine
    /// then records an answer it knew at once (a rule's) beside the reply
    /// instead of before it. `false` by default.
    fn remote(&self) -> bool {
        false
    }
}

enum State {
    /// Being handled. The channel is made when the first retry waits for the
    /// answer (rarely), not for every message.
    InFlight(Option<watch::Sender<Option<Recorded>>>),
    Done(Recorded),
}

struct Entry {
    state: State,
    at: Instant,
    /// Deliveries of this message so far.
    pushes: u32,
}

struct Inner {
    entries: HashMap<DedupKey, Entry>,
    /// Keys in insertion order with their insertion time, for eviction.
    order: VecDeque<(DedupKey, Instant)>,
}

/// In-process dedup: bounded in size, oldest entries evicted first.
///
/// A std `Mutex` is right here: the critical sections are a hash lookup
/// and never await, so a tokio mutex would only add overhead.
pub struct MemoryDedup {
    inner: Mutex<Inner>,
    window: Duration,
    capacity: usize,
}

impl MemoryDedup {
    /// Remembers at most `capacity` messages for `window` each.
    pub fn new(window: Duration, capacity: usize) -> Self {
        MemoryDedup {
            inner: Mutex::new(Inner {
                entries: HashMap::new(),
                order: VecDeque::new(),
            }),
            window,
            capacity: capacity.max(1),
        }
    }

    /// Number of remembered messages.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// True when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map inconsistent
        // (every mutation is a single insert/remove), so recover from poison.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn evict(&self, inner: &mut Inner, now: Instant) {
        while let Some((key, at)) = inner.order.front() {
            let expired = now.duration_since(*at) >= self.window;
            if !expired && inner.entries.len() <= self.capacity {
                break;
            }
            // Remove the map entry only if it is the one this order slot
            // recorded (one lookup: this runs on every claim of a full store).
            if let hash_map::Entry::Occupied(entry) = inner.entries.entry(key.clone()) {
                if entry.get().at == *at {
                    entry.remove();
                }
            }
            inner.order.pop_front();
        }
    }
}

impl Dedup for MemoryDedup {
    fn claim<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, Result<Claim, DedupError>> {
        Box::pin(async move {
            let now = Instant::now();
            let mut inner = self.lock();
            self.evict(&mut inner, now);
            let fresh = Entry {
                state: State::InFlight(None),
                at: now,
                pushes: 1,
            };
            // One lookup for both the check and the insertion.
            match inner.entries.entry(key.clone()) {
                hash_map::Entry::Occupied(mut seen) => {
                    if now.duration_since(seen.get().at) < self.window {
                        let entry = seen.get_mut();
                        entry.pushes = entry.pushes.saturating_add(1);
                        return Ok(match &entry.state {
                            State::Done(answer) => Claim::Done(answer.clone()),
                            State::InFlight(_) => Claim::InFlight { push: entry.pushes },
                        });
                    }
                    // Remembered past its window: a new delivery.
                    seen.insert(fresh);
                }
                hash_map::Entry::Vacant(slot) => {
                    slot.insert(fresh);
                }
            }
            inner.order.push_back((key.clone(), now));
            self.evict(&mut inner, now);
            Ok(Claim::First { push: 1 })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<(), DedupError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            if let Some(entry) = inner.entries.get_mut(key) {
                if let State::InFlight(Some(tx)) = &entry.state {
                    tx.send_replace(Some(answer.clone()));
                }
                entry.state = State::Done(answer);
            }
            Ok(())
        })
    }

    fn settle<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<bool, DedupError>> {
        Box::pin(async move {
            let mut inner = self.lock();
            match inner.entries.get_mut(key) {
                Some(entry) if matches!(entry.state, State::InFlight(_)) => {
                    if let State::InFlight(Some(tx)) = &entry.state {
                        tx.send_replace(Some(answer.clone()));
                    }
                    entry.state = State::Done(answer);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn renew<'a>(&'a self, _key: &'a DedupKey) -> DedupFuture<'a, ()> {
        // One process: a claim lives as long as the handler that holds it.
        Box::pin(std::future::ready(()))
    }

    fn abandon<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let mut inner = self.lock();
            if inner
                .entries
                .get(key)
                .is_some_and(|e| matches!(e.state, State::InFlight(_)))
            {
                // Dropping the sender wakes the waiters with "no answer".
                inner.entries.remove(key);
            }
        })
    }

    fn wait<'a>(&'a self, key: &'a DedupKey, timeout: Duration) -> DedupFuture<'a, Waited> {
        Box::pin(async move {
            let mut rx = {
                let mut inner = self.lock();
                match inner.entries.get_mut(key).map(|e| &mut e.state) {
                    Some(State::Done(answer)) => return Waited::Answer(answer.clone()),
                    Some(State::InFlight(tx)) => {
                        tx.get_or_insert_with(|| watch::channel(None).0).subscribe()
                    }
                    None => return Waited::TimedOut,
                }
            };
            let waited = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
            match waited {
                Ok(Ok(value)) => match value.clone() {
                    Some(answer) => Waited::Answer(answer),
                    None => Waited::TimedOut,
                },
                _ => Waited::TimedOut,
            }
        })
    }

    fn describe(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> DedupKey {
        DedupKey::from_raw(&format!("k{n}"))
    }

    #[tokio::test]
    async fn first_then_in_flight_then_done() {
        let d = MemoryDedup::new(Duration::from_secs(300), 100);
        assert!(matches!(
            d.claim(&key(1)).await.unwrap(),
            Claim::First { .. }
        ));
        assert!(matches!(
            d.claim(&key(1)).await.unwrap(),
            Claim::InFlight { .. }
        ));
        let answer: Recorded = Some(Arc::from("<xml/>"));
        d.complete(&key(1), answer.clone()).await.unwrap();
        assert!(matches!(d.claim(&key(1)).await.unwrap(), Claim::Done(a) if a == answer));
    }

    #[tokio::test]
    async fn waiters_get_the_answer_when_it_arrives() {
        let d = Arc::new(MemoryDedup::new(Duration::from_secs(300), 100));
        assert!(matches!(
            d.claim(&key(2)).await.unwrap(),
            Claim::First { .. }
        ));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.wait(&key(2), Duration::from_secs(5)).await })
        };
        tokio::task::yield_now().await;
        d.complete(&key(2), None).await.unwrap();
        assert_eq!(waiter.await.unwrap(), Waited::Answer(None));
    }

    #[tokio::test]
    async fn deliveries_are_counted_and_the_first_settler_wins() {
        let d = MemoryDedup::new(Duration::from_secs(300), 100);
        assert!(matches!(
            d.claim(&key(7)).await.unwrap(),
            Claim::First { push: 1 }
        ));
        assert!(matches!(
            d.claim(&key(7)).await.unwrap(),
            Claim::InFlight { push: 2 }
        ));
        assert!(matches!(
            d.claim(&key(7)).await.unwrap(),
            Claim::InFlight { push: 3 }
        ));
        let marker: Recorded = Some(Arc::from("<xml>marker</xml>"));
        assert!(d.settle(&key(7), marker.clone()).await.unwrap());
        assert!(!d.settle(&key(7), Some(Arc::from("late"))).await.unwrap());
        assert!(matches!(d.claim(&key(7)).await.unwrap(), Claim::Done(a) if a == marker));
    }

    #[tokio::test]
    async fn abandoned_claims_can_be_claimed_again() {
        let d = MemoryDedup::new(Duration::from_secs(300), 100);
        assert!(matches!(
            d.claim(&key(3)).await.unwrap(),
            Claim::First { .. }
        ));
        d.abandon(&key(3)).await;
        assert!(matches!(
            d.claim(&key(3)).await.unwrap(),
            Claim::First { .. }
        ));
        assert_eq!(
            d.wait(&key(99), Duration::from_millis(1)).await,
            Waited::TimedOut
        );
    }

    #[tokio::test]
    async fn bounded_oldest_evicted_first() {
        let d = MemoryDedup::new(Duration::from_secs(300), 3);
        for n in 0..5 {
            assert!(matches!(
                d.claim(&key(n)).await.unwrap(),
                Claim::First { .. }
            ));
        }
        assert_eq!(d.len(), 3);
        // The two oldest were forgotten; the newest are remembered.
        assert!(matches!(
            d.claim(&key(4)).await.unwrap(),
            Claim::InFlight { .. }
        ));
        assert!(matches!(
            d.claim(&key(0)).await.unwrap(),
            Claim::First { .. }
        ));
    }

    #[tokio::test]
    async fn entries_expire_after_the_window() {
        let d = MemoryDedup::new(Duration::from_millis(20), 100);
        assert!(matches!(
            d.claim(&key(5)).await.unwrap(),
            Claim::First { .. }
        ));
        d.complete(&key(5), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(matches!(
            d.claim(&key(5)).await.unwrap(),
            Claim::First { .. }
        ));
    }

    #[tokio::test]
    async fn waiters_learn_when_a_claim_is_abandoned() {
        let d = Arc::new(MemoryDedup::new(Duration::from_secs(300), 100));
        assert!(matches!(
            d.claim(&key(6)).await.unwrap(),
            Claim::First { .. }
        ));
        let waiter = {
            let d = d.clone();
            tokio::spawn(async move { d.wait(&key(6), Duration::from_secs(5)).await })
        };
        // Let the waiter subscribe (which makes the channel) before abandoning.
        for _ in 0..100 {
            let subscribed = matches!(
                d.lock().entries.get(&key(6)).map(|e| &e.state),
                Some(State::InFlight(Some(_)))
            );
            if subscribed {
                break;
            }
            tokio::task::yield_now().await;
        }
        d.abandon(&key(6)).await;
        assert_eq!(waiter.await.unwrap(), Waited::TimedOut);
    }

    #[test]
    fn keys_name_account_sender_and_message() {
        let text = Message::parse(
            b"<xml><ToUserName>gh_a</ToUserName><FromUserName>o1</FromUserName>\
              <CreateTime>7</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
              <MsgId>42</MsgId></xml>",
        )
        .unwrap();
        assert_eq!(DedupKey::for_message(&text).as_str(), "gh_a:o1:m:42");
        let event = Message::parse(
            b"<xml><ToUserName>gh_a</ToUserName><FromUserName>o1</FromUserName>\
              <CreateTime>7</CreateTime><MsgType>event</MsgType><Event>CLICK</Event>\
              <EventKey>K</EventKey></xml>",
        )
        .unwrap();
        assert_eq!(
            DedupKey::for_message(&event).as_str(),
            "gh_a:o1:e:7:CLICK:K"
        );
    }
}
