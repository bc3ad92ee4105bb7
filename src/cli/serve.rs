//! `wxgate serve` (the default): run the server until stopped.

use std::process::ExitCode;
use std::sync::Arc;

use super::EXIT_CONFIG;
use crate::{telemetry, Application, Config};

/// Runs the server until SIGINT or SIGTERM.
pub(super) fn run(config: Config, listen: Option<std::net::SocketAddr>) -> ExitCode {
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
        let accounts = config.accounts.len();
        let mode = config.primary().account.mode;
        let rules = config.primary().rules.len();
        let overrides = crate::app::Overrides {
            listen,
            ..Default::default()
        };
        let app = match Application::build_with(config, overrides).await {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(error = %e, "cannot start");
                eprintln!("error: {e}");
                return if e.is_config() {
                    ExitCode::from(EXIT_CONFIG)
                } else {
                    ExitCode::FAILURE
                };
            }
        };
        if let Some(reloader) = app.reloader() {
            tokio::spawn(crate::reload::on_sighup(Arc::clone(&reloader)));
        }
        tracing::info!(addr = %app.local_addr(), mode = mode.as_str(), rules, accounts, "wxgate listening");
        if let Some(addr) = app.operator_addr() {
            tracing::info!(%addr, "operator routes listening (readyz, metrics, admin, internal)");
        }
        match app.run_until_stopped(crate::app::shutdown::signal()).await {
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
