//! Log setup. `RUST_LOG` overrides the configured level.
//!
//! Lines go to stderr. The per-request access line (target
//! [`ACCESS_TARGET`], one per request at `info`) is made cheap twice over:
//! - it is formatted by a short path of the text format (`format.rs`), and
//! - it is batched (`batch.rs`): access lines reach stderr within
//!   [`FLUSH_AFTER`], or as soon as [`BATCH_BYTES`] have gathered, or just
//!   before any other line, so that the order is kept. One `write` per batch
//!   instead of one per request; every other line is written at once.

mod batch;
mod format;

use std::io::IsTerminal;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

use crate::config::LogConfig;
use batch::BatchedWriter;
use format::{TextFormat, UtcMicros};

/// The target of the one `info` line written per request.
pub const ACCESS_TARGET: &str = "wxgate::access";
/// The longest an access line waits in the batch.
pub const FLUSH_AFTER: Duration = Duration::from_millis(50);
/// A batch this large is written at once.
pub const BATCH_BYTES: usize = 64 * 1024;

/// What a handler tells the access line about its request, as a response
/// extension: the access line shows these fields when present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessNote {
    /// The message's MsgType label (`-` when refused before parsing).
    pub msg_type: &'static str,
    /// How the request was answered (`replied`, `duplicate`, a refusal label, …).
    pub outcome: &'static str,
    /// The delivery strategy of a slow answer (`late_send`, `retry_hold`, …).
    pub strategy: Option<&'static str>,
}

/// Installs the global subscriber (once; later calls are ignored).
pub fn init(log: &LogConfig) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(BatchedWriter::start(Box::new(std::io::stderr())))
        .with_ansi(std::io::stderr().is_terminal())
        .with_timer(UtcMicros);
    let _ = if log.json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.event_format(TextFormat::default()).try_init()
    };
}

/// An OpenID or user id shortened for logs: the first and last four
/// characters, so lines can be correlated without exposing who it is.
pub fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 10 {
        return "…".repeat(chars.len().min(1));
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_shortened() {
        assert_eq!(short_id("oX7kQ9mTzB4v-Lw2nR_c8YpE3sHd"), "oX7k…3sHd");
        assert_eq!(short_id("short"), "…");
        assert_eq!(short_id(""), "");
    }
}
