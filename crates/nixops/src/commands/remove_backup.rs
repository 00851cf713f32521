//! `nixops remove-backup`: remove one backup.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// backup ID to remove
    #[arg(value_name = "BACKUP-ID")]
    pub backup_id: String,

    /// do not remove the physical backups, only remove backups from nixops state
    #[arg(long)]
    pub keep_physical: bool,
}

use super::machines::{active_machines, refuse};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

/// `none` machines have no backups, so no backup ID exists; other backends are
/// refused until they exist.
pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &[], &[]);
    let other: Vec<_> = machines.into_iter().filter(|m| m.type_ != "none").collect();
    if !other.is_empty() {
        return refuse(&other, "remove backups of", "");
    }
    Err(CliError::new(format!(
        "backup ID ‘{}’ does not exist",
        args.backup_id
    )))
}
