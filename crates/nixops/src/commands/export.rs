//! `nixops export`: the state of deployments as JSON.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// export all deployments
    #[arg(long)]
    pub all: bool,
}
