//! The SQLite state file in NixOps' schema version 3.
