//! `nixops delete-generation`: remove an earlier generation of the network.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// number of the desired configuration (see ‘nixops list-generations’)
    #[arg(value_name = "GENERATION")]
    pub generation: u32,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}

use std::process::ExitCode;

use nixops_core::generations::GenerationError;

use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    if !depl.rollback_enabled() {
        return Err(CliError::new(GenerationError::NotEnabled.to_string()));
    }
    let _lock = settings.lock(&depl, "delete-generation")?;
    settings
        .profile(&depl.uuid)
        .delete(args.generation)
        .map_err(|e| {
            let detail = match &e {
                GenerationError::NixEnv { source, .. } => source.to_string(),
                _ => String::new(),
            };
            CliError::new(e.to_string()).with_detail(detail)
        })?;
    Ok(ExitCode::SUCCESS)
}
