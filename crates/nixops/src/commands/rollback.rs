//! `nixops rollback`: deploy an earlier generation of the network.

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

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let opts = super::deploy::base_options(&args.opts);
    super::deploy::run_pipeline(settings, "rollback", None, |d| {
        d.rollback(args.generation, &opts)
    })
}
