//! The rules offline: which rule answers a sample message and the reply
//! it renders, read back as WeChat would (`wxgate rules test`, the
//! console's rule tester).

use serde::Serialize;

use super::wechat::build_xml;
use super::{open_reply, Kind, Parties, SimReply};
use crate::config::AccountConfig;

/// How a rule set answered a sample message ([`test_rules`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// A rule matched.
    Rule,
    /// A rule (or the default reply) hands the message to an upstream.
    Upstream,
    /// A voice without transcript: `agent.voice_fallback_text` applies.
    VoiceFallback,
    /// No rule matched: the default reply applies.
    DefaultReply,
    /// No rule matched and there is no default reply: `success`.
    Nothing,
}

/// What a rule set answers to a sample message, offline: `wxgate rules
/// test` prints it, the console shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleTest {
    /// Which way the answer was chosen.
    pub verdict: Verdict,
    /// The matching rule's name (`None` for the default reply or no match).
    pub rule: Option<String>,
    /// The upstream the message goes to, for [`Verdict::Upstream`].
    pub upstream: Option<String>,
    /// The rendered reply as WeChat reads it (`None` when it is `success`
    /// or an upstream answers).
    pub reply: Option<SimReply>,
}

/// Which rule of `rules` answers `kind` sent by `parties`, and the reply
/// it renders, read back as WeChat would for `account`.
pub fn test_rules(
    account: &AccountConfig,
    rules: &crate::rules::RuleSet,
    kind: &Kind,
    parties: &Parties,
) -> Result<RuleTest, String> {
    use crate::domain::{Message, MessageKind};
    let xml = build_xml(kind, parties, 0);
    let message = Message::parse(xml.as_bytes()).map_err(|e| e.to_string())?;
    let decision = rules.evaluate(&message);
    if let Some(upstream) = &decision.upstream {
        return Ok(RuleTest {
            verdict: Verdict::Upstream,
            rule: decision.rule.clone(),
            upstream: Some(upstream.to_string()),
            reply: None,
        });
    }
    let untranscribed = rules.voice().as_text
        && matches!(message.kind, MessageKind::Voice { .. })
        && message.text().is_none();
    let verdict = match &decision.rule {
        Some(_) => Verdict::Rule,
        None if untranscribed && decision.reply == rules.voice().fallback => Verdict::VoiceFallback,
        None if decision.reply.msg_type().is_some() => Verdict::DefaultReply,
        None => Verdict::Nothing,
    };
    let reply = decision
        .reply
        .render(
            &message.from_user,
            &message.to_user,
            0,
            message.max_articles(),
        )
        .and_then(|xml| open_reply(account, 200, &xml, 0.0).ok());
    Ok(RuleTest {
        verdict,
        rule: decision.rule.clone(),
        upstream: None,
        reply,
    })
}
