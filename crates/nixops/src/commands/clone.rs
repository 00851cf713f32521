//! `nixops clone`: a new deployment with the attributes of an existing one.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// symbolic name of the cloned deployment
    #[arg(long, short = 'n', value_name = "NAME")]
    pub name: Option<String>,
}
