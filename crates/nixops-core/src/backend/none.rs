//! The `none` backend: machines that already exist and are reached over SSH.
//!
//! Creating one only records it: its target host, and an SSH key pair that nixops
//! installs for root through the physical network expression, so later deploys
//! don't depend on the user's SSH setup. Destroying one only forgets it.

use std::path::Path;

use crate::exec::{Cmd, ExecError};

/// State attributes of `none` machines, as NixOps names them.
pub mod attr {
    pub const PRIVATE_KEY: &str = "none.sshPrivateKey";
    pub const PUBLIC_KEY: &str = "none.sshPublicKey";
    pub const PUBLIC_KEY_DEPLOYED: &str = "none.sshPublicKeyDeployed";
}

/// A freshly generated SSH key pair.
pub struct KeyPair {
    pub private: String,
    pub public: String,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

/// Generate an ed25519 key pair with `comment`, using `dir` for the key files.
pub fn generate_key_pair(dir: &Path, comment: &str) -> Result<KeyPair, ExecError> {
    let file = dir.join("id_ed25519");
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(file.with_extension("pub"));
    Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
        .arg(&file)
        .output()?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|source| ExecError::Spawn {
            cmd: format!("read {}", p.display()),
            source,
        })
    };
    let pair = KeyPair {
        private: read(&file)?,
        public: read(&file.with_extension("pub"))?.trim().to_owned(),
    };
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_file(file.with_extension("pub"));
    Ok(pair)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_an_ed25519_pair_with_the_comment() {
        let dir = tempfile::tempdir().expect("invariant: temp dir");
        let pair = generate_key_pair(dir.path(), "NixOps client key for web1")
            .expect("ssh-keygen is installed");
        assert!(pair.public.starts_with("ssh-ed25519 "));
        assert!(pair.public.ends_with(" NixOps client key for web1"));
        assert!(pair.private.contains("BEGIN OPENSSH PRIVATE KEY"));
        assert!(!format!("{pair:?}").contains("PRIVATE"));
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }
}
