//! The raw TOML schema. Unknown keys are errors everywhere.

use serde::Deserialize;

use crate::rules::{ReplySpec, RuleSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    #[serde(default)]
    pub account: AccountSection,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub log: LogSection,
    pub default_reply: Option<ReplySpec>,
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct ServerSection {
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

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountSection {
    pub app_id: Option<String>,
    pub token: Option<String>,
    pub encoding_aes_key: Option<String>,
    /// The previous key, accepted while WeChat switches over after a rotation.
    pub previous_encoding_aes_key: Option<String>,
    pub app_secret: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct StoreSection {
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct LogSection {
    pub level: String,
    pub format: String,
}

impl Default for LogSection {
    fn default() -> Self {
        LogSection {
            level: "info".into(),
            format: "text".into(),
        }
    }
}
