//! `nixops check`: probe every machine and report what is wrong.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// check all deployments
    #[arg(long)]
    pub all: bool,

    /// check only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// check all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// print the results as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,
}
