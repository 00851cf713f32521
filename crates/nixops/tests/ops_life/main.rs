//! Operating a deployed network on real test hosts: `send-keys`, `reboot`,
//! `destroy`, `delete`, `rename`, and the refusals of what `none` machines cannot
//! do. Each test deploys to its own test hosts with the real `nixops` binary.

mod harness;
mod keys;
mod lifecycle;
mod reboot;

/// The binary under test.
const NIXOPS: &str = env!("CARGO_BIN_EXE_nixops");
