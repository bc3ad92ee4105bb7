//! `[store]`: where shared state lives, and how long Redis may take.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub backend: String,
    pub url: Option<String>,
    pub timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    pub tls_ca_file: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: "memory".into(),
            url: None,
            // A Redis command answers in well under a millisecond on a LAN:
            // 250 ms is a stall, not a slow answer.
            timeout_ms: 250,
            breaker_failures: 5,
            breaker_cooldown_ms: 2000,
            tls_ca_file: None,
        }
    }
}

/// Where shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// In this process only (one node).
    Memory,
    /// A Redis server shared by every node.
    Redis {
        /// `redis://…` URL.
        url: String,
        /// Upper bound on every command, connecting included.
        timeout: Duration,
        /// Consecutive failures (timeouts, connection errors) that open the
        /// circuit breaker.
        breaker_failures: u32,
        /// How long it stays open before one trial command.
        breaker_cooldown: Duration,
        /// `rediss://` only: the CA certificate (PEM) that signed the
        /// server's, instead of the system's trust store.
        tls_ca_file: Option<PathBuf>,
    },
}

/// Checks `[store]`.
pub(super) fn validate(raw: StoreSection, problems: &mut Vec<String>) -> StoreConfig {
    match raw.backend.as_str() {
        "memory" => StoreConfig::Memory,
        "redis" => match raw.url {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                if raw.timeout_ms == 0 || raw.breaker_failures == 0 || raw.breaker_cooldown_ms == 0
                {
                    problems.push(
                        "store.timeout_ms, breaker_failures and breaker_cooldown_ms must be positive"
                            .into(),
                    );
                }
                let tls_ca_file = raw.tls_ca_file.map(PathBuf::from);
                if let Some(ca) = &tls_ca_file {
                    if !url.starts_with("rediss://") {
                        problems.push("store.tls_ca_file needs a rediss:// store.url".into());
                    } else if !ca.is_file() {
                        problems.push(format!(
                            "store.tls_ca_file {} is not a readable file",
                            ca.display()
                        ));
                    }
                }
                StoreConfig::Redis {
                    url,
                    tls_ca_file,
                    timeout: Duration::from_millis(raw.timeout_ms),
                    breaker_failures: raw.breaker_failures,
                    breaker_cooldown: Duration::from_millis(raw.breaker_cooldown_ms),
                }
            }
            _ => {
                problems
                    .push("store.url must be a redis:// URL when store.backend = \"redis\"".into());
                StoreConfig::Memory
            }
        },
        other => {
            problems.push(format!(
                "store.backend must be \"memory\" or \"redis\", not {other:?}"
            ));
            StoreConfig::Memory
        }
    }
}
