//! `nixops deploy`: build the network and activate it on its machines.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// kill obsolete virtual machines
    #[arg(long, short = 'k')]
    pub kill_obsolete: bool,

    /// evaluate and print what would be built
    #[arg(long)]
    pub dry_run: bool,

    /// show what will be activated on the machines in the network
    #[arg(long)]
    pub dry_activate: bool,

    /// activate the configuration without making it the boot default
    #[arg(long)]
    pub test: bool,

    /// make the configuration the boot default without activating it
    #[arg(long)]
    pub boot: bool,

    /// use --repair when calling nix-build (slow)
    #[arg(long)]
    pub repair: bool,

    /// only call nix-instantiate and exit
    #[arg(long)]
    pub evaluate_only: bool,

    /// show the diff between the configuration and the state and exit
    #[arg(long)]
    pub plan_only: bool,

    /// build only; do not perform deployment actions
    #[arg(long)]
    pub build_only: bool,

    /// exit after creating missing machines
    #[arg(long)]
    pub create_only: bool,

    /// exit after copying closures
    #[arg(long)]
    pub copy_only: bool,

    /// recreate resources machines that have disappeared
    #[arg(long)]
    pub allow_recreate: bool,

    /// activate unchanged configurations as well
    #[arg(long)]
    pub always_activate: bool,

    /// write progress events as JSON lines to FILE (`-` for stdout)
    #[arg(long, value_name = "FILE")]
    pub events: Option<std::path::PathBuf>,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}
