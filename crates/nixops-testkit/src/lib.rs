//! Test hosts and test environments for nixops' tests.
//!
//! A [`TestHost`] is a "real machine" made of Linux namespaces: its own network
//! namespace (a veth into the [`Network`]'s bridge), its own UTS and mount
//! namespaces with a private `/nix`, `/run`, `/root` and a writable overlay of
//! `/etc`, and its own `sshd`. To Nix and SSH each host is a separate machine.
//! This crate only builds and tears down such hosts; it knows nothing about
//! deployments.

mod error;
mod host;
mod network;
mod sys;

pub use error::TestkitError;
pub use host::{RebootHandle, TestHost};
pub use network::{cleanup_stale, prerequisites, testkit_root, HostRecord, Network, NetworkRecord};
