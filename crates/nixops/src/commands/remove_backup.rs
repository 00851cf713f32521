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
