//! `nixops show-option`: the value of one option of one machine.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// option name
    #[arg(value_name = "OPTION")]
    pub option: String,

    /// print the option value in XML format
    #[arg(long, conflicts_with = "json")]
    pub xml: bool,

    /// print the option value in JSON format
    #[arg(long)]
    pub json: bool,

    /// include the physical specification in the evaluation
    #[arg(long)]
    pub include_physical: bool,
}

use std::process::ExitCode;

use nixops_core::eval::{MachineName, OptionFormat};

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let machine = MachineName::new(&args.machine)?;
    let format = if args.json {
        OptionFormat::Json
    } else if args.xml {
        OptionFormat::Xml
    } else {
        OptionFormat::Nix
    };
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let evaluator = settings.evaluator(&depl)?;
    let physical = if args.include_physical {
        let info = evaluator.info()?;
        Some(nixops_core::deploy::physical_nix(&depl, &info)?)
    } else {
        None
    };
    let out = evaluator.show_option(&machine, &args.option, format, physical.as_deref())?;
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
