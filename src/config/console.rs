//! `[console]`: the operator console, a web page on the operator listener
//! (see `docs/console.md`). Off unless enabled; it needs the admin key
//! (its sign-in) and, unless explicitly allowed, the operator listener of
//! its own (`[admin] listen`), so it is never on the public port by
//! accident.

use std::time::Duration;

use serde::Deserialize;

/// `[console]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleSection {
    pub enabled: bool,
    pub show_content: bool,
    pub session_ttl_secs: u64,
    pub keep_backups: usize,
    pub recent_messages: usize,
    pub public_url: Option<String>,
    pub allow_public_listener: bool,
}

impl Default for ConsoleSection {
    fn default() -> Self {
        ConsoleSection {
            enabled: false,
            show_content: false,
            session_ttl_secs: 3600,
            keep_backups: 10,
            recent_messages: 200,
            public_url: None,
            allow_public_listener: false,
        }
    }
}

/// The console's settings, when it is enabled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleConfig {
    /// Message and answer texts are shown in the conversations page.
    pub show_content: bool,
    /// A session ends after this long without a request.
    pub session_ttl: Duration,
    /// Backups of the config file kept beside it (older ones are removed).
    pub keep_backups: usize,
    /// Recent messages kept in memory per account.
    pub recent_messages: usize,
    /// The public base URL WeChat calls (`https://wx.example.com`), for
    /// the accounts page and its verify button.
    pub public_url: Option<String>,
}

/// Longest accepted session lifetime: a week.
const MAX_SESSION_TTL_SECS: u64 = 7 * 24 * 3600;

/// Checks `[console]`; `None` when it is off. `has_admin_key` and
/// `has_operator_listener` come from `[admin]`.
pub(super) fn validate(
    raw: ConsoleSection,
    has_admin_key: bool,
    has_operator_listener: bool,
    problems: &mut Vec<String>,
) -> Option<ConsoleConfig> {
    if !(60..=MAX_SESSION_TTL_SECS).contains(&raw.session_ttl_secs) {
        problems.push(format!(
            "console.session_ttl_secs must be between 60 and {MAX_SESSION_TTL_SECS}, not {}",
            raw.session_ttl_secs
        ));
    }
    if !(1..=100).contains(&raw.keep_backups) {
        problems.push(format!(
            "console.keep_backups must be between 1 and 100, not {}",
            raw.keep_backups
        ));
    }
    if !(1..=10_000).contains(&raw.recent_messages) {
        problems.push(format!(
            "console.recent_messages must be between 1 and 10000, not {}",
            raw.recent_messages
        ));
    }
    let public_url = raw.public_url.map(|u| u.trim_end_matches('/').to_owned());
    if let Some(url) = &public_url {
        let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
        let host = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if !scheme_ok || host.is_empty() || host.contains('/') || host.contains('?') {
            problems.push(format!(
                "console.public_url must be a base URL like https://wx.example.com (no path), not {url:?}"
            ));
        }
    }
    if !raw.enabled {
        return None;
    }
    if !has_admin_key {
        problems.push(
            "console.enabled needs admin.api_key (the console's sign-in is the admin key)".into(),
        );
    }
    if !has_operator_listener && !raw.allow_public_listener {
        problems.push(
            "console.enabled needs admin.listen (the console is served on the operator listener, keep it on loopback); set console.allow_public_listener = true to serve it on server.listen"
                .into(),
        );
    }
    Some(ConsoleConfig {
        show_content: raw.show_content,
        session_ttl: Duration::from_secs(raw.session_ttl_secs),
        keep_backups: raw.keep_backups,
        recent_messages: raw.recent_messages,
        public_url,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        raw: ConsoleSection,
        key: bool,
        listener: bool,
    ) -> (Option<ConsoleConfig>, Vec<String>) {
        let mut problems = Vec::new();
        let config = validate(raw, key, listener, &mut problems);
        (config, problems)
    }

    #[test]
    fn off_by_default_and_on_with_the_key_and_the_listener() {
        let (config, problems) = check(ConsoleSection::default(), false, false);
        assert!(config.is_none() && problems.is_empty());
        let on = || ConsoleSection {
            enabled: true,
            ..ConsoleSection::default()
        };
        let (config, problems) = check(on(), true, true);
        assert!(problems.is_empty(), "{problems:?}");
        let config = config.unwrap();
        assert_eq!(config.session_ttl, Duration::from_secs(3600));
        assert!(!config.show_content);
        let (_, problems) = check(on(), false, true);
        assert!(problems[0].contains("admin.api_key"), "{problems:?}");
        let (_, problems) = check(on(), true, false);
        assert!(problems[0].contains("admin.listen"), "{problems:?}");
        let allowed = ConsoleSection {
            allow_public_listener: true,
            ..on()
        };
        assert!(check(allowed, true, false).1.is_empty());
    }

    #[test]
    fn values_out_of_range_are_named() {
        let raw = ConsoleSection {
            enabled: true,
            session_ttl_secs: 5,
            keep_backups: 0,
            recent_messages: 0,
            public_url: Some("wx.example.com/weixin".into()),
            ..ConsoleSection::default()
        };
        let (_, problems) = check(raw, true, true);
        for key in [
            "session_ttl_secs",
            "keep_backups",
            "recent_messages",
            "public_url",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(key)),
                "{key}: {problems:?}"
            );
        }
        let raw = ConsoleSection {
            public_url: Some("https://wx.example.com/".into()),
            ..ConsoleSection::default()
        };
        let mut problems = Vec::new();
        validate(
            ConsoleSection {
                enabled: true,
                ..raw
            },
            true,
            true,
            &mut problems,
        )
        .map(|c| assert_eq!(c.public_url.as_deref(), Some("https://wx.example.com")))
        .unwrap();
        assert!(problems.is_empty());
    }
}
