//! `destroy`, `delete --force`, `rename`, and what `none` machines refuse.

use std::path::{Path, PathBuf};

use crate::harness::OpsEnv;
use nixops_testkit::snap;

const NETWORK: &str = r#"{
  network.enableRollback = true;
  web1 = { ... }: { deployment.keys.k.text = "key-of-web1"; };
  web2 = { ... }: { };
}
"#;

/// The rollback profile of the deployment (the state's only one), as the tool
/// names it for root.
fn profile(env: &OpsEnv) -> PathBuf {
    let run = env.run("export", &[]).ok();
    let all: serde_json::Value = serde_json::from_str(&run.stdout).expect("export prints JSON");
    let uuid = all
        .as_object()
        .and_then(|o| o.keys().next().cloned())
        .expect("one deployment");
    Path::new("/nix/var/nix/profiles/per-user/root/nixops").join(uuid)
}

/// The machines in the profile's current generation.
fn generation_machines(profile: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(profile)
        .expect("the profile has a generation")
        .map(|e| {
            e.expect("invariant: readable entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

/// `<profile>-N-link` generations that exist.
fn generations(profile: &Path) -> usize {
    let dir = profile
        .parent()
        .expect("invariant: the profile has a parent");
    let prefix = format!(
        "{}-",
        profile
            .file_name()
            .expect("invariant: named")
            .to_string_lossy()
    );
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn destroy_asks_forgets_and_delete_removes_the_profile() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.create(NETWORK);
    env.deploy();
    let profile = profile(&env);
    assert_eq!(generation_machines(&profile), ["web1", "web2"]);
    let before = generations(&profile);

    // "n" keeps everything.
    let no = env.run_with_stdin("destroy", &[], "n\n").ok();
    assert!(env.status("web1").is_some() && env.status("web2").is_some());
    snap!(env, "destroy_answered_no", no.render());
    // So does the end of the input.
    env.run_with_stdin("destroy", &["--include", "web2"], "")
        .ok();
    assert!(env.status("web2").is_some());

    let yes = env.run("destroy", &["--include", "web2", "--confirm"]).ok();
    let info = env.run("info", &["--no-eval"]).ok();
    assert_eq!(env.status("web1").as_deref(), Some("Up / Up-to-date"));
    assert_eq!(env.status("web2"), None);
    assert_eq!(generation_machines(&profile), ["web1"]);
    assert_eq!(generations(&profile), before + 1);
    // Nothing on the machine changed.
    let curl = env.on("web2", &["readlink", "/nix/var/nix/profiles/system"]);
    assert!(!curl.is_empty());
    snap!(env, "destroy_confirmed", yes.render());
    snap!(env, "info_after_destroy", info.render());

    // A deployment with machines needs --force; that removes the profile.
    let refused = env.run("delete", &[]).failed_with(1);
    snap!(env, "delete_without_force", refused.render());
    env.run("delete", &["--force"]).ok();
    assert_eq!(generations(&profile), 0);
    assert!(!profile.exists());
}

#[test]
fn rename_moves_the_machine_state_and_redeploys() {
    let Some(env) = OpsEnv::new(&["web1"]) else {
        return;
    };
    env.create(NETWORK.replace("web2 = { ... }: { };\n", "").as_str());
    env.deploy();
    let before = env.exported("web1");
    for attr in ["toplevel", "keys", "publicHostKey", "state", "vmId"] {
        assert!(!before[attr].is_null(), "{attr} recorded: {before}");
    }

    let run = env.run("rename", &["web1", "web3"]).ok();
    snap!(env, "rename", run.render());
    let after = env.exported("web3");
    for attr in [
        "toplevel",
        "keys",
        "publicHostKey",
        "vmId",
        "none.sshPrivateKey",
    ] {
        assert_eq!(after[attr], before[attr], "{attr} moved");
    }
    assert!(env.exported("web1").is_null());

    // The network file follows the rename; the machine is the same host.
    env.write(
        "network.nix",
        &NETWORK
            .replace("web2 = { ... }: { };\n", "")
            .replace("web1 =", "web3 ="),
    );
    env.write(
        "hosts.nix",
        &format!(
            "{{ web3 = {{ deployment.targetHost = \"{}\"; }}; }}\n",
            env.host("web1").ip()
        ),
    );
    env.on("web1", &["rm", "/run/keys/k"]);
    let deploy = env.run("deploy", &["--always-activate"]).ok();
    assert!(
        !deploy.stderr.contains("waiting for SSH"),
        "the renamed machine counts as known:\n{}",
        deploy.render()
    );
    assert!(deploy
        .stderr
        .contains("web3> activation finished successfully"));
    assert_eq!(env.on("web1", &["cat", "/run/keys/k"]), "key-of-web1");
    assert_eq!(env.status("web3").as_deref(), Some("Up / Up-to-date"));
}

#[test]
fn none_machines_refuse_what_their_backend_cannot_do() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.create(NETWORK);
    env.run("deploy", &["--create-only"]).ok();
    let before = env.run("export", &[]).ok().stdout;
    let cases: [(&str, &[&str]); 7] = [
        ("stop", &[]),
        ("start", &["--include", "web1"]),
        ("backup", &[]),
        ("restore", &["--exclude", "web1"]),
        ("show-console-output", &["web1"]),
        ("show-console-output", &["nope"]),
        ("reboot", &["--hard"]),
    ];
    for (i, (cmd, args)) in cases.iter().enumerate() {
        let run = env.run(cmd, args).failed_with(1);
        snap!(env, format!("refuse_{i}_{cmd}"), run.render());
    }
    let rescue = env.run("reboot", &["--rescue"]).ok();
    snap!(env, "reboot_rescue", rescue.stable().render());
    assert_eq!(
        env.run("export", &[]).ok().stdout,
        before,
        "a refusal changed the state"
    );
}
