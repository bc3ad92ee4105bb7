//! `wxgate check-config`: the file is valid; what it configures; with
//! `--against`, whether a reload could apply it over the file in force.

use std::path::Path;
use std::process::ExitCode;

use super::EXIT_CONFIG;
use crate::reload::{check_replacement, describe, load_with_text};
use crate::Config;

/// Prints the listen address and each account; the config is already
/// valid. With `against` (the configuration in force), refuses (78) what a
/// reload would refuse and prints the rules diff per account.
pub(super) fn run(config: &Config, against: Option<&Path>) -> ExitCode {
    println!(
        "{}: OK, listen {}",
        config.source.display(),
        config.server.listen
    );
    for a in &config.accounts {
        println!(
            "  account {} ({}, mode {}, {} rule(s)) at {}",
            a.name,
            a.account.kind.as_str(),
            a.account.mode.as_str(),
            a.rules.len(),
            a.path
        );
    }
    let Some(against) = against else {
        return ExitCode::SUCCESS;
    };
    let running = match load_with_text(against) {
        Ok((_, running)) => running,
        Err(e) => {
            eprintln!("error: the configuration in force is not valid\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let text = match std::fs::read_to_string(&config.source) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {}: {e}", config.source.display());
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match check_replacement(&running, config, &text) {
        Ok(diff) => {
            println!("  reload over {}: {}", against.display(), describe(&diff));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_CONFIG)
        }
    }
}
