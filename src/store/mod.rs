//! Shared state: a small key/value store that several wxgate nodes can share.
//!
//! The [`Store`] trait is deliberately tiny and generic (string keys, byte
//! values, optional TTLs) so the same backends serve the access token and its
//! refresh lock today, and message dedup and conversation history later:
//!
//! - [`MemoryStore`]: in this process only; the default, needs nothing.
//! - [`RedisStore`]: Redis shared by every node (one server, a Sentinel-watched
//!   master or a Cluster); reconnects by itself after an outage or a failover.
//!
//! Keys are namespaced per account with [`Namespace`], e.g.
//! `wxgate:{wx0123}:access_token`, the braces a Redis Cluster hash tag. Knows nothing of tokens, WeChat or HTTP.

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisSettings, RedisStore, RedisTarget, SentinelSettings};

/// What every [`Store`] operation returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A key/value store shared by the nodes of one deployment.
///
/// Every operation is atomic on its own; `set_nx` + `compare_and_delete` are
/// enough to build an owner-checked lock. Implementations bound every call in
/// time and never panic on a backend failure: they return [`StoreError`].
pub trait Store: Send + Sync + std::fmt::Debug {
    /// The value under `key`, if any and not expired.
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;
    /// Sets `key`, replacing any value; `ttl = None` keeps it until deleted.
    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()>;
    /// Sets `key` only when it does not exist (Redis `SET NX PX`); `true` when set.
    fn set_nx<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool>;
    /// Deletes `key`; `true` when it existed.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;
    /// Deletes `key` only while it still holds `expected` (releasing a lock
    /// only by its owner); `true` when deleted.
    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: &'a [u8]) -> StoreFuture<'a, bool>;
    /// Gives `key` a new TTL only while it still holds `expected` (renewing
    /// a lock only by its owner); `true` when renewed.
    fn compare_and_expire<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    /// Replaces `key`'s value with `value` (TTL `ttl`) only while it still
    /// holds `expected`; `true` when replaced. The first of several writers
    /// to replace an owner's value wins.
    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        value: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool>;
    /// One atomic step: counts an attempt under `counter` (a new counter
    /// lives `counter_ttl`), then sets `key` to `value` for `ttl` when it is
    /// absent. Returns the attempt number and, when `key` was present, its
    /// value (which was left as it was).
    fn claim<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        counter: &'a str,
        counter_ttl: Duration,
    ) -> StoreFuture<'a, (i64, Option<Vec<u8>>)>;
    /// Appends `values` to the list under `key`, which then lives `ttl`.
    fn list_push<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;
    /// Puts `values` back at the front of the list under `key`, in their
    /// order, ahead of anything appended meanwhile; the list then lives `ttl`.
    fn list_push_front<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()>;
    /// Takes the whole list under `key` and deletes it, in one step.
    fn list_take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Vec<u8>>>;
    /// The length of the list under `key` (0 when absent).
    fn list_len<'a>(&'a self, key: &'a str) -> StoreFuture<'a, u64>;
    /// Adds one to the counter under `key` and returns the new value; a
    /// counter created by this call lives `ttl` (Redis `INCR` + `PEXPIRE`).
    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, i64>;
    /// Adds `member` to the set under `key` (Redis `SADD`); no TTL.
    fn set_add<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, ()>;
    /// Removes `member` from the set under `key`; `true` when it was there.
    fn set_remove<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, bool>;
    /// The members of the set under `key`, in no particular order.
    fn set_members<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<String>>;
    /// Checks the backend is reachable; a short status on success.
    fn ping(&self) -> StoreFuture<'_, String>;
    /// `memory` or `redis`, for logs and readiness.
    fn backend(&self) -> &'static str;
}

/// Why a store operation failed. The messages are meant for operators.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend cannot be reached (connection refused, reset, DNS…).
    #[error("{backend} store at {location} is unreachable: {reason}")]
    Unavailable {
        /// `redis`.
        backend: &'static str,
        /// Where it was expected, without credentials.
        location: String,
        /// The cause.
        reason: String,
    },
    /// The backend did not answer in time.
    #[error("{backend} store did not answer {operation} within {after:?}")]
    Timeout {
        /// `redis`.
        backend: &'static str,
        /// The command, e.g. `GET`.
        operation: &'static str,
        /// The limit.
        after: Duration,
    },
    /// The backend answered with an error.
    #[error("{backend} store refused {operation}: {reason}")]
    Command {
        /// `redis`.
        backend: &'static str,
        /// The command.
        operation: &'static str,
        /// The backend's message.
        reason: String,
    },
}

/// How the keys of an account are spelled (`[store] key_format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyFormat {
    /// `wxgate:{app_id}:name`: the braces are a Redis Cluster hash tag, so
    /// every key of one account hashes to one slot and a script over
    /// several of them stays on one node.
    #[default]
    Tagged,
    /// `wxgate:app_id:name`, the spelling of versions before hash tags:
    /// for a deployment whose nodes are upgraded one by one. Not for Cluster.
    Legacy,
}

impl KeyFormat {
    /// `tagged` or `legacy`, as in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyFormat::Tagged => "tagged",
            KeyFormat::Legacy => "legacy",
        }
    }
}

/// Builds the keys of one account: `wxgate:{app_id}:{name}`, braces
/// included (a Redis Cluster hash tag: all of an account's keys share one
/// slot), or `wxgate:app_id:name` with [`KeyFormat::Legacy`].
///
/// Every node serving the same account must derive the same keys; different
/// accounts sharing one Redis never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
    /// The pre-tag spelling, when it differs from `prefix`.
    legacy_prefix: Option<String>,
}

impl Namespace {
    /// The namespace of an account, its keys hash-tagged.
    pub fn for_app(app_id: &str) -> Self {
        Namespace::new(app_id, KeyFormat::Tagged)
    }

    /// The namespace of an account with keys spelled as `format` says.
    pub fn new(app_id: &str, format: KeyFormat) -> Self {
        let legacy = format!("wxgate:{app_id}:");
        match format {
            KeyFormat::Tagged => Namespace {
                prefix: format!("wxgate:{{{app_id}}}:"),
                legacy_prefix: Some(legacy),
            },
            KeyFormat::Legacy => Namespace {
                prefix: legacy,
                legacy_prefix: None,
            },
        }
    }

    /// The same namespace without [`Namespace::legacy_key`]s: for a Redis
    /// Cluster, where no older version can have left state (they had no
    /// Cluster support) and the older keys would sit in other slots.
    pub fn without_legacy_keys(mut self) -> Self {
        self.legacy_prefix = None;
        self
    }

    /// The full key for `name`, e.g. `access_token`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The key an older version (before hash tags) used for `name`, when it
    /// is not [`Namespace::key`]: read as a fallback, and kept written, for
    /// state that must survive a rolling upgrade (the access token).
    pub fn legacy_key(&self, name: &str) -> Option<String> {
        self.legacy_prefix.as_ref().map(|p| format!("{p}{name}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_app_id() {
        let ns = Namespace::for_app("wx123");
        assert_eq!(ns.key("access_token"), "wxgate:{wx123}:access_token");
        assert_eq!(
            ns.legacy_key("access_token").as_deref(),
            Some("wxgate:wx123:access_token")
        );
        assert_ne!(
            Namespace::for_app("wx456").key("access_token"),
            ns.key("access_token")
        );
    }

    #[test]
    fn the_legacy_format_spells_keys_as_before_hash_tags() {
        let ns = Namespace::new("wx123", KeyFormat::Legacy);
        assert_eq!(ns.key("dedup:x"), "wxgate:wx123:dedup:x");
        assert_eq!(ns.legacy_key("dedup:x"), None);
    }

    /// The CRC16 slot Redis Cluster gives `key` (the hash tag's content when
    /// there is one), as in the cluster specification.
    fn slot(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = match key.find('{') {
            Some(open) => match key[open + 1..].find('}') {
                Some(len) if len > 0 => &bytes[open + 1..open + 1 + len],
                _ => bytes,
            },
            None => bytes,
        };
        let mut crc: u16 = 0;
        for &b in hashed {
            crc ^= u16::from(b) << 8;
            for _ in 0..8 {
                crc = if crc & 0x8000 != 0 {
                    (crc << 1) ^ 0x1021
                } else {
                    crc << 1
                };
            }
        }
        crc % 16384
    }

    #[test]
    fn every_key_of_an_account_is_in_one_cluster_slot() {
        // The reference values of the cluster specification and of Redis.
        assert_eq!(slot("123456789"), 0x31C3);
        assert_eq!(slot("foo"), 12182, "CLUSTER KEYSLOT foo");
        assert_eq!(slot("{foo}:bar"), 12182);
        let ns = Namespace::for_app("ww5d3c1b9a7e2f4086.1000002");
        let names = [
            "access_token",
            "access_token:lock",
            "dedup:abc",
            "dedup:n:abc",
            "pending:o_1",
            "job:1:lease",
        ];
        let slots: std::collections::BTreeSet<u16> =
            names.iter().map(|n| slot(&ns.key(n))).collect();
        assert_eq!(slots.len(), 1, "{slots:?}");
        let legacy = Namespace::new("ww5d3c1b9a7e2f4086.1000002", KeyFormat::Legacy);
        let spread: std::collections::BTreeSet<u16> =
            names.iter().map(|n| slot(&legacy.key(n))).collect();
        assert!(spread.len() > 1, "the check can fail: {spread:?}");
    }
}
