//! Operating a deployed network: `check`, `ssh`, `ssh-for-each` and `scp` run by
//! the `nixops` binary against real test hosts (network namespaces with their own
//! sshd and Nix store). They need root, `ip`, `sshd` and Nix; without them they
//! are skipped, except under `CI`, where they fail.

mod check;
mod common;
mod ssh;

/// The binary under test.
const NIXOPS: &str = env!("CARGO_BIN_EXE_nixops");
