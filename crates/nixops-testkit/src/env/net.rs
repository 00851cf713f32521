//! [`NetEnv`]: a [`TestEnv`] plus a network of named test hosts, the
//! network's ssh-agent, `hosts.nix` pointing every machine at its host, the
//! mini NixOS as `<nixpkgs>`, and a deployment created and deployed on them.
//! Helpers read what `nixops` reported (`--events`, `info --json`, `export`)
//! and what the hosts show (commands, files, HTTP answers, system profile).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{mini_nixpkgs, regex_escape, repo_root, Events, Filters, Run, TestEnv};
use crate::{Network, TestHost};

/// The name of the deployment [`NetEnv::create`] creates.
pub const DEPLOYMENT: &str = "test";

/// Where deployments' rollback profiles live.
const PER_USER_PROFILES: &str = "/nix/var/nix/profiles/per-user";

/// Programs a deploy runs on this machine, besides what the testkit needs.
const NIX_PROGRAMS: [&str; 5] = [
    "nix-build",
    "nix-instantiate",
    "nix-store",
    "nix-env",
    "grep",
];

/// What running deployments on test hosts needs from this machine, or why it
/// cannot.
fn prerequisites() -> Result<(), String> {
    crate::prerequisites().map_err(|e| e.to_string())?;
    let path = std::env::var_os("PATH").unwrap_or_default();
    for prog in NIX_PROGRAMS {
        if !std::env::split_paths(&path).any(|dir| dir.join(prog).is_file()) {
            return Err(format!("‘{prog}’ is not on PATH (install nix-bin)"));
        }
    }
    if !mini_nixpkgs().join("default.nix").exists() {
        return Err(format!("{} is missing", mini_nixpkgs().display()));
    }
    Ok(())
}

/// A [`TestEnv`] (which it dereferences to) whose runs use the state file
/// `state.nixops` in the temp dir and the network's ssh-agent, plus the test
/// hosts. Dropping it tears the hosts down and removes the rollback profiles
/// of the deployments it created.
pub struct NetEnv {
    // Field order: the network goes before the directory it may use.
    net: Network,
    env: TestEnv,
    runs: AtomicUsize,
    /// The deployment `deploy`, `info_json` and `export` work on.
    deployment: Mutex<String>,
    /// The UUIDs of the deployments created, for their rollback profiles.
    uuids: Mutex<Vec<String>>,
}

impl Deref for NetEnv {
    type Target = TestEnv;

    fn deref(&self) -> &TestEnv {
        &self.env
    }
}

impl Drop for NetEnv {
    /// Remove the rollback profiles (and their generations) of the created
    /// deployments: they live outside the temp dir.
    fn drop(&mut self) {
        let uuids = std::mem::take(&mut *self.uuids.lock().unwrap_or_else(|e| e.into_inner()));
        if uuids.is_empty() {
            return;
        }
        let Ok(users) = std::fs::read_dir(PER_USER_PROFILES) else {
            return;
        };
        for user in users.flatten() {
            let Ok(entries) = std::fs::read_dir(user.path().join("nixops")) else {
                continue;
            };
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if uuids
                    .iter()
                    .any(|u| name == *u || name.starts_with(&format!("{u}-")))
                {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

impl NetEnv {
    /// Hosts with these names and `hosts.nix` for them, running the binary at
    /// `bin`. Without the prerequisites (root, `ip`, `sshd`, Nix) this returns
    /// `None` and says so on stderr (the test is skipped), except under `CI`,
    /// where it panics: CI must never pass a test that did not run.
    pub fn new(bin: impl Into<PathBuf>, names: &[&str]) -> Option<NetEnv> {
        if let Err(reason) = prerequisites() {
            if std::env::var_os("CI").is_some() {
                panic!("test hosts cannot run here (required under CI): {reason}");
            }
            say_skipped(&reason);
            return None;
        }
        let mut env = TestEnv::new(bin);
        let mut net = Network::new().expect("the test network comes up");
        net.add_named_hosts(names).expect("the test hosts come up");
        let agent = net.ssh_agent().expect("the ssh-agent starts");
        env.use_state_file("state.nixops");
        env.set_var("SSH_AUTH_SOCK", agent);
        let env = NetEnv {
            net,
            env,
            runs: AtomicUsize::new(0),
            deployment: Mutex::new(DEPLOYMENT.to_owned()),
            uuids: Mutex::new(Vec::new()),
        };
        env.write_hosts();
        Some(env)
    }

    /// The test network.
    pub fn network(&self) -> &Network {
        &self.net
    }

    /// The host named `name`.
    pub fn host(&self, name: &str) -> &TestHost {
        self.net
            .host(name)
            .expect("the test asked for one of its hosts")
    }

    /// The deployment the deploy and info helpers work on: the last one
    /// created through [`NetEnv::create_as`], [`DEPLOYMENT`] before.
    pub fn deployment(&self) -> String {
        self.deployment
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// `nixops create FILES -d test -I nixpkgs=<mini-nixpkgs>`.
    pub fn create(&self, files: &[&Path]) -> Run {
        self.create_as(DEPLOYMENT, files)
    }

    /// `nixops create FILES -d NAME -I nixpkgs=<mini-nixpkgs>`; on success
    /// NAME is the deployment the other helpers work on.
    pub fn create_as(&self, name: &str, files: &[&Path]) -> Run {
        let nixpkgs = format!("nixpkgs={}", mini_nixpkgs().display());
        let mut args: Vec<String> = vec!["create".into()];
        args.extend(files.iter().map(|f| f.to_string_lossy().into_owned()));
        args.extend(["-d".into(), name.into(), "-I".into(), nixpkgs]);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.run(&argv);
        let uuid = run.stdout.trim();
        if run.code == 0 && !uuid.is_empty() {
            self.uuids
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(uuid.to_owned());
            *self.deployment.lock().unwrap_or_else(|e| e.into_inner()) = name.to_owned();
        }
        run
    }

    /// Write `network.nix` with `text` and create [`DEPLOYMENT`] from it and
    /// `hosts.nix`; panics unless that succeeds.
    pub fn create_network(&self, text: &str) {
        let net = self.write("network.nix", text);
        let hosts = self.path("hosts.nix");
        self.create(&[&net, &hosts]).ok();
    }

    /// `deploy -d <deployment> --events FILE EXTRA`, and that file's path.
    fn deploy_args(&self, extra: &[&str]) -> (Vec<String>, PathBuf) {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let events = self.path(&format!("events-{n}.jsonl"));
        let mut args = vec![
            "deploy".to_owned(),
            "-d".to_owned(),
            self.deployment(),
            "--events".to_owned(),
            events.to_string_lossy().into_owned(),
        ];
        args.extend(extra.iter().map(|a| (*a).to_owned()));
        (args, events)
    }

    /// `nixops deploy -d <deployment> --events FILE EXTRA`: the run and its
    /// events.
    pub fn deploy(&self, extra: &[&str]) -> (Run, Events) {
        let (args, events) = self.deploy_args(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = self.run(&argv);
        (run, Events::read(&events))
    }

    /// Like [`NetEnv::deploy`], without the ssh-agent: only keys nixops holds
    /// itself can log in.
    pub fn deploy_without_agent(&self, extra: &[&str]) -> (Run, Events) {
        let (args, events) = self.deploy_args(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = self.command(&argv);
        cmd.env_remove("SSH_AUTH_SOCK");
        let run = self.run_cmd(cmd);
        (run, Events::read(&events))
    }

    /// Start a deploy in the background; the child (finish it with
    /// [`Run::wait`]) and its events file.
    pub fn spawn_deploy(&self, extra: &[&str]) -> (Child, PathBuf) {
        let (args, events) = self.deploy_args(extra);
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .command(&argv)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nixops starts");
        (child, events)
    }

    /// `nixops info -d <deployment> --no-eval --json`.
    pub fn info_json(&self) -> serde_json::Value {
        let run = self
            .run(&["info", "-d", &self.deployment(), "--no-eval", "--json"])
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

    /// The deployment as `nixops export -d <deployment>` shows it.
    pub fn export(&self) -> serde_json::Value {
        let run = self.run(&["export", "-d", &self.deployment()]).ok();
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|e| panic!("export is not JSON ({e}):\n{}", run.stdout))
    }

    /// Run a command on a host; panics unless it succeeds. Its stdout without
    /// trailing whitespace.
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

    /// [`TestEnv::filters`], the repository as `[REPO]`, store hashes as
    /// `[HASH]`, and each host's address as `[IP-<name>]`.
    pub fn filters(&self) -> Filters {
        let mut f = self
            .env
            .filters()
            .literal(&repo_root().to_string_lossy(), "[REPO]")
            .store_hashes();
        for h in self.net.hosts() {
            f = f.regex(
                &format!(r"\b{}\b", regex_escape(&h.ip().to_string())),
                &format!("[IP-{}]", h.name()),
            );
        }
        f
    }
}

// A skipped test can only say so on stderr.
#[allow(clippy::print_stderr)]
fn say_skipped(reason: &str) {
    eprintln!("SKIPPED (prerequisite missing; with CI set this fails): {reason}");
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
