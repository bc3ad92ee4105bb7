//! Dedup shared by every node through the [`Store`] (Redis): one key per
//! message holds either the claim of the node handling it (a short lease,
//! renewed while the work runs) or, once answered, the answer itself for
//! the dedup window. A retry that reaches another node waits for the
//! answer; if the handler's lease lapses (the node died), the waiting node
//! takes the claim and handles the message itself. A second key counts the
//! deliveries of each message, so a handler knows which of WeChat's pushes
//! it is answering.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::dedup::{Claim, Dedup, DedupError, DedupFuture, DedupKey, Recorded, Waited};
use crate::store::{Namespace, Store, StoreError};

/// How often a waiting retry looks for the first delivery's answer.
const POLL: Duration = Duration::from_millis(25);
/// How long a claim lives without renewal: shorter than WeChat's ~5 s
/// between pushes, so that the retry after a node died finds it lapsed.
pub const LEASE: Duration = Duration::from_secs(3);

/// Dedup records in a shared store.
pub struct StoreDedup {
    store: Arc<dyn Store>,
    namespace: Namespace,
    window: Duration,
    /// This node's claim value: `O` and a random id.
    owner: Vec<u8>,
}

impl StoreDedup {
    /// Claims and answers live `window` long under `namespace`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace, window: Duration) -> Self {
        StoreDedup {
            store,
            namespace,
            window,
            owner: format!("O{:016x}", rand::random::<u64>()).into_bytes(),
        }
    }

    fn claim_key(&self, key: &DedupKey) -> String {
        self.namespace.key(&format!("dedup:{}", key.as_str()))
    }

    fn pushes_key(&self, key: &DedupKey) -> String {
        self.namespace.key(&format!("dedup:n:{}", key.as_str()))
    }
}

fn store_error(e: StoreError) -> DedupError {
    DedupError(e.to_string())
}

/// `S` for `success`, `X` followed by the reply XML otherwise; claims
/// start with `O`.
fn encode(answer: &Recorded) -> Vec<u8> {
    match answer {
        None => b"S".to_vec(),
        Some(xml) => {
            let mut v = Vec::with_capacity(xml.len() + 1);
            v.push(b'X');
            v.extend_from_slice(xml.as_bytes());
            v
        }
    }
}

/// The answer a value records, or `None` when it is a claim.
fn decode(value: &[u8]) -> Option<Recorded> {
    match value.split_first() {
        Some((b'X', xml)) => Some(Some(Arc::from(String::from_utf8_lossy(xml).as_ref()))),
        Some((b'S', _)) => Some(None),
        _ => None,
    }
}

fn push_number(n: i64) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

impl Dedup for StoreDedup {
    fn claim<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, Result<Claim, DedupError>> {
        Box::pin(async move {
            let (n, found) = self
                .store
                .claim(
                    &self.claim_key(key),
                    &self.owner,
                    LEASE,
                    &self.pushes_key(key),
                    self.window,
                )
                .await
                .map_err(store_error)?;
            let push = push_number(n);
            Ok(match found {
                None => Claim::First { push },
                Some(value) => match decode(&value) {
                    Some(answer) => Claim::Done(answer),
                    None => Claim::InFlight { push },
                },
            })
        })
    }

    fn complete<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<(), DedupError>> {
        Box::pin(async move {
            self.store
                .set(&self.claim_key(key), &encode(&answer), Some(self.window))
                .await
                .map_err(store_error)
        })
    }

    fn settle<'a>(
        &'a self,
        key: &'a DedupKey,
        answer: Recorded,
    ) -> DedupFuture<'a, Result<bool, DedupError>> {
        Box::pin(async move {
            let claim_key = self.claim_key(key);
            let value = encode(&answer);
            loop {
                let current = self.store.get(&claim_key).await.map_err(store_error)?;
                match current {
                    // Already answered: someone settled first.
                    Some(v) if decode(&v).is_some() => return Ok(false),
                    // Claimed (by this node or another): replace the claim.
                    Some(owner) => {
                        if self
                            .store
                            .compare_and_set(&claim_key, &owner, &value, self.window)
                            .await
                            .map_err(store_error)?
                        {
                            return Ok(true);
                        }
                        // The value changed in between: look again.
                    }
                    // The claim lapsed: nobody answered yet, so this does.
                    None => {
                        return self
                            .store
                            .set_nx(&claim_key, &value, self.window)
                            .await
                            .map_err(store_error)
                    }
                }
            }
        })
    }

    fn renew<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self
                .store
                .compare_and_expire(&self.claim_key(key), &self.owner, LEASE)
                .await
            {
                tracing::warn!(error = %e, "cannot renew a message claim; another node may take it over");
            }
        })
    }

    fn abandon<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let _ = self
                .store
                .compare_and_delete(&self.claim_key(key), &self.owner)
                .await;
        })
    }

    fn wait<'a>(&'a self, key: &'a DedupKey, timeout: Duration) -> DedupFuture<'a, Waited> {
        Box::pin(async move {
            let claim_key = self.claim_key(key);
            let deadline = Instant::now() + timeout;
            loop {
                match self.store.get(&claim_key).await {
                    Ok(Some(value)) => {
                        if let Some(answer) = decode(&value) {
                            return Waited::Answer(answer);
                        }
                    }
                    Ok(None) => {
                        // The handler's lease lapsed: take the message over.
                        if let Ok(true) = self.store.set_nx(&claim_key, &self.owner, LEASE).await {
                            return Waited::TakeOver;
                        }
                    }
                    Err(_) => {}
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Waited::TimedOut;
                }
                tokio::time::sleep(left.min(POLL)).await;
            }
        })
    }

    fn describe(&self) -> &'static str {
        self.store.backend()
    }

    fn remote(&self) -> bool {
        self.store.backend() != "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

    #[tokio::test(start_paused = true)]
    async fn a_lapsed_claim_is_taken_over_and_the_first_settler_wins() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let ns = || Namespace::for_app("wx1");
        let window = Duration::from_secs(60);
        let dead = StoreDedup::new(store.clone(), ns(), window);
        let alive = StoreDedup::new(store.clone(), ns(), window);
        let key = DedupKey::from_raw("gh:o:m:9");
        assert!(matches!(
            dead.claim(&key).await.unwrap(),
            Claim::First { push: 1 }
        ));
        // The handler renews while it works; this one never does (it died).
        assert_eq!(
            alive.wait(&key, LEASE + Duration::from_millis(100)).await,
            Waited::TakeOver
        );
        // The dead node's stale renewal cannot steal the claim back.
        dead.renew(&key).await;
        assert!(matches!(
            alive.claim(&key).await.unwrap(),
            Claim::InFlight { push: 2 }
        ));
        let answer: Recorded = Some(Arc::from("<xml>a</xml>"));
        assert!(alive.settle(&key, answer.clone()).await.unwrap());
        assert!(!dead.settle(&key, None).await.unwrap());
        assert!(matches!(dead.claim(&key).await.unwrap(), Claim::Done(x) if x == answer));
    }

    #[tokio::test]
    async fn two_nodes_share_claims_and_answers() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let a = StoreDedup::new(
            store.clone(),
            Namespace::for_app("wx1"),
            Duration::from_secs(60),
        );
        let b = StoreDedup::new(store, Namespace::for_app("wx1"), Duration::from_secs(60));
        let key = DedupKey::from_raw("gh:o:m:1");
        assert!(matches!(
            a.claim(&key).await.unwrap(),
            Claim::First { push: 1 }
        ));
        assert!(matches!(
            b.claim(&key).await.unwrap(),
            Claim::InFlight { push: 2 }
        ));
        let answer: Recorded = Some(Arc::from("<xml>r</xml>"));
        a.complete(&key, answer.clone()).await.unwrap();
        assert_eq!(
            b.wait(&key, Duration::from_secs(1)).await,
            Waited::Answer(answer.clone())
        );
        assert!(matches!(b.claim(&key).await.unwrap(), Claim::Done(x) if x == answer));
        let success = DedupKey::from_raw("gh:o:m:2");
        assert!(matches!(
            a.claim(&success).await.unwrap(),
            Claim::First { .. }
        ));
        a.complete(&success, None).await.unwrap();
        assert!(matches!(
            b.claim(&success).await.unwrap(),
            Claim::Done(None)
        ));
    }
}
