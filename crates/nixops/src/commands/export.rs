//! `nixops export`: the state of deployments as JSON.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// export all deployments
    #[arg(long)]
    pub all: bool,
}

use std::io::Write;
use std::process::ExitCode;

use nixops_core::state::PyStyle;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let mut state = settings.open_state_for_reading()?;
    // The process ends after printing: its buffers are left to the exit.
    state.leave_memory_to_exit();
    let uuids = if args.all {
        state.uuids()?
    } else {
        vec![state.find_deployment(settings.deployment.as_deref())?]
    };
    // Pieces straight to stdout as they are made: a large export is megabytes.
    let mut out = std::io::stdout().lock();
    let mut failed = None;
    state.export_with(&uuids, PyStyle::Python2, |piece| {
        if failed.is_none() {
            failed = out.write_all(piece).err();
        }
    })?;
    if let Some(err) = failed {
        return Err(err.into());
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
