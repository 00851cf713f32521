//! `nixops show-physical`: the generated physical network expression.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// print physical network expression for given backup id
    #[arg(long = "backup", value_name = "BACKUPID")]
    pub backup_id: Option<String>,
}

use std::process::ExitCode;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    if let Some(id) = &args.backup_id {
        // No backend here makes backups, so no machine has one.
        println!("{{}} /* No backup found for id '{id}' */");
        return Ok(ExitCode::SUCCESS);
    }
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let evaluator = settings.evaluator(&depl)?;
    let info = evaluator.info()?;
    let physical = nixops_core::deploy::physical_nix(&depl, &info)?;
    print!("{physical}");
    Ok(ExitCode::SUCCESS)
}
