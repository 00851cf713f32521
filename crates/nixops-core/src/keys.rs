//! Uploading `deployment.keys` to a machine (`send-keys`, every activation, after a
//! reboot).
//!
//! Key contents travel over SSH stdin only: never on a command line, never through
//! the Nix store, never into a log. Each key is written to a temporary file in its
//! destination directory with its final owner and mode, then renamed into place.
//! Keys that were sent before but are no longer declared are removed.

use std::collections::BTreeMap;

use crate::eval::KeySpec;
use crate::exec::{shell_quote, Cmd, ExecError};
use crate::ssh::{Remote, SshError, SshSession};
use crate::state::ResourceRecord;

/// The state attribute holding a machine's keys as of its last deploy.
pub const KEYS_ATTR: &str = "keys";

/// The remote snippet that ends every key upload, even of no keys: `/run/keys`
/// exists and `/run/keys/done` tells the machine's units that keys are there.
pub const KEYS_DONE: &str = "mkdir -m 0750 -p /run/keys; \
    chown root:keys /run/keys 2>/dev/null || true; touch /run/keys/done";

/// What to do with a key whose user or group does not exist on the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MissingOwner {
    /// Upload it owned by root; the activation that follows creates the user and
    /// hands the file over (what a deploy does: users may be new in it).
    LeaveToActivation,
    /// Refuse with [`KeyError::Upload`] (`send-keys`, after a reboot: the system is
    /// active, so a missing user is a mistake in the key's definition).
    Fail,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key ‘{key}’ of machine ‘{machine}’ has a name that is not a file name: ‘{name}’")]
    BadName {
        machine: String,
        key: String,
        name: String,
    },
    #[error("Neither 'text', 'keyFile', nor 'keyCommand' options were set for key '{key}' of machine ‘{machine}’.")]
    NoSource { machine: String, key: String },
    #[error("cannot read the file of key ‘{key}’ of machine ‘{machine}’ (‘{file}’)")]
    ReadFile {
        machine: String,
        key: String,
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the command generating key ‘{key}’ of machine ‘{machine}’ failed")]
    Command {
        machine: String,
        key: String,
        #[source]
        source: ExecError,
    },
    #[error("cannot upload key ‘{key}’ to machine ‘{machine}’: {reason}")]
    Upload {
        machine: String,
        key: String,
        reason: String,
    },
    #[error("the recorded keys of machine ‘{machine}’ cannot be read")]
    Recorded {
        machine: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Ssh(#[from] SshError),
}

/// The keys recorded in the state for `record` (attribute `keys`, written by
/// deploy), by attribute name.
pub fn recorded(record: &ResourceRecord) -> Result<BTreeMap<String, KeySpec>, KeyError> {
    match record.attr(KEYS_ATTR) {
        None => Ok(BTreeMap::new()),
        Some(text) => serde_json::from_str(text).map_err(|source| KeyError::Recorded {
            machine: record.name.clone(),
            source,
        }),
    }
}

/// Exit codes of the upload script that mean a known problem.
const NO_SUCH_USER: i32 = 71;
const NO_SUCH_GROUP: i32 = 72;

/// The local contents of one key.
fn contents(machine: &str, attr: &str, key: &KeySpec) -> Result<Vec<u8>, KeyError> {
    if let Some(text) = &key.text {
        return Ok(text.expose().as_bytes().to_vec());
    }
    if let Some(file) = &key.key_file {
        return std::fs::read(file).map_err(|source| KeyError::ReadFile {
            machine: machine.to_owned(),
            key: attr.to_owned(),
            file: file.clone(),
            source,
        });
    }
    if let Some(argv) = &key.key_command {
        if let Some((program, args)) = argv.split_first() {
            let out =
                Cmd::new(program)
                    .args(args)
                    .output()
                    .map_err(|source| KeyError::Command {
                        machine: machine.to_owned(),
                        key: attr.to_owned(),
                        source,
                    })?;
            return Ok(out.stdout);
        }
    }
    Err(KeyError::NoSource {
        machine: machine.to_owned(),
        key: attr.to_owned(),
    })
}

/// The remote script that installs stdin as `dest_dir/name`.
pub fn upload_script(key: &KeySpec, missing_owner: MissingOwner) -> String {
    let dir = key.dest_dir.trim_end_matches('/');
    let dir = if dir.is_empty() { "/" } else { dir };
    let q = shell_quote;
    let file = format!("{dir}/{}", key.name);
    let tmp = format!("{dir}/.{}.tmp", key.name);
    // Whether the owner can be set now; otherwise refuse, or keep the file
    // root's until activation creates the user and chowns it.
    let (owner_check, chown) = match missing_owner {
        MissingOwner::Fail => (
            format!(
                "getent passwd {user} >/dev/null || exit {NO_SUCH_USER}; \
                 getent group {group} >/dev/null || exit {NO_SUCH_GROUP}; ",
                user = q(&key.user),
                group = q(&key.group),
            ),
            format!(
                "chown {} {}; ",
                q(&format!("{}:{}", key.user, key.group)),
                q(&tmp)
            ),
        ),
        MissingOwner::LeaveToActivation => (
            String::new(),
            format!(
                "if getent passwd {user} >/dev/null && getent group {group} >/dev/null; \
                 then chown {owner} {tmp}; fi; ",
                user = q(&key.user),
                group = q(&key.group),
                owner = q(&format!("{}:{}", key.user, key.group)),
                tmp = q(&tmp),
            ),
        ),
    };
    format!(
        "set -e; {owner_check}\
         if ! test -d {dir}; then mkdir -m 0750 -p {dir}; chown root:keys {dir} 2>/dev/null || true; fi; \
         umask 077; rm -f {tmp}; cat > {tmp}; \
         {chown}chmod {perm} {tmp}; mv -f {tmp} {file}",
        dir = q(dir),
        tmp = q(&tmp),
        file = q(&file),
        perm = q(&key.permissions),
    )
}

/// Send every key in `keys` to the machine, remove the files of keys in `previous`
/// that are gone, and mark `/run/keys/done`. `on_key` is told each key's name
/// before it is sent. The first key that fails stops the upload: its error names
/// the key and the machine.
pub fn send_keys(
    session: &SshSession,
    keys: &BTreeMap<String, KeySpec>,
    previous: &BTreeMap<String, KeySpec>,
    missing_owner: MissingOwner,
    on_key: &mut dyn FnMut(&str, &KeySpec),
) -> Result<(), KeyError> {
    let machine = session.machine();
    for (attr, key) in keys {
        if key.name.is_empty() || key.name.contains('/') || key.name == "." || key.name == ".." {
            return Err(KeyError::BadName {
                machine: machine.to_owned(),
                key: attr.clone(),
                name: key.name.clone(),
            });
        }
    }
    for (attr, key) in keys {
        on_key(attr, key);
        let bytes = contents(machine, attr, key)?;
        let out = session
            .run_unchecked_with_stdin(&Remote::shell(upload_script(key, missing_owner)), bytes)?;
        let reason = match out.code() {
            0 => continue,
            NO_SUCH_USER => format!("user ‘{}’ does not exist on the machine", key.user),
            NO_SUCH_GROUP => format!("group ‘{}’ does not exist on the machine", key.group),
            code => {
                let stderr = String::from_utf8_lossy(&out.stderr);
                let last = stderr.lines().rev().find(|l| !l.trim().is_empty());
                format!(
                    "exit code {code}{}",
                    last.map(|l| format!(": {}", l.trim())).unwrap_or_default()
                )
            }
        };
        return Err(KeyError::Upload {
            machine: machine.to_owned(),
            key: attr.clone(),
            reason,
        });
    }
    let mut script = String::from("set -e; ");
    for key in previous.values() {
        let still = keys.values().any(|k| k.path() == key.path());
        if !still {
            script.push_str(&format!("rm -f {}; ", shell_quote(&key.path())));
        }
    }
    script.push_str(KEYS_DONE);
    session.run(&Remote::shell(script))?;
    Ok(())
}

/// Where a key lands on the machine.
trait KeyPath {
    fn path(&self) -> String;
}

impl KeyPath for KeySpec {
    fn path(&self) -> String {
        format!("{}/{}", self.dest_dir.trim_end_matches('/'), self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> KeySpec {
        KeySpec {
            name: name.to_owned(),
            text: None,
            key_file: None,
            key_command: None,
            dest_dir: "/run/keys/".to_owned(),
            user: "root".to_owned(),
            group: "root".to_owned(),
            permissions: "0600".to_owned(),
            path: format!("/run/keys/{name}"),
        }
    }

    #[test]
    fn upload_script_quotes_every_name() {
        let s = upload_script(&key("a b; $(x)"), MissingOwner::Fail);
        assert!(s.contains("cat > '/run/keys/.a b; $(x).tmp'"), "{s}");
        assert!(
            s.contains("mv -f '/run/keys/.a b; $(x).tmp' '/run/keys/a b; $(x)'"),
            "{s}"
        );
        assert!(!s.contains("keys//"), "{s}");
    }

    #[test]
    fn missing_owners_fail_or_wait_for_activation() {
        let strict = upload_script(&key("k"), MissingOwner::Fail);
        assert!(strict.contains("|| exit 71"), "{strict}");
        let lenient = upload_script(&key("k"), MissingOwner::LeaveToActivation);
        assert!(!lenient.contains("exit 71"), "{lenient}");
        assert!(lenient.contains("then chown root:root"), "{lenient}");
    }

    #[test]
    fn key_command_output_is_the_content() {
        let mut k = key("k");
        k.key_command = Some(vec!["printf".into(), "s3cret".into()]);
        assert_eq!(contents("m", "k", &k).expect("printf runs"), b"s3cret");
        k.key_command = Some(vec!["false".into()]);
        let err = contents("m", "k", &k).expect_err("false fails");
        assert!(err.to_string().contains("key ‘k’ of machine ‘m’"), "{err}");
    }
}
