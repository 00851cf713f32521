//! Tests of the `nixops` binary: deployment management commands, their output and
//! their errors, against real state files.

mod common;
mod errors;
mod management;
mod nixops_format;
