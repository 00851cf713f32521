//! `nixops backup`: snapshot the machines' persistent disks.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// perform backup actions on the specified machines only
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// do not perform backup actions on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// freeze filesystems for non-root filesystems that support this (e.g. xfs)
    #[arg(long = "freeze")]
    pub freeze_fs: bool,

    /// start new backup even if previous is still running
    #[arg(long)]
    pub force: bool,

    /// only backup the specified devices
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
    refuse(&machines, "back up", "cannot back up machines")
}
