//! Throwaway `redis-server`s on free loopback ports, killed on drop: one
//! server ([`RedisServer`], optionally with TLS), a 3-master Cluster made
//! with `redis-cli --cluster create` ([`RedisCluster`], optionally TLS
//! only), and a master, its replica and one Sentinel ([`RedisSentinel`],
//! optionally with passwords).
//!
//! One file (about 690 lines) on purpose: the three deployments share the
//! certificates, the spawning, the waiting and the raw commands below.
//!
//! No persistence (`--save "" --appendonly no`), so a restart comes back
//! empty, like a Redis that lost its data. Panics with a clear message when
//! `redis-server` or `redis-cli` is not installed: these tests are never
//! skipped silently.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// The TLS listener and the certificates made for it.
    tls: Option<Tls>,
}

/// Certificates made by `openssl` for a TLS `redis-server`: a CA, and a
/// server certificate it signed for 127.0.0.1.
struct Tls {
    port: u16,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("cannot find a free loopback port")
        .port()
}

fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): the TLS store test needs it"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A temporary directory with certificates made by `openssl`: a CA
/// (`ca.pem`) and a server certificate it signed for 127.0.0.1
/// (`server.pem`, `server.key`).
fn make_certs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=wxgate test CA",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(d.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    dir
}

impl RedisServer {
    /// Starts a server and waits until it answers PING.
    pub fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            tls: None,
        };
        server.spawn();
        server
    }

    /// Starts a server that also listens with TLS, its certificates made
    /// here with `openssl` (a CA, a server certificate for 127.0.0.1).
    pub fn start_tls() -> RedisServer {
        let dir = make_certs();
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            tls: Some(Tls {
                port: free_port(),
                dir,
            }),
        };
        server.spawn();
        server
    }

    /// `rediss://127.0.0.1:<tls port>` (a [`RedisServer::start_tls`] server).
    pub fn tls_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.tls().port)
    }

    /// The CA certificate that signed the server's (PEM).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.tls().dir.path().join("ca.pem")
    }

    fn tls(&self) -> &Tls {
        self.tls.as_ref().expect("started with start_tls")
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (an outage); [`RedisServer::restart`] brings it back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill(&mut child);
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is
    /// answered, as with a hung Redis. [`RedisServer::resume`] thaws it.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Thaws a [`RedisServer::pause`]d server (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        let pid = self.child.as_ref().expect("redis is running").id();
        let status = Command::new("kill")
            .args([which, &pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {which} {pid}");
    }

    /// Starts the server again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Runs one command through a raw connection (test set-up only) and
    /// returns the raw reply.
    pub fn command(&self, args: &[&str]) -> String {
        command_at(self.port, args)
    }

    fn spawn(&mut self) {
        let mut command = Command::new("redis-server");
        if let Some(tls) = &self.tls {
            let file = |name: &str| tls.dir.path().join(name).display().to_string();
            command
                .args(["--tls-port", &tls.port.to_string()])
                .args(["--tls-cert-file", &file("server.pem")])
                .args(["--tls-key-file", &file("server.key")])
                .args(["--tls-ca-cert-file", &file("ca.pem")])
                .args(["--tls-auth-clients", "no"]);
        }
        let child = spawn_redis(command, self.port, &std::env::temp_dir());
        self.child = Some(child);
        wait_for_pong(self.port);
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts `command` (a `redis-server …`) on `port`, loopback only, no
/// persistence, its files in `dir`.
fn spawn_redis(mut command: Command, port: u16, dir: &std::path::Path) -> Child {
    command
        .args(["--port", &port.to_string()])
        .args(["--bind", "127.0.0.1"])
        .args(["--save", ""])
        .args(["--appendonly", "no"])
        .args(["--dir", &dir.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}): it is required by the store tests; \
                 install it with scripts/ensure-redis.sh (apt-get install redis-server)"
            )
        })
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

fn wait_for_pong(port: u16) {
    assert!(
        wait_until(Duration::from_secs(10), || pong(port)),
        "redis on port {port} did not answer PING within 10 s"
    );
}

/// Polls `check` every 20 ms until it holds or `limit` passes.
fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pong(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut buf = [0u8; 16];
    stream.write_all(b"PING\r\n").is_ok()
        && stream.read(&mut buf).is_ok_and(|n| {
            // A server with a password answers, but only after AUTH.
            buf[..n].starts_with(b"+PONG") || buf[..n].starts_with(b"-NOAUTH")
        })
}

/// Runs one command on the server at `port` through a raw connection and
/// returns the raw reply (what one read gets; set-up and checks only).
fn command_at(port: u16, args: &[&str]) -> String {
    command_as(port, None, args)
}

/// [`command_at`] after `AUTH password` when there is one.
fn command_as(port: u16, password: Option<&str>, args: &[&str]) -> String {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))
        .unwrap_or_else(|e| panic!("redis on port {port} is not running: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut exchange = |args: &[&str]| {
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream.write_all(request.as_bytes()).unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let n = stream.read(&mut buf).unwrap_or(0);
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    if let Some(password) = password {
        let ok = exchange(&["AUTH", password]);
        assert!(ok.starts_with("+OK"), "AUTH on {port}: {ok:?}");
    }
    exchange(args)
}

/// A free loopback port whose cluster bus port (+10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let port = free_port();
        if port < 55_000 && TcpListener::bind((Ipv4Addr::LOCALHOST, port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// A Redis Cluster of three masters (no replicas) on loopback, made with
/// `redis-cli --cluster create`, every node in its own directory of a
/// temporary one; all killed on drop.
pub struct RedisCluster {
    ports: Vec<u16>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
    /// With TLS only (`tls-cluster yes`): the certificates.
    tls: Option<tempfile::TempDir>,
}

impl RedisCluster {
    /// Starts three `cluster-enabled` servers, joins them with `redis-cli
    /// --cluster create … --cluster-yes`, and waits until every node says
    /// `cluster_state:ok`.
    pub fn start() -> RedisCluster {
        RedisCluster::spawn(None)
    }

    /// As [`RedisCluster::start`], every node listening with TLS only (its
    /// clients and the cluster bus), certificates made with `openssl`.
    pub fn start_tls() -> RedisCluster {
        RedisCluster::spawn(Some(make_certs()))
    }

    fn spawn(tls: Option<tempfile::TempDir>) -> RedisCluster {
        let dir = tempfile::tempdir().unwrap();
        let mut cluster = RedisCluster {
            ports: Vec::new(),
            children: Vec::new(),
            _dir: dir,
            tls,
        };
        for _ in 0..3 {
            let port = free_cluster_port();
            let node_dir = cluster._dir.path().join(port.to_string());
            std::fs::create_dir(&node_dir).unwrap();
            let mut command = Command::new("redis-server");
            command
                .args(["--cluster-enabled", "yes"])
                .args(["--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "2000"]);
            let child = match &cluster.tls {
                None => spawn_redis(command, port, &node_dir),
                Some(certs) => {
                    let file = |name: &str| certs.path().join(name).display().to_string();
                    command
                        .args(["--tls-port", &port.to_string()])
                        .args(["--tls-cluster", "yes"])
                        .args(["--tls-cert-file", &file("server.pem")])
                        .args(["--tls-key-file", &file("server.key")])
                        .args(["--tls-ca-cert-file", &file("ca.pem")])
                        .args(["--tls-auth-clients", "no"]);
                    // No plain port at all.
                    spawn_redis(command, 0, &node_dir)
                }
            };
            cluster.children.push(child);
            cluster.ports.push(port);
        }
        for &port in &cluster.ports {
            assert!(
                wait_until(Duration::from_secs(10), || match cluster.tls {
                    None => pong(port),
                    Some(_) => cluster.command(port, &["PING"]).contains("PONG"),
                }),
                "cluster node {port} did not answer PING within 10 s"
            );
        }
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let out = cluster
            .cli()
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-cli ({e}): the cluster tests need it; \
                     install it with scripts/ensure-redis.sh"
                )
            });
        assert!(
            out.status.success(),
            "redis-cli --cluster create: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        for &port in &cluster.ports {
            assert!(
                wait_until(Duration::from_secs(15), || {
                    cluster
                        .command(port, &["CLUSTER", "INFO"])
                        .contains("cluster_state:ok")
                }),
                "cluster node {port} never reached cluster_state:ok"
            );
        }
        cluster
    }

    /// `redis-cli`, with TLS and the CA when the cluster has them.
    fn cli(&self) -> Command {
        let mut cli = Command::new("redis-cli");
        cli.stdin(Stdio::null());
        if let Some(certs) = &self.tls {
            cli.arg("--tls")
                .arg("--cacert")
                .arg(certs.path().join("ca.pem"));
        }
        cli
    }

    /// Runs one command on the node at `port` (raw RESP without TLS,
    /// through `redis-cli` with it) and returns its reply as text.
    fn command(&self, port: u16, args: &[&str]) -> String {
        if self.tls.is_none() {
            return command_at(port, args);
        }
        let out = self
            .cli()
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `redis://127.0.0.1:<port>` of every node (`rediss://` with TLS).
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        self.ports
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect()
    }

    /// The CA certificate that signed the nodes' (a TLS cluster's).
    pub fn ca_file(&self) -> std::path::PathBuf {
        self.tls
            .as_ref()
            .expect("started with start_tls")
            .path()
            .join("ca.pem")
    }

    /// Each node's number of keys (`DBSIZE`), in node order.
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| {
                let reply = self.command(p, &["DBSIZE"]);
                reply
                    .trim()
                    .trim_start_matches(':')
                    .parse()
                    .unwrap_or_else(|_| panic!("DBSIZE on {p}: {reply:?}"))
            })
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        self.children.iter_mut().for_each(kill);
    }
}

/// The master name the [`RedisSentinel`]'s Sentinel monitors.
pub const SENTINEL_MASTER: &str = "mymaster";

/// A master, its replica and one Sentinel (quorum 1) monitoring them as
/// [`SENTINEL_MASTER`], on loopback; all killed on drop.
pub struct RedisSentinel {
    master: u16,
    replica: u16,
    sentinel: u16,
    /// The master's and the replica's (`requirepass`, `masterauth`).
    password: Option<&'static str>,
    /// The Sentinel's own.
    sentinel_password: Option<&'static str>,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

/// The master's and replica's password of [`RedisSentinel::start_with_passwords`].
pub const SENTINEL_MASTER_PASSWORD: &str = "master-secret-1";

impl RedisSentinel {
    /// Starts the three and waits until the replica is in sync and the
    /// Sentinel knows it (so a failover can pick it).
    pub fn start() -> RedisSentinel {
        RedisSentinel::spawn(None, None)
    }

    /// As [`RedisSentinel::start`], the master and replica with the password
    /// [`SENTINEL_MASTER_PASSWORD`], the Sentinel with one of its own (in
    /// [`RedisSentinel::sentinel_url`]).
    pub fn start_with_passwords() -> RedisSentinel {
        RedisSentinel::spawn(Some(SENTINEL_MASTER_PASSWORD), Some("sentinel-secret-2"))
    }

    fn spawn(password: Option<&'static str>, sentinel_password: Option<&'static str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (master, replica, sentinel) = (free_port(), free_port(), free_port());
        let mut children = Vec::new();
        for (port, role) in [(master, "master"), (replica, "replica")] {
            let node_dir = dir.path().join(role);
            std::fs::create_dir(&node_dir).unwrap();
            let mut command = Command::new("redis-server");
            if role == "replica" {
                command.args(["--replicaof", "127.0.0.1", &master.to_string()]);
            }
            if let Some(password) = password {
                command
                    .args(["--requirepass", password])
                    .args(["--masterauth", password]);
            }
            children.push(spawn_redis(command, port, &node_dir));
            wait_for_pong(port);
        }
        // Sentinel rewrites its config file: it lives in the temporary
        // directory. `redis-server <file> --sentinel` is the Sentinel.
        let conf = dir.path().join("sentinel.conf");
        let mut text = format!(
            "port {sentinel}\nbind 127.0.0.1\ndir {}\n\
             sentinel monitor {SENTINEL_MASTER} 127.0.0.1 {master} 1\n\
             sentinel down-after-milliseconds {SENTINEL_MASTER} 2000\n\
             sentinel failover-timeout {SENTINEL_MASTER} 10000\n",
            dir.path().display()
        );
        if let Some(password) = password {
            text.push_str(&format!(
                "sentinel auth-pass {SENTINEL_MASTER} {password}\n"
            ));
        }
        if let Some(password) = sentinel_password {
            text.push_str(&format!("requirepass {password}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run redis-server --sentinel ({e})"));
        children.push(child);
        let cluster = RedisSentinel {
            master,
            replica,
            sentinel,
            password,
            sentinel_password,
            children,
            _dir: dir,
        };
        wait_for_pong(sentinel);
        assert!(
            wait_until(Duration::from_secs(15), || {
                cluster
                    .cmd(replica, &["INFO", "replication"])
                    .contains("master_link_status:up")
            }),
            "the replica never synced with the master"
        );
        assert!(
            wait_until(Duration::from_secs(15), || {
                cluster
                    .cmd(sentinel, &["SENTINEL", "REPLICAS", SENTINEL_MASTER])
                    .contains(&replica.to_string())
            }),
            "the Sentinel never learnt of the replica"
        );
        cluster
    }

    /// `redis://[:password@]127.0.0.1:<port>` of the Sentinel.
    pub fn sentinel_url(&self) -> String {
        match self.sentinel_password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.sentinel),
            None => format!("redis://127.0.0.1:{}", self.sentinel),
        }
    }

    /// The port the Sentinel names as the master now.
    pub fn master_port(&self) -> u16 {
        let reply = self.cmd(
            self.sentinel,
            &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_MASTER],
        );
        reply
            .lines()
            .filter_map(|l| l.trim().parse::<u16>().ok())
            .next_back()
            .unwrap_or_else(|| panic!("no master address in {reply:?}"))
    }

    /// The first master's and its replica's ports.
    pub fn ports(&self) -> (u16, u16) {
        (self.master, self.replica)
    }

    /// Asks the Sentinel for a failover (`SENTINEL FAILOVER`) and returns
    /// at once.
    pub fn failover(&self) {
        let reply = self.cmd(self.sentinel, &["SENTINEL", "FAILOVER", SENTINEL_MASTER]);
        assert!(reply.starts_with("+OK"), "SENTINEL FAILOVER: {reply:?}");
    }

    /// Whether the replica has been promoted: the Sentinel names it, and
    /// it says it is a master.
    pub fn promoted(&self) -> bool {
        self.master_port() == self.replica && self.cmd(self.replica, &["ROLE"]).contains("master")
    }

    /// How many ordinary clients the first master has, leaving out the
    /// Sentinel's and the connection asking: after a failover, 0 once every
    /// node has left it.
    pub fn first_master_clients(&self) -> usize {
        self.cmd(self.master, &["CLIENT", "LIST", "TYPE", "normal"])
            .lines()
            .filter(|l| l.contains("addr="))
            .filter(|l| !l.contains("name=sentinel") && !l.contains("cmd=client|list"))
            .count()
    }

    /// Runs one command on the server at `port`.
    pub fn command(&self, port: u16, args: &[&str]) -> String {
        self.cmd(port, args)
    }

    fn cmd(&self, port: u16, args: &[&str]) -> String {
        let password = if port == self.sentinel {
            self.sentinel_password
        } else {
            self.password
        };
        command_as(port, password, args)
    }

    /// Kills the Sentinel (the master and replica go on).
    pub fn stop_sentinel(&mut self) {
        // Started last, after the master and the replica.
        if let Some(child) = self.children.get_mut(2) {
            kill(child);
        }
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        self.children.iter_mut().for_each(kill);
    }
}
