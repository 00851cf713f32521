//! `nixops modify`: change a deployment's network files, search path or name.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// new symbolic name of deployment
    #[arg(long, short = 'n', value_name = "NAME")]
    pub name: Option<String>,

    /// Nix expression(s) defining the network
    #[arg(value_name = "NIX-FILE")]
    pub nix_exprs: Vec<String>,

    /// name of template to be used
    #[arg(long = "template", short = 't', value_name = "TEMPLATE", action = clap::ArgAction::Append)]
    pub templates: Vec<String>,
}
