//! `nixops start`: start the machines of the network.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// start only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// start all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,
}
