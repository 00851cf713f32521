//! `nixops list-generations`: the network's rollback generations.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

use std::process::ExitCode;

use nixops_core::generations::GenerationError;

use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(_args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    if !depl.rollback_enabled() {
        return Err(CliError::new(GenerationError::NotEnabled.to_string()));
    }
    let code = settings
        .profile(&depl.uuid)
        .list_cmd()
        .run_interactive()
        .map_err(|e| CliError::new(format!("nix-env --list-generations failed: {e}")))?;
    if code != 0 {
        return Err(CliError::new("nix-env --list-generations failed"));
    }
    Ok(ExitCode::SUCCESS)
}
