//! The testkit's error type. Every variant names the host, path or command.

use std::path::PathBuf;

use nixops_core::exec::ExecError;

/// Something went wrong while building, driving or tearing down test hosts.
#[derive(Debug, thiserror::Error)]
pub enum TestkitError {
    /// A prerequisite (root, `ip`, `sshd`, ...) is missing on this machine.
    #[error("test hosts cannot run here: {reason}")]
    Prerequisite { reason: String },
    /// A command run for the network or a host failed.
    #[error("{what}")]
    Exec {
        what: String,
        #[source]
        source: ExecError,
    },
    /// A file or directory of the testkit could not be read or written.
    #[error("unable to access ‘{}’", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The persisted network description could not be read or written.
    #[error("invalid network description ‘{}’", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// No free /24 in 198.18.0.0/15 is left for a new network.
    #[error("no free test network left in 198.18.0.0/15")]
    NoFreeNetwork,
    /// A host's setup did not produce the expected result.
    #[error("test host ‘{host}’: {reason}")]
    Host { host: String, reason: String },
    /// A host is stopped, so nothing can run inside it.
    #[error("test host ‘{host}’ is not running")]
    HostDown { host: String },
    /// A host's sshd did not accept connections in time.
    #[error("test host ‘{host}’: sshd did not come up on {addr} within {secs} s")]
    SshdTimeout {
        host: String,
        addr: String,
        secs: u64,
    },
    /// There is no host of that name in the network.
    #[error("no test host named ‘{name}’")]
    NoSuchHost { name: String },
}

impl TestkitError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TestkitError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn exec(what: impl Into<String>, source: ExecError) -> Self {
        TestkitError::Exec {
            what: what.into(),
            source,
        }
    }
}
