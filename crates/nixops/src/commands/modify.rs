//! `nixops modify`: change a deployment's network files, search path or name.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// new symbolic name of deployment
    #[arg(long, short = 'n', value_name = "NAME")]
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
    let files = nix_exprs::network_files(&args.nix_exprs, &args.templates)?;
    let nix_path = nix_exprs::nix_path(&args.common.nix_path)?;
    if let Some(name) = &args.name {
        validate_deployment_name(name)?;
    }
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let _lock = settings.lock(&depl, "modify")?;
    let mut attrs = vec![(depl_attr::NIX_EXPRS, AttrValue::str_list(&files).encode())];
    // NixOps wipes the stored search path when `-I` is not given again; keep it.
    if !nix_path.is_empty() {
        attrs.push((
            depl_attr::NIX_PATH,
            super::create::nix_path_value(&nix_path),
        ));
    }
    if let Some(name) = &args.name {
        attrs.push((depl_attr::NAME, Some(name.clone())));
    }
    state.set_deployment_attrs(&depl.uuid, &attrs)?;
    Ok(ExitCode::SUCCESS)
}
