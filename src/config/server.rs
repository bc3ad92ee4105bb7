//! `[server]`: where and how the HTTP server listens.

use std::net::SocketAddr;

use serde::Deserialize;

/// `[server]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub listen: String,
    pub path: String,
    pub max_body_bytes: usize,
    pub timestamp_window_secs: u64,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8080".into(),
            path: "/weixin".into(),
            max_body_bytes: 64 * 1024,
            timestamp_window_secs: 300,
        }
    }
}

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
    ServerConfig {
        listen,
        path: raw.path,
        max_body_bytes: raw.max_body_bytes,
        timestamp_window_secs: raw.timestamp_window_secs,
    }
}
