//! `nixops show-option`: the value of one option of one machine.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// option name
    #[arg(value_name = "OPTION")]
    pub option: String,

    /// print the option value in XML format
    #[arg(long, conflicts_with = "json")]
    pub xml: bool,

    /// print the option value in JSON format
    #[arg(long)]
    pub json: bool,

    /// include the physical specification in the evaluation
    #[arg(long)]
    pub include_physical: bool,
}
