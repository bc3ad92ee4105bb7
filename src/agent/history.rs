//! Per-user conversation memory of `openai` upstreams, in the shared store.
//!
//! One JSON array of `{"role", "content"}` messages per user under
//! `wxgate:{app_id}:history:{openid}`, rewritten after each answer with a
//! fresh TTL. Two messages from one user at the same moment may each save
//! without the other's turn; losing one turn of context is acceptable,
//! a lock per user is not worth it. Store failures lose memory, never answers.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;
use crate::store::{Namespace, Store};

/// One chat message, as chat-completions APIs take them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

impl ChatMessage {
    /// A message with `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.to_owned(),
            content: content.into(),
        }
    }
}

/// Conversation memory for one account.
#[derive(Clone)]
pub struct History {
    store: Arc<dyn Store>,
    namespace: Namespace,
    metrics: Arc<Metrics>,
}

impl History {
    /// Memory in `store`, under the account's `namespace`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace, metrics: Arc<Metrics>) -> Self {
        History {
            store,
            namespace,
            metrics,
        }
    }

    /// The store key of a user's history.
    pub fn key(&self, openid: &str) -> String {
        self.namespace.key(&format!("history:{openid}"))
    }

    /// The remembered messages of `openid`, oldest first; empty when there
    /// are none or the store fails.
    pub async fn load(&self, openid: &str) -> Vec<ChatMessage> {
        match self.store.get(&self.key(openid)).await {
            Ok(Some(bytes)) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!(error = %e, "unreadable conversation history; starting afresh");
                Vec::new()
            }),
            Ok(None) => Vec::new(),
            Err(e) => {
                self.metrics.store_error("history_get");
                tracing::warn!(error = %e, "cannot read conversation history; answering without it");
                Vec::new()
            }
        }
    }

    /// Remembers `messages` (the last `turns` question/answer pairs) for `ttl`.
    pub async fn save(
        &self,
        openid: &str,
        mut messages: Vec<ChatMessage>,
        turns: usize,
        ttl: Duration,
    ) {
        let keep = turns.saturating_mul(2);
        if messages.len() > keep {
            messages.drain(..messages.len() - keep);
        }
        let key = self.key(openid);
        let result = if messages.is_empty() {
            self.store.delete(&key).await.map(drop)
        } else {
            // Serialising plain strings cannot fail.
            let bytes = serde_json::to_vec(&messages).unwrap_or_default();
            self.store.set(&key, &bytes, Some(ttl)).await
        };
        if let Err(e) = result {
            self.metrics.store_error("history_set");
            tracing::warn!(error = %e, "cannot save conversation history");
        }
    }

    /// Forgets the conversation of `openid`.
    pub async fn clear(&self, openid: &str) {
        if let Err(e) = self.store.delete(&self.key(openid)).await {
            self.metrics.store_error("history_delete");
            tracing::warn!(error = %e, "cannot clear conversation history");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test]
    async fn keeps_the_last_turns_and_clears() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let h = History::new(store.clone(), Namespace::for_app("wx1"), Arc::default());
        assert_eq!(h.key("o_1"), "wxgate:{wx1}:history:o_1");
        assert!(h.load("o_1").await.is_empty());
        let turns: Vec<_> = (0..6)
            .flat_map(|i| {
                [
                    ChatMessage::new("user", format!("q{i}")),
                    ChatMessage::new("assistant", format!("a{i}")),
                ]
            })
            .collect();
        h.save("o_1", turns, 2, Duration::from_secs(60)).await;
        let kept: Vec<_> = h.load("o_1").await.into_iter().map(|m| m.content).collect();
        assert_eq!(kept, ["q4", "a4", "q5", "a5"]);
        h.clear("o_1").await;
        assert!(h.load("o_1").await.is_empty());
        assert!(store
            .get("wxgate:{wx1}:history:o_1")
            .await
            .unwrap()
            .is_none());
    }
}
