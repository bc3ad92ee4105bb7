//! `wxgate rules test`: which rule answers a sample message, offline.

use std::process::ExitCode;

use super::{KindCommand, PartyArgs};
use crate::config::AccountConfig;
use crate::domain::{Message, MessageKind};
use crate::platform::simulate as sim;
use crate::rules::RuleSet;

/// Shows which rule answers a sample message, and the rendered reply.
pub(super) fn run(
    account: &AccountConfig,
    rules: &RuleSet,
    parties: &PartyArgs,
    kind: &KindCommand,
) -> ExitCode {
    let xml = sim::build_xml(&kind.to_kind(), &super::simulate::parties(parties), 0);
    let message = match Message::parse(xml.as_bytes()) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let decision = rules.evaluate(&message);
    if let Some(upstream) = &decision.upstream {
        let rule = decision.rule.as_deref().unwrap_or("default_reply");
        println!("matched: {rule}");
        println!("reply: handed to upstream \"{upstream}\" (its answer is the reply)");
        return ExitCode::SUCCESS;
    }
    let untranscribed = rules.voice().as_text
        && matches!(message.kind, MessageKind::Voice { .. })
        && message.text().is_none();
    match &decision.rule {
        Some(rule) => println!("matched rule: {rule}"),
        None if untranscribed && decision.reply == rules.voice().fallback => println!(
            "no rule matched a voice without transcript: the voice fallback applies (agent.voice_fallback_text)"
        ),
        None if decision.reply.msg_type().is_some() => {
            println!("no rule matched: the default reply applies")
        }
        None => println!("no rule matched: answered with `success` (nothing is shown)"),
    }
    match decision.reply.render(
        &message.from_user,
        &message.to_user,
        0,
        message.max_articles(),
    ) {
        Some(xml) => {
            let reply = sim::open_reply(account, 200, &xml, 0.0);
            if let Ok(reply) = reply {
                print!(
                    "{}",
                    sim::describe(&reply)
                        .lines()
                        .skip(1)
                        .collect::<Vec<_>>()
                        .join("\n")
                );
                println!();
            }
        }
        None => println!("reply: success"),
    }
    ExitCode::SUCCESS
}
