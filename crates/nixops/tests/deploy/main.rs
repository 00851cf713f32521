//! End-to-end tests of `nixops deploy`: real Nix builds, real test hosts (network
//! namespaces with their own store and sshd), the real `nixops` binary. Every
//! test brings up its own hosts and asserts on what the hosts show.

mod badinput;
mod basic;
mod common;
mod evaluation;
mod faults;
mod health;
mod hostkeys;
mod keys;
mod modes;
mod rollback;
mod select;

/// The binary under test.
const NIXOPS: &str = env!("CARGO_BIN_EXE_nixops");
