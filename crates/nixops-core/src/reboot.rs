//! Rebooting a machine over SSH and waiting until it is back (`nixops reboot`,
//! and `deploy` when a configuration needs a reboot).
//!
//! Owns the reboot request, the down/up wait with its overall timeout, the check
//! that the machine booted the recorded configuration, the state changes
//! (STARTING while it reboots, UP afterwards) and re-sending the keys that the
//! reboot wiped from `/run`. It does not decide which machines to reboot and
//! never prints: progress goes to a [`Reporter`].

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::deploy::{session_for, SharedState, SshSettings};
use crate::eval::KeySpec;
use crate::events::{Event, Phase, Reporter, Status};
use crate::keys::{self, KeyError, MissingOwner};
use crate::ssh::{Remote, SshError, SshSession};
use crate::state::{ResourceRecord, ResourceState, StateError};

/// How long a machine may take to go down and come back unless told otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// A file in `/run` (a tmpfs on NixOS) made just before the reboot: once it is
/// gone the machine has rebooted, even if we never saw it down.
const MARKER: &str = "/run/nixops-reboot-pending";

/// Pause between two polls of a rebooting machine.
const POLL: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RebootError {
    #[error("cannot reboot machine ‘{machine}’")]
    Request {
        machine: String,
        #[source]
        source: SshError,
    },
    #[error(
        "machine ‘{machine}’ did not come back within {seconds} seconds after rebooting \
         (hint: a longer ‘--timeout’ waits longer)"
    )]
    Timeout { machine: String, seconds: u64 },
    #[error("cannot connect to machine ‘{machine}’ after its reboot")]
    Reconnect {
        machine: String,
        #[source]
        source: SshError,
    },
    #[error("cannot prepare an SSH connection to machine ‘{machine}’")]
    Session {
        machine: String,
        #[source]
        source: SshError,
    },
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// What a reboot needs besides the machine.
pub struct Rebooter<'a> {
    pub state: &'a SharedState,
    pub ssh: &'a SshSettings,
    /// Where provisioned private keys are written for the poll connections.
    pub identity_dir: &'a Path,
    pub reporter: &'a dyn Reporter,
    /// The longest wait for the machine to go down and come back.
    pub timeout: Duration,
}

/// The configuration a rebooted machine should run and the keys it should get.
pub struct Expected<'a> {
    /// The toplevel `/run/booted-system` should resolve to, if known.
    pub toplevel: Option<&'a str>,
    pub keys: &'a BTreeMap<String, KeySpec>,
}

impl Rebooter<'_> {
    fn log(&self, machine: &str, line: impl Into<String>) {
        self.reporter
            .report(Event::new(Some(machine), Phase::Reboot, Status::Log).message(line));
    }

    fn set_state(&self, record: &ResourceRecord, state: ResourceState) -> Result<(), StateError> {
        let mut attrs = vec![("state", Some(state.code().to_string()))];
        if state == ResourceState::Up {
            attrs.push(("sshPinged", Some("1".to_owned())));
        }
        self.state.set_resource_attrs(record.id, &attrs)
    }

    /// Ask the machine to reboot (`systemctl reboot`), mark it STARTING and drop
    /// the SSH connection. Returns whether the reboot marker could be made.
    pub fn request(
        &self,
        session: &SshSession,
        record: &ResourceRecord,
    ) -> Result<bool, RebootError> {
        self.log(&record.name, "rebooting...");
        // NixOS puts systemctl on the login PATH; make sure it comes first. No
        // fallback to a bare `reboot`: only the machine's own init may decide.
        let script = format!(
            "touch {MARKER} 2>/dev/null && echo marked; \
             PATH=/run/current-system/sw/bin:$PATH; export PATH; \
             systemctl reboot"
        );
        // The connection may drop while the command runs (that is the point), so
        // only a failure to connect beforehand is an error.
        session.connect().map_err(|source| RebootError::Request {
            machine: record.name.clone(),
            source,
        })?;
        let marked = session
            .run_unchecked(&Remote::shell(script))
            .map(|out| String::from_utf8_lossy(&out.stdout).contains("marked"))
            .unwrap_or(false);
        session.disconnect();
        self.set_state(record, ResourceState::Starting)?;
        Ok(marked)
    }

    /// Wait until the machine has gone down and is reachable over SSH again, at
    /// most [`Rebooter::timeout`] from now.
    pub fn wait(&self, record: &ResourceRecord, marked: bool) -> Result<(), RebootError> {
        let name = &record.name;
        self.log(name, "waiting for the machine to finish rebooting...");
        let mut settings = self.ssh.clone();
        settings.options.connect_timeout = Duration::from_secs(1);
        settings.options.connection_tries = 1;
        let ping = session_for(record, &settings, self.identity_dir).map_err(|source| {
            RebootError::Session {
                machine: name.clone(),
                source,
            }
        })?;
        let started = Instant::now();
        let mut down = false;
        loop {
            let poll = Instant::now();
            let answer = ping.run_unchecked(&Remote::shell(format!("test ! -e {MARKER}")));
            ping.disconnect();
            match answer {
                Ok(out) if down || (marked && out.code() == 0) => {
                    if !down {
                        self.log(name, "[down]");
                    }
                    self.log(name, "[up]");
                    return Ok(());
                }
                Ok(_) => {}
                Err(_) if !down => {
                    down = true;
                    self.log(name, "[down]");
                }
                Err(_) => {}
            }
            if started.elapsed() >= self.timeout {
                return Err(RebootError::Timeout {
                    machine: name.clone(),
                    seconds: self.timeout.as_secs(),
                });
            }
            std::thread::sleep(POLL.saturating_sub(poll.elapsed()));
        }
    }

    /// NixOps' `reboot_sync`: reboot, wait, check the booted configuration, mark
    /// the machine UP and send its keys again (`/run/keys` did not survive).
    pub fn reboot_sync(
        &self,
        session: &SshSession,
        record: &ResourceRecord,
        expected: &Expected<'_>,
    ) -> Result<(), RebootError> {
        let marked = self.request(session, record)?;
        self.wait(record, marked)?;
        self.after_boot(session, record, expected)
    }

    /// Everything after the machine is back: booted-system check, state UP, keys.
    pub fn after_boot(
        &self,
        session: &SshSession,
        record: &ResourceRecord,
        expected: &Expected<'_>,
    ) -> Result<(), RebootError> {
        let name = &record.name;
        session.connect().map_err(|source| RebootError::Reconnect {
            machine: name.clone(),
            source,
        })?;
        if let Some(want) = expected.toplevel {
            if let Some(warning) = booted_mismatch(session, want) {
                self.reporter.report(
                    Event::new(Some(name), Phase::Reboot, Status::Warning).message(warning),
                );
            }
        }
        self.set_state(record, ResourceState::Up)?;
        let reporter = self.reporter;
        let mut on_key = |attr: &str, key: &KeySpec| {
            reporter.report(
                Event::new(Some(name), Phase::Keys, Status::Log).message(upload_message(attr, key)),
            );
        };
        keys::send_keys(
            session,
            expected.keys,
            expected.keys,
            MissingOwner::Fail,
            &mut on_key,
        )?;
        Ok(())
    }
}

/// The log line before a key is uploaded (NixOps 2's text).
pub fn upload_message(attr: &str, key: &KeySpec) -> String {
    format!(
        "uploading key ‘{attr}’ to ‘{}/{}’...",
        key.dest_dir.trim_end_matches('/'),
        key.name
    )
}

/// A warning if the machine did not boot `want` (or cannot say what it booted).
fn booted_mismatch(session: &SshSession, want: &str) -> Option<String> {
    let out = session
        .run_unchecked(&Remote::argv(&["readlink", "-f", "/run/booted-system"]))
        .ok();
    let booted = out
        .filter(|o| o.code() == 0)
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|b| !b.is_empty());
    match booted {
        Some(b) if b == want => None,
        Some(b) => Some(format!(
            "the machine booted ‘{b}’, not the deployed configuration ‘{want}’"
        )),
        None => Some(String::from(
            "cannot tell which configuration the machine booted (/run/booted-system is missing)",
        )),
    }
}
