//! One turn at a time per conversation, across nodes: a lease in the store
//! that the turn holding it renews, and that the next turn waits for.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::domain::ConversationKey;
use crate::store::{Namespace, Store};

/// A held lease lives this long without renewal (a node that dies holding
/// it delays the conversation's next turn by at most this): shorter than
/// WeChat's ~5 s between pushes, so that the retry a surviving node gets
/// finds the dead node's turn gone.
const LEASE: Duration = Duration::from_secs(3);
/// How often the holder renews.
const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How often a waiting turn looks at the lease.
const POLL: Duration = Duration::from_millis(20);

/// Per-conversation leases of one account.
#[derive(Clone)]
pub struct ConversationLocks {
    store: Arc<dyn Store>,
    namespace: Namespace,
}

/// A held lease; released when dropped (and, if the release cannot reach
/// the store, lapsing by itself).
pub struct Turn {
    store: Arc<dyn Store>,
    key: String,
    owner: Vec<u8>,
    renew: Option<JoinHandle<()>>,
}

impl ConversationLocks {
    /// Leases under the account's `namespace`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace) -> Self {
        ConversationLocks { store, namespace }
    }

    /// Waits for the conversation's earlier turns, then holds its lease.
    /// Gives up waiting after `patience` (the turn then runs unordered, and
    /// says so in the log), and fails open when the store fails.
    pub async fn acquire(
        &self,
        conversation: &ConversationKey,
        patience: Duration,
    ) -> Option<Turn> {
        let key = self.namespace.key(&format!("turn:{}", conversation.user));
        let owner = format!("{:016x}", rand::random::<u64>()).into_bytes();
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            match self.store.set_nx(&key, &owner, LEASE).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "conversation lease unavailable; this turn runs unordered");
                    return None;
                }
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(
                    waited_ms = patience.as_millis() as u64,
                    "an earlier turn of this conversation is still running; this one runs beside it"
                );
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
        let renew = {
            let (store, key, owner) = (self.store.clone(), key.clone(), owner.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RENEW_EVERY).await;
                    if !matches!(
                        store.compare_and_expire(&key, &owner, LEASE).await,
                        Ok(true)
                    ) {
                        tracing::warn!("conversation lease lost; the next turn may start early");
                        return;
                    }
                }
            })
        };
        Some(Turn {
            store: self.store.clone(),
            key,
            owner,
            renew: Some(renew),
        })
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(renew) = self.renew.take() {
            renew.abort();
        }
        let (store, key, owner) = (
            self.store.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.owner),
        );
        // Released in the background: dropping must not block, and a failed
        // release only means the lease lapses by itself.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = store.compare_and_delete(&key, &owner).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn turns_of_one_conversation_run_one_at_a_time() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let locks = ConversationLocks::new(store, Namespace::for_app("wx"));
        let alice = ConversationKey::new("wx", "alice");
        let first = locks.acquire(&alice, Duration::from_secs(60)).await;
        assert!(first.is_some());
        // Another user is not held up.
        let bob = ConversationKey::new("wx", "bob");
        assert!(locks
            .acquire(&bob, Duration::from_millis(1))
            .await
            .is_some());
        // The second turn of alice waits for the first.
        let second = {
            let locks = locks.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                locks
                    .acquire(&alice, Duration::from_secs(60))
                    .await
                    .is_some()
            })
        };
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert!(
            !second.is_finished(),
            "the lease is renewed while the first turn runs"
        );
        drop(first);
        assert!(second.await.unwrap());
    }
}
