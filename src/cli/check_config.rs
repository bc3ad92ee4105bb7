//! `wxgate check-config`: the file is valid; what it configures.

use std::process::ExitCode;

use crate::Config;

/// Prints the listen address and each account; the config is already valid.
pub(super) fn run(config: &Config) -> ExitCode {
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
    ExitCode::SUCCESS
}
