//! `nixops backup-status`: the status of backups.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// use specified backup in stead of latest
    #[arg(value_name = "BACKUPID")]
    pub backup_id: Option<String>,

    /// perform backup actions on the specified machines only
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// do not perform backup actions on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// wait until backup is finished
    #[arg(long)]
    pub wait: bool,

    /// show status of latest backup only
    #[arg(long)]
    pub latest: bool,
}

use std::process::ExitCode;

use super::machines::{active_machines, refuse};
use crate::error::{CliError, CliResult};
use crate::render::table::{Align, Table};
use crate::settings::Settings;

/// No backend here keeps backups: `none` machines have none, and the others are
/// refused until their backend exists.
pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &args.include, &args.exclude);
    let other: Vec<_> = machines.into_iter().filter(|m| m.type_ != "none").collect();
    if !other.is_empty() {
        return refuse(&other, "list the backups of", "");
    }
    if let Some(id) = &args.backup_id {
        return Err(CliError::new(format!("backup ID ‘{id}’ does not exist")));
    }
    if args.latest {
        return Err(CliError::new("no backups found"));
    }
    let table = Table::new(&[
        ("Backup ID", Align::Center),
        ("Status", Align::Center),
        ("Info", Align::Center),
    ]);
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
