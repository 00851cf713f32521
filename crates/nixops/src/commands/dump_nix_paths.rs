//! `nixops dump-nix-paths`: the Nix store paths a deployment refers to.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// dump Nix paths for all deployments
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}
