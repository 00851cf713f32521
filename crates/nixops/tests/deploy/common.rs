//! `DeployEnv`: one test network of real hosts plus a private HOME and state
//! file, and the `nixops` binary run against them with a cleared environment.
//! Helpers read what the hosts show (profiles, files, HTTP answers) and what
//! `nixops` reported (`--events` JSON lines, `info --json`). No assertion about
//! a particular test lives here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nixops_testkit::{Network, TestHost};

/// The name every test gives its deployment.
pub const DEPLOYMENT: &str = "test";

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The project's mini NixOS, used as `<nixpkgs>`.
pub fn mini_nixpkgs() -> PathBuf {
    repo_root().join("tests/fixtures/mini-nixpkgs")
}

/// What this suite needs from the machine, or why it cannot run.
fn prerequisites() -> Result<(), String> {
    nixops_testkit::prerequisites().map_err(|e| e.to_string())?;
    for prog in [
        "nix-build",
        "nix-instantiate",
        "nix-store",
        "nix-env",
        "grep",
    ] {
        let found = Command::new("sh")
            .args(["-c", "command -v \"$1\" >/dev/null", "sh", prog])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !found {
            return Err(format!("‘{prog}’ is not on PATH (install nix-bin)"));
        }
    }
    if !mini_nixpkgs().join("default.nix").exists() {
        return Err(format!("{} is missing", mini_nixpkgs().display()));
    }
    Ok(())
}

// A skipped test can only say so on stderr.
#[allow(clippy::print_stderr)]
fn say_skipped(reason: &str) {
    eprintln!("SKIPPED (prerequisite missing; with CI set this fails): {reason}");
}

/// The result of one `nixops` run.
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

    /// Assert success and return self.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "nixops failed:\n{}", self.render());
        self
    }

    /// Assert failure and return self.
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

    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
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

/// One `--events` JSON line.
#[derive(Clone, Debug)]
pub struct Ev {
    /// Seconds since the epoch.
    pub time: f64,
    pub machine: Option<String>,
    pub phase: String,
    pub status: String,
    pub message: Option<String>,
    pub error: Option<String>,
    pub store_path: Option<String>,
}

/// The events of one deploy.
#[derive(Clone, Debug, Default)]
pub struct Events(pub Vec<Ev>);

impl Events {
    pub fn read(path: &Path) -> Events {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let evs = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .unwrap_or_else(|e| panic!("events line is not JSON ({e}): {l}"));
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_owned);
                Ev {
                    time: v["time"].as_f64().expect("every event has a time"),
                    machine: s("machine"),
                    phase: s("phase").expect("every event has a phase"),
                    status: s("status").expect("every event has a status"),
                    message: s("message"),
                    error: s("error"),
                    store_path: s("store_path"),
                }
            })
            .collect();
        Events(evs)
    }

    /// Whether `machine` had an event of `phase` with `status`.
    pub fn has(&self, machine: &str, phase: &str, status: &str) -> bool {
        self.0.iter().any(|e| {
            e.machine.as_deref() == Some(machine) && e.phase == phase && e.status == status
        })
    }

    /// The machines with an event of `phase` and `status`, sorted, deduplicated.
    pub fn machines_with(&self, phase: &str, status: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .0
            .iter()
            .filter(|e| e.phase == phase && e.status == status)
            .filter_map(|e| e.machine.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Every machine any event is about, sorted, deduplicated.
    pub fn machines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.0.iter().filter_map(|e| e.machine.clone()).collect();
        out.sort();
        out.dedup();
        out
    }

    /// The first event of `machine` with `phase` and `status`.
    pub fn find(&self, machine: &str, phase: &str, status: &str) -> Option<&Ev> {
        self.0.iter().find(|e| {
            e.machine.as_deref() == Some(machine) && e.phase == phase && e.status == status
        })
    }

    /// The `error` of `machine`'s failed event, if any.
    pub fn failure(&self, machine: &str) -> Option<String> {
        self.0
            .iter()
            .find(|e| e.machine.as_deref() == Some(machine) && e.status == "failed")
            .and_then(|e| e.error.clone())
    }
}

/// A network of test hosts, a temp dir with HOME and state, and a deployment
/// named [`DEPLOYMENT`] once [`DeployEnv::create`] ran.
pub struct DeployEnv {
    // Field order: the network goes before the directory it may use.
    pub net: Network,
    pub dir: tempfile::TempDir,
    agent: PathBuf,
    runs: AtomicUsize,
    /// The UUID of the created deployment.
    uuid: Mutex<Option<String>>,
}

impl Drop for DeployEnv {
    /// Remove the deployment's rollback profile (generations of the
    /// deployer's own profiles, gc roots of this test's builds).
    fn drop(&mut self) {
        let uuid = self.uuid.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(uuid) = uuid else { return };
        let Ok(users) = std::fs::read_dir(PER_USER_PROFILES) else {
            return;
        };
        for user in users.flatten() {
            let dir = user.path().join("nixops");
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name == uuid || name.starts_with(&format!("{uuid}-")) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

/// Where deployments' rollback profiles live.
const PER_USER_PROFILES: &str = "/nix/var/nix/profiles/per-user";

impl DeployEnv {
    /// Bring up hosts with these names. Without the prerequisites this returns
    /// `None` (the test is skipped with a message), except under `CI`, where
    /// it panics: CI must never pass a test that did not run.
    pub fn new(names: &[&str]) -> Option<DeployEnv> {
        if let Err(reason) = prerequisites() {
            if std::env::var_os("CI").is_some() {
                panic!("deploy tests cannot run: {reason}");
            }
            say_skipped(&reason);
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("nixops-deploy-test-")
            .tempdir()
            .expect("temp dir");
        std::fs::create_dir_all(dir.path().join("home")).expect("mkdir home");
        let mut net = Network::new().expect("test network comes up");
        net.add_named_hosts(names).expect("test hosts come up");
        let agent = net.ssh_agent().expect("ssh-agent starts");
        let env = DeployEnv {
            net,
            dir,
            agent,
            runs: AtomicUsize::new(0),
            uuid: Mutex::new(None),
        };
        env.write_hosts();
        Some(env)
    }

    pub fn host(&self, name: &str) -> &TestHost {
        self.net.host(name).expect("host exists")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let p = self.path(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, contents).expect("write");
        p
    }

    /// A string unique to this environment, for configurations no other test
    /// builds.
    pub fn nonce(&self) -> String {
        self.dir
            .path()
            .file_name()
            .expect("temp dir has a name")
            .to_string_lossy()
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    }

    /// `hosts.nix`: every host's `deployment.targetHost`.
    pub fn write_hosts(&self) -> PathBuf {
        let mut text = String::from("{\n");
        for h in self.net.hosts() {
            text.push_str(&format!(
                "  {} = {{ deployment.targetHost = \"{}\"; }};\n",
                h.name(),
                h.ip()
            ));
        }
        text.push_str("}\n");
        self.write("hosts.nix", &text)
    }

    pub fn state_file(&self) -> PathBuf {
        self.path("state.nixops")
    }

    /// `nixops ARGS` with a cleared environment: HOME, PATH, the state file,
    /// the agent, and a Nix configuration without any binary cache.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nixops"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.path("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NIXOPS_STATE", self.state_file())
            .env("SSH_AUTH_SOCK", &self.agent)
            .env("NIX_CONFIG", "substituters =\nbuild-users-group =\n")
            .env("NO_COLOR", "1")
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn nixops(&self, args: &[&str]) -> Run {
        self.command(args).output().expect("nixops runs").into()
    }

    /// `nixops create FILES -d test -I nixpkgs=<mini-nixpkgs>`.
    pub fn create(&self, files: &[&Path]) -> Run {
        let nixpkgs = format!("nixpkgs={}", mini_nixpkgs().display());
        let mut args: Vec<String> = vec!["create".into()];
        args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
        args.extend(["-d".into(), DEPLOYMENT.into(), "-I".into(), nixpkgs]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.nixops(&argv);
        let uuid = run.stdout.trim();
        if run.code == 0 && !uuid.is_empty() {
            *self.uuid.lock().unwrap_or_else(|e| e.into_inner()) = Some(uuid.to_owned());
        }
        run
    }

    /// Write `network.nix` with `text`, and create the deployment from it and
    /// `hosts.nix`.
    pub fn create_network(&self, text: &str) {
        let net = self.write("network.nix", text);
        let hosts = self.path("hosts.nix");
        self.create(&[&net, &hosts]).ok();
    }

    fn next_events_file(&self) -> PathBuf {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        self.path(&format!("events-{n}.jsonl"))
    }

    /// `nixops deploy -d test --events FILE EXTRA`: the run and its events.
    pub fn deploy(&self, extra: &[&str]) -> (Run, Events) {
        let events = self.next_events_file();
        let events_arg = events.to_string_lossy().into_owned();
        let mut args = vec!["deploy", "-d", DEPLOYMENT, "--events", &events_arg];
        args.extend_from_slice(extra);
        let run = self.nixops(&args);
        (run, Events::read(&events))
    }

    /// Like [`DeployEnv::deploy`], without the ssh-agent: only keys nixops
    /// holds itself can log in.
    pub fn deploy_without_agent(&self, extra: &[&str]) -> (Run, Events) {
        let events = self.next_events_file();
        let events_arg = events.to_string_lossy().into_owned();
        let mut args = vec!["deploy", "-d", DEPLOYMENT, "--events", &events_arg];
        args.extend_from_slice(extra);
        let mut cmd = self.command(&args);
        cmd.env_remove("SSH_AUTH_SOCK");
        let run: Run = cmd.output().expect("nixops runs").into();
        (run, Events::read(&events))
    }

    /// Start a deploy in the background; returns the child and its events file.
    pub fn spawn_deploy(&self, extra: &[&str]) -> (Child, PathBuf) {
        let events = self.next_events_file();
        let events_arg = events.to_string_lossy().into_owned();
        let mut args = vec!["deploy", "-d", DEPLOYMENT, "--events", &events_arg];
        args.extend_from_slice(extra);
        let child = self
            .command(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nixops starts");
        (child, events)
    }

    /// `nixops info --no-eval --json`.
    pub fn info_json(&self) -> serde_json::Value {
        let run = self
            .nixops(&["info", "-d", DEPLOYMENT, "--no-eval", "--json"])
            .ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("info --json is not JSON ({e}):\n{}", run.stdout))
    }

    /// Machine name → status column of `info --no-eval`.
    pub fn statuses(&self) -> BTreeMap<String, String> {
        let info = self.info_json();
        let machines = info["machines"].as_array().cloned().unwrap_or_default();
        machines
            .iter()
            .map(|m| {
                (
                    m["name"].as_str().unwrap_or_default().to_owned(),
                    m["status"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    }

    /// The recorded `configsPath` of the deployment, if any.
    pub fn configs_path(&self) -> Option<PathBuf> {
        self.info_json()["configsPath"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    }

    /// The deployment as `nixops export` shows it.
    pub fn export(&self) -> serde_json::Value {
        let run = self.nixops(&["export", "-d", DEPLOYMENT]).ok();
        serde_json::from_str(&run.stdout).expect("export is JSON")
    }

    /// Run a command on a host; panics unless it succeeds.
    pub fn on(&self, host: &str, argv: &[&str]) -> String {
        let out = self
            .host(host)
            .exec(argv)
            .unwrap_or_else(|e| panic!("{argv:?} on {host}: {e}"));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Whether `path` exists on the host.
    pub fn exists_on(&self, host: &str, path: &str) -> bool {
        self.host(host)
            .exec_unchecked(&["test", "-e", path])
            .unwrap_or_else(|e| panic!("test -e on {host}: {e}"))
            .status
            .success()
    }

    /// What `/nix/var/nix/profiles/system` resolves to on the host, if it exists.
    pub fn system_of(&self, host: &str) -> Option<String> {
        let out = self
            .host(host)
            .exec_unchecked(&["readlink", "-e", "/nix/var/nix/profiles/system"])
            .unwrap_or_else(|e| panic!("readlink on {host}: {e}"));
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The body of `GET /` on the host's port 80, retried for a few seconds
    /// (the service may still be starting); `None` if it never answered.
    pub fn http_get(&self, host: &str) -> Option<String> {
        let addr = SocketAddr::from((self.host(host).ip(), 80));
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(body) = http_once(addr) {
                return Some(body);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn http_once(addr: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET / HTTP/1.0\r\nHost: {}\r\nConnection: close\r\n\r\n",
        addr.ip()
    )
    .ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/").then(|| body.to_owned())
}

/// Wait until `pred` holds on the events written so far, at most `timeout`.
pub fn wait_for_event(path: &Path, timeout: Duration, pred: impl Fn(&Events) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if pred(&Events::read(path)) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Wait for a child started by [`DeployEnv::spawn_deploy`].
pub fn finish(child: Child) -> Run {
    child.wait_with_output().expect("nixops finishes").into()
}

/// Every entry name of a directory, sorted.
pub fn dir_entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// A machine configuration serving `message` with toyweb.
pub fn web(message: &str) -> String {
    format!("{{ services.toyweb = {{ enable = true; message = \"{message}\"; }}; }}")
}
