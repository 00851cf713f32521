//! Where the state file lives.
//!
//! Owns the NixOps rules for the default state path (`$NIXOPS_STATE`,
//! `$CHARON_STATE`, `~/.nixops/deployments.nixops`), the `.nixops`/`.charon`
//! extension check, the preparation of `~/.nixops` (created 0700, or renamed from
//! `~/.charon`) and the lock directory's location. It reads no environment itself:
//! the caller passes the values in, so resolution is pure and testable.

use std::ffi::OsString;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use super::error::StateError;

/// The environment inputs of state path resolution.
#[derive(Debug, Clone, Default)]
pub struct StateEnv {
    /// `$HOME` (NixOps uses `""` when unset).
    pub home: Option<OsString>,
    /// `$NIXOPS_STATE`.
    pub nixops_state: Option<OsString>,
    /// `$CHARON_STATE` (the old name).
    pub charon_state: Option<OsString>,
}

/// `$HOME/.nixops` (`/.nixops` when HOME is unset, as in NixOps).
pub fn nixops_home(home: Option<&OsString>) -> PathBuf {
    let mut p = home.cloned().unwrap_or_default();
    p.push("/.nixops");
    PathBuf::from(p)
}

/// The directory of deployment lock files: `$HOME/.nixops/locks` (always under HOME,
/// even when the state file is elsewhere).
pub fn locks_dir(home: Option<&OsString>) -> PathBuf {
    nixops_home(home).join("locks")
}

/// The state file to use: `-s` if given, else `$NIXOPS_STATE`, else `$CHARON_STATE`,
/// else `$HOME/.nixops/deployments.nixops`; then the extension check.
pub fn resolve_state_path(env: &StateEnv, cli: Option<&Path>) -> Result<PathBuf, StateError> {
    let path = match cli {
        Some(p) => p.to_path_buf(),
        None => match (&env.nixops_state, &env.charon_state) {
            (Some(p), _) | (None, Some(p)) => PathBuf::from(p),
            (None, None) => nixops_home(env.home.as_ref()).join("deployments.nixops"),
        },
    };
    check_extension(&path)?;
    Ok(path)
}

/// Refuse a state path whose extension is neither `.nixops` nor `.charon`.
pub fn check_extension(path: &Path) -> Result<(), StateError> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("nixops" | "charon") => Ok(()),
        _ => Err(StateError::BadExtension {
            path: path.to_path_buf(),
        }),
    }
}

/// What `prepare_nixops_home` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HomePrepared {
    /// `~/.nixops` existed.
    Existing,
    /// `~/.nixops` was created with mode 0700.
    Created(PathBuf),
    /// `~/.charon` was renamed to `~/.nixops` (the CLI prints
    /// `renaming ‘<from>’ to ‘<to>’...`), and `deployments.charon` inside it to
    /// `deployments.nixops`.
    RenamedFromCharon {
        /// The old directory.
        from: PathBuf,
        /// The new directory.
        to: PathBuf,
    },
}

/// Make sure `$HOME/.nixops` exists, as NixOps does on every run: rename an old
/// `~/.charon` if there is one, else create the directory (and missing parents) with
/// mode 0700.
pub fn prepare_nixops_home(home: Option<&OsString>) -> Result<HomePrepared, StateError> {
    let dir = nixops_home(home);
    if dir.exists() {
        return Ok(HomePrepared::Existing);
    }
    let mut old = home.cloned().unwrap_or_default();
    old.push("/.charon");
    let old = PathBuf::from(old);
    if old.exists() {
        fs::rename(&old, &dir).map_err(|source| StateError::Io {
            action: "rename",
            path: old.clone(),
            source,
        })?;
        let charon_db = dir.join("deployments.charon");
        if charon_db.exists() {
            let nixops_db = dir.join("deployments.nixops");
            fs::rename(&charon_db, &nixops_db).map_err(|source| StateError::Io {
                action: "rename",
                path: charon_db.clone(),
                source,
            })?;
        }
        return Ok(HomePrepared::RenamedFromCharon { from: old, to: dir });
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(|source| StateError::Io {
            action: "create directory",
            path: dir.clone(),
            source,
        })?;
    Ok(HomePrepared::Created(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(home: &str, n: Option<&str>, c: Option<&str>) -> StateEnv {
        StateEnv {
            home: Some(home.into()),
            nixops_state: n.map(Into::into),
            charon_state: c.map(Into::into),
        }
    }

    #[test]
    fn precedence_is_cli_nixops_charon_home() {
        let e = env("/h", Some("/n.nixops"), Some("/c.charon"));
        assert_eq!(
            resolve_state_path(&e, Some(Path::new("x.nixops"))).expect("ok"),
            PathBuf::from("x.nixops")
        );
        assert_eq!(
            resolve_state_path(&e, None).expect("ok"),
            PathBuf::from("/n.nixops")
        );
        let e = env("/h", None, Some("/c.charon"));
        assert_eq!(
            resolve_state_path(&e, None).expect("ok"),
            PathBuf::from("/c.charon")
        );
        let e = env("/h", None, None);
        assert_eq!(
            resolve_state_path(&e, None).expect("ok"),
            PathBuf::from("/h/.nixops/deployments.nixops")
        );
        assert_eq!(
            locks_dir(e.home.as_ref()),
            PathBuf::from("/h/.nixops/locks")
        );
    }

    #[test]
    fn extension_is_checked() {
        let err = resolve_state_path(&StateEnv::default(), Some(Path::new("/tmp/x.db")))
            .expect_err("bad extension");
        assert_eq!(
            err.to_string(),
            "state file ‘/tmp/x.db’ should have extension ‘.nixops’"
        );
        assert!(check_extension(Path::new("/x/.nixops")).is_err());
    }

    #[test]
    fn home_is_created_0700_or_renamed() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let home: OsString = tmp.path().join("home").into();
        let made = prepare_nixops_home(Some(&home)).expect("create");
        let dir = nixops_home(Some(&home));
        assert_eq!(made, HomePrepared::Created(dir.clone()));
        let mode = fs::metadata(&dir).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            prepare_nixops_home(Some(&home)).expect("again"),
            HomePrepared::Existing
        );

        let home2: OsString = tmp.path().join("home2").into();
        let charon = tmp.path().join("home2/.charon");
        fs::create_dir_all(&charon).expect("mkdir");
        fs::write(charon.join("deployments.charon"), b"x").expect("write");
        let made = prepare_nixops_home(Some(&home2)).expect("rename");
        assert!(matches!(made, HomePrepared::RenamedFromCharon { .. }));
        assert!(tmp.path().join("home2/.nixops/deployments.nixops").exists());
    }
}
