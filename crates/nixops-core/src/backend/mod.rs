//! Backends: how each kind of machine (`deployment.targetEnv`) is created, reached,
//! and destroyed.
//!
//! This module knows the resource type names of NixOps and which of them are
//! machines; the machine backends live in submodules.

pub mod none;

/// Resource types (`Resources.type`) that are machines, as NixOps names them.
pub const MACHINE_TYPES: &[&str] = &[
    "none",
    "virtualbox",
    "libvirtd",
    "ec2",
    "container",
    "gce",
    "hetzner",
    "digitalOcean",
    "azure",
    "vultr",
    "packet",
];

/// Whether resources of type `type_` are machines (as opposed to key pairs,
/// volumes and other resources).
pub fn is_machine_type(type_: &str) -> bool {
    MACHINE_TYPES.contains(&type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machines_and_other_resources() {
        assert!(is_machine_type("none"));
        assert!(is_machine_type("virtualbox"));
        assert!(!is_machine_type("ssh-keypair"));
        assert!(!is_machine_type("ec2-keypair"));
    }
}
