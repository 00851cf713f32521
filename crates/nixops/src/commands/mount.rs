//! `nixops mount`: mount a machine's directory with sshfs.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine, optionally followed by a path
    #[arg(value_name = "MACHINE[:PATH]")]
    pub machine: String,

    /// local path
    #[arg(value_name = "PATH")]
    pub destination: String,

    /// mount options passed to sshfs
    #[arg(long = "sshfs-option", short = 'o', value_name = "OPTIONS", action = clap::ArgAction::Append)]
    pub sshfs_options: Vec<String>,
}

use nixops_core::exec::Cmd;

use super::machines::temp_dir;
use super::ssh::{exit_code, find_machine, open_session};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let (machine, path) = match args.machine.split_once(':') {
        Some((m, p)) if !p.is_empty() => (m, p),
        Some((m, _)) => (m, "/"),
        None => (args.machine.as_str(), "/"),
    };
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let record = find_machine(&depl, machine)?;
    let dir = temp_dir()?;
    // Connecting first checks (or learns and pins) the host key, as every other
    // command does; sshfs then logs in with the same options.
    let session = open_session(&state, &record, dir.path())?;
    drop(state);
    let flags = session.ssh_flags();
    if let Some(bad) = flags.iter().find(|f| f.chars().any(char::is_whitespace)) {
        return Err(CliError::new(format!(
            "cannot pass the SSH option ‘{bad}’ to sshfs: it contains white space"
        )));
    }
    let mut ssh_command = vec!["ssh".to_owned()];
    ssh_command.extend(flags);
    let mut cmd = Cmd::new("sshfs")
        .arg(session.target().remote_path(path))
        .arg(&args.destination)
        .arg("-o")
        .arg(format!("ssh_command={}", ssh_command.join(" ")));
    for option in &args.sshfs_options {
        cmd = cmd.arg("-o").arg(option);
    }
    let code = cmd.run_interactive().map_err(|e| {
        CliError::new(format!("cannot run sshfs: {e}"))
            .with_hint("install sshfs (Debian: apt-get install sshfs)")
    })?;
    Ok(exit_code(code))
}
