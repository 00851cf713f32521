//! `nixops set-args`: persistently set the arguments of the network files.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// pass a Nix expression value
    #[arg(long = "arg", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub args: Vec<String>,

    /// pass a string value
    #[arg(long = "argstr", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub argstrs: Vec<String>,

    /// unset previously set argument
    #[arg(long, value_name = "NAME", action = clap::ArgAction::Append)]
    pub unset: Vec<String>,
}

use std::process::ExitCode;

use nixops_core::state::SetArgs;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let pairs = |v: &[String]| -> Vec<(String, String)> {
        v.chunks(2)
            .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
            .collect()
    };
    let changes = SetArgs {
        arg: pairs(&args.args),
        argstr: pairs(&args.argstrs),
        unset: args.unset.clone(),
    };
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let _lock = settings.lock(&depl, "set-args")?;
    state.set_args(&depl.uuid, &changes)?;
    Ok(ExitCode::SUCCESS)
}
