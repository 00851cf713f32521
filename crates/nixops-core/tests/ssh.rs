//! SSH sessions against a real OpenSSH server started by the test.
//!
//! Each test runs its own `sshd` on 127.0.0.1 with a throw-away host key and client
//! key. The server runs in a private mount namespace with an empty directory over
//! `/root`, so root's shell start-up files and `~/.ssh` of this machine play no part.
//! Needs root and `/usr/sbin/sshd`; fails (does not skip) without them.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nixops_core::exec::Stream;
use nixops_core::ssh::{
    interactive_ssh, scp_cmd, ssh_for_each_cmd, HostKeys, Remote, ScpDirection, SessionOptions,
    SshError, SshSession, SshTarget,
};

const SSHD: &str = "/usr/sbin/sshd";

/// A private sshd on 127.0.0.1.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success(), "ssh-keygen failed");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("bound").port()
}

impl Sshd {
    fn start() -> Sshd {
        assert!(
            Path::new(SSHD).exists(),
            "{SSHD} is required for the ssh tests"
        );
        let uid = Command::new("id").arg("-u").output().expect("id runs");
        assert_eq!(
            String::from_utf8_lossy(&uid.stdout).trim(),
            "0",
            "the ssh tests must run as root (sshd logs in as root)"
        );
        fs::create_dir_all("/run/sshd").expect("sshd's privilege separation directory");
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("client_key"));
        fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("copy");
        fs::create_dir(d.join("home")).expect("empty home");
        let mut sshd = Sshd {
            port: free_port(),
            dir,
            child: None,
        };
        sshd.spawn();
        sshd
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn spawn(&mut self) {
        let d = self.dir.path();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PidFile {d}/sshd.pid\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             LogLevel INFO\nMaxStartups 100\nMaxSessions 100\n\
             Subsystem sftp internal-sftp\n",
            port = self.port,
            d = d.display()
        );
        fs::write(d.join("sshd_config"), config).expect("write sshd_config");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(d.join("sshd.log"))
            .expect("log file");
        let script = format!(
            "mount --bind {home} /root && exec {SSHD} -D -e -f {d}/sshd_config",
            home = d.join("home").display(),
            d = d.display()
        );
        let child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("unshare/sshd start");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not listen: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stop listening (sessions already open stay up: they are separate processes).
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.path("sshd.log")).unwrap_or_default()
    }

    fn accepted_logins(&self) -> usize {
        self.log().matches("Accepted publickey").count()
    }

    /// The server's host key as `"<type> <base64>"`.
    fn host_key(&self) -> String {
        let text = fs::read_to_string(self.path("host_key.pub")).expect("host key");
        text.split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn target(&self) -> SshTarget {
        SshTarget {
            port: Some(self.port),
            identity: Some(self.path("client_key")),
            use_user_config: false,
            ..SshTarget::new("root", "127.0.0.1")
        }
    }

    fn session(&self, machine: &str, host_keys: HostKeys) -> SshSession {
        SshSession::new(machine, self.target(), host_keys, fast_options()).expect("session created")
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fast_options() -> SessionOptions {
    SessionOptions {
        connect_timeout: Duration::from_secs(5),
        connection_tries: 1,
        first_retry_delay: Duration::from_millis(100),
        ..SessionOptions::default()
    }
}

#[test]
fn learn_then_pin_then_detect_a_changed_host_key() {
    let mut sshd = Sshd::start();
    let learn = sshd.session("web1", HostKeys::Learn);
    assert_eq!(
        learn.learned_host_keys().expect("readable"),
        Vec::<String>::new()
    );
    let out = learn.run(&Remote::argv(&["echo", "hello"])).expect("runs");
    assert_eq!(out.stdout_text(), "hello");
    let learned = learn.learned_host_keys().expect("readable");
    assert_eq!(learned, [sshd.host_key()]);
    drop(learn);

    let pinned = sshd.session("web1", HostKeys::Pinned(learned.clone()));
    let out = pinned
        .run(&Remote::argv(&["true"]))
        .expect("pinned key accepted");
    assert!(out.status.success());
    drop(pinned);

    // The machine is reinstalled: new host key, same address.
    sshd.stop();
    fs::remove_file(sshd.path("host_key")).expect("remove");
    fs::remove_file(sshd.path("host_key.pub")).expect("remove");
    keygen(&sshd.path("host_key"));
    sshd.spawn();
    assert_ne!([sshd.host_key()], learned.as_slice());

    let pinned = sshd.session("web1", HostKeys::Pinned(learned));
    let err = pinned
        .run(&Remote::argv(&["true"]))
        .expect_err("invariant: the host key changed");
    match &err {
        SshError::HostKeyChanged { machine, host } => {
            assert_eq!(machine, "web1");
            assert_eq!(host, "127.0.0.1");
        }
        other => panic!("expected HostKeyChanged, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("‘web1’ (127.0.0.1)"), "{msg}");
    assert!(msg.contains("has changed"), "{msg}");
}

#[test]
fn arguments_arrive_verbatim_and_nothing_is_executed() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    let marker = sshd.path("pwned");
    let injection = format!("$(touch {})", marker.display());
    let backtick = format!("`touch {}`", marker.display());
    let words = [
        "a b",
        injection.as_str(),
        backtick.as_str(),
        "'",
        "\"",
        ";",
        "x; touch /nonexistent",
        "line1\nline2",
        "*",
        "",
        "-n",
        "~root",
        "$HOME",
        "\\",
    ];
    let mut argv = vec!["printf", "%s\\0"];
    argv.extend(words.iter().copied());
    let out = session.run(&Remote::argv(&argv)).expect("printf runs");
    let received: Vec<&[u8]> = out.stdout.split(|&b| b == 0).collect();
    let expected: Vec<&[u8]> = words
        .iter()
        .map(|w| w.as_bytes())
        .chain(std::iter::once(&b""[..]))
        .collect();
    assert_eq!(received, expected);
    assert!(!marker.exists(), "a remote shell expanded an argument");
}

#[test]
fn stdin_bytes_arrive_exactly_and_are_not_shown() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    let secret: Vec<u8> = (1u8..=255)
        .cycle()
        .take(100_000)
        .chain(b"TOP-SECRET-MARKER\n".iter().copied())
        .collect();
    let dest = sshd.path("uploaded");
    let remote = Remote::shell(format!(
        "umask 077 && cat > {}",
        nixops_core::exec::shell_quote(&dest.to_string_lossy())
    ));
    let shown = session.remote_cmd(&remote).stdin_bytes(secret.clone());
    let shown = format!("{shown} {shown:?}");
    assert!(!shown.contains("TOP-SECRET-MARKER"), "{shown}");
    session
        .run_with_stdin(&remote, secret.clone())
        .expect("upload works");
    assert_eq!(fs::read(&dest).expect("uploaded file"), secret);
}

#[test]
fn the_master_connection_is_reused() {
    let mut sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    for i in 0..5 {
        let out = session
            .run(&Remote::argv(&["echo", &i.to_string()]))
            .expect("runs");
        assert_eq!(out.stdout_text(), i.to_string());
    }
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());
    // With the server no longer accepting connections, the master still works.
    sshd.stop();
    let out = session
        .run(&Remote::argv(&["echo", "still here"]))
        .expect("runs over the master");
    assert_eq!(out.stdout_text(), "still here");

    // Closing the master and connecting again needs a new login.
    session.disconnect();
    assert!(!session.control_path().exists());
    sshd.spawn();
    session.run(&Remote::argv(&["true"])).expect("reconnects");
    assert_eq!(sshd.accepted_logins(), 2, "{}", sshd.log());
}

/// The first command can open the master itself: its output and status come
/// back, and the master stays up for the next commands, with one login in all.
#[test]
fn a_command_can_open_the_master() {
    let mut sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    let out = session
        .connect_running(&Remote::shell("echo hello; echo oops >&2; exit 3"))
        .expect("ran");
    assert_eq!(out.stdout_text(), "hello");
    // After ssh's own note that it learned the host key.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.ends_with("\noops\n"), "{stderr}");
    assert_eq!(out.code(), 3);
    assert!(session.control_path().exists(), "no master socket");
    // The server stops accepting connections: the rest goes over the master.
    sshd.stop();
    let out = session
        .run(&Remote::argv(&["echo", "again"]))
        .expect("runs");
    assert_eq!(out.stdout_text(), "again");
    // With the master up, it is an ordinary command.
    let out = session
        .connect_running(&Remote::argv(&["echo", "third"]))
        .expect("runs");
    assert_eq!(out.stdout_text(), "third");
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());
    assert!(!session.learned_host_keys().expect("read").is_empty());
}

/// A master started in the background is used once finished, and leaves
/// nothing behind when given up, whether it was still connecting or up.
#[test]
fn a_master_started_in_the_background_is_used_or_given_up() {
    let sshd = Sshd::start();
    let used = sshd.session("web1", HostKeys::Learn);
    let starting = used.spawn_master().expect("ssh starts");
    used.finish_master(starting).expect("connects");
    let out = used.run(&Remote::argv(&["echo", "up"])).expect("runs");
    assert_eq!(out.stdout_text(), "up");
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());

    // Given up at once: still connecting.
    let dropped = sshd.session("web2", HostKeys::Learn);
    let starting = dropped.spawn_master().expect("ssh starts");
    dropped.abort_master(starting);
    assert!(!dropped.control_path().exists());

    // Given up once up: the master is closed.
    let closed = sshd.session("web3", HostKeys::Learn);
    let starting = closed.spawn_master().expect("ssh starts");
    std::thread::sleep(Duration::from_millis(100));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !closed.control_path().exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(closed.control_path().exists(), "the master never came up");
    closed.abort_master(starting);
    assert!(!closed.control_path().exists(), "the master is still up");
}

/// Opening the master with a command retries an unreachable host as
/// `connect` does, and names the machine when it gives up.
#[test]
fn a_command_opening_the_master_retries_then_fails() {
    let session = unreachable("db3", 2, Duration::from_millis(300));
    let start = Instant::now();
    let err = session
        .connect_running(&Remote::argv(&["true"]))
        .expect_err("invariant: nothing listens");
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    assert!(err.to_string().contains("db3"), "{err}");
    assert!(start.elapsed() >= Duration::from_millis(300), "no retry");
}

#[test]
fn remote_exit_status_passes_through() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    let out = session
        .run_unchecked(&Remote::shell("echo oops >&2; exit 3"))
        .expect("ran");
    assert_eq!(out.code(), 3);
    let err = session
        .run(&Remote::shell("echo oops >&2; exit 3"))
        .expect_err("invariant: exits 3");
    match &err {
        SshError::CommandFailed {
            machine,
            command,
            status,
            stderr_tail,
        } => {
            assert_eq!(machine, "web1");
            assert_eq!(command, "echo oops >&2; exit 3");
            assert_eq!(*status, 3);
            assert_eq!(stderr_tail, "oops\n");
        }
        other => panic!("expected CommandFailed, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        "command ‘echo oops >&2; exit 3’ failed on machine ‘web1’ (exit code 3)"
    );
    // A remote 255 without ssh's own complaints is the command's status.
    let out = session
        .run_unchecked(&Remote::shell("exit 255"))
        .expect("ran");
    assert_eq!(out.code(), 255);
}

#[test]
fn a_dead_host_fails_fast_naming_the_machine() {
    let port = free_port(); // nothing listens there any more
    let target = SshTarget {
        port: Some(port),
        use_user_config: false,
        ..SshTarget::new("root", "127.0.0.1")
    };
    let session = SshSession::new("db2", target, HostKeys::Learn, fast_options()).expect("session");
    let start = Instant::now();
    let err = session
        .run(&Remote::argv(&["true"]))
        .expect_err("invariant: nothing listens");
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    match &err {
        SshError::Connect {
            machine, target, ..
        } => {
            assert_eq!(machine, "db2");
            assert_eq!(target, "root@127.0.0.1");
        }
        other => panic!("expected Connect, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.starts_with("unable to connect to machine ‘db2’"),
        "{msg}"
    );
    assert!(msg.contains("Connection refused"), "{msg}");
}

/// A session to a local port nothing listens on, with `tries` connection
/// tries `first_delay` apart (doubling).
fn unreachable(machine: &str, tries: u32, first_delay: Duration) -> SshSession {
    let target = SshTarget {
        port: Some(free_port()),
        use_user_config: false,
        ..SshTarget::new("root", "127.0.0.1")
    };
    let options = SessionOptions {
        connection_tries: tries,
        first_retry_delay: first_delay,
        ..fast_options()
    };
    SshSession::new(machine, target, HostKeys::Learn, options).expect("session")
}

#[test]
fn retries_back_off() {
    let session = unreachable("db2", 3, Duration::from_millis(200));
    let start = Instant::now();
    let err = session.connect().expect_err("invariant: nothing listens");
    let elapsed = start.elapsed();
    assert!(matches!(err, SshError::Connect { .. }), "{err:?}");
    // Three tries with pauses of 0.2 s and 0.4 s between them.
    assert!(
        elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5),
        "{elapsed:?}"
    );
}

#[test]
fn streaming_delivers_lines_in_order() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    let mut lines = Vec::new();
    let out = session
        .run_streaming(
            &Remote::shell("for i in 1 2 3 4 5; do echo line$i; sleep 0.1; done; echo done >&2"),
            &mut |stream, line| lines.push((stream, line.to_owned())),
        )
        .expect("runs");
    let expected: Vec<(Stream, String)> = (1..=5)
        .map(|i| (Stream::Stdout, format!("line{i}")))
        .chain(std::iter::once((Stream::Stderr, "done".to_owned())))
        .collect();
    assert_eq!(lines, expected);
    assert_eq!(out.stdout_text(), "line1\nline2\nline3\nline4\nline5");
}

#[test]
fn copy_closure_goes_through_the_master() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    session.connect().expect("master up");
    let file = sshd.path("payload");
    fs::write(&file, "payload").expect("write");
    let added = nixops_core::exec::Cmd::new("nix-store")
        .arg("--add")
        .arg(&file)
        .output()
        .expect("nix-store --add");
    let store_path = added.stdout_text();
    // The remote end is this machine's own store, so the copy has nothing to send;
    // what is tested is that nix-copy-closure logs in through our options.
    let out = session
        .copy_closure(Path::new(&store_path), false)
        .env("NIX_CONFIG", "substituters =")
        .output()
        .expect("nix-copy-closure succeeds");
    assert!(out.status.success());
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());
}

#[test]
fn one_session_serves_many_threads_with_one_master_and_drop_closes_it() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<SshSession>();

    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    std::thread::scope(|scope| {
        for i in 0..6 {
            let session = &session;
            scope.spawn(move || {
                let out = session
                    .run(&Remote::argv(&["echo", &format!("thread {i}")]))
                    .expect("runs");
                assert_eq!(out.stdout_text(), format!("thread {i}"));
            });
        }
    });
    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());

    let socket = session.control_path();
    let masters = || {
        Command::new("pgrep")
            .args(["-f", &socket.to_string_lossy()])
            .output()
            .expect("pgrep runs")
            .stdout
    };
    assert!(
        !masters().is_empty(),
        "the master runs while the session lives"
    );
    drop(session);
    assert!(masters().is_empty(), "the master outlived its session");
    assert!(!socket.exists());
}

#[test]
fn an_unknown_host_is_refused_without_a_prompt() {
    // The user's known_hosts cannot know this fresh key; BatchMode makes ssh refuse
    // instead of asking (stdin is not even a terminal here).
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::UserKnownHosts);
    let err = session
        .run(&Remote::argv(&["true"]))
        .expect_err("invariant: the host key is unknown");
    match &err {
        SshError::HostKeyRejected { machine, host, .. } => {
            assert_eq!(machine, "web1");
            assert_eq!(host, "127.0.0.1");
        }
        other => panic!("expected HostKeyRejected, got {other:?}"),
    }
    assert_eq!(sshd.accepted_logins(), 0);
}

#[test]
fn user_facing_commands_work_over_the_master() {
    let sshd = Sshd::start();
    let session = sshd.session("web1", HostKeys::Learn);
    session.connect().expect("master up");

    // `nixops ssh web1 -- exit 5`: the exit status is the command's.
    let code = interactive_ssh(&session, &["-q", "--", "exit", "5"])
        .run_interactive()
        .expect("ssh runs");
    assert_eq!(code, 5);

    // `ssh-for-each`: words are joined and interpreted by the remote shell, like ssh.
    let out = ssh_for_each_cmd(&session, &["echo", "$((6 * 7))"])
        .output()
        .expect("runs");
    assert_eq!(out.stdout_text(), "42");

    // `scp --to` then `scp --from`, a directory recursively.
    let local = sshd.path("local");
    fs::create_dir(&local).expect("mkdir");
    fs::write(local.join("f"), "content").expect("write");
    let remote = sshd.path("remote");
    scp_cmd(
        &session,
        ScpDirection::To,
        &local.to_string_lossy(),
        &remote.to_string_lossy(),
    )
    .output()
    .expect("scp --to");
    let back = sshd.path("back");
    scp_cmd(
        &session,
        ScpDirection::From,
        &remote.to_string_lossy(),
        &back.to_string_lossy(),
    )
    .output()
    .expect("scp --from");
    assert_eq!(
        fs::read_to_string(back.join("f")).expect("copied"),
        "content"
    );

    assert_eq!(sshd.accepted_logins(), 1, "{}", sshd.log());
}
