//! Bad input: every error is one clear line, a non-zero exit, and no change to the
//! state file.

use std::os::unix::fs::PermissionsExt;

use nixops_testkit::env::{bytes, dump, TestEnv};
use nixops_testkit::snap;

use crate::NIXOPS;

#[test]
fn unknown_and_ambiguous_deployments() {
    let env = TestEnv::new(NIXOPS);
    let run = env.run(&["info", "--no-eval"]);
    snap!(env, run.render());
    env.create("a");
    env.create("b");
    let before = dump(&env.state());
    let run = env.run(&["info", "--no-eval"]);
    snap!(env, run.render());
    let run = env.run(&["set-args", "-d", "nope", "--arg", "x", "1"]);
    snap!(env, run.render());
    assert_eq!(before, dump(&env.state()));
}

#[test]
fn duplicate_names_are_refused() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    let before = dump(&env.state());
    let net = env.path("network.nix");
    let run = env.run(&["create", net.to_str().expect("utf8"), "-d", "a"]);
    snap!(env, run.render());
    let run = env.run(&["clone", "-d", "a"]);
    snap!(env, run.render());
    assert_eq!(before, dump(&env.state()));
}

#[test]
fn wrong_extension() {
    let env = TestEnv::new(NIXOPS);
    let run = env.run(&["list", "-s", "state.db"]);
    snap!(env, run.render());
    assert!(!env.path("state.db").exists());
}

#[test]
fn not_sqlite_and_truncated_files() {
    let env = TestEnv::new(NIXOPS);
    let garbage = env.write("garbage.nixops", "this is not a database\n");
    let before = bytes(&garbage);
    let run = env.run(&["list", "-s", garbage.to_str().expect("utf8")]);
    snap!(env, run.render());
    assert_eq!(before, bytes(&garbage));

    env.create("a");
    let full = bytes(&env.state());
    let cut = env.path("cut.nixops");
    std::fs::write(&cut, &full[..full.len().min(1000)]).expect("write");
    let before = bytes(&cut);
    let run = env.run(&["list", "-s", cut.to_str().expect("utf8")]);
    assert_ne!(run.code, 0, "{}", run.render());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.render());
    assert!(run.stderr.contains("cut.nixops"), "{}", run.render());
    assert_eq!(before, bytes(&cut));
}

#[test]
fn unreadable_state_directory() {
    let env = TestEnv::new(NIXOPS);
    // A regular file where a directory should be: fails even for root.
    env.write("notadir", "");
    let run = env.run(&["list", "-s", "notadir/deployments.nixops"]);
    snap!(env, run.render());
    let locked = env.path("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    let mut cmd = env.command(&["list", "-s", "locked/deployments.nixops"]);
    // Drop root's power to bypass permissions, if we are root.
    if unsafe_is_root() {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_nixops"))
            .args(["list", "-s"])
            .arg(locked.join("deployments.nixops"))
            .env_clear()
            .env("HOME", env.home())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        cmd = c;
    }
    let run = env.run_cmd(cmd);
    assert_eq!(run.code, 1, "{}", run.render());
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.render());
    assert!(
        run.stderr.contains("locked/deployments.nixops"),
        "{}",
        run.render()
    );
}

fn unsafe_is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

#[test]
fn malformed_arg() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    let before = dump(&env.state());
    let run = env.run(&["set-args", "--arg", "not a name", "1"]);
    snap!(env, run.render());
    let run = env.run(&["set-args", "--arg", "x", ""]);
    snap!(env, run.render());
    let run = env.run(&["set-args", "--arg", "onlyname"]);
    snap!(env, run.render());
    assert_eq!(before, dump(&env.state()));
}

#[test]
fn delete_with_machines_needs_force() {
    let env = TestEnv::new(NIXOPS);
    // A deployment with a machine, imported under a known UUID.
    let fresh = "0d9c0000-1111-2222-3333-444455556666";
    let export = format!(
        r#"{{"{fresh}": {{"name": "b", "resources": {{"m": {{"type": "none", "state": "3"}}}}}}}}"#
    );
    env.run_with_stdin(&["import"], &export).ok();
    let before = dump(&env.state());
    let run = env.run(&["delete", "-d", "b"]);
    snap!(env, run.render());
    assert_eq!(before, dump(&env.state()));
    env.run(&["delete", "-d", "b", "--force"]).ok();
    assert!(!dump(&env.state()).contains(fresh));
}

#[test]
fn import_of_an_existing_uuid() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    let exported = env.run(&["export"]).ok().stdout;
    let before = dump(&env.state());
    let run = env.run_with_stdin(&["import"], &exported);
    snap!(env, run.render());
    assert_eq!(before, dump(&env.state()));
}

#[test]
fn usage_errors_exit_2() {
    let env = TestEnv::new(NIXOPS);
    let run = env.run(&["-d", "x", "list"]);
    assert_eq!(run.code, 2, "{}", run.render());
    let run = env.run(&["list", "--bogus"]);
    assert_eq!(run.code, 2, "{}", run.render());
    let run = env.run(&["scp", "--from", "--to", "m", "a", "b"]);
    assert_ne!(run.code, 0, "{}", run.render());
    env.create("a");
    let run = env.run(&["mount", "web1", "/mnt"]);
    snap!(env, run.render());
}

#[test]
fn rename_of_machines() {
    let env = TestEnv::new(NIXOPS);
    let fresh = "0d9c0000-1111-2222-3333-444455556666";
    let export = format!(
        r#"{{"{fresh}": {{"name": "b", "resources": {{"m": {{"type": "none", "state": "3", "toplevel": "/nix/store/x"}}, "n": {{"type": "none"}}}}}}}}"#
    );
    env.run_with_stdin(&["import"], &export).ok();
    let before = dump(&env.state());
    snap!(env, env.run(&["rename", "nope", "x"]).render());
    snap!(env, env.run(&["rename", "m", "n"]).render());
    snap!(env, env.run(&["rename", "m", "bad name"]).render());
    assert_eq!(before, dump(&env.state()));
    snap!(env, env.run(&["rename", "m", "m2"]).render());
    let exported = env.run(&["export"]).ok().stdout;
    let v: serde_json::Value = serde_json::from_str(&exported).expect("json");
    assert_eq!(v[fresh]["resources"]["m2"]["toplevel"], "/nix/store/x");
    assert!(v[fresh]["resources"].get("m").is_none());
}

#[test]
fn backups_of_none_machines() {
    let env = TestEnv::new(NIXOPS);
    let fresh = "0d9c0000-1111-2222-3333-444455556666";
    let export = format!(
        r#"{{"{fresh}": {{"name": "b", "resources": {{"m": {{"type": "none", "state": "3"}}}}}}}}"#
    );
    env.run_with_stdin(&["import"], &export).ok();
    let before = dump(&env.state());
    snap!(env, env.run(&["backup-status"]).render());
    snap!(env, env.run(&["backup-status", "20260101000000"]).render());
    snap!(env, env.run(&["backup-status", "--latest"]).render());
    snap!(env, env.run(&["remove-backup", "20260101000000"]).render());
    snap!(env, env.run(&["clean-backups"]).render());
    snap!(
        env,
        env.run(&["clean-backups", "--keep", "2", "--keep-days", "3"])
            .render()
    );
    snap!(env, env.run(&["clean-backups", "--keep", "2"]).render());
    let run = env.run(&["clean-backups", "--keep-days", "3"]).ok();
    assert_eq!(
        run.stdout.trim().len(),
        14,
        "a YYYYmmddHHMMSS cutoff: {}",
        run.stdout
    );
    snap!(env, env.run(&["backup"]).render());
    assert_eq!(before, dump(&env.state()));
}
