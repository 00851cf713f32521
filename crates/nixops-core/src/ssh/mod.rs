//! SSH to machines through the system OpenSSH client.
//!
//! It owns: the ssh options we pass (always `BatchMode=yes`, a `ConnectTimeout`, an
//! explicit host key policy with our own known_hosts file), one ControlMaster per
//! machine per process (socket in a short temporary directory, started with retries,
//! reused while alive, closed on drop), the encoding of remote commands (every word
//! quoted with [`shell_quote`]), `NIX_SSHOPTS` for `nix-copy-closure`, and the
//! command lines of the user-facing `ssh`, `ssh-for-each` and `scp`.
//!
//! It must not: prompt (no passwords, no host key questions), read or write the
//! user's `~/.ssh/known_hosts`, build a remote command by concatenating unquoted
//! words, print anything, or log stdin contents (keys are streamed through stdin).
//!
//! Everything here is `Send + Sync`: each machine's work runs on its own thread and a
//! session may be shared between threads.

pub mod args;
pub mod known_hosts;
pub mod user_known_hosts;

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use crate::exec::{shell_quote, Cmd, ExecError, Output, Stream};

pub use args::split_openssh_args;

/// How many trailing bytes of stderr an [`SshError`] keeps.
const STDERR_TAIL: usize = 4096;

/// Where and as whom to connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshTarget {
    pub user: String,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// `None`: ssh's default (22 unless the user's config says otherwise).
    pub port: Option<u16>,
    /// Private key file passed with `-i`.
    pub identity: Option<PathBuf>,
    /// Extra ssh arguments (NixOps `deployment.sshOptions`), passed through verbatim.
    pub extra_opts: Vec<String>,
    /// Compress the connection (`-C`; NixOps does it when `hasFastConnection` is false).
    pub compress: bool,
    /// Read the user's ssh configuration (`~/.ssh/config`); when false ssh runs with
    /// `-F none` so that no configuration file is read (tests, reproducible runs).
    pub use_user_config: bool,
}

impl SshTarget {
    /// `user@host`, default port, no key, the user's ssh config honoured.
    pub fn new(user: impl Into<String>, host: impl Into<String>) -> Self {
        SshTarget {
            user: user.into(),
            host: host.into(),
            port: None,
            identity: None,
            extra_opts: Vec::new(),
            compress: false,
            use_user_config: true,
        }
    }

    /// `user@host`, as ssh and nix-copy-closure take it.
    pub fn destination(&self) -> String {
        format!("{}@{}", self.user, self.host)
    }

    /// `user@host:path` as scp takes it (an IPv6 host in brackets).
    pub fn remote_path(&self, path: &str) -> String {
        if self.host.contains(':') {
            format!("{}@[{}]:{}", self.user, self.host, path)
        } else {
            format!("{}@{}:{}", self.user, self.host, path)
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.destination())
    }
}

/// Which host keys ssh accepts. The user's `~/.ssh/known_hosts` is never written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostKeys {
    /// Only these keys (`"ssh-ed25519 AAAA..."` lines, as kept in state) are accepted:
    /// `StrictHostKeyChecking=yes` against a known_hosts file of ours.
    Pinned(Vec<String>),
    /// Trust on first use: `StrictHostKeyChecking=accept-new` with an empty known_hosts
    /// file of ours; after a connection [`SshSession::learned_host_keys`] returns the
    /// key ssh recorded, for the caller to pin.
    Learn,
    /// Leave host keys to the user's ssh setup (their known_hosts and config), as NixOps
    /// does for `none` machines before it has deployed its own key. With `BatchMode=yes`
    /// an unknown host is refused, not asked about.
    UserKnownHosts,
}

/// Connection parameters of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    /// `ConnectTimeout`.
    pub connect_timeout: Duration,
    /// How many times to try starting the master connection (at least once).
    pub connection_tries: u32,
    /// Pause after the first failed try; doubled after each further one (1, 2, 4, 8 s).
    pub first_retry_delay: Duration,
    /// `ControlPersist`: how long an idle master stays up.
    pub control_persist: Duration,
    /// `ServerAliveInterval` of the master.
    pub server_alive_interval: Duration,
}

impl Default for SessionOptions {
    /// NixOps' values: 5 tries, 1 s first delay, 600 s persist, 60 s keep-alive; and a
    /// 20 s connect timeout (NixOps sets none, so a dead host took minutes).
    fn default() -> Self {
        SessionOptions {
            connect_timeout: Duration::from_secs(20),
            connection_tries: 5,
            first_retry_delay: Duration::from_secs(1),
            control_persist: Duration::from_secs(600),
            server_alive_interval: Duration::from_secs(60),
        }
    }
}

/// An SSH failure, always naming the machine.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    #[error("unable to connect to machine ‘{machine}’ at ‘{target}’{}", last_line_suffix(.stderr))]
    Connect {
        machine: String,
        target: String,
        stderr: String,
    },
    #[error(
        "the host key of machine ‘{machine}’ ({host}) has changed; if this is expected \
         (e.g. the machine was reinstalled), remove the pinned key with \
         ‘nixops check --forget-host-key {machine}’"
    )]
    HostKeyChanged { machine: String, host: String },
    /// With [`HostKeys::UserKnownHosts`]: the user's known_hosts does not accept the
    /// host's key (unknown host, or a changed key).
    #[error(
        "the host key of machine ‘{machine}’ ({host}) is not accepted by your SSH \
         configuration{}", last_line_suffix(.stderr)
    )]
    HostKeyRejected {
        machine: String,
        host: String,
        stderr: String,
    },
    #[error("command ‘{command}’ failed on machine ‘{machine}’ (exit code {status})")]
    CommandFailed {
        machine: String,
        command: String,
        status: i32,
        stderr_tail: String,
    },
    #[error("no pinned host key given for machine ‘{machine}’")]
    NoPinnedKeys { machine: String },
    #[error("unable to run ssh for machine ‘{machine}’")]
    Exec {
        machine: String,
        #[source]
        source: ExecError,
    },
    #[error("unable to prepare the SSH directory for machine ‘{machine}’")]
    Io {
        machine: String,
        #[source]
        source: std::io::Error,
    },
}

impl SshError {
    /// A connection failure that trying again won't fix: a name that doesn't
    /// resolve, or a server that refuses our keys.
    pub fn is_permanent(&self) -> bool {
        match self {
            SshError::Connect { stderr, .. } => {
                stderr.contains("Could not resolve hostname")
                    || stderr.contains("Permission denied")
            }
            _ => false,
        }
    }

    /// The machine the error is about.
    pub fn machine(&self) -> &str {
        match self {
            SshError::Connect { machine, .. }
            | SshError::HostKeyChanged { machine, .. }
            | SshError::HostKeyRejected { machine, .. }
            | SshError::CommandFailed { machine, .. }
            | SshError::NoPinnedKeys { machine }
            | SshError::Exec { machine, .. }
            | SshError::Io { machine, .. } => machine,
        }
    }
}

fn last_line_suffix(stderr: &str) -> String {
    match stderr.lines().rev().find(|l| !l.trim().is_empty()) {
        Some(line) => format!(": {}", line.trim()),
        None => String::new(),
    }
}

fn tail(bytes: &[u8]) -> String {
    let start = bytes.len().saturating_sub(STDERR_TAIL);
    String::from_utf8_lossy(&bytes[start..]).into_owned()
}

/// A command for the remote login shell: one string in which the caller's words are
/// quoted. Its `Display` is that string (as shown in errors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remote(String);

impl Remote {
    /// Run `argv` as is: every word is quoted, so nothing in it is interpreted.
    pub fn argv<S: AsRef<str>>(argv: &[S]) -> Self {
        Remote(
            argv.iter()
                .map(|w| shell_quote(w.as_ref()))
                .collect::<Vec<_>>()
                .join(" "),
        )
    }

    /// Run a shell snippet whose variable parts the caller quoted with
    /// [`shell_quote`].
    pub fn shell(script: impl Into<String>) -> Self {
        Remote(script.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Which way `scp` copies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScpDirection {
    /// From the machine to here.
    From,
    /// From here to the machine.
    To,
}

/// A master connection being started ([`SshSession::spawn_master`]).
#[derive(Debug)]
pub struct StartingMaster {
    child: std::process::Child,
    /// Where this attempt's messages start in the master's log.
    log_start: u64,
}

/// The SSH connection to one machine: options, host key file and ControlMaster.
///
/// Dropping it closes the master (`ssh -O exit`) and removes its directory.
pub struct SshSession {
    machine: String,
    target: SshTarget,
    host_keys: HostKeys,
    options: SessionOptions,
    dir: tempfile::TempDir,
    /// Whether we started a master that has not been shut down; the lock also makes
    /// concurrent callers wait for one master start instead of starting several.
    master_up: Mutex<bool>,
}

impl fmt::Debug for SshSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SshSession")
            .field("machine", &self.machine)
            .field("target", &self.target)
            .field("host_keys", &self.host_keys)
            .field("dir", &self.dir.path())
            .finish()
    }
}

/// Longest directory we put control sockets in. Sockets are limited to 108 bytes
/// (104 on some systems) and ssh appends a 17-byte suffix while setting one up.
const MAX_SOCKET_DIR: usize = 70;

impl SshSession {
    /// A session for `machine`; nothing is started until the first command (or
    /// [`SshSession::connect`]).
    pub fn new(
        machine: impl Into<String>,
        target: SshTarget,
        host_keys: HostKeys,
        options: SessionOptions,
    ) -> Result<Self, SshError> {
        let machine = machine.into();
        let io_err = |source| SshError::Io {
            machine: machine.clone(),
            source,
        };
        // A long $TMPDIR would overflow the socket path limit (NixOps issues #340,
        // #1513); /tmp is short on every Unix.
        let tmp = std::env::temp_dir();
        let base = if tmp.as_os_str().len() + 20 <= MAX_SOCKET_DIR {
            tmp
        } else {
            PathBuf::from("/tmp")
        };
        let dir = tempfile::Builder::new()
            .prefix("nixops-")
            .tempdir_in(base)
            .map_err(io_err)?;
        let pattern = known_hosts::host_pattern(&target.host, target.port);
        match &host_keys {
            HostKeys::Pinned(keys) => {
                if known_hosts::render(&pattern, keys).is_empty() {
                    return Err(SshError::NoPinnedKeys { machine });
                }
                known_hosts::write(&dir.path().join("known_hosts"), &pattern, keys)
                    .map_err(io_err)?;
            }
            HostKeys::Learn => {
                known_hosts::write(&dir.path().join("known_hosts"), &pattern, &[])
                    .map_err(io_err)?;
            }
            HostKeys::UserKnownHosts => {}
        }
        Ok(SshSession {
            machine,
            target,
            host_keys,
            options,
            dir,
            master_up: Mutex::new(false),
        })
    }

    pub fn machine(&self) -> &str {
        &self.machine
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    pub fn host_keys(&self) -> &HostKeys {
        &self.host_keys
    }

    /// The master's socket.
    pub fn control_path(&self) -> PathBuf {
        self.dir.path().join("m")
    }

    /// Our known_hosts file (none with [`HostKeys::UserKnownHosts`]).
    pub fn known_hosts_path(&self) -> Option<PathBuf> {
        match self.host_keys {
            HostKeys::UserKnownHosts => None,
            _ => Some(self.dir.path().join("known_hosts")),
        }
    }

    /// Where the master's stderr goes (it outlives the command that starts it).
    fn master_log(&self) -> PathBuf {
        self.dir.path().join("master.log")
    }

    /// The host keys in our known_hosts file (`"<type> <base64>"`): with
    /// [`HostKeys::Learn`] the ones ssh recorded on connecting, to be pinned by the
    /// caller; with [`HostKeys::Pinned`] the pinned ones.
    pub fn learned_host_keys(&self) -> Result<Vec<String>, SshError> {
        let Some(path) = self.known_hosts_path() else {
            return Ok(Vec::new());
        };
        let contents = fs::read_to_string(&path).map_err(|source| SshError::Io {
            machine: self.machine.clone(),
            source,
        })?;
        Ok(known_hosts::parse_keys(&contents))
    }

    /// The machine's ssh options (no ControlPath), `port_flag` being `-p` for ssh and
    /// `-P` for scp.
    fn flags(&self, port_flag: &str) -> Vec<String> {
        let mut f: Vec<String> = Vec::new();
        let mut opt = |o: String| {
            f.push("-o".to_owned());
            f.push(o);
        };
        opt("BatchMode=yes".to_owned());
        if let Some(path) = self.known_hosts_path() {
            let strict = match self.host_keys {
                HostKeys::Learn => "accept-new",
                _ => "yes",
            };
            opt(format!("StrictHostKeyChecking={strict}"));
            opt(format!("UserKnownHostsFile={}", path.display()));
            // Look the key up under the name we wrote it for, whatever port or host
            // name the user's ssh config resolves the target to.
            opt(format!(
                "HostKeyAlias={}",
                known_hosts::host_pattern(&self.target.host, self.target.port)
            ));
            opt("GlobalKnownHostsFile=/dev/null".to_owned());
            // Learned keys are read back as plain lines; extra keys pushed by the
            // server would change the file behind the caller's back.
            opt("HashKnownHosts=no".to_owned());
            opt("UpdateHostKeys=no".to_owned());
        }
        opt(format!(
            "ConnectTimeout={}",
            self.options.connect_timeout.as_secs().max(1)
        ));
        if !self.target.use_user_config {
            f.splice(0..0, ["-F".to_owned(), "none".to_owned()]);
        }
        if let Some(port) = self.target.port {
            f.push(port_flag.to_owned());
            f.push(port.to_string());
        }
        if let Some(identity) = &self.target.identity {
            f.push("-i".to_owned());
            f.push(identity.display().to_string());
        }
        f.extend(self.target.extra_opts.iter().cloned());
        f
    }

    /// The machine's ssh options, as passed to every ssh we run for it (without the
    /// ControlPath).
    pub fn ssh_flags(&self) -> Vec<String> {
        self.flags("-p")
    }

    fn control_opt(&self) -> String {
        format!("ControlPath={}", self.control_path().display())
    }

    /// `ssh -M -N -f -S <sock> -o ControlPersist=… -o ServerAliveInterval=… [-C]
    /// <flags> -x <user@host>`: starts the master and returns once it is connected.
    pub fn master_cmd(&self) -> Cmd {
        self.master_with(&["-N", "-f"])
    }

    /// `ssh -M -S <sock> … -x <user@host> -- <remote>`: starts the master by
    /// running `remote` on it. When the command ends, ssh leaves the master in
    /// the background (ControlPersist, its standard streams on /dev/null) and
    /// exits with the command's status.
    pub fn master_running_cmd(&self, remote: &Remote) -> Cmd {
        self.master_with(&[]).arg("--").arg(remote.as_str())
    }

    fn master_with(&self, flags: &[&str]) -> Cmd {
        let mut cmd = Cmd::new("ssh")
            .arg("-M")
            .args(flags)
            .arg("-S")
            .arg(self.control_path())
            .arg("-o")
            .arg(format!(
                "ControlPersist={}",
                self.options.control_persist.as_secs()
            ))
            .arg("-o")
            .arg(format!(
                "ServerAliveInterval={}",
                self.options.server_alive_interval.as_secs()
            ));
        if self.target.compress {
            cmd = cmd.arg("-C");
        }
        cmd.args(self.ssh_flags())
            .arg("-x")
            .arg(self.target.destination())
    }

    /// `ssh -S <sock> -O <op> <user@host>` (`check`, `exit`).
    fn control_cmd(&self, op: &str) -> Cmd {
        Cmd::new("ssh")
            .args(self.ssh_flags())
            .arg("-S")
            .arg(self.control_path())
            .args(["-O", op])
            .arg(self.target.destination())
    }

    /// Make sure the master connection is up: reuse it while its socket answers,
    /// else start it, retrying connection failures with exponential backoff.
    pub fn connect(&self) -> Result<(), SshError> {
        let mut up = self
            .master_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *up && self.control_path().exists() {
            return Ok(());
        }
        if self.control_path().exists() {
            // Left over by a master that died: ask it, drop it if it is dead.
            let alive = self
                .control_cmd("check")
                .output_unchecked()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if alive {
                *up = true;
                return Ok(());
            }
            let _ = fs::remove_file(self.control_path());
        }
        self.retrying(self.options.connection_tries, &|| {}, || {
            self.start_master()
        })?;
        *up = true;
        Ok(())
    }

    /// Run `attempt` up to `tries` times, while it fails to connect for a reason
    /// that may pass, waiting twice as long before each new try.
    fn retrying<T>(
        &self,
        tries: u32,
        on_retry: &dyn Fn(),
        mut attempt: impl FnMut() -> Result<T, SshError>,
    ) -> Result<T, SshError> {
        let tries = tries.max(1);
        let mut delay = self.options.first_retry_delay;
        let mut n = 1;
        loop {
            match attempt() {
                Err(err @ SshError::Connect { .. }) if n < tries && !err.is_permanent() => {
                    tracing::warn!(
                        machine = %self.machine,
                        "could not connect to ‘{}’, retrying in {} seconds...: {err}",
                        self.target,
                        delay.as_secs_f32()
                    );
                    on_retry();
                    thread::sleep(delay);
                    delay *= 2;
                    n += 1;
                }
                result => return result,
            }
        }
    }

    /// Run `remote` and have the master connection up afterwards. Without a
    /// master yet, the master is started by running `remote` on it: on a fresh
    /// connection that saves a round trip and the wait for the first session.
    /// Connection failures are retried as [`SshSession::connect`] does.
    pub fn connect_running(&self, remote: &Remote) -> Result<Output, SshError> {
        self.connect_running_watched(remote, &|| {})
    }

    /// [`SshSession::connect_running`], calling `on_retry` each time a try to
    /// connect failed and another one is coming.
    pub fn connect_running_watched(
        &self,
        remote: &Remote,
        on_retry: &dyn Fn(),
    ) -> Result<Output, SshError> {
        {
            let mut up = self
                .master_up
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if !*up && !self.control_path().exists() {
                let out = self.retrying(self.options.connection_tries, on_retry, || {
                    let cmd = self.master_running_cmd(remote);
                    tracing::debug!(machine = %self.machine, cmd = %cmd, "starting SSH master");
                    let out = cmd.output_unchecked().map_err(|source| SshError::Exec {
                        machine: self.machine.clone(),
                        source,
                    })?;
                    // 255 is ssh's own failure status (or the command's: stderr decides).
                    match (out.code() == 255).then(|| self.classify(&out.stderr)) {
                        Some(Some(err)) => Err(err),
                        _ => Ok(out),
                    }
                })?;
                *up = self.control_path().exists();
                return Ok(out);
            }
        }
        self.run_unchecked(remote)
    }

    /// One attempt at starting the master. Its stderr goes to a file: with `-f` the
    /// master keeps it open after the starting command returned, and a pipe would
    /// have nobody reading it.
    fn start_master(&self) -> Result<(), SshError> {
        let starting = self.spawn_master()?;
        self.wait_master(starting)
    }

    /// Start the master without waiting for it to connect; then either
    /// [`SshSession::finish_master`] or [`SshSession::abort_master`].
    pub fn spawn_master(&self) -> Result<StartingMaster, SshError> {
        let cmd = self.master_cmd();
        tracing::debug!(machine = %self.machine, cmd = %cmd, "starting SSH master");
        let io_err = |source| SshError::Io {
            machine: self.machine.clone(),
            source,
        };
        let log_path = self.master_log();
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err)?;
        let log_start = log.metadata().map_err(io_err)?.len();
        let child = cmd
            .to_command()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|source| SshError::Exec {
                machine: self.machine.clone(),
                source: ExecError::Spawn {
                    cmd: cmd.to_string(),
                    source,
                },
            })?;
        Ok(StartingMaster { child, log_start })
    }

    /// Wait for a master started by [`SshSession::spawn_master`]; once it is
    /// connected, this session's commands go through it.
    pub fn finish_master(&self, starting: StartingMaster) -> Result<(), SshError> {
        let mut up = self
            .master_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.wait_master(starting)?;
        *up = true;
        Ok(())
    }

    /// Give up on a master started by [`SshSession::spawn_master`]: stop it if
    /// it is still connecting, close it if it is up.
    pub fn abort_master(&self, mut starting: StartingMaster) {
        // Killing the starting command stops a handshake in progress; once it has
        // put the master in the background, it has exited and the kill is a no-op.
        let _ = starting.child.kill();
        let _ = starting.child.wait();
        if self.control_path().exists() {
            *self
                .master_up
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
            self.disconnect();
        }
    }

    fn wait_master(&self, mut starting: StartingMaster) -> Result<(), SshError> {
        let io_err = |source| SshError::Io {
            machine: self.machine.clone(),
            source,
        };
        let status = starting.child.wait().map_err(io_err)?;
        if status.success() {
            return Ok(());
        }
        let all = fs::read(self.master_log()).map_err(io_err)?;
        let start = usize::try_from(starting.log_start)
            .unwrap_or(0)
            .min(all.len());
        let stderr = &all[start..];
        Err(self
            .classify(stderr)
            .unwrap_or_else(|| self.connect_error(stderr)))
    }

    fn connect_error(&self, stderr: &[u8]) -> SshError {
        SshError::Connect {
            machine: self.machine.clone(),
            target: self.target.destination(),
            stderr: tail(stderr),
        }
    }

    /// The ssh-level failure that stderr shows, if any: a host key mismatch or a
    /// failure to reach or log in to the host (for commands ending with status 255).
    fn classify(&self, stderr: &[u8]) -> Option<SshError> {
        let text = String::from_utf8_lossy(stderr);
        if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
            || text.contains("Host key verification failed")
        {
            return Some(match self.host_keys {
                HostKeys::UserKnownHosts => SshError::HostKeyRejected {
                    machine: self.machine.clone(),
                    host: self.target.host.clone(),
                    stderr: tail(stderr),
                },
                _ => SshError::HostKeyChanged {
                    machine: self.machine.clone(),
                    host: self.target.host.clone(),
                },
            });
        }
        const CONNECT_SIGNS: [&str; 9] = [
            "ssh: connect to host",
            "ssh: Could not resolve hostname",
            "Connection refused",
            "Connection timed out",
            "Connection reset",
            "Connection closed by",
            "No route to host",
            "Permission denied (",
            "kex_exchange_identification",
        ];
        CONNECT_SIGNS
            .iter()
            .any(|sign| text.contains(sign))
            .then(|| self.connect_error(stderr))
    }

    /// Shut the master down (`ssh -O exit`), e.g. after a reboot; the next command
    /// starts a new one.
    pub fn disconnect(&self) {
        let mut up = self
            .master_up
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let socket = self.control_path();
        if socket.exists() {
            // A master that is already gone is what we want; nothing to report.
            let _ = self.control_cmd("exit").output_unchecked();
            // `-O exit` returns before the master has removed its socket; wait for
            // it so that the next connect does not find a dying master.
            let deadline = std::time::Instant::now() + Duration::from_secs(2);
            while socket.exists() && std::time::Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        *up = false;
    }

    /// `ssh -o ControlPath=<sock> <flags> -x <user@host> -- <remote>`.
    pub fn remote_cmd(&self, remote: &Remote) -> Cmd {
        Cmd::new("ssh")
            .arg("-o")
            .arg(self.control_opt())
            .args(self.ssh_flags())
            .arg("-x")
            .arg(self.target.destination())
            .arg("--")
            .arg(remote.as_str())
    }

    /// The ssh command running `argv` on the machine, every word quoted.
    pub fn command(&self, argv: &[&str]) -> Cmd {
        self.remote_cmd(&Remote::argv(argv))
    }

    /// The ssh command running a shell snippet whose variable parts the caller quoted.
    pub fn shell(&self, script: &str) -> Cmd {
        self.remote_cmd(&Remote::shell(script))
    }

    /// Run `remote`; a non-zero exit is [`SshError::CommandFailed`].
    pub fn run(&self, remote: &Remote) -> Result<Output, SshError> {
        self.run_inner(remote, None, &mut |_, _| {}, true)
    }

    /// Run `remote` whatever its exit status (read it from the output); only failing
    /// to reach the machine is an error.
    pub fn run_unchecked(&self, remote: &Remote) -> Result<Output, SshError> {
        self.run_inner(remote, None, &mut |_, _| {}, false)
    }

    /// Run `remote`, delivering its output lines as they arrive; a non-zero exit is
    /// [`SshError::CommandFailed`].
    pub fn run_streaming(
        &self,
        remote: &Remote,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Output, SshError> {
        self.run_inner(remote, None, on_line, true)
    }

    /// [`SshSession::run_streaming`] whatever the exit status.
    pub fn run_streaming_unchecked(
        &self,
        remote: &Remote,
        on_line: &mut dyn FnMut(Stream, &str),
    ) -> Result<Output, SshError> {
        self.run_inner(remote, None, on_line, false)
    }

    /// Run `remote` with `stdin` as its standard input (e.g. key contents, which never
    /// appear in logs or errors); a non-zero exit is [`SshError::CommandFailed`].
    pub fn run_with_stdin(&self, remote: &Remote, stdin: Vec<u8>) -> Result<Output, SshError> {
        self.run_inner(remote, Some(stdin), &mut |_, _| {}, true)
    }

    /// Run `remote` with `stdin` as its standard input, whatever its exit status.
    pub fn run_unchecked_with_stdin(
        &self,
        remote: &Remote,
        stdin: Vec<u8>,
    ) -> Result<Output, SshError> {
        self.run_inner(remote, Some(stdin), &mut |_, _| {}, false)
    }

    fn run_inner(
        &self,
        remote: &Remote,
        stdin: Option<Vec<u8>>,
        on_line: &mut dyn FnMut(Stream, &str),
        check: bool,
    ) -> Result<Output, SshError> {
        self.connect()?;
        let mut cmd = self.remote_cmd(remote);
        if let Some(bytes) = stdin {
            cmd = cmd.stdin_bytes(bytes);
        }
        let out = cmd
            .run_streaming_unchecked(on_line)
            .map_err(|source| SshError::Exec {
                machine: self.machine.clone(),
                source,
            })?;
        // 255 is ssh's own failure status (a remote command can exit 255 too, so the
        // stderr decides).
        if out.code() == 255 {
            if let Some(err) = self.classify(&out.stderr) {
                return Err(err);
            }
        }
        if check && !out.status.success() {
            return Err(SshError::CommandFailed {
                machine: self.machine.clone(),
                command: remote.to_string(),
                status: out.code(),
                stderr_tail: tail(&out.stderr),
            });
        }
        Ok(out)
    }

    /// `NIX_SSHOPTS` for Nix's own ssh: the machine's options plus our ControlPath.
    ///
    /// Nix splits this variable at whitespace without shell quoting, so an option
    /// containing a space (an identity file path with a space) cannot be passed.
    pub fn nix_sshopts(&self) -> String {
        let mut opts = self.ssh_flags();
        opts.push(format!("-o{}", self.control_opt()));
        opts.join(" ")
    }

    /// `NIX_SSHOPTS=… nix-copy-closure --to <user@host> [--use-substitutes] <path>`.
    /// Call [`SshSession::connect`] first so that it goes through the master.
    pub fn copy_closure(&self, path: &Path, use_substitutes: bool) -> Cmd {
        let mut cmd = Cmd::new("nix-copy-closure")
            .env("NIX_SSHOPTS", self.nix_sshopts())
            .arg("--to")
            .arg(self.target.destination());
        if use_substitutes {
            cmd = cmd.arg("--use-substitutes");
        }
        cmd.arg(path)
    }
}

impl Drop for SshSession {
    fn drop(&mut self) {
        self.disconnect();
    }
}

/// `nixops ssh`: `ssh -o ControlPath=<sock> <user flags> <machine flags> <user@host>
/// [-- <command…>]`, run interactively (no `-x`; the user's flags come first so they
/// win, ssh taking the first value of an option). The command words reach the remote
/// shell as ssh passes them, i.e. interpreted there, as with plain ssh.
pub fn interactive_ssh<S: AsRef<str>>(session: &SshSession, user_args: &[S]) -> Cmd {
    user_ssh(session, user_args, &[])
}

/// `ssh-for-each`: like [`interactive_ssh`] but non-interactive (`-x`), to be run
/// with output captured and prefixed by the machine name.
pub fn ssh_for_each_cmd<S: AsRef<str>>(session: &SshSession, user_args: &[S]) -> Cmd {
    user_ssh(session, user_args, &["-x"])
}

/// ssh to the machine with the user's flags first, then the machine's, then
/// `extra`; the user's command words, if any, after `--`.
fn user_ssh<S: AsRef<str>>(session: &SshSession, user_args: &[S], extra: &[&str]) -> Cmd {
    let (flags, command) = split_openssh_args(user_args);
    let mut cmd = Cmd::new("ssh")
        .arg("-o")
        .arg(session.control_opt())
        .args(flags)
        .args(session.ssh_flags())
        .args(extra)
        .arg(session.target.destination());
    if !command.is_empty() {
        cmd = cmd.arg("--").args(command);
    }
    cmd
}

/// The two sides of `nixops scp` as shown to the user (`<from> -> <to>`), the remote
/// one as `user@host:path`.
pub fn scp_endpoints(
    target: &SshTarget,
    direction: ScpDirection,
    src: &str,
    dst: &str,
) -> (String, String) {
    match direction {
        ScpDirection::From => (target.remote_path(src), dst.to_owned()),
        ScpDirection::To => (src.to_owned(), target.remote_path(dst)),
    }
}

/// `scp -r -o ControlPath=<sock> <machine flags, port as -P> [-C] <from> <to>`.
pub fn scp_cmd(session: &SshSession, direction: ScpDirection, src: &str, dst: &str) -> Cmd {
    let (from, to) = scp_endpoints(&session.target, direction, src, dst);
    let mut cmd = Cmd::new("scp")
        .arg("-r")
        .arg("-o")
        .arg(session.control_opt())
        .args(session.flags("-P"));
    if session.target.compress {
        cmd = cmd.arg("-C");
    }
    cmd.arg(from).arg(to)
}

#[cfg(test)]
mod tests;
