//! `nixops show-arguments`: the function arguments of the network files.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

use std::process::ExitCode;

use crate::error::{CliError, CliResult};
use crate::render::table::{Align, Table};
use crate::settings::Settings;

pub fn run(_args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let evaluator = settings.evaluator(&depl)?;
    let arguments = evaluator.arguments().map_err(|e| {
        let cli = CliError::new("Could not determine arguments to NixOps deployment.");
        match e.nix_message() {
            Some(m) => cli.with_detail(m.to_owned()),
            None => cli,
        }
    })?;
    let mut table = Table::new(&[("Name", Align::Left), ("Location", Align::Left)]);
    for (name, mut files) in arguments {
        files.sort();
        table.push(vec![name, files.join("\n")]);
    }
    print!("{}", table.render());
    Ok(ExitCode::SUCCESS)
}
