//! `reboot`: waiting for the simulated reboot of a test host, sending the keys
//! again, and the timeout of a host that never comes back.

use std::time::{Duration, Instant};

use crate::harness::OpsEnv;
use crate::keys::network;
use crate::snap;

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
    let marker = env
        .host("web1")
        .exec_unchecked(&["test", "-e", "/run/before-reboot"])
        .expect("test runs on the host");
    assert!(!marker.status.success(), "web1 did not reboot");
    assert_eq!(env.on("web1", &["cat", "/run/keys/secret"]), "s3cret-web1");
    assert_eq!(env.stat("web1", "/run/keys/secret"), "app appgrp 640");
    let toplevel = env.exported("web1")["toplevel"].clone();
    assert_eq!(
        env.on("web1", &["readlink", "-f", "/run/booted-system"]),
        toplevel.as_str().expect("toplevel is recorded")
    );
    let info = env.run("info", &["--no-eval"]).ok();
    assert!(info.stdout.contains("| web1 | Up"), "{}", info.render());
    snap!(env, "reboot", run);
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
        .failed();

    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        run.stderr
            .contains("machine ‘web1’ did not come back within 3 seconds"),
        "{}",
        run.render()
    );
    let info = env.run("info", &["--no-eval"]).ok();
    assert!(
        info.stdout.contains("| web1 | Starting"),
        "{}",
        info.render()
    );
    snap!(env, "reboot_timeout", run);
}
