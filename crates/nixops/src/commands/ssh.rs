//! `nixops ssh`: an SSH session or command on one machine.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// SSH flags and/or command
    #[arg(
        value_name = "SSH_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}
