//! A whole network deployed, then one machine changed and deployed again.

use std::collections::BTreeMap;

use nixops_testkit::env::{repo_root, NetEnv};

use crate::NIXOPS;

const HOSTS: [&str; 3] = ["web1", "web2", "proxy"];

#[test]
fn example_network_lands_on_three_hosts() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    let example = repo_root().join("examples/network.nix");
    let hosts = env.path("hosts.nix");
    env.create(&[&example, &hosts]).ok();

    let (run, events) = env.deploy(&[]);
    run.ok();

    let mut systems = BTreeMap::new();
    for name in HOSTS {
        let system = env
            .system_of(name)
            .unwrap_or_else(|| panic!("{name} has no system profile"));
        assert!(
            system.starts_with("/nix/store/") && system.contains(&format!("nixos-system-{name}")),
            "{name}'s system profile points at {system}"
        );
        // The profile's toplevel is in the host's own store and active.
        assert_eq!(
            env.on(name, &["readlink", "-f", "/run/current-system"]),
            system
        );
        let activated = events
            .find(name, "activate", "succeeded")
            .unwrap_or_else(|| panic!("no activation of {name}: {:?}", events.0));
        assert_eq!(activated.store_path.as_deref(), Some(system.as_str()));
        systems.insert(name, system);
    }
    let distinct: std::collections::BTreeSet<_> = systems.values().collect();
    assert_eq!(distinct.len(), 3, "toplevels are not distinct: {systems:?}");

    assert_eq!(env.http_get("web1").as_deref(), Some("Hello from web1"));
    assert_eq!(env.http_get("web2").as_deref(), Some("Hello from web2"));
    assert_eq!(
        env.http_get("proxy").as_deref(),
        Some("Proxy for web1 and web2")
    );
    // defaults apply to every machine: /etc/motd names the machine.
    assert!(env
        .on("web2", &["cat", "/etc/motd"])
        .contains("This is web2, deployed by nixops."));

    let statuses = env.statuses();
    assert_eq!(statuses.len(), 3, "{statuses:?}");
    for name in HOSTS {
        assert_eq!(statuses[name], "Up / Up-to-date", "{statuses:?}");
    }

    // deployment.alwaysActivate defaults to true: deploying the same network
    // again activates every machine again, with nothing new to copy.
    let (run, events) = env.deploy(&[]);
    run.ok();
    assert_eq!(
        events.machines_with("activate", "succeeded"),
        ["proxy", "web1", "web2"]
    );
    for name in HOSTS {
        assert_eq!(env.system_of(name).as_ref(), Some(&systems[name]));
    }
}

/// A network that is a function of its arguments; machines never re-activate
/// an unchanged configuration.
const ARG_NETWORK: &str = r#"{ msg2 ? "two" }: {
  defaults = { deployment.alwaysActivate = false; };
  web1 = { services.toyweb = { enable = true; message = "one"; }; };
  web2 = { services.toyweb = { enable = true; message = msg2; }; };
  proxy = { services.toyweb = { enable = true; message = "proxy"; }; };
}
"#;

#[test]
fn redeploy_touches_only_the_changed_machine() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(ARG_NETWORK);
    env.deploy(&[]).0.ok();
    let before: BTreeMap<&str, String> = HOSTS
        .iter()
        .map(|&h| (h, env.system_of(h).expect("deployed")))
        .collect();
    // The time /run/current-system was last set, to the nanosecond.
    let stamp = |h: &str| env.on(h, &["stat", "-c", "%.9Y", "/run/current-system"]);
    let stamps: BTreeMap<&str, String> = HOSTS.iter().map(|&h| (h, stamp(h))).collect();
    let pid = |h: &str| env.on(h, &["cat", "/run/mini-nixos/toyweb.pid"]);
    let pids: BTreeMap<&str, String> = HOSTS.iter().map(|&h| (h, pid(h))).collect();
    assert_eq!(env.http_get("web2").as_deref(), Some("two"));

    env.run(&[
        "set-args",
        "-d",
        nixops_testkit::env::DEPLOYMENT,
        "--argstr",
        "msg2",
        "changed",
    ])
    .ok();
    let (run, events) = env.deploy(&[]);
    run.ok();

    for h in HOSTS {
        let after = env.system_of(h).expect("still deployed");
        if h == "web2" {
            assert_ne!(after, before[h], "web2's toplevel did not change");
            assert!(after.contains("nixos-system-web2"));
        } else {
            assert_eq!(after, before[h], "{h}'s toplevel changed");
            assert_eq!(stamp(h), stamps[h], "{h} was re-activated");
            assert_eq!(pid(h), pids[h], "{h}'s service was restarted");
        }
    }
    assert_eq!(env.http_get("web2").as_deref(), Some("changed"));
    assert_eq!(env.http_get("web1").as_deref(), Some("one"));
    assert_eq!(events.machines_with("copy", "started"), ["web2"]);
    assert_eq!(events.machines_with("activate", "started"), ["web2"]);
    for h in ["web1", "proxy"] {
        let skipped = events
            .find(h, "activate", "skipped")
            .unwrap_or_else(|| panic!("{h} not skipped: {:?}", events.0));
        assert!(
            skipped
                .message
                .as_deref()
                .is_some_and(|m| m.contains("up to date")),
            "{skipped:?}"
        );
    }
    let copied = events.find("web2", "copy", "started").expect("web2 copied");
    assert_eq!(
        copied.store_path.as_deref(),
        env.system_of("web2").as_deref()
    );
    // Unchanged machines were not even contacted.
    assert_eq!(
        events.machines_with("connect", "started"),
        Vec::<String>::new()
    );
    for (h, status) in env.statuses() {
        assert_eq!(status, "Up / Up-to-date", "{h}");
    }
}

#[test]
fn after_the_first_deploy_nixops_logs_in_with_its_own_key() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    let network = |v: &str| {
        format!(
            "{{ web1 = {}; web2 = {}; }}\n",
            crate::common::web(&format!("one {v}")),
            crate::common::web(&format!("two {v}"))
        )
    };
    env.create_network(&network("v1"));
    // The first deploy logs in with the agent's key (HOME has none).
    env.deploy(&[]).0.ok();
    // The deployed configuration authorises nixops' own key for root.
    let authorized = env.on("web1", &["cat", "/etc/ssh/authorized_keys.d/root"]);
    assert!(
        authorized.contains("NixOps client key for web1"),
        "{authorized}"
    );

    env.write("network.nix", &network("v2"));
    let (run, events) = env.deploy_without_agent(&[]);
    run.ok();
    assert_eq!(
        events.machines_with("activate", "succeeded"),
        ["web1", "web2"]
    );
    assert_eq!(env.http_get("web1").as_deref(), Some("one v2"));
    assert_eq!(env.http_get("web2").as_deref(), Some("two v2"));
}

/// A machine dropped from the network is obsolete: left alone, shown as
/// such, and forgotten with `--kill-obsolete`.
#[test]
fn a_machine_dropped_from_the_network_is_obsolete() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    let web = crate::common::web;
    env.create_network(&format!(
        "{{ web1 = {}; web2 = {}; }}\n",
        web("one"),
        web("two")
    ));
    env.deploy(&[]).0.ok();
    let web2_system = env.system_of("web2").expect("deployed");

    // Gone from both files.
    env.write("network.nix", &format!("{{ web1 = {}; }}\n", web("one v2")));
    env.write(
        "hosts.nix",
        &format!(
            "{{ web1 = {{ deployment.targetHost = \"{}\"; }}; }}\n",
            env.host("web1").ip()
        ),
    );
    let (run, events) = env.deploy(&[]);
    let run = run.ok();
    assert!(
        run.stderr.contains("resource ‘web2’ is obsolete"),
        "{}",
        run.render()
    );
    assert_eq!(events.machines(), ["web1"], "{:?}", events.0);
    assert_eq!(env.http_get("web1").as_deref(), Some("one v2"));
    assert_eq!(env.system_of("web2"), Some(web2_system));
    assert_eq!(env.http_get("web2").as_deref(), Some("two"));
    let statuses = env.statuses();
    assert_eq!(statuses["web2"], "Up / Obsolete", "{statuses:?}");

    env.deploy(&["--kill-obsolete"]).0.ok();
    let statuses = env.statuses();
    assert_eq!(
        statuses.keys().collect::<Vec<_>>(),
        ["web1"],
        "{statuses:?}"
    );
}
