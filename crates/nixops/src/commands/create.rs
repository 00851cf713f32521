//! `nixops create`: a new deployment from network files.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// symbolic name of the deployment (obsolete, use -d instead)
    #[arg(long, short = 'n', value_name = "NAME", hide = true)]
    pub name: Option<String>,

    /// Nix expression(s) defining the network
    #[arg(value_name = "NIX-FILE")]
    pub nix_exprs: Vec<String>,

    /// name of template to be used
    #[arg(long = "template", short = 't', value_name = "TEMPLATE", action = clap::ArgAction::Append)]
    pub templates: Vec<String>,
}

use std::process::ExitCode;

use nixops_core::state::{depl_attr, validate_deployment_name, AttrValue};

use super::nix_exprs;
use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    // Validate everything before the state file is touched.
    let files = nix_exprs::network_files(&args.nix_exprs, &args.templates)?;
    let nix_path = nix_exprs::nix_path(&args.common.nix_path)?;
    let name = args.name.as_deref().or(settings.deployment.as_deref());
    if let Some(name) = name {
        validate_deployment_name(name)?;
    }
    let state = settings.open_state()?;
    let uuid = state.create_deployment_with(
        None,
        &[
            (depl_attr::NAME, name.map(str::to_owned)),
            (depl_attr::NIX_EXPRS, AttrValue::str_list(&files).encode()),
            (depl_attr::NIX_PATH, nix_path_value(&nix_path)),
        ],
    )?;
    eprintln!("created deployment ‘{uuid}’");
    println!("{uuid}");
    Ok(ExitCode::SUCCESS)
}

/// `nixPath` as stored: absent when empty (its default).
pub fn nix_path_value(entries: &[String]) -> Option<String> {
    (!entries.is_empty())
        .then(|| AttrValue::str_list(entries).encode())
        .flatten()
}
