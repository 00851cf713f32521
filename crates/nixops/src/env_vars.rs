//! Every environment variable the command line reads, in one place.

/// Path of the state file when `-s` is not given.
pub const NIXOPS_STATE: &str = "NIXOPS_STATE";
/// The old name of `NIXOPS_STATE`, still honoured.
pub const CHARON_STATE: &str = "CHARON_STATE";
/// Deployment to use when `-d` is not given (also names new deployments).
pub const NIXOPS_DEPLOYMENT: &str = "NIXOPS_DEPLOYMENT";
/// The old name of `NIXOPS_DEPLOYMENT`, still honoured.
pub const CHARON_DEPLOYMENT: &str = "CHARON_DEPLOYMENT";
/// Home directory: `~/.nixops` (state and locks) lives here.
pub const HOME: &str = "HOME";
/// The editor `nixops edit` runs.
pub const EDITOR: &str = "EDITOR";
/// When set (to anything), no ANSI colours are written.
pub const NO_COLOR: &str = "NO_COLOR";
/// Log filter for `tracing` (e.g. `nixops_core=debug`).
pub const RUST_LOG: &str = "RUST_LOG";

/// A variable's value, treating an empty value as unset.
pub fn get(name: &str) -> Option<std::ffi::OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}
