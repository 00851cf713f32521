//! What the commands that act on machines share: selecting the active machines,
//! rendering their log lines, a private temporary directory, summarising
//! per-machine results, and refusing what no backend here can do.

use std::process::ExitCode;

use nixops_core::backend;
use nixops_core::state::{DeploymentRecord, ResourceRecord};

use crate::error::{CliError, CliResult};
use crate::render::log::LogRenderer;
use crate::settings::Settings;

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
    let failed: Vec<(&str, &str)> = failed
        .iter()
        .map(|(m, r)| (m.as_str(), r.as_str()))
        .collect();
    Err(failures(&failed, total))
}

/// `N of M machines failed:` and one `* machine: reason` line each.
pub(crate) fn failures(failed: &[(&str, &str)], total: usize) -> CliError {
    let mut message = format!("{} of {total} machines failed:", failed.len());
    for (machine, reason) in failed {
        message.push_str(&format!("\n  * {machine}: {reason}"));
    }
    CliError::new(message)
}

/// The error of an operation no backend here supports, naming the machines: for
/// `none` machines `cannot <action> machine ‘m’: the ‘none’ backend <why>`.
/// Nothing is changed. With no machines selected there is nothing to refuse.
pub(crate) fn refuse(machines: &[ResourceRecord], action: &str, why_none: &str) -> CliResult {
    let Some(first) = machines.first() else {
        return Ok(ExitCode::SUCCESS);
    };
    let same_type: Vec<&ResourceRecord> =
        machines.iter().filter(|r| r.type_ == first.type_).collect();
    let names: Vec<String> = same_type.iter().map(|r| format!("‘{}’", r.name)).collect();
    let subject = if names.len() == 1 {
        format!("machine {}", names[0])
    } else {
        format!("machines {}", names.join(", "))
    };
    let why = if first.type_ == "none" {
        why_none.to_owned()
    } else {
        String::from("is not implemented yet")
    };
    Err(CliError::new(format!(
        "cannot {action} {subject}: the ‘{}’ backend {why}",
        first.type_
    )))
}
