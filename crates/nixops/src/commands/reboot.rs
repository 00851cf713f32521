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

    /// give up waiting for a machine after SECONDS (default: 300)
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
}

use std::process::ExitCode;
use std::time::Duration;

use nixops_core::deploy::{session_for, SharedState, SshSettings};
use nixops_core::events::{Event, Phase, Reporter, Status};
use nixops_core::keys;
use nixops_core::parallel;
use nixops_core::reboot::{Expected, Rebooter, DEFAULT_TIMEOUT};
use nixops_core::state::ResourceRecord;

use super::machines::{active_machines, describe, renderer, summarise, temp_dir};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &args.include, &args.exclude);
    if args.hard {
        if let Some(r) = machines.iter().find(|r| r.type_ == "none") {
            return Err(CliError::new(format!(
                "cannot hard-reset machine ‘{}’: the ‘none’ backend has no power switch",
                r.name
            ))
            .with_hint("a plain ‘nixops reboot’ reboots it over SSH"));
        }
    }
    let renderer = renderer(&depl, settings);
    if args.rescue {
        for r in &machines {
            renderer.report(
                Event::new(Some(&r.name), Phase::Reboot, Status::Warning).message(format!(
                    "machine ‘{}’ doesn't have a rescue system.",
                    r.name
                )),
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    let tmp = temp_dir()?;
    let ssh = SshSettings::default();
    let shared = SharedState::new(state, depl.uuid.clone());
    let rebooter = Rebooter {
        state: &shared,
        ssh: &ssh,
        identity_dir: tmp.path(),
        reporter: &renderer,
        timeout: args.timeout.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
    };
    let results = parallel::for_each(machines, |record| {
        let result = reboot_one(&rebooter, &record, !args.no_wait);
        if let Err(reason) = &result {
            renderer.report(
                Event::new(Some(&record.name), Phase::Reboot, Status::Failed).error(reason.clone()),
            );
        }
        (record.name, result)
    });
    summarise(results)
}

fn reboot_one(rebooter: &Rebooter<'_>, record: &ResourceRecord, wait: bool) -> Result<(), String> {
    let keys = keys::recorded(record).map_err(|e| describe(&e))?;
    let session =
        session_for(record, rebooter.ssh, rebooter.identity_dir).map_err(|e| describe(&e))?;
    if !wait {
        return rebooter
            .request(&session, record)
            .map(|_| ())
            .map_err(|e| describe(&e));
    }
    let expected = Expected {
        toplevel: record.toplevel(),
        keys: &keys,
    };
    rebooter
        .reboot_sync(&session, record, &expected)
        .map_err(|e| describe(&e))
}
