//! `wxgate token`: the account's access token.

use std::process::ExitCode;

use super::{block_on, EXIT_CONFIG};
use crate::{telemetry, Config};

/// `wxgate token`: the token alone on stdout (for scripts), its expiry on stderr.
pub(super) fn run(config: &Config, account: Option<&str>) -> ExitCode {
    telemetry::init(&config.log);
    block_on(async {
        match crate::app::fetch_access_token(config, account).await {
            Ok(token) => {
                println!("{}", token.access_token.expose());
                eprintln!("expires at {} (unix)", token.expires_at);
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                if e.is_config() {
                    ExitCode::from(EXIT_CONFIG)
                } else {
                    ExitCode::FAILURE
                }
            }
        }
    })
}
