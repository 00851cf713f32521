//! `nixops set-args`: persistently set the arguments of the network files.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// pass a Nix expression value
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub args: Vec<String>,

    /// pass a string value
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub argstrs: Vec<String>,

    /// unset previously set argument
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append)]
    pub unset: Vec<String>,
}
