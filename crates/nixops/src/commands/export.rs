//! `nixops export`: the state of deployments as JSON.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// export all deployments
    #[arg(long)]
    pub all: bool,
}

use std::process::ExitCode;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let uuids = if args.all {
        state.uuids()?
    } else {
        vec![state.find_deployment(settings.deployment.as_deref())?]
    };
    println!("{}", state.export(&uuids)?);
    Ok(ExitCode::SUCCESS)
}
