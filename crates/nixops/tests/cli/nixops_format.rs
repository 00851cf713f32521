//! A state file written the way Python NixOps writes it (built with the sqlite3
//! program from the spec's DDL and value encoding) opens, lists, shows and
//! exports; older schemas are migrated; a newer one is refused untouched.

use std::path::PathBuf;
use std::process::Command;

use nixops_testkit::env::{bytes, TestEnv};
use nixops_testkit::snap;

use crate::NIXOPS;

/// Build the NixOps-format fixture of schema `version` in the test's directory.
fn fixture(env: &TestEnv, version: u32) -> PathBuf {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/state/make-nixops-state.sh"
    );
    let out = env.path(&format!("v{version}.nixops"));
    let status = Command::new("sh")
        .arg(script)
        .arg(&out)
        .arg(version.to_string())
        .status()
        .expect("invariant: sh runs");
    assert!(status.success(), "the fixture script failed");
    out
}

#[test]
fn list_info_and_export_of_a_nixops_state_file() {
    let env = TestEnv::new(NIXOPS);
    let state = fixture(&env, 3);
    let s = state.to_str().expect("utf8");
    snap!(env, env.run(&["list", "-s", s]).render());
    snap!(
        env,
        env.run(&["info", "--no-eval", "-s", s, "-d", "test"])
            .render()
    );
    snap!(
        env,
        env.run(&["info", "--no-eval", "--all", "--plain", "-s", s])
            .render()
    );
    let run = env.run(&["export", "-s", s, "-d", "test"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    let depl = &v["0d9c5a1e-60f5-11e9-8a3c-0242ac110002"];
    assert_eq!(depl["name"], "test");
    assert_eq!(depl["rollbackEnabled"], "1");
    let web = &depl["resources"]["web"];
    assert_eq!(web["type"], "none");
    assert_eq!(web["state"], "3");
    assert!(web["keys"]
        .as_str()
        .expect("raw string")
        .contains("s3cr\\u00eat"));
    assert_eq!(depl["resources"]["db"]["type"], "virtualbox");
    snap!(env, run.render());
}

#[test]
fn older_schemas_are_migrated() {
    for version in [1, 2] {
        let env = TestEnv::new(NIXOPS);
        let state = fixture(&env, version);
        let run = env.run(&["list", "-s", state.to_str().expect("utf8")]).ok();
        assert!(
            run.stderr.contains("updating database schema"),
            "v{version}: {}",
            run.render()
        );
        let again = env.run(&["list", "-s", state.to_str().expect("utf8")]).ok();
        assert_eq!(again.stderr, "", "migrated only once");
        assert_eq!(run.stdout, again.stdout);
        assert!(run.stdout.contains("| test "), "{}", run.stdout);
    }
}

#[test]
fn newer_schema_is_refused_untouched() {
    let env = TestEnv::new(NIXOPS);
    let state = fixture(&env, 3);
    let status = Command::new("sqlite3")
        .arg(&state)
        .arg("update SchemaVersion set version = 4;")
        .status()
        .expect("invariant: sqlite3 runs");
    assert!(status.success());
    let before = bytes(&state);
    let run = env.run(&["list", "-s", state.to_str().expect("utf8")]);
    snap!(env, run.render());
    assert_eq!(before, bytes(&state));
}

#[test]
fn concurrent_writers_do_not_corrupt_the_file() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    // Eight processes set arguments of the same deployment at once.
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.command(&[
                "set-args",
                "-d",
                "a",
                "--arg",
                &format!("x{i}"),
                &i.to_string(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("invariant: nixops runs")
        })
        .collect();
    let mut failures = Vec::new();
    for child in children {
        let out = child
            .wait_with_output()
            .expect("invariant: nixops finishes");
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    // Each one waits for the deployment lock in turn; none fails.
    assert!(failures.is_empty(), "{failures:?}");
    let check = Command::new("sqlite3")
        .arg(env.state())
        .arg("pragma integrity_check;")
        .output()
        .expect("invariant: sqlite3 runs");
    assert_eq!(String::from_utf8_lossy(&check.stdout).trim(), "ok");
    let info = env.run(&["info", "--no-eval", "--json", "-d", "a"]).ok();
    let v: serde_json::Value = serde_json::from_str(&info.stdout).expect("json");
    for i in 0..8 {
        assert_eq!(v["args"][format!("x{i}")], i.to_string(), "{v}");
    }
}
