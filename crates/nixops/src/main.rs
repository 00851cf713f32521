//! The `nixops` command line.

fn main() {}
