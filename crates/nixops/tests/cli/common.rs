//! `TestEnv`: run the built `nixops` binary in a cleared environment with its own
//! HOME, and render its result for snapshots.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub struct TestEnv {
    pub dir: tempfile::TempDir,
}

/// The result of one run: exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code and both streams, for a snapshot.
    pub fn render(&self) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\n{}", self.render());
        self
    }
}

impl TestEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("nixops-cli-")
            .tempdir()
            .expect("invariant: temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("invariant: mkdir home");
        TestEnv { dir }
    }

    pub fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The default state file under the test HOME.
    pub fn state(&self) -> PathBuf {
        self.home().join(".nixops/deployments.nixops")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("invariant: mkdir");
        }
        std::fs::write(&p, contents).expect("invariant: write");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nixops"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(args))
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("invariant: nixops runs");
        child
            .stdin
            .take()
            .expect("invariant: piped stdin")
            .write_all(stdin.as_bytes())
            .expect("invariant: write stdin");
        to_run(
            child
                .wait_with_output()
                .expect("invariant: nixops finishes"),
        )
    }

    pub fn run_cmd(&self, mut cmd: Command) -> Run {
        to_run(cmd.output().expect("invariant: nixops runs"))
    }

    /// Replace this environment's temp dir, UUIDs and times by placeholders.
    pub fn filters(&self) -> Vec<(String, String)> {
        vec![
            (
                regex_escape(&self.dir.path().to_string_lossy()),
                "[TMP]".to_owned(),
            ),
            (
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_owned(),
                "[UUID]".to_owned(),
            ),
        ]
    }

    /// Create a deployment from a network file and return its UUID.
    pub fn create(&self, name: &str) -> String {
        let net = self.write(
            "network.nix",
            "{ network.description = \"Test network\"; }\n",
        );
        let out = self
            .run(&["create", &net.to_string_lossy(), "-d", name])
            .ok();
        out.stdout.trim().to_owned()
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Snapshot a run with this environment's filters.
#[macro_export]
macro_rules! snap {
    ($env:expr, $run:expr) => {{
        let filters = $env.filters();
        let filters: Vec<(&str, &str)> = filters
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        insta::with_settings!({filters => filters}, {
            insta::assert_snapshot!($run.render());
        });
    }};
}

/// The bytes of a file, to check that a failed command changed nothing.
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// All rows of a state file, as `sqlite3 .dump` prints them (WAL included).
pub fn dump(path: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(".dump")
        .output()
        .expect("invariant: the sqlite3 program is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
