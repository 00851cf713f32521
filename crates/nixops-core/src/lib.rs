//! The nixops library: everything but the command line.
//!
//! It owns the state file, evaluation of network files, SSH, the backends and the
//! deploy pipeline. It never prints: results are returned, progress is reported as
//! events, and errors are typed values that the CLI renders.

pub mod backend;
pub mod check;
pub mod deploy;
pub mod destroy;
pub mod eval;
pub mod events;
pub mod exec;
pub mod generations;
pub mod keys;
pub mod names;
pub mod parallel;
pub mod reboot;
pub mod ssh;
pub mod state;
