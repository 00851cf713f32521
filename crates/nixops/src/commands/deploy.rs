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

use std::process::ExitCode;

use nixops_core::deploy::{DeployError, DeployOptions, Deployer, SharedState, SshSettings};

use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    if args.evaluate_only {
        return Err(CliError::new(
            "--evaluate-only was removed as it's the same as --dry-run",
        ));
    }
    let mut opts = base_options(&args.opts);
    opts.kill_obsolete = args.kill_obsolete;
    opts.dry_run = args.dry_run;
    opts.build_only = args.build_only;
    opts.create_only = args.create_only;
    opts.plan_only = args.plan_only;
    opts.copy_only = args.copy_only;
    opts.dry_activate = args.dry_activate;
    opts.test = args.test;
    opts.boot = args.boot;
    opts.repair = args.repair;
    opts.always_activate = args.always_activate;
    run_pipeline(settings, "deploy", args.events.as_deref(), |d| {
        d.deploy(&opts)
    })
}

/// The options `deploy`, `rollback` and friends share.
pub fn base_options(o: &crate::cli::DeploymentOptions) -> DeployOptions {
    DeployOptions {
        include: o.include.clone(),
        exclude: o.exclude.clone(),
        check: o.check,
        allow_reboot: o.allow_reboot,
        force_reboot: o.force_reboot,
        no_sync: o.no_sync,
        max_concurrent_copy: o.max_concurrent_copy,
        max_concurrent_activate: o.max_concurrent_activate,
        ..DeployOptions::default()
    }
}

/// Open the selected deployment under its lock, render events, run `pipeline`,
/// and turn its summary into an exit status.
pub fn run_pipeline(
    settings: &Settings,
    command: &str,
    events: Option<&std::path::Path>,
    pipeline: impl FnOnce(&Deployer<'_>) -> Result<nixops_core::deploy::DeploySummary, DeployError>,
) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let _lock = settings.lock(&depl, command)?;
    let evaluator = settings.evaluator(&depl)?;
    let mut renderer = super::machines::renderer(&depl, settings);
    // The live view redraws lines on the terminal; JSON events on the same
    // terminal (`--events -`) would be drawn over.
    if events != Some(std::path::Path::new("-")) {
        renderer = renderer.with_live_view();
    }
    if let Some(path) = events {
        renderer = renderer.with_json(crate::render::log::open_events(path)?);
    }
    let shared = SharedState::new(state, depl.uuid.clone());
    let deployer = Deployer {
        state: &shared,
        evaluator: &evaluator,
        ssh: SshSettings::default(),
        reporter: &renderer,
        profile: settings.profile(&depl.uuid),
    };
    let summary = pipeline(&deployer).map_err(deploy_error)?;
    let failed = summary.failed();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    Err(super::machines::failures(&failed, summary.machines.len()))
}

pub fn deploy_error(err: DeployError) -> CliError {
    match err {
        DeployError::Eval(e) => e.into(),
        other => CliError::new(other.to_string()),
    }
}
