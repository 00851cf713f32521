//! `nixops delete`: remove a deployment from the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// force deletion even if resources still exist
    #[arg(long)]
    pub force: bool,

    /// delete all deployments
    #[arg(long)]
    pub all: bool,
}

use std::process::ExitCode;

use nixops_core::generations::{self, Profile};

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depls = settings.select_many(&state, args.all)?;
    for depl in &depls {
        let _lock = settings.lock(depl, "delete")?;
        state.delete_deployment(&depl.uuid, args.force)?;
        let profile = Profile::new(
            std::path::Path::new(generations::PROFILES_DIR),
            &generations::user_name(),
            &depl.uuid,
        );
        profile.remove_all().map_err(|e| {
            crate::error::CliError::new(format!(
                "cannot remove profile ‘{}’: {e}",
                profile.path().display()
            ))
        })?;
    }
    Ok(ExitCode::SUCCESS)
}
