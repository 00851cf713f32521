//! One test host: its directories, namespaces, sshd and lifecycle (boot, stop,
//! reboot, fault injection). The network (bridge, addresses, registry) is
//! owned by `network.rs`; this module never touches the bridge itself.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nixops_core::exec::{shell_quote, Cmd, Output};

use crate::network::HostRecord;
use crate::sys;
use crate::TestkitError;

/// The PATH every process started inside a host gets, like a root login on
/// NixOS: the installed system's tools (e.g. its `systemctl`) come first.
pub(crate) const HOST_PATH: &str =
    "/run/current-system/sw/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// How long a booting host may take until its sshd accepts connections.
const SSHD_TIMEOUT: Duration = Duration::from_secs(15);

/// The script the per-host "init" process runs: it builds the host's private
/// mounts in its fresh mount namespace, reports readiness and then only holds
/// the namespaces open. Arguments: host name, host directory.
const HOLDER_SCRIPT: &str = r#"set -e
hostname "$1"
mount --bind "$2/nix" /nix
mount -t tmpfs -o mode=755 ntk-run /run
mkdir -p /run/sshd
mount --bind "$2/root" /root
mount -t overlay ntk-etc -o "lowerdir=/etc,upperdir=$2/etc-upper,workdir=$2/etc-work" /etc
echo $$ > "$2/holder.pid"
echo ready
exec sleep infinity </dev/null >/dev/null 2>&1
"#;

/// The boot-time activation contract: run the system profile's `activate`
/// when there is one, then point `/run/booted-system` at the booted system.
/// Argument: the activation log file.
const BOOT_SCRIPT: &str = r#"status=0
if [ -e /nix/var/nix/profiles/system/activate ]; then
  /nix/var/nix/profiles/system/activate >"$1" 2>&1 || status=$?
fi
if [ -e /nix/var/nix/profiles/system ] && [ ! -e /run/booted-system ]; then
  ln -sfn "$(readlink -f /nix/var/nix/profiles/system)" /run/booted-system
fi
exit $status
"#;

/// State shared by a network and all handles to its hosts: whether the network
/// still exists, and the delayed reboots still pending.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) torn_down: AtomicBool,
    pub(crate) pending: Mutex<Vec<JoinHandle<()>>>,
}

/// A handle to one test host. Cheap to clone; the [`crate::Network`] it came
/// from owns the host and removes it when dropped.
#[derive(Clone, Debug)]
pub struct TestHost {
    rec: HostRecord,
    shared: Arc<Shared>,
}

/// A reboot in progress (see [`TestHost::simulate_reboot_with_delay`]).
#[derive(Debug)]
pub struct RebootHandle {
    rx: mpsc::Receiver<Result<(), TestkitError>>,
}

impl RebootHandle {
    /// Wait until the host is back (sshd accepting connections) and return how
    /// the boot went. A network torn down meanwhile reports the host as down.
    pub fn wait(self) -> Result<(), TestkitError> {
        self.rx.recv().unwrap_or_else(|_| {
            Err(TestkitError::Host {
                host: String::from("?"),
                reason: String::from("the reboot thread ended without a result"),
            })
        })
    }
}

impl TestHost {
    pub(crate) fn new(rec: HostRecord, shared: Arc<Shared>) -> Self {
        TestHost { rec, shared }
    }

    pub(crate) fn record(&self) -> &HostRecord {
        &self.rec
    }

    /// The host's name (also its hostname inside the host).
    pub fn name(&self) -> &str {
        &self.rec.name
    }

    /// The host's address on the test network.
    pub fn ip(&self) -> Ipv4Addr {
        self.rec.ip
    }

    /// The port its sshd listens on (always 22).
    pub fn ssh_port(&self) -> u16 {
        self.rec.ssh_port
    }

    /// The address of its sshd.
    pub fn ssh_addr(&self) -> SocketAddr {
        SocketAddr::from((self.rec.ip, self.rec.ssh_port))
    }

    /// Its ed25519 host public key, as an `ssh-ed25519 AAAA... comment` line.
    pub fn host_key_pub(&self) -> &str {
        &self.rec.host_key_pub
    }

    /// The host's private directory on the machine: `nix/` is the host's
    /// `/nix`, `root/` its `/root`, `etc-upper/` what it wrote to `/etc`.
    pub fn root_dir(&self) -> &Path {
        &self.rec.dir
    }

    /// The name of its network namespace (for `ip netns exec`).
    pub fn netns(&self) -> &str {
        &self.rec.netns
    }

    /// The sshd configuration file of the host.
    pub fn sshd_config(&self) -> PathBuf {
        self.rec.dir.join("sshd_config")
    }

    /// The pid of the host's "init" (the process holding its namespaces), if
    /// the host is running.
    pub fn holder_pid(&self) -> Option<u32> {
        let pid = sys::read_pid(&self.rec.dir.join("holder.pid"))?;
        (sys::pid_alive(pid) && sys::netns_pids(&self.rec.netns).contains(&pid)).then_some(pid)
    }

    /// Whether the host is up (its namespaces exist).
    pub fn is_running(&self) -> bool {
        self.holder_pid().is_some()
    }

    fn err(&self, reason: impl Into<String>) -> TestkitError {
        TestkitError::Host {
            host: self.rec.name.clone(),
            reason: reason.into(),
        }
    }

    fn what(&self, action: &str) -> String {
        format!("test host ‘{}’: unable to {action}", self.rec.name)
    }

    /// A command run inside the host's namespaces, with a clean root
    /// environment, in `/`.
    fn cmd_in(&self, holder: u32, argv: &[&str]) -> Cmd {
        Cmd::new("nsenter")
            .args(["-t", &holder.to_string(), "-m", "-n", "-u", "--"])
            .args(["env", "-i", "-C", "/"])
            .arg(format!("PATH={HOST_PATH}"))
            .args(["HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/sh"])
            .args(argv)
    }

    fn holder_or_down(&self) -> Result<u32, TestkitError> {
        self.holder_pid().ok_or_else(|| TestkitError::HostDown {
            host: self.rec.name.clone(),
        })
    }

    /// Run `argv` inside the host (its mount, network and UTS namespaces, as
    /// root, clean environment). A non-zero exit is an error. Output is read
    /// until every process holding it exits: start background services with
    /// their stdio redirected (`sh -c 'setsid -f CMD </dev/null >/dev/null 2>&1'`).
    pub fn exec(&self, argv: &[&str]) -> Result<Output, TestkitError> {
        let holder = self.holder_or_down()?;
        sys::run(&self.what("run a command"), self.cmd_in(holder, argv))
    }

    /// Like [`TestHost::exec`], whatever the exit status.
    pub fn exec_unchecked(&self, argv: &[&str]) -> Result<Output, TestkitError> {
        let holder = self.holder_or_down()?;
        self.cmd_in(holder, argv)
            .output_unchecked()
            .map_err(|e| TestkitError::exec(self.what("run a command"), e))
    }

    /// Create the network namespace and the veth pair into `bridge`.
    pub(crate) fn create_links(&self, bridge: &str) -> Result<(), TestkitError> {
        let ns = &self.rec.netns;
        let veth = &self.rec.veth;
        let what = self.what("create its network namespace");
        sys::run(&what, Cmd::new("ip").args(["netns", "add", ns]))?;
        sys::run(
            &what,
            Cmd::new("ip").args([
                "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns,
            ]),
        )?;
        sys::run(
            &what,
            Cmd::new("ip").args(["link", "set", veth, "master", bridge, "up"]),
        )?;
        let addr = format!("{}/24", self.rec.ip);
        sys::run(
            &what,
            Cmd::new("ip").args(["-n", ns, "addr", "add", &addr, "dev", "eth0"]),
        )?;
        sys::run(
            &what,
            Cmd::new("ip").args(["-n", ns, "link", "set", "eth0", "up"]),
        )?;
        sys::run(
            &what,
            Cmd::new("ip").args(["-n", ns, "link", "set", "lo", "up"]),
        )?;
        Ok(())
    }

    /// Boot the host: link up, fresh namespaces and mounts, activation of the
    /// installed system (if any), sshd. An activation failure is reported
    /// after sshd is up, as a real machine still boots.
    pub fn start(&self) -> Result<(), TestkitError> {
        if self.is_running() {
            return Err(self.err("already running"));
        }
        self.link_up()?;
        let dir = self.rec.dir.to_string_lossy().into_owned();
        // `setsid -f` detaches the holder from us (it must outlive a CLI run and
        // never be our zombie); we still read its stdout until it says ready.
        let holder_cmd = Cmd::new("setsid")
            .args(["-f", "ip", "netns", "exec", &self.rec.netns])
            .args(["unshare", "-m", "-u", "--propagation", "private"])
            .args(["sh", "-c", HOLDER_SCRIPT, "sh", &self.rec.name, &dir]);
        let out = sys::run(&self.what("start its init process"), holder_cmd.clone())?;
        if !String::from_utf8_lossy(&out.stdout).contains("ready") {
            return Err(TestkitError::exec(
                self.what("set up its mounts"),
                holder_cmd.failed(out.status, &out.stderr),
            ));
        }
        let holder = self.holder_or_down()?;
        let log = self.rec.dir.join("activate.log");
        let activation = self
            .cmd_in(
                holder,
                &["sh", "-c", BOOT_SCRIPT, "sh", &log.to_string_lossy()],
            )
            .output();
        self.start_sshd()?;
        activation.map(|_| ()).map_err(|e| {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            self.err(format!("activation at boot failed: {e}\n{log_text}"))
        })
    }

    /// Start the host's sshd and wait until it accepts connections (when the
    /// link is up).
    pub fn start_sshd(&self) -> Result<(), TestkitError> {
        let holder = self.holder_or_down()?;
        let config = self.sshd_config();
        sys::run(
            &self.what("start sshd"),
            self.cmd_in(holder, &["/usr/sbin/sshd", "-f", &config.to_string_lossy()]),
        )?;
        if self.link_is_up() && !sys::wait_tcp(self.ssh_addr(), SSHD_TIMEOUT) {
            return Err(TestkitError::SshdTimeout {
                host: self.rec.name.clone(),
                addr: self.ssh_addr().to_string(),
                secs: SSHD_TIMEOUT.as_secs(),
            });
        }
        Ok(())
    }

    /// Kill the host's listening sshd: new connections are refused. Sessions
    /// already open keep running, as with `systemctl stop sshd`.
    pub fn kill_sshd(&self) -> Result<(), TestkitError> {
        // sshd writes its pid file only after it listens (and the host counts
        // as up once the port answers): give a fresh sshd a moment to write it.
        // The pid file survives a stop; only kill a pid that really lives in the host.
        let deadline = Instant::now() + Duration::from_secs(3);
        let pid = loop {
            let pid = sys::read_pid(&self.rec.dir.join("sshd.pid"))
                .filter(|pid| sys::netns_pids(&self.rec.netns).contains(pid));
            match pid {
                Some(pid) => break pid,
                None if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                None => return Err(self.err("sshd is not running")),
            }
        };
        sys::kill_pids(&[pid]);
        let deadline = Instant::now() + Duration::from_secs(5);
        while sys::pid_alive(pid) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(self.rec.dir.join("sshd.pid"));
        Ok(())
    }

    /// Start a `nix-daemon` inside the host (as NixOS runs one) and wait for
    /// its socket. Commands then need `NIX_REMOTE=daemon` to use it.
    pub fn start_nix_daemon(&self) -> Result<(), TestkitError> {
        let holder = self.holder_or_down()?;
        let socket = self.rec.dir.join("nix/var/nix/daemon-socket/socket");
        let _ = std::fs::remove_file(&socket);
        let log = self.rec.dir.join("nix-daemon.log");
        sys::run(
            &self.what("start nix-daemon"),
            self.cmd_in(
                holder,
                &[
                    "setsid",
                    "-f",
                    "sh",
                    "-c",
                    r#"exec nix-daemon >>"$1" 2>&1 </dev/null"#,
                    "sh",
                    &log.to_string_lossy(),
                ],
            ),
        )?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                return Err(self.err("nix-daemon did not create its socket within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    fn link_is_up(&self) -> bool {
        std::fs::read_to_string(format!("/sys/class/net/{}/flags", self.rec.veth))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim().trim_start_matches("0x"), 16).ok())
            .is_some_and(|flags| flags & 1 == 1)
    }

    /// Cut the host off the network (bridge side of its veth down).
    pub fn link_down(&self) -> Result<(), TestkitError> {
        sys::run(
            &self.what("set its link down"),
            Cmd::new("ip").args(["link", "set", &self.rec.veth, "down"]),
        )
        .map(|_| ())
    }

    /// Reconnect the host to the network.
    pub fn link_up(&self) -> Result<(), TestkitError> {
        sys::run(
            &self.what("set its link up"),
            Cmd::new("ip").args(["link", "set", &self.rec.veth, "up"]),
        )
        .map(|_| ())
    }

    /// Power the host off: link down and every process in it killed (its
    /// `/run` goes with its mount namespace). It stays down until
    /// [`TestHost::start`]; use this for a host that never comes back.
    pub fn stop(&self) -> Result<(), TestkitError> {
        let link = self.link_down();
        sys::kill_netns(&self.rec.netns);
        if self.is_running() {
            return Err(self.err("processes survived the stop"));
        }
        let _ = std::fs::remove_file(self.rec.dir.join("holder.pid"));
        let _ = std::fs::remove_file(self.rec.dir.join("sshd.pid"));
        link
    }

    /// Reboot: stop everything, then boot again (fresh `/run`, activation of
    /// `/nix/var/nix/profiles/system/activate` if present, sshd).
    pub fn simulate_reboot(&self) -> Result<(), TestkitError> {
        self.stop()?;
        self.start()
    }

    /// Stop the host now and boot it again after `down` in a background
    /// thread. The host is unreachable meanwhile.
    pub fn simulate_reboot_with_delay(&self, down: Duration) -> Result<RebootHandle, TestkitError> {
        self.stop()?;
        let (tx, rx) = mpsc::channel();
        let host = self.clone();
        let handle = std::thread::spawn(move || {
            let deadline = Instant::now() + down;
            while Instant::now() < deadline && !host.shared.torn_down.load(Ordering::SeqCst) {
                std::thread::sleep(
                    Duration::from_millis(20).min(deadline - Instant::now().min(deadline)),
                );
            }
            let result = if host.shared.torn_down.load(Ordering::SeqCst) {
                Err(TestkitError::HostDown {
                    host: host.rec.name.clone(),
                })
            } else {
                host.start()
            };
            let _ = tx.send(result);
        });
        self.shared
            .pending
            .lock()
            .expect("invariant: no thread panics while holding the pending list")
            .push(handle);
        Ok(RebootHandle { rx })
    }

    /// How the host behaves when a reboot is asked for from inside it
    /// (`/etc/nixops-testkit/reboot`): back after `Some(down)`, or never
    /// (`None`, for reboot-timeout tests). The default is `Some(0 s)`.
    pub fn set_reboot_delay(&self, down: Option<Duration>) -> Result<(), TestkitError> {
        let path = self.rec.dir.join("reboot-mode");
        let text = match down {
            Some(d) => format!("{:.3}\n", d.as_secs_f64()),
            None => String::from("never\n"),
        };
        std::fs::write(&path, text).map_err(|e| TestkitError::io(&path, e))
    }

    /// The command that reboots the host when run inside it (what its
    /// `systemctl reboot` should run). It returns at once; the reboot follows.
    pub const REBOOT_COMMAND: &'static str = "/etc/nixops-testkit/reboot";

    /// The command that powers the host off when run inside it.
    pub const POWEROFF_COMMAND: &'static str = "/etc/nixops-testkit/poweroff";
}

/// The shell version of stop + boot, for reboots asked for from inside the
/// host (`/etc/nixops-testkit/reboot`, what the host's `systemctl reboot`
/// should call). It runs outside the host's namespaces, so it survives the
/// killing of everything in the host. Arguments: `reboot` or `poweroff`.
/// `reboot-mode` in the host directory holds the seconds to stay down, or
/// `never`.
fn reboot_script(rec: &HostRecord) -> String {
    let q = |s: &str| shell_quote(s);
    format!(
        r#"#!/bin/sh
# Stop and boot test host {name} from outside its namespaces.
h={dir}; ns={ns}; veth={veth}; name={name_q}
exec >>"$h/reboot.log" 2>&1
ip link set "$veth" down
i=0
while pids=$(ip netns pids "$ns") && [ -n "$pids" ] && [ $i -lt 500 ]; do
  kill -KILL $pids 2>/dev/null
  sleep 0.01
  i=$((i+1))
done
rm -f "$h/holder.pid" "$h/sshd.pid"
[ "$1" = poweroff ] && exit 0
mode=$(cat "$h/reboot-mode" 2>/dev/null || echo 0)
[ "$mode" = never ] && exit 0
sleep "$mode"
ip link set "$veth" up
setsid -f ip netns exec "$ns" unshare -m -u --propagation private sh "$h/holder.sh" "$name" "$h" | grep -q ready
holder=$(cat "$h/holder.pid")
in_host() {{
  nsenter -t "$holder" -m -n -u -- env -i -C / PATH={path} HOME=/root USER=root LOGNAME=root SHELL=/bin/sh "$@"
}}
in_host sh "$h/boot.sh" "$h/activate.log"
in_host /usr/sbin/sshd -f "$h/sshd_config"
"#,
        name = rec.name,
        name_q = q(&rec.name),
        dir = q(&rec.dir.to_string_lossy()),
        ns = q(&rec.netns),
        veth = q(&rec.veth),
        path = HOST_PATH,
    )
}

/// The in-host entry points of [`reboot_script`]: they leave the host's
/// namespaces by entering those of the network's anchor process.
fn in_host_trigger(rec: &HostRecord, anchor_pid_file: &Path, action: &str) -> String {
    let anchor = shell_quote(&anchor_pid_file.to_string_lossy());
    let script = shell_quote(&rec.dir.join("reboot.sh").to_string_lossy());
    format!(
        "#!/bin/sh\n\
         # {action} this test host, as `systemctl {action}` does on a real machine.\n\
         setsid -f nsenter -t \"$(cat {anchor})\" -m -n -u -- sh {script} {action} </dev/null >/dev/null 2>&1\n"
    )
}

/// Write the host's boot scripts and its in-host `reboot`/`poweroff`
/// commands (`/etc/nixops-testkit/{{reboot,poweroff}}` inside the host).
pub(crate) fn write_boot_files(
    rec: &HostRecord,
    anchor_pid_file: &Path,
) -> Result<(), TestkitError> {
    use std::os::unix::fs::PermissionsExt;
    let bin = rec.dir.join("etc-upper/nixops-testkit");
    std::fs::create_dir_all(&bin).map_err(|e| TestkitError::io(&bin, e))?;
    let files = [
        (rec.dir.join("holder.sh"), HOLDER_SCRIPT.to_owned()),
        (rec.dir.join("boot.sh"), BOOT_SCRIPT.to_owned()),
        (rec.dir.join("reboot.sh"), reboot_script(rec)),
        (
            bin.join("reboot"),
            in_host_trigger(rec, anchor_pid_file, "reboot"),
        ),
        (
            bin.join("poweroff"),
            in_host_trigger(rec, anchor_pid_file, "poweroff"),
        ),
    ];
    for (path, text) in files {
        std::fs::write(&path, text).map_err(|e| TestkitError::io(&path, e))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| TestkitError::io(&path, e))?;
    }
    Ok(())
}
