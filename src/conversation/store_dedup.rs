//! Dedup shared by every node through the [`Store`] (Redis): a `SET NX`
//! claim plus a short-lived reply record, so that one node answers a
//! retry that WeChat sent to another.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::dedup::{Claim, Dedup, DedupError, DedupFuture, DedupKey, Recorded};
use crate::store::{Namespace, Store};

/// How often a waiting retry looks for the first delivery's answer.
const POLL: Duration = Duration::from_millis(25);

/// Dedup records in a shared store.
pub struct StoreDedup {
    store: Arc<dyn Store>,
    namespace: Namespace,
    window: Duration,
}

impl StoreDedup {
    /// Claims and answers live `window` long under `namespace`.
    pub fn new(store: Arc<dyn Store>, namespace: Namespace, window: Duration) -> Self {
        StoreDedup {
            store,
            namespace,
            window,
        }
    }

    fn claim_key(&self, key: &DedupKey) -> String {
        self.namespace.key(&format!("dedup:claim:{}", key.as_str()))
    }

    fn answer_key(&self, key: &DedupKey) -> String {
        self.namespace
            .key(&format!("dedup:answer:{}", key.as_str()))
    }

    async fn answer(&self, key: &DedupKey) -> Result<Option<Recorded>, DedupError> {
        let value = self
            .store
            .get(&self.answer_key(key))
            .await
            .map_err(|e| DedupError(e.to_string()))?;
        Ok(value.map(|v| decode(&v)))
    }
}

/// `S` for `success`, `X` followed by the reply XML otherwise.
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

fn decode(value: &[u8]) -> Recorded {
    match value.split_first() {
        Some((b'X', xml)) => Some(Arc::from(String::from_utf8_lossy(xml).as_ref())),
        _ => None,
    }
}

impl Dedup for StoreDedup {
    fn claim<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, Result<Claim, DedupError>> {
        Box::pin(async move {
            let first = self
                .store
                .set_nx(&self.claim_key(key), b"1", self.window)
                .await
                .map_err(|e| DedupError(e.to_string()))?;
            if first {
                return Ok(Claim::First);
            }
            Ok(match self.answer(key).await? {
                Some(answer) => Claim::Done(answer),
                None => Claim::InFlight,
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
                .set(&self.answer_key(key), &encode(&answer), Some(self.window))
                .await
                .map_err(|e| DedupError(e.to_string()))
        })
    }

    fn abandon<'a>(&'a self, key: &'a DedupKey) -> DedupFuture<'a, ()> {
        Box::pin(async move {
            let _ = self.store.delete(&self.claim_key(key)).await;
        })
    }

    fn wait<'a>(
        &'a self,
        key: &'a DedupKey,
        timeout: Duration,
    ) -> DedupFuture<'a, Option<Recorded>> {
        Box::pin(async move {
            let deadline = Instant::now() + timeout;
            loop {
                if let Ok(Some(answer)) = self.answer(key).await {
                    return Some(answer);
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return None;
                }
                tokio::time::sleep(left.min(POLL)).await;
            }
        })
    }

    fn describe(&self) -> &'static str {
        self.store.backend()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;

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
        assert!(matches!(a.claim(&key).await.unwrap(), Claim::First));
        assert!(matches!(b.claim(&key).await.unwrap(), Claim::InFlight));
        let answer: Recorded = Some(Arc::from("<xml>r</xml>"));
        a.complete(&key, answer.clone()).await.unwrap();
        assert_eq!(
            b.wait(&key, Duration::from_secs(1)).await,
            Some(answer.clone())
        );
        assert!(matches!(b.claim(&key).await.unwrap(), Claim::Done(x) if x == answer));
        let success = DedupKey::from_raw("gh:o:m:2");
        assert!(matches!(a.claim(&success).await.unwrap(), Claim::First));
        a.complete(&success, None).await.unwrap();
        assert!(matches!(
            b.claim(&success).await.unwrap(),
            Claim::Done(None)
        ));
    }
}
