//! `nixops show-console-output`: a machine's console output.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}

use super::machines::refuse;
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

/// NixOps prints `(not available for this machine type)` and succeeds for
/// machines without a console; an error says the same more clearly to scripts.
pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machine = depl
        .resources
        .iter()
        .find(|r| r.name == args.machine && nixops_core::backend::is_machine_type(&r.type_))
        .ok_or_else(|| CliError::new(format!("unknown machine ‘{}’", args.machine)))?;
    refuse(
        std::slice::from_ref(machine),
        "show the console output of",
        "has no console access (not available for this machine type)",
    )
}
