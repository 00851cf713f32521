//! `nixops import`: add deployments from `export` JSON on stdin.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// import public SSH hosts keys to .ssh/known_hosts
    #[arg(long)]
    pub include_keys: bool,
}

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use nixops_core::backend;
use nixops_core::deploy::HOST_KEY_ATTR;
use nixops_core::ssh::user_known_hosts;
use nixops_core::state::DeploymentRecord;

use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).map_err(|e| {
        CliError::new(format!(
            "cannot read the deployments to import from stdin: {e}"
        ))
    })?;
    let home = match (&settings.home, args.include_keys) {
        (Some(home), true) => Some(PathBuf::from(home)),
        (None, true) => {
            return Err(CliError::new(
                "‘--include-keys’ needs $HOME, for ~/.ssh/known_hosts",
            ))
        }
        (_, false) => None,
    };
    let state = settings.open_state()?;
    let added = state.import(&input)?;
    for uuid in &added {
        eprintln!("added deployment ‘{uuid}’");
    }
    if let Some(home) = home {
        for uuid in &added {
            add_host_keys(&home, &state.load(uuid)?)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// NixOps' `--include-keys`: each active machine's recorded host key goes to
/// `~/.ssh/known_hosts` under its public and private addresses.
fn add_host_keys(home: &Path, depl: &DeploymentRecord) -> CliResult<()> {
    for r in depl
        .resources
        .iter()
        .filter(|r| backend::is_machine_type(&r.type_) && !r.obsolete())
    {
        let Some(keys) = r.attr(HOST_KEY_ATTR) else {
            continue;
        };
        let keys: Vec<String> = keys.lines().map(str::to_owned).collect();
        for ip in [r.public_ipv4(), r.private_ipv4()].into_iter().flatten() {
            user_known_hosts::add(home, ip, &keys).map_err(|e| {
                CliError::new(format!(
                    "cannot add the host key of machine ‘{}’ to {}: {e}",
                    r.name,
                    home.join(".ssh/known_hosts").display()
                ))
            })?;
        }
    }
    Ok(())
}
