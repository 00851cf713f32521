//! `nixops edit`: open the network files in `$EDITOR`.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,
}

use std::process::{Command, ExitCode};

use crate::env_vars;
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(_args: &Args, settings: &Settings) -> CliResult {
    let Some(editor) = env_vars::get(env_vars::EDITOR) else {
        return Err(CliError::new("the $EDITOR environment variable is not set"));
    };
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let files = depl.nix_exprs()?;
    // $EDITOR may carry arguments ("code --wait"), so a shell splits it; the file
    // names are passed as positional parameters and never parsed by the shell.
    let status = Command::new("/bin/sh")
        .arg("-c")
        .arg("exec $NIXOPS_EDITOR \"$@\"")
        .arg("sh")
        .args(&files)
        .env("NIXOPS_EDITOR", &editor)
        .status()
        .map_err(|e| CliError::new(format!("cannot run the editor: {e}")))?;
    Ok(ExitCode::from(
        status.code().unwrap_or(1).clamp(0, 255) as u8
    ))
}
