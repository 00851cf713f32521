//! `nixops delete`: remove a deployment from the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// force deletion even if resources still exist
    #[arg(long)]
    pub force: bool,

    /// delete all deployments
    #[arg(long)]
    pub all: bool,
}
