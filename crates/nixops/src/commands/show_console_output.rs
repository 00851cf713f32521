//! `nixops show-console-output`: a machine's console output.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}
