//! How many times a deploy evaluates the network. A deploy evaluates once: the
//! evaluation that reads the deployment options also instantiates the machines,
//! with the physical expression guessed from the state (and, on a first deploy,
//! from key pairs made for the machine names), and the build realises that
//! derivation. When the guess turns out wrong, the deploy evaluates again and
//! still deploys what the network says.
//!
//! The real Nix tools run behind a shim on `PATH` that only logs each call.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nixops_testkit::env::{Events, NetEnv, Run, DEPLOYMENT};

use crate::NIXOPS;

const TOOLS: [&str; 4] = ["nix-instantiate", "nix-build", "nix-store", "ssh"];

/// A directory of scripts that log `name args...` to `log` and run the real
/// tool; and, to `log.times`, `start|end <ns since the epoch> name args...`.
fn shim(env: &NetEnv, log: &Path) -> PathBuf {
    let dir = env.path("shim");
    std::fs::create_dir_all(&dir).expect("the shim directory can be created");
    let path = std::env::var_os("PATH").expect("PATH is set");
    for tool in TOOLS {
        let real = std::env::split_paths(&path)
            .map(|d| d.join(tool))
            .find(|p| p.is_file() && !p.starts_with(&dir))
            .unwrap_or_else(|| panic!("{tool} is not on PATH"));
        let script = dir.join(tool);
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nlog='{log}'\necho \"{tool} $*\" >> \"$log\"\n\
                 echo \"start $(date +%s%N) {tool} $*\" >> \"$log.times\"\n\
                 '{real}' \"$@\"\nstatus=$?\n\
                 echo \"end $(date +%s%N) {tool} $*\" >> \"$log.times\"\nexit $status\n",
                log = log.display(),
                real = real.display()
            ),
        )
        .expect("the shim can be written");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
            .expect("the shim can be made executable");
    }
    dir
}

/// Deploy with the shim first on `PATH`; the calls of each tool, and the run.
fn deploy_counting(env: &NetEnv, n: usize) -> (Run, Events, Calls) {
    let log = env.path(&format!("calls-{n}.log"));
    let shim = shim(env, &log);
    let events = env.path(&format!("counted-{n}.jsonl"));
    let events_arg = events.display().to_string();
    let mut cmd = env.command(&["deploy", "-d", DEPLOYMENT, "--events", &events_arg]);
    let path = std::env::var_os("PATH").expect("PATH is set");
    let mut dirs = vec![shim];
    dirs.extend(std::env::split_paths(&path));
    cmd.env(
        "PATH",
        std::env::join_paths(dirs).expect("PATH entries join"),
    );
    let run = env.run_cmd(cmd);
    let calls = Calls(
        std::fs::read_to_string(&log).unwrap_or_default(),
        std::fs::read_to_string(log.with_extension("log.times")).unwrap_or_default(),
    );
    (run, Events::read(&events), calls)
}

/// The logged calls, and their start and end times.
struct Calls(String, String);

impl Calls {
    /// How many calls of `tool` had an argument equal to `arg` (any, if empty).
    fn count(&self, tool: &str, arg: &str) -> usize {
        self.0
            .lines()
            .filter(|l| {
                let mut words = l.split(' ');
                words.next() == Some(tool) && (arg.is_empty() || words.any(|w| w == arg))
            })
            .count()
    }

    /// When (ns) the first call of `tool` with the argument `arg` started or
    /// ended (`what`).
    fn time(&self, what: &str, tool: &str, arg: &str) -> Option<u128> {
        self.1.lines().find_map(|l| {
            let mut words = l.split(' ');
            let (w, t, name) = (words.next()?, words.next()?, words.next()?);
            (w == what && name == tool && words.any(|x| x == arg))
                .then(|| t.parse().ok())
                .flatten()
        })
    }
}

fn network(msg1: &str, msg2: &str, ip: Option<&str>) -> String {
    let ip = ip.map_or(String::new(), |ip| {
        format!("networking.publicIPv4 = \"{ip}\";")
    });
    format!(
        "{{ web1 = {{ services.toyweb = {{ enable = true; message = \"{msg1}\"; }}; {ip} }};\n  \
         web2 = {};\n}}\n",
        crate::common::web(msg2)
    )
}

#[test]
fn a_redeploy_evaluates_the_network_once() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    env.create_network(&network("one", "two", None));

    // First deploy: the key pairs nixops provisions go into the configurations,
    // so they are made for the machine names (read without evaluating any
    // machine) before the one evaluation of the machines. Beside it, `info`
    // (no machine instantiated) lets the first contacts start early.
    let (run, _, calls) = deploy_counting(&env, 0);
    run.ok();
    assert_eq!(
        calls.count("nix-instantiate", "machineNames"),
        1,
        "{}",
        calls.0
    );
    assert_eq!(calls.count("nix-instantiate", "plan"), 1, "{}", calls.0);
    assert_eq!(calls.count("nix-instantiate", "info"), 1, "{}", calls.0);
    assert_eq!(calls.count("nix-instantiate", ""), 3, "{}", calls.0);
    assert_eq!(calls.count("nix-build", ""), 0, "{}", calls.0);
    assert_eq!(calls.count("nix-store", "--realise"), 1, "{}", calls.0);
    assert_eq!(env.http_get("web2").as_deref(), Some("two"));
    // The configuration authorises the key pair that the state recorded.
    let export = env.export();
    let recorded = export
        .as_object()
        .and_then(|d| d.values().next())
        .map(|d| d["resources"]["web1"]["none.sshPublicKey"].clone())
        .unwrap_or_default();
    let recorded = recorded.as_str().unwrap_or_else(|| panic!("{export}"));
    let authorized = env.on("web1", &["cat", "/etc/ssh/authorized_keys.d/root"]);
    assert!(authorized.contains(recorded), "{authorized} vs {recorded}");

    // A change: one evaluation, and its derivation is built as it is.
    env.write("network.nix", &network("one", "two, changed", None));
    let (run, events, calls) = deploy_counting(&env, 1);
    run.ok();
    assert_eq!(calls.count("nix-instantiate", ""), 1, "{}", calls.0);
    assert_eq!(calls.count("nix-build", ""), 0, "{}", calls.0);
    assert_eq!(calls.count("nix-store", "--realise"), 1, "{}", calls.0);
    assert_eq!(env.http_get("web2").as_deref(), Some("two, changed"));
    assert_eq!(env.http_get("web1").as_deref(), Some("one"));
    assert_eq!(
        events.machines_with("activate", "succeeded"),
        ["web1", "web2"]
    );

    // An address is new: it goes into the physical expression once recorded, so
    // the guess from the state no longer holds and the machines are built again.
    env.write("network.nix", &network("one v3", "two", Some("192.0.2.1")));
    let (run, _, calls) = deploy_counting(&env, 2);
    run.ok();
    assert_eq!(calls.count("nix-instantiate", ""), 1, "{}", calls.0);
    assert_eq!(calls.count("nix-build", ""), 1, "{}", calls.0);
    assert_eq!(env.http_get("web1").as_deref(), Some("one v3"));

    // A changed address contradicts the guess (the state still has the old
    // one): that evaluation fails, the deploy evaluates without the guess,
    // builds with what the network now says, and succeeds.
    env.write("network.nix", &network("one v4", "two", Some("192.0.2.2")));
    let (run, _, calls) = deploy_counting(&env, 3);
    run.ok();
    assert_eq!(calls.count("nix-instantiate", ""), 2, "{}", calls.0);
    assert_eq!(calls.count("nix-build", ""), 1, "{}", calls.0);
    assert_eq!(env.http_get("web1").as_deref(), Some("one v4"));
    let info = env.info_json();
    let web1 = info["machines"]
        .as_array()
        .and_then(|ms| ms.iter().find(|m| m["name"] == "web1"))
        .cloned()
        .unwrap_or_else(|| panic!("no web1 in {info}"));
    assert!(web1.to_string().contains("192.0.2.2"), "{web1}");
    for (h, status) in env.statuses() {
        assert_eq!(status, "Up / Up-to-date", "{h}");
    }
}

/// The machines a redeploy will activate anyway (`alwaysActivate`, NixOps'
/// default) are connected to while the network is evaluated; a machine that
/// only activates a changed configuration is not contacted when nothing changed.
#[test]
fn connections_open_while_the_network_is_evaluated() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    env.create_network(&format!(
        "{{ web1 = {};\n  web2 = {{ imports = [ {} ]; deployment.alwaysActivate = false; }};\n}}\n",
        crate::common::web("one"),
        crate::common::web("two")
    ));
    env.deploy(&[]).0.ok();

    let (run, events, calls) = deploy_counting(&env, 0);
    run.ok();
    assert_eq!(events.machines_with("activate", "succeeded"), ["web1"]);
    assert!(events.has("web2", "activate", "skipped"), "{:?}", events.0);
    let web1 = format!("root@{}", env.host("web1").ip());
    let web2 = format!("root@{}", env.host("web2").ip());
    let master = calls
        .time("start", "ssh", &web1)
        .unwrap_or_else(|| panic!("no ssh to web1:\n{}", calls.1));
    let evaluated = calls
        .time("end", "nix-instantiate", "plan")
        .unwrap_or_else(|| panic!("no evaluation:\n{}", calls.1));
    assert!(
        master < evaluated,
        "the connection to web1 started after the evaluation:\n{}",
        calls.1
    );
    assert_eq!(calls.count("ssh", &web2), 0, "{}", calls.0);
    assert_eq!(env.http_get("web1").as_deref(), Some("one"));
}

/// `show-physical` prints the physical expression a deploy evaluates with, and
/// `show-option --include-physical` evaluates with it: the provisioned key is
/// authorised for root, and the network's own values win.
#[test]
fn show_physical_and_show_option_use_the_recorded_state() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1"]) else {
        return;
    };
    env.create_network(&format!("{{ web1 = {}; }}\n", crate::common::web("one")));
    env.deploy(&[]).0.ok();
    let key = env.export();
    let key = key
        .as_object()
        .and_then(|d| d.values().next())
        .and_then(|d| d["resources"]["web1"]["none.sshPublicKey"].as_str())
        .map(str::to_owned)
        .unwrap_or_else(|| panic!("no key recorded: {key}"));

    let run = env.run(&["show-physical", "-d", DEPLOYMENT]).ok();
    assert!(
        run.stdout.contains("web1 = { config, lib, pkgs, ... }:"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("config.users.extraUsers.root.openssh.authorizedKeys.keys"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains(&key), "{}", run.stdout);

    let run = env
        .run(&[
            "show-option",
            "-d",
            DEPLOYMENT,
            "--include-physical",
            "--json",
            "web1",
            "users.extraUsers.root.openssh.authorizedKeys.keys",
        ])
        .ok();
    let keys: Vec<String> = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", run.stdout));
    assert_eq!(keys, [key]);
    let run = env
        .run(&[
            "show-option",
            "-d",
            DEPLOYMENT,
            "web1",
            "networking.hostName",
        ])
        .ok();
    assert_eq!(run.stdout.trim(), "\"web1\"");
}
