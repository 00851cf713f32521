//! `nixops scp`: copy files to or from a machine with the machine's SSH settings.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = "Exit status: scp's, 255 if the machine cannot be reached.")]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// copy a file from specified machine
    #[arg(long = "from")]
    pub scp_from: bool,

    /// copy a file to specified machine
    #[arg(long = "to")]
    pub scp_to: bool,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// source file location
    #[arg(value_name = "SOURCE")]
    pub source: String,

    /// destination file location
    #[arg(value_name = "DEST")]
    pub destination: String,
}

use nixops_core::ssh::{scp_cmd, scp_endpoints, ScpDirection};

use super::machines::temp_dir;
use super::ssh::{exit_code, find_machine, open_session};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let direction = match (args.scp_from, args.scp_to) {
        (true, false) => ScpDirection::From,
        (false, true) => ScpDirection::To,
        _ => {
            return Err(CliError::new(
                "exactly one of ‘--from’ and ‘--to’ must be specified",
            ))
        }
    };
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let record = find_machine(&depl, &args.machine)?;
    let dir = temp_dir()?;
    let session = open_session(&state, &record, dir.path())?;
    drop(state);
    let (from, to) = scp_endpoints(session.target(), direction, &args.source, &args.destination);
    eprintln!("{from} -> {to}");
    let code = scp_cmd(&session, direction, &args.source, &args.destination).run_interactive()?;
    Ok(exit_code(code))
}
