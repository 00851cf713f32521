//! Small system helpers: running commands, finding and killing the processes of
//! a network namespace, probing TCP ports. Knows nothing of hosts or networks.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use nixops_core::exec::{Cmd, Output};

use crate::TestkitError;

/// Run `cmd`; a failure becomes a [`TestkitError::Exec`] described by `what`.
pub(crate) fn run(what: &str, cmd: Cmd) -> Result<Output, TestkitError> {
    cmd.output().map_err(|e| TestkitError::exec(what, e))
}

/// Whether a network interface of that name exists in our namespace.
pub(crate) fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Whether a network namespace of that name is registered.
pub(crate) fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Names of the registered network namespaces.
pub(crate) fn netns_list() -> Vec<String> {
    std::fs::read_dir("/run/netns")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Names of the network interfaces in our namespace.
pub(crate) fn link_list() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The (device, inode) identity of network namespace `ns`.
fn netns_id(ns: &str) -> Option<(u64, u64)> {
    let meta = std::fs::metadata(Path::new("/run/netns").join(ns)).ok()?;
    Some((meta.dev(), meta.ino()))
}

/// For each of `ids`, the live processes in that network namespace: one scan
/// of `/proc` (what `ip netns pids` does, for many namespaces at once).
fn pids_in(ids: &[(u64, u64)]) -> Vec<Vec<u32>> {
    let mut found = vec![Vec::new(); ids.len()];
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(meta) = std::fs::metadata(entry.path().join("ns/net")) else {
            continue;
        };
        if let Some(i) = ids.iter().position(|id| *id == (meta.dev(), meta.ino())) {
            if pid_alive(pid) {
                found[i].push(pid);
            }
        }
    }
    found
}

/// The live processes in network namespace `ns`.
pub(crate) fn netns_pids(ns: &str) -> Vec<u32> {
    match netns_id(ns) {
        Some(id) => pids_in(&[id]).pop().unwrap_or_default(),
        None => Vec::new(),
    }
}

/// SIGKILL every process in network namespace `ns`, until none is left.
pub(crate) fn kill_netns(ns: &str) {
    kill_netns_all(&[ns]);
}

/// SIGKILL every process in the given network namespaces, until none is left
/// (processes may fork while we kill, so this loops).
pub(crate) fn kill_netns_all(names: &[&str]) {
    let ids: Vec<(u64, u64)> = names.iter().filter_map(|ns| netns_id(ns)).collect();
    if ids.is_empty() {
        return;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids: Vec<u32> = pids_in(&ids).into_iter().flatten().collect();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        kill_pids(&pids);
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL the given pids; ones already gone are ignored.
pub(crate) fn kill_pids(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Cmd::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(|p| p.to_string()))
        .output_unchecked();
}

/// Whether `pid` is a live (not zombie) process.
pub(crate) fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state letter follows the parenthesised command name.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// The start time of `pid` in clock ticks since boot, to tell a pid from a
/// later process that reused it.
pub(crate) fn pid_start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    // Fields after the command name start at field 3 (state); starttime is field 22.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Wait until something accepts TCP connections on `addr`.
pub(crate) fn wait_tcp(addr: SocketAddr, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Read a pid from a pid file.
pub(crate) fn read_pid(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}
