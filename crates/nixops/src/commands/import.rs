//! `nixops import`: add deployments from `export` JSON on stdin.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// import public SSH hosts keys to .ssh/known_hosts
    #[arg(long)]
    pub include_keys: bool,
}
