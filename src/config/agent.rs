//! Validation of `[agent]` and `[[upstreams]]`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::conversation::{ConversationOptions, Strategy, DEFAULT_RATE_LIMITED};

use crate::agent::{
    AgentSettings, MediaSettings, ModerationSettings, OpenAiSettings, ProtocolSettings,
    UpstreamSettings, DEFAULT_FALLBACK_TEXT, DEFAULT_RESET_REPLY, DEFAULT_STREAM_CUT_TEXT,
    DEFAULT_VISION_PROMPT,
};
use crate::domain::markdown::AnswerFormat;
use crate::rules::{RuleSet, VoiceOptions};
use crate::secret::Secret;

/// Default `passive_budget_ms`, lowered to fit under a short deadline.
const DEFAULT_PASSIVE_BUDGET_MS: u64 = 4000;
const DEFAULT_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_MAX_CONCURRENCY: usize = 16;
const DEFAULT_HISTORY_TURNS: usize = 10;
const DEFAULT_HISTORY_TTL_SECS: u64 = 1800;
const DEFAULT_RESET_COMMAND: &str = "/reset";
const DEFAULT_MODERATION_TIMEOUT_MS: u64 = 3000;
const DEFAULT_MEDIA_TIMEOUT_MS: u64 = 10_000;

/// `[agent]` as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentSection {
    pub delivery: Option<String>,
    pub pending_ttl_secs: Option<u64>,
    pub pending_marker: Option<String>,
    pub more_marker: Option<String>,
    pub fetch_word: Option<String>,
    pub nothing_pending_text: Option<String>,
    pub rate_limit_per_minute: Option<u32>,
    pub rate_limited_text: Option<String>,
    pub proxy_margin_ms: Option<u64>,
    pub debounce_ms: Option<u64>,
    pub passive_budget_ms: Option<u64>,
    pub interim_text: Option<String>,
    pub fallback_text: Option<String>,
    pub typing: Option<bool>,
    pub moderation_url: Option<String>,
    pub moderation_template: Option<String>,
    pub moderation_timeout_ms: Option<u64>,
    pub voice_as_text: Option<bool>,
    pub voice_fallback_text: Option<String>,
    pub allow_private_media: Option<bool>,
    pub media_timeout_ms: Option<u64>,
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
    pub format: Option<String>,
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
    pub stream: Option<bool>,
    pub stream_cut_text: Option<String>,
    pub image_answers: Option<bool>,
    pub vision: Option<bool>,
    pub vision_prompt: Option<String>,
}

/// `[agent] voice_as_text` and `voice_fallback_text`: how every rule set
/// reads voice messages.
pub(super) fn voice_options(agent: &AgentSection, problems: &mut Vec<String>) -> VoiceOptions {
    let mut voice = VoiceOptions::default();
    if let Some(as_text) = agent.voice_as_text {
        voice.as_text = as_text;
    }
    match &agent.voice_fallback_text {
        Some(t) if t.trim().is_empty() => problems
            .push("agent.voice_fallback_text must not be empty (leave it out instead)".into()),
        Some(t) => voice.fallback = crate::domain::Reply::Text { content: t.clone() },
        None => {}
    }
    if !voice.as_text && agent.voice_fallback_text.is_some() {
        problems.push(
            "agent.voice_fallback_text needs agent.voice_as_text = true (the default)".into(),
        );
    }
    voice
}

/// Checks `[agent]` and `[[upstreams]]`, and that every upstream a rule
/// names exists. `env` resolves `secret_env` and `api_key_env`.
pub(super) fn validate(
    agent: AgentSection,
    upstreams: Vec<UpstreamSection>,
    rule_sets: &[(&str, &RuleSet)],
    deadline_ms: u64,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) -> AgentSettings {
    let conversation = conversation_options(&agent, problems);
    let voice_as_text = agent.voice_as_text.unwrap_or(true);
    let passive_budget_ms = match agent.passive_budget_ms {
        Some(ms) => {
            if ms < 50 || ms >= deadline_ms {
                problems.push(format!(
                    "agent.passive_budget_ms must be at least 50 and below delivery.deadline_ms ({deadline_ms}), not {ms}"
                ));
            }
            ms
        }
        None => DEFAULT_PASSIVE_BUDGET_MS.min(deadline_ms.saturating_sub(deadline_ms / 10)),
    };
    let mut text = |value: Option<String>, what: &str| -> Option<String> {
        match value {
            Some(v) if v.trim().is_empty() => {
                problems.push(format!("{what} must not be empty (leave it out instead)"));
                None
            }
            other => other,
        }
    };
    let interim_text = text(agent.interim_text, "agent.interim_text");
    let fallback_text = text(agent.fallback_text, "agent.fallback_text")
        .unwrap_or_else(|| DEFAULT_FALLBACK_TEXT.to_owned());
    let moderation_template = text(agent.moderation_template, "agent.moderation_template");
    let moderation = match agent.moderation_url {
        Some(url) => {
            if let Err(e) = check_url(&url) {
                problems.push(format!("agent.moderation_url {e}"));
            }
            let timeout_ms = agent
                .moderation_timeout_ms
                .unwrap_or(DEFAULT_MODERATION_TIMEOUT_MS);
            if !(100..=60_000).contains(&timeout_ms) {
                problems.push(format!(
                    "agent.moderation_timeout_ms must be between 100 and 60000, not {timeout_ms}"
                ));
            }
            match moderation_template {
                Some(template) => Some(ModerationSettings {
                    url,
                    template,
                    timeout: Duration::from_millis(timeout_ms),
                }),
                None => {
                    problems.push(
                        "agent.moderation_url needs agent.moderation_template (sent instead of a flagged answer)".into(),
                    );
                    None
                }
            }
        }
        None => {
            if moderation_template.is_some() || agent.moderation_timeout_ms.is_some() {
                problems.push(
                    "agent.moderation_template and moderation_timeout_ms need agent.moderation_url"
                        .into(),
                );
            }
            None
        }
    };

    // Every name written, valid entry or not: an entry with its own errors
    // should not also make the rules naming it "unknown".
    let written: Vec<String> = upstreams.iter().filter_map(|u| u.name.clone()).collect();
    let mut names = HashSet::new();
    let upstreams: Vec<UpstreamSettings> = upstreams
        .into_iter()
        .enumerate()
        .filter_map(|(i, raw)| {
            let label = match &raw.name {
                Some(name) => format!("upstreams[{i}] \"{name}\""),
                None => format!("upstreams[{i}]"),
            };
            let mut errors = Vec::new();
            let upstream = upstream(raw, &fallback_text, voice_as_text, env, &mut errors);
            problems.extend(errors.into_iter().map(|e| format!("{label}: {e}")));
            let upstream = upstream?;
            if !names.insert(upstream.name.clone()) {
                problems.push(format!("{label}: the name is used twice"));
            }
            Some(upstream)
        })
        .collect();

    for (account, rules) in rule_sets {
        for r in rules.upstream_refs() {
            if !written.iter().any(|n| **n == *r.upstream) {
                let known = if written.is_empty() {
                    "no [[upstreams]] are configured".to_owned()
                } else {
                    let mut list: Vec<_> = written.iter().map(String::as_str).collect();
                    list.sort_unstable();
                    format!("configured: {}", list.join(", "))
                };
                let account = if account.is_empty() {
                    String::new()
                } else {
                    format!("account {account:?}: ")
                };
                problems.push(format!(
                    "{account}rule {}: unknown upstream {:?} ({known})",
                    r.rule, &*r.upstream
                ));
            }
        }
    }

    let media_timeout_ms = agent.media_timeout_ms.unwrap_or(DEFAULT_MEDIA_TIMEOUT_MS);
    if !(100..=60_000).contains(&media_timeout_ms) {
        problems.push(format!(
            "agent.media_timeout_ms must be between 100 and 60000, not {media_timeout_ms}"
        ));
    }
    AgentSettings {
        media: MediaSettings {
            allow_private: agent.allow_private_media.unwrap_or(false),
            timeout: Duration::from_millis(media_timeout_ms),
        },
        passive_budget: Duration::from_millis(passive_budget_ms),
        interim_text,
        fallback_text,
        typing: agent.typing.unwrap_or(true),
        moderation,
        upstreams,
        conversation,
    }
}

/// The delivery options of `[agent]`: `delivery`, the pending queue, the
/// fetch word and the rate limit.
fn conversation_options(agent: &AgentSection, problems: &mut Vec<String>) -> ConversationOptions {
    let mut o = ConversationOptions::default();
    match agent.delivery.as_deref() {
        None | Some("auto") => {}
        Some(other) => match other.parse::<Strategy>() {
            Ok(s) => o.delivery = Some(s),
            Err(e) => problems.push(format!("agent.delivery {e}")),
        },
    }
    if let Some(secs) = agent.pending_ttl_secs {
        if !(60..=7 * 86_400).contains(&secs) {
            problems.push(format!(
                "agent.pending_ttl_secs must be between 60 and 604800 (7 days), not {secs}"
            ));
        }
        o.pending_ttl = Duration::from_secs(secs);
    }
    let mut text = |value: &Option<String>, what: &str, into: &mut String| {
        if let Some(v) = value {
            if v.trim().is_empty() {
                problems.push(format!(
                    "agent.{what} must not be empty (leave it out instead)"
                ));
            } else {
                *into = v.clone();
            }
        }
    };
    text(
        &agent.pending_marker,
        "pending_marker",
        &mut o.pending_marker,
    );
    text(&agent.more_marker, "more_marker", &mut o.more_marker);
    text(
        &agent.nothing_pending_text,
        "nothing_pending_text",
        &mut o.nothing_pending,
    );
    // An empty fetch word turns the fetch word off.
    if let Some(word) = &agent.fetch_word {
        o.fetch_word = Some(word.trim().to_owned()).filter(|w| !w.is_empty());
    }
    let mut limited = DEFAULT_RATE_LIMITED.to_owned();
    text(&agent.rate_limited_text, "rate_limited_text", &mut limited);
    match agent.rate_limit_per_minute {
        None | Some(0) => {}
        Some(n) => o.rate_limit = Some((n, limited)),
    }
    if let Some(ms) = agent.proxy_margin_ms {
        if ms > 2000 {
            problems.push(format!(
                "agent.proxy_margin_ms must be at most 2000 (WeChat gives up at 5000), not {ms}"
            ));
        }
        o.proxy_margin = Duration::from_millis(ms);
    }
    match agent.debounce_ms {
        None | Some(0) => {}
        Some(ms) if ms > 3000 => problems.push(format!(
            "agent.debounce_ms must be at most 3000 (the window is taken from the 5 s WeChat waits), not {ms}"
        )),
        Some(ms) => o.debounce = Some(Duration::from_millis(ms)),
    }
    o
}

/// One upstream; `None` when it cannot be used (the reasons are in `errors`).
fn upstream(
    raw: UpstreamSection,
    default_fallback: &str,
    voice_as_text: bool,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<UpstreamSettings> {
    let name = match raw.name {
        Some(n)
            if !n.is_empty()
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            Some(n)
        }
        Some(n) => {
            errors.push(format!("name {n:?} must be letters, digits, - and _ only"));
            None
        }
        None => {
            errors.push("name is missing".into());
            None
        }
    };
    let url = match raw.url {
        Some(url) => match check_url(&url) {
            Ok(()) => Some(url),
            Err(e) => {
                errors.push(format!("url {e}"));
                None
            }
        },
        None => {
            errors.push("url is missing".into());
            None
        }
    };
    let timeout_ms = raw.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
    if !(100..=600_000).contains(&timeout_ms) {
        errors.push(format!(
            "timeout_ms must be between 100 and 600000, not {timeout_ms}"
        ));
    }
    let max_concurrency = raw.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
    if max_concurrency == 0 {
        errors.push("max_concurrency must be at least 1".into());
    }
    let fallback_text = match raw.fallback_text {
        Some(t) if t.trim().is_empty() => {
            errors.push("fallback_text must not be empty (leave it out instead)".into());
            String::new()
        }
        Some(t) => t,
        None => default_fallback.to_owned(),
    };
    let secret = |var: Option<String>, what: &str, errors: &mut Vec<String>| -> Option<Secret> {
        let var = var?;
        match env(&var).filter(|v| !v.is_empty()) {
            Some(v) => Some(Secret::new(v)),
            None => {
                errors.push(format!(
                    "{what} names the environment variable {var}, which is not set"
                ));
                None
            }
        }
    };
    let openai_only = [
        ("model", raw.model.is_some()),
        ("system_prompt", raw.system_prompt.is_some()),
        ("temperature", raw.temperature.is_some()),
        ("api_key_env", raw.api_key_env.is_some()),
        ("history_turns", raw.history_turns.is_some()),
        ("history_ttl_secs", raw.history_ttl_secs.is_some()),
        ("reset_command", raw.reset_command.is_some()),
        ("reset_reply", raw.reset_reply.is_some()),
        ("stream", raw.stream.is_some()),
        ("stream_cut_text", raw.stream_cut_text.is_some()),
        ("image_answers", raw.image_answers.is_some()),
        ("vision", raw.vision.is_some()),
        ("vision_prompt", raw.vision_prompt.is_some()),
    ];
    let protocol = match raw.protocol.as_deref() {
        Some("webhook") => {
            for (key, _) in openai_only.iter().filter(|(_, set)| *set) {
                errors.push(format!("{key} only applies to protocol = \"openai\""));
            }
            Some(ProtocolSettings::Webhook {
                secret: secret(raw.secret_env, "secret_env", errors),
            })
        }
        Some("openai") => {
            if raw.secret_env.is_some() {
                errors.push(
                    "secret_env only applies to protocol = \"webhook\" (use api_key_env)".into(),
                );
            }
            let model = raw.model.filter(|m| !m.trim().is_empty());
            if model.is_none() {
                errors.push("model is missing (protocol = \"openai\" needs it)".into());
            }
            if let Some(t) = raw.temperature {
                if !(0.0..=2.0).contains(&t) {
                    errors.push(format!("temperature must be between 0 and 2, not {t}"));
                }
            }
            let history_turns = raw.history_turns.unwrap_or(DEFAULT_HISTORY_TURNS);
            if history_turns > 100 {
                errors.push(format!(
                    "history_turns must be at most 100, not {history_turns}"
                ));
            }
            let history_ttl_secs = raw.history_ttl_secs.unwrap_or(DEFAULT_HISTORY_TTL_SECS);
            if history_ttl_secs == 0 {
                errors.push("history_ttl_secs must be positive".into());
            }
            let reset_command = raw
                .reset_command
                .unwrap_or_else(|| DEFAULT_RESET_COMMAND.to_owned());
            if reset_command.trim().is_empty() {
                errors.push("reset_command must not be empty".into());
            }
            let api_key = secret(raw.api_key_env, "api_key_env", errors);
            let stream_cut_text = match raw.stream_cut_text {
                Some(t) if t.trim().is_empty() => {
                    errors.push("stream_cut_text must not be empty (leave it out instead)".into());
                    String::new()
                }
                Some(t) => t,
                None => DEFAULT_STREAM_CUT_TEXT.to_owned(),
            };
            let vision = raw.vision.unwrap_or(false);
            let vision_prompt = match raw.vision_prompt {
                Some(p) if p.trim().is_empty() => {
                    errors.push("vision_prompt must not be empty (leave it out instead)".into());
                    String::new()
                }
                Some(_) if !vision => {
                    errors.push("vision_prompt needs vision = true".into());
                    String::new()
                }
                Some(p) => p,
                None => DEFAULT_VISION_PROMPT.to_owned(),
            };
            model.map(|model| {
                ProtocolSettings::OpenAi(OpenAiSettings {
                    model,
                    system_prompt: raw.system_prompt.filter(|p| !p.trim().is_empty()),
                    temperature: raw.temperature,
                    api_key,
                    history_turns,
                    history_ttl: Duration::from_secs(history_ttl_secs),
                    reset_command: reset_command.trim().to_owned(),
                    voice_as_text,
                    stream: raw.stream.unwrap_or(false),
                    stream_cut_text,
                    image_answers: raw.image_answers.unwrap_or(false),
                    vision,
                    vision_prompt,
                    reset_reply: raw
                        .reset_reply
                        .filter(|r| !r.trim().is_empty())
                        .unwrap_or_else(|| DEFAULT_RESET_REPLY.to_owned()),
                })
            })
        }
        Some(other) => {
            errors.push(format!(
                "protocol must be \"webhook\" or \"openai\", not {other:?}"
            ));
            None
        }
        None => {
            errors.push("protocol is missing (\"webhook\" or \"openai\")".into());
            None
        }
    };
    let format = match raw.format.as_deref() {
        None => None,
        Some("markdown") => Some(AnswerFormat::Markdown),
        Some("plain") => Some(AnswerFormat::Plain),
        Some(other) => {
            errors.push(format!(
                "format must be \"markdown\" or \"plain\", not {other:?}"
            ));
            None
        }
    };
    let (Some(name), Some(url), Some(protocol)) = (name, url, protocol) else {
        return None;
    };
    let url = match protocol {
        // Base URLs (`http://127.0.0.1:11434/v1`) get the endpoint appended.
        ProtocolSettings::OpenAi(_)
            if !url.trim_end_matches('/').ends_with("/chat/completions") =>
        {
            format!("{}/chat/completions", url.trim_end_matches('/'))
        }
        _ => url,
    };
    // Chat models answer in markdown; a webhook answers what its author wrote.
    let format = format.unwrap_or(match protocol {
        ProtocolSettings::OpenAi(_) => AnswerFormat::Markdown,
        ProtocolSettings::Webhook { .. } => AnswerFormat::Plain,
    });
    Some(UpstreamSettings {
        name: Arc::from(name),
        format,
        url,
        timeout: Duration::from_millis(timeout_ms),
        max_concurrency,
        fallback_text,
        protocol,
    })
}

/// An absolute http(s) URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(_) => Err(format!("{url:?} must be an http:// or https:// URL")),
        Err(e) => Err(format!("{url:?} is not a URL: {e}")),
    }
}
