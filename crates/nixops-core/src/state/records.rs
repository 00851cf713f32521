//! In-memory copies of deployments and resources as stored, with typed accessors.
//!
//! Owns the NixOps value encoding (`attr_property`): a missing row means the
//! default, ints are decimal text, bools are `"1"`, JSON attributes are written the
//! way Python's `json.dumps` writes them, and writing a value equal to its default
//! deletes the row. It holds raw strings exactly as stored and never touches the
//! database itself (see `StateFile` for that).

use std::collections::BTreeMap;

use super::error::StateError;
use super::pyjson;

/// Deployment attribute names (`DeploymentAttrs.name`).
pub mod depl_attr {
    /// Symbolic name.
    pub const NAME: &str = "name";
    /// JSON list of network files.
    pub const NIX_EXPRS: &str = "nixExprs";
    /// JSON list of persistent `-I` entries.
    pub const NIX_PATH: &str = "nixPath";
    /// JSON object name → Nix expression text.
    pub const ARGS: &str = "args";
    /// `network.description`.
    pub const DESCRIPTION: &str = "description";
    /// Store path of the last built machines directory.
    pub const CONFIGS_PATH: &str = "configsPath";
    /// `network.enableRollback`.
    pub const ROLLBACK_ENABLED: &str = "rollbackEnabled";
}

/// The description shown when a network has none.
pub const DEFAULT_DESCRIPTION: &str = "Unnamed NixOps network";

/// One deployment: its UUID, every `DeploymentAttrs` row and its resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentRecord {
    /// `Deployments.uuid`.
    pub uuid: String,
    /// Raw `DeploymentAttrs` values by name.
    pub attrs: BTreeMap<String, String>,
    /// Resources ordered by id.
    pub resources: Vec<ResourceRecord>,
}

/// One resource: a `Resources` row and its `ResourceAttrs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceRecord {
    /// `Resources.id` (referenced as `ResourceAttrs.machine`).
    pub id: i64,
    /// `Resources.name`.
    pub name: String,
    /// `Resources.type`, e.g. `none`, `virtualbox`.
    pub type_: String,
    /// Raw `ResourceAttrs` values by name.
    pub attrs: BTreeMap<String, String>,
}

/// Resource life-cycle state (`state` attribute), numbered as in NixOps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ResourceState {
    /// 0
    Unknown,
    /// 1
    Missing,
    /// 2
    Starting,
    /// 3
    Up,
    /// 4
    Stopping,
    /// 5
    Stopped,
    /// 6
    Unreachable,
    /// 7
    Rescue,
}

impl ResourceState {
    /// The default `state` of a resource of type `type_` (`Missing` for
    /// virtualbox, ec2, ssh-keypair and command-output, else `Unknown`).
    pub fn default_for(type_: &str) -> ResourceState {
        if MISSING_BY_DEFAULT.contains(&type_) {
            ResourceState::Missing
        } else {
            ResourceState::Unknown
        }
    }

    /// The stored number.
    pub fn code(self) -> i64 {
        match self {
            Self::Unknown => 0,
            Self::Missing => 1,
            Self::Starting => 2,
            Self::Up => 3,
            Self::Stopping => 4,
            Self::Stopped => 5,
            Self::Unreachable => 6,
            Self::Rescue => 7,
        }
    }

    /// The state for a stored number; anything out of range is `Unknown`.
    pub fn from_code(code: i64) -> Self {
        match code {
            1 => Self::Missing,
            2 => Self::Starting,
            3 => Self::Up,
            4 => Self::Stopping,
            5 => Self::Stopped,
            6 => Self::Unreachable,
            7 => Self::Rescue,
            _ => Self::Unknown,
        }
    }

    /// The name NixOps shows in `info`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "Unknown",
            Self::Missing => "Missing",
            Self::Starting => "Starting",
            Self::Up => "Up",
            Self::Stopping => "Stopping",
            Self::Stopped => "Stopped",
            Self::Unreachable => "Unreachable",
            Self::Rescue => "Rescue",
        }
    }
}

impl std::fmt::Display for ResourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A typed attribute value to store, encoded the way NixOps encodes it.
#[derive(Debug, Clone, PartialEq)]
pub enum AttrValue {
    /// No value (Python `None`): the row is deleted.
    Unset,
    /// Stored as is.
    Str(String),
    /// Stored as decimal text.
    Int(i64),
    /// Stored as `"1"` / `"0"`.
    Bool(bool),
    /// Stored as Python `json.dumps` text.
    Json(serde_json::Value),
}

impl AttrValue {
    /// The stored text of this value, `None` for `Unset`.
    pub fn encode(&self) -> Option<String> {
        match self {
            Self::Unset => None,
            Self::Str(s) => Some(s.clone()),
            Self::Int(i) => Some(i.to_string()),
            Self::Bool(b) => Some(if *b { "1" } else { "0" }.to_string()),
            Self::Json(v) => Some(pyjson::dumps(v)),
        }
    }

    /// What to write for this value given the property's default: `None` (delete the
    /// row) when it equals the default or is `Unset`, else the stored text. Pass the
    /// result to `set_deployment_attrs` / `set_resource_attrs`.
    pub fn encode_against(&self, default: &AttrValue) -> Option<String> {
        if self == default {
            None
        } else {
            self.encode()
        }
    }

    /// A JSON list of strings.
    pub fn str_list(items: &[String]) -> Self {
        Self::Json(serde_json::Value::Array(
            items
                .iter()
                .map(|s| serde_json::Value::String(s.clone()))
                .collect(),
        ))
    }

    /// A JSON object of strings (keys sorted).
    pub fn str_map(map: &BTreeMap<String, String>) -> Self {
        Self::Json(serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        ))
    }
}

/// Decode a stored int; `None` when absent or not a number.
fn parse_int(value: Option<&String>) -> Option<i64> {
    value.and_then(|s| s.trim().parse().ok())
}

/// Decode a stored bool the way `attr_property(type=bool)` does: `"1"` is true.
fn parse_bool(value: Option<&String>) -> bool {
    value.is_some_and(|s| s == "1")
}

fn parse_json<T: serde::de::DeserializeOwned>(
    owner: impl FnOnce() -> String,
    attr: &str,
    value: Option<&String>,
) -> Result<Option<T>, StateError> {
    match value {
        None => Ok(None),
        Some(text) => {
            serde_json::from_str(text)
                .map(Some)
                .map_err(|source| StateError::BadJsonAttr {
                    owner: owner(),
                    attr: attr.to_string(),
                    source,
                })
        }
    }
}

impl DeploymentRecord {
    /// A raw attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// The symbolic name, if set.
    pub fn name(&self) -> Option<&str> {
        self.attr(depl_attr::NAME)
    }

    /// The name, or the UUID when there is none (for messages).
    pub fn name_or_uuid(&self) -> &str {
        self.name().unwrap_or(&self.uuid)
    }

    /// `network.description`, default `Unnamed NixOps network`.
    pub fn description(&self) -> &str {
        self.attr(depl_attr::DESCRIPTION)
            .unwrap_or(DEFAULT_DESCRIPTION)
    }

    /// The network files (`nixExprs`), default empty.
    pub fn nix_exprs(&self) -> Result<Vec<String>, StateError> {
        self.json_attr(depl_attr::NIX_EXPRS)
            .map(Option::unwrap_or_default)
    }

    /// The persistent `-I` entries (`nixPath`), default empty.
    pub fn nix_path(&self) -> Result<Vec<String>, StateError> {
        self.json_attr(depl_attr::NIX_PATH)
            .map(Option::unwrap_or_default)
    }

    /// The `set-args` arguments: name → Nix expression text, default empty.
    pub fn args(&self) -> Result<BTreeMap<String, String>, StateError> {
        self.json_attr(depl_attr::ARGS)
            .map(Option::unwrap_or_default)
    }

    /// Store path of the last built machines directory (may be `""`).
    pub fn configs_path(&self) -> Option<&str> {
        self.attr(depl_attr::CONFIGS_PATH)
    }

    /// `network.enableRollback`: any stored value other than `"0"` or `""` is true
    /// (NixOps stores it untyped, so Python reads any non-empty string as true).
    pub fn rollback_enabled(&self) -> bool {
        self.attr(depl_attr::ROLLBACK_ENABLED)
            .is_some_and(|v| !v.is_empty() && v != "0")
    }

    /// The resource called `name`.
    pub fn resource(&self, name: &str) -> Option<&ResourceRecord> {
        self.resources.iter().find(|r| r.name == name)
    }

    /// Decode a JSON attribute; `Ok(None)` when absent.
    pub fn json_attr<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StateError> {
        parse_json(
            || format!("deployment ‘{}’", self.uuid),
            name,
            self.attrs.get(name),
        )
    }
}

/// Resource types whose `state` defaults to `Missing` rather than `Unknown`.
const MISSING_BY_DEFAULT: &[&str] = &["virtualbox", "ec2", "ssh-keypair", "command-output"];

impl ResourceRecord {
    /// A raw attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.get(name).map(String::as_str)
    }

    /// An int attribute; `None` when absent or not a number.
    pub fn int_attr(&self, name: &str) -> Option<i64> {
        parse_int(self.attrs.get(name))
    }

    /// A bool attribute with default false (`"1"` is true).
    pub fn bool_attr(&self, name: &str) -> bool {
        parse_bool(self.attrs.get(name))
    }

    /// Decode a JSON attribute; `Ok(None)` when absent.
    pub fn json_attr<T: serde::de::DeserializeOwned>(
        &self,
        name: &str,
    ) -> Result<Option<T>, StateError> {
        parse_json(
            || format!("resource ‘{}’", self.name),
            name,
            self.attrs.get(name),
        )
    }

    /// The default `state` of a resource of this type (`Missing` for virtualbox,
    /// ec2, ssh-keypair and command-output, else `Unknown`).
    pub fn default_state(&self) -> ResourceState {
        ResourceState::default_for(&self.type_)
    }

    /// The life-cycle state (`state`), or the type's default when absent.
    pub fn state(&self) -> ResourceState {
        self.int_attr("state")
            .map(ResourceState::from_code)
            .unwrap_or_else(|| self.default_state())
    }

    /// The stable small index assigned at first deploy.
    pub fn index(&self) -> Option<i64> {
        self.int_attr("index")
    }

    /// Whether the resource is no longer in the network specification.
    pub fn obsolete(&self) -> bool {
        self.bool_attr("obsolete")
    }

    /// Unix time of creation.
    pub fn creation_time(&self) -> Option<i64> {
        self.int_attr("creationTime")
    }

    /// The backend's id of the machine.
    pub fn vm_id(&self) -> Option<&str> {
        self.attr("vmId")
    }

    /// Public IPv4 address (`publicIpv4`).
    pub fn public_ipv4(&self) -> Option<&str> {
        self.attr("publicIpv4")
    }

    /// Private IPv4 address (`privateIpv4`).
    pub fn private_ipv4(&self) -> Option<&str> {
        self.attr("privateIpv4")
    }

    /// SSH target host of a `none` machine (`targetHost`).
    pub fn target_host(&self) -> Option<&str> {
        self.attr("targetHost")
    }

    /// SSH port (`targetPort`), default 22.
    pub fn target_port(&self) -> i64 {
        self.int_attr("targetPort").unwrap_or(22)
    }

    /// The system toplevel store path last activated.
    pub fn toplevel(&self) -> Option<&str> {
        self.attr("toplevel")
    }

    /// The deployment's configsPath at this machine's last activation.
    pub fn configs_path(&self) -> Option<&str> {
        self.attr("configsPath")
    }

    /// Whether SSH was seen up at least once.
    pub fn ssh_pinged(&self) -> bool {
        self.bool_attr("sshPinged")
    }

    /// Key specs (`keys`), default empty object.
    pub fn keys(&self) -> Result<serde_json::Map<String, serde_json::Value>, StateError> {
        self.json_attr("keys").map(Option::unwrap_or_default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_follows_attr_property() {
        assert_eq!(
            AttrValue::Int(3).encode_against(&AttrValue::Int(0)),
            Some("3".into())
        );
        assert_eq!(AttrValue::Int(0).encode_against(&AttrValue::Int(0)), None);
        assert_eq!(
            AttrValue::Bool(true).encode_against(&AttrValue::Bool(false)),
            Some("1".into())
        );
        assert_eq!(
            AttrValue::Bool(false).encode_against(&AttrValue::Bool(false)),
            None
        );
        assert_eq!(
            AttrValue::Bool(false).encode_against(&AttrValue::Bool(true)),
            Some("0".into())
        );
        assert_eq!(
            AttrValue::Unset.encode_against(&AttrValue::Str("x".into())),
            None
        );
        assert_eq!(
            AttrValue::str_list(&["/a b.nix".into(), "ü".into()]).encode(),
            Some(r#"["/a b.nix", "\u00fc"]"#.into())
        );
        assert_eq!(
            AttrValue::str_list(&[]).encode_against(&AttrValue::str_list(&[])),
            None
        );
    }

    #[test]
    fn accessors_use_defaults() {
        let mut d = DeploymentRecord {
            uuid: "u".into(),
            attrs: BTreeMap::new(),
            resources: vec![ResourceRecord {
                id: 1,
                name: "m".into(),
                type_: "virtualbox".into(),
                attrs: BTreeMap::new(),
            }],
        };
        assert_eq!(d.description(), DEFAULT_DESCRIPTION);
        assert_eq!(
            d.nix_exprs().expect("absent is default"),
            Vec::<String>::new()
        );
        assert!(!d.rollback_enabled());
        assert_eq!(d.resources[0].state(), ResourceState::Missing);
        d.attrs.insert("rollbackEnabled".into(), "1".into());
        d.attrs.insert("args".into(), r#"{"x": "1"}"#.into());
        d.attrs.insert("nixExprs".into(), "[not json".into());
        assert!(d.rollback_enabled());
        assert_eq!(d.args().expect("valid json")["x"], "1");
        let err = d.nix_exprs().expect_err("bad json");
        assert!(err
            .to_string()
            .starts_with("attribute ‘nixExprs’ of deployment ‘u’"));
    }
}
