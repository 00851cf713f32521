//! `nixops create`: a new deployment from network files.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// symbolic name of the deployment (obsolete, use -d instead)
    #[arg(long, short = 'n', value_name = "NAME", hide = true)]
    pub name: Option<String>,

    /// Nix expression(s) defining the network
    #[arg(value_name = "NIX-FILE")]
    pub nix_exprs: Vec<String>,

    /// name of template to be used
    #[arg(long = "template", short = 't', value_name = "TEMPLATE", action = clap::ArgAction::Append)]
    pub templates: Vec<String>,
}
