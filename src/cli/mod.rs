//! The command line: one file per subcommand, each returning the process
//! exit code. The binary only parses argv and calls [`run`].

mod args;
mod check_config;
mod crypto;
mod init;
mod nginx_config;
mod rules_test;
mod serve;
mod simulate;
mod token;

use std::process::ExitCode;

pub use args::{
    Cli, Command, CryptoCommand, InitArgs, InitKind, KindCommand, ModeArg, PartyArgs, RulesCommand,
    SimulateArgs,
};

use crate::Config;

/// Exit code for an invalid configuration (sysexits EX_CONFIG); systemd's
/// `RestartPreventExitStatus=78` stops a restart loop on it.
pub const EXIT_CONFIG: u8 = 78;

/// Runs the command line: loads the config, then the subcommand. Returns
/// the process exit code: 0, 1 (failure), 2 (usage), 78 (configuration).
pub fn run(cli: Cli) -> ExitCode {
    // `init` writes a config rather than reading one.
    if let Some(Command::Init(args)) = cli.command {
        return init::run(args);
    }
    let config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let command = cli.command.unwrap_or(Command::Serve { listen: None });
    if let Command::CheckConfig { against } = &command {
        return check_config::run(&config, against.as_deref());
    }
    if let Command::Serve { listen } = command {
        return serve::run(config, listen);
    }
    if let Command::NginxConfig { proxy_snippet } = &command {
        return nginx_config::run(&config, proxy_snippet);
    }
    let account = match config.find_account(cli.account.as_deref()) {
        Ok(a) => &a.account,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let rules = &config
        .find_account(cli.account.as_deref())
        .map(|a| a.rules.clone());
    match command {
        Command::Init(_)
        | Command::CheckConfig { .. }
        | Command::Serve { .. }
        | Command::NginxConfig { .. } => ExitCode::SUCCESS,
        Command::Simulate(args) => simulate::run(account, args),
        Command::VerifyUrl { url } => simulate::verify_url(account, &url),
        Command::Rules {
            command: RulesCommand::Test { parties, kind },
        } => match rules {
            Ok(rules) => rules_test::run(account, rules, &parties, &kind),
            Err(_) => ExitCode::from(EXIT_CONFIG),
        },
        Command::Crypto { command } => crypto::run(account, command),
        Command::Token => token::run(&config, cli.account.as_deref()),
    }
}

/// Runs a future to completion on a current-thread runtime.
pub(crate) fn block_on<F: std::future::Future<Output = ExitCode>>(future: F) -> ExitCode {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt.block_on(future),
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}
