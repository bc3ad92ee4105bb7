//! Where the Redis store's commands go: one server, the master a Sentinel
//! names, or a Cluster, each through the `redis` crate's own client, behind
//! one [`Connection`] the store's operations share.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{
    ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection,
};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, IntoConnectionInfo, Pipeline, RedisError,
    RedisFuture, TlsCertificates, TlsMode, Value,
};
use tokio::sync::OnceCell;

/// Which Redis deployment the store talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One server: `redis://[:password@]host:port[/db]`, or `rediss://…`.
    Single {
        /// The server's URL.
        url: String,
    },
    /// The master that Sentinel names; followed through failovers.
    Sentinel(SentinelSettings),
    /// A Redis Cluster, found from any of these nodes' URLs.
    Cluster {
        /// Seed nodes (`redis://…` or `rediss://…`, with the password).
        urls: Vec<String>,
    },
}

/// `[store.sentinel]`: how to find the master, and how to log in to it.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelSettings {
    /// The name the Sentinels monitor the master under (`mymaster`).
    pub master_name: String,
    /// The Sentinels' URLs; a password in them is the Sentinels' own.
    pub urls: Vec<String>,
    /// The master's ACL user, if any.
    pub username: Option<String>,
    /// The master's password (`requirepass`), if any.
    pub password: Option<String>,
    /// The database on the master.
    pub db: i64,
    /// Connect to the master (and replicas) with TLS.
    pub tls: bool,
}

impl std::fmt::Debug for SentinelSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SentinelSettings")
            .field("master_name", &self.master_name)
            .field("sentinels", &self.urls.len())
            .field("db", &self.db)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A connection to whichever the target is; cheap to clone.
#[derive(Clone)]
pub(super) enum Connection {
    Single(ConnectionManager),
    Sentinel(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Connection::Single(c) => c.req_packed_command(cmd),
            Connection::Sentinel(c) => c.req_packed_command(cmd),
            Connection::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Connection::Single(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Sentinel(c) => c.req_packed_commands(cmd, offset, count),
            Connection::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Connection::Single(c) => c.get_db(),
            Connection::Sentinel(c) => c.get_db(),
            Connection::Cluster(c) => c.get_db(),
        }
    }
}

/// How often the Sentinels are asked whether the master is still the one
/// connected to. After a `SENTINEL FAILOVER` the old master keeps accepting
/// writes until the Sentinels turn it into a replica (seconds later); this
/// bounds how long a node keeps writing there.
pub(super) const MASTER_RECHECK: Duration = Duration::from_secs(1);

/// The master a Sentinel target is connected to.
pub(super) struct Master {
    connection: MultiplexedConnection,
    addr: String,
    checked: tokio::time::Instant,
}

/// The client of one target, connecting lazily.
pub(super) enum Target {
    Single {
        client: Client,
        manager: OnceCell<ConnectionManager>,
    },
    Sentinel {
        /// Asks the Sentinels for the master; one asker at a time.
        client: tokio::sync::Mutex<SentinelClient>,
        /// The connection to the current master, until it fails or the
        /// Sentinels name another.
        master: Mutex<Option<Master>>,
    },
    Cluster {
        client: ClusterClient,
        connection: OnceCell<ClusterConnection>,
    },
}

fn read_ca(ca: Option<&PathBuf>) -> Result<Option<TlsCertificates>, String> {
    let Some(ca) = ca else { return Ok(None) };
    let root_cert = std::fs::read(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    Ok(Some(TlsCertificates {
        client_tls: None,
        root_cert: Some(root_cert),
    }))
}

fn host_port(addr: &ConnectionAddr) -> String {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            format!("{host}:{port}")
        }
        ConnectionAddr::Unix(path) => path.display().to_string(),
    }
}

impl Target {
    /// Builds the client from the settings (no I/O but reading the CA
    /// file); also returns where it points, without credentials.
    pub(super) fn open(
        target: &RedisTarget,
        tls_ca_file: Option<&PathBuf>,
        timeout: Duration,
    ) -> Result<(Target, String), String> {
        let certs = read_ca(tls_ca_file)?;
        match target {
            RedisTarget::Single { url } => {
                let client = match certs {
                    None => Client::open(url.as_str()),
                    Some(certs) => Client::build_with_tls(url.as_str(), certs),
                }
                .map_err(|e| e.to_string())?;
                let info = client.get_connection_info();
                let location = format!("{}/{}", info.addr, info.redis.db);
                let target = Target::Single {
                    client,
                    manager: OnceCell::new(),
                };
                Ok((target, location))
            }
            RedisTarget::Cluster { urls } => {
                let mut nodes = Vec::new();
                for url in urls {
                    let info = url
                        .as_str()
                        .into_connection_info()
                        .map_err(|e| e.to_string())?;
                    nodes.push(host_port(&info.addr));
                }
                let mut builder = ClusterClient::builder(urls.clone())
                    .connection_timeout(timeout)
                    .response_timeout(timeout)
                    // A few redirections (MOVED, ASK while slots move); the
                    // store's own timeout bounds them.
                    .retries(3);
                if let Some(certs) = certs {
                    builder = builder.certs(certs);
                }
                let client = builder.build().map_err(|e| e.to_string())?;
                let target = Target::Cluster {
                    client,
                    connection: OnceCell::new(),
                };
                Ok((target, format!("cluster {}", nodes.join(","))))
            }
            RedisTarget::Sentinel(s) => {
                let (client, sentinels) = sentinel_client(s, certs)?;
                let target = Target::Sentinel {
                    client: tokio::sync::Mutex::new(client),
                    master: Mutex::new(None),
                };
                let location = format!(
                    "master {} via sentinel {}/{}",
                    s.master_name,
                    sentinels.join(","),
                    s.db
                );
                Ok((target, location))
            }
        }
    }

    /// A connection, made on first use (and, for Sentinel, after the last
    /// one failed, asking the Sentinels for the master again).
    pub(super) async fn connection(&self, timeout: Duration) -> Result<Connection, RedisError> {
        match self {
            Target::Single { client, manager } => {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(timeout)
                    .set_response_timeout(timeout)
                    // One connection attempt per reconnection, no retries
                    // inside the client: an operation during an outage fails
                    // at once with the cause ("connection refused"), the
                    // callers' own backoff paces the retries, and the next
                    // operation after Redis is back reconnects.
                    .set_number_of_retries(0);
                let manager = manager
                    // Boxed: the connecting future is large, and every
                    // operation's future would carry its size (and be
                    // copied at that size) though it runs once.
                    .get_or_try_init(|| {
                        Box::pin(ConnectionManager::new_with_config(client.clone(), config))
                    })
                    .await?;
                Ok(Connection::Single(manager.clone()))
            }
            Target::Cluster { client, connection } => {
                let connection = connection
                    .get_or_try_init(|| Box::pin(client.get_async_connection()))
                    .await?;
                Ok(Connection::Cluster(connection.clone()))
            }
            // Boxed for the same reason: asking the Sentinels is rare.
            Target::Sentinel { client, master } => {
                Box::pin(Self::sentinel_master(client, master, timeout)).await
            }
        }
    }

    /// The master the Sentinels name, connected; the current one while it
    /// was checked within [`MASTER_RECHECK`].
    async fn sentinel_master(
        client: &tokio::sync::Mutex<SentinelClient>,
        master: &Mutex<Option<Master>>,
        timeout: Duration,
    ) -> Result<Connection, RedisError> {
        let current = lock(master)
            .as_ref()
            .map(|m| (m.connection.clone(), m.checked.elapsed() < MASTER_RECHECK));
        let (mut sentinel, current) = match current {
            Some((c, true)) => return Ok(Connection::Sentinel(c)),
            // Due for a check, but another operation is asking the
            // Sentinels already: go on with the current master.
            Some((c, false)) => match client.try_lock() {
                Ok(sentinel) => (sentinel, Some(c)),
                Err(_) => return Ok(Connection::Sentinel(c)),
            },
            None => (client.lock().await, None),
        };
        // Ask the Sentinels which master it is now (they check that
        // it says it is one). A recheck that fails (the Sentinels
        // unreachable or slow) keeps the current master: the
        // operations on it tell whether it is still there.
        let asked = tokio::time::timeout(timeout / 2, sentinel.async_get_client()).await;
        let named = match (asked, current) {
            (Ok(Ok(named)), _) => named,
            (failed, Some(c)) => {
                if let Some(m) = lock(master).as_mut() {
                    m.checked = tokio::time::Instant::now();
                }
                let error = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "no answer in time".to_owned(),
                };
                tracing::warn!(%error, "cannot ask the Sentinels for the master; staying with the current one");
                return Ok(Connection::Sentinel(c));
            }
            (Ok(Err(e)), None) => return Err(e),
            (Err(_), None) => {
                return Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the Sentinels did not name the master in time",
                )))
            }
        };
        let addr = named.get_connection_info().addr.to_string();
        {
            let mut current = lock(master);
            if let Some(m) = current.as_mut().filter(|m| m.addr == addr) {
                m.checked = tokio::time::Instant::now();
                return Ok(Connection::Sentinel(m.connection.clone()));
            }
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout);
        let c = named
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let previous = lock(master).replace(Master {
            connection: c.clone(),
            addr: addr.clone(),
            checked: tokio::time::Instant::now(),
        });
        match previous {
            Some(old) => tracing::warn!(
                from = %old.addr,
                to = %addr,
                "the Sentinels name another Redis master; switched to it"
            ),
            None => {
                tracing::info!(master = %addr, "connected to the Redis master the Sentinels name")
            }
        }
        Ok(Connection::Sentinel(c))
    }

    /// An operation failed in a way that says the master may have moved:
    /// a timeout, a connection error, or a refusal with one of
    /// [`MASTER_MOVED_CODES`] (after a failover the old master drops its
    /// clients or answers READONLY). The Sentinel target forgets its master
    /// and asks the Sentinels again on the next operation (it also asks
    /// every [`MASTER_RECHECK`]); the other clients reconnect by themselves.
    pub(super) fn master_may_have_moved(&self) {
        let Target::Sentinel { master, .. } = self else {
            return;
        };
        if lock(master).take().is_some() {
            tracing::info!("lost the Redis master; asking the Sentinels again");
        }
    }
}

/// Error codes of a server that is not (or no longer, or not yet) the
/// writable master.
pub(super) const MASTER_MOVED_CODES: &[&str] = &["READONLY", "MASTERDOWN", "LOADING", "NOREPLICAS"];

/// Whether `e` is a refusal with one of [`MASTER_MOVED_CODES`].
pub(super) fn says_master_moved(e: &RedisError) -> bool {
    e.code()
        .is_some_and(|code| MASTER_MOVED_CODES.contains(&code))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The crate's Sentinel client for the master, and the Sentinels'
/// `host:port`s.
fn sentinel_client(
    s: &SentinelSettings,
    certs: Option<TlsCertificates>,
) -> Result<(SentinelClient, Vec<String>), String> {
    let mut addrs = Vec::new();
    let mut sentinel_user = None;
    let mut sentinel_password = None;
    for url in &s.urls {
        let info = url
            .as_str()
            .into_connection_info()
            .map_err(|e| e.to_string())?;
        sentinel_user = sentinel_user.or(info.redis.username);
        sentinel_password = sentinel_password.or(info.redis.password);
        addrs.push(info.addr);
    }
    let names = addrs.iter().map(host_port).collect();
    let sentinels_tls = addrs
        .iter()
        .any(|a| matches!(a, ConnectionAddr::TcpTls { .. }));
    let mut builder =
        SentinelClientBuilder::new(addrs, s.master_name.clone(), SentinelServerType::Master)
            .map_err(|e| e.to_string())?
            .set_client_to_redis_db(s.db);
    if let Some(user) = &s.username {
        builder = builder.set_client_to_redis_username(user.clone());
    }
    if let Some(password) = &s.password {
        builder = builder.set_client_to_redis_password(password.clone());
    }
    if let Some(user) = sentinel_user {
        builder = builder.set_client_to_sentinel_username(user);
    }
    if let Some(password) = sentinel_password {
        builder = builder.set_client_to_sentinel_password(password);
    }
    if s.tls {
        builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = &certs {
            builder = builder.set_client_to_redis_certificates(clone_certs(certs));
        }
    }
    if sentinels_tls {
        if let Some(certs) = &certs {
            builder = builder.set_client_to_sentinel_certificates(clone_certs(certs));
        }
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    Ok((client, names))
}

fn clone_certs(certs: &TlsCertificates) -> TlsCertificates {
    TlsCertificates {
        client_tls: None,
        root_cert: certs.root_cert.clone(),
    }
}
