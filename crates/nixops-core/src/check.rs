//! `nixops check`: probe machines and report their health, and the first contact
//! of the user-facing SSH commands (pinning a host key learned on the way).
//!
//! It owns: what a check of one machine does (existence, TCP reachability of its
//! SSH port, `cat /proc/loadavg` and `systemctl` over SSH, the running and booted
//! systems against the recorded deployment), parsing `systemctl --all --full
//! --no-legend`, the exit status bits, and the state updates a check implies
//! (`state`, `sshPinged`, a newly learned host key).
//!
//! It must not print, evaluate the network (a check compares the recorded state
//! with the machines, so it is cheap and works without the network files), or
//! change anything on the machines.

use std::cmp::Ordering;
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::backend::is_machine_type;
use crate::deploy::{session_for, SshSettings, HOST_KEY_ATTR};
use crate::exec::shell_quote;
use crate::names::natural_cmp;
use crate::parallel;
use crate::ssh::{HostKeys, Remote, SessionOptions, SshError, SshSession};
use crate::state::{DeploymentRecord, ResourceRecord, ResourceState, StateError, StateFile};

/// The bits of `nixops check`'s exit status; the status is their OR over machines.
pub mod bit {
    /// The machine does not exist (as far as its backend knows).
    pub const MISSING: u8 = 1;
    /// The machine is not up (its SSH port does not answer).
    pub const NOT_UP: u8 = 2;
    /// The machine cannot be reached over SSH.
    pub const UNREACHABLE: u8 = 4;
    /// A disk is not OK.
    pub const DISKS: u8 = 8;
    /// Some systemd units failed.
    pub const FAILED_UNITS: u8 = 16;
    /// Not up to date: the last build is not deployed to it, or the system it runs
    /// is not the one deployed (an addition to NixOps).
    pub const OUTDATED: u8 = 32;
}

/// The stored note texts, also used by tests.
pub mod note {
    /// The deployment's last build has a configuration for the machine that it
    /// does not have.
    pub const BUILD_NOT_DEPLOYED: &str = "not up to date: last build not deployed";
    /// `/run/current-system` is not the recorded toplevel.
    pub const SYSTEM_CHANGED: &str = "not up to date: running system is not the deployed one";
    /// `/run/booted-system` differs from `/run/current-system`.
    pub const BOOTED_DIFFERS: &str = "booted system differs from current system";
}

/// What a check found out about one machine. `None` means "not known" (shown as
/// `N/A`): a question that could not be asked, e.g. reachability of a machine
/// that is down.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckResult {
    pub exists: Option<bool>,
    pub up: Option<bool>,
    pub reachable: Option<bool>,
    pub disks_ok: Option<bool>,
    /// The three load averages as the machine prints them.
    pub load: Option<Vec<String>>,
    /// `None` when the units could not be listed.
    pub failed_units: Option<Vec<String>>,
    pub in_progress_units: Vec<String>,
    /// Whether the machine runs what the deployment last built and deployed.
    pub up_to_date: Option<bool>,
    /// The recorded toplevel of the last deploy.
    pub deployed_system: Option<String>,
    /// Where `/run/current-system` points on the machine.
    pub current_system: Option<String>,
    /// Where `/run/booted-system` points on the machine.
    pub booted_system: Option<String>,
    /// Notes for the user, one line each.
    pub notes: Vec<String>,
}

impl CheckResult {
    /// This machine's part of the exit status (see [`bit`]); unknown answers set
    /// no bit.
    pub fn status(&self) -> u8 {
        let mut s = 0;
        if self.exists == Some(false) {
            s |= bit::MISSING;
        }
        if self.up == Some(false) {
            s |= bit::NOT_UP;
        }
        if self.reachable == Some(false) {
            s |= bit::UNREACHABLE;
        }
        if self.disks_ok == Some(false) {
            s |= bit::DISKS;
        }
        if self.failed_units.as_ref().is_some_and(|u| !u.is_empty()) {
            s |= bit::FAILED_UNITS;
        }
        if self.up_to_date == Some(false) {
            s |= bit::OUTDATED;
        }
        s
    }
}

/// One checked machine.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineCheck {
    /// The deployment's name, or its UUID if it has none.
    pub deployment: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(flatten)]
    pub result: CheckResult,
    /// [`CheckResult::status`].
    pub status: u8,
}

/// One checked non-machine resource: it exists if its state is `Up`.
#[derive(Clone, Debug, Serialize)]
pub struct ResourceCheck {
    pub deployment: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub exists: bool,
}

/// The result of `nixops check`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct CheckReport {
    /// Sorted by deployment, type, then name in natural order.
    pub machines: Vec<MachineCheck>,
    /// Sorted like the machines.
    pub resources: Vec<ResourceCheck>,
}

impl CheckReport {
    /// The exit status: the OR of every machine's status (resources never count).
    pub fn status(&self) -> u8 {
        self.machines.iter().fold(0, |s, m| s | m.status)
    }
}

/// Which resources to check and how.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    /// SSH for the reachability probe; one try, a short connect timeout.
    pub ssh: SshSettings,
    /// How long the TCP connect to the SSH port may take.
    pub tcp_timeout: Duration,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            include: Vec::new(),
            exclude: Vec::new(),
            ssh: SshSettings {
                options: SessionOptions {
                    connect_timeout: Duration::from_secs(5),
                    connection_tries: 1,
                    ..SessionOptions::default()
                },
                ..SshSettings::default()
            },
            tcp_timeout: Duration::from_secs(2),
        }
    }
}

impl CheckOptions {
    /// NixOps' `should_do`: not excluded, and included if there is an include list.
    pub fn selects(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot create a temporary directory for SSH keys")]
    TempDir(#[source] std::io::Error),
}

/// Check the active resources of `depls` that `opts` selects, machines in
/// parallel, and record what was learned (machine state, `sshPinged`, host keys)
/// in `state`.
pub fn check(
    state: &StateFile,
    depls: &[DeploymentRecord],
    opts: &CheckOptions,
) -> Result<CheckReport, CheckError> {
    let tmp = tempfile::Builder::new()
        .prefix("nixops-check-")
        .tempdir()
        .map_err(CheckError::TempDir)?;
    let mut machines: Vec<(&DeploymentRecord, &ResourceRecord)> = Vec::new();
    let mut report = CheckReport::default();
    for depl in depls {
        for r in depl.resources.iter().filter(|r| !r.obsolete()) {
            if !opts.selects(&r.name) {
                continue;
            }
            if is_machine_type(&r.type_) {
                machines.push((depl, r));
            } else {
                report.resources.push(ResourceCheck {
                    deployment: depl.name_or_uuid().to_owned(),
                    name: r.name.clone(),
                    type_: r.type_.clone(),
                    exists: r.state() == ResourceState::Up,
                });
            }
        }
    }
    let checked = parallel::for_each(machines, |(depl, r)| {
        let (result, updates) = check_machine(depl, r, opts, tmp.path());
        (depl, r, result, updates)
    });
    for (depl, r, result, updates) in checked {
        if !updates.is_empty() {
            state.set_resource_attrs(r.id, &updates)?;
        }
        report.machines.push(MachineCheck {
            deployment: depl.name_or_uuid().to_owned(),
            name: r.name.clone(),
            type_: r.type_.clone(),
            status: result.status(),
            result,
        });
    }
    report.machines.sort_by(|a, b| {
        sort_key(
            &a.deployment,
            &a.type_,
            &a.name,
            &b.deployment,
            &b.type_,
            &b.name,
        )
    });
    report.resources.sort_by(|a, b| {
        sort_key(
            &a.deployment,
            &a.type_,
            &a.name,
            &b.deployment,
            &b.type_,
            &b.name,
        )
    });
    Ok(report)
}

/// NixOps' row order: deployment, type, then the name in natural order.
fn sort_key(da: &str, ta: &str, na: &str, db: &str, tb: &str, nb: &str) -> Ordering {
    da.cmp(db)
        .then_with(|| ta.cmp(tb))
        .then_with(|| natural_cmp(na, nb))
}

/// Attribute updates to record for a resource.
pub type Updates = Vec<(&'static str, Option<String>)>;

/// Check one machine; returns the result and the state updates it implies.
pub fn check_machine(
    depl: &DeploymentRecord,
    record: &ResourceRecord,
    opts: &CheckOptions,
    identity_dir: &Path,
) -> (CheckResult, Updates) {
    let mut res = CheckResult {
        deployed_system: record.toplevel().map(str::to_owned),
        ..CheckResult::default()
    };
    let mut updates = Updates::new();
    if record.type_ != "none" {
        res.notes.push(format!(
            "checking ‘{}’ machines is not implemented yet",
            record.type_
        ));
        return (res, updates);
    }
    // The `none` backend: it exists once deployed (vmId set), it is up when its
    // SSH port answers.
    if record.vm_id().is_none() {
        res.exists = Some(false);
        return (res, updates);
    }
    res.exists = Some(true);
    build_deployed(depl, record, &mut res);
    let host = record.target_host().unwrap_or(&record.name);
    let port = u16::try_from(record.target_port()).unwrap_or(22);
    res.up = Some(tcp_ping(host, port, opts.tcp_timeout));
    if res.up == Some(true) {
        probe(record, opts, identity_dir, &mut res, &mut updates);
    }
    if res.reachable != Some(true) && record.state() == ResourceState::Up {
        updates.push(("state", Some(ResourceState::Unreachable.code().to_string())));
    }
    (res, updates)
}

/// Whether `host:port` accepts a TCP connection within `timeout` (any of its
/// addresses).
pub fn tcp_ping(host: &str, port: u16, timeout: Duration) -> bool {
    let Ok(addrs) = (host, port).to_socket_addrs() else {
        return false;
    };
    addrs
        .into_iter()
        .any(|addr| TcpStream::connect_timeout(&addr, timeout).is_ok())
}

/// Compare what the machine last got with the deployment's last build: its
/// `configsPath` must be the deployment's, unless the last build holds the very
/// toplevel the machine has (another machine changed, or this one was not
/// selected but is unchanged).
fn build_deployed(depl: &DeploymentRecord, record: &ResourceRecord, res: &mut CheckResult) {
    let Some(deployed) = record.toplevel() else {
        return;
    };
    res.up_to_date = Some(true);
    let Some(configs) = depl.configs_path() else {
        return;
    };
    if record.configs_path() == Some(configs) {
        return;
    }
    let built = std::fs::canonicalize(Path::new(configs).join(&record.name)).ok();
    if built.as_deref() == Some(Path::new(deployed)) {
        return;
    }
    res.up_to_date = Some(false);
    res.notes.push(note::BUILD_NOT_DEPLOYED.to_owned());
}

/// The SSH part: reachability, load, units, running and booted systems.
fn probe(
    record: &ResourceRecord,
    opts: &CheckOptions,
    identity_dir: &Path,
    res: &mut CheckResult,
    updates: &mut Updates,
) {
    let session = match session_for(record, &opts.ssh, identity_dir) {
        Ok(s) => s,
        Err(e) => {
            res.reachable = Some(false);
            res.notes.push(e.to_string());
            return;
        }
    };
    let load = contact_updates(&session, record).and_then(|u| {
        let out = session.run(&Remote::argv(&["cat", "/proc/loadavg"]))?;
        Ok((u, out.stdout_text()))
    });
    let (contact, loadavg) = match load {
        Ok(v) => v,
        Err(e) => {
            res.reachable = Some(false);
            res.notes.push(e.to_string());
            return;
        }
    };
    updates.extend(contact);
    let fields: Vec<String> = loadavg
        .split_whitespace()
        .take(3)
        .map(str::to_owned)
        .collect();
    res.reachable = Some(true);
    res.load = (fields.len() == 3).then_some(fields);
    match session.run(&Remote::argv(&[
        "systemctl",
        "--all",
        "--full",
        "--no-legend",
    ])) {
        Ok(out) => {
            let units = parse_units(&out.stdout_text());
            let mut failed = units.failed;
            for (unit, mount_point) in units.fstab_dependent {
                if in_fstab(&session, &mount_point) {
                    failed.push(unit);
                }
            }
            res.failed_units = Some(failed);
            res.in_progress_units = units.in_progress;
        }
        Err(e) => res.notes.push(format!("cannot list units: {e}")),
    }
    systems(&session, res);
}

/// Connect (starting the master) and return the state updates of a successful
/// contact: the host key learned on first contact is pinned, the machine is up and
/// was pinged. Any SSH command of nixops goes through this first, so that a host
/// key is learned once and then enforced, as by `deploy`.
pub fn contact_updates(session: &SshSession, record: &ResourceRecord) -> Result<Updates, SshError> {
    session.connect()?;
    let mut updates = Updates::new();
    if matches!(session.host_keys(), HostKeys::Learn) {
        let keys = session.learned_host_keys()?;
        if !keys.is_empty() {
            updates.push((HOST_KEY_ATTR, Some(keys.join("\n"))));
        }
    }
    if !record.ssh_pinged() {
        updates.push(("sshPinged", Some("1".to_owned())));
    }
    if record.state() != ResourceState::Up {
        updates.push(("state", Some(ResourceState::Up.code().to_string())));
    }
    Ok(updates)
}

/// Whether the machine's `/etc/fstab` mounts something at `mount_point` (NixOps'
/// test for the built-in mounts systemd tries even when they are not configured).
fn in_fstab(session: &SshSession, mount_point: &str) -> bool {
    let script = format!(
        "cut -d' ' -f 2 /etc/fstab | grep -qxF -- {}",
        shell_quote(mount_point)
    );
    session
        .run_unchecked(&Remote::shell(script))
        .is_ok_and(|o| o.status.success())
}

/// Read where `/run/current-system` and `/run/booted-system` point, compare them
/// with the deployed system and with each other.
fn systems(session: &SshSession, res: &mut CheckResult) {
    let script = "for l in /run/current-system /run/booted-system; do \
                  readlink -e \"$l\" || echo; done";
    let out = match session.run(&Remote::shell(script)) {
        Ok(o) => o.stdout_text(),
        Err(e) => {
            res.notes
                .push(format!("cannot read the running system: {e}"));
            return;
        }
    };
    let mut lines = out.lines().map(str::trim);
    let mut next = || lines.next().filter(|l| !l.is_empty()).map(str::to_owned);
    res.current_system = next();
    res.booted_system = next();
    if let Some(deployed) = &res.deployed_system {
        if res.current_system.as_ref() != Some(deployed) {
            res.up_to_date = Some(false);
            res.notes.push(note::SYSTEM_CHANGED.to_owned());
        }
    }
    if let (Some(current), Some(booted)) = (&res.current_system, &res.booted_system) {
        if current != booted {
            res.notes.push(note::BOOTED_DIFFERS.to_owned());
        }
    }
}

/// Units of interest in `systemctl --all --full --no-legend` output.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnitStates {
    /// Units in state `failed`, and inactive mounts (systemd leaves failed mounts
    /// inactive).
    pub failed: Vec<String>,
    /// Units being started (`activating`).
    pub in_progress: Vec<String>,
    /// Inactive built-in mounts (`tmp.mount`, `home.mount`) with their mount
    /// point: failed only if `/etc/fstab` asks for that mount.
    pub fstab_dependent: Vec<(String, String)>,
}

/// Parse `systemctl --all --full --no-legend` output the way NixOps reads it: a
/// line `<unit> ... failed ...` is a failed unit, `<unit> ... activating ...` one in
/// progress, and `<name>.mount ... inactive ...` a failed mount, except the mounts
/// systemd tries on its own (`sys-*`, `dev-*`, `run-initramfs.mount`) and the
/// built-in `tmp.mount`/`home.mount` (see [`UnitStates::fstab_dependent`]).
/// Newer systemd marks failed units with a leading `●`, which is skipped.
pub fn parse_units(text: &str) -> UnitStates {
    let mut units = UnitStates::default();
    for line in text.lines() {
        let line = line
            .trim_start()
            .trim_start_matches(['●', '*'])
            .trim_start();
        let Some((unit, rest)) = line.split_once(' ') else {
            continue;
        };
        if unit.is_empty() {
            continue;
        }
        // NixOps' `^(unit) .* word .*$`: the word surrounded by spaces after the unit.
        let has = |word: &str| format!(" {rest}").contains(&format!(" {word} "));
        if has("failed") {
            units.failed.push(unit.to_owned());
        }
        if has("activating") {
            units.in_progress.push(unit.to_owned());
        }
        let Some(stem) = unit.strip_suffix(".mount") else {
            continue;
        };
        if stem.is_empty() || stem.contains('.') || !has("inactive") {
            continue;
        }
        match stem {
            "tmp" => units
                .fstab_dependent
                .push((unit.to_owned(), "/tmp".to_owned())),
            "home" => units
                .fstab_dependent
                .push((unit.to_owned(), "/home".to_owned())),
            "run-initramfs" => {}
            s if s.starts_with("sys-") || s.starts_with("dev-") => {}
            _ => units.failed.push(unit.to_owned()),
        }
    }
    units
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `systemctl --all --full --no-legend` of a NixOS 23.11 machine (abridged),
    /// with a failed service, a unit starting and mounts in every state.
    const NIXOS_UNITS: &str = "\
  dev-hugepages.mount                          loaded    inactive dead      Huge Pages File System
  home.mount                                   loaded    inactive dead      /home
  proc-sys-fs-binfmt_misc.mount                loaded    active   mounted   Arbitrary Executable File Formats File System
  sys-kernel-config.mount                      loaded    inactive dead      Kernel Configuration File System
  tmp.mount                                    loaded    inactive dead      /tmp
  data.mount                                   loaded    inactive dead      /data
  run-initramfs.mount                          loaded    inactive dead      /run/initramfs
● foo.service                                  loaded    failed   failed    Foo daemon
  nginx.service                                loaded    activating start start Nginx Web Server
  sshd.service                                 loaded    active   running   SSH Daemon
  failed-but-fine.service                      loaded    active   running   Restarts what failed
  systemd-tmpfiles-clean.timer                 loaded    active   waiting   Daily Cleanup of Temporary Directories
";

    #[test]
    fn parses_nixos_units() {
        let units = parse_units(NIXOS_UNITS);
        assert_eq!(units.failed, ["data.mount", "foo.service"]);
        assert_eq!(units.in_progress, ["nginx.service"]);
        assert_eq!(
            units.fstab_dependent,
            [
                ("home.mount".to_owned(), "/home".to_owned()),
                ("tmp.mount".to_owned(), "/tmp".to_owned())
            ]
        );
    }

    #[test]
    fn parses_mini_nixos_units() {
        // The format of the test hosts' systemctl.
        let units = parse_units(
            "sshd.service loaded active running SSH Daemon\n\
             foo.service loaded failed failed foo\n",
        );
        assert_eq!(units.failed, ["foo.service"]);
        assert!(units.in_progress.is_empty());
        assert_eq!(parse_units(""), UnitStates::default());
    }

    #[test]
    fn status_bits() {
        let mut r = CheckResult::default();
        assert_eq!(r.status(), 0, "unknown answers set no bit");
        r.exists = Some(true);
        r.up = Some(false);
        assert_eq!(r.status(), bit::NOT_UP);
        r.reachable = Some(false);
        r.failed_units = Some(vec![]);
        assert_eq!(r.status(), bit::NOT_UP | bit::UNREACHABLE);
        r.failed_units = Some(vec!["foo.service".into()]);
        r.up_to_date = Some(false);
        r.disks_ok = Some(false);
        r.exists = Some(false);
        assert_eq!(r.status(), 1 | 2 | 4 | 8 | 16 | 32);
    }
}
