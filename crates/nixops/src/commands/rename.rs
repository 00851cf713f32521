//! `nixops rename`: rename a machine in the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// current identifier of the machine
    #[arg(value_name = "FROM")]
    pub current_name: String,

    /// new identifier of the machine
    #[arg(value_name = "TO")]
    pub new_name: String,
}

use std::process::ExitCode;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let _lock = settings.lock(&depl, "rename")?;
    // Checked and done in one transaction; the message only for a rename that
    // happened, so that an error stays a single line.
    state.rename_resource(&depl.uuid, &args.current_name, &args.new_name)?;
    eprintln!(
        "renamed resource ‘{}’ to ‘{}’",
        args.current_name, args.new_name
    );
    Ok(ExitCode::SUCCESS)
}
