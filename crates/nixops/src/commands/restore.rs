//! `nixops restore`: restore machines from a backup.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// use specified backup in stead of latest
    #[arg(long, value_name = "BACKUP_ID")]
    pub backup_id: Option<String>,

    /// perform backup actions on the specified machines only
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// do not perform backup actions on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// only restore the specified devices
    #[arg(long, num_args = 1.., value_name = "DEVICE-NAME")]
    pub devices: Vec<String>,
}

use super::machines::{active_machines, refuse};
use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &args.include, &args.exclude);
    refuse(&machines, "restore", "cannot restore machines from backups")
}
