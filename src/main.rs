//! The wxgate binary: parse the command line and run it (see `wxgate::cli`).

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    wxgate::cli::run(wxgate::cli::Cli::parse())
}
