//! `nixops dump-nix-paths`: the Nix store paths a deployment refers to.

use crate::cli::{CommonArgs, DeploymentOptions};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// dump Nix paths for all deployments
    #[arg(long)]
    pub all: bool,

    #[command(flatten)]
    pub opts: DeploymentOptions,
}

use std::process::ExitCode;

use crate::error::CliResult;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let mut out = String::new();
    for depl in settings.select_many(&state, args.all)? {
        let mut candidates: Vec<String> = depl.nix_exprs()?;
        candidates.extend(
            depl.nix_path()?
                .into_iter()
                .map(|p| p.split_once('=').map_or(p.clone(), |(_, v)| v.to_owned())),
        );
        candidates.extend(depl.configs_path().map(str::to_owned));
        for c in candidates {
            let Ok(real) = std::fs::canonicalize(&c) else {
                continue;
            };
            let parts: Vec<_> = real.components().take(4).collect();
            let path: std::path::PathBuf = parts.iter().collect();
            if path.starts_with("/nix/store/") && parts.len() == 4 {
                out.push_str(&path.to_string_lossy());
                out.push('\n');
            }
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}
