//! Network generations (`network.enableRollback`): a Nix profile on the deploying
//! machine whose generations are the `nixops-machines` directories of past builds.
//!
//! The profile lives at `/nix/var/nix/profiles/per-user/<user>/nixops/<uuid>`, as
//! in NixOps, so generations made by NixOps remain usable.

use std::path::{Path, PathBuf};

use crate::exec::{Cmd, ExecError};

/// Where profiles are kept unless overridden (tests point this elsewhere).
pub const PROFILES_DIR: &str = "/nix/var/nix/profiles/per-user";

#[derive(Debug, thiserror::Error)]
pub enum GenerationError {
    #[error("rollback is not enabled for this network; please set ‘network.enableRollback’ to ‘true’ and redeploy")]
    NotEnabled,
    #[error("cannot update profile ‘{}’", profile.display())]
    Update {
        profile: PathBuf,
        #[source]
        source: ExecError,
    },
    #[error("nix-env --{action} failed")]
    NixEnv {
        action: &'static str,
        #[source]
        source: ExecError,
    },
    #[error("cannot read profile ‘{}’", profile.display())]
    Read {
        profile: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The rollback profile of one deployment.
#[derive(Clone, Debug)]
pub struct Profile {
    path: PathBuf,
}

/// The name of the user running us, as Python's `getpass.getuser()` finds it:
/// `LOGNAME`, `USER`, `LNAME`, `USERNAME`, else the password database.
pub fn user_name() -> String {
    for var in ["LOGNAME", "USER", "LNAME", "USERNAME"] {
        if let Ok(v) = std::env::var(var) {
            if !v.is_empty() {
                return v;
            }
        }
    }
    let uid = current_uid();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| {
            passwd.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse() == Ok(uid)).then(|| name.to_owned())
            })
        })
        // No entry: the numeric uid is still a stable path component.
        .unwrap_or_else(|| uid.to_string())
}

fn current_uid() -> u32 {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .unwrap_or(0)
}

impl Profile {
    /// The profile of deployment `uuid` under `profiles_dir` (normally [`PROFILES_DIR`]).
    pub fn new(profiles_dir: &Path, user: &str, uuid: &str) -> Self {
        Profile {
            path: profiles_dir.join(user).join("nixops").join(uuid),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Add a generation pointing at `configs` (a `nixops-machines` directory).
    pub fn set(&self, configs: &Path) -> Result<(), GenerationError> {
        let update = |source| GenerationError::Update {
            profile: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| {
                update(ExecError::Spawn {
                    cmd: format!("mkdir -p {}", dir.display()),
                    source: e,
                })
            })?;
        }
        self.set_cmd(configs).output().map_err(update)?;
        Ok(())
    }

    pub fn set_cmd(&self, configs: &Path) -> Cmd {
        Cmd::new("nix-env")
            .arg("-p")
            .arg(&self.path)
            .arg("--set")
            .arg(configs)
    }

    pub fn list_cmd(&self) -> Cmd {
        Cmd::new("nix-env")
            .arg("-p")
            .arg(&self.path)
            .arg("--list-generations")
    }

    pub fn switch_cmd(&self, generation: u32) -> Cmd {
        Cmd::new("nix-env")
            .arg("-p")
            .arg(&self.path)
            .arg("--switch-generation")
            .arg(generation.to_string())
    }

    pub fn delete_cmd(&self, generation: u32) -> Cmd {
        Cmd::new("nix-env")
            .arg("-p")
            .arg(&self.path)
            .arg("--delete-generations")
            .arg(generation.to_string())
    }

    /// Switch to `generation` and return the `nixops-machines` directory it holds.
    pub fn switch(&self, generation: u32) -> Result<PathBuf, GenerationError> {
        self.switch_cmd(generation)
            .output()
            .map_err(|source| GenerationError::NixEnv {
                action: "switch-generation",
                source,
            })?;
        self.current()
    }

    pub fn delete(&self, generation: u32) -> Result<(), GenerationError> {
        self.delete_cmd(generation)
            .output()
            .map_err(|source| GenerationError::NixEnv {
                action: "delete-generations",
                source,
            })?;
        Ok(())
    }

    /// The directory the profile points at now.
    pub fn current(&self) -> Result<PathBuf, GenerationError> {
        std::fs::canonicalize(&self.path).map_err(|source| GenerationError::Read {
            profile: self.path.clone(),
            source,
        })
    }

    /// Remove the profile and all its `<profile>-N-link` generations.
    pub fn remove_all(&self) -> std::io::Result<()> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let name = name.to_string_lossy();
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let is_ours = file == name
                || file
                    .strip_prefix(&*name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .and_then(|rest| rest.strip_suffix("-link"))
                    .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
            if is_ours && entry.file_type()?.is_symlink() {
                std::fs::remove_file(entry.path())?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_have_nixops_argv() {
        let p = Profile::new(Path::new("/nix/var/nix/profiles/per-user"), "alice", "u-1");
        assert_eq!(
            p.switch_cmd(3).to_string(),
            "nix-env -p /nix/var/nix/profiles/per-user/alice/nixops/u-1 --switch-generation 3"
        );
        assert_eq!(
            p.list_cmd().to_string(),
            "nix-env -p /nix/var/nix/profiles/per-user/alice/nixops/u-1 --list-generations"
        );
    }

    #[test]
    fn remove_all_removes_only_this_profiles_links() {
        let dir = tempfile::tempdir().expect("invariant: temp dir");
        let p = Profile::new(dir.path(), "bob", "abc");
        let d = dir.path().join("bob/nixops");
        std::fs::create_dir_all(&d).expect("invariant: mkdir");
        for name in ["abc", "abc-1-link", "abc-12-link", "abcd", "abc-x-link"] {
            std::os::unix::fs::symlink("/nonexistent", d.join(name)).expect("invariant: symlink");
        }
        p.remove_all().expect("invariant: removal works");
        let mut left: Vec<_> = std::fs::read_dir(&d)
            .expect("invariant: dir exists")
            .map(|e| {
                e.expect("invariant: entry")
                    .file_name()
                    .into_string()
                    .expect("utf8")
            })
            .collect();
        left.sort();
        assert_eq!(left, ["abc-x-link", "abcd"]);
    }
}
