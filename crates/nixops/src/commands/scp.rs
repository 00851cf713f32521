//! `nixops scp`: copy files to or from a machine.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// copy a file from specified machine
    #[arg(long = "from")]
    pub scp_from: bool,

    /// copy a file to specified machine
    #[arg(long = "to")]
    pub scp_to: bool,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// source file location
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// destination file location
    #[arg(value_name = "DEST")]
    pub destination: String,
}
