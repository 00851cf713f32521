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
