//! The in-process store: one node, nothing to run.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use super::{Store, StoreError, StoreFuture};

/// Expired entries are swept every this many writes, so keys written once
/// and never read again (dedup keys) do not accumulate.
const SWEEP_EVERY: u64 = 1024;

/// A [`Store`] in this process's memory.
///
/// A std `Mutex` rather than a tokio one: every critical section is a hash
/// map operation that never awaits, so the lock is never held across a yield.
/// Expiry uses tokio's clock, so tests with a paused clock can advance it.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<String, Entry>,
    sets: HashMap<String, HashSet<String>>,
    lists: HashMap<String, (VecDeque<Vec<u8>>, Instant)>,
    writes: u64,
}

#[derive(Debug)]
struct Entry {
    value: Vec<u8>,
    expires: Option<Instant>,
}

impl Entry {
    fn live(&self, now: Instant) -> bool {
        self.expires.is_none_or(|at| now < at)
    }
}

impl State {
    fn live(&mut self, key: &str, now: Instant) -> Option<&Entry> {
        if self.entries.get(key).is_some_and(|e| !e.live(now)) {
            self.entries.remove(key);
        }
        self.entries.get(key)
    }

    fn insert(&mut self, key: &str, value: &[u8], ttl: Option<Duration>, now: Instant) {
        self.writes += 1;
        if self.writes.is_multiple_of(SWEEP_EVERY) {
            self.entries.retain(|_, e| e.live(now));
        }
        let entry = Entry {
            value: value.to_vec(),
            expires: ttl.map(|t| now + t),
        };
        self.entries.insert(key.to_owned(), entry);
    }
}

impl State {
    /// Adds one to the counter under `key` (a new one lives `ttl`).
    fn count(&mut self, key: &str, ttl: Duration, now: Instant) -> i64 {
        let current = self
            .live(key, now)
            .and_then(|e| std::str::from_utf8(&e.value).ok()?.parse::<i64>().ok());
        match current {
            Some(n) => {
                let next = n.saturating_add(1);
                if let Some(e) = self.entries.get_mut(key) {
                    e.value = next.to_string().into_bytes();
                }
                next
            }
            None => {
                self.insert(key, b"1", Some(ttl), now);
                1
            }
        }
    }

    /// The live list under `key`, made empty when absent or expired.
    fn list(&mut self, key: &str, now: Instant) -> &mut (VecDeque<Vec<u8>>, Instant) {
        let list = self
            .lists
            .entry(key.to_owned())
            .or_insert_with(|| (VecDeque::new(), now));
        if list.1 <= now {
            list.0.clear();
        }
        list
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, Instant) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-updated
        // (each operation is one HashMap call), so a poisoned lock is usable.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state, Instant::now())
    }
}

fn ready<'a, T: Send + 'a>(value: T) -> StoreFuture<'a, T> {
    Box::pin(std::future::ready(Ok::<T, StoreError>(value)))
}

impl Store for MemoryStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        ready(self.with(|s, now| s.live(key, now).map(|e| e.value.clone())))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        self.with(|s, now| s.insert(key, value, ttl, now));
        ready(())
    }

    fn set_nx<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        ready(self.with(|s, now| {
            if s.live(key, now).is_some() {
                return false;
            }
            s.insert(key, value, Some(ttl), now);
            true
        }))
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        ready(self.with(|s, now| s.live(key, now).is_some() && s.entries.remove(key).is_some()))
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: &'a [u8]) -> StoreFuture<'a, bool> {
        ready(self.with(|s, now| {
            if s.live(key, now).is_some_and(|e| e.value == expected) {
                s.entries.remove(key);
                true
            } else {
                false
            }
        }))
    }

    fn compare_and_expire<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        ready(self.with(|s, now| match s.entries.get_mut(key) {
            Some(e) if e.live(now) && e.value == expected => {
                e.expires = Some(now + ttl);
                true
            }
            _ => false,
        }))
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        value: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        ready(self.with(|s, now| {
            if s.live(key, now).is_some_and(|e| e.value == expected) {
                s.insert(key, value, Some(ttl), now);
                true
            } else {
                false
            }
        }))
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        counter: &'a str,
        counter_ttl: Duration,
    ) -> StoreFuture<'a, (i64, Option<Vec<u8>>)> {
        ready(self.with(|s, now| {
            let attempt = s.count(counter, counter_ttl, now);
            match s.live(key, now) {
                Some(e) => (attempt, Some(e.value.clone())),
                None => {
                    s.insert(key, value, Some(ttl), now);
                    (attempt, None)
                }
            }
        }))
    }

    fn list_push<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.with(|s, now| {
            let list = s.list(key, now);
            list.0.extend(values.iter().cloned());
            list.1 = now + ttl;
        });
        ready(())
    }

    fn list_push_front<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        self.with(|s, now| {
            let list = s.list(key, now);
            for value in values.iter().rev() {
                list.0.push_front(value.clone());
            }
            list.1 = now + ttl;
        });
        ready(())
    }

    fn list_take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Vec<u8>>> {
        ready(self.with(|s, now| match s.lists.remove(key) {
            Some((list, expires)) if now < expires => list.into(),
            _ => Vec::new(),
        }))
    }

    fn list_len<'a>(&'a self, key: &'a str) -> StoreFuture<'a, u64> {
        ready(self.with(|s, now| {
            s.lists
                .get(key)
                .filter(|(_, expires)| now < *expires)
                .map_or(0, |(list, _)| list.len() as u64)
        }))
    }

    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, i64> {
        ready(self.with(|s, now| s.count(key, ttl, now)))
    }

    fn set_add<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        self.with(|s, _| {
            s.sets
                .entry(key.to_owned())
                .or_default()
                .insert(member.to_owned())
        });
        ready(())
    }

    fn set_remove<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, bool> {
        ready(self.with(|s, _| {
            let removed = s.sets.get_mut(key).is_some_and(|set| set.remove(member));
            if s.sets.get(key).is_some_and(HashSet::is_empty) {
                s.sets.remove(key);
            }
            removed
        }))
    }

    fn set_members<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<String>> {
        ready(self.with(|s, _| {
            s.sets
                .get(key)
                .map(|set| set.iter().cloned().collect())
                .unwrap_or_default()
        }))
    }

    fn ping(&self) -> StoreFuture<'_, String> {
        ready("memory".to_owned())
    }

    fn backend(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn values_expire_with_their_ttl() {
        let store = MemoryStore::new();
        store
            .set("k", b"v", Some(Duration::from_secs(10)))
            .await
            .unwrap();
        store.set("forever", b"f", None).await.unwrap();
        assert_eq!(store.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(store.get("k").await.unwrap(), None);
        assert_eq!(
            store.get("forever").await.unwrap().as_deref(),
            Some(&b"f"[..])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn counters_count_and_expire_and_sets_hold_members() {
        let store = MemoryStore::new();
        let ttl = Duration::from_secs(60);
        assert_eq!(store.incr("n", ttl).await.unwrap(), 1);
        assert_eq!(store.incr("n", ttl).await.unwrap(), 2);
        tokio::time::advance(ttl).await;
        assert_eq!(store.incr("n", ttl).await.unwrap(), 1);
        store.set_add("s", "a").await.unwrap();
        store.set_add("s", "b").await.unwrap();
        store.set_add("s", "a").await.unwrap();
        let mut members = store.set_members("s").await.unwrap();
        members.sort();
        assert_eq!(members, ["a", "b"]);
        assert!(store.set_remove("s", "a").await.unwrap());
        assert!(!store.set_remove("s", "a").await.unwrap());
        assert_eq!(store.set_members("s").await.unwrap(), ["b"]);
        assert!(store.set_members("none").await.unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn set_nx_is_a_lock_that_expires() {
        let store = MemoryStore::new();
        assert!(store
            .set_nx("lock", b"a", Duration::from_millis(500))
            .await
            .unwrap());
        assert!(!store
            .set_nx("lock", b"b", Duration::from_millis(500))
            .await
            .unwrap());
        tokio::time::advance(Duration::from_millis(500)).await;
        assert!(store
            .set_nx("lock", b"b", Duration::from_millis(500))
            .await
            .unwrap());
    }

    #[tokio::test]
    async fn compare_and_delete_only_for_the_owner() {
        let store = MemoryStore::new();
        store
            .set_nx("lock", b"owner", Duration::from_secs(5))
            .await
            .unwrap();
        assert!(!store.compare_and_delete("lock", b"intruder").await.unwrap());
        assert!(!store
            .compare_and_expire("lock", b"intruder", Duration::from_secs(50))
            .await
            .unwrap());
        assert!(store
            .compare_and_expire("lock", b"owner", Duration::from_secs(50))
            .await
            .unwrap());
        assert!(store.get("lock").await.unwrap().is_some());
        assert!(store.compare_and_delete("lock", b"owner").await.unwrap());
        assert!(!store.delete("lock").await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn expired_keys_are_swept_on_writes() {
        let store = MemoryStore::new();
        for i in 0..SWEEP_EVERY {
            store
                .set(&format!("k{i}"), b"", Some(Duration::from_secs(1)))
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        store.set("last", b"", None).await.unwrap();
        for i in 0..SWEEP_EVERY {
            store.set(&format!("n{i}"), b"", None).await.unwrap();
        }
        let len = store.state.lock().unwrap().entries.len() as u64;
        assert_eq!(len, SWEEP_EVERY + 1);
    }
}
