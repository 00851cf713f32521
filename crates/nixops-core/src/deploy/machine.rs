//! One machine's part of a deploy: connect, wait for the build, copy its closure,
//! set its system profile, send its keys, switch to the new configuration, and
//! record the result.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::{BuildSlot, DeployOptions, Deployer};
use crate::backend::none;
use crate::eval::{HealthCheck, KeySpec, MachineInfo};
use crate::events::{Event, Phase, Status};
use crate::exec::{shell_quote, Stream};
use crate::keys::{self, MissingOwner};
use crate::parallel::Limit;
use crate::reboot::{self, Expected, Rebooter};
use crate::ssh::{
    HostKeys, Remote, SessionOptions, SshError, SshSession, SshTarget, StartingMaster,
};
use crate::state::ResourceRecord;

/// The state attribute in which a machine's SSH host key is pinned.
pub const HOST_KEY_ATTR: &str = "publicHostKey";

/// The system profile on NixOS machines.
const SYSTEM_PROFILE: &str = "/nix/var/nix/profiles/system";

/// Exit code of the profile script when the configuration is already active.
const ALREADY_ACTIVE: i32 = 111;

/// Printed by the combined profile-and-activation command once the profile is
/// set: a failure before it is the profile's, after it the activation's.
const PROFILE_SET: &str = "nixops-profile-set";

/// How SSH connections are made for a whole run.
#[derive(Clone, Debug)]
pub struct SshSettings {
    pub options: SessionOptions,
    /// Honour the user's `~/.ssh/config` (off in tests).
    pub use_user_config: bool,
}

impl Default for SshSettings {
    fn default() -> Self {
        SshSettings {
            options: SessionOptions::default(),
            use_user_config: true,
        }
    }
}

/// How the deploy ended for one machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MachineOutcome {
    /// The new configuration is active.
    Activated,
    /// Nothing to do: the configuration was already active.
    UpToDate,
    /// Stopped where the options asked (`--copy-only`, `--dry-activate`).
    Stopped,
    Failed(String),
}

/// An SSH session to a machine as the state describes it, with its host key pinned
/// if it is known. `identity_dir` receives the provisioned private key, if used.
pub fn session_for(
    record: &ResourceRecord,
    settings: &SshSettings,
    identity_dir: &Path,
) -> Result<SshSession, SshError> {
    let host = record
        .target_host()
        .map(str::to_owned)
        .unwrap_or_else(|| record.name.clone());
    let mut target = SshTarget::new(record.attr("targetUser").unwrap_or("root"), host);
    target.port = u16::try_from(record.target_port()).ok();
    target.use_user_config = settings.use_user_config;
    target.compress = !record.bool_attr("hasFastConnection");
    if let Some(opts) = record.attr("sshOptions") {
        target.extra_opts = serde_json::from_str(opts).unwrap_or_default();
    }
    // NixOps switches to its own key once it is known to be installed.
    if record.bool_attr(none::attr::PUBLIC_KEY_DEPLOYED) && record.toplevel().is_some() {
        if let Some(private) = record.attr(none::attr::PRIVATE_KEY) {
            let file = identity_dir.join(format!("id_nixops-{}", record.name));
            write_private(&file, private).map_err(|source| SshError::Io {
                machine: record.name.clone(),
                source,
            })?;
            target.identity = Some(file);
        }
    }
    let host_keys = match record.attr(HOST_KEY_ATTR) {
        Some(keys) => HostKeys::Pinned(keys.lines().map(str::to_owned).collect()),
        None => HostKeys::Learn,
    };
    SshSession::new(
        record.name.clone(),
        target,
        host_keys,
        settings.options.clone(),
    )
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())
}

/// Connect and, on first contact, pin the host key and mark the machine up.
pub fn connect(
    session: &SshSession,
    record: &ResourceRecord,
    deployer: &Deployer<'_>,
) -> Result<(), String> {
    session.connect().map_err(|e| e.to_string())?;
    let mut attrs: Vec<(&str, Option<String>)> = Vec::new();
    if matches!(session.host_keys(), HostKeys::Learn) {
        let keys = session.learned_host_keys().map_err(|e| e.to_string())?;
        if !keys.is_empty() {
            attrs.push((HOST_KEY_ATTR, Some(keys.join("\n"))));
        }
    }
    if !record.ssh_pinged() {
        attrs.push(("sshPinged", Some("1".to_owned())));
    }
    if record.state() != crate::state::ResourceState::Up {
        attrs.push((
            "state",
            Some(crate::state::ResourceState::Up.code().to_string()),
        ));
    }
    if !attrs.is_empty() {
        deployer
            .state
            .set_resource_attrs(record.id, &attrs)
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// The remote command whose output [`state_version`] reads.
pub fn os_release() -> Remote {
    Remote::argv(&["cat", "/etc/os-release"])
}

/// The NixOS version (`major.minor`) in the text of `/etc/os-release`.
pub fn state_version(os_release: &str) -> Option<String> {
    os_release.lines().find_map(|l| {
        let v = l.strip_prefix("VERSION_ID=\"")?;
        let mut parts = v.split(|c: char| !c.is_ascii_digit());
        let major = parts.next().filter(|p| !p.is_empty())?;
        let minor = parts.next().filter(|p| !p.is_empty())?;
        v[major.len()..]
            .starts_with('.')
            .then(|| format!("{major}.{minor}"))
    })
}

/// What activation needs to know of a machine's definition.
#[derive(Clone, Debug, Default)]
pub struct MachineSpec {
    pub always_activate: bool,
    pub has_fast_connection: bool,
    pub keys: BTreeMap<String, KeySpec>,
    /// The keys sent before: the files of those no longer declared are removed.
    pub previous_keys: BTreeMap<String, KeySpec>,
    /// Run after activation; a failure switches the machine back.
    pub health_checks: Vec<HealthCheck>,
}

impl MachineSpec {
    /// From the evaluated definition (deploy), and the machine's record as it
    /// was before this deploy recorded the new keys.
    pub fn from_def(def: &MachineInfo, before: &ResourceRecord) -> Self {
        MachineSpec {
            always_activate: def.always_activate,
            has_fast_connection: def.has_fast_connection,
            keys: def.keys.clone(),
            // Unreadable old keys only mean stale files are not removed.
            previous_keys: keys::recorded(before).unwrap_or_default(),
            health_checks: def.health_checks.clone(),
        }
    }

    /// From what the state recorded at the last deploy (rollback, no evaluation):
    /// always activate.
    pub fn from_record(record: &ResourceRecord) -> Self {
        // Unreadable recorded keys: nothing to send.
        let keys = keys::recorded(record).unwrap_or_default();
        MachineSpec {
            always_activate: true,
            has_fast_connection: record.bool_attr("hasFastConnection"),
            previous_keys: keys.clone(),
            keys,
            // A rollback goes back to a configuration that was checked then.
            health_checks: Vec::new(),
        }
    }
}

pub(super) struct MachineTask<'a, 'd> {
    pub deployer: &'a Deployer<'d>,
    pub opts: &'a DeployOptions,
    pub record: ResourceRecord,
    pub def: MachineSpec,
    pub tmp: &'a Path,
    pub build: &'a BuildSlot,
    pub copy_limit: &'a Limit,
    pub activate_limit: &'a Limit,
    /// A session opened earlier (first contact), if any.
    pub session: Option<SshSession>,
    /// A session being opened while the network was evaluated, if any.
    pub early: Option<EarlySession>,
    /// A first contact still under way (the machine did not answer at once).
    pub contact: Option<&'a super::Contact>,
}

/// An SSH connection opened in the background, before the deploy knows whether
/// it needs it: while the network is evaluated. One try only: if it fails, the
/// machine connects again, with its retries, when it needs to.
pub struct EarlySession {
    session: Option<SshSession>,
    starting: Option<StartingMaster>,
}

impl EarlySession {
    /// Start connecting `session`.
    pub fn start(session: SshSession) -> Option<Self> {
        let starting = session.spawn_master().ok()?;
        Some(EarlySession {
            session: Some(session),
            starting: Some(starting),
        })
    }

    /// Whether this connection goes where `session` would.
    pub fn matches(&self, session: &SshSession) -> bool {
        self.session
            .as_ref()
            .is_some_and(|s| s.target() == session.target() && s.host_keys() == session.host_keys())
    }

    /// The connected session, once the attempt is over; `None` if it failed.
    pub fn join(mut self) -> Option<SshSession> {
        let session = self.session.take()?;
        let starting = self.starting.take()?;
        session.finish_master(starting).ok()?;
        Some(session)
    }
}

impl Drop for EarlySession {
    /// Not wanted: stop it connecting, or close it.
    fn drop(&mut self) {
        if let (Some(session), Some(starting)) = (self.session.take(), self.starting.take()) {
            session.abort_master(starting);
        }
    }
}

impl MachineTask<'_, '_> {
    fn name(&self) -> &str {
        &self.record.name
    }

    fn event(&self, phase: Phase, status: Status) -> Event {
        Event::new(Some(self.name()), phase, status)
    }

    fn send(&self, event: Event) {
        self.deployer.reporter.report(event);
    }

    fn log(&self, phase: Phase, line: impl Into<String>) {
        self.send(self.event(phase, Status::Log).message(line));
    }

    fn profile_failed(&self, out: &crate::exec::Output) -> MachineOutcome {
        self.fail(
            Phase::Profile,
            format!(
                "unable to set new system profile (exit code {}){}",
                out.code(),
                last_line(&out.stderr)
            ),
        )
    }

    fn fail(&self, phase: Phase, reason: String) -> MachineOutcome {
        self.send(self.event(phase, Status::Failed).error(reason.clone()));
        MachineOutcome::Failed(reason)
    }

    pub fn run(mut self) -> MachineOutcome {
        let always = self.opts.always_activate || self.def.always_activate;
        // Without `--check`, a machine whose recorded configuration may already be
        // the new one is only contacted once the build says it changed; every other
        // machine connects while the build runs.
        let may_skip = !self.opts.check && !always && self.record.toplevel().is_some();
        let mut session = self.session.take();
        if let Some(contact) = self.contact {
            match contact.wait(self.name()) {
                Ok(s) => session = Some(s),
                Err(reason) => return self.fail(Phase::Connect, reason),
            }
        }
        if session.is_none() && !may_skip {
            session = self.early.take().and_then(EarlySession::join);
        }
        if session.is_none() && !may_skip {
            match self.open() {
                Ok(s) => session = Some(s),
                Err(reason) => return self.fail(Phase::Connect, reason),
            }
        }
        let configs = match self.build.wait_cloned() {
            Ok(c) => c,
            Err(reason) => return MachineOutcome::Failed(format!("build failed: {reason}")),
        };
        let link = configs.join(self.name());
        let toplevel = match std::fs::canonicalize(&link) {
            Ok(p) => p,
            Err(_) => {
                return self.fail(
                    Phase::Copy,
                    format!("can't find closure of machine ‘{}’", self.name()),
                )
            }
        };
        let toplevel_str = toplevel.to_string_lossy().into_owned();
        let unchanged = self.record.toplevel() == Some(toplevel_str.as_str());
        if unchanged && !always && !self.opts.check && !self.opts.dry_activate {
            self.send(
                self.event(Phase::Activate, Status::Skipped)
                    .message("configuration already up to date")
                    .store_path(&toplevel_str),
            );
            self.record_success(&configs, &toplevel_str, false);
            return MachineOutcome::UpToDate;
        }
        let session = match session.or_else(|| self.early.take().and_then(EarlySession::join)) {
            Some(s) => s,
            None => match self.open() {
                Ok(s) => s,
                Err(reason) => return self.fail(Phase::Connect, reason),
            },
        };
        if !unchanged || self.opts.check {
            if let Err(reason) = self.copy(&session, &toplevel) {
                return self.fail(Phase::Copy, reason);
            }
        }
        if self.opts.copy_only {
            return MachineOutcome::Stopped;
        }
        let _permit = self.activate_limit.acquire();
        self.activate(&session, &configs, &toplevel_str)
    }

    fn open(&self) -> Result<SshSession, String> {
        let session =
            session_for(&self.record, &self.deployer.ssh, self.tmp).map_err(|e| e.to_string())?;
        connect(&session, &self.record, self.deployer)?;
        Ok(session)
    }

    fn copy(&self, session: &SshSession, toplevel: &Path) -> Result<(), String> {
        let _permit = self.copy_limit.acquire();
        self.send(
            self.event(Phase::Copy, Status::Started)
                .message("copying closure...")
                .store_path(toplevel.to_string_lossy()),
        );
        let cmd = session.copy_closure(toplevel, !self.def.has_fast_connection);
        let mut on_line = |_: Stream, line: &str| self.log(Phase::Copy, line);
        cmd.run_streaming(&mut on_line).map_err(|e| e.to_string())?;
        self.send(self.event(Phase::Copy, Status::Succeeded));
        Ok(())
    }

    fn activate(&self, session: &SshSession, configs: &Path, toplevel: &str) -> MachineOutcome {
        let opts = self.opts;
        let q = shell_quote;
        let always = opts.always_activate || self.def.always_activate;
        // A machine without keys (now and before) only needs the keys marker,
        // which then rides along with the profile command: one round trip less.
        let no_keys = self.def.keys.is_empty() && self.def.previous_keys.is_empty();
        let mut keys_done = false;
        let method = if opts.force_reboot || opts.boot {
            "boot"
        } else if opts.dry_activate {
            "dry-activate"
        } else if opts.test {
            "test"
        } else {
            "switch"
        };
        let switch = format!("{}/bin/switch-to-configuration", toplevel);
        let mut argv = Vec::new();
        if opts.no_sync {
            argv.extend(["env", "NIXOS_NO_SYNC=1"]);
        }
        argv.extend([switch.as_str(), method]);
        let setprof = format!("nix-env -p {SYSTEM_PROFILE} --set {}", q(toplevel));
        // With nothing to check and no keys to send in between, the profile and
        // the activation go in one command: a round trip less per machine. A
        // marker line tells which of the two a failure belongs to.
        let combined = always && no_keys && !opts.test && !opts.dry_activate;
        let out = if combined {
            self.send(
                self.event(Phase::Activate, Status::Started)
                    .message(format!("activating ({method})..."))
                    .store_path(toplevel),
            );
            let script = format!(
                "{setprof} || exit $?; {{ {}; }}; echo {PROFILE_SET}; exec {}",
                keys::KEYS_DONE,
                argv.iter().map(|a| q(a)).collect::<Vec<_>>().join(" ")
            );
            let mut profile_set = false;
            let mut on_line = |_: Stream, line: &str| {
                if line == PROFILE_SET {
                    profile_set = true;
                } else {
                    self.log(Phase::Activate, line);
                }
            };
            let out = match session.run_streaming_unchecked(&Remote::shell(script), &mut on_line) {
                Ok(out) => out,
                Err(e) => return self.fail(Phase::Activate, e.to_string()),
            };
            if !profile_set {
                return self.profile_failed(&out);
            }
            out
        } else {
            // 1. The system profile (not for `test` or `dry-activate`).
            if !opts.test && !opts.dry_activate {
                let mut setprof = setprof;
                if no_keys {
                    setprof.push_str(&format!(" && {{ {}; }}", keys::KEYS_DONE));
                    keys_done = true;
                }
                let script = if always {
                    setprof
                } else {
                    format!(
                        "old_gen=\"$(readlink -f {SYSTEM_PROFILE})\"; new_gen=\"$(readlink -f {t})\"; \
                         [ \"x$old_gen\" != \"x$new_gen\" ] || exit {ALREADY_ACTIVE}; {setprof}",
                        t = q(toplevel)
                    )
                };
                match session.run_unchecked(&Remote::shell(script)) {
                    Ok(out) if out.code() == 0 => {}
                    Ok(out) if out.code() == ALREADY_ACTIVE && !always => {
                        self.send(
                            self.event(Phase::Activate, Status::Skipped)
                                .message("configuration already up to date")
                                .store_path(toplevel),
                        );
                        self.record_success(configs, toplevel, true);
                        return MachineOutcome::UpToDate;
                    }
                    Ok(out) => return self.profile_failed(&out),
                    Err(e) => return self.fail(Phase::Profile, e.to_string()),
                }
            }
            // 2. Keys, before the services that use them restart.
            if !opts.dry_activate && !keys_done {
                if let Err(reason) = self.send_keys(session) {
                    return self.fail(Phase::Keys, reason);
                }
            }
            // 3. switch-to-configuration.
            self.send(
                self.event(Phase::Activate, Status::Started)
                    .message(format!("activating ({method})..."))
                    .store_path(toplevel),
            );
            let mut on_line = |_: Stream, line: &str| self.log(Phase::Activate, line);
            match session.run_streaming_unchecked(&Remote::argv(&argv), &mut on_line) {
                Ok(out) => out,
                Err(e) => return self.fail(Phase::Activate, e.to_string()),
            }
        };
        if opts.dry_activate {
            return if out.code() == 0 {
                MachineOutcome::Stopped
            } else {
                self.fail(
                    Phase::Activate,
                    format!(
                        "unable to dry-activate new configuration (exit code {})",
                        out.code()
                    ),
                )
            };
        }
        let code = out.code();
        if code != 0 && code != 100 {
            return self.fail(
                Phase::Activate,
                format!("unable to activate new configuration (exit code {code})"),
            );
        }
        if code == 0 {
            // The provisioned key is now installed for root.
            let _ = self.deployer.state.set_resource_attrs(
                self.record.id,
                &[(none::attr::PUBLIC_KEY_DEPLOYED, Some("1".to_owned()))],
            );
        }
        if code == 100 || opts.force_reboot {
            if !opts.allow_reboot && !opts.force_reboot {
                return self.fail(
                    Phase::Activate,
                    format!(
                        "the new configuration requires a reboot of ‘{}’ to take effect (hint: use ‘--allow-reboot’)",
                        self.name()
                    ),
                );
            }
            let rebooter = Rebooter {
                state: self.deployer.state,
                ssh: &self.deployer.ssh,
                identity_dir: self.tmp,
                reporter: self.deployer.reporter,
                timeout: reboot::DEFAULT_TIMEOUT,
            };
            let expected = Expected {
                toplevel: Some(toplevel),
                keys: &self.def.keys,
            };
            if let Err(e) = rebooter.reboot_sync(session, &self.record, &expected) {
                return self.fail(Phase::Reboot, e.to_string());
            }
        }
        if let Err(failure) = self.health_checks(session) {
            let reason = match self.revert(session) {
                Ok(old) => format!("{failure}; switched back to {old}"),
                Err(why) => format!("{failure}; could not switch back: {why}"),
            };
            return self.fail(Phase::Check, reason);
        }
        self.record_success(configs, toplevel, true);
        self.send(
            self.event(Phase::Activate, Status::Succeeded)
                .message("activation finished successfully")
                .store_path(toplevel),
        );
        MachineOutcome::Activated
    }

    /// Run the machine's health checks, each retried every second until it
    /// passes or its timeout is over. `Err` says which one failed and how.
    fn health_checks(&self, session: &SshSession) -> Result<(), String> {
        for check in &self.def.health_checks {
            self.send(
                self.event(Phase::Check, Status::Started)
                    .message(format!("checking ‘{}’...", check.name)),
            );
            let deadline = Instant::now() + Duration::from_secs(check.timeout);
            let script = format!("sh -c {}", shell_quote(&check.command));
            loop {
                let (code, detail) = match session.run_unchecked(&Remote::shell(script.clone())) {
                    Ok(out) => (out.code(), last_line(&out.stderr)),
                    Err(e) => (-1, format!(": {e}")),
                };
                if code == 0 {
                    break;
                }
                if Instant::now() >= deadline {
                    return Err(format!(
                        "health check ‘{}’ failed (exit code {code}){detail}",
                        check.name
                    ));
                }
                std::thread::sleep(Duration::from_secs(1));
            }
            self.send(
                self.event(Phase::Check, Status::Succeeded)
                    .message(format!("health check ‘{}’ passed", check.name)),
            );
        }
        Ok(())
    }

    /// Go back to the configuration the machine had before this deploy (as
    /// recorded); returns its store path.
    fn revert(&self, session: &SshSession) -> Result<String, String> {
        let Some(old) = self.record.toplevel() else {
            return Err("no earlier configuration is recorded".to_owned());
        };
        let q = shell_quote;
        self.log(Phase::Activate, format!("switching back to {old}..."));
        let script = if self.opts.test {
            format!("{}/bin/switch-to-configuration test", q(old))
        } else {
            format!(
                "nix-env -p {SYSTEM_PROFILE} --set {o} && {o}/bin/switch-to-configuration switch",
                o = q(old)
            )
        };
        let mut on_line = |_: Stream, line: &str| self.log(Phase::Activate, line);
        match session.run_streaming_unchecked(&Remote::shell(script), &mut on_line) {
            Ok(out) if out.code() == 0 => Ok(old.to_owned()),
            Ok(out) => Err(format!("exit code {}", out.code())),
            Err(e) => Err(e.to_string()),
        }
    }

    fn send_keys(&self, session: &SshSession) -> Result<(), String> {
        let mut on_key = |attr: &str, key: &KeySpec| {
            self.log(Phase::Keys, reboot::upload_message(attr, key));
        };
        // Users created by this very deploy exist only after activation, which
        // hands such keys over to them.
        keys::send_keys(
            session,
            &self.def.keys,
            &self.def.previous_keys,
            MissingOwner::LeaveToActivation,
            &mut on_key,
        )
        .map_err(|e| e.to_string())
    }

    fn record_success(&self, configs: &Path, toplevel: &str, up: bool) {
        let mut attrs = vec![
            ("configsPath", Some(configs.to_string_lossy().into_owned())),
            ("toplevel", Some(toplevel.to_owned())),
        ];
        if up {
            attrs.push((
                "state",
                Some(crate::state::ResourceState::Up.code().to_string()),
            ));
        }
        if let Err(e) = self
            .deployer
            .state
            .set_resource_attrs(self.record.id, &attrs)
        {
            self.send(
                self.event(Phase::Activate, Status::Warning)
                    .message(format!("cannot record the result in the state file: {e}")),
            );
        }
    }
}

fn last_line(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    text.lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| format!(": {}", l.trim()))
        .unwrap_or_default()
}
