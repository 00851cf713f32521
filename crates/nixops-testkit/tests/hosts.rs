//! Test hosts are real separate machines to SSH and Nix, and leave nothing
//! behind. These tests need root, `ip`, `sshd` and Nix; they run in parallel.

use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use nixops_core::exec::{Cmd, Output};
use nixops_testkit::{prerequisites, Network, TestHost};

/// A fresh network, or `None` (skip) when this machine cannot run test
/// hosts and we are not in CI. In CI a missing prerequisite fails the test.
#[allow(clippy::print_stderr)] // the skip reason must be visible in the test output
fn network(test: &str) -> Option<Network> {
    if let Err(e) = prerequisites() {
        if std::env::var_os("CI").is_some() {
            panic!("{test}: {e}");
        }
        eprintln!("skipping {test}: {e}");
        return None;
    }
    Some(Network::new().expect("creating a test network"))
}

fn ssh(net: &Network, host: &TestHost, script: &str) -> Output {
    let argv = net.ssh_command(host);
    Cmd::new(&argv[0])
        .args(&argv[1..])
        .arg(script)
        .output_unchecked()
        .expect("running ssh")
}

fn ssh_ok(net: &Network, host: &TestHost, script: &str) -> String {
    let out = ssh(net, host, script);
    assert!(
        out.status.success(),
        "ssh to {} running {script:?} failed: {}",
        host.name(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("{tag}-{}-{nanos}", std::process::id())
}

#[test]
fn three_hosts_are_separate_machines() {
    let Some(mut net) = network("three_hosts_are_separate_machines") else {
        return;
    };
    let hosts = net.add_hosts(3).expect("adding 3 hosts");
    let ips: Vec<String> = hosts.iter().map(|h| h.ip().to_string()).collect();
    for h in &hosts {
        let out = ssh_ok(
            &net,
            h,
            "hostname; echo PATH=$PATH; ip -o -4 addr show; cat /proc/net/dev; ls -A /root",
        );
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(h.name()), "{out}");
        assert!(out.contains(":/usr/sbin:/usr/bin:/sbin:/bin"), "{out}");
        for ip in &ips {
            assert_eq!(
                out.contains(&format!("inet {ip}/24")),
                *ip == h.ip().to_string(),
                "{out}"
            );
        }
        assert!(
            !out.contains(net.bridge()),
            "the bridge is not inside the host: {out}"
        );
        assert!(
            out.lines().any(|l| l.trim() == ".ssh"),
            "private /root: {out}"
        );
        assert!(!out.contains(".bashrc"), "private /root: {out}");
        assert!(h.host_key_pub().starts_with("ssh-ed25519 "));
    }

    // Hosts reach each other, and the deployer reaches their services.
    let probe = format!("echo > /dev/tcp/{}/22 && echo reachable", hosts[2].ip());
    assert_eq!(
        ssh_ok(&net, &hosts[0], &format!("bash -c '{probe}'")),
        "reachable\n"
    );
    hosts[1]
        // Detached from exec's output pipes, as a service would be.
        .exec(&[
            "sh",
            "-c",
            "setsid -f python3 -m http.server 80 --directory /etc </dev/null >/dev/null 2>&1",
        ])
        .expect("starting a web server in the host");
    let addr = std::net::SocketAddr::from((hosts[1].ip(), 80));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut page = String::new();
    while Instant::now() < deadline {
        if let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            use std::io::{Read, Write};
            conn.write_all(b"GET /hostname HTTP/1.0\r\n\r\n")
                .expect("sending a request");
            conn.read_to_string(&mut page).expect("reading the answer");
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    assert!(
        page.ends_with(&format!("\r\n\r\n{}\n", hosts[1].name())),
        "{page}"
    );

    // Each host has its own /nix.
    let marker = unique("ntk-store-marker");
    let in_store = format!("/nix/store/{marker}");
    ssh_ok(
        &net,
        &hosts[0],
        &format!("mkdir -p /nix/store && echo hi > {in_store}"),
    );
    assert!(hosts[0].root_dir().join("nix/store").join(&marker).exists());
    assert!(
        !Path::new(&in_store).exists(),
        "the deployer's store is untouched"
    );
    for other in &hosts[1..] {
        let out = other
            .exec_unchecked(&["test", "-e", &in_store])
            .expect("exec");
        assert!(
            !out.status.success(),
            "{} must not see {in_store}",
            other.name()
        );
    }

    // Each host has its own /etc.
    let etc_file = format!("/etc/{}", unique("ntk-etc-marker"));
    ssh_ok(
        &net,
        &hosts[1],
        &format!("echo x > {etc_file} && useradd -M ntkuser && id ntkuser"),
    );
    assert!(!Path::new(&etc_file).exists(), "the real /etc is untouched");
    let passwd = std::fs::read_to_string("/etc/passwd").expect("reading /etc/passwd");
    assert!(
        !passwd.contains("ntkuser:"),
        "useradd stayed inside the host"
    );
    let out = hosts[2]
        .exec_unchecked(&["test", "-e", &etc_file])
        .expect("exec");
    assert!(!out.status.success());

    // Keys installed by a deployment in /etc/ssh/authorized_keys.d/root work.
    let pubkey =
        std::fs::read_to_string(net.client_key_path().with_extension("pub")).expect("client key");
    hosts[2]
        .exec(&["rm", "/root/.ssh/authorized_keys"])
        .expect("removing /root key");
    assert!(!ssh(&net, &hosts[2], "true").status.success());
    hosts[2]
        .exec(&[
            "sh",
            "-c",
            &format!("echo '{}' > /etc/ssh/authorized_keys.d/root", pubkey.trim()),
        ])
        .expect("installing key");
    ssh_ok(&net, &hosts[2], "true");
}

#[test]
fn nix_copy_closure_lands_in_one_host_only() {
    let Some(mut net) = network("nix_copy_closure_lands_in_one_host_only") else {
        return;
    };
    let hosts = net.add_hosts(2).expect("adding 2 hosts");
    let tmp = tempfile::tempdir().expect("tempdir");
    let nonce = unique("hello");
    let expr = format!(
        r#"derivation {{ name = "ntk-hello"; system = builtins.currentSystem; builder = "/bin/sh";
            args = [ "-c" "mkdir -p $out/bin; printf '#!/bin/sh\necho hello {nonce}\n' > $out/bin/hello; chmod +x $out/bin/hello" ];
            PATH = "/usr/bin:/bin"; }}"#
    );
    let out = Cmd::new("nix-build")
        .args([
            "--no-out-link",
            "--option",
            "substituters",
            "",
            "--option",
            "build-users-group",
            "",
            "-E",
            &expr,
        ])
        .current_dir(tmp.path())
        .output()
        .expect("nix-build");
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    assert!(path.starts_with("/nix/store/"), "{path}");
    let base = Path::new(&path)
        .file_name()
        .expect("store path name")
        .to_owned();

    let target = &hosts[0];
    Cmd::new("nix-copy-closure")
        .args(["--to", &format!("root@{}", target.ip()), &path])
        .env("NIX_SSHOPTS", net.ssh_options().join(" "))
        .output()
        .expect("nix-copy-closure");
    assert!(target.root_dir().join("nix/store").join(&base).exists());
    assert!(!hosts[1].root_dir().join("nix/store").join(&base).exists());
    let ran = ssh_ok(
        &net,
        target,
        &format!("{path}/bin/hello && nix-store --verify-path {path} && echo valid"),
    );
    assert_eq!(ran, format!("hello {nonce}\nvalid\n"));
    let other = hosts[1]
        .exec_unchecked(&["nix-store", "--verify-path", &path])
        .expect("exec");
    assert!(
        !other.status.success(),
        "the other host's store does not have it"
    );

    // With the host's nix-daemon, as on NixOS.
    target.start_nix_daemon().expect("nix-daemon");
    let via_daemon = ssh_ok(
        &net,
        target,
        &format!("NIX_REMOTE=daemon nix-store --verify-path {path} && echo ok"),
    );
    assert_eq!(via_daemon, "ok\n");
}

#[test]
fn faults_and_reboots() {
    let Some(mut net) = network("faults_and_reboots") else {
        return;
    };
    let hosts = net.add_hosts(1).expect("adding a host");
    let h = &hosts[0];

    h.kill_sshd().expect("kill_sshd");
    assert!(
        !ssh(&net, h, "true").status.success(),
        "ssh fails without sshd"
    );
    h.start_sshd().expect("start_sshd");
    ssh_ok(&net, h, "true");

    h.link_down().expect("link_down");
    assert!(
        !ssh(&net, h, "true").status.success(),
        "ssh fails without link"
    );
    h.link_up().expect("link_up");
    ssh_ok(&net, h, "true");

    // The boot-time activation contract.
    let system = "/nix/store/00000000000000000000000000000000-ntk-system";
    h.exec(&[
        "sh",
        "-c",
        &format!(
            "mkdir -p {system} && printf '#!/bin/sh\\necho activated > /run/activated\\n' > {system}/activate \
             && chmod +x {system}/activate && ln -sfn {system} /nix/var/nix/profiles/system"
        ),
    ])
    .expect("installing a fake system");
    let sleeper = ssh_ok(
        &net,
        h,
        "echo before > /run/marker; sleep 1000 >/dev/null 2>&1 & echo $!",
    );
    let sleeper = sleeper.trim();
    assert!(Path::new(&format!("/proc/{sleeper}")).exists());
    h.simulate_reboot().expect("reboot");
    // A killed process may need a moment to finish exiting.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut state = String::new();
    while Instant::now() < deadline {
        state = std::fs::read_to_string(format!("/proc/{sleeper}/stat")).unwrap_or_default();
        if state.is_empty() || state.contains(") Z ") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        state.is_empty() || state.contains(") Z "),
        "processes of the host die at reboot: {state}"
    );
    let out = ssh_ok(
        &net,
        h,
        "ls /run; cat /run/activated; readlink /run/booted-system",
    );
    assert!(!out.contains("marker"), "/run is fresh: {out}");
    assert!(out.contains("activated\n"), "{out}");
    assert!(out.contains(&format!("{system}\n")), "{out}");

    // Down for a while, then back.
    let started = Instant::now();
    let handle = h
        .simulate_reboot_with_delay(Duration::from_millis(800))
        .expect("delayed reboot");
    assert!(!h.is_running());
    // A short probe: ssh's own connect retries would outlast the 800 ms.
    assert!(
        TcpStream::connect_timeout(&h.ssh_addr(), Duration::from_millis(200)).is_err(),
        "down while rebooting"
    );
    handle.wait().expect("host back");
    assert!(started.elapsed() >= Duration::from_millis(800));
    ssh_ok(&net, h, "test -e /run/activated");

    // Stopped for good.
    h.stop().expect("stop");
    assert!(!ssh(&net, h, "true").status.success());
    assert!(matches!(
        h.exec(&["true"]),
        Err(nixops_testkit::TestkitError::HostDown { .. })
    ));
}

#[test]
fn ssh_agent_serves_the_client_key() {
    let Some(mut net) = network("ssh_agent_serves_the_client_key") else {
        return;
    };
    let hosts = net.add_hosts(1).expect("adding a host");
    let sock = net.ssh_agent().expect("ssh-agent");
    let known = format!("UserKnownHostsFile={}", net.known_hosts_path().display());
    let out = Cmd::new("ssh")
        .args([
            "-F",
            "none",
            "-o",
            &known,
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .arg(format!("root@{}", hosts[0].ip()))
        .arg("hostname")
        .env("SSH_AUTH_SOCK", &sock)
        .output()
        .expect("ssh through the agent");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", hosts[0].name())
    );
}

#[test]
fn drop_leaves_nothing_behind() {
    let Some(mut net) = network("drop_leaves_nothing_behind") else {
        return;
    };
    let hosts = net.add_hosts(2).expect("adding 2 hosts");
    net.ssh_agent().expect("ssh-agent");
    hosts[0].start_nix_daemon().expect("nix-daemon");
    ssh_ok(
        &net,
        &hosts[1],
        "setsid sleep 1000 >/dev/null 2>&1 < /dev/null &",
    );
    let dir = net.dir().to_owned();
    let bridge = net.bridge().to_owned();
    let agent_pid = net.record().agent_pid.expect("agent pid");
    let configs: Vec<String> = hosts
        .iter()
        .map(|h| h.sshd_config().display().to_string())
        .collect();
    let netns: Vec<String> = hosts.iter().map(|h| h.netns().to_owned()).collect();
    drop(net);

    let ns_list = Cmd::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let ns_list = String::from_utf8_lossy(&ns_list.stdout);
    let links = Cmd::new("ip")
        .args(["-o", "link"])
        .output()
        .expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    for ns in &netns {
        assert!(
            !ns_list.split_whitespace().any(|w| w == ns),
            "netns {ns} left: {ns_list}"
        );
        assert!(!links.contains(&format!(" {ns}@")), "veth {ns} left");
    }
    assert!(
        !links.contains(&format!(" {bridge}:")),
        "bridge {bridge} left"
    );
    for config in &configs {
        let out = Cmd::new("pgrep")
            .args(["-f", config])
            .output_unchecked()
            .expect("pgrep");
        assert!(!out.status.success(), "an sshd of {config} survived");
    }
    // A dead process may linger as a zombie until its parent reaps it.
    let agent_state =
        std::fs::read_to_string(format!("/proc/{agent_pid}/stat")).unwrap_or_default();
    assert!(
        agent_state.is_empty() || agent_state.contains(") Z "),
        "ssh-agent survived: {agent_state}"
    );
    assert!(!dir.exists(), "{} left", dir.display());
}

#[test]
#[allow(clippy::print_stderr)] // the measured time is the point of this test's output
fn thirty_hosts_come_up_in_parallel() {
    let Some(mut net) = network("thirty_hosts_come_up_in_parallel") else {
        return;
    };
    let started = Instant::now();
    let hosts = net.add_hosts(30).expect("adding 30 hosts");
    let took = started.elapsed();
    eprintln!("30 test hosts up in {:.2} s", took.as_secs_f64());
    assert!(took < Duration::from_secs(30), "30 hosts took {took:?}");
    std::thread::scope(|s| {
        for h in &hosts {
            let net = &net;
            s.spawn(move || assert_eq!(ssh_ok(net, h, "hostname"), format!("{}\n", h.name())));
        }
    });
    let started = Instant::now();
    drop(net);
    eprintln!(
        "30 test hosts down in {:.2} s",
        started.elapsed().as_secs_f64()
    );
}

/// Wait until `host`'s sshd port is `open` (or closed), as NixOps waits for a
/// rebooting machine.
fn wait_port(host: &TestHost, open: bool, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&host.ssh_addr(), Duration::from_millis(200)).is_ok() == open
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn reboot_asked_for_inside_the_host() {
    let Some(mut net) = network("reboot_asked_for_inside_the_host") else {
        return;
    };
    let hosts = net.add_hosts(2).expect("adding 2 hosts");
    let h = &hosts[0];
    h.set_reboot_delay(Some(Duration::from_secs(1)))
        .expect("reboot delay");
    ssh_ok(
        &net,
        h,
        &format!("touch /run/marker; {}", TestHost::REBOOT_COMMAND),
    );
    assert!(
        wait_port(h, false, Duration::from_secs(20)),
        "host goes down"
    );
    assert!(
        wait_port(h, true, Duration::from_secs(30)),
        "host comes back"
    );
    let out = ssh_ok(&net, h, "hostname; ls /run");
    assert!(out.starts_with(&format!("{}\n", h.name())), "{out}");
    assert!(!out.contains("marker"), "fresh /run: {out}");
    assert!(h.is_running());

    // A host that never comes back.
    let g = &hosts[1];
    g.set_reboot_delay(None).expect("reboot delay");
    ssh_ok(&net, g, TestHost::REBOOT_COMMAND);
    assert!(
        wait_port(g, false, Duration::from_secs(20)),
        "host goes down"
    );
    assert!(
        !wait_port(g, true, Duration::from_secs(2)),
        "and stays down"
    );
    assert!(!g.is_running());
}
