//! `[store]`: where shared state lives, how Redis is reached (one server,
//! Sentinel or Cluster), how long it may take, and how keys are spelled.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::store::{KeyFormat, Namespace, RedisSettings, RedisTarget, SentinelSettings};

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub backend: String,
    pub url: Option<String>,
    pub cluster: Option<Vec<String>>,
    pub sentinel: Option<SentinelSection>,
    pub key_format: String,
    pub timeout_ms: u64,
    pub breaker_failures: u32,
    pub breaker_cooldown_ms: u64,
    pub tls_ca_file: Option<String>,
}

/// `[store.sentinel]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelSection {
    pub master_name: String,
    pub urls: Vec<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub db: i64,
    pub tls: bool,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: "memory".into(),
            url: None,
            cluster: None,
            sentinel: None,
            key_format: KeyFormat::Tagged.as_str().into(),
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
    /// Redis shared by every node: one server, a Sentinel-watched master or
    /// a Cluster, with its timeout, breaker and TLS settings.
    Redis {
        /// How to reach it.
        settings: RedisSettings,
        /// How the accounts' keys are spelled.
        key_format: KeyFormat,
    },
}

impl StoreConfig {
    /// How the accounts' keys are spelled (hash-tagged for the memory store).
    pub fn key_format(&self) -> KeyFormat {
        match self {
            StoreConfig::Memory => KeyFormat::Tagged,
            StoreConfig::Redis { key_format, .. } => *key_format,
        }
    }

    /// The keys of the account whose store namespace id is `id`: spelled
    /// as `key_format` says; on a Cluster without the older spelling's
    /// fallback (no older version ran on one).
    pub fn namespace(&self, id: &str) -> Namespace {
        let namespace = Namespace::new(id, self.key_format());
        match self {
            StoreConfig::Redis {
                settings:
                    RedisSettings {
                        target: RedisTarget::Cluster { .. },
                        ..
                    },
                ..
            } => namespace.without_legacy_keys(),
            _ => namespace,
        }
    }
}

fn is_redis_url(url: &str) -> bool {
    url.starts_with("redis://") || url.starts_with("rediss://")
}

/// Checks `[store]`.
pub(super) fn validate(raw: StoreSection, problems: &mut Vec<String>) -> StoreConfig {
    match raw.backend.as_str() {
        "memory" => {
            if raw.url.is_some() || raw.cluster.is_some() || raw.sentinel.is_some() {
                problems.push(
                    "store.url, store.cluster and [store.sentinel] need store.backend = \"redis\""
                        .into(),
                );
            }
            StoreConfig::Memory
        }
        "redis" => validate_redis(raw, problems),
        other => {
            problems.push(format!(
                "store.backend must be \"memory\" or \"redis\", not {other:?}"
            ));
            StoreConfig::Memory
        }
    }
}

fn validate_redis(raw: StoreSection, problems: &mut Vec<String>) -> StoreConfig {
    if raw.timeout_ms == 0 || raw.breaker_failures == 0 || raw.breaker_cooldown_ms == 0 {
        problems.push(
            "store.timeout_ms, breaker_failures and breaker_cooldown_ms must be positive".into(),
        );
    }
    let key_format = match raw.key_format.as_str() {
        "tagged" => KeyFormat::Tagged,
        "legacy" => KeyFormat::Legacy,
        other => {
            problems.push(format!(
                "store.key_format must be \"tagged\" or \"legacy\", not {other:?}"
            ));
            KeyFormat::Tagged
        }
    };
    // Whether the target speaks TLS, for the tls_ca_file check.
    let (target, tls) = match (raw.url, raw.cluster, raw.sentinel) {
        (Some(url), None, None) => {
            if !is_redis_url(&url) {
                // The URL may carry a password: never quoted.
                problems.push("store.url must be a redis:// or rediss:// URL".into());
            }
            let tls = url.starts_with("rediss://");
            (RedisTarget::Single { url }, tls)
        }
        (None, Some(urls), None) => {
            if urls.is_empty() || !urls.iter().all(|u| is_redis_url(u)) {
                problems.push(
                    "store.cluster must list redis:// or rediss:// URLs of the cluster's nodes"
                        .into(),
                );
            }
            let tls = urls.iter().any(|u| u.starts_with("rediss://"));
            if tls && !urls.iter().all(|u| u.starts_with("rediss://")) {
                problems.push("store.cluster: either every URL is rediss:// or none".into());
            }
            if key_format == KeyFormat::Legacy {
                problems.push(
                    "store.key_format = \"legacy\" cannot be used with store.cluster: the \
                     scripts need an account's keys in one slot"
                        .into(),
                );
            }
            (RedisTarget::Cluster { urls }, tls)
        }
        (None, None, Some(s)) => {
            if s.master_name.trim().is_empty() {
                problems.push("store.sentinel.master_name must name the monitored master".into());
            }
            if s.urls.is_empty() || !s.urls.iter().all(|u| is_redis_url(u)) {
                problems.push(
                    "store.sentinel.urls must list redis:// or rediss:// URLs of the Sentinels"
                        .into(),
                );
            }
            let tls = s.tls || s.urls.iter().any(|u| u.starts_with("rediss://"));
            let sentinel = SentinelSettings {
                master_name: s.master_name,
                urls: s.urls,
                username: s.username,
                password: s.password,
                db: s.db,
                tls: s.tls,
            };
            (RedisTarget::Sentinel(sentinel), tls)
        }
        (None, None, None) => {
            problems.push(
                "store.backend = \"redis\" needs store.url, store.cluster or [store.sentinel]"
                    .into(),
            );
            return StoreConfig::Memory;
        }
        _ => {
            problems.push(
                "store.url, store.cluster and [store.sentinel] exclude each other: set one".into(),
            );
            return StoreConfig::Memory;
        }
    };
    let tls_ca_file = raw.tls_ca_file.map(PathBuf::from);
    if let Some(ca) = &tls_ca_file {
        if !tls {
            problems.push(
                "store.tls_ca_file needs TLS: rediss:// URLs, or store.sentinel.tls = true".into(),
            );
        } else if !ca.is_file() {
            problems.push(format!(
                "store.tls_ca_file {} is not a readable file",
                ca.display()
            ));
        }
    }
    StoreConfig::Redis {
        settings: RedisSettings {
            target,
            tls_ca_file,
            timeout: Duration::from_millis(raw.timeout_ms),
            breaker_failures: raw.breaker_failures,
            breaker_cooldown: Duration::from_millis(raw.breaker_cooldown_ms),
        },
        key_format,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str) -> (StoreConfig, Vec<String>) {
        let raw: StoreSection = toml::from_str(toml).unwrap();
        let mut problems = Vec::new();
        (validate(raw, &mut problems), problems)
    }

    #[test]
    fn one_server_a_cluster_or_a_sentinel() {
        let (single, p) = check("backend = \"redis\"\nurl = \"redis://127.0.0.1:6379/0\"\n");
        assert!(p.is_empty(), "{p:?}");
        assert!(matches!(
            single,
            StoreConfig::Redis {
                settings: RedisSettings {
                    target: RedisTarget::Single { .. },
                    ..
                },
                key_format: KeyFormat::Tagged
            }
        ));
        let (cluster, p) =
            check("backend = \"redis\"\ncluster = [\"redis://10.0.0.1:7000\", \"redis://10.0.0.2:7000\"]\n");
        assert!(p.is_empty(), "{p:?}");
        assert!(
            matches!(cluster, StoreConfig::Redis { settings: RedisSettings { target: RedisTarget::Cluster { ref urls }, .. }, .. } if urls.len() == 2)
        );
        let (sentinel, p) = check(
            "backend = \"redis\"\n[sentinel]\nmaster_name = \"mymaster\"\nurls = [\"redis://10.0.0.1:26379\"]\npassword = \"pw\"\ndb = 2\n",
        );
        assert!(p.is_empty(), "{p:?}");
        match sentinel {
            StoreConfig::Redis {
                settings:
                    RedisSettings {
                        target: RedisTarget::Sentinel(s),
                        ..
                    },
                ..
            } => {
                assert_eq!(
                    (s.master_name.as_str(), s.db, s.tls),
                    ("mymaster", 2, false)
                );
                assert_eq!(s.password.as_deref(), Some("pw"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_store_tables_are_refused_with_the_reason() {
        for (toml, expected) in [
            ("backend = \"redis\"\n", "needs store.url, store.cluster"),
            (
                "backend = \"redis\"\nurl = \"redis://a:1\"\ncluster = [\"redis://b:2\"]\n",
                "exclude each other",
            ),
            (
                "backend = \"redis\"\ncluster = []\n",
                "store.cluster must list",
            ),
            (
                "backend = \"redis\"\ncluster = [\"redis://a:1\"]\nkey_format = \"legacy\"\n",
                "cannot be used with store.cluster",
            ),
            (
                "backend = \"redis\"\nurl = \"redis://a:1\"\nkey_format = \"old\"\n",
                "store.key_format must be",
            ),
            (
                "backend = \"redis\"\n[sentinel]\nurls = [\"redis://a:26379\"]\n",
                "master_name",
            ),
            (
                "backend = \"redis\"\n[sentinel]\nmaster_name = \"m\"\nurls = [\"http://a\"]\n",
                "store.sentinel.urls",
            ),
            (
                "backend = \"redis\"\nurl = \"redis://a:1\"\ntls_ca_file = \"ca.pem\"\n",
                "tls_ca_file needs TLS",
            ),
            ("url = \"redis://a:1\"\n", "need store.backend"),
            (
                "backend = \"redis\"\nurl = \"http://:hunter2@a:1\"\n",
                "store.url must be",
            ),
        ] {
            let (_, problems) = check(toml);
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{toml}: {problems:?}"
            );
            assert!(
                !problems.iter().any(|p| p.contains("hunter2")),
                "{problems:?}"
            );
        }
    }
}
