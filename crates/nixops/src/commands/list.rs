//! `nixops list`: a table of all deployments in the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// print the deployments as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,
}
