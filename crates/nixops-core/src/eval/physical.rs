//! The physical network expression (`show-physical`, `physical.nix`): what
//! nixops knows about each machine from its state, as NixOS configuration.
//!
//! Pure: the caller fills [`PhysicalMachine`] from the state file; this module
//! only renders. It reads no state and runs nothing.

use std::collections::BTreeMap;

use super::py2nix::{merge, py2nix, MergeError, NixValue};

/// What the state knows about one active machine.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PhysicalMachine {
    pub name: String,
    pub public_ipv4: Option<String>,
    pub private_ipv4: Option<String>,
    /// The client public key nixops provisioned for root (`none` backend).
    pub authorized_key: Option<String>,
    /// The machine's SSH host public key, when known.
    pub host_key: Option<String>,
    /// The NixOS state version recorded for the machine, else its release.
    pub state_version: Option<String>,
}

/// Render the physical expression of `machines` (sorted by name), ending in a newline.
pub fn render(machines: &[PhysicalMachine]) -> Result<String, MergeError> {
    let mut top = BTreeMap::new();
    for m in machines {
        let mut config = NixValue::attrs();
        let mut add = |v: NixValue| -> Result<(), MergeError> {
            config = merge(std::mem::replace(&mut config, NixValue::Null), v)?;
            Ok(())
        };
        if let Some(ip) = &m.private_ipv4 {
            add(NixValue::at(
                &["networking", "privateIPv4"],
                NixValue::str(ip),
            ))?;
        }
        if let Some(ip) = &m.public_ipv4 {
            add(NixValue::at(
                &["networking", "publicIPv4"],
                NixValue::str(ip),
            ))?;
        }
        if let Some(v) = &m.state_version {
            add(NixValue::at(
                &["system", "stateVersion"],
                NixValue::raw(format!(
                    "( lib.mkDefault {} )",
                    py2nix(&NixValue::str(v), true)
                )),
            ))?;
        }
        add(NixValue::at(
            &["boot", "kernelModules"],
            NixValue::List(vec![]),
        ))?;
        add(NixValue::at(
            &["networking", "firewall", "trustedInterfaces"],
            NixValue::List(vec![]),
        ))?;
        add(NixValue::at(
            &["networking", "extraHosts"],
            NixValue::str("\n"),
        ))?;
        for other in machines {
            if let Some(key) = &other.host_key {
                let entry = NixValue::Attrs(BTreeMap::from([
                    (
                        "hostNames".to_owned(),
                        NixValue::List(vec![NixValue::str(&other.name)]),
                    ),
                    ("publicKey".to_owned(), NixValue::str(key)),
                ]));
                add(NixValue::at(
                    &["services", "openssh", "knownHosts", &other.name],
                    entry,
                ))?;
            }
        }
        let imports: Vec<NixValue> = m
            .authorized_key
            .iter()
            .map(|k| {
                NixValue::at(
                    &[
                        "config",
                        "users",
                        "extraUsers",
                        "root",
                        "openssh",
                        "authorizedKeys",
                        "keys",
                    ],
                    NixValue::List(vec![NixValue::str(k)]),
                )
            })
            .collect();
        let body = NixValue::Attrs(BTreeMap::from([
            ("config".to_owned(), config),
            ("imports".to_owned(), NixValue::List(imports)),
        ]));
        top.insert(
            m.name.clone(),
            NixValue::Function {
                head: "{ config, lib, pkgs, ... }".to_owned(),
                body: Box::new(body),
            },
        );
    }
    Ok(py2nix(&NixValue::Attrs(top), false) + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_like_nixops() {
        let machines = vec![
            PhysicalMachine {
                name: "machine".into(),
                public_ipv4: Some("1.2.3.4".into()),
                authorized_key: Some("ssh-ed25519 AAAAC3Nza NixOps client key for machine".into()),
                state_version: Some("20.09".into()),
                ..Default::default()
            },
            PhysicalMachine {
                name: "vbox1".into(),
                host_key: Some("ssh-ed25519 AAAAC3 host".into()),
                ..Default::default()
            },
        ];
        let out = render(&machines).expect("invariant: fragments merge");
        let expected_machine = r#"{
  machine = { config, lib, pkgs, ... }: {
    config = {
      boot.kernelModules = [];
      networking = {
        extraHosts = "\n";
        firewall.trustedInterfaces = [];
        publicIPv4 = "1.2.3.4";
      };
      services.openssh.knownHosts.vbox1 = {
        hostNames = [ "vbox1" ];
        publicKey = "ssh-ed25519 AAAAC3 host";
      };
      system.stateVersion = ( lib.mkDefault "20.09" );
    };
    imports = [
      {
        config.users.extraUsers.root.openssh.authorizedKeys.keys = [
          "ssh-ed25519 AAAAC3Nza NixOps client key for machine"
        ];
      }
    ];
  };
"#;
        assert!(out.starts_with(expected_machine), "{out}");
        assert!(out.ends_with("};\n}\n"), "{out}");
    }
}
