//! The Redis store: state shared by every node of a deployment, on one
//! server, a Sentinel-watched master or a Cluster (`target`).
//!
//! One file (about 690 lines) on purpose: each [`Store`] operation's Redis
//! form stands beside the script it runs and the bounded, breaker-guarded
//! call every operation shares.
//!
//! Every script's keys are of one account, so with hash-tagged keys
//! (`wxgate:{app_id}:…`, see `Namespace`) they share a Cluster slot.

mod target;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use redis::{ErrorKind, RedisError, Script};

use self::target::{Connection, Target};
pub use self::target::{RedisTarget, SentinelSettings};
use super::{Store, StoreError, StoreFuture};

/// Deletes KEYS\[1\] only while it holds ARGV\[1\]: the owner-only release of
/// a lock. A plain GET + DEL would race with the lock expiring and another
/// node taking it in between.
const COMPARE_AND_DELETE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
else
    return 0
end
"#;

const COMPARE_AND_EXPIRE: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("PEXPIRE", KEYS[1], ARGV[2])
else
    return 0
end
"#;

/// INCR KEYS\[1\], giving a new counter the TTL ARGV\[1\] (ms).
const INCR_WITH_TTL: &str = r#"
local n = redis.call("INCR", KEYS[1])
if n == 1 then
    redis.call("PEXPIRE", KEYS[1], ARGV[1])
end
return n
"#;

/// KEYS\[1\] := ARGV\[2\] (PX ARGV\[3\]) only while it holds ARGV\[1\].
const COMPARE_AND_SET: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
    redis.call("SET", KEYS[1], ARGV[2], "PX", ARGV[3])
    return 1
else
    return 0
end
"#;

/// Counts the attempt under KEYS\[2\] (new counters live ARGV\[3\] ms),
/// then SET KEYS\[1\] ARGV\[1\] NX PX ARGV\[2\]; returns {attempt, the
/// value found or false}.
const CLAIM: &str = r#"
local n = redis.call("INCR", KEYS[2])
if n == 1 then
    redis.call("PEXPIRE", KEYS[2], ARGV[3])
end
if redis.call("SET", KEYS[1], ARGV[1], "NX", "PX", ARGV[2]) then
    return {n, false}
end
return {n, redis.call("GET", KEYS[1])}
"#;

/// Takes the whole list KEYS\[1\] and deletes it.
const LIST_TAKE: &str = r#"
local items = redis.call("LRANGE", KEYS[1], 0, -1)
redis.call("DEL", KEYS[1])
return items
"#;

/// How to reach Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisSettings {
    /// One server, Sentinel or Cluster.
    pub target: RedisTarget,
    /// With TLS (`rediss://`, `sentinel.tls`): the CA certificate (PEM) to
    /// trust instead of the system's roots.
    pub tls_ca_file: Option<std::path::PathBuf>,
    /// Upper bound on every operation, connecting included.
    pub timeout: Duration,
    /// Consecutive failures (timeouts, connection errors) that open the
    /// circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before one trial operation.
    pub breaker_cooldown: Duration,
}

/// A circuit breaker: after `threshold` consecutive failures, every
/// operation fails at once (microseconds, not the timeout) for `cooldown`;
/// then one operation is let through as a trial: its success closes the
/// breaker, its failure opens it for another `cooldown`. So a stalled Redis
/// costs each request a few timeouts in all, not one each, and recovery
/// needs nobody.
#[derive(Debug)]
struct Breaker {
    threshold: u32,
    cooldown: Duration,
    started: tokio::time::Instant,
    consecutive: AtomicU32,
    /// Milliseconds since `started` until which the breaker is open; 0 when
    /// closed.
    open_until_ms: AtomicU64,
}

impl Breaker {
    fn new(threshold: u32, cooldown: Duration) -> Breaker {
        Breaker {
            threshold: threshold.max(1),
            cooldown,
            started: tokio::time::Instant::now(),
            consecutive: AtomicU32::new(0),
            open_until_ms: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Whether an operation may run now: always when closed; when open,
    /// only one trial once the cooldown has passed.
    fn admit(&self) -> Result<(), Duration> {
        let until = self.open_until_ms.load(Ordering::Acquire);
        if until == 0 {
            return Ok(());
        }
        let now = self.now_ms();
        if now < until {
            return Err(Duration::from_millis(until - now));
        }
        // The cooldown is over: the first caller to move the deadline on is
        // the trial; the others keep failing fast meanwhile.
        let next = now + self.cooldown.as_millis() as u64;
        match self
            .open_until_ms
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => Ok(()),
            Err(_) => Err(self.cooldown),
        }
    }

    fn succeeded(&self) {
        self.consecutive.store(0, Ordering::Release);
        if self.open_until_ms.swap(0, Ordering::AcqRel) != 0 {
            tracing::info!("redis answers again; store circuit breaker closed");
        }
    }

    fn failed(&self) {
        let failures = self.consecutive.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.threshold {
            let until = self.now_ms() + self.cooldown.as_millis() as u64;
            if self.open_until_ms.swap(until.max(1), Ordering::AcqRel) == 0 {
                tracing::warn!(
                    failures,
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "redis keeps failing; store circuit breaker open (operations fail at once)"
                );
            }
        }
    }

    fn is_open(&self) -> bool {
        self.open_until_ms.load(Ordering::Acquire) != 0
    }
}

/// A [`Store`] backed by a Redis server.
///
/// The connection is made on first use, not at construction, so a node starts
/// (and reports itself unready) while Redis is down. After that the crate's
/// clients reconnect whenever the connection drops (one server: a
/// connection manager; Cluster: the cluster client, following MOVED and
/// failovers; Sentinel: the master is asked of the Sentinels again after a
/// failure); operations fail with [`StoreError`] meanwhile, each bounded by
/// [`RedisSettings::timeout`], and succeed again once Redis is back.
pub struct RedisStore {
    target: Target,
    /// Where Redis is, without credentials (the URL may carry a password).
    location: String,
    timeout: Duration,
    breaker: Breaker,
    compare_and_delete: Script,
    compare_and_expire: Script,
    incr_with_ttl: Script,
    compare_and_set: Script,
    claim: Script,
    list_take: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("location", &self.location)
            .field("timeout", &self.timeout)
            .field("breaker_open", &self.breaker.is_open())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Parses the URLs; connects lazily.
    pub fn open(settings: &RedisSettings) -> Result<RedisStore, StoreError> {
        let (target, location) = Target::open(
            &settings.target,
            settings.tls_ca_file.as_ref(),
            settings.timeout,
        )
        .map_err(|reason| StoreError::Unavailable {
            backend: "redis",
            location: "(the configured [store])".to_owned(),
            reason,
        })?;
        Ok(RedisStore {
            target,
            location,
            timeout: settings.timeout,
            breaker: Breaker::new(settings.breaker_failures, settings.breaker_cooldown),
            compare_and_delete: Script::new(COMPARE_AND_DELETE),
            compare_and_expire: Script::new(COMPARE_AND_EXPIRE),
            incr_with_ttl: Script::new(INCR_WITH_TTL),
            compare_and_set: Script::new(COMPARE_AND_SET),
            claim: Script::new(CLAIM),
            list_take: Script::new(LIST_TAKE),
        })
    }

    /// `host:port/db` (or the Cluster's nodes, or the Sentinel master's
    /// name and the Sentinels), for messages.
    pub fn location(&self) -> &str {
        &self.location
    }

    async fn connection(&self) -> Result<Connection, RedisError> {
        self.target.connection(self.timeout).await
    }

    /// Runs one command against Redis, bounded by the timeout.
    async fn run<T: redis::FromRedisValue>(
        &self,
        operation: &'static str,
        cmd: redis::Cmd,
    ) -> Result<T, StoreError> {
        let work = async {
            let mut conn = self.connection().await?;
            cmd.query_async::<T>(&mut conn).await
        };
        self.bounded(operation, work).await
    }

    async fn bounded<T>(
        &self,
        operation: &'static str,
        work: impl std::future::Future<Output = Result<T, RedisError>>,
    ) -> Result<T, StoreError> {
        if let Err(retry_in) = self.breaker.admit() {
            return Err(StoreError::Unavailable {
                backend: "redis",
                location: self.location.clone(),
                reason: format!(
                    "circuit breaker open after repeated failures (next try in {} ms)",
                    retry_in.as_millis()
                ),
            });
        }
        let result = match tokio::time::timeout(self.timeout, work).await {
            Err(_) => Err(StoreError::Timeout {
                backend: "redis",
                operation,
                after: self.timeout,
            }),
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if target::says_master_moved(&e) {
                    self.target.master_may_have_moved();
                }
                Err(self.classify(operation, e))
            }
        };
        match &result {
            Ok(_) => self.breaker.succeeded(),
            Err(StoreError::Command { .. }) => self.breaker.succeeded(),
            Err(_) => {
                self.breaker.failed();
                self.target.master_may_have_moved();
            }
        }
        result
    }

    fn classify(&self, operation: &'static str, e: RedisError) -> StoreError {
        if e.is_timeout() {
            StoreError::Timeout {
                backend: "redis",
                operation,
                after: self.timeout,
            }
        } else if e.is_io_error()
            || e.is_connection_refusal()
            || e.is_connection_dropped()
            || matches!(
                e.kind(),
                ErrorKind::MasterNameNotFoundBySentinel
                    | ErrorKind::MasterDown
                    | ErrorKind::ClusterDown
                    | ErrorKind::TryAgain
                    | ErrorKind::ClusterConnectionNotFound
            )
        {
            StoreError::Unavailable {
                backend: "redis",
                location: self.location.clone(),
                reason: e.to_string(),
            }
        } else {
            StoreError::Command {
                backend: "redis",
                operation,
                reason: e.to_string(),
            }
        }
    }
}

fn millis(ttl: Duration) -> u64 {
    // PX 0 is an error in Redis; a zero TTL means "expire at once", 1 ms is as good.
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl Store for RedisStore {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(key);
        Box::pin(self.run("GET", cmd))
    }

    fn set<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, ()> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value);
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg(millis(ttl));
        }
        Box::pin(self.run("SET", cmd))
    }

    fn set_nx<'a>(&'a self, key: &'a str, value: &'a [u8], ttl: Duration) -> StoreFuture<'a, bool> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(key).arg(value).arg("NX").arg("PX").arg(millis(ttl));
        Box::pin(async move {
            // `SET … NX` answers OK when set and nil when the key exists.
            let reply: Option<String> = self.run("SET NX", cmd).await?;
            Ok(reply.is_some())
        })
    }

    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool> {
        let mut cmd = redis::cmd("DEL");
        cmd.arg(key);
        Box::pin(async move {
            let n: u64 = self.run("DEL", cmd).await?;
            Ok(n > 0)
        })
    }

    fn compare_and_delete<'a>(&'a self, key: &'a str, expected: &'a [u8]) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.compare_and_delete
                    .key(key)
                    .arg(expected)
                    .invoke_async::<u64>(&mut conn)
                    .await
            };
            Ok(self.bounded("compare-and-delete", work).await? > 0)
        })
    }

    fn compare_and_expire<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.compare_and_expire
                    .key(key)
                    .arg(expected)
                    .arg(ttl.as_millis().max(1) as u64)
                    .invoke_async::<u64>(&mut conn)
                    .await
            };
            Ok(self.bounded("compare-and-expire", work).await? > 0)
        })
    }

    fn compare_and_set<'a>(
        &'a self,
        key: &'a str,
        expected: &'a [u8],
        value: &'a [u8],
        ttl: Duration,
    ) -> StoreFuture<'a, bool> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.compare_and_set
                    .key(key)
                    .arg(expected)
                    .arg(value)
                    .arg(millis(ttl))
                    .invoke_async::<u64>(&mut conn)
                    .await
            };
            Ok(self.bounded("compare-and-set", work).await? > 0)
        })
    }

    fn claim<'a>(
        &'a self,
        key: &'a str,
        value: &'a [u8],
        ttl: Duration,
        counter: &'a str,
        counter_ttl: Duration,
    ) -> StoreFuture<'a, (i64, Option<Vec<u8>>)> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.claim
                    .key(key)
                    .key(counter)
                    .arg(value)
                    .arg(millis(ttl))
                    .arg(millis(counter_ttl))
                    .invoke_async::<(i64, Option<Vec<u8>>)>(&mut conn)
                    .await
            };
            self.bounded("claim", work).await
        })
    }

    fn list_push<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if values.is_empty() {
                return Ok(());
            }
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("RPUSH")
                .arg(key)
                .arg(values)
                .ignore()
                .cmd("PEXPIRE")
                .arg(key)
                .arg(millis(ttl))
                .ignore();
            let work = async {
                let mut conn = self.connection().await?;
                pipe.query_async::<()>(&mut conn).await
            };
            self.bounded("RPUSH", work).await
        })
    }

    fn list_push_front<'a>(
        &'a self,
        key: &'a str,
        values: &'a [Vec<u8>],
        ttl: Duration,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            if values.is_empty() {
                return Ok(());
            }
            // LPUSH puts its arguments at the front one by one, so give them
            // last first to keep their order.
            let reversed: Vec<&Vec<u8>> = values.iter().rev().collect();
            let mut pipe = redis::pipe();
            pipe.atomic()
                .cmd("LPUSH")
                .arg(key)
                .arg(reversed)
                .ignore()
                .cmd("PEXPIRE")
                .arg(key)
                .arg(millis(ttl))
                .ignore();
            let work = async {
                let mut conn = self.connection().await?;
                pipe.query_async::<()>(&mut conn).await
            };
            self.bounded("LPUSH", work).await
        })
    }

    fn list_take<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<Vec<u8>>> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.list_take
                    .key(key)
                    .invoke_async::<Vec<Vec<u8>>>(&mut conn)
                    .await
            };
            self.bounded("list-take", work).await
        })
    }

    fn list_len<'a>(&'a self, key: &'a str) -> StoreFuture<'a, u64> {
        let mut cmd = redis::cmd("LLEN");
        cmd.arg(key);
        Box::pin(self.run("LLEN", cmd))
    }

    fn incr<'a>(&'a self, key: &'a str, ttl: Duration) -> StoreFuture<'a, i64> {
        Box::pin(async move {
            let work = async {
                let mut conn = self.connection().await?;
                self.incr_with_ttl
                    .key(key)
                    .arg(millis(ttl))
                    .invoke_async::<i64>(&mut conn)
                    .await
            };
            self.bounded("INCR", work).await
        })
    }

    fn set_add<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, ()> {
        let mut cmd = redis::cmd("SADD");
        cmd.arg(key).arg(member);
        Box::pin(async move {
            let _: u64 = self.run("SADD", cmd).await?;
            Ok(())
        })
    }

    fn set_remove<'a>(&'a self, key: &'a str, member: &'a str) -> StoreFuture<'a, bool> {
        let mut cmd = redis::cmd("SREM");
        cmd.arg(key).arg(member);
        Box::pin(async move {
            let n: u64 = self.run("SREM", cmd).await?;
            Ok(n > 0)
        })
    }

    fn set_members<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Vec<String>> {
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg(key);
        Box::pin(self.run("SMEMBERS", cmd))
    }

    fn ping(&self) -> StoreFuture<'_, String> {
        Box::pin(async move {
            let pong: String = self.run("PING", redis::cmd("PING")).await?;
            Ok(format!("redis {} ({pong})", self.location))
        })
    }

    fn backend(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_never_carries_the_password() {
        let store = RedisStore::open(&RedisSettings {
            target: RedisTarget::Single {
                url: "redis://:hunter2@127.0.0.1:6390/3".into(),
            },
            timeout: Duration::from_secs(1),
            tls_ca_file: None,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        })
        .unwrap();
        assert_eq!(store.location(), "127.0.0.1:6390/3");
        assert!(!format!("{store:?}").contains("hunter2"));
    }

    #[test]
    fn cluster_and_sentinel_locations_never_carry_passwords() {
        let settings = |target| RedisSettings {
            target,
            timeout: Duration::from_secs(1),
            tls_ca_file: None,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        };
        let cluster = RedisStore::open(&settings(RedisTarget::Cluster {
            urls: vec![
                "redis://:hunter2@127.0.0.1:7000".into(),
                "redis://:hunter2@127.0.0.1:7001".into(),
            ],
        }))
        .unwrap();
        assert_eq!(cluster.location(), "cluster 127.0.0.1:7000,127.0.0.1:7001");
        let sentinel = RedisStore::open(&settings(RedisTarget::Sentinel(SentinelSettings {
            master_name: "mymaster".into(),
            urls: vec!["redis://:hunter3@127.0.0.1:26379".into()],
            username: None,
            password: Some("hunter2".into()),
            db: 1,
            tls: false,
        })))
        .unwrap();
        assert_eq!(
            sentinel.location(),
            "master mymaster via sentinel 127.0.0.1:26379/1"
        );
        for shown in [format!("{cluster:?}"), format!("{sentinel:?}")] {
            assert!(!shown.contains("hunter"), "{shown}");
        }
    }

    #[tokio::test]
    async fn unreachable_redis_is_a_clear_bounded_error() {
        // Port 1 on loopback: nothing listens there, the connection is refused.
        let store = RedisStore::open(&RedisSettings {
            target: RedisTarget::Single {
                url: "redis://127.0.0.1:1".into(),
            },
            timeout: Duration::from_millis(500),
            tls_ca_file: None,
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(1),
        })
        .unwrap();
        let err = store.ping().await.unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Unavailable { .. } | StoreError::Timeout { .. }
            ),
            "{err:?}"
        );
        assert!(err.to_string().contains("redis"), "{err}");
    }

    #[test]
    fn refusals_of_a_demoted_master_are_recognised_by_their_code() {
        let refusal = |kind, text: &'static str| RedisError::from((kind, "refused", text.into()));
        let readonly = refusal(
            ErrorKind::ReadOnly,
            "You can't write against a read only replica.",
        );
        assert!(target::says_master_moved(&readonly), "{readonly}");
        let script = refusal(ErrorKind::ResponseError, "ERR user_script:1: oops");
        assert!(!target::says_master_moved(&script), "{script}");
    }

    #[tokio::test(start_paused = true)]
    async fn the_breaker_opens_fails_fast_and_lets_one_trial_through() {
        let breaker = Breaker::new(3, Duration::from_millis(500));
        for _ in 0..2 {
            breaker.failed();
            assert!(breaker.admit().is_ok());
        }
        breaker.failed();
        assert!(breaker.is_open());
        assert!(breaker.admit().is_err(), "open: fails at once");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(breaker.admit().is_ok(), "the trial");
        assert!(breaker.admit().is_err(), "only one trial at a time");
        breaker.failed();
        assert!(breaker.admit().is_err(), "the trial failed: open again");
        tokio::time::advance(Duration::from_millis(600)).await;
        assert!(breaker.admit().is_ok());
        breaker.succeeded();
        assert!(!breaker.is_open());
        assert!(breaker.admit().is_ok() && breaker.admit().is_ok());
    }
}
