//! Partial deploys: `--include`, `--exclude`, and stopping after a phase
//! (`--dry-run`, `--build-only`, `--copy-only`).

use std::path::PathBuf;
use std::process::Command;

use nixops_testkit::env::{dir_entries, NetEnv};

use crate::common::web;
use crate::NIXOPS;

const HOSTS: [&str; 3] = ["web1", "web2", "proxy"];

/// Three machines whose configurations no other test builds.
fn network(env: &NetEnv) -> String {
    let n = env.nonce();
    format!(
        "{{\n  web1 = {};\n  web2 = {};\n  proxy = {};\n}}\n",
        web(&format!("web1 {n}")),
        web(&format!("web2 {n}")),
        web(&format!("proxy {n}"))
    )
}

/// The host was never deployed to: no system profile, no system in its store,
/// nothing activated.
#[track_caller]
fn assert_untouched(env: &NetEnv, host: &str) {
    assert_eq!(env.system_of(host), None, "{host} has a system profile");
    let out = env
        .host(host)
        .exec_unchecked(&[
            "sh",
            "-c",
            "ls /nix/store 2>/dev/null; ls /run/current-system 2>&1",
        ])
        .expect("ls on host");
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(
        !listing.contains("nixos-system"),
        "{host}'s store has a system: {listing}"
    );
    assert!(!env.exists_on(host, "/run/current-system"));
}

fn toplevel(configs: &std::path::Path, machine: &str) -> PathBuf {
    std::fs::canonicalize(configs.join(machine)).expect("machine link resolves")
}

#[test]
fn include_deploys_only_the_named_machine() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--include", "web1"]);
    run.ok();

    let configs = env.configs_path().expect("configsPath recorded");
    assert_eq!(dir_entries(&configs), ["web1"]);
    assert_eq!(
        env.system_of("web1"),
        Some(toplevel(&configs, "web1").to_string_lossy().into_owned())
    );
    assert_eq!(
        env.http_get("web1").as_deref(),
        Some(format!("web1 {}", env.nonce()).as_str())
    );
    assert_untouched(&env, "web2");
    assert_untouched(&env, "proxy");
    assert_eq!(events.machines(), ["web1"], "{:?}", events.0);
    assert_eq!(events.machines_with("copy", "started"), ["web1"]);
    assert_eq!(events.machines_with("activate", "succeeded"), ["web1"]);
}

#[test]
fn exclude_leaves_the_named_machine_alone() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--exclude", "web1"]);
    run.ok();

    let configs = env.configs_path().expect("configsPath recorded");
    assert_eq!(dir_entries(&configs), ["proxy", "web2"]);
    for h in ["web2", "proxy"] {
        assert_eq!(
            env.system_of(h),
            Some(toplevel(&configs, h).to_string_lossy().into_owned())
        );
    }
    assert_untouched(&env, "web1");
    assert_eq!(events.machines(), ["proxy", "web2"], "{:?}", events.0);
    assert_eq!(
        events.machines_with("activate", "succeeded"),
        ["proxy", "web2"]
    );
}

/// Derivation paths named in `text`.
fn drvs_in(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| c.is_whitespace() || c == '\'' || c == '‘' || c == '’')
        .filter(|w| w.starts_with("/nix/store/") && w.ends_with(".drv"))
        .map(str::to_owned)
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn dry_run_builds_nothing_and_touches_no_host() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--dry-run"]);
    let run = run.ok();

    let drvs = drvs_in(&run.all());
    assert!(
        drvs.iter().any(|d| d.contains("nixos-system-web1")),
        "the dry run names no web1 system to build:\n{}",
        run.render()
    );
    for drv in &drvs {
        let out = Command::new("nix-store")
            .args(["-q", "--outputs", drv])
            .output()
            .expect("nix-store runs");
        assert!(out.status.success(), "{drv}: {out:?}");
        for path in String::from_utf8_lossy(&out.stdout).lines() {
            assert!(
                !std::path::Path::new(path).exists(),
                "the dry run built {path}"
            );
        }
    }
    assert_eq!(env.configs_path(), None);
    assert_eq!(events.machines(), Vec::<String>::new(), "{:?}", events.0);
    for h in HOSTS {
        assert_untouched(&env, h);
    }
}

#[test]
fn build_only_builds_and_touches_no_host() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--build-only"]);
    run.ok();

    let configs = env.configs_path().expect("configsPath recorded");
    assert_eq!(dir_entries(&configs), ["proxy", "web1", "web2"]);
    for h in HOSTS {
        let top = toplevel(&configs, h);
        assert!(top.join("bin/switch-to-configuration").exists());
        assert!(top.to_string_lossy().contains(&format!("nixos-system-{h}")));
        assert_untouched(&env, h);
    }
    assert_eq!(events.machines(), Vec::<String>::new(), "{:?}", events.0);
}

#[test]
fn copy_only_copies_without_activating() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--copy-only"]);
    run.ok();

    let configs = env.configs_path().expect("configsPath recorded");
    for h in HOSTS {
        let top = toplevel(&configs, h);
        let top = top.to_string_lossy();
        assert!(env.exists_on(h, &top), "{top} is not on {h}");
        assert!(env.exists_on(h, &format!("{top}/bin/switch-to-configuration")));
        assert_eq!(env.system_of(h), None, "{h}'s profile was set");
        assert!(
            !env.exists_on(h, "/run/current-system"),
            "{h} was activated"
        );
        assert!(!env.exists_on(h, "/run/mini-nixos/toyweb.pid"));
    }
    assert_eq!(events.machines_with("copy", "succeeded"), HOSTS_SORTED);
    // Copied is not deployed.
    for (h, status) in env.statuses() {
        assert_ne!(status, "Up / Up-to-date", "{h}");
    }
    assert_eq!(
        events.machines_with("activate", "started"),
        Vec::<String>::new()
    );
}

const HOSTS_SORTED: [&str; 3] = ["proxy", "web1", "web2"];

/// `--plan-only`: no backend here has a plan operation, so each selected
/// machine says so, as in NixOps, and nothing is built, copied or activated.
#[test]
fn plan_only_says_each_machine_has_no_plan_and_touches_nothing() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    env.create_network(&network(&env));
    let (run, events) = env.deploy(&["--plan-only", "--exclude", "proxy"]);
    let run = run.ok();
    for h in ["web1", "web2"] {
        assert!(
            run.stderr.lines().any(|l| l.starts_with(h)
                && l.ends_with("warning: resource type none doesn't implement a plan operation")),
            "{}",
            run.render()
        );
    }
    assert!(!run.stderr.contains("proxy"), "{}", run.render());
    assert_eq!(env.configs_path(), None);
    assert!(!events.has("web1", "activate", "started"), "{:?}", events.0);
    for h in HOSTS {
        assert_untouched(&env, h);
    }
}
