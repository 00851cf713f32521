//! `nixops import`: add deployments from `export` JSON on stdin.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// import public SSH hosts keys to .ssh/known_hosts
    #[arg(long)]
    pub include_keys: bool,
}

use std::io::Read;
use std::process::ExitCode;

use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| {
        CliError::new(format!(
            "cannot read the deployments to import from stdin: {e}"
        ))
    })?;
    if args.include_keys {
        return Err(CliError::new(
            "‘--include-keys’ is not implemented yet: no backend here records public host keys",
        ));
    }
    let state = settings.open_state()?;
    for uuid in state.import(&input)? {
        eprintln!("added deployment ‘{uuid}’");
    }
    Ok(ExitCode::SUCCESS)
}
