//! `nixops rename`: rename a machine in the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// current identifier of the machine
    #[arg(value_name = "FROM")]
    pub current_name: String,

    /// new identifier of the machine
    #[arg(value_name = "TO")]
    pub new_name: String,
}
