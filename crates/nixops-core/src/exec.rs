//! The one wrapper through which every child process runs.
//!
//! A [`Cmd`] is an argv vector plus environment changes. It displays as a
//! shell-escaped line (for logs and error messages), never goes through a shell,
//! and fails with an [`ExecError`] that carries the command line, the exit status
//! and the tail of stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

/// How many trailing bytes of stderr an [`ExecError`] keeps.
const STDERR_TAIL: usize = 4096;

/// A child process to run: program, arguments, environment, working directory.
#[derive(Clone, Debug)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// A child process that could not be started or that failed.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("unable to run ‘{cmd}’: {source}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("command ‘{cmd}’ failed ({status}){}", stderr_suffix(.stderr_tail))]
    Failed {
        cmd: String,
        status: ExitStatus,
        stderr_tail: String,
    },
}

fn stderr_suffix(tail: &str) -> String {
    let tail = tail.trim_end();
    if tail.is_empty() {
        String::new()
    } else {
        format!(":\n{tail}")
    }
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    pub fn program(&self) -> &OsStr {
        &self.program
    }

    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// The environment changes, in order; `None` removes the variable.
    pub fn get_env(&self) -> &[(OsString, Option<OsString>)] {
        &self.env
    }

    /// A `std::process::Command` for this command, stdin null.
    pub fn to_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.args(&self.args).stdin(Stdio::null());
        for (k, v) in &self.env {
            match v {
                Some(v) => cmd.env(k, v),
                None => cmd.env_remove(k),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd
    }

    /// Run to completion, capturing stdout and stderr. A non-zero exit is an error.
    pub fn output(&self) -> Result<Output, ExecError> {
        let out = self.output_unchecked()?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(out.status, &out.stderr))
        }
    }

    /// Run to completion, capturing stdout and stderr, whatever the exit status.
    pub fn output_unchecked(&self) -> Result<Output, ExecError> {
        tracing::debug!(cmd = %self, "running");
        let out = self
            .to_command()
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|source| ExecError::Spawn {
                cmd: self.to_string(),
                source,
            })?;
        Ok(Output {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        })
    }

    /// The error for this command having exited with `status`.
    pub fn failed(&self, status: ExitStatus, stderr: &[u8]) -> ExecError {
        let start = stderr.len().saturating_sub(STDERR_TAIL);
        ExecError::Failed {
            cmd: self.to_string(),
            status,
            stderr_tail: String::from_utf8_lossy(&stderr[start..]).into_owned(),
        }
    }
}

/// Quote one word for a POSIX shell: bare when it is safe, else in single quotes.
pub fn shell_quote(word: &str) -> String {
    let safe = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b));
    if safe {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.env {
            if let Some(v) = v {
                write!(
                    f,
                    "{}={} ",
                    k.to_string_lossy(),
                    shell_quote(&v.to_string_lossy())
                )?;
            }
        }
        write!(f, "{}", shell_quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", shell_quote(&a.to_string_lossy()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_as_shell_line() {
        let cmd = Cmd::new("nix-build")
            .args(["-A", "machines", "it's here", ""])
            .env("NIX_SSHOPTS", "-p 22");
        assert_eq!(
            cmd.to_string(),
            "NIX_SSHOPTS='-p 22' nix-build -A machines 'it'\\''s here' ''"
        );
    }

    #[test]
    fn failure_carries_status_and_stderr() {
        let err = Cmd::new("sh")
            .args(["-c", "echo oops >&2; exit 3"])
            .output()
            .expect_err("invariant: the command exits 3");
        let msg = err.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with("oops"), "{msg}");
    }

    #[test]
    fn missing_program_is_a_spawn_error() {
        let err = Cmd::new("/nonexistent/prog")
            .output()
            .expect_err("invariant: no such program");
        assert!(matches!(err, ExecError::Spawn { .. }));
    }
}
