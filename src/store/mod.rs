//! Shared state: a small key/value store that several wxgate nodes can share.
//!
//! The [`Store`] trait is deliberately tiny and generic (string keys, byte
//! values, optional TTLs) so the same backends serve the access token and its
//! refresh lock today, and message dedup and conversation history later:
//!
//! - [`MemoryStore`]: in this process only; the default, needs nothing.
//! - [`RedisStore`]: a Redis server shared by every node; reconnects by itself
//!   after an outage.
//!
//! Keys are namespaced per account with [`Namespace`], e.g.
//! `wxgate:{app_id}:access_token`. Knows nothing of tokens, WeChat or HTTP.

mod memory;
mod redis;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use thiserror::Error;

pub use self::memory::MemoryStore;
pub use self::redis::{RedisSettings, RedisStore};

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

/// Builds the keys of one account: `wxgate:{app_id}:{name}`.
///
/// Every node serving the same account must derive the same keys; different
/// accounts sharing one Redis never collide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    prefix: String,
}

impl Namespace {
    /// The namespace of an account.
    pub fn for_app(app_id: &str) -> Self {
        Namespace {
            prefix: format!("wxgate:{app_id}:"),
        }
    }

    /// The full key for `name`, e.g. `access_token`.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_namespaced_by_app_id() {
        let ns = Namespace::for_app("wx123");
        assert_eq!(ns.key("access_token"), "wxgate:wx123:access_token");
        assert_ne!(
            Namespace::for_app("wx456").key("access_token"),
            ns.key("access_token")
        );
    }
}
