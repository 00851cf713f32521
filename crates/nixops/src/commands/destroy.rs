//! `nixops destroy`: destroy the deployment's resources.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// destroy only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// destroy all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// securely wipe data on the machines
    #[arg(long)]
    pub wipe: bool,

    /// destroy all deployments
    #[arg(long)]
    pub all: bool,
}
