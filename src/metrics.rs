//! Prometheus metrics, served as text on `GET /metrics`.
//!
//! One [`Metrics`] per process, shared by `Arc`. Counters are atomics, so
//! recording costs a few nanoseconds on the request path. Label values are
//! `&'static str` from small fixed sets, or an account name from the
//! config (the `account` label of the callback metrics), so nothing an
//! attacker sends can grow the number of series.
//!
//! Histogram buckets are written out as literal bounds (1 ms, 2.5 ms, 5 ms …),
//! so the exposition reads `le="0.0025"`, never a float's rounding error, and a
//! dashboard can name them.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::Arc;

/// The callback latency buckets, in seconds: 1 ms … 10 s. WeChat gives up
/// after 5 s, so the top buckets show answers it never saw.
pub const REQUEST_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 4.5, 5.0, 10.0,
];

/// The upstream (agent) call buckets, in seconds: 10 ms … 120 s. Agents
/// answer in seconds, sometimes in a minute.
pub const UPSTREAM_BUCKETS: [f64; 13] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
];

/// An account's name as a label value: shared, so counting a request
/// clones a pointer, not the name.
pub type AccountName = Arc<String>;

/// A single `account` label: the account's name (`default` for `[account]`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AccountLabel {
    /// The account's name.
    pub account: AccountName,
}

/// A counter per account.
pub type AccountCounters = Family<AccountLabel, Counter>;
/// A histogram per account.
pub type AccountHistograms = Family<AccountLabel, Histogram, fn() -> Histogram>;

/// Labels of `wxgate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// replied, success, verified, overload, deadline, duplicate, or a refusal label.
    pub outcome: &'static str,
    /// The MsgType (known types only; others are `other`, refusals `-`).
    pub msg_type: &'static str,
    /// The account the request was for.
    pub account: AccountName,
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
    Histogram::new(UPSTREAM_BUCKETS)
}

fn request_histogram() -> Histogram {
    Histogram::new(REQUEST_BUCKETS)
}

/// Every metric wxgate exports.
pub struct Metrics {
    registry: Registry,
    /// Last token counts seen, to turn the manager's totals into increments.
    token_seen: std::sync::Mutex<(u64, u64)>,
    /// Requests by outcome, MsgType and account.
    pub requests: Family<RequestLabels, Counter>,
    /// Request latency in seconds by account, callback path only.
    pub latency: AccountHistograms,
    /// Bad `signature` / `msg_signature`, by account.
    pub signature_failures: AccountCounters,
    /// Ciphertexts that did not decrypt, by account.
    pub decrypt_failures: AccountCounters,
    /// Retries answered from the dedup record (`kind` = in_flight | replayed).
    pub dedup_hits: Family<KindLabel, Counter>,
    /// Requests answered with the overload reply.
    pub overload: Counter,
    /// Handlers cut at the deadline and answered with the fallback.
    pub deadline_fallbacks: Counter,
    /// Late results handed to the late-delivery hook (`kind` = delivered | dropped | failed).
    pub late_results: Family<KindLabel, Counter>,
    /// Callers refused by the IP allowlist, by account.
    pub forbidden_ip: AccountCounters,
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
            "Callback requests by outcome, MsgType and account",
            requests.clone(),
        );
        let latency = AccountHistograms::new_with_constructor(request_histogram);
        registry.register(
            "request_duration_seconds",
            "Callback request latency",
            latency.clone(),
        );
        let signature_failures = AccountCounters::default();
        registry.register(
            "signature_failures",
            "Requests with a bad signature",
            signature_failures.clone(),
        );
        let decrypt_failures = AccountCounters::default();
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
        let forbidden_ip = AccountCounters::default();
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

    /// Counts one request to an account.
    pub fn request(&self, account: &AccountName, outcome: &'static str, msg_type: &'static str) {
        self.requests
            .get_or_create(&RequestLabels {
                outcome,
                msg_type,
                account: account.clone(),
            })
            .inc();
    }

    /// Records how long an account's callback took, in seconds.
    pub fn observe_latency(&self, account: &AccountName, seconds: f64) {
        self.latency
            .get_or_create(&AccountLabel {
                account: account.clone(),
            })
            .observe(seconds);
    }

    /// Counts one refusal of an account's callback in a per-account counter
    /// (`signature_failures`, `decrypt_failures`, `forbidden_ip`).
    pub fn count_for(counters: &AccountCounters, account: &AccountName) {
        counters
            .get_or_create(&AccountLabel {
                account: account.clone(),
            })
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

/// One value of the exposition: a metric name (with its `_total`,
/// `_bucket`, `_sum` or `_count` suffix), its labels and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The sample's name as exposed.
    pub name: String,
    /// Its labels, in exposition order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Metrics {
    /// Every sample of the registry, read back from its own exposition
    /// (the console's overview reads the numbers `/metrics` shows, with no
    /// second bookkeeping).
    pub fn samples(&self) -> Vec<Sample> {
        parse_exposition(&self.render())
    }
}

/// Reads the sample lines of an OpenMetrics text (comments skipped).
pub fn parse_exposition(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_sample)
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        // key="value" pairs, values with \\, \" and \n escapes.
        let mut chars = body.char_indices().peekable();
        loop {
            match chars.peek()? {
                (i, '}') => {
                    rest = &body[i + 1..];
                    break;
                }
                (_, ',') => {
                    chars.next();
                    continue;
                }
                _ => {}
            }
            let mut key = String::new();
            loop {
                match chars.next()?.1 {
                    '=' => break,
                    c => key.push(c),
                }
            }
            if chars.next()?.1 != '"' {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()?.1 {
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        c => value.push(c),
                    },
                    '"' => break,
                    c => value.push(c),
                }
            }
            labels.push((key, value));
        }
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
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
    #[test]
    fn the_exposition_reads_back_into_samples() {
        let text = "# TYPE a counter\na_total{x=\"1\",y=\"q\\\"z\"} 3\nb 2.5\nc_bucket{le=\"+Inf\"} 7\n# EOF\n";
        let samples = super::parse_exposition(text);
        assert_eq!(samples.len(), 3, "{samples:?}");
        assert_eq!(samples[0].name, "a_total");
        assert_eq!(samples[0].label("y"), Some("q\"z"));
        assert_eq!(samples[0].value, 3.0);
        assert_eq!(samples[1].value, 2.5);
        assert_eq!(samples[2].label("le"), Some("+Inf"));
        assert!(super::parse_exposition("a{x=1} 2\nb{x=\"").is_empty());
    }

    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::new();
        let shop: AccountName = Arc::new("shop".into());
        m.request(&shop, "replied", "text");
        m.request(&shop, "replied", "text");
        m.request(&Arc::new("default".into()), "replied", "text");
        m.overload.inc();
        let text = m.render();
        assert!(
            text.contains(
                "wxgate_requests_total{outcome=\"replied\",msg_type=\"text\",account=\"shop\"} 2"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wxgate_requests_total{outcome=\"replied\",msg_type=\"text\",account=\"default\"} 1"
            ),
            "{text}"
        );
        assert!(text.contains("wxgate_overload_replies_total 1"), "{text}");
        assert!(text.contains("# TYPE wxgate_request_duration_seconds histogram"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn histogram_bounds_read_as_written() {
        let m = Metrics::new();
        let shop: AccountName = Arc::new("shop".into());
        m.observe_latency(&shop, 0.003);
        m.upstream_latency
            .get_or_create(&UpstreamLabel {
                upstream: "bot".into(),
            })
            .observe(0.2);
        let text = m.render();
        let bounds: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("wxgate_request_duration_seconds_bucket"))
            .map(|l| l.split("le=\"").nth(1).unwrap().split('"').next().unwrap())
            .collect();
        assert_eq!(
            bounds,
            [
                "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1.0",
                "2.5", "4.5", "5.0", "10.0", "+Inf"
            ],
            "{text}"
        );
        assert!(
            text.contains(
                "wxgate_request_duration_seconds_bucket{le=\"0.005\",account=\"shop\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "wxgate_upstream_duration_seconds_bucket{le=\"120.0\",upstream=\"bot\"} 1"
            ),
            "{text}"
        );
        // No bound anywhere carries a float's rounding error.
        for line in text.lines().filter(|l| l.contains("le=\"")) {
            let le = line
                .split("le=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap();
            assert!(le == "+Inf" || le.len() <= 6, "unreadable bound in {line}");
        }
    }

    #[test]
    fn unknown_msg_types_share_one_label() {
        assert_eq!(msg_type_label("TEXT"), "text");
        assert_eq!(msg_type_label("miniprogrampage"), "other");
    }
}
