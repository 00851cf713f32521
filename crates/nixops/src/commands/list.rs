//! `nixops list`: a table of all deployments in the state file.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// print the deployments as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,
}

use std::process::ExitCode;

use nixops_core::backend::is_machine_type;
use nixops_core::state::DeploymentRecord;

use crate::error::CliResult;
use crate::render::table::{Align, Table};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state_for_reading()?;
    // Names, descriptions and resource types are all the table needs: skip the
    // resource attributes, by far the largest part of a big state file.
    let mut depls = state.deployments_shallow()?;
    // NixOps sorts by (name, uuid), deployments without a name first.
    depls.sort_by(|a, b| (a.name(), &a.uuid).cmp(&(b.name(), &b.uuid)));
    if args.json {
        let rows: Vec<_> = depls
            .iter()
            .map(|d| {
                serde_json::json!({
                    "uuid": d.uuid,
                    "name": d.name(),
                    "description": d.description(),
                    "machines": machine_count(d),
                    "types": machine_types(d),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        ("UUID", Align::Left),
        ("Name", Align::Left),
        ("Description", Align::Left),
        ("# Machines", Align::Right),
        ("Type", Align::Center),
    ]);
    for d in &depls {
        table.push(vec![
            d.uuid.clone(),
            d.name().unwrap_or("(none)").to_owned(),
            d.description().to_owned(),
            machine_count(d).to_string(),
            machine_types(d).join(", "),
        ]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}

fn machine_count(d: &DeploymentRecord) -> usize {
    d.resources
        .iter()
        .filter(|r| is_machine_type(&r.type_))
        .count()
}

fn machine_types(d: &DeploymentRecord) -> Vec<&str> {
    let mut types: Vec<&str> = d
        .resources
        .iter()
        .filter(|r| is_machine_type(&r.type_))
        .map(|r| r.type_.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    types
}
