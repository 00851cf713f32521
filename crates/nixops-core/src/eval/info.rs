//! Typed view of what `eval-machine-info.nix` reports as `info`: the network
//! attributes, each machine's deployment options and keys, the resources.
//!
//! It owns parsing and validation of that JSON (names, key specs). It never
//! runs Nix and never reads key files or runs key commands.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::EvalError;

/// A machine or resource name: `^[a-zA-Z0-9_\-][a-zA-Z0-9_\-\.]*$`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct MachineName(String);

impl MachineName {
    /// Validate `name`; the error is NixOps' `invalid resource name ‘<n>’`.
    pub fn new(name: &str) -> Result<Self, EvalError> {
        let mut chars = name.chars();
        let ok_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
        if ok_first && ok_rest {
            Ok(MachineName(name.to_owned()))
        } else {
            Err(EvalError::InvalidName {
                name: name.to_owned(),
            })
        }
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for MachineName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A secret string (a key's `text`). Debug and Display never show it.
#[derive(Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for writing it to its destination.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One `deployment.keys.<attr>` entry. Exactly one of `text`, `key_file` and
/// `key_command` is set (the glue checks it).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeySpec {
    /// File name in `dest_dir` (defaults to the attribute name).
    pub name: String,
    pub text: Option<Secret>,
    /// A local file, read when uploading; never copied to the Nix store.
    pub key_file: Option<String>,
    /// A local command whose stdout is the key.
    pub key_command: Option<Vec<String>>,
    pub dest_dir: String,
    pub user: String,
    pub group: String,
    pub permissions: String,
    /// `dest_dir/name`.
    pub path: String,
}

/// One `deployment.healthChecks` entry: a shell command run on the machine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct HealthCheck {
    pub name: String,
    pub command: String,
    /// Seconds the command may keep failing before the check fails.
    pub timeout: u64,
}

/// What one machine's `deployment.*` options say.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineInfo {
    pub target_env: String,
    pub target_host: String,
    pub target_port: u16,
    pub target_user: String,
    pub ssh_options: Vec<String>,
    /// Prefix of remote commands when `target_user` is not root.
    pub privilege_escalation_command: Vec<String>,
    pub always_activate: bool,
    pub has_fast_connection: bool,
    pub owners: Vec<String>,
    /// `deployment.healthChecks`: run after each activation.
    #[serde(default)]
    pub health_checks: Vec<HealthCheck>,
    /// Keyed by the attribute name under `deployment.keys`.
    pub keys: BTreeMap<String, KeySpec>,
    #[serde(rename = "provisionSSHKey")]
    pub provision_ssh_key: bool,
    pub nixos_release: Option<String>,
    #[serde(rename = "publicIPv4")]
    pub public_ipv4: Option<String>,
    /// `deployment.virtualbox` when targetEnv is "virtualbox", else `{}`.
    pub virtualbox: serde_json::Value,
    /// `deployment.libvirtd` when targetEnv is "libvirtd", else `{}`.
    pub libvirtd: serde_json::Value,
    /// `deployment.ec2` when targetEnv is "ec2", else `{}`.
    pub ec2: serde_json::Value,
}

/// The merged `network` attributes of all network files.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkAttrs {
    /// `network.description`; nixops shows `Unnamed NixOps network` when unset.
    pub description: Option<String>,
    /// `network.enableRollback`.
    #[serde(default)]
    pub enable_rollback: bool,
    /// Every other attribute (e.g. `storage`, `lock`), as evaluated.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

/// Everything nixops learns from one evaluation of the network.
#[derive(Clone, Debug, PartialEq)]
pub struct NetworkInfo {
    pub network: NetworkAttrs,
    pub machines: BTreeMap<MachineName, MachineInfo>,
    /// `resources.<type>.<name>`, passed through as evaluated.
    pub resources: BTreeMap<String, BTreeMap<MachineName, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RawInfo {
    /// Set (alone) when some machine or resource name is not acceptable.
    #[serde(default)]
    invalid_names: Vec<String>,
    #[serde(default)]
    network: NetworkAttrs,
    #[serde(default)]
    machines: BTreeMap<String, MachineInfo>,
    #[serde(default)]
    resources: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
}

impl NetworkInfo {
    /// Parse the JSON of `nix-instantiate --eval --json -A info`.
    pub(crate) fn parse(json: &[u8], cmd: &str) -> Result<Self, EvalError> {
        let raw: RawInfo = serde_json::from_slice(json).map_err(|source| EvalError::Json {
            cmd: cmd.to_owned(),
            source,
        })?;
        Self::from_raw(raw)
    }

    /// Validate what Nix reported (names, key specs).
    pub(crate) fn from_raw(raw: RawInfo) -> Result<Self, EvalError> {
        if let Some(name) = raw.invalid_names.into_iter().next() {
            return Err(EvalError::InvalidName { name });
        }
        let machines = raw
            .machines
            .into_iter()
            .map(|(n, m)| Ok((MachineName::new(&n)?, m)))
            .collect::<Result<_, EvalError>>()?;
        let resources = raw
            .resources
            .into_iter()
            .map(|(ty, rs)| {
                let rs = rs
                    .into_iter()
                    .map(|(n, v)| Ok((MachineName::new(&n)?, v)))
                    .collect::<Result<_, EvalError>>()?;
                Ok((ty, rs))
            })
            .collect::<Result<_, EvalError>>()?;
        Ok(NetworkInfo {
            network: raw.network,
            machines,
            resources,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_names() {
        for ok in ["a", "web-1", "_x", "-x", "db.example.org", "0"] {
            assert!(MachineName::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".x", "a b", "a/b", "ü", "a;b"] {
            let err = MachineName::new(bad).expect_err("invariant: invalid name");
            assert_eq!(err.to_string(), format!("invalid resource name ‘{bad}’"));
        }
    }

    #[test]
    fn secrets_are_redacted() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "<redacted> Secret(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
    }
}
