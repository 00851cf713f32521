//! `nixops check` against deployed test hosts: healthy, a host whose sshd is
//! gone, failed units, and machines that are not up to date.

use nixops_testkit::env::{NetEnv, Run};
use nixops_testkit::snap;

use crate::common::{create_and_deploy, mask_column};
use crate::NIXOPS;

/// The check output with the load averages masked (they change all the time).
fn masked(run: &Run) -> String {
    Run {
        code: run.code,
        stdout: mask_column(&run.stdout, "Load avg.", "[LOAD]"),
        stderr: run.stderr.clone(),
    }
    .render()
}

fn json(env: &NetEnv, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["check", "--json"];
    args.extend(extra);
    let run = env.run(&args);
    let value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("check --json is not JSON ({e}):\n{}", run.render()));
    (run.code, value)
}

fn machine<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["machines"]
        .as_array()
        .expect("a machines array")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("no machine {name} in {report:#}"))
}

fn state_of(env: &NetEnv, name: &str) -> Option<String> {
    let conn = rusqlite::Connection::open(env.path("state.nixops")).expect("opening the state");
    conn.query_row(
        "select a.value from ResourceAttrs a join Resources r on r.id = a.machine \
         where r.name = ? and a.name = 'state'",
        [name],
        |row| row.get(0),
    )
    .ok()
}

#[test]
fn healthy_network_then_a_host_without_sshd() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2", "proxy"]) else {
        return;
    };
    create_and_deploy(&env, "ck");

    let run = env.run(&["check"]);
    assert_eq!(run.code, 0, "{}", run.render());
    assert!(
        run.stdout.lines().filter(|l| l.contains(" Yes ")).count() == 3,
        "{}",
        run.render()
    );
    snap!(env, masked(&run));

    let (code, report) = json(&env, &[]);
    assert_eq!(code, 0);
    for name in ["web1", "web2", "proxy"] {
        let m = machine(&report, name);
        assert_eq!(m["reachable"], true, "{m:#}");
        assert_eq!(m["upToDate"], true, "{m:#}");
        assert_eq!(m["failedUnits"], serde_json::json!([]), "{m:#}");
        assert_eq!(m["load"].as_array().map(Vec::len), Some(3), "{m:#}");
        assert_eq!(m["currentSystem"], m["deployedSystem"], "{m:#}");
        assert!(
            m["currentSystem"]
                .as_str()
                .is_some_and(|s| s.ends_with(&format!("-nixos-system-{name}-24.05"))),
            "{m:#}"
        );
        assert_eq!(m["status"], 0);
    }

    // sshd gone: web2 is not up (bit 2) and recorded as unreachable; the others
    // are still checked.
    env.host("web2").kill_sshd().expect("killing sshd");
    let run = env.run(&["check"]);
    assert_eq!(run.code, 2, "{}", run.render());
    snap!(env, masked(&run));
    assert_eq!(state_of(&env, "web2").as_deref(), Some("6"));
    let (code, report) = json(&env, &["--include", "web1", "web2"]);
    assert_eq!(code, 2);
    assert_eq!(report["machines"].as_array().map(Vec::len), Some(2));
    assert_eq!(machine(&report, "web1")["status"], 0);
    assert_eq!(machine(&report, "web2")["up"], false);
    assert_eq!(
        machine(&report, "web2")["reachable"],
        serde_json::Value::Null
    );

    // Back up: the check marks it up again.
    env.host("web2").start_sshd().expect("starting sshd");
    let (code, _) = json(&env, &["--exclude", "web1"]);
    assert_eq!(code, 0);
    assert_eq!(state_of(&env, "web2").as_deref(), Some("3"));

    // --all: every deployment, with a Deployment column.
    let empty = env.write("empty.nix", "{ }\n");
    env.run(&["create", &empty.to_string_lossy(), "-d", "empty"])
        .ok();
    let run = env.run(&["check", "--all"]);
    assert_eq!(run.code, 0, "{}", run.render());
    snap!(env, masked(&run));
}

#[test]
fn failed_units_and_machines_not_up_to_date() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2", "proxy"]) else {
        return;
    };
    create_and_deploy(&env, "ck");
    // Booted with the deployed system: booted and current system agree.
    env.host("web1").simulate_reboot().expect("rebooting web1");
    let (code, report) = json(&env, &["--include", "web1"]);
    assert_eq!(code, 0, "{report:#}");
    let m = machine(&report, "web1");
    assert_eq!(m["bootedSystem"], m["deployedSystem"], "{m:#}");
    assert_eq!(m["notes"], serde_json::json!([]), "{m:#}");

    // A new configuration for web1 is built but not deployed: only web1 is not up
    // to date (web2 and proxy are unchanged in the new build).
    env.run(&["set-args", "--argstr", "message", "bye"]).ok();
    env.deploy(&["--build-only"]).0.ok();
    let run = env.run(&["check"]);
    assert_eq!(run.code, 32, "{}", run.render());
    snap!(env, masked(&run));
    // Deployed: up to date, but web1 still runs the kernel it booted.
    env.deploy(&[]).0.ok();
    let run = env.run(&["check"]);
    assert_eq!(run.code, 0, "{}", run.render());
    snap!(env, masked(&run));

    // Someone switched proxy to another system behind our back.
    let proxy = env.host("proxy");
    proxy
        .exec(&[
            "sh",
            "-ec",
            "cp -a \"$(readlink /run/current-system)\" /run/other-system; \
             ln -sfn /run/other-system /run/current-system",
        ])
        .expect("changing proxy's system");
    let (code, report) = json(&env, &[]);
    assert_eq!(code, 32, "{report:#}");
    let m = machine(&report, "proxy");
    assert_eq!(m["upToDate"], false);
    assert_eq!(m["currentSystem"], "/run/other-system");
    assert_eq!(
        m["notes"],
        serde_json::json!([nixops_core::check::note::SYSTEM_CHANGED])
    );
    assert_eq!(machine(&report, "web1")["upToDate"], true);
    let deployed = m["deployedSystem"].as_str().expect("a deployed system");
    proxy
        .exec(&["ln", "-sfn", deployed, "/run/current-system"])
        .expect("restoring proxy's system");

    // A unit that fails: the deploy fails, the check lists the unit (bit 16); web2
    // now runs a system that was not recorded as deployed (bit 32).
    env.run(&["set-args", "--arg", "failing", "[ \"foo\" ]"])
        .ok();
    let deploy = env.deploy(&[]).0;
    assert_eq!(deploy.code, 1, "{}", deploy.render());
    let run = env.run(&["check"]);
    assert_eq!(run.code, 16 | 32, "{}", run.render());
    assert!(
        run.stdout.contains("foo.service [failed]"),
        "{}",
        run.render()
    );
    snap!(env, masked(&run));
}
