//! `reboot`: waiting for the simulated reboot of a test host, sending the keys
//! again, and the timeout of a host that never comes back.

use std::time::{Duration, Instant};

use crate::harness::OpsEnv;
use crate::keys::network;
use nixops_testkit::snap;

#[test]
fn reboot_waits_for_the_machine_and_sends_keys_again() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.write("web2-key", "from-a-command");
    env.create(&network(&env));
    env.deploy();
    env.host("web1")
        .set_reboot_delay(Some(Duration::from_secs(1)))
        .expect("reboot delay is set");
    // Gone after a reboot: /run is a fresh tmpfs.
    env.on("web1", &["touch", "/run/before-reboot"]);

    let run = env.run("reboot", &["--include", "web1"]).ok();

    for line in [
        "web1> rebooting...",
        "web1> [down]",
        "web1> [up]",
        "web1> uploading key ‘secret’",
    ] {
        assert!(run.stderr.contains(line), "{line}:\n{}", run.render());
    }
    assert_rebooted(&env, "web1");
    assert_eq!(env.on("web1", &["cat", "/run/keys/secret"]), "s3cret-web1");
    assert_eq!(env.stat("web1", "/run/keys/secret"), "app appgrp 640");
    assert_booted_recorded(&env, "web1");
    assert_eq!(env.status("web1").as_deref(), Some("Up / Up-to-date"));
    snap!(env, "reboot", run.render());
}

#[test]
fn reboot_of_a_machine_that_never_comes_back_times_out() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.write("web2-key", "from-a-command");
    env.create(&network(&env));
    env.deploy();
    env.host("web1")
        .set_reboot_delay(None)
        .expect("reboot delay is set");

    let started = Instant::now();
    let run = env
        .run("reboot", &["--include", "web1", "--timeout", "3"])
        .failed_with(1);

    // Generous: the machine may be loaded; without a timeout this would never end.
    assert!(started.elapsed() < Duration::from_secs(90));
    assert!(
        run.stderr
            .contains("machine ‘web1’ did not come back within 3 seconds"),
        "{}",
        run.render()
    );
    assert_eq!(env.status("web1").as_deref(), Some("Starting / Up-to-date"));
    snap!(env, "reboot_timeout", run.render());
}

#[test]
fn reboot_no_wait_leaves_the_machine_starting() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.write("web2-key", "from-a-command");
    env.create(&network(&env));
    env.deploy();
    env.host("web2")
        .set_reboot_delay(Some(Duration::from_secs(1)))
        .expect("reboot delay is set");

    let run = env.run("reboot", &["--include", "web2", "--no-wait"]).ok();

    assert!(!run.stderr.contains("waiting"), "{}", run.render());
    assert_eq!(env.status("web2").as_deref(), Some("Starting / Up-to-date"));
    assert_eq!(env.status("web1").as_deref(), Some("Up / Up-to-date"));
    snap!(env, "reboot_no_wait", run.render());
}

/// A configuration that needs a reboot: `deploy --allow-reboot` reboots through
/// the same code as `nixops reboot`, and the keys are back afterwards.
#[test]
fn deploy_reboots_when_the_configuration_needs_it() {
    let Some(env) = OpsEnv::new(&["web1"]) else {
        return;
    };
    env.create(
        r#"{
  web1 = { ... }: {
    test.requireReboot = true;
    deployment.keys.k = { text = "after-reboot"; permissions = "0400"; };
  };
}
"#,
    );
    env.host("web1")
        .set_reboot_delay(Some(Duration::from_secs(1)))
        .expect("reboot delay is set");
    env.on("web1", &["touch", "/run/before-reboot"]);

    let run = env.run("deploy", &["--allow-reboot"]).ok();

    for line in [
        "web1> [down]",
        "web1> [up]",
        "deployment finished successfully",
    ] {
        assert!(run.stderr.contains(line), "{line}:\n{}", run.render());
    }
    assert_rebooted(&env, "web1");
    assert_eq!(env.on("web1", &["cat", "/run/keys/k"]), "after-reboot");
    assert_eq!(env.stat("web1", "/run/keys/k"), "root root 400");
    assert_booted_recorded(&env, "web1");
}

/// The machine really rebooted: the marker left in its old `/run` is gone.
fn assert_rebooted(env: &OpsEnv, machine: &str) {
    let marker = env
        .host(machine)
        .exec_unchecked(&["test", "-e", "/run/before-reboot"])
        .expect("test runs on the host");
    assert!(!marker.status.success(), "{machine} did not reboot");
}

/// The machine booted the configuration the state records for it.
fn assert_booted_recorded(env: &OpsEnv, machine: &str) {
    let toplevel = env.exported(machine)["toplevel"].clone();
    assert_eq!(
        env.on(machine, &["readlink", "-f", "/run/booted-system"]),
        toplevel.as_str().expect("toplevel is recorded")
    );
}
