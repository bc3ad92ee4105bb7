//! Slow turns written down in the store while they run, so that a turn cut
//! by a stop or a crash is run again by the next node that looks: every
//! node sweeps its accounts' jobs, and takes over one whose lease lapsed.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::strategy::Strategy;
use crate::domain::Message;
use crate::store::{Namespace, Store};

/// A job's lease lives this long without renewal.
pub const JOB_LEASE: Duration = Duration::from_secs(3);

/// What a node needs to run a cut turn again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobRecord {
    /// The message of the turn.
    pub message: Message,
    /// The strategy it was delivered by.
    pub strategy: String,
    /// When it started (Unix seconds).
    pub started_at: i64,
}

/// The running slow turns of one account.
#[derive(Clone)]
pub struct Jobs {
    store: Arc<dyn Store>,
    namespace: Namespace,
    ttl: Duration,
    owner: Vec<u8>,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Jobs {
    /// Jobs under the account's `namespace`; a record is forgotten after `ttl`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace, ttl: Duration) -> Self {
        Jobs {
            store,
            namespace,
            ttl,
            owner: format!("J{:016x}", rand::random::<u64>()).into_bytes(),
        }
    }

    fn index(&self) -> String {
        self.namespace.key("jobs")
    }

    fn record_key(&self, id: &str) -> String {
        self.namespace.key(&format!("job:{id}"))
    }

    fn lease_key(&self, id: &str) -> String {
        self.namespace.key(&format!("job:{id}:lease"))
    }

    /// Writes the job down and holds its lease. Failures are logged: the
    /// turn still runs, it is only not recoverable.
    pub async fn start(&self, id: &str, message: &Message, strategy: Strategy) {
        let record = JobRecord {
            message: message.clone(),
            strategy: strategy.as_str().to_owned(),
            started_at: unix_now(),
        };
        // Serialising plain data cannot fail.
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let written = async {
            self.store
                .set(&self.lease_key(id), &self.owner, Some(JOB_LEASE))
                .await?;
            self.store
                .set(&self.record_key(id), &bytes, Some(self.ttl))
                .await?;
            self.store.set_add(&self.index(), id).await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, "cannot write the turn down; a stop now would lose it");
        }
    }

    fn answered_key(&self, id: &str) -> String {
        self.namespace.key(&format!("job:{id}:answered"))
    }

    /// The platform's push was answered (the interim text): no retry of it
    /// will come, so a sweep need not wait for the retries to be over.
    pub async fn mark_answered(&self, id: &str) {
        let _ = self
            .store
            .set(&self.answered_key(id), b"1", Some(self.ttl))
            .await;
    }

    /// Keeps the job's lease while the turn runs.
    pub async fn renew(&self, id: &str) {
        let _ = self
            .store
            .compare_and_expire(&self.lease_key(id), &self.owner, JOB_LEASE)
            .await;
    }

    /// The turn is over (delivered, kept, or given up): forget it.
    pub async fn finish(&self, id: &str) {
        let _ = self.store.set_remove(&self.index(), id).await;
        let _ = self.store.delete(&self.record_key(id)).await;
        let _ = self.store.delete(&self.answered_key(id)).await;
        let _ = self
            .store
            .compare_and_delete(&self.lease_key(id), &self.owner)
            .await;
    }

    /// The jobs whose node is gone, now held by this node: their lease
    /// lapsed, and their push was answered or the platform's retries are
    /// over, so that no retry can be answering the same message elsewhere.
    pub async fn orphans(&self, retry_window: Duration) -> Vec<(String, JobRecord)> {
        let ids = match self.store.set_members(&self.index()).await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::debug!(error = %e, "cannot list the running turns");
                return Vec::new();
            }
        };
        let mut taken = Vec::new();
        for id in ids {
            let record = match self.store.get(&self.record_key(&id)).await {
                Ok(Some(bytes)) => match serde_json::from_slice::<JobRecord>(&bytes) {
                    Ok(r) => r,
                    Err(_) => {
                        let _ = self.store.set_remove(&self.index(), &id).await;
                        continue;
                    }
                },
                // Expired or finished meanwhile.
                Ok(None) => {
                    let _ = self.store.set_remove(&self.index(), &id).await;
                    continue;
                }
                Err(_) => continue,
            };
            let age = unix_now().saturating_sub(record.started_at);
            if age < retry_window.as_secs() as i64
                && !matches!(self.store.get(&self.answered_key(&id)).await, Ok(Some(_)))
            {
                continue;
            }
            if let Ok(true) = self
                .store
                .set_nx(&self.lease_key(&id), &self.owner, JOB_LEASE)
                .await
            {
                taken.push((id, record));
            }
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    fn message() -> Message {
        Message::parse(
            b"<xml><ToUserName>gh</ToUserName><FromUserName>o</FromUserName>\
              <CreateTime>1</CreateTime><MsgType>text</MsgType><Content>hi</Content>\
              <MsgId>7</MsgId></xml>",
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_job_whose_node_is_gone_is_taken_over_once() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let ns = || Namespace::for_app("wx");
        let dead = Jobs::new(store.clone(), ns(), Duration::from_secs(600));
        let alive = Jobs::new(store.clone(), ns(), Duration::from_secs(600));
        let other = Jobs::new(store, ns(), Duration::from_secs(600));
        dead.start("m7", &message(), Strategy::LateSend).await;
        dead.mark_answered("m7").await;
        // Held while its node renews it.
        assert!(alive.orphans(Duration::from_secs(3600)).await.is_empty());
        tokio::time::advance(JOB_LEASE + Duration::from_millis(1)).await;
        let taken = alive.orphans(Duration::from_secs(3600)).await;
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].1.message, message());
        // Taken once: another sweeper finds it held.
        assert!(other.orphans(Duration::ZERO).await.is_empty());
        alive.finish("m7").await;
        tokio::time::advance(JOB_LEASE * 2).await;
        assert!(other.orphans(Duration::ZERO).await.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_held_push_is_left_to_the_platforms_retries() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let jobs = Jobs::new(store, Namespace::for_app("wx"), Duration::from_secs(600));
        jobs.start("m8", &message(), Strategy::RetryHold).await;
        tokio::time::advance(JOB_LEASE * 2).await;
        assert!(jobs.orphans(Duration::from_secs(3600)).await.is_empty());
        assert_eq!(jobs.orphans(Duration::ZERO).await.len(), 1);
    }
}
