//! `nixops ssh`: an SSH session or command on one machine, and the SSH set-up the
//! other user-facing SSH commands share (machine lookup, session with deploy's
//! settings and pinned host key).

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Exit status: the remote command's (or the shell's), 255 if the machine cannot be reached."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// identifier of the machine
    #[arg(value_name = "MACHINE")]
    pub machine: String,

    /// SSH flags and/or command
    #[arg(
        value_name = "SSH_ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

use std::path::Path;
use std::process::ExitCode;

use nixops_core::backend::is_machine_type;
use nixops_core::check::{contact_updates, Updates};
use nixops_core::deploy::{session_for, SshSettings};
use nixops_core::ssh::{interactive_ssh, SshSession};
use nixops_core::state::{DeploymentRecord, ResourceRecord, StateFile};

use super::machines::temp_dir;
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

/// ssh's own exit status for a failure to connect; ours too.
pub(crate) const CONNECT_FAILED: u8 = 255;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let record = find_machine(&depl, &args.machine)?;
    let dir = temp_dir()?;
    let session = open_session(&state, &record, dir.path())?;
    // Nothing is written to the state during a session, which may last hours.
    drop(state);
    let code = interactive_ssh(&session, &args.args).run_interactive()?;
    Ok(exit_code(code))
}

/// The exit code of a child as ours (a status outside 0..=255 cannot happen for a
/// process; it would mean "failed").
pub(crate) fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `[USER@]MACHINE` of `depl`'s machines (obsolete ones included, as in NixOps),
/// with `USER` replacing the machine's target user.
pub(crate) fn find_machine(
    depl: &DeploymentRecord,
    spec: &str,
) -> Result<ResourceRecord, CliError> {
    let (user, name) = match spec.rsplit_once('@') {
        Some((user, name)) => (Some(user), name),
        None => (None, spec),
    };
    let mut record = depl
        .resources
        .iter()
        .find(|r| r.name == name && is_machine_type(&r.type_))
        .cloned()
        .ok_or_else(|| CliError::new(format!("unknown machine ‘{name}’")))?;
    if let Some(user) = user {
        record
            .attrs
            .insert("targetUser".to_owned(), user.to_owned());
    }
    Ok(record)
}

/// The machine's SSH session with deploy's settings and pinned host key, its
/// master connection up; a host key learned on this first contact is pinned in the
/// state, as `deploy` does. A failure to connect exits with ssh's 255.
pub(crate) fn open_session(
    state: &StateFile,
    record: &ResourceRecord,
    dir: &Path,
) -> Result<SshSession, CliError> {
    let (session, updates) = connect(record, dir)?;
    if !updates.is_empty() {
        state.set_resource_attrs(record.id, &updates)?;
    }
    Ok(session)
}

/// [`open_session`] without the state: the session and the updates to record.
pub(crate) fn connect(
    record: &ResourceRecord,
    dir: &Path,
) -> Result<(SshSession, Updates), CliError> {
    let connect_failed = |e: nixops_core::ssh::SshError| CliError {
        code: CONNECT_FAILED,
        ..CliError::new(e.to_string())
    };
    let session = session_for(record, &SshSettings::default(), dir).map_err(connect_failed)?;
    let updates = contact_updates(&session, record).map_err(connect_failed)?;
    Ok((session, updates))
}
