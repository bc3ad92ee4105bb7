//! `wxgate rules test`: which rule answers a sample message, offline
//! ([`sim::test_rules`], which the console's tester runs too).

use std::process::ExitCode;

use super::{KindCommand, PartyArgs};
use crate::config::AccountConfig;
use crate::platform::simulate::{self as sim, Verdict};
use crate::rules::RuleSet;

/// Shows which rule answers a sample message, and the rendered reply.
pub(super) fn run(
    account: &AccountConfig,
    rules: &RuleSet,
    parties: &PartyArgs,
    kind: &KindCommand,
) -> ExitCode {
    let test = match sim::test_rules(
        account,
        rules,
        &kind.to_kind(),
        &super::simulate::parties(parties),
    ) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match test.verdict {
        Verdict::Upstream => {
            let rule = test.rule.as_deref().unwrap_or("default_reply");
            println!("matched: {rule}");
            println!(
                "reply: handed to upstream \"{}\" (its answer is the reply)",
                test.upstream.as_deref().unwrap_or_default()
            );
            return ExitCode::SUCCESS;
        }
        Verdict::Rule => println!(
            "matched rule: {}",
            test.rule.as_deref().unwrap_or_default()
        ),
        Verdict::VoiceFallback => println!(
            "no rule matched a voice without transcript: the voice fallback applies (agent.voice_fallback_text)"
        ),
        Verdict::DefaultReply => println!("no rule matched: the default reply applies"),
        Verdict::Nothing => {
            println!("no rule matched: answered with `success` (nothing is shown)")
        }
    }
    match &test.reply {
        Some(reply) => {
            print!(
                "{}",
                sim::describe(reply)
                    .lines()
                    .skip(1)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            println!();
        }
        None => println!("reply: success"),
    }
    ExitCode::SUCCESS
}
