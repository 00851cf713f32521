//! Test hosts and test environments for nixops' tests.
//!
//! A [`TestHost`] is a "real machine" made of Linux namespaces: its own network
//! namespace (a veth into the [`Network`]'s bridge), its own UTS and mount
//! namespaces with a private `/nix`, `/run`, `/root` and a writable overlay of
//! `/etc`, and its own `sshd`. To Nix and SSH each host is a separate machine.
//! The hosts know nothing about deployments; [`env`] runs the `nixops` binary
//! against them (and without them) for its integration tests.
//!
//! ```no_run
//! # fn main() -> Result<(), nixops_testkit::TestkitError> {
//! let mut net = nixops_testkit::Network::new()?;
//! let hosts = net.add_hosts(3)?;
//! let agent = net.ssh_agent()?; // pass as SSH_AUTH_SOCK
//! let ssh = net.ssh_command(&hosts[0]); // ["ssh", ..., "root@198.18.x.2"]
//! hosts[0].simulate_reboot()?;
//! # drop((agent, ssh));
//! # Ok(()) }
//! // Dropping `net` removes every process, link, namespace and directory.
//! ```
//!
//! Boot contract with the system under test: at every (simulated) boot, after
//! a fresh `/run`, the host runs `/nix/var/nix/profiles/system/activate` (if it
//! exists) as root without arguments, points `/run/booted-system` at the
//! system profile's target if `activate` did not, then starts sshd. Inside a
//! host, [`TestHost::REBOOT_COMMAND`] reboots it (what its `systemctl reboot`
//! should run).

pub mod env;
mod error;
mod host;
mod network;
mod sys;

pub use error::TestkitError;
pub use host::{RebootHandle, TestHost};
pub use network::{
    cleanup_stale, prerequisites, testkit_root, HostRecord, Network, NetworkRecord, ROOT_ENV,
};
