//! The raw TOML schema. Unknown keys are errors everywhere.

use serde::Deserialize;

use crate::rules::{ReplySpec, RuleSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    #[serde(default)]
    pub server: ServerSection,
    pub account: Option<AccountSection>,
    /// More accounts, each at its own path (`/weixin/{name}` by default).
    #[serde(default)]
    pub accounts: Vec<AccountSection>,
    #[serde(default)]
    pub store: StoreSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub delivery: DeliverySection,
    #[serde(default)]
    pub security: SecuritySection,
    #[serde(default)]
    pub admin: AdminSection,
    #[serde(default)]
    pub token: TokenSection,
    #[serde(default)]
    pub agent: AgentSection,
    #[serde(default)]
    pub upstreams: Vec<UpstreamSection>,
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

/// `[account]` and each `[[accounts]]` entry. `name`, `path`, `rules` and
/// `default_reply` only belong to `[[accounts]]` (the single account uses
/// `server.path` and the top-level rules); validation says so.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountSection {
    pub name: Option<String>,
    pub path: Option<String>,
    /// `official` (default), `wecom` (a WeCom self-built app) or `kf`
    /// (WeChat Customer Service).
    pub kind: Option<String>,
    pub app_id: Option<String>,
    pub token: Option<String>,
    pub encoding_aes_key: Option<String>,
    /// The previous key, accepted while WeChat switches over after a rotation.
    pub previous_encoding_aes_key: Option<String>,
    pub app_secret: Option<String>,
    #[serde(default)]
    pub mode: Option<String>,
    pub corp_id: Option<String>,
    pub corp_secret: Option<String>,
    pub agent_id: Option<i64>,
    /// Where this account's outbound API lives (a fake in tests).
    pub api_base_url: Option<String>,
    pub kf: Option<KfSection>,
    pub default_reply: Option<ReplySpec>,
    pub rules: Option<Vec<RuleSpec>>,
}

/// `[accounts.kf]`: how WeChat Customer Service messages are pulled.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct KfSection {
    pub max_message_age_secs: u64,
    pub sync_limit: u32,
    pub lock_ttl_secs: u64,
}

impl Default for KfSection {
    fn default() -> Self {
        KfSection {
            max_message_age_secs: 600,
            sync_limit: 100,
            lock_ttl_secs: 60,
        }
    }
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct DeliverySection {
    pub deadline_ms: u64,
    pub fallback_reply: ReplySpec,
    pub max_in_flight: usize,
    pub overload_reply: ReplySpec,
    pub dedup_window_secs: u64,
    pub dedup_capacity: usize,
    pub shutdown_grace_secs: u64,
}

impl Default for DeliverySection {
    fn default() -> Self {
        DeliverySection {
            deadline_ms: 4500,
            fallback_reply: ReplySpec::Success,
            max_in_flight: 1024,
            overload_reply: ReplySpec::Success,
            dedup_window_secs: 300,
            dedup_capacity: 100_000,
            shutdown_grace_secs: 10,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct SecuritySection {
    pub trusted_proxies: Vec<String>,
    pub ip_allowlist: String,
    pub extra_allowed_ips: Vec<String>,
}

impl Default for SecuritySection {
    fn default() -> Self {
        SecuritySection {
            trusted_proxies: Vec::new(),
            ip_allowlist: "off".into(),
            extra_allowed_ips: Vec::new(),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AdminSection {
    pub api_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct TokenSection {
    pub source: String,
    pub refresh_margin_secs: u64,
    pub api_base_url: String,
    pub timeout_secs: u64,
    pub lock_ttl_ms: u64,
    pub internal_api_key: Option<String>,
}

impl Default for TokenSection {
    fn default() -> Self {
        TokenSection {
            source: "stable".into(),
            refresh_margin_secs: 300,
            api_base_url: super::WECHAT_BASE_URL.into(),
            timeout_secs: 5,
            lock_ttl_ms: 10_000,
            internal_api_key: None,
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentSection {
    pub passive_budget_ms: Option<u64>,
    pub interim_text: Option<String>,
    pub fallback_text: Option<String>,
    pub typing: Option<bool>,
    pub moderation_url: Option<String>,
    pub moderation_template: Option<String>,
    pub moderation_timeout_ms: Option<u64>,
}

/// Every key of every protocol, so that a key of the wrong protocol gets a
/// message naming the protocol instead of "unknown field".
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct UpstreamSection {
    pub name: Option<String>,
    pub url: Option<String>,
    pub protocol: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_concurrency: Option<usize>,
    pub fallback_text: Option<String>,
    // webhook
    pub secret_env: Option<String>,
    // openai
    pub model: Option<String>,
    pub system_prompt: Option<String>,
    pub temperature: Option<f64>,
    pub api_key_env: Option<String>,
    pub history_turns: Option<usize>,
    pub history_ttl_secs: Option<u64>,
    pub reset_command: Option<String>,
    pub reset_reply: Option<String>,
}
