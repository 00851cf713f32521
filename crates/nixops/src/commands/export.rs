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
    let state = settings.open_state_for_reading()?;
    let uuids = if args.all {
        state.uuids()?
    } else {
        vec![state.find_deployment(settings.deployment.as_deref())?]
    };
    let parts = state.export_parts(&uuids, PyStyle::Python2)?;
    // The parts straight to stdout: a large export is megabytes, not worth copying
    // into one string or through line buffering.
    let mut out = std::io::stdout().lock();
    for part in &parts {
        out.write_all(part.as_bytes())?;
    }
    out.write_all(b"\n")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
