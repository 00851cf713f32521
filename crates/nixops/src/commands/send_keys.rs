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

use nixops_core::deploy::{session_for, SshSettings};
use nixops_core::events::{Event, Phase, Reporter, Status};
use nixops_core::keys::{self, MissingOwner};
use nixops_core::parallel;
use nixops_core::state::ResourceRecord;

use super::machines::{active_machines, describe, renderer, summarise, temp_dir};
use crate::error::CliResult;
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
