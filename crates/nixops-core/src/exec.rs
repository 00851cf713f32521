//! The one wrapper through which every child process runs.
//!
//! A [`Cmd`] is an argv vector plus environment changes. It displays as a
//! shell-escaped line (for logs and error messages), never goes through a shell,
//! and fails with an [`ExecError`] that carries the command line, the exit status
//! and the tail of stderr.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// How many trailing bytes of stderr an [`ExecError`] keeps.
const STDERR_TAIL: usize = 4096;

/// How many trailing bytes of stderr [`Cmd::run_streaming`] keeps in its [`Output`]
/// (every line was already delivered to the caller, so the whole log is not kept).
pub const STREAM_STDERR_KEEP: usize = 64 * 1024;

/// How long to keep reading after the direct child exited while a pipe is still open.
///
/// A child that daemonises (e.g. `ssh -f`, or a service started by an activation
/// script) leaves a grandchild holding our stdout/stderr pipes; EOF would then only
/// come when that grandchild exits. After the child has exited we keep reading as
/// long as output keeps arriving, and stop once the pipes are silent for this long.
pub const DEFAULT_DRAIN_GRACE: Duration = Duration::from_secs(1);

/// Which output stream of a child a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Bytes that must never appear in logs, `Debug` or `Display` output.
#[derive(Clone)]
struct Secret(Vec<u8>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} secret bytes>", self.0.len())
    }
}

/// A child process to run: program, arguments, environment, working directory,
/// optional stdin contents.
///
/// `Debug` and `Display` hide stdin bytes and the values of [`Cmd::secret_env`].
#[derive(Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    /// Names of variables in `env` whose values are secret (not displayed).
    secret_env: Vec<OsString>,
    cwd: Option<PathBuf>,
    stdin: Option<Secret>,
    drain_grace: Duration,
}

impl fmt::Debug for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env: Vec<_> = self
            .env
            .iter()
            .map(|(k, v)| match v {
                Some(_) if self.secret_env.contains(k) => {
                    format!("{}=<secret>", k.to_string_lossy())
                }
                Some(v) => format!("{}={}", k.to_string_lossy(), v.to_string_lossy()),
                None => format!("-{}", k.to_string_lossy()),
            })
            .collect();
        f.debug_struct("Cmd")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("env", &env)
            .field("cwd", &self.cwd)
            .field("stdin", &self.stdin)
            .field("drain_grace", &self.drain_grace)
            .finish()
    }
}

/// What a finished command produced.
#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    /// All of stderr for [`Cmd::output`]; its last [`STREAM_STDERR_KEEP`] bytes for
    /// [`Cmd::run_streaming`].
    pub stderr: Vec<u8>,
}

impl Output {
    /// The exit code, with death by signal N reported as 128 + N like a shell does.
    pub fn code(&self) -> i32 {
        exit_code(self.status)
    }

    /// Stdout as text (lossy), without the trailing newline.
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout)
            .trim_end_matches('\n')
            .to_owned()
    }
}

/// The exit code of `status`; death by signal N is 128 + N, like a shell reports it.
pub fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
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
    #[error("unable to wait for ‘{cmd}’: {source}")]
    Wait {
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

/// What the reader, writer and waiter threads tell the thread that runs the command.
enum Event {
    Chunk(Stream, Vec<u8>),
    Eof,
    Exited(std::io::Result<ExitStatus>),
}

impl Cmd {
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            secret_env: Vec::new(),
            cwd: None,
            stdin: None,
            drain_grace: DEFAULT_DRAIN_GRACE,
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

    /// Set a variable whose value is secret: it is passed to the child but shown as
    /// `KEY=<secret>` by `Display` and never logged.
    pub fn secret_env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.secret_env.push(key.as_ref().to_owned());
        self.env(key, value)
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Self {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Feed these bytes to the child's stdin, then close it. The bytes are treated as
    /// secret (key contents): they never appear in `Display`, `Debug` or logs.
    pub fn stdin_bytes(mut self, bytes: Vec<u8>) -> Self {
        self.stdin = Some(Secret(bytes));
        self
    }

    /// How long to keep reading output after the child exited while a pipe is still
    /// held open by a daemonised grandchild (default [`DEFAULT_DRAIN_GRACE`]).
    pub fn drain_grace(mut self, grace: Duration) -> Self {
        self.drain_grace = grace;
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

    /// Whether stdin bytes were set with [`Cmd::stdin_bytes`].
    pub fn has_stdin(&self) -> bool {
        self.stdin.is_some()
    }

    /// A `std::process::Command` for this command, stdin null (stdin bytes set with
    /// [`Cmd::stdin_bytes`] are not part of it; the `run`/`output` methods feed them).
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
        self.check(out)
    }

    /// Run to completion, capturing stdout and stderr, whatever the exit status.
    pub fn output_unchecked(&self) -> Result<Output, ExecError> {
        self.run_inner(&mut |_, _| {}, usize::MAX)
    }

    /// Run to completion, delivering every output line to `on_line` as it arrives
    /// (tagged with its stream, without the line terminator). Stdout is also captured
    /// whole (for commands whose stdout is a result, like `nix-build`); stderr only
    /// its last [`STREAM_STDERR_KEEP`] bytes. A non-zero exit is an error.
    pub fn run_streaming(
        &self,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Output, ExecError> {
        let out = self.run_streaming_unchecked(on_line)?;
        self.check(out)
    }

    /// [`Cmd::run_streaming`] whatever the exit status: the caller reads `status`.
    pub fn run_streaming_unchecked(
        &self,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Output, ExecError> {
        self.run_inner(on_line, STREAM_STDERR_KEEP)
    }

    /// Run with the terminal: stdin, stdout and stderr inherited (for `nixops ssh`).
    /// Returns the exit code (128 + N for death by signal N). Bytes set with
    /// [`Cmd::stdin_bytes`] are not used: the terminal is the input.
    pub fn run_interactive(&self) -> Result<i32, ExecError> {
        tracing::debug!(cmd = %self, "running interactively");
        let status = self
            .to_command()
            .stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|source| ExecError::Spawn {
                cmd: self.to_string(),
                source,
            })?;
        Ok(exit_code(status))
    }

    fn check(&self, out: Output) -> Result<Output, ExecError> {
        if out.status.success() {
            Ok(out)
        } else {
            Err(self.failed(out.status, &out.stderr))
        }
    }

    /// Spawn, feed stdin, drain stdout and stderr concurrently, wait.
    ///
    /// One thread per pipe reads lines and one thread waits for the child; they all
    /// report on one channel, so lines reach `on_line` in arrival order on the calling
    /// thread (the callback need not be `Send`). Once the child has exited we stop
    /// when both pipes reached EOF or when they stayed silent for `drain_grace`
    /// (a daemonised grandchild holds them open); the reader threads left behind end
    /// on their own when that grandchild closes the pipes.
    fn run_inner(
        &self,
        on_line: &mut dyn FnMut(Stream, &str),
        keep_stderr: usize,
    ) -> Result<Output, ExecError> {
        tracing::debug!(cmd = %self, "running");
        let mut command = self.to_command();
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        if self.stdin.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command.spawn().map_err(|source| ExecError::Spawn {
            cmd: self.to_string(),
            source,
        })?;

        let (tx, rx) = mpsc::channel::<Event>();
        if let (Some(Secret(bytes)), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A child that exits without reading stdin makes this write fail with
            // EPIPE; its exit status is what counts, so the error is dropped.
            thread::spawn(move || {
                let _ = pipe.write_all(&bytes);
            });
        }
        let mut open_pipes = 0;
        if let Some(pipe) = child.stdout.take() {
            open_pipes += 1;
            spawn_reader(Stream::Stdout, pipe, tx.clone());
        }
        if let Some(pipe) = child.stderr.take() {
            open_pipes += 1;
            spawn_reader(Stream::Stderr, pipe, tx.clone());
        }
        thread::spawn(move || {
            let _ = tx.send(Event::Exited(child.wait()));
        });

        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut status = None;
        loop {
            if status.is_some() && open_pipes == 0 {
                break;
            }
            let event = if status.is_some() {
                match rx.recv_timeout(self.drain_grace) {
                    Ok(event) => event,
                    Err(_) => break,
                }
            } else {
                match rx.recv() {
                    Ok(event) => event,
                    // The waiter thread always sends before dropping its sender.
                    Err(_) => break,
                }
            };
            match event {
                Event::Chunk(stream, bytes) => {
                    let text = String::from_utf8_lossy(&bytes);
                    let line = text.trim_end_matches('\n').trim_end_matches('\r');
                    on_line(stream, line);
                    match stream {
                        Stream::Stdout => stdout.extend_from_slice(&bytes),
                        Stream::Stderr => {
                            stderr.extend_from_slice(&bytes);
                            if stderr.len() > keep_stderr {
                                stderr.drain(..stderr.len() - keep_stderr);
                            }
                        }
                    }
                }
                Event::Eof => open_pipes -= 1,
                Event::Exited(result) => {
                    status = Some(result.map_err(|source| ExecError::Wait {
                        cmd: self.to_string(),
                        source,
                    })?);
                }
            }
        }
        let status = status.ok_or_else(|| ExecError::Wait {
            cmd: self.to_string(),
            source: std::io::Error::other("the waiting thread ended without a status"),
        })?;
        Ok(Output {
            status,
            stdout,
            stderr,
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

/// Read `pipe` line by line (a final unterminated line included) into `tx`.
fn spawn_reader(stream: Stream, pipe: impl Read + Send + 'static, tx: mpsc::Sender<Event>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(Event::Chunk(stream, line)).is_err() {
                        // The command was given up on (daemonised grandchild); stop.
                        return;
                    }
                }
            }
        }
        let _ = tx.send(Event::Eof);
    });
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
                let value = if self.secret_env.contains(k) {
                    "<secret>".to_owned()
                } else {
                    shell_quote(&v.to_string_lossy())
                };
                write!(f, "{}={} ", k.to_string_lossy(), value)?;
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

    #[test]
    fn secrets_are_not_displayed() {
        let cmd = Cmd::new("cat")
            .stdin_bytes(b"hunter2".to_vec())
            .secret_env("NIXOPS_SSH_PASSWORD", "pw-123");
        let shown = format!("{cmd} {cmd:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("pw-123"), "{shown}");
        assert!(
            shown.contains("NIXOPS_SSH_PASSWORD=<secret> cat"),
            "{shown}"
        );
        assert!(cmd.has_stdin());
    }

    #[test]
    fn stdin_bytes_arrive_exactly() {
        let secret: Vec<u8> = (1u8..=255).chain(b"\nend".iter().copied()).collect();
        let out = Cmd::new("cat")
            .stdin_bytes(secret.clone())
            .output()
            .expect("cat copies stdin");
        assert_eq!(out.stdout, secret);
    }

    #[test]
    fn large_stdin_to_a_child_that_ignores_it_does_not_hang() {
        let out = Cmd::new("true")
            .stdin_bytes(vec![b'x'; 4 << 20])
            .output()
            .expect("true succeeds");
        assert!(out.status.success());
    }

    #[test]
    fn streaming_delivers_tagged_lines_in_order() {
        let mut lines = Vec::new();
        let out = Cmd::new("sh")
            .args([
                "-c",
                "for i in 1 2 3; do echo out$i; echo err$i >&2; sleep 0.05; done; printf tail",
            ])
            .run_streaming(&mut |stream, line| lines.push((stream, line.to_owned())))
            .expect("the script succeeds");
        let stdout_lines: Vec<_> = lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stdout)
            .map(|(_, l)| l.as_str())
            .collect();
        let stderr_lines: Vec<_> = lines
            .iter()
            .filter(|(s, _)| *s == Stream::Stderr)
            .map(|(_, l)| l.as_str())
            .collect();
        assert_eq!(stdout_lines, ["out1", "out2", "out3", "tail"]);
        assert_eq!(stderr_lines, ["err1", "err2", "err3"]);
        // The sleeps separate the rounds: both lines of a round come before the next.
        let round = |i: usize| {
            let mut pair = [lines[2 * i].1.clone(), lines[2 * i + 1].1.clone()];
            pair.sort();
            pair
        };
        assert_eq!(round(0), ["err1", "out1"]);
        assert_eq!(round(1), ["err2", "out2"]);
        assert_eq!(out.stdout, b"out1\nout2\nout3\ntail");
        assert_eq!(out.stderr, b"err1\nerr2\nerr3\n");
    }

    #[test]
    fn streaming_delivers_lines_as_they_arrive() {
        let start = std::time::Instant::now();
        let mut first_line_at = None;
        Cmd::new("sh")
            .args(["-c", "echo first; sleep 1; echo second"])
            .run_streaming(&mut |_, _| {
                first_line_at.get_or_insert_with(|| start.elapsed());
            })
            .expect("the script succeeds");
        let first = first_line_at.expect("a line was delivered");
        assert!(
            first < Duration::from_millis(700),
            "first line after {first:?}"
        );
    }

    #[test]
    fn streaming_failure_and_unchecked_status() {
        let cmd = Cmd::new("sh").args(["-c", "echo bad >&2; exit 4"]);
        let err = cmd
            .run_streaming(&mut |_, _| {})
            .expect_err("invariant: exits 4");
        assert!(err.to_string().ends_with("bad"), "{err}");
        let out = cmd
            .run_streaming_unchecked(&mut |_, _| {})
            .expect("unchecked runs succeed");
        assert_eq!(out.code(), 4);
        let killed = Cmd::new("sh")
            .args(["-c", "kill -9 $$"])
            .output_unchecked()
            .expect("runs");
        assert_eq!(killed.code(), 128 + 9);
    }

    #[test]
    fn streaming_keeps_only_a_stderr_tail() {
        let out = Cmd::new("sh")
            .args([
                "-c",
                "head -c 200000 /dev/zero | tr '\\0' e >&2; echo >&2; echo last >&2",
            ])
            .run_streaming(&mut |_, _| {})
            .expect("runs");
        assert_eq!(out.stderr.len(), STREAM_STDERR_KEEP);
        assert!(out.stderr.ends_with(b"\nlast\n"));
    }

    #[test]
    fn a_daemonised_grandchild_does_not_hang_us() {
        // The grandchild keeps stdout and stderr open for 30 s after the child exits.
        let start = std::time::Instant::now();
        let mut lines = Vec::new();
        let out = Cmd::new("sh")
            .args(["-c", "echo started; (sleep 30 &) ; echo detached"])
            .drain_grace(Duration::from_millis(300))
            .run_streaming(&mut |_, line| lines.push(line.to_owned()))
            .expect("the direct child succeeds");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(lines, ["started", "detached"]);
        assert_eq!(out.stdout_text(), "started\ndetached");
        let start = std::time::Instant::now();
        Cmd::new("sh")
            .args(["-c", "(sleep 30 &)"])
            .output()
            .expect("output() copes too");
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn interactive_returns_the_exit_code() {
        let code = Cmd::new("sh")
            .args(["-c", "exit 7"])
            .run_interactive()
            .expect("sh runs");
        assert_eq!(code, 7);
    }

    #[test]
    fn shell_quote_round_trips_through_sh() {
        let words = [
            "a b",
            "$(touch /nonexistent/x)",
            "'",
            ";",
            "new\nline",
            "",
            "plain",
            "*",
        ];
        let script = format!(
            "printf '%s\\n' {}",
            words
                .iter()
                .map(|w| shell_quote(w))
                .collect::<Vec<_>>()
                .join(" ")
        );
        let out = Cmd::new("sh").args(["-c", &script]).output().expect("runs");
        let expected: String = words.iter().map(|w| format!("{w}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    }
}
