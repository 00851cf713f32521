//! `nixops ssh-for-each`: run a command on every machine.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// additional arguments to SSH
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// run in parallel
    #[arg(long, short = 'p')]
    pub parallel: bool,

    /// run command only on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// run command on all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// run ssh-for-each for all deployments
    #[arg(long)]
    pub all: bool,
}
