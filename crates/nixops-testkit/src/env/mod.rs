//! Test environments for the `nixops` binary: [`TestEnv`] (a temp directory
//! with its own HOME, the binary run with a cleared environment, its result as
//! a [`Run`], and [`Filters`] that make that result stable for snapshots) and
//! [`NetEnv`] (the same plus a [`Network`](crate::Network) of named test hosts
//! and a deployment on them). Also the `--events` reader ([`Events`]) and the
//! [`snap!`](crate::snap) macro.
//!
//! This module only runs the binary and reads what it and the hosts show; no
//! assertion about a particular command's behaviour lives here. The binary's
//! path comes from the caller (`env!("CARGO_BIN_EXE_nixops")` exists only in
//! the tests of the crate that builds it).

mod events;
mod net;

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub use events::{wait_for_event, Ev, Events};
pub use net::{NetEnv, DEPLOYMENT};

/// `nixops` options that keep Nix off any binary cache, for commands that
/// should say so on their command line (the environment already does, through
/// `NIX_CONFIG`).
pub const NO_CACHE: [&str; 6] = [
    "--option",
    "substituters",
    "",
    "--option",
    "build-users-group",
    "",
];

/// The `NIX_CONFIG` every run gets: no binary cache, no build users (tests run
/// as root without the `nixbld` group).
const NIX_CONFIG: &str = "substituters =\nbuild-users-group =\n";

/// The repository root, found from this crate's manifest directory.
pub fn repo_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// The project's mini NixOS, used as `<nixpkgs>`.
pub fn mini_nixpkgs() -> PathBuf {
    repo_root().join("tests/fixtures/mini-nixpkgs")
}

/// The result of one run of the binary.
#[derive(Clone, Debug)]
pub struct Run {
    /// The exit code; -1 when killed by a signal.
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Exit code and both streams, for a snapshot or a failure message.
    pub fn render(&self) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    /// Assert success and return self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "nixops failed:\n{}", self.render());
        self
    }

    /// Assert failure (any non-zero code) and return self.
    #[track_caller]
    pub fn failed(self) -> Self {
        assert_ne!(
            self.code,
            0,
            "nixops should have failed:\n{}",
            self.render()
        );
        self
    }

    /// Assert that the run exited with `code` and return self.
    #[track_caller]
    pub fn failed_with(self, code: i32) -> Self {
        assert_eq!(
            self.code,
            code,
            "nixops should have failed:\n{}",
            self.render()
        );
        self
    }

    /// stdout followed by stderr.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }

    /// Machines log in parallel: keep each machine's `machine> ` lines of
    /// stderr in order but group them by machine (other lines last), so that
    /// a snapshot does not depend on timing.
    pub fn stable(mut self) -> Self {
        let mut lines: Vec<&str> = self.stderr.lines().collect();
        lines.sort_by_key(|l| match l.split_once("> ") {
            Some((m, _)) if !m.contains(' ') && !m.is_empty() => m.trim_end_matches('.').to_owned(),
            _ => String::from("~"),
        });
        self.stderr = lines.iter().map(|l| format!("{l}\n")).collect();
        self
    }

    /// Wait for a child started from [`TestEnv::command`] with piped output.
    pub fn wait(child: Child) -> Run {
        child.wait_with_output().expect("nixops finishes").into()
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Regex replacements applied to a snapshot, in order: what changes from run
/// to run (temp paths, UUIDs, store hashes, addresses) becomes a placeholder.
#[derive(Clone, Debug, Default)]
pub struct Filters(Vec<(String, String)>);

impl Filters {
    /// No replacements.
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Replace the literal `text` by `placeholder`.
    pub fn literal(self, text: &str, placeholder: &str) -> Filters {
        self.regex(&regex_escape(text), placeholder)
    }

    /// Replace matches of the regex `re` by `placeholder`.
    pub fn regex(mut self, re: &str, placeholder: &str) -> Filters {
        self.0.push((re.to_owned(), placeholder.to_owned()));
        self
    }

    /// Replace UUIDs by `[UUID]`.
    pub fn uuids(self) -> Filters {
        self.regex(
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[UUID]",
        )
    }

    /// Replace the hash part of store paths: `/nix/store/[HASH]-name`.
    pub fn store_hashes(self) -> Filters {
        self.regex("/nix/store/[0-9a-z]{32}-", "/nix/store/[HASH]-")
    }

    /// The replacements as `insta`'s `filters` setting takes them.
    pub fn pairs(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect()
    }
}

/// `s` with every regex metacharacter escaped.
pub fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A temp directory holding HOME (`home/`) and the test's files, and the
/// binary run there with a cleared environment: HOME, PATH, `NO_COLOR=1`, a
/// `NIX_CONFIG` without binary cache or build users, and what
/// [`TestEnv::set_var`] added. stdin is empty unless given.
pub struct TestEnv {
    dir: tempfile::TempDir,
    bin: PathBuf,
    vars: Vec<(OsString, OsString)>,
    state: PathBuf,
}

impl TestEnv {
    /// A fresh environment running the binary at `bin`. The state file is
    /// the default one under HOME until [`TestEnv::use_state_file`].
    pub fn new(bin: impl Into<PathBuf>) -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("nixops-test-")
            .tempdir()
            .expect("a temp dir can be created");
        std::fs::create_dir_all(dir.path().join("home")).expect("HOME can be created");
        let state = dir.path().join("home/.nixops/deployments.nixops");
        TestEnv {
            dir,
            bin: bin.into(),
            vars: Vec::new(),
            state,
        }
    }

    /// The temp directory (the binary's working directory).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The binary's HOME.
    pub fn home(&self) -> PathBuf {
        self.path("home")
    }

    /// The state file runs use by default.
    pub fn state(&self) -> PathBuf {
        self.state.clone()
    }

    /// Make `rel` (in the temp dir) the state file, through `NIXOPS_STATE`.
    pub fn use_state_file(&mut self, rel: &str) {
        self.state = self.path(rel);
        let state = self.state.clone();
        self.set_var("NIXOPS_STATE", state);
    }

    /// Set an environment variable for every later run.
    pub fn set_var(&mut self, key: impl Into<OsString>, value: impl Into<OsString>) {
        let key = key.into();
        self.vars.retain(|(k, _)| *k != key);
        self.vars.push((key, value.into()));
    }

    /// `rel` in the temp dir.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Write `contents` to `rel` in the temp dir (creating directories).
    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        self.write_bytes(rel, contents.as_bytes())
    }

    /// Write `contents` to `rel` in the temp dir (creating directories).
    pub fn write_bytes(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("a test directory can be created");
        }
        std::fs::write(&p, contents).expect("a test file can be written");
        p
    }

    /// A string unique to this environment (letters and digits), for
    /// configurations no other test builds.
    pub fn nonce(&self) -> String {
        self.dir
            .path()
            .file_name()
            .expect("the temp dir has a name")
            .to_string_lossy()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    }

    /// The binary with `args`, ready to run in this environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.args(args)
            .env_clear()
            .env("HOME", self.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("NIX_CONFIG", NIX_CONFIG)
            .envs(self.vars.iter().map(|(k, v)| (k, v)))
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    /// Run the binary with `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_cmd(self.command(args))
    }

    /// Run the binary with `args` and `stdin` as its input.
    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("nixops starts");
        child
            .stdin
            .take()
            .expect("stdin is piped")
            .write_all(stdin.as_bytes())
            .expect("nixops reads its stdin");
        Run::wait(child)
    }

    /// Run a command made by [`TestEnv::command`] (and changed by the test).
    pub fn run_cmd(&self, mut cmd: Command) -> Run {
        cmd.output().expect("nixops runs").into()
    }

    /// The temp dir as `[TMP]`, UUIDs as `[UUID]`.
    pub fn filters(&self) -> Filters {
        Filters::new()
            .literal(&self.dir.path().to_string_lossy(), "[TMP]")
            .uuids()
    }

    /// Create deployment `name` from a network with only a description;
    /// returns its UUID.
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

/// The bytes of a file (empty if it does not exist), to check that a failed
/// command changed nothing.
pub fn bytes(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

/// All rows of a state file, as `sqlite3 .dump` prints them (WAL included).
pub fn dump(path: &Path) -> String {
    let out = Command::new("sqlite3")
        .arg(path)
        .arg(".dump")
        .output()
        .expect("the sqlite3 program is installed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Every entry name of a directory, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("a readable dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// Snapshot `text` (a `String` or `&str`, e.g. `run.render()`) with `insta`,
/// through the environment's [`filters`](TestEnv::filters). With three
/// arguments the second names the snapshot. The calling crate must depend on
/// `insta` (with its `filters` feature); the snapshot lands next to the
/// calling test file, named after the calling module.
#[macro_export]
macro_rules! snap {
    ($env:expr, $text:expr) => {{
        let filters = $env.filters();
        insta::with_settings!({filters => filters.pairs()}, {
            insta::assert_snapshot!($text);
        });
    }};
    ($env:expr, $name:expr, $text:expr) => {{
        let filters = $env.filters();
        insta::with_settings!({filters => filters.pairs()}, {
            insta::assert_snapshot!($name, $text);
        });
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_groups_lines_by_machine() {
        let run = Run {
            code: 0,
            stdout: String::new(),
            stderr: "web2> b1\nweb1.> a1\nerror: x\nweb2> b2\nweb1.> a2\n".to_owned(),
        };
        assert_eq!(
            run.stable().stderr,
            "web1.> a1\nweb1.> a2\nweb2> b1\nweb2> b2\nerror: x\n"
        );
    }

    #[test]
    fn regex_escape_escapes_metacharacters() {
        assert_eq!(regex_escape("/tmp/a.b+(c)"), r"/tmp/a\.b\+\(c\)");
    }

    #[test]
    fn the_environment_is_cleared_and_set() {
        let mut env = TestEnv::new("/bin/sh");
        env.use_state_file("state.nixops");
        let mut cmd = env.command(&["-c", "env"]);
        cmd.env("LC_ALL", "C");
        let run = env.run_cmd(cmd).ok();
        let mut vars: Vec<&str> = run
            .stdout
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            // Continuation lines of NIX_CONFIG are not variables.
            .filter(|k| k.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
            .filter(|k| !["PWD", "SHLVL", "_", "OLDPWD"].contains(k))
            .collect();
        vars.sort_unstable();
        assert_eq!(
            vars,
            [
                "HOME",
                "LC_ALL",
                "NIXOPS_STATE",
                "NIX_CONFIG",
                "NO_COLOR",
                "PATH"
            ]
        );
        assert!(run.stdout.contains(&format!(
            "NIXOPS_STATE={}",
            env.path("state.nixops").display()
        )));
        assert_eq!(env.state(), env.path("state.nixops"));
    }
}
