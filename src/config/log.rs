//! `[log]`: what is logged, and how.

use serde::Deserialize;

/// `[log]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
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

/// Log output settings.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `tracing` filter directive, e.g. `info` or `wxgate=debug`.
    pub level: String,
    /// JSON lines instead of text.
    pub json: bool,
}

/// Checks `[log]`.
pub(super) fn validate(raw: LogSection, problems: &mut Vec<String>) -> LogConfig {
    let json = match raw.format.as_str() {
        "text" => false,
        "json" => true,
        other => {
            problems.push(format!(
                "log.format must be \"text\" or \"json\", not {other:?}"
            ));
            false
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&raw.level).is_err() {
        problems.push(format!("log.level {:?} is not a valid filter", raw.level));
    }
    LogConfig {
        level: raw.level,
        json,
    }
}
