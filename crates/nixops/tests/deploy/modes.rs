//! How the new configuration is applied: `--dry-activate`, `--test`, `--boot`.

use nixops_testkit::env::NetEnv;

use crate::common::web;
use crate::NIXOPS;

const HOSTS: [&str; 3] = ["web1", "web2", "proxy"];

fn network(v: &str) -> String {
    format!(
        "{{ web1 = {}; web2 = {}; proxy = {}; }}\n",
        web(&format!("one {v}")),
        web(&format!("two {v}")),
        web(&format!("proxy {v}"))
    )
}

fn current(env: &NetEnv, host: &str) -> String {
    env.on(host, &["readlink", "-f", "/run/current-system"])
}

#[test]
fn dry_activate_test_and_boot_apply_as_asked() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network("v1"));
    env.deploy(&[]).0.ok();
    let old: Vec<String> = HOSTS
        .iter()
        .map(|h| env.system_of(h).expect("deployed"))
        .collect();
    env.write("network.nix", &network("v2"));

    // --dry-activate: says what it would do, changes nothing.
    let (run, events) = env.deploy(&["--dry-activate", "--include", "web1"]);
    let run = run.ok();
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("web1") && l.contains("would ")),
        "{}",
        run.render()
    );
    assert_eq!(events.machines(), ["web1"]);
    assert_eq!(env.system_of("web1").as_ref(), Some(&old[0]));
    assert_eq!(current(&env, "web1"), old[0]);
    assert_eq!(env.http_get("web1").as_deref(), Some("one v1"));
    assert_ne!(env.statuses()["web1"], "Up / Up-to-date");

    // --test: active now, but not the profile (nor the boot default).
    env.deploy(&["--test", "--include", "web2"]).0.ok();
    let new_web2 = current(&env, "web2");
    assert_ne!(new_web2, old[1]);
    assert!(new_web2.contains("nixos-system-web2"));
    assert_eq!(env.system_of("web2").as_ref(), Some(&old[1]));
    assert_eq!(env.http_get("web2").as_deref(), Some("two v2"));

    // --boot: the profile and boot default, not what runs now.
    env.deploy(&["--boot", "--include", "proxy"]).0.ok();
    let new_proxy = env.system_of("proxy").expect("proxy has a profile");
    assert_ne!(new_proxy, old[2]);
    assert_eq!(current(&env, "proxy"), old[2]);
    assert_eq!(
        env.on("proxy", &["cat", "/nix/var/nix/mini-nixos/boot-system"]),
        new_proxy
    );
    assert_eq!(env.http_get("proxy").as_deref(), Some("proxy v1"));
}

#[test]
fn max_concurrent_activate_one_activates_one_machine_at_a_time() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    let slow = |m: &str| format!("{{ imports = [ {} ]; test.activationDelay = 1; }}", web(m));
    env.create_network(&format!(
        "{{ web1 = {}; web2 = {}; proxy = {}; }}\n",
        slow("one"),
        slow("two"),
        slow("proxy")
    ));
    let (run, events) = env.deploy(&["--max-concurrent-activate", "1"]);
    run.ok();
    let mut spans: Vec<(f64, f64, String)> = HOSTS
        .iter()
        .map(|h| {
            let start = events.find(h, "activate", "started").expect("started");
            let end = events.find(h, "activate", "succeeded").expect("succeeded");
            (start.time, end.time, (*h).to_owned())
        })
        .collect();
    spans.sort_by(|a, b| a.0.total_cmp(&b.0));
    for pair in spans.windows(2) {
        assert!(
            pair[1].0 >= pair[0].1,
            "{} started activating before {} finished: {spans:?}",
            pair[1].2,
            pair[0].2
        );
    }
}

/// `--check` does not trust the state: a machine whose system profile was
/// changed behind nixops' back is put right, the others are left alone.
#[test]
fn check_repairs_a_machine_that_drifted() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    env.create_network(
        "{\n  defaults = { deployment.alwaysActivate = false; };\n  web1 = { services.toyweb = { enable = true; message = \"one\"; }; };\n  web2 = { services.toyweb = { enable = true; message = \"two\"; }; };\n}\n",
    );
    env.deploy(&[]).0.ok();
    let system = env.system_of("web1").expect("deployed");
    // Someone points web1's profile elsewhere (at a path in its store).
    let other = env.on("web1", &["readlink", "-f", "/run/current-system/sw"]);
    assert_ne!(other, system);
    env.on(
        "web1",
        &[
            "nix-env",
            "-p",
            "/nix/var/nix/profiles/system",
            "--set",
            &other,
        ],
    );

    // Trusting the state, nothing changed: nobody is contacted.
    let (run, events) = env.deploy(&[]);
    run.ok();
    assert!(events.machines_with("activate", "started").is_empty());
    assert_eq!(env.system_of("web1").as_deref(), Some(other.as_str()));

    let (run, events) = env.deploy(&["--check"]);
    run.ok();
    assert_eq!(env.system_of("web1").as_deref(), Some(system.as_str()));
    assert_eq!(events.machines_with("activate", "started"), ["web1"]);
    assert!(events.has("web2", "activate", "skipped"), "{:?}", events.0);
    for (h, status) in env.statuses() {
        assert_eq!(status, "Up / Up-to-date", "{h}");
    }
}
