//! `create`, `list`, `info --no-eval`, `modify`, `clone`, `rename`, `set-args`,
//! `export`/`import`, `delete`, `edit`: the happy paths.

use std::os::unix::fs::PermissionsExt;

use nixops_testkit::env::{dump, TestEnv};
use nixops_testkit::snap;

use crate::NIXOPS;

#[test]
fn create_list_and_info() {
    let env = TestEnv::new(NIXOPS);
    let net = env.write("net.nix", "{ }\n");
    let run = env.run(&["create", net.to_str().expect("utf8"), "-d", "prod"]);
    snap!(env, run.render());
    let run = env.run(&["list"]);
    snap!(env, run.render());
    let run = env.run(&["info", "--no-eval"]);
    snap!(env, run.render());
    let run = env.run(&["info", "--no-eval", "--plain"]);
    snap!(env, run.render());
}

#[test]
fn new_state_file_is_private() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    let dir_mode = std::fs::metadata(env.home().join(".nixops"))
        .expect("invariant: created")
        .permissions()
        .mode();
    let file_mode = std::fs::metadata(env.state())
        .expect("invariant: created")
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o777, 0o700);
    assert_eq!(file_mode & 0o777, 0o600);
}

#[test]
fn state_file_from_the_environment() {
    let env = TestEnv::new(NIXOPS);
    let path = env.path("elsewhere/my.nixops");
    std::fs::create_dir_all(path.parent().expect("has parent")).expect("mkdir");
    let net = env.write("net.nix", "{ }\n");
    let mut cmd = env.command(&["create", net.to_str().expect("utf8")]);
    cmd.env("NIXOPS_STATE", &path)
        .env("NIXOPS_DEPLOYMENT", "from-env");
    env.run_cmd(cmd).ok();
    assert!(path.exists());
    let mut cmd = env.command(&["list", "--json"]);
    cmd.env("NIXOPS_STATE", &path);
    let run = env.run_cmd(cmd).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v[0]["name"], "from-env");
    assert!(!env.state().exists(), "the default state file is not used");
}

#[test]
fn modify_clone_rename_and_set_args() {
    let env = TestEnv::new(NIXOPS);
    env.create("one");
    let other = env.write("other.nix", "{ }\n");
    env.run(&[
        "modify",
        "-d",
        "one",
        "-n",
        "two",
        other.to_str().expect("utf8"),
        "-I",
        "nixpkgs=/x/../y",
    ])
    .ok();
    env.run(&[
        "set-args",
        "-d",
        "two",
        "--arg",
        "n",
        "3",
        "--argstr",
        "s",
        "a \"q\" ${x}",
        "--arg",
        "gone",
        "1",
        "--unset",
        "gone",
    ])
    .ok();
    let run = env.run(&["clone", "-d", "two", "-n", "three"]);
    snap!(env, run.render());
    let run = env.run(&["info", "--no-eval", "-d", "three"]);
    snap!(env, run.render());
    let run = env.run(&["list"]);
    snap!(env, run.render());
}

#[test]
fn export_import_round_trip() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    env.run(&["set-args", "-d", "a", "--argstr", "msg", "ünïcode \n line"])
        .ok();
    let exported = env.run(&["export", "--all"]).ok().stdout;
    let fresh = TestEnv::new(NIXOPS);
    let run = fresh.run_with_stdin(&["import"], &exported).ok();
    assert!(
        run.stderr.starts_with("added deployment ‘"),
        "{}",
        run.stderr
    );
    let again = fresh.run(&["export", "--all"]).ok().stdout;
    assert_eq!(exported, again);
    let v: serde_json::Value = serde_json::from_str(&exported).expect("json");
    let (_, depl) = v.as_object().expect("object").iter().next().expect("one");
    assert_eq!(depl["name"], "a");
    assert_eq!(depl["resources"], serde_json::json!({}));
}

/// `import --include-keys` puts each active machine's recorded host key in
/// `~/.ssh/known_hosts` under its addresses, replacing what was there for
/// them; without it, that file is left alone.
#[test]
fn import_include_keys_writes_known_hosts() {
    let env = TestEnv::new(NIXOPS);
    let known = env.home().join(".ssh/known_hosts");
    env.write(
        "home/.ssh/known_hosts",
        "192.0.2.10,old ssh-ed25519 OLD\nother.example ssh-rsa KEEP\n",
    );
    let export = |uuid: &str, name: &str| {
        format!(
            r#"{{"{uuid}": {{"name": "{name}", "resources": {{
                "web1": {{"type": "none", "publicIpv4": "192.0.2.10", "privateIpv4": "10.1.0.10",
                          "publicHostKey": "ssh-ed25519 KEY1"}},
                "web2": {{"type": "none", "publicIpv4": "192.0.2.11"}},
                "gone": {{"type": "none", "obsolete": "1", "publicIpv4": "192.0.2.12",
                          "publicHostKey": "ssh-ed25519 KEY3"}}}}}}}}"#
        )
    };
    assert_eq!(env.home(), env.path("home"), "HOME is the test's home");
    env.run_with_stdin(
        &["import"],
        &export("0d9c0000-1111-2222-3333-444455556661", "plain"),
    )
    .ok();
    let untouched = "192.0.2.10,old ssh-ed25519 OLD\nother.example ssh-rsa KEEP\n";
    assert_eq!(std::fs::read_to_string(&known).expect("read"), untouched);

    let run = env
        .run_with_stdin(
            &["import", "--include-keys"],
            &export("0d9c0000-1111-2222-3333-444455556662", "keys"),
        )
        .ok();
    assert!(
        run.stderr
            .contains("added deployment ‘0d9c0000-1111-2222-3333-444455556662’"),
        "{}",
        run.render()
    );
    assert_eq!(
        std::fs::read_to_string(&known).expect("read"),
        "old ssh-ed25519 OLD\nother.example ssh-rsa KEEP\n\
         192.0.2.10 ssh-ed25519 KEY1\n10.1.0.10 ssh-ed25519 KEY1\n"
    );
}

#[test]
fn delete_removes_the_deployment() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    env.create("b");
    env.run(&["delete", "-d", "a"]).ok();
    let run = env.run(&["list", "--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
    assert_eq!(v.as_array().expect("array").len(), 1);
    assert_eq!(v[0]["name"], "b");
    env.run(&["delete", "--all"]).ok();
    assert!(!dump(&env.state()).contains("INSERT INTO Deployments"));
}

#[test]
fn edit_runs_the_editor_on_the_network_files() {
    let env = TestEnv::new(NIXOPS);
    env.create("a");
    let log = env.path("edited");
    let editor = env.write(
        "editor.sh",
        &format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", log.display()),
    );
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut cmd = env.command(&["edit"]);
    cmd.env("EDITOR", &editor);
    env.run_cmd(cmd).ok();
    let edited = std::fs::read_to_string(&log).expect("editor ran");
    assert_eq!(edited.trim(), env.path("network.nix").to_string_lossy());
}
