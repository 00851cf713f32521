//! A host key pinned on first contact must not change: a host presenting
//! another key is refused, and only that host.

use std::process::Command;

use nixops_testkit::env::NetEnv;

use crate::common::web;
use crate::NIXOPS;

const HOSTS: [&str; 3] = ["web1", "web2", "proxy"];

/// Replace the host's sshd host key by a fresh one and restart its sshd.
fn regenerate_host_key(env: &NetEnv, host: &str) {
    let h = env.host(host);
    let key = h.root_dir().join("ssh_host_ed25519_key");
    let _ = std::fs::remove_file(&key);
    let _ = std::fs::remove_file(key.with_extension("pub"));
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "new-key", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen runs");
    assert!(status.success());
    h.kill_sshd().expect("sshd stops");
    h.start_sshd().expect("sshd starts with the new key");
}

#[test]
fn a_changed_host_key_stops_that_host_only() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    let network = |v: &str| {
        format!(
            "{{ web1 = {}; web2 = {}; proxy = {}; }}\n",
            web(&format!("one {v}")),
            web(&format!("two {v}")),
            web(&format!("proxy {v}"))
        )
    };
    env.create_network(&network("v1"));
    env.deploy(&[]).0.ok();
    let web2_before = env.system_of("web2").expect("web2 deployed");
    let pinned = env.export();

    regenerate_host_key(&env, "web2");
    env.write("network.nix", &network("v2"));
    let (run, events) = env.deploy(&[]);
    let run = run.failed();

    let line = run
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("* web2: "))
        .unwrap_or_else(|| panic!("web2's failure is not reported:\n{}", run.render()));
    assert!(
        line.to_lowercase().contains("host key"),
        "the reason does not say it is the host key: {line}"
    );
    assert!(events.failure("web2").is_some(), "{:?}", events.0);
    assert!(!events.has("web2", "copy", "started"));
    assert!(!events.has("web2", "activate", "started"));
    assert_eq!(env.system_of("web2"), Some(web2_before));
    assert_eq!(env.http_get("web2").as_deref(), Some("two v1"));
    // The others got their new configuration.
    assert_eq!(env.http_get("web1").as_deref(), Some("one v2"));
    assert_eq!(env.http_get("proxy").as_deref(), Some("proxy v2"));
    // The pinned key was not replaced by the new one.
    let key_of = |export: &serde_json::Value| {
        export
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(|d| d["resources"]["web2"]["publicHostKey"].as_str())
            .map(str::to_owned)
    };
    let before = key_of(&pinned).expect("web2's host key was pinned");
    assert_eq!(key_of(&env.export()).as_deref(), Some(before.as_str()));
    let statuses = env.statuses();
    assert_ne!(statuses["web2"], "Up / Up-to-date", "{statuses:?}");
}
