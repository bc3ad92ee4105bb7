//! Answers waiting for the user's next message: a durable per-user queue
//! in the store, and the passive reply that carries them.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::split::split_text;
use crate::domain::Reply;
use crate::metrics::Metrics;
use crate::store::{Namespace, Store};

/// One queued answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Queued {
    reply: Reply,
}

/// The pending answers of one account's users.
#[derive(Clone)]
pub struct PendingAnswers {
    store: Arc<dyn Store>,
    namespace: Namespace,
    ttl: Duration,
    metrics: Arc<Metrics>,
}

impl PendingAnswers {
    /// Queues in `store` under the account's `namespace`; answers wait `ttl`.
    pub fn new(
        store: Arc<dyn Store>,
        namespace: Namespace,
        ttl: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        PendingAnswers {
            store,
            namespace,
            ttl,
            metrics,
        }
    }

    fn key(&self, user: &str) -> String {
        self.namespace.key(&format!("pending:{user}"))
    }

    /// Queues `replies` after what `user` already has waiting. Returns
    /// false (logged and counted as expired) when the store refuses.
    pub async fn push(&self, user: &str, replies: Vec<Reply>) -> bool {
        self.put(user, replies, false).await
    }

    /// Puts `replies` back ahead of anything queued meanwhile.
    pub async fn push_front(&self, user: &str, replies: Vec<Reply>) -> bool {
        self.put(user, replies, true).await
    }

    async fn put(&self, user: &str, replies: Vec<Reply>, front: bool) -> bool {
        if user.is_empty() {
            return true;
        }
        self.put_at(&self.key(user), replies, front, true).await
    }

    /// Queues `replies` under `key`; `count` says whether they are answers
    /// waiting for a user (counted as queued) or parts of a streamed one.
    async fn put_at(
        &self,
        key: &str,
        replies: Vec<Reply>,
        front: bool,
        count_queued: bool,
    ) -> bool {
        let replies: Vec<Reply> = replies
            .into_iter()
            .filter(|r| !matches!(r, Reply::Success))
            .collect();
        if replies.is_empty() {
            return true;
        }
        let count = replies.len();
        let values: Vec<Vec<u8>> = replies
            .into_iter()
            // Serialising a reply (strings and vectors) cannot fail.
            .map(|reply| serde_json::to_vec(&Queued { reply }).unwrap_or_default())
            .collect();
        let result = if front {
            self.store.list_push_front(key, &values, self.ttl).await
        } else {
            self.store.list_push(key, &values, self.ttl).await
        };
        match result {
            Ok(()) => {
                if !front && count_queued {
                    for _ in 0..count {
                        self.metrics.pending("queued");
                    }
                }
                true
            }
            Err(e) => {
                for _ in 0..count {
                    self.metrics.pending("expired");
                }
                tracing::error!(error = %e, answers = count, "cannot keep an answer for the user's next message; it is lost");
                false
            }
        }
    }

    /// Takes every answer waiting for `user`, oldest first.
    pub async fn take(&self, user: &str) -> Vec<Reply> {
        if user.is_empty() {
            return Vec::new();
        }
        self.take_at(&self.key(user)).await
    }

    fn parts_key(&self, turn: &str) -> String {
        self.namespace.key(&format!("stream:{turn}"))
    }

    /// Keeps parts of the streamed answer of the turn `turn` (a message's
    /// dedup key) that no one has delivered yet, in order, where any node
    /// answering a push of that message finds them.
    pub(super) async fn push_parts(&self, turn: &str, parts: Vec<Reply>, front: bool) -> bool {
        self.put_at(&self.parts_key(turn), parts, front, false)
            .await
    }

    /// Takes the undelivered parts of the turn's streamed answer.
    pub(super) async fn take_parts(&self, turn: &str) -> Vec<Reply> {
        self.take_at(&self.parts_key(turn)).await
    }

    async fn take_at(&self, key: &str) -> Vec<Reply> {
        match self.store.list_take(key).await {
            Ok(values) => values
                .into_iter()
                .filter_map(|v| match serde_json::from_slice::<Queued>(&v) {
                    Ok(q) => Some(q.reply),
                    Err(e) => {
                        self.metrics.pending("expired");
                        tracing::warn!(error = %e, "unreadable pending answer dropped");
                        None
                    }
                })
                .collect(),
            Err(e) => {
                self.metrics.store_error("pending_take");
                tracing::warn!(error = %e, "cannot read pending answers; they wait for the next message");
                Vec::new()
            }
        }
    }

    /// How many answers wait for `user`.
    pub async fn depth(&self, user: &str) -> u64 {
        self.store.list_len(&self.key(user)).await.unwrap_or(0)
    }
}

/// One passive reply carrying queued answers first, then (when given) the
/// message's own answer, within `max_bytes` of text; what does not fit is
/// returned to stay queued, and the reply then ends with `more`.
///
/// Texts are joined with a blank line; a long text is cut at paragraph or
/// sentence ends. A non-text answer (a picture, articles) travels alone: it
/// is the reply when it comes first, else it waits for the next message.
pub fn compose(
    queued: Vec<Reply>,
    own: Option<Reply>,
    max_bytes: usize,
    more: &str,
) -> (Reply, Vec<Reply>) {
    let mut items: std::collections::VecDeque<Reply> = queued.into_iter().collect();
    items.extend(own);
    items.retain(|r| !matches!(r, Reply::Success));
    let mut text = String::new();
    let room = max_bytes.saturating_sub(more.len() + 2).max(16);
    while let Some(item) = items.pop_front() {
        let Reply::Text { content } = item else {
            if text.is_empty() {
                // A lone non-text answer is the reply.
                let rest: Vec<Reply> = items.into_iter().collect();
                return (item, rest);
            }
            items.push_front(item);
            break;
        };
        let sep = if text.is_empty() { 0 } else { 2 };
        if text.len() + sep + content.len() <= room {
            if sep > 0 {
                text.push_str("\n\n");
            }
            text.push_str(&content);
            continue;
        }
        // Only part of it fits: cut it at a paragraph or sentence end.
        let left = room.saturating_sub(text.len() + sep);
        if left >= 64 || text.is_empty() {
            let parts = split_text(&content, left.max(16));
            if let Some((head, tail)) = parts.split_first() {
                if sep > 0 {
                    text.push_str("\n\n");
                }
                text.push_str(head);
                let rest = tail.join("\n");
                if !rest.trim().is_empty() {
                    items.push_front(Reply::Text { content: rest });
                }
            }
        } else {
            items.push_front(Reply::Text { content });
        }
        break;
    }
    let rest: Vec<Reply> = items.into_iter().collect();
    if !rest.is_empty() && !more.is_empty() {
        text.push_str("\n\n");
        text.push_str(more);
    }
    if text.is_empty() {
        return (Reply::Success, rest);
    }
    (Reply::Text { content: text }, rest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn text(s: &str) -> Reply {
        Reply::Text { content: s.into() }
    }

    #[test]
    fn queued_answers_come_first_then_the_own_answer() {
        let (reply, rest) = compose(
            vec![text("一"), text("二")],
            Some(text("三")),
            2000,
            "（回复任意文字继续）",
        );
        assert_eq!(reply, text("一\n\n二\n\n三"));
        assert!(rest.is_empty());
    }

    #[test]
    fn what_does_not_fit_stays_queued_with_a_marker() {
        let long = "这是一句话。".repeat(200); // 3,600 bytes
        let (reply, rest) = compose(vec![text(&long)], Some(text("own")), 2000, "MORE");
        let Reply::Text { content } = reply else {
            panic!("a text reply")
        };
        assert!(content.len() <= 2000, "{}", content.len());
        assert!(content.ends_with("MORE"));
        // Nothing is lost: the cut text and the own answer wait, in order.
        let Reply::Text { content: tail } = &rest[0] else {
            panic!("text")
        };
        let shown = content.trim_end_matches("MORE").trim_end();
        assert_eq!(format!("{shown}{tail}").replace('\n', ""), long);
        assert_eq!(rest[1], text("own"));
    }

    #[test]
    fn a_picture_travels_alone() {
        let image = Reply::Image {
            media_id: "M".into(),
        };
        let (reply, rest) = compose(vec![text("a")], Some(image.clone()), 2000, "MORE");
        assert_eq!(reply, text("a\n\nMORE"));
        assert_eq!(rest, vec![image.clone()]);
        let (reply, rest) = compose(vec![image.clone()], Some(text("b")), 2000, "MORE");
        assert_eq!(reply, image);
        assert_eq!(rest, [text("b")]);
        assert_eq!(
            compose(vec![], None, 2000, "MORE"),
            (Reply::Success, vec![])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_queue_keeps_order_and_its_ttl() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let metrics = Arc::new(Metrics::new());
        let q = PendingAnswers::new(
            store,
            Namespace::for_app("wx"),
            Duration::from_secs(60),
            metrics,
        );
        assert!(q.push("u", vec![text("1"), text("2")]).await);
        assert!(q.push_front("u", vec![text("0")]).await);
        assert_eq!(q.depth("u").await, 3);
        assert_eq!(q.take("u").await, [text("0"), text("1"), text("2")]);
        assert!(q.take("u").await.is_empty());
        assert!(q.push("u", vec![text("late")]).await);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(q.take("u").await.is_empty());
    }
}
