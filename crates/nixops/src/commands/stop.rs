//! `nixops stop`: stop the machines of the network.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// stop only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// stop all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,
}

use std::process::ExitCode;

use nixops_core::state::ResourceRecord;

use super::send_keys::active_machines;
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &args.include, &args.exclude);
    refuse(&machines, "stop", "cannot stop machines")
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
