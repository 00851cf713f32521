//! Rendering of command results and progress: tables in NixOps' layout, log lines,
//! events.

pub mod log;
pub mod table;
pub mod trace;
