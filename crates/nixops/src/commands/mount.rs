//! `nixops mount`: mount a machine's directory with sshfs.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine, optionally followed by a path
    #[arg(value_name = "MACHINE[:PATH]")]
    pub machine: String,

    /// local path
    #[arg(value_name = "PATH")]
    pub destination: String,

    /// mount options passed to sshfs
    #[arg(long = "sshfs-option", short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub sshfs_options: Vec<String>,
}
