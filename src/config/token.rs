//! `[token]`: access tokens, and the internal endpoint that serves them.

use serde::Deserialize;

use super::{Secret, ENV_INTERNAL_API_KEY, MIN_API_KEY_LEN};
use crate::token::TokenSource;

/// `[token]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenSection {
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

/// Access token settings (`[token]`).
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Which endpoint issues tokens (`stable` by default).
    pub source: TokenSource,
    /// Refresh this many seconds before the token expires.
    pub refresh_margin_secs: u64,
    /// The WeChat API base URL, without a trailing slash.
    pub api_base_url: String,
    /// Upper bound on every outbound call.
    pub timeout_secs: u64,
    /// TTL of the cross-node refresh lock.
    pub lock_ttl_ms: u64,
    /// Bearer key of `GET /internal/access_token`; the route is off without it.
    pub internal_api_key: Option<Secret>,
}

/// An `http(s)://host…` base URL without query or fragment.
pub(super) fn valid_base_url(base: &str) -> bool {
    (base.starts_with("https://") || base.starts_with("http://"))
        && base
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
        && !base.contains(['?', '#', ' '])
}

/// Checks `[token]`; `env_key` is `WXGATE_INTERNAL_API_KEY`, which overrides the file.
pub(super) fn validate(
    raw: TokenSection,
    env_key: Option<String>,
    problems: &mut Vec<String>,
) -> TokenConfig {
    let source = raw.source.parse::<TokenSource>().unwrap_or_else(|e| {
        problems.push(format!("token.source {e}"));
        TokenSource::Stable
    });
    if !(1..=3600).contains(&raw.refresh_margin_secs) {
        problems.push(format!(
            "token.refresh_margin_secs must be between 1 and 3600 (tokens live 7200 s), not {}",
            raw.refresh_margin_secs
        ));
    }
    if !(1..=60).contains(&raw.timeout_secs) {
        problems.push(format!(
            "token.timeout_secs must be between 1 and 60, not {}",
            raw.timeout_secs
        ));
    }
    // The lock must outlive a fetch, or a second node could fetch while the first still is.
    if raw.lock_ttl_ms <= raw.timeout_secs.saturating_mul(1000) || raw.lock_ttl_ms > 300_000 {
        problems.push(format!(
            "token.lock_ttl_ms must exceed token.timeout_secs ({} ms) and be at most 300000, not {}",
            raw.timeout_secs.saturating_mul(1000),
            raw.lock_ttl_ms
        ));
    }
    let base = raw.api_base_url.trim_end_matches('/').to_owned();
    if !valid_base_url(&base) {
        problems.push(format!(
            "token.api_base_url {:?} is not an http(s) URL like https://api.weixin.qq.com",
            raw.api_base_url
        ));
    }
    let key = env_key.or(raw.internal_api_key).filter(|k| !k.is_empty());
    if let Some(k) = &key {
        if k.len() < MIN_API_KEY_LEN || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            problems.push(format!(
                "token.internal_api_key (or {ENV_INTERNAL_API_KEY}) must be at least {MIN_API_KEY_LEN} characters without spaces"
            ));
        }
    }
    TokenConfig {
        source,
        refresh_margin_secs: raw.refresh_margin_secs,
        api_base_url: base,
        timeout_secs: raw.timeout_secs,
        lock_ttl_ms: raw.lock_ttl_ms,
        internal_api_key: key.map(Secret::new),
    }
}
