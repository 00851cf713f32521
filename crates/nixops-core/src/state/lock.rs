//! The per-deployment lock: `flock` on `<locks_dir>/<uuid>`.
//!
//! Owns cross-process exclusion of `deploy`, `destroy`, `rollback`, … on one
//! deployment, compatible with NixOps (same file, same `flock`). Unlike NixOps it
//! writes the holder's pid and description into the file after locking, so a
//! waiting process can say who holds it. It never prints: waiting is reported
//! through a callback.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use super::error::{LockHolder, StateError};

/// What to do when another process holds the lock.
pub enum LockWait<'a> {
    /// Fail with `StateError::Locked` naming the holder.
    NoWait,
    /// Call the function once with the holder, then block until the lock is free.
    Wait(&'a mut dyn FnMut(&LockHolder)),
}

/// A held deployment lock; released when dropped.
#[derive(Debug)]
pub struct DeploymentLock {
    file: File,
    path: PathBuf,
}

impl DeploymentLock {
    /// Take the exclusive lock of deployment `uuid` in `locks_dir` (created with mode
    /// 0700 if missing). `name` is used in the error message (deployment name or UUID),
    /// `description` is recorded for others to see, e.g. `nixops deploy`.
    pub fn acquire(
        locks_dir: &Path,
        uuid: &str,
        name: &str,
        description: &str,
        wait: LockWait<'_>,
    ) -> Result<DeploymentLock, StateError> {
        if !locks_dir.is_dir() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(locks_dir)
                .map_err(|source| StateError::Io {
                    action: "create lock directory",
                    path: locks_dir.to_path_buf(),
                    source,
                })?;
        }
        let path = locks_dir.join(uuid);
        let io_err = |action: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Io {
                action,
                path,
                source,
            }
        };
        // Not truncated on open: the current holder's record must survive for waiters.
        // Rust opens files close-on-exec, so children never inherit the lock.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io_err("open lock file", &path))?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(io_err("lock", &path))? {
            let holder = read_holder(&mut file);
            match wait {
                LockWait::NoWait => {
                    return Err(StateError::Locked {
                        name: name.to_string(),
                        holder,
                    })
                }
                LockWait::Wait(on_wait) => {
                    on_wait(&holder);
                    while !flock(&file, libc::LOCK_EX).map_err(io_err("lock", &path))? {}
                }
            }
        }
        file.set_len(0).map_err(io_err("write lock file", &path))?;
        file.seek(SeekFrom::Start(0))
            .map_err(io_err("write lock file", &path))?;
        writeln!(file, "{}\n{}", std::process::id(), description)
            .map_err(io_err("write lock file", &path))?;
        Ok(DeploymentLock { file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DeploymentLock {
    fn drop(&mut self) {
        // Forget the holder before the close releases the lock; a failure only leaves
        // a stale description behind, which the next holder overwrites.
        let _ = self.file.set_len(0);
    }
}

/// Read `pid\ndescription\n` as written by `acquire`; an empty or foreign file (NixOps
/// writes nothing) gives an unknown holder.
fn read_holder(file: &mut File) -> LockHolder {
    let mut text = String::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.take(4096).read_to_string(&mut text);
    let mut lines = text.lines();
    let pid = lines.next().and_then(|l| l.trim().parse().ok());
    let description = lines.next().unwrap_or("").to_string();
    LockHolder { pid, description }
}

/// `flock(2)`: `Ok(true)` when locked, `Ok(false)` when busy (`LOCK_NB`) or
/// interrupted (retry), `Err` otherwise.
#[allow(unsafe_code)]
fn flock(file: &File, op: libc::c_int) -> io::Result<bool> {
    // SAFETY: flock only reads the descriptor number, which `file` keeps open for the
    // duration of the call; no memory is passed.
    let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EWOULDBLOCK) | Some(libc::EINTR) => Ok(false),
        _ => Err(err),
    }
}
