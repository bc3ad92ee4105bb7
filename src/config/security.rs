//! `[security]`: trusted proxies and the callback IP allowlist.

use ipnet::IpNet;
use serde::Deserialize;

use crate::security::{parse_net, AllowlistMode};

/// `[security]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySection {
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

/// Caller restrictions (`[security]`).
#[derive(Debug, Clone)]
pub struct SecurityConfig {
    /// Peers whose `X-Forwarded-For` / `X-Real-IP` are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Callback IP allowlist mode.
    pub allowlist: AllowlistMode,
    /// Always allowed when the allowlist is on.
    pub extra_allowed_ips: Vec<IpNet>,
}

/// Checks `[security]`.
pub(super) fn validate(raw: SecuritySection, problems: &mut Vec<String>) -> SecurityConfig {
    let mut nets = |list: &[String], what: &str| -> Vec<IpNet> {
        list.iter()
            .filter_map(|t| match parse_net(t) {
                Ok(n) => Some(n),
                Err(e) => {
                    problems.push(format!("security.{what}: {e}"));
                    None
                }
            })
            .collect()
    };
    let trusted_proxies = nets(&raw.trusted_proxies, "trusted_proxies");
    let extra_allowed_ips = nets(&raw.extra_allowed_ips, "extra_allowed_ips");
    let allowlist = match raw.ip_allowlist.as_str() {
        "off" => AllowlistMode::Off,
        "static" => AllowlistMode::Static,
        "wechat" => AllowlistMode::Wechat,
        other => {
            problems.push(format!(
                "security.ip_allowlist must be \"off\", \"static\" or \"wechat\", not {other:?}"
            ));
            AllowlistMode::Off
        }
    };
    if allowlist == AllowlistMode::Static && extra_allowed_ips.is_empty() {
        problems.push("security.ip_allowlist = \"static\" needs extra_allowed_ips".into());
    }
    SecurityConfig {
        trusted_proxies,
        allowlist,
        extra_allowed_ips,
    }
}
