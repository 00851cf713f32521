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
