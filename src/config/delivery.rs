//! `[delivery]`: the deadline, the fallback and overload replies, dedup and
//! the shutdown grace period.

use std::time::Duration;

use serde::Deserialize;

use crate::conversation::DeliverySettings;
use crate::domain::Reply;
use crate::rules::{compile_reply, ReplySpec};

/// `[delivery]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySection {
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

/// Retry, deadline and overload settings (`[delivery]`).
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Passed to the delivery machinery.
    pub settings: DeliverySettings,
    /// How long a message is remembered for dedup.
    pub dedup_window: Duration,
    /// At most this many messages remembered in memory.
    pub dedup_capacity: usize,
    /// After SIGTERM, requests in flight get this long to finish.
    pub shutdown_grace: Duration,
}

/// Checks `[delivery]`.
pub(super) fn validate(d: DeliverySection, problems: &mut Vec<String>) -> DeliveryConfig {
    let mut fixed_reply = |spec: &ReplySpec, what: &str| -> Reply {
        match compile_reply(spec) {
            Ok((_, true)) => {
                problems.push(format!("delivery.{what} cannot use placeholders"));
                Reply::Success
            }
            Ok((reply, false)) => reply,
            Err(e) => {
                problems.push(format!("delivery.{what}: {e}"));
                Reply::Success
            }
        }
    };
    let fallback = fixed_reply(&d.fallback_reply, "fallback_reply");
    let overload = fixed_reply(&d.overload_reply, "overload_reply");
    if !(100..=4900).contains(&d.deadline_ms) {
        problems.push(
            "delivery.deadline_ms must be between 100 and 4900 (WeChat gives up at 5000)".into(),
        );
    }
    if d.max_in_flight == 0 {
        problems.push("delivery.max_in_flight must be at least 1".into());
    }
    if d.dedup_window_secs == 0 || d.dedup_capacity == 0 {
        problems.push("delivery.dedup_window_secs and dedup_capacity must be positive".into());
    }
    DeliveryConfig {
        settings: DeliverySettings {
            deadline: Duration::from_millis(d.deadline_ms),
            fallback,
            overload,
            max_in_flight: d.max_in_flight,
        },
        dedup_window: Duration::from_secs(d.dedup_window_secs),
        dedup_capacity: d.dedup_capacity,
        shutdown_grace: Duration::from_secs(d.shutdown_grace_secs),
    }
}
