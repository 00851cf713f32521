//! `nixops clean-backups`: remove old backups.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// number of backups to keep around
    #[arg(long, value_name = "KEEP")]
    pub keep: Option<u32>,

    /// keep backups newer than N days
    #[arg(long, value_name = "N")]
    pub keep_days: Option<u32>,

    /// do not remove the physical backups, only remove backups from nixops state
    #[arg(long)]
    pub keep_physical: bool,
}
