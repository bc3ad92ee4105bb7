//! The keyword rule engine: TOML rules in, a reply for each message out.
//!
//! Depends on [`crate::domain`] only; knows nothing of encryption, HTTP or
//! storage. Rules are evaluated as if in file order with the first match
//! winning, but text matching uses automata (a hash map for exact keywords,
//! Aho-Corasick for `contains`/`prefix`, a `RegexSet` for regexes) so that ten
//! thousand keywords cost about as much as ten.
//!
//! Kept in one file (about 650 lines): compiling and evaluating share the
//! private compiled forms (conditions, actions, the voice fallback), which
//! would otherwise have to be made visible to a second file.

mod index;
pub mod spec;
pub mod template;

use std::sync::Arc;

use thiserror::Error;

use crate::domain::{Article, Message, MessageKind, Reply};
use index::TextIndex;
pub use spec::{ArticleSpec, MatchSpec, OneOrMany, ReplySpec, RuleSpec};

/// The rules in force, swapped whole on reload without a lock.
pub type SharedRules = Arc<arc_swap::ArcSwap<RuleSet>>;

/// One problem with one rule.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("rule {rule}: {message}")]
pub struct RuleError {
    /// `#N "name"` of the offending rule (1-based), or `default_reply`.
    pub rule: String,
    /// What is wrong.
    pub message: String,
}

/// Non-text conditions, checked in order.
#[derive(Debug, Clone)]
enum Condition {
    /// Matched through the text index.
    Text,
    MsgType(String),
    Event {
        name: String,
        key: Option<KeyMatch>,
    },
}

#[derive(Debug, Clone)]
enum KeyMatch {
    Exact(String),
    Prefix(String),
}

/// What a rule (or the default reply) does with a message.
#[derive(Debug, Clone)]
enum Action {
    /// Answer this reply; `true` when it has placeholders to fill in.
    Reply(Reply, bool),
    /// Hand the message to the named upstream.
    Upstream(Arc<str>),
}

#[derive(Debug, Clone)]
struct CompiledRule {
    name: String,
    condition: Condition,
    action: Action,
    /// What the rule was written as (its match and reply), to tell a changed
    /// rule from an unchanged one on reload.
    written: String,
}

/// The outcome of evaluating the rules for one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Name of the matching rule; `None` for the default reply or no match.
    pub rule: Option<String>,
    /// What to answer (placeholders already filled in); `success` when
    /// [`Decision::upstream`] is set, since the upstream decides.
    pub reply: Reply,
    /// The upstream the message goes to, when the rule says `type = "upstream"`.
    pub upstream: Option<Arc<str>>,
}

/// A rule (or `default_reply`) that hands messages to an upstream; the
/// configuration checks that the upstream exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamRef {
    /// `#N "name"` of the rule, or `default_reply`.
    pub rule: String,
    /// The upstream named.
    pub upstream: Arc<str>,
}

/// Answered to a voice message without a transcript when no fallback text is configured.
pub const DEFAULT_VOICE_FALLBACK_TEXT: &str =
    "抱歉，没能识别这条语音。请打开语音转文字后重发，或直接发送文字。";

/// How voice messages meet the rules (`[agent] voice_as_text`,
/// `voice_fallback_text`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceOptions {
    /// A voice message's transcript (`<Recognition>`) is its text: text
    /// rules match it, `{content}` is it, upstreams get it.
    pub as_text: bool,
    /// Answered to a voice message with no transcript (speech recognition
    /// off) that no rule took, when it would otherwise have gone to the
    /// text rules or to an upstream.
    pub fallback: Reply,
}

impl Default for VoiceOptions {
    fn default() -> Self {
        VoiceOptions {
            as_text: true,
            fallback: Reply::Text {
                content: DEFAULT_VOICE_FALLBACK_TEXT.to_owned(),
            },
        }
    }
}

/// A compiled, immutable set of rules.
#[derive(Debug)]
pub struct RuleSet {
    voice: VoiceOptions,
    rules: Vec<CompiledRule>,
    /// Indices of rules that are not text rules, in order.
    others: Vec<usize>,
    text: TextIndex,
    default: Option<Action>,
    upstream_refs: Vec<UpstreamRef>,
    /// The default reply as written (see [`CompiledRule::written`]).
    default_written: Option<String>,
}

/// Rules added, removed and changed between two rule sets, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesDiff {
    /// In the newer set only.
    pub added: Vec<String>,
    /// In the older set only.
    pub removed: Vec<String>,
    /// In both, written differently.
    pub changed: Vec<String>,
    /// The default reply was added, removed or changed.
    pub default_reply_changed: bool,
}

impl RulesDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && !self.default_reply_changed
    }
}

impl std::fmt::Display for RulesDiff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("unchanged");
        }
        let mut parts = Vec::new();
        for (label, names) in [
            ("added", &self.added),
            ("removed", &self.removed),
            ("changed", &self.changed),
        ] {
            if !names.is_empty() {
                parts.push(format!("{label} {}", names.join(", ")));
            }
        }
        if self.default_reply_changed {
            parts.push("default_reply changed".into());
        }
        f.write_str(&parts.join("; "))
    }
}

impl RuleSet {
    /// Compiles rules, reporting every problem found (not just the first).
    pub fn compile(
        specs: &[RuleSpec],
        default: Option<&ReplySpec>,
    ) -> Result<RuleSet, Vec<RuleError>> {
        let default_written = default.map(|d| format!("{d:?}"));
        let mut errors = Vec::new();
        let mut rules = Vec::with_capacity(specs.len());
        let mut others = Vec::new();
        let mut text = index::TextIndexBuilder::default();
        let mut upstream_refs = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let label = match &spec.name {
                Some(name) => format!("#{} \"{}\"", i + 1, name),
                None => format!("#{}", i + 1),
            };
            let mut fail = |message: String| {
                errors.push(RuleError {
                    rule: label.clone(),
                    message,
                })
            };
            let condition = match compile_match(&spec.matcher, i, &mut text) {
                Ok(c) => c,
                Err(message) => {
                    fail(message);
                    continue;
                }
            };
            let action = match compile_action(&spec.reply) {
                Ok(a) => a,
                Err(message) => {
                    fail(message);
                    continue;
                }
            };
            if let Action::Upstream(upstream) = &action {
                upstream_refs.push(UpstreamRef {
                    rule: label.clone(),
                    upstream: upstream.clone(),
                });
            }
            if !matches!(condition, Condition::Text) {
                others.push(i);
            }
            rules.push(CompiledRule {
                name: spec.name.clone().unwrap_or_else(|| format!("#{}", i + 1)),
                condition,
                action,
                written: format!("{:?} {:?}", spec.matcher, spec.reply),
            });
        }
        let default = match default.map(compile_action).transpose() {
            Ok(d) => d,
            Err(message) => {
                errors.push(RuleError {
                    rule: "default_reply".into(),
                    message,
                });
                None
            }
        };
        if let Some(Action::Upstream(upstream)) = &default {
            upstream_refs.push(UpstreamRef {
                rule: "default_reply".into(),
                upstream: upstream.clone(),
            });
        }
        let text = match text.build() {
            Ok(t) => t,
            Err(message) => {
                errors.push(RuleError {
                    rule: "(all text rules)".into(),
                    message,
                });
                return Err(errors);
            }
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(RuleSet {
            voice: VoiceOptions::default(),
            rules,
            others,
            text,
            default,
            upstream_refs,
            default_written,
        })
    }

    /// What changed from `self` to `newer`, rule by rule (by name; an
    /// unnamed rule is `#N`, its place in the file), and the default reply.
    pub fn diff(&self, newer: &RuleSet) -> RulesDiff {
        let find = |set: &RuleSet, name: &str| {
            set.rules
                .iter()
                .find(|r| r.name == name)
                .map(|r| r.written.clone())
        };
        let mut diff = RulesDiff::default();
        for rule in &newer.rules {
            match find(self, &rule.name) {
                None => diff.added.push(rule.name.clone()),
                Some(old) if old != rule.written => diff.changed.push(rule.name.clone()),
                Some(_) => {}
            }
        }
        for rule in &self.rules {
            if find(newer, &rule.name).is_none() {
                diff.removed.push(rule.name.clone());
            }
        }
        diff.default_reply_changed = self.default_written != newer.default_written;
        diff
    }

    /// The same rules, reading voice messages as `voice` says.
    pub fn with_voice(mut self, voice: VoiceOptions) -> RuleSet {
        self.voice = voice;
        self
    }

    /// How voice messages are read.
    pub fn voice(&self) -> &VoiceOptions {
        &self.voice
    }

    /// The text the text rules see: a text's content, or with
    /// `voice_as_text` a voice's transcript (`None` when it has none).
    fn text_of<'m>(&self, message: &'m Message) -> Option<&'m str> {
        match &message.kind {
            MessageKind::Text { .. } => message.text(),
            MessageKind::Voice { .. } if self.voice.as_text => message.text(),
            _ => None,
        }
    }

    /// A voice message the rules would read as text but that has no
    /// transcript.
    fn is_voice_without_text(&self, message: &Message) -> bool {
        self.voice.as_text
            && matches!(message.kind, MessageKind::Voice { .. })
            && message.text().is_none()
    }

    /// Whether a default reply is configured.
    pub fn has_default_reply(&self) -> bool {
        self.default.is_some()
    }

    /// The rules that hand messages to an upstream, in file order.
    pub fn upstream_refs(&self) -> &[UpstreamRef] {
        &self.upstream_refs
    }

    /// An empty rule set: every message gets `success`.
    pub fn empty() -> RuleSet {
        RuleSet::compile(&[], None).unwrap_or_else(|_| unreachable!("empty rules always compile"))
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The reply for a message: first matching rule; else, for user messages
    /// (not events), the default reply; else `success`. Events get no default
    /// reply: answering an unsubscribe or a job report makes no sense.
    pub fn evaluate(&self, message: &Message) -> Decision {
        let mut best = self
            .text_of(message)
            .and_then(|text| self.text.first_match(text));
        for &i in &self.others {
            if best.is_some_and(|b| b < i) {
                break;
            }
            if self.rules[i].condition.matches(message) {
                best = Some(i);
                break;
            }
        }
        // A voice without a transcript that no rule took would have been
        // read by the text rules or handed to an upstream as empty text:
        // it gets the voice fallback instead.
        if best.is_none()
            && self.is_voice_without_text(message)
            && (self.rules.len() > self.others.len()
                || matches!(self.default, Some(Action::Upstream(_))))
        {
            return Decision {
                rule: None,
                reply: self.voice.fallback.clone(),
                upstream: None,
            };
        }
        let (rule, action) = match best {
            Some(i) => (
                Some(self.rules[i].name.clone()),
                Some(&self.rules[i].action),
            ),
            None => (
                None,
                self.default.as_ref().filter(|_| message.is_user_message()),
            ),
        };
        let (reply, upstream) = match action {
            Some(Action::Reply(reply, templated)) => (
                fill(reply, *templated, message, self.text_of(message)),
                None,
            ),
            Some(Action::Upstream(name)) => (Reply::Success, Some(name.clone())),
            None => (Reply::Success, None),
        };
        Decision {
            rule,
            reply,
            upstream,
        }
    }
}

fn compile_action(spec: &ReplySpec) -> Result<Action, String> {
    match spec {
        ReplySpec::Upstream { upstream } if upstream.trim().is_empty() => {
            Err("upstream reply needs the name of an [[upstreams]] entry".into())
        }
        ReplySpec::Upstream { upstream } => Ok(Action::Upstream(Arc::from(upstream.as_str()))),
        other => compile_reply(other).map(|(reply, templated)| Action::Reply(reply, templated)),
    }
}

impl Condition {
    fn matches(&self, message: &Message) -> bool {
        match self {
            Condition::Text => false,
            Condition::MsgType(t) => message.msg_type.eq_ignore_ascii_case(t),
            Condition::Event { name, key } => {
                message.event().is_some()
                    && message.event_name().eq_ignore_ascii_case(name)
                    && match key {
                        None => true,
                        Some(KeyMatch::Exact(k)) => message.event_key() == k,
                        Some(KeyMatch::Prefix(p)) => message.event_key().starts_with(p.as_str()),
                    }
            }
        }
    }
}

fn compile_match(
    m: &MatchSpec,
    rule: usize,
    text: &mut index::TextIndexBuilder,
) -> Result<Condition, String> {
    let kinds = [
        m.text.is_some(),
        m.contains.is_some(),
        m.prefix.is_some(),
        m.regex.is_some(),
        m.msg_type.is_some(),
        m.event.is_some(),
    ];
    match kinds.iter().filter(|&&k| k).count() {
        0 => {
            return Err("match needs one of text, contains, prefix, regex, msg_type, event".into())
        }
        1 => {}
        _ => {
            return Err(
                "match may use only one of text, contains, prefix, regex, msg_type, event".into(),
            )
        }
    }
    if m.event.is_none() && (m.key.is_some() || m.key_prefix.is_some()) {
        return Err("key and key_prefix only go with event".into());
    }
    let is_text =
        m.text.is_some() || m.contains.is_some() || m.prefix.is_some() || m.regex.is_some();
    if m.ignore_case && !is_text {
        return Err("ignore_case only goes with text, contains, prefix or regex".into());
    }
    let non_empty = |list: &OneOrMany, what: &str| -> Result<(), String> {
        if list.items().is_empty() || list.items().iter().any(String::is_empty) {
            return Err(format!("{what} needs non-empty strings"));
        }
        Ok(())
    };
    if let Some(list) = &m.text {
        non_empty(list, "text")?;
        text.exact(list.items(), m.ignore_case, rule);
    } else if let Some(list) = &m.contains {
        non_empty(list, "contains")?;
        text.contains(list.items(), m.ignore_case, rule);
    } else if let Some(list) = &m.prefix {
        non_empty(list, "prefix")?;
        text.prefix(list.items(), m.ignore_case, rule);
    } else if let Some(re) = &m.regex {
        text.regex(re, m.ignore_case, rule)?;
    } else if let Some(t) = &m.msg_type {
        if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("msg_type {t:?} is not a message type"));
        }
        return Ok(Condition::MsgType(t.clone()));
    } else if let Some(e) = &m.event {
        if e.trim().is_empty() {
            return Err("event needs a name".into());
        }
        let key = match (&m.key, &m.key_prefix) {
            (Some(_), Some(_)) => return Err("use key or key_prefix, not both".into()),
            (Some(k), None) => Some(KeyMatch::Exact(k.clone())),
            (None, Some(p)) => Some(KeyMatch::Prefix(p.clone())),
            (None, None) => None,
        };
        return Ok(Condition::Event {
            name: e.trim().to_owned(),
            key,
        });
    }
    Ok(Condition::Text)
}

/// Validates a reply spec and converts it; `true` when it has placeholders.
/// `type = "upstream"` is refused: only rules and `default_reply` hand
/// messages to upstreams.
pub fn compile_reply(spec: &ReplySpec) -> Result<(Reply, bool), String> {
    let reply = build_reply(spec.clone())?;
    let mut templated = false;
    let mut problem = None;
    let _ = map_strings(&reply, &mut |s: &str| {
        if template::has_placeholders(s) {
            templated = true;
            if let Err(e) = template::validate(s) {
                problem.get_or_insert(e);
            }
        }
        String::new()
    });
    match problem {
        Some(p) => Err(p),
        None => Ok((reply, templated)),
    }
}

/// Converts a reply spec as it is, without placeholders: for answers that
/// come from elsewhere (an upstream), where braces are just text.
pub fn build_reply(spec: ReplySpec) -> Result<Reply, String> {
    Ok(match spec {
        ReplySpec::Success => Reply::Success,
        ReplySpec::Text { content } => {
            if content.is_empty() {
                return Err("text reply needs non-empty content".into());
            }
            Reply::Text { content }
        }
        ReplySpec::Image { media_id } => Reply::Image {
            media_id: non_empty(media_id, "media_id")?,
        },
        ReplySpec::Voice { media_id } => Reply::Voice {
            media_id: non_empty(media_id, "media_id")?,
        },
        ReplySpec::Video {
            media_id,
            title,
            description,
        } => Reply::Video {
            media_id: non_empty(media_id, "media_id")?,
            title,
            description,
        },
        ReplySpec::Music {
            thumb_media_id,
            title,
            description,
            music_url,
            hq_music_url,
        } => Reply::Music {
            thumb_media_id: non_empty(thumb_media_id, "thumb_media_id")?,
            title,
            description,
            music_url,
            hq_music_url,
        },
        ReplySpec::News { articles } => {
            let articles = articles
                .into_iter()
                .map(|a| Article {
                    title: a.title,
                    description: a.description,
                    pic_url: a.pic_url,
                    url: a.url,
                })
                .collect();
            Reply::news(articles).map_err(|e| e.to_string())?
        }
        ReplySpec::TransferCustomerService { kf_account } => {
            Reply::TransferCustomerService { kf_account }
        }
        ReplySpec::Upstream { .. } => {
            return Err("an upstream reply is only allowed in rules and default_reply".into())
        }
    })
}

fn non_empty(value: String, what: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err(format!("{what} must not be empty"))
    } else {
        Ok(value)
    }
}

fn fill(reply: &Reply, templated: bool, message: &Message, content: Option<&str>) -> Reply {
    if !templated {
        return reply.clone();
    }
    map_strings(reply, &mut |s: &str| {
        template::expand_with_content(s, message, content)
    })
}

/// Rebuilds a reply with every user-visible string passed through `f`.
fn map_strings(reply: &Reply, f: &mut impl FnMut(&str) -> String) -> Reply {
    let mut opt = |o: &Option<String>| o.as_deref().map(&mut *f);
    match reply {
        Reply::Text { content } => Reply::Text {
            content: f(content),
        },
        Reply::Video {
            media_id,
            title,
            description,
        } => Reply::Video {
            media_id: media_id.clone(),
            title: opt(title),
            description: opt(description),
        },
        Reply::Music {
            title,
            description,
            music_url,
            hq_music_url,
            thumb_media_id,
        } => Reply::Music {
            title: opt(title),
            description: opt(description),
            music_url: opt(music_url),
            hq_music_url: opt(hq_music_url),
            thumb_media_id: thumb_media_id.clone(),
        },
        Reply::News { articles } => Reply::News {
            articles: articles
                .iter()
                .map(|a| Article {
                    title: f(&a.title),
                    description: f(&a.description),
                    pic_url: a.pic_url.clone(),
                    url: f(&a.url),
                })
                .collect(),
        },
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests;
