//! `nixops delete-generation`: remove an earlier generation of the network.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// number of the desired configuration (see ‘nixops list-generations’)
    #[arg(value_name = "GENERATION")]
    pub generation: u32,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}
