//! Tests of the `nixops` binary: deployment management commands, their output and
//! their errors, against real state files.

mod errors;
mod management;
mod nixops_format;

/// The binary under test.
const NIXOPS: &str = env!("CARGO_BIN_EXE_nixops");
