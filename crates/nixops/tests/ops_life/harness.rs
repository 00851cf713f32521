//! `OpsEnv`: test hosts, a state file and the `nixops` binary run in a cleared
//! environment, plus snapshot filters for temp paths, UUIDs, addresses and store
//! hashes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nixops_testkit::{Network, TestHost};

/// The result of one run of `nixops`.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn render(&self) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "nixops failed:\n{}", self.render());
        self
    }

    /// Machines log in parallel: keep each machine's lines in order but group
    /// them by machine, so that snapshots do not depend on timing.
    pub fn stable(mut self) -> Self {
        let mut lines: Vec<&str> = self.stderr.lines().collect();
        lines.sort_by_key(|l| match l.split_once("> ") {
            Some((m, _)) if !m.contains(' ') && !m.is_empty() => m.trim_end_matches('.').to_owned(),
            _ => String::from("~"),
        });
        self.stderr = lines.iter().map(|l| format!("{l}\n")).collect();
        self
    }

    pub fn failed(self) -> Self {
        assert_eq!(
            self.code,
            1,
            "nixops should have failed:\n{}",
            self.render()
        );
        self
    }
}

pub struct OpsEnv {
    /// Kept alive: dropping it tears the hosts down.
    _net: Network,
    pub hosts: Vec<TestHost>,
    agent: PathBuf,
    pub dir: tempfile::TempDir,
}

/// Test hosts need root, `ip`, `sshd` and Nix. Outside CI a machine without them
/// skips (saying so); under CI that is a failure.
#[allow(clippy::print_stderr)] // the skip reason must be visible in the test output
fn prerequisites_met() -> bool {
    let nix = Command::new("nix-build")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    let problem = match nixops_testkit::prerequisites() {
        Err(e) => Some(e.to_string()),
        Ok(()) if !nix => Some(String::from("nix-build is not installed")),
        Ok(()) => None,
    };
    match problem {
        None => true,
        Some(p) if std::env::var_os("CI").is_some() => {
            panic!("test hosts cannot run here (required under CI): {p}")
        }
        Some(p) => {
            eprintln!("SKIPPED: test hosts cannot run here: {p}");
            false
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("invariant: the repository exists")
}

impl OpsEnv {
    /// Hosts with these names, or `None` when the machine cannot run them.
    pub fn new(names: &[&str]) -> Option<OpsEnv> {
        if !prerequisites_met() {
            return None;
        }
        let mut net = Network::new().expect("test network starts");
        let hosts = net.add_named_hosts(names).expect("test hosts start");
        let agent = net.ssh_agent().expect("ssh agent starts");
        let dir = tempfile::Builder::new()
            .prefix("nixops-ops-")
            .tempdir()
            .expect("invariant: temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("invariant: mkdir home");
        Some(OpsEnv {
            _net: net,
            hosts,
            agent,
            dir,
        })
    }

    pub fn host(&self, name: &str) -> &TestHost {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .expect("invariant: the test asked for one of its hosts")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, contents).expect("invariant: write");
        p
    }

    /// `{ name = { deployment.targetHost = "<ip>"; }; ... }` for every host.
    pub fn hosts_nix(&self) -> String {
        let mut s = String::from("{\n");
        for h in &self.hosts {
            s.push_str(&format!(
                "  {} = {{ deployment.targetHost = \"{}\"; }};\n",
                h.name(),
                h.ip()
            ));
        }
        s.push_str("}\n");
        s
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nixops"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.path("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("NIXOPS_STATE", self.path("state.nixops"))
            .env("SSH_AUTH_SOCK", &self.agent)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn nixops(&self, args: &[&str]) -> Run {
        to_run(self.command(args).output().expect("invariant: nixops runs"))
    }

    pub fn nixops_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("invariant: nixops runs");
        child
            .stdin
            .take()
            .expect("invariant: piped stdin")
            .write_all(stdin.as_bytes())
            .expect("invariant: write stdin");
        to_run(child.wait_with_output().expect("invariant: nixops ends"))
    }

    /// `nixops create` of `network.nix` + the hosts file as deployment `d`, with
    /// the mini NixOS as `<nixpkgs>`.
    pub fn create(&self, network: &str) {
        let net = self.write("network.nix", network);
        let hosts = self.write("hosts.nix", &self.hosts_nix());
        let nixpkgs = format!(
            "nixpkgs={}",
            repo_root().join("tests/fixtures/mini-nixpkgs").display()
        );
        self.nixops(&[
            "create",
            &net.to_string_lossy(),
            &hosts.to_string_lossy(),
            "-d",
            "d",
            "-I",
            &nixpkgs,
        ])
        .ok();
    }

    /// `nixops <cmd> -d d <args> --option substituters '' --option build-users-group ''`.
    pub fn run(&self, cmd: &str, args: &[&str]) -> Run {
        self.nixops(&self.args(cmd, args))
    }

    pub fn run_with_stdin(&self, cmd: &str, args: &[&str], stdin: &str) -> Run {
        self.nixops_with_stdin(&self.args(cmd, args), stdin)
    }

    fn args<'a>(&self, cmd: &'a str, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = vec![cmd, "-d", "d"];
        all.extend_from_slice(args);
        all.extend([
            "--option",
            "substituters",
            "",
            "--option",
            "build-users-group",
            "",
        ]);
        all
    }

    pub fn deploy(&self) -> Run {
        self.run("deploy", &[]).ok()
    }

    /// Run `argv` on a host; its stdout, trimmed.
    pub fn on(&self, host: &str, argv: &[&str]) -> String {
        let out = self
            .host(host)
            .exec(argv)
            .expect("command runs on the host");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The Status cell of `machine` in `nixops info --no-eval`, if it is listed.
    pub fn status(&self, machine: &str) -> Option<String> {
        let info = self.run("info", &["--no-eval"]).ok();
        info.stdout.lines().find_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells.get(1) == Some(&machine)).then(|| cells[2].to_owned())
        })
    }

    /// `owner group mode` of a file on a host.
    pub fn stat(&self, host: &str, path: &str) -> String {
        self.on(host, &["stat", "-c", "%U %G %a", path])
    }

    /// The state of one machine as `nixops export` shows it.
    pub fn exported(&self, machine: &str) -> serde_json::Value {
        let run = self.run("export", &[]).ok();
        let all: serde_json::Value = serde_json::from_str(&run.stdout).expect("export prints JSON");
        let depl = all
            .as_object()
            .and_then(|o| o.values().next())
            .expect("one deployment");
        depl["resources"][machine].clone()
    }

    /// Temp dir, UUIDs, host addresses and store hashes as placeholders.
    pub fn filters(&self) -> Vec<(String, String)> {
        let mut f = vec![
            (
                regex_escape(&self.dir.path().to_string_lossy()),
                "[TMP]".to_owned(),
            ),
            (
                regex_escape(&repo_root().to_string_lossy()),
                "[REPO]".to_owned(),
            ),
            (
                "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_owned(),
                "[UUID]".to_owned(),
            ),
            (
                "/nix/store/[0-9a-z]{32}-".to_owned(),
                "/nix/store/[HASH]-".to_owned(),
            ),
        ];
        for h in &self.hosts {
            f.push((
                regex_escape(&h.ip().to_string()),
                format!("[{}-IP]", h.name()),
            ));
        }
        f
    }
}

/// Deleting the deployments removes their rollback profiles, which live outside
/// the test directory.
impl Drop for OpsEnv {
    fn drop(&mut self) {
        let _ = self.command(&["delete", "--all", "--force"]).output();
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

/// Snapshot a run with the environment's filters.
#[macro_export]
macro_rules! snap {
    ($env:expr, $name:expr, $run:expr) => {{
        let filters = $env.filters();
        let filters: Vec<(&str, &str)> = filters
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        insta::with_settings!({filters => filters}, {
            insta::assert_snapshot!($name, $run.render());
        });
    }};
}
