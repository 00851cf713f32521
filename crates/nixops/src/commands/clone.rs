//! `nixops clone`: a new deployment with the attributes of an existing one.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// symbolic name of the cloned deployment
    #[arg(long, short = 'n', value_name = "NAME")]
    pub name: Option<String>,
}

use std::process::ExitCode;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let uuid = state.clone_deployment(&depl.uuid, args.name.as_deref())?;
    eprintln!("created deployment ‘{uuid}’");
    println!("{uuid}");
    Ok(ExitCode::SUCCESS)
}
