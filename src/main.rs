//! The wxgate binary: parse the command line, load the config, run.

use std::process::ExitCode;

use clap::Parser;
use wxgate::cli::{Cli, Command};
use wxgate::{telemetry, Application, Config};

/// Exit code for an invalid configuration (sysexits EX_CONFIG); systemd's
/// `RestartPreventExitStatus=78` stops a restart loop on it.
const EXIT_CONFIG: u8 = 78;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut config = match Config::load(&cli.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: invalid configuration\n{e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    match cli.command.unwrap_or(Command::Serve { listen: None }) {
        Command::CheckConfig => {
            println!(
                "{}: OK (mode {}, {} rule(s), listen {}{})",
                config.source.display(),
                config.account.mode.as_str(),
                config.rules.len(),
                config.server.listen,
                config.server.path
            );
            ExitCode::SUCCESS
        }
        Command::Serve { listen } => {
            if let Some(addr) = listen {
                config.server.listen = addr;
            }
            serve(config)
        }
    }
}

fn serve(config: Config) -> ExitCode {
    telemetry::init(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let mode = config.account.mode;
        let rules = config.rules.len();
        let app = match Application::build(config).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        };
        tracing::info!(addr = %app.local_addr(), mode = mode.as_str(), rules, "wxgate listening");
        match app.run_until_stopped(wxgate::shutdown::signal()).await {
            Ok(()) => {
                tracing::info!("stopped");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "server failed");
                ExitCode::FAILURE
            }
        }
    })
}
