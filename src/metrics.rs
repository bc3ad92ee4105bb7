//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! One [`Metrics`] per process, shared by `Arc`. Counters are atomics, so
//! recording costs a few nanoseconds on the request path. Label values are
//! `&'static str` from small fixed sets, so nothing an attacker sends can
//! grow the number of series.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Labels of `wxgate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// replied, success, verified, overload, deadline, duplicate, or a refusal label.
    pub outcome: &'static str,
    /// The MsgType (known types only; others are `other`, refusals `-`).
    pub msg_type: &'static str,
}

/// A single `kind` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    /// What happened.
    pub kind: &'static str,
}

/// A single `upstream` label: an `[[upstreams]]` name, a fixed set from the config.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UpstreamLabel {
    /// The upstream's name.
    pub upstream: String,
}

/// A histogram per upstream.
pub type UpstreamHistograms = Family<UpstreamLabel, Histogram, fn() -> Histogram>;

fn upstream_histogram() -> Histogram {
    // 10 ms … ~82 s: agents answer in seconds, sometimes in a minute.
    Histogram::new(exponential_buckets(0.01, 2.5, 11))
}

/// Every metric wxgate exports.
pub struct Metrics {
    registry: Registry,
    /// Last token counts seen, to turn the manager's totals into increments.
    token_seen: std::sync::Mutex<(u64, u64)>,
    /// Requests by outcome and MsgType.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency in seconds, callback path only.
    pub latency: Histogram,
    /// Bad `signature` / `msg_signature`.
    pub signature_failures: Counter,
    /// Ciphertexts that did not decrypt.
    pub decrypt_failures: Counter,
    /// Retries answered from the dedup record (`kind` = in_flight | replayed).
    pub dedup_hits: Family<KindLabel, Counter>,
    /// Requests answered with the overload reply.
    pub overload: Counter,
    /// Handlers cut at the deadline and answered with the fallback.
    pub deadline_fallbacks: Counter,
    /// Late results handed to the late-delivery hook (`kind` = delivered | dropped | failed).
    pub late_results: Family<KindLabel, Counter>,
    /// Callers refused by the IP allowlist.
    pub forbidden_ip: Counter,
    /// Access-token refreshes.
    pub token_refreshes: Counter,
    /// Failed access-token refreshes.
    pub token_refresh_failures: Counter,
    /// Store operations that failed (`kind` = the operation).
    pub store_errors: Family<KindLabel, Counter>,
    /// Upstream call duration in seconds, by upstream (failures included).
    pub upstream_latency: UpstreamHistograms,
    /// Agent answers delivered (`kind` = passive: in the HTTP answer | late:
    /// through the customer-service API).
    pub agent_deliveries: Family<KindLabel, Counter>,
    /// Agent failures (`kind` = timeout | error | malformed | overload |
    /// moderation_error | send_45015 | send_45047 | send_error).
    pub agent_failures: Family<KindLabel, Counter>,
    /// WeChat Customer Service messages pulled (`kind` = answered | stale |
    /// not_customer | duplicate | failed).
    pub kf_messages: Family<KindLabel, Counter>,
    /// Answers kept for the user's next message (`kind` = queued |
    /// delivered | expired: queued answers whose TTL ran out are counted
    /// when found gone, answers that could go nowhere at once).
    pub pending_answers: Family<KindLabel, Counter>,
    /// Slow conversation turns running on this node now.
    pub turns_in_flight: prometheus_client::metrics::gauge::Gauge,
    /// Messages whose handler's lease lapsed and that another delivery took over.
    pub lease_takeovers: Counter,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("wxgate");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Callback requests by outcome and MsgType",
            requests.clone(),
        );
        // 100 µs … ~6.5 s
        let latency = Histogram::new(exponential_buckets(0.0001, 3.0, 11));
        registry.register(
            "request_duration_seconds",
            "Callback request latency",
            latency.clone(),
        );
        let signature_failures = Counter::default();
        registry.register(
            "signature_failures",
            "Requests with a bad signature",
            signature_failures.clone(),
        );
        let decrypt_failures = Counter::default();
        registry.register(
            "decrypt_failures",
            "Ciphertexts that did not decrypt",
            decrypt_failures.clone(),
        );
        let dedup_hits = Family::<KindLabel, Counter>::default();
        registry.register(
            "dedup_hits",
            "WeChat retries answered from the dedup record",
            dedup_hits.clone(),
        );
        let overload = Counter::default();
        registry.register(
            "overload_replies",
            "Requests answered with the overload reply",
            overload.clone(),
        );
        let deadline_fallbacks = Counter::default();
        registry.register(
            "deadline_fallbacks",
            "Handlers cut at the deadline and answered with the fallback",
            deadline_fallbacks.clone(),
        );
        let late_results = Family::<KindLabel, Counter>::default();
        registry.register(
            "late_results",
            "Results that arrived after the deadline",
            late_results.clone(),
        );
        let forbidden_ip = Counter::default();
        registry.register(
            "forbidden_ip",
            "Callers refused by the callback IP allowlist",
            forbidden_ip.clone(),
        );
        let token_refreshes = Counter::default();
        registry.register(
            "token_refreshes",
            "Access-token refreshes",
            token_refreshes.clone(),
        );
        let token_refresh_failures = Counter::default();
        registry.register(
            "token_refresh_failures",
            "Failed access-token refreshes",
            token_refresh_failures.clone(),
        );
        let store_errors = Family::<KindLabel, Counter>::default();
        registry.register(
            "store_errors",
            "Failed store operations",
            store_errors.clone(),
        );
        let upstream_latency = UpstreamHistograms::new_with_constructor(upstream_histogram);
        registry.register(
            "upstream_duration_seconds",
            "Upstream (agent) call duration",
            upstream_latency.clone(),
        );
        let agent_deliveries = Family::<KindLabel, Counter>::default();
        registry.register(
            "agent_deliveries",
            "Agent answers delivered, passive (in the HTTP answer) or late (customer-service API)",
            agent_deliveries.clone(),
        );
        let agent_failures = Family::<KindLabel, Counter>::default();
        registry.register(
            "agent_failures",
            "Agent failures by kind",
            agent_failures.clone(),
        );
        let kf_messages = Family::<KindLabel, Counter>::default();
        registry.register(
            "kf_messages",
            "WeChat Customer Service messages pulled, by what became of them",
            kf_messages.clone(),
        );
        let pending_answers = Family::<KindLabel, Counter>::default();
        registry.register(
            "pending_answers",
            "Answers kept for the user's next message: queued, delivered, expired",
            pending_answers.clone(),
        );
        let turns_in_flight = prometheus_client::metrics::gauge::Gauge::default();
        registry.register(
            "turns_in_flight",
            "Slow conversation turns running on this node",
            turns_in_flight.clone(),
        );
        let lease_takeovers = Counter::default();
        registry.register(
            "lease_takeovers",
            "Messages taken over from a handler whose lease lapsed",
            lease_takeovers.clone(),
        );
        Metrics {
            registry,
            pending_answers,
            turns_in_flight,
            lease_takeovers,
            token_seen: std::sync::Mutex::new((0, 0)),
            requests,
            latency,
            signature_failures,
            decrypt_failures,
            dedup_hits,
            overload,
            deadline_fallbacks,
            late_results,
            forbidden_ip,
            token_refreshes,
            token_refresh_failures,
            store_errors,
            upstream_latency,
            agent_deliveries,
            agent_failures,
            kf_messages,
        }
    }

    /// Counts what became of a pending answer.
    pub fn pending(&self, kind: &'static str) {
        self.pending_answers
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// Counts one request.
    pub fn request(&self, outcome: &'static str, msg_type: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { outcome, msg_type })
            .inc();
    }

    /// Brings the token counters up to the token manager's totals.
    pub fn sync_token_counts(&self, fetches: u64, failures: u64) {
        let mut seen = self.token_seen.lock().unwrap_or_else(|p| p.into_inner());
        self.token_refreshes.inc_by(fetches.saturating_sub(seen.0));
        self.token_refresh_failures
            .inc_by(failures.saturating_sub(seen.1));
        *seen = (fetches.max(seen.0), failures.max(seen.1));
    }

    /// Counts a store failure.
    pub fn store_error(&self, kind: &'static str) {
        self.store_errors.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts an agent answer delivered (`passive` or `late`).
    pub fn agent_delivery(&self, kind: &'static str) {
        self.agent_deliveries
            .get_or_create(&KindLabel { kind })
            .inc();
    }

    /// Counts an agent failure.
    pub fn agent_failure(&self, kind: &'static str) {
        self.agent_failures.get_or_create(&KindLabel { kind }).inc();
    }

    /// Counts a pulled Customer Service message.
    pub fn kf_message(&self, kind: &'static str) {
        self.kf_messages.get_or_create(&KindLabel { kind }).inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Maps a MsgType to a bounded label value.
pub fn msg_type_label(msg_type: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "text",
        "image",
        "voice",
        "video",
        "shortvideo",
        "location",
        "link",
        "event",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(msg_type))
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        m.request("replied", "text");
        m.request("replied", "text");
        m.overload.inc();
        let text = m.render();
        assert!(
            text.contains("wxgate_requests_total{outcome=\"replied\",msg_type=\"text\"} 2"),
            "{text}"
        );
        assert!(text.contains("wxgate_overload_replies_total 1"), "{text}");
        assert!(text.contains("# TYPE wxgate_request_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn unknown_msg_types_share_one_label() {
        assert_eq!(msg_type_label("TEXT"), "text");
        assert_eq!(msg_type_label("miniprogrampage"), "other");
    }
}
