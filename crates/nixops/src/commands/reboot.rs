//! `nixops reboot`: reboot the machines and wait until they are back.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// reboot only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// reboot all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// do not wait until the machines are up again
    #[arg(long)]
    pub no_wait: bool,

    /// reboot machines into the rescue system (if available)
    #[arg(long)]
    pub rescue: bool,

    /// send a hard reset (power switch) to the machines (if available)
    #[arg(long)]
    pub hard: bool,
}
