//! `nixops send-keys`: upload `deployment.keys` to the machines.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// send keys to only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// send keys to all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,
}

use std::path::Path;
use std::process::ExitCode;

use nixops_core::backend;
use nixops_core::deploy::{session_for, SshSettings};
use nixops_core::events::{Event, Phase, Reporter, Status};
use nixops_core::keys::{self, MissingOwner};
use nixops_core::parallel;
use nixops_core::state::{DeploymentRecord, ResourceRecord};

use crate::error::{CliError, CliResult};
use crate::render::log::LogRenderer;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &args.include, &args.exclude);
    let renderer = renderer(&depl, settings);
    let tmp = temp_dir()?;
    let ssh = SshSettings::default();
    // A machine in its rescue system gets no keys (as in NixOps).
    let machines: Vec<ResourceRecord> = machines
        .into_iter()
        .filter(|r| r.state() != nixops_core::state::ResourceState::Rescue)
        .collect();
    let results = parallel::for_each(machines, |record| {
        let result = send_to(&record, &ssh, tmp.path(), &renderer);
        if let Err(reason) = &result {
            renderer.report(
                Event::new(Some(&record.name), Phase::Keys, Status::Failed).error(reason.clone()),
            );
        }
        (record.name, result)
    });
    summarise(results)
}

/// Upload the keys recorded for one machine.
fn send_to(
    record: &ResourceRecord,
    ssh: &SshSettings,
    tmp: &Path,
    reporter: &dyn Reporter,
) -> Result<(), String> {
    let keys = keys::recorded(record).map_err(|e| describe(&e))?;
    let session = session_for(record, ssh, tmp).map_err(|e| describe(&e))?;
    let mut on_key = |attr: &str, key: &nixops_core::eval::KeySpec| {
        reporter.report(
            Event::new(Some(&record.name), Phase::Keys, Status::Log)
                .message(nixops_core::reboot::upload_message(attr, key)),
        );
    };
    keys::send_keys(&session, &keys, &keys, MissingOwner::Fail, &mut on_key)
        .map_err(|e| describe(&e))
}

/// The deployment's machines that are not obsolete, selected by `--include` and
/// `--exclude`, in name order.
pub(crate) fn active_machines(
    depl: &DeploymentRecord,
    include: &[String],
    exclude: &[String],
) -> Vec<ResourceRecord> {
    let mut machines: Vec<ResourceRecord> = depl
        .resources
        .iter()
        .filter(|r| backend::is_machine_type(&r.type_) && !r.obsolete())
        .filter(|r| nixops_core::destroy::selects(include, exclude, &r.name))
        .cloned()
        .collect();
    machines.sort_by(|a, b| a.name.cmp(&b.name));
    machines
}

/// The `machine> line` renderer for the deployment's machines.
pub(crate) fn renderer(depl: &DeploymentRecord, settings: &Settings) -> LogRenderer {
    let mut names: Vec<(i64, String)> = depl
        .resources
        .iter()
        .map(|r| (r.index().unwrap_or(i64::MAX), r.name.clone()))
        .collect();
    names.sort();
    let names: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    LogRenderer::new(&names, settings.debug)
}

/// A private directory for provisioned SSH keys and the like.
pub(crate) fn temp_dir() -> Result<tempfile::TempDir, CliError> {
    tempfile::Builder::new()
        .prefix("nixops-")
        .tempdir()
        .map_err(|e| CliError::new(format!("cannot create a temporary directory: {e}")))
}

/// An error and its causes on one line.
pub(crate) fn describe(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

/// Success if every machine succeeded, else one error listing the failures.
pub(crate) fn summarise(results: Vec<(String, Result<(), String>)>) -> CliResult {
    let total = results.len();
    let failed: Vec<(String, String)> = results
        .into_iter()
        .filter_map(|(m, r)| r.err().map(|e| (m, e)))
        .collect();
    if failed.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let mut message = format!("{} of {total} machines failed:", failed.len());
    for (machine, reason) in failed {
        message.push_str(&format!("\n  * {machine}: {reason}"));
    }
    Err(CliError::new(message))
}
