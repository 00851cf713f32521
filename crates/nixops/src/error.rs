//! The one error type of the command line: a message, an optional hint, an exit code.
//!
//! Library errors are converted into it once, at the edge, and printed once by
//! `main` as `error: <message>` (and `hint: <hint>`) on stderr.

use std::fmt;

/// An error to show the user, with the exit code it maps to.
#[derive(Debug)]
pub struct CliError {
    /// Printed as is before the `error:` line (e.g. Nix's own error message).
    pub detail: Option<String>,
    pub message: String,
    pub hint: Option<String>,
    pub code: u8,
}

impl CliError {
    /// An ordinary failure: exit code 1.
    pub fn new(message: impl Into<String>) -> Self {
        CliError {
            detail: None,
            message: message.into(),
            hint: None,
            code: 1,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Errors of the library render through their `Display`, which names the thing.
macro_rules! from_display {
    ($($ty:ty),* $(,)?) => {
        $(impl From<$ty> for CliError {
            fn from(err: $ty) -> Self {
                CliError::new(err.to_string())
            }
        })*
    };
}

from_display!(std::io::Error, nixops_core::exec::ExecError);

pub type CliResult<T = std::process::ExitCode> = Result<T, CliError>;
