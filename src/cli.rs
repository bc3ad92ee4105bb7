//! Command-line interface (clap). No I/O beyond argv.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// wxgate: a WeChat callback gateway.
#[derive(Debug, Parser)]
#[command(name = "wxgate", version, about)]
pub struct Cli {
    /// Configuration file.
    #[arg(
        long,
        short,
        global = true,
        env = "WXGATE_CONFIG",
        default_value = "config/wxgate.toml"
    )]
    pub config: PathBuf,
    /// What to do (default: serve).
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Sub-commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the callback server (the default).
    Serve {
        /// Listen on this address instead of `server.listen`.
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Validate the configuration and exit (0 when valid, 78 when not).
    CheckConfig,
}
