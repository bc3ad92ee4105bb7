//! `[server]`: where and how the HTTP server listens, and the limits it
//! holds every client to (nginx's defaults where nginx has one).

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

/// `[server]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub path: String,
    pub max_body_bytes: usize,
    pub timestamp_window_secs: u64,
    pub header_read_timeout_secs: u64,
    pub body_read_timeout_secs: u64,
    pub keepalive_timeout_secs: u64,
    pub max_header_bytes: usize,
    pub max_connections: usize,
    pub drain_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            path: "/weixin".into(),
            max_body_bytes: 64 * 1024,
            timestamp_window_secs: 300,
            // nginx: client_header_timeout 60s, client_body_timeout 60s,
            // keepalive_timeout 75s, large_client_header_buffers 4 8k.
            header_read_timeout_secs: 60,
            body_read_timeout_secs: 60,
            keepalive_timeout_secs: 75,
            max_header_bytes: 32 * 1024,
            max_connections: 1024,
            drain_secs: 0,
        }
    }
}

/// The smallest header cap the HTTP/1 parser accepts (its read buffer).
pub const MIN_HEADER_BYTES: usize = 8192;

/// The HTTP server settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Callback path, e.g. `/weixin`.
    pub path: String,
    /// Bodies above this get 413.
    pub max_body_bytes: usize,
    /// Requests whose timestamp is further than this from now are refused.
    pub timestamp_window_secs: u64,
    /// The edge limits.
    pub limits: EdgeLimits,
}

/// What every connection is held to, whoever is at the other end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    /// A request head (line and headers) must arrive within this, counted
    /// from when the connection starts waiting for it.
    pub header_read_timeout: Duration,
    /// Longest pause between two pieces of a request body.
    pub body_read_timeout: Duration,
    /// An idle keep-alive connection (no request in flight, nothing read
    /// or written) is closed after this.
    pub keepalive_timeout: Duration,
    /// The request line and headers together may not exceed this (431).
    pub max_header_bytes: usize,
    /// Open connections at most; beyond, new ones wait in the kernel's
    /// backlog (nothing is accepted until one closes).
    pub max_connections: usize,
    /// After SIGTERM, keep accepting for this long, answering every request
    /// with `Connection: close`, before the listener closes.
    pub drain: Duration,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        limits(&ServerSection::default())
    }
}

fn limits(raw: &ServerSection) -> EdgeLimits {
    EdgeLimits {
        header_read_timeout: Duration::from_secs(raw.header_read_timeout_secs),
        body_read_timeout: Duration::from_secs(raw.body_read_timeout_secs),
        keepalive_timeout: Duration::from_secs(raw.keepalive_timeout_secs),
        max_header_bytes: raw.max_header_bytes,
        max_connections: raw.max_connections,
        drain: Duration::from_secs(raw.drain_secs),
    }
}

/// Checks `[server]`.
pub(super) fn validate(raw: ServerSection, problems: &mut Vec<String>) -> ServerConfig {
    let listen = raw.listen.parse::<SocketAddr>().unwrap_or_else(|_| {
        problems.push(format!(
            "server.listen {:?} is not an address like 127.0.0.1:8080",
            raw.listen
        ));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    if !raw.path.starts_with('/') || raw.path.len() < 2 {
        problems.push(format!(
            "server.path {:?} must start with / and name a path",
            raw.path
        ));
    }
    if raw.max_body_bytes < 1024 {
        problems.push("server.max_body_bytes must be at least 1024".into());
    }
    for (name, secs) in [
        ("header_read_timeout_secs", raw.header_read_timeout_secs),
        ("body_read_timeout_secs", raw.body_read_timeout_secs),
        ("keepalive_timeout_secs", raw.keepalive_timeout_secs),
    ] {
        if secs == 0 {
            problems.push(format!("server.{name} must be positive"));
        }
    }
    if raw.max_header_bytes < MIN_HEADER_BYTES {
        problems.push(format!(
            "server.max_header_bytes must be at least {MIN_HEADER_BYTES}"
        ));
    }
    if raw.max_connections == 0 {
        problems.push("server.max_connections must be positive".into());
    }
    ServerConfig {
        limits: limits(&raw),
        listen,
        path: raw.path,
        max_body_bytes: raw.max_body_bytes,
        timestamp_window_secs: raw.timestamp_window_secs,
    }
}
