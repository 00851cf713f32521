//! `nixops info`: the deployment's header and a table of its machines.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// show all deployments
    #[arg(long)]
    pub all: bool,

    /// do not pretty-print the output
    #[arg(long)]
    pub plain: bool,

    /// do not evaluate the deployment specification
    #[arg(long)]
    pub no_eval: bool,

    /// print the information as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,
}
