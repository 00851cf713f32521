//! A test network: a bridge with a /24 out of 198.18.0.0/15, the deployer's
//! client key and agent, and the hosts on it. Owns the allocation registry
//! that keeps parallel test processes from colliding, the persisted
//! description (`hosts.json`) shared by the Rust API and the CLI, and the
//! clean-up of leftovers. Host internals live in `host.rs`.

use std::fs::{self, File};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use nixops_core::exec::Cmd;
use serde::{Deserialize, Serialize};

use crate::host::{self, Shared, TestHost, HOST_PATH};
use crate::sys;
use crate::TestkitError;

/// Every name we create (bridges, veths, netns) starts with this.
const PREFIX: &str = "ntk";
/// Number of /24 networks in 198.18.0.0/15.
const MAX_NETWORKS: u32 = 512;
/// Host addresses run from .2 to .254 (.1 is the bridge).
const MAX_HOSTS: usize = 253;

/// Environment variable overriding the testkit's registry directory.
pub const ROOT_ENV: &str = "NIXOPS_TESTKIT_ROOT";

/// The directory holding the allocation registry and default network dirs:
/// `$NIXOPS_TESTKIT_ROOT`, else `/var/lib/nixops-testkit`. Not under `/run`:
/// every host mounts its own `/run`, and must still see its files.
pub fn testkit_root() -> PathBuf {
    std::env::var_os(ROOT_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/nixops-testkit"))
}

/// One host as persisted in `hosts.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostRecord {
    pub name: String,
    pub ip: Ipv4Addr,
    pub ssh_port: u16,
    pub host_key_pub: String,
    /// The host's private directory.
    pub dir: PathBuf,
    pub netns: String,
    /// The bridge side of its veth pair.
    pub veth: String,
}

/// A network as persisted in `<dir>/hosts.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub index: u32,
    pub subnet: String,
    pub bridge: String,
    pub bridge_ip: Ipv4Addr,
    pub dir: PathBuf,
    /// Whether the testkit created `dir` (and so removes it entirely).
    pub dir_created: bool,
    pub client_key: PathBuf,
    pub client_key_pub: String,
    pub known_hosts: PathBuf,
    pub agent_socket: Option<PathBuf>,
    pub agent_pid: Option<u32>,
    /// A process in the machine's namespaces, alive as long as the network.
    #[serde(default)]
    pub anchor_pid: Option<u32>,
    pub hosts: Vec<HostRecord>,
}

/// Who owns an allocated network: a live process, or nobody (detached, kept
/// until `down`/`cleanup --all`).
#[derive(Debug, Serialize, Deserialize)]
struct Allocation {
    dir: PathBuf,
    owner_pid: u32,
    owner_start: Option<u64>,
    detached: bool,
}

/// A bridge with test hosts on it. Dropping an owning `Network` removes
/// everything: processes, links, namespaces, directories.
#[derive(Debug)]
pub struct Network {
    rec: NetworkRecord,
    hosts: Vec<TestHost>,
    shared: Arc<Shared>,
    /// Tear down on drop (false for a network opened from disk or detached).
    owned: bool,
}

/// Check that this machine can run test hosts: root, `ip`, `sshd`, `nsenter`,
/// `unshare`, `ssh-keygen`. The error says what is missing.
pub fn prerequisites() -> Result<(), TestkitError> {
    let missing = |reason: String| Err(TestkitError::Prerequisite { reason });
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(str::to_owned))
        })
        .unwrap_or_default();
    if uid != "0" {
        return missing(format!("test hosts need root (effective uid is {uid})"));
    }
    if !Path::new("/usr/sbin/sshd").exists() {
        return missing(String::from(
            "/usr/sbin/sshd is missing (install openssh-server)",
        ));
    }
    for prog in [
        "ip",
        "nsenter",
        "unshare",
        "setsid",
        "ssh-keygen",
        "ssh",
        "ssh-agent",
        "ssh-add",
    ] {
        if Cmd::new("sh")
            .args(["-c", "command -v \"$1\"", "sh", prog])
            .output()
            .is_err()
        {
            return missing(format!("‘{prog}’ is not on PATH"));
        }
    }
    if Cmd::new("ip")
        .args(["link", "show", "lo"])
        .output()
        .is_err()
    {
        return missing(String::from("‘ip link’ does not work"));
    }
    Ok(())
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, TestkitError> {
    let text = fs::read_to_string(path).map_err(|e| TestkitError::io(path, e))?;
    serde_json::from_str(&text).map_err(|source| TestkitError::Json {
        path: path.to_owned(),
        source,
    })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), TestkitError> {
    let text = serde_json::to_string_pretty(value).map_err(|source| TestkitError::Json {
        path: path.to_owned(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    fs::write(&tmp, text + "\n").map_err(|e| TestkitError::io(&tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| TestkitError::io(path, e))
}

fn write_file(path: &Path, text: &str) -> Result<(), TestkitError> {
    fs::write(path, text).map_err(|e| TestkitError::io(path, e))
}

fn mkdir(path: &Path) -> Result<(), TestkitError> {
    fs::create_dir_all(path).map_err(|e| TestkitError::io(path, e))
}

/// The registry lock, held while allocating or cleaning up.
fn lock_registry() -> Result<File, TestkitError> {
    let root = testkit_root();
    mkdir(&root.join("nets"))?;
    let path = root.join("registry.lock");
    let file = File::create(&path).map_err(|e| TestkitError::io(&path, e))?;
    file.lock().map_err(|e| TestkitError::io(&path, e))?;
    Ok(file)
}

fn allocation_path(index: u32) -> PathBuf {
    testkit_root().join("nets").join(format!("{index}.json"))
}

fn subnet_base(index: u32) -> [u8; 3] {
    // index < 512, so both octets fit.
    [198, (18 + index / 256) as u8, (index % 256) as u8]
}

fn bridge_name(index: u32) -> String {
    format!("{PREFIX}{index}br")
}

/// The owner of an allocation is gone (and it was not detached).
fn allocation_is_stale(alloc: &Allocation) -> bool {
    if alloc.detached {
        return false;
    }
    let owner_alive = sys::pid_alive(alloc.owner_pid)
        && sys::pid_start_time(alloc.owner_pid) == alloc.owner_start;
    !owner_alive
}

/// Reserve a free network index for `dir` (under the registry lock).
fn allocate(dir: &Path) -> Result<u32, TestkitError> {
    let _lock = lock_registry()?;
    // Leftovers of killed runs would otherwise hold addresses forever.
    let _ = reap_stale_allocations(false);
    let addrs = Cmd::new("ip")
        .args(["-o", "-4", "addr", "show"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .map_err(|e| TestkitError::exec("unable to list addresses", e))?;
    for index in 0..MAX_NETWORKS {
        let path = allocation_path(index);
        if path.exists() || sys::link_exists(&bridge_name(index)) {
            continue;
        }
        let [a, b, c] = subnet_base(index);
        // Someone else (not the testkit) may use part of the range.
        if addrs.contains(&format!(" {a}.{b}.{c}.")) {
            continue;
        }
        let pid = std::process::id();
        let alloc = Allocation {
            dir: dir.to_owned(),
            owner_pid: pid,
            owner_start: sys::pid_start_time(pid),
            detached: false,
        };
        write_json(&path, &alloc)?;
        return Ok(index);
    }
    Err(TestkitError::NoFreeNetwork)
}

impl Network {
    /// A new network in a fresh directory under [`testkit_root`], removed on drop.
    pub fn new() -> Result<Network, TestkitError> {
        prerequisites()?;
        let tmp = testkit_root().join("tmp");
        mkdir(&tmp)?;
        // Reserve a unique directory first; its name is fixed after allocation.
        let dir = tempfile::Builder::new()
            .prefix("net-")
            .tempdir_in(&tmp)
            .map_err(|e| TestkitError::io(&tmp, e))?
            .keep();
        Self::create(dir, true)
    }

    /// A new network whose files live in `dir` (created if needed; it must not
    /// already hold a network). Removed on drop unless [`Network::detach`]ed.
    pub fn new_in(dir: &Path) -> Result<Network, TestkitError> {
        prerequisites()?;
        if dir.join("hosts.json").exists() {
            return Err(TestkitError::Host {
                host: dir.display().to_string(),
                reason: String::from("a test network already lives in this directory"),
            });
        }
        let created = !dir.exists();
        mkdir(dir)?;
        let dir = fs::canonicalize(dir).map_err(|e| TestkitError::io(dir, e))?;
        Self::create(dir, created)
    }

    fn create(dir: PathBuf, dir_created: bool) -> Result<Network, TestkitError> {
        let index = allocate(&dir)?;
        let [a, b, c] = subnet_base(index);
        let bridge = bridge_name(index);
        let rec = NetworkRecord {
            index,
            subnet: format!("{a}.{b}.{c}.0/24"),
            bridge: bridge.clone(),
            bridge_ip: Ipv4Addr::new(a, b, c, 1),
            client_key: dir.join("client_key"),
            client_key_pub: String::new(),
            known_hosts: dir.join("known_hosts"),
            dir,
            dir_created,
            agent_socket: None,
            agent_pid: None,
            anchor_pid: None,
            hosts: Vec::new(),
        };
        // From here on, Drop cleans up whatever was made.
        let mut net = Network {
            rec,
            hosts: Vec::new(),
            shared: Arc::new(Shared::default()),
            owned: true,
        };
        net.setup()?;
        Ok(net)
    }

    fn setup(&mut self) -> Result<(), TestkitError> {
        let what = "unable to create the test network bridge";
        let br = self.rec.bridge.clone();
        sys::run(
            what,
            Cmd::new("ip").args(["link", "add", &br, "type", "bridge"]),
        )?;
        let addr = format!("{}/24", self.rec.bridge_ip);
        sys::run(
            what,
            Cmd::new("ip").args(["addr", "add", &addr, "dev", &br]),
        )?;
        sys::run(what, Cmd::new("ip").args(["link", "set", &br, "up"]))?;
        let key = self.rec.client_key.to_string_lossy().into_owned();
        sys::run(
            "unable to create the client key",
            Cmd::new("ssh-keygen").args([
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "nixops-testkit-client",
                "-f",
                &key,
            ]),
        )?;
        let pub_path = self.rec.client_key.with_extension("pub");
        self.rec.client_key_pub = fs::read_to_string(&pub_path)
            .map_err(|e| TestkitError::io(&pub_path, e))?
            .trim()
            .to_owned();
        write_file(&self.rec.known_hosts, "")?;
        // A process that stays in the machine's own namespaces for the
        // network's lifetime: reboots asked for from inside a host enter its
        // namespaces to get out of the host's.
        let anchor_file = self.rec.dir.join("anchor.pid");
        sys::run(
            "unable to start the network's anchor process",
            Cmd::new("setsid").args([
                "-f",
                "sh",
                "-c",
                r#"echo $$ > "$1"; exec sleep infinity </dev/null >/dev/null 2>&1"#,
                "sh",
                &anchor_file.to_string_lossy(),
            ]),
        )?;
        self.rec.anchor_pid = sys::read_pid(&anchor_file);
        self.save()
    }

    /// Open a network persisted in `dir` (by `nixops-testkit up` or
    /// [`Network::detach`]). Dropping it leaves it running; use
    /// [`Network::teardown`] to remove it.
    pub fn open(dir: &Path) -> Result<Network, TestkitError> {
        let rec: NetworkRecord = read_json(&dir.join("hosts.json"))?;
        let shared = Arc::new(Shared::default());
        let hosts = rec
            .hosts
            .iter()
            .map(|h| TestHost::new(h.clone(), shared.clone()))
            .collect();
        Ok(Network {
            rec,
            hosts,
            shared,
            owned: false,
        })
    }

    /// Write `<dir>/hosts.json`.
    pub fn save(&self) -> Result<(), TestkitError> {
        write_json(&self.rec.dir.join("hosts.json"), &self.rec)
    }

    /// Keep the network running after this value is dropped (and after this
    /// process exits): `nixops-testkit down` or [`cleanup_stale`]`(true)`
    /// removes it.
    pub fn detach(mut self) -> Result<PathBuf, TestkitError> {
        let path = allocation_path(self.rec.index);
        let mut alloc: Allocation = read_json(&path)?;
        alloc.detached = true;
        write_json(&path, &alloc)?;
        self.save()?;
        self.owned = false;
        Ok(self.rec.dir.clone())
    }

    /// The persisted description.
    pub fn record(&self) -> &NetworkRecord {
        &self.rec
    }

    /// The network's directory (keys, known_hosts, hosts.json, host dirs).
    pub fn dir(&self) -> &Path {
        &self.rec.dir
    }

    /// The bridge's name.
    pub fn bridge(&self) -> &str {
        &self.rec.bridge
    }

    /// The deployer side's address on the network.
    pub fn bridge_ip(&self) -> Ipv4Addr {
        self.rec.bridge_ip
    }

    /// The hosts, in creation order.
    pub fn hosts(&self) -> &[TestHost] {
        &self.hosts
    }

    /// The host called `name`.
    pub fn host(&self, name: &str) -> Result<&TestHost, TestkitError> {
        self.hosts
            .iter()
            .find(|h| h.name() == name)
            .ok_or_else(|| TestkitError::NoSuchHost {
                name: name.to_owned(),
            })
    }

    /// The private key every host accepts for root.
    pub fn client_key_path(&self) -> &Path {
        &self.rec.client_key
    }

    /// A known_hosts file listing every host's key.
    pub fn known_hosts_path(&self) -> &Path {
        &self.rec.known_hosts
    }

    /// Add `n` hosts named `host<i>` (numbered on from the existing ones),
    /// brought up in parallel.
    pub fn add_hosts(&mut self, n: usize) -> Result<Vec<TestHost>, TestkitError> {
        let first = self.hosts.len() + 1;
        let names: Vec<String> = (first..first + n).map(|i| format!("host{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        self.add_named_hosts(&names)
    }

    /// Add hosts with the given names, brought up in parallel.
    pub fn add_named_hosts(&mut self, names: &[&str]) -> Result<Vec<TestHost>, TestkitError> {
        if self.hosts.len() + names.len() > MAX_HOSTS {
            return Err(TestkitError::Host {
                host: names.join(","),
                reason: format!("a test network holds at most {MAX_HOSTS} hosts"),
            });
        }
        for name in names {
            let valid = !name.is_empty()
                && name.len() <= 63
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
            if !valid || self.hosts.iter().any(|h| h.name() == *name) {
                return Err(TestkitError::Host {
                    host: (*name).to_owned(),
                    reason: String::from("invalid or duplicate host name"),
                });
            }
        }
        let mut new_hosts = Vec::new();
        for name in names {
            let number = self.rec.hosts.len() + new_hosts.len() + 1;
            let rec = self.prepare_host(name, number)?;
            new_hosts.push(TestHost::new(rec, self.shared.clone()));
        }
        // Register them before bringing them up, so a failure still tears them down.
        for h in &new_hosts {
            self.rec.hosts.push(h.record().clone());
            self.hosts.push(h.clone());
        }
        self.save()?;
        let bridge = self.rec.bridge.clone();
        let results: Vec<Result<(), TestkitError>> = std::thread::scope(|s| {
            let handles: Vec<_> = new_hosts
                .iter()
                .map(|h| {
                    let bridge = &bridge;
                    s.spawn(move || {
                        h.create_links(bridge)?;
                        h.start()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|j| {
                    j.join()
                        .expect("invariant: host setup threads do not panic")
                })
                .collect()
        });
        results.into_iter().collect::<Result<Vec<()>, _>>()?;
        self.write_known_hosts()?;
        Ok(new_hosts)
    }

    /// Create the host's directory, keys and configuration.
    fn prepare_host(&self, name: &str, number: usize) -> Result<HostRecord, TestkitError> {
        let [a, b, c] = subnet_base(self.rec.index);
        let octet = u8::try_from(number + 1).expect("invariant: at most 253 hosts");
        let ip = Ipv4Addr::new(a, b, c, octet);
        let dir = self.rec.dir.join("hosts").join(name);
        for sub in [
            "nix/var/nix/profiles",
            "root/.ssh",
            "etc-upper/nix",
            "etc-upper/ssh/authorized_keys.d",
            "etc-work",
        ] {
            mkdir(&dir.join(sub))?;
        }
        write_file(
            &dir.join("root/.ssh/authorized_keys"),
            &format!("{}\n", self.rec.client_key_pub),
        )?;
        // Like a NixOS host without users to build as and without a cache.
        write_file(
            &dir.join("etc-upper/nix/nix.conf"),
            "sandbox = false\nbuild-users-group =\nsubstituters =\n",
        )?;
        write_file(&dir.join("etc-upper/hostname"), &format!("{name}\n"))?;
        let key = dir.join("ssh_host_ed25519_key");
        sys::run(
            &format!("test host ‘{name}’: unable to create its host key"),
            Cmd::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    &format!("root@{name}"),
                    "-f",
                ])
                .arg(&key),
        )?;
        let pub_path = key.with_extension("pub");
        let host_key_pub = fs::read_to_string(&pub_path)
            .map_err(|e| TestkitError::io(&pub_path, e))?
            .trim()
            .to_owned();
        let config = format!(
            "# sshd of test host {name}\n\
             Port 22\n\
             AddressFamily inet\n\
             ListenAddress 0.0.0.0\n\
             HostKey {key}\n\
             PidFile {pid}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             AuthorizedKeysFile .ssh/authorized_keys /etc/ssh/authorized_keys.d/%u\n\
             StrictModes no\n\
             UsePAM no\n\
             UseDNS no\n\
             PrintMotd no\n\
             PrintLastLog no\n\
             MaxStartups 1000\n\
             MaxSessions 1000\n\
             MaxAuthTries 20\n\
             SetEnv PATH={HOST_PATH}\n\
             AcceptEnv LANG LC_* NIX_*\n\
             Subsystem sftp internal-sftp\n\
             LogLevel ERROR\n",
            key = key.display(),
            pid = dir.join("sshd.pid").display(),
        );
        write_file(&dir.join("sshd_config"), &config)?;
        let rec = HostRecord {
            name: name.to_owned(),
            ip,
            ssh_port: 22,
            host_key_pub,
            dir,
            netns: format!("{PREFIX}{}h{number}", self.rec.index),
            veth: format!("{PREFIX}{}h{number}", self.rec.index),
        };
        host::write_boot_files(&rec, &self.rec.dir.join("anchor.pid"))?;
        Ok(rec)
    }

    fn write_known_hosts(&self) -> Result<(), TestkitError> {
        let mut text = String::new();
        for h in &self.rec.hosts {
            // Drop the comment: `ip keytype key`.
            let key: Vec<&str> = h.host_key_pub.split_whitespace().take(2).collect();
            text.push_str(&format!("{} {}\n", h.ip, key.join(" ")));
        }
        write_file(&self.rec.known_hosts, &text)
    }

    /// The ssh options (without `ssh` and destination) for reaching the hosts
    /// with the client key and the network's known_hosts, non-interactively.
    /// Also fit for `NIX_SSHOPTS`.
    pub fn ssh_options(&self) -> Vec<String> {
        vec![
            String::from("-F"),
            String::from("none"),
            String::from("-i"),
            self.rec.client_key.display().to_string(),
            String::from("-o"),
            String::from("IdentitiesOnly=yes"),
            String::from("-o"),
            format!("UserKnownHostsFile={}", self.rec.known_hosts.display()),
            String::from("-o"),
            String::from("GlobalKnownHostsFile=/dev/null"),
            String::from("-o"),
            String::from("StrictHostKeyChecking=yes"),
            String::from("-o"),
            String::from("BatchMode=yes"),
            String::from("-o"),
            String::from("ConnectTimeout=5"),
        ]
    }

    /// A ready `ssh ... root@IP` argv for `host`; append a remote command.
    pub fn ssh_command(&self, host: &TestHost) -> Vec<String> {
        let mut argv = vec![String::from("ssh")];
        argv.extend(self.ssh_options());
        argv.extend([
            String::from("-p"),
            host.ssh_port().to_string(),
            format!("root@{}", host.ip()),
        ]);
        argv
    }

    /// An ssh-agent holding the client key; returns the socket to pass as
    /// `SSH_AUTH_SOCK`. Started on first call, killed on teardown.
    pub fn ssh_agent(&mut self) -> Result<PathBuf, TestkitError> {
        if let (Some(sock), Some(pid)) = (&self.rec.agent_socket, self.rec.agent_pid) {
            if sys::pid_alive(pid) && sock.exists() {
                return Ok(sock.clone());
            }
        }
        let sock = self.rec.dir.join("agent.sock");
        let _ = fs::remove_file(&sock);
        let out = sys::run(
            "unable to start ssh-agent",
            Cmd::new("ssh-agent").args(["-s", "-a"]).arg(&sock),
        )?;
        let text = String::from_utf8_lossy(&out.stdout);
        let pid = text
            .split(';')
            .find_map(|part| part.trim().strip_prefix("SSH_AGENT_PID="))
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| TestkitError::Host {
                host: String::from("ssh-agent"),
                reason: format!("no SSH_AGENT_PID in its output: {text}"),
            })?;
        self.rec.agent_socket = Some(sock.clone());
        self.rec.agent_pid = Some(pid);
        self.save()?;
        sys::run(
            "unable to add the client key to ssh-agent",
            Cmd::new("ssh-add")
                .arg("-q")
                .arg(&self.rec.client_key)
                .env("SSH_AUTH_SOCK", &sock),
        )?;
        Ok(sock)
    }

    /// Remove everything now: pending reboots, every process of every host,
    /// veths, namespaces, the bridge, the agent, the directories and the
    /// allocation.
    pub fn teardown(mut self) -> Result<(), TestkitError> {
        self.teardown_inner()
    }

    fn teardown_inner(&mut self) -> Result<(), TestkitError> {
        self.owned = false;
        self.shared.torn_down.store(true, Ordering::SeqCst);
        let pending: Vec<_> = self
            .shared
            .pending
            .lock()
            .map(|mut p| p.drain(..).collect())
            .unwrap_or_default();
        for handle in pending {
            let _ = handle.join();
        }
        // All hosts at once: one /proc scan per round, one `ip` for all
        // namespaces. Deleting a namespace destroys its veth pair.
        let netns: Vec<&str> = self.rec.hosts.iter().map(|h| h.netns.as_str()).collect();
        sys::kill_netns_all(&netns);
        let registered: Vec<&str> = netns
            .into_iter()
            .filter(|ns| sys::netns_exists(ns))
            .collect();
        if !registered.is_empty() {
            let batch = self.rec.dir.join("teardown.batch");
            let lines: String = registered
                .iter()
                .map(|ns| format!("netns del {ns}\n"))
                .collect();
            if fs::write(&batch, lines).is_ok() {
                let _ = Cmd::new("ip")
                    .args(["-force", "-batch"])
                    .arg(&batch)
                    .output_unchecked();
            }
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let left: Vec<&HostRecord> = self
                .rec
                .hosts
                .iter()
                .filter(|h| sys::link_exists(&h.veth))
                .collect();
            if left.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                for h in left {
                    let _ = Cmd::new("ip")
                        .args(["link", "del", &h.veth])
                        .output_unchecked();
                }
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        if sys::link_exists(&self.rec.bridge) {
            let _ = Cmd::new("ip")
                .args(["link", "del", &self.rec.bridge])
                .output_unchecked();
        }
        for (pid, comm) in [
            (self.rec.agent_pid, "ssh-agent"),
            (self.rec.anchor_pid, "sleep"),
        ] {
            let Some(pid) = pid else { continue };
            // Only our own process: the pid may have been reused since.
            let ours =
                fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm);
            if ours {
                sys::kill_pids(&[pid]);
                let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
                while sys::pid_alive(pid) && std::time::Instant::now() < deadline {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                }
            }
        }
        let dir = &self.rec.dir;
        let removed = if self.rec.dir_created {
            fs::remove_dir_all(dir)
        } else {
            for f in [
                "client_key",
                "client_key.pub",
                "known_hosts",
                "agent.sock",
                "anchor.pid",
                "hosts.json",
            ] {
                let _ = fs::remove_file(dir.join(f));
            }
            fs::remove_dir_all(dir.join("hosts"))
        };
        let _ = fs::remove_file(allocation_path(self.rec.index));
        match removed {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(TestkitError::io(dir, e)),
            _ => Ok(()),
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        if self.owned {
            let _ = self.teardown_inner();
        }
    }
}

/// Tear down the allocations whose owner is gone (and detached ones when
/// asked). Returns what was removed and the indexes still in use. The caller
/// holds the registry lock.
fn reap_stale_allocations(include_detached: bool) -> Result<(Vec<String>, Vec<u32>), TestkitError> {
    let mut removed = Vec::new();
    let mut live = Vec::new();
    let nets = testkit_root().join("nets");
    let entries = fs::read_dir(&nets).map_err(|e| TestkitError::io(&nets, e))?;
    let mut stale = Vec::new();
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Some(index) = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        match read_json::<Allocation>(&path) {
            Ok(alloc) if !(allocation_is_stale(&alloc) || (alloc.detached && include_detached)) => {
                live.push(index)
            }
            Ok(alloc) => stale.push((index, Some(alloc.dir))),
            Err(_) => stale.push((index, None)),
        }
    }
    for (index, dir) in stale {
        let opened = dir.as_deref().and_then(|d| Network::open(d).ok());
        match opened {
            Some(net) => {
                let _ = net.teardown();
            }
            None => {
                let _ = fs::remove_file(allocation_path(index));
            }
        }
        removed.push(format!("network {}", bridge_name(index)));
    }
    Ok((removed, live))
}

/// Remove leftovers of killed runs: networks whose owning process is gone
/// (and, with `include_detached`, detached ones too), plus any `ntk*`
/// namespace or link no allocation accounts for. Returns what was removed.
pub fn cleanup_stale(include_detached: bool) -> Result<Vec<String>, TestkitError> {
    // One lock for both steps: a network allocated in between would look orphaned.
    let _lock = lock_registry()?;
    let (mut removed, live) = reap_stale_allocations(include_detached)?;
    // Namespaces and links that no live network accounts for.
    let owned_by_live = |name: &str| {
        name.strip_prefix(PREFIX)
            .map(|rest| {
                rest.chars()
                    .take_while(char::is_ascii_digit)
                    .collect::<String>()
            })
            .and_then(|digits| digits.parse::<u32>().ok())
            .is_some_and(|i| live.contains(&i))
    };
    for ns in sys::netns_list() {
        if ns.starts_with(PREFIX) && !owned_by_live(&ns) {
            sys::kill_netns(&ns);
            let _ = Cmd::new("ip")
                .args(["netns", "del", &ns])
                .output_unchecked();
            removed.push(format!("netns {ns}"));
        }
    }
    for link in sys::link_list() {
        if link.starts_with(PREFIX) && !owned_by_live(&link) {
            let _ = Cmd::new("ip")
                .args(["link", "del", &link])
                .output_unchecked();
            removed.push(format!("link {link}"));
        }
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_cover_198_18_0_0_15_without_overlap() {
        assert_eq!(subnet_base(0), [198, 18, 0]);
        assert_eq!(subnet_base(255), [198, 18, 255]);
        assert_eq!(subnet_base(256), [198, 19, 0]);
        assert_eq!(subnet_base(MAX_NETWORKS - 1), [198, 19, 255]);
    }

    #[test]
    fn interface_names_fit_the_kernel_limit() {
        // IFNAMSIZ is 16 including the NUL.
        assert!(bridge_name(MAX_NETWORKS - 1).len() <= 15);
        let veth = format!("{PREFIX}{}h{MAX_HOSTS}", MAX_NETWORKS - 1);
        assert!(veth.len() <= 15, "{veth}");
    }
}
