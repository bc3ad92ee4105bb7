//! `GET /console/api/overview`: the numbers of the overview page, read
//! from the metrics registry's own exposition (the values `/metrics`
//! shows), the token managers and the readiness probes. Totals since
//! start: the page turns successive polls into rates and charts.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::session::Session;
use crate::metrics::Sample;
use crate::server::AppState;

/// Outcomes that answered WeChat (the rest are refusals).
const ANSWERED: &[&str] = &[
    "replied",
    "success",
    "verified",
    "duplicate",
    "deadline",
    "overload",
    "deferred",
    "held",
    "pending",
    "rate_limited",
    "fetched",
    "merged",
];

fn sum<'a>(samples: impl Iterator<Item = &'a Sample>) -> f64 {
    samples.map(|s| s.value).sum()
}

/// `{label value: total}` of the samples named `name`.
fn by_label(samples: &[Sample], name: &str, label: &str, account: Option<&str>) -> Value {
    let mut out: BTreeMap<String, f64> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.name == name) {
        if account.is_some() && s.label("account") != account {
            continue;
        }
        if let Some(v) = s.label(label) {
            *out.entry(v.to_owned()).or_default() += s.value;
        }
    }
    json!(out)
}

/// The `q` quantile (upper bucket bound, seconds) of a cumulative
/// histogram, or `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let target = q * total;
    buckets
        .iter()
        .find(|(_, count)| *count >= target)
        .map(|(le, _)| *le)
}

/// The cumulative buckets of histogram `name` whose `label` is `value`.
fn buckets(samples: &[Sample], name: &str, label: &str, value: &str) -> Vec<(f64, f64)> {
    let bucket = format!("{name}_bucket");
    let mut out: Vec<(f64, f64)> = samples
        .iter()
        .filter(|s| s.name == bucket && s.label(label) == Some(value))
        .filter_map(|s| {
            let le = match s.label("le")? {
                "+Inf" => f64::INFINITY,
                le => le.parse().ok()?,
            };
            Some((le, s.value))
        })
        .collect();
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn histogram(samples: &[Sample], name: &str, label: &str, value: &str) -> Value {
    let b = buckets(samples, name, label, value);
    let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
    // Bounds as the exposition writes them (`+Inf` for the last), so the
    // page can take the difference of two polls and read a window's quantiles.
    let bounds: Vec<(Value, f64)> = b
        .iter()
        .map(|(le, count)| {
            let le = if le.is_finite() {
                json!(le)
            } else {
                json!("+Inf")
            };
            (le, *count)
        })
        .collect();
    json!({
        "buckets": bounds,
        "count": b.last().map(|l| l.1).unwrap_or(0.0),
        "p50": finite(quantile(&b, 0.5)),
        "p99": finite(quantile(&b, 0.99)),
        "over_top_bucket": quantile(&b, 0.99).is_some_and(|v| v.is_infinite()),
    })
}

fn counter(samples: &[Sample], name: &str) -> f64 {
    sum(samples.iter().filter(|s| s.name == name))
}

pub(super) async fn overview(_: Session, State(state): State<AppState>) -> Response {
    let samples = state.metrics().samples();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let accounts: Vec<Value> = state
        .endpoints()
        .iter()
        .map(|e| {
            let name = e.name.as_str();
            let requests = samples
                .iter()
                .filter(|s| s.name == "wxgate_requests_total" && s.label("account") == Some(name));
            let mut outcomes: BTreeMap<String, f64> = BTreeMap::new();
            for s in requests {
                *outcomes
                    .entry(s.label("outcome").unwrap_or("-").to_owned())
                    .or_default() += s.value;
            }
            let total: f64 = outcomes.values().sum();
            let refusals: BTreeMap<&String, &f64> = outcomes
                .iter()
                .filter(|(k, _)| !ANSWERED.contains(&k.as_str()))
                .collect();
            let token = e.tokens.as_ref().map(|t| {
                let s = t.status();
                json!({
                    "valid": s.expires_at.is_some_and(|at| at > now),
                    "expires_at": s.expires_at,
                    "last_refresh": s.last_refresh,
                    "last_error": s.last_error.is_some(),
                    "fetches": s.fetches,
                    "failures": s.failures,
                })
            });
            json!({
                "name": name,
                "kind": e.kind,
                "requests": total,
                "outcomes": outcomes,
                "refusals": refusals,
                "latency": histogram(&samples, "wxgate_request_duration_seconds", "account", name),
                "strategy": e.delivery.conversations().map(|c| c.settings().strategy.as_str()),
                "token": token,
            })
        })
        .collect();
    let upstreams: BTreeMap<String, Value> = samples
        .iter()
        .filter(|s| s.name == "wxgate_upstream_duration_seconds_count")
        .filter_map(|s| s.label("upstream"))
        .map(|u| {
            (
                u.to_owned(),
                histogram(&samples, "wxgate_upstream_duration_seconds", "upstream", u),
            )
        })
        .collect();
    let mut checks = serde_json::Map::new();
    for probe in &state.inner.probes {
        let result = probe.check().await;
        checks.insert(
            probe.name().to_owned(),
            match result {
                Ok(status) => json!({ "ok": true, "status": status }),
                Err(reason) => json!({ "ok": false, "error": reason }),
            },
        );
    }
    let pending = by_label(&samples, "wxgate_pending_answers_total", "kind", None);
    Json(json!({
        "at": now,
        "uptime_secs": state.inner.started.elapsed().as_secs(),
        "accounts": accounts,
        "dedup_hits": by_label(&samples, "wxgate_dedup_hits_total", "kind", None),
        "overload": counter(&samples, "wxgate_overload_replies_total"),
        "deadline_fallbacks": counter(&samples, "wxgate_deadline_fallbacks_total"),
        "late_results": by_label(&samples, "wxgate_late_results_total", "kind", None),
        "upstreams": upstreams,
        "agent_failures": by_label(&samples, "wxgate_agent_failures_total", "kind", None),
        "agent_deliveries": by_label(&samples, "wxgate_agent_deliveries_total", "kind", None),
        "pending_answers": pending,
        "turns_in_flight": counter(&samples, "wxgate_turns_in_flight"),
        "store_errors": by_label(&samples, "wxgate_store_errors_total", "kind", None),
        "checks": checks,
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::quantile;

    #[test]
    fn quantiles_are_the_upper_bound_of_their_bucket() {
        let b = [
            (0.01, 50.0),
            (0.1, 98.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(&b, 0.5), Some(0.01));
        assert_eq!(quantile(&b, 0.99), Some(1.0));
        assert_eq!(quantile(&[(0.1, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(quantile(&[], 0.5), None);
    }
}
