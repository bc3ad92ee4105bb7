//! `[store]`: where shared state lives.

use serde::Deserialize;

/// `[store]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    pub backend: String,
    pub url: Option<String>,
}

impl Default for StoreSection {
    fn default() -> Self {
        StoreSection {
            backend: "memory".into(),
            url: None,
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
    },
}

/// Checks `[store]`.
pub(super) fn validate(raw: StoreSection, problems: &mut Vec<String>) -> StoreConfig {
    match raw.backend.as_str() {
        "memory" => StoreConfig::Memory,
        "redis" => match raw.url {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                StoreConfig::Redis { url }
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
