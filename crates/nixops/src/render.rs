//! Rendering of command results: tables in NixOps' layout.

pub mod log;
pub mod table;
