//! The `nixops` command line: parse, resolve settings once, run one subcommand,
//! print its error once.

// The binary is where printing and exit codes belong.
#![allow(clippy::print_stderr, clippy::print_stdout, clippy::exit)]

mod cli;
mod commands;
mod error;
mod render;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::error::{CliError, CliResult};

/// The version `nixops --version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", err.message);
            if let Some(hint) = &err.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(err.code)
        }
    }
}

fn run(command: Command) -> CliResult {
    let _common = command.common();
    Err(CliError::not_implemented(command.name()))
}
