//! `deployment.keys` on deploy: the key lands in /run/keys with its owner,
//! group and mode, and its text never reaches a Nix store or the output.

use nixops_testkit::env::{NetEnv, DEPLOYMENT};

use crate::NIXOPS;

/// Files under `/nix/store` (here, or on `host`) containing `needle`, as
/// `grep -rlF` lists them (paths vanishing during the walk are ignored).
fn grep_store(env: &NetEnv, host: Option<&str>, needle: &str) -> Vec<String> {
    let argv = [
        "sh",
        "-c",
        "grep -rlF -s -e \"$1\" /nix/store || true",
        "sh",
        needle,
    ];
    let stdout = match host {
        None => {
            std::process::Command::new(argv[0])
                .args(&argv[1..])
                .output()
                .expect("grep runs")
                .stdout
        }
        Some(h) => env.host(h).exec(&argv).expect("grep runs on host").stdout,
    };
    String::from_utf8_lossy(&stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn keys_land_with_owner_group_and_mode_and_stay_out_of_stores() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    let secret = format!("s3cret-{}", env.nonce());
    let network = format!(
        r#"{{
  web1 = {{
    deployment.keys.app = {{
      text = "{secret}";
      user = "nobody";
      group = "users";
      permissions = "0640";
    }};
    deployment.keys.plain.text = "{secret}-plain";
  }};
  web2 = {{ }};
}}
"#
    );
    env.create_network(&network);
    let (run, events) = env.deploy(&["--debug"]);
    let run = run.ok();

    assert_eq!(
        env.on("web1", &["stat", "-c", "%U %G %a", "/run/keys/app"]),
        "nobody users 640"
    );
    assert_eq!(env.on("web1", &["cat", "/run/keys/app"]), secret);
    assert_eq!(
        env.on("web1", &["stat", "-c", "%U %G %a", "/run/keys/plain"]),
        "root root 600"
    );
    assert_eq!(
        env.on("web1", &["cat", "/run/keys/plain"]),
        format!("{secret}-plain")
    );
    assert!(!env.exists_on("web2", "/run/keys/app"));

    assert!(
        !run.all().contains(&secret),
        "the secret is in the output of `{DEPLOYMENT}` deploy --debug:\n{}",
        run.render()
    );
    assert!(
        !events.0.iter().any(|e| format!("{e:?}").contains(&secret)),
        "the secret is in the events"
    );
    assert_eq!(grep_store(&env, None, &secret), Vec::<String>::new());
    for h in ["web1", "web2"] {
        assert_eq!(
            grep_store(&env, Some(h), &secret),
            Vec::<String>::new(),
            "on {h}"
        );
    }
    // The grep really searches the host's store: it finds the system there.
    let system = env.system_of("web1").expect("web1 deployed");
    let found = grep_store(&env, Some("web1"), "nixos-system-web1");
    assert!(
        found.iter().any(|f| f.starts_with(&system)),
        "grep found nothing on web1: {found:?}"
    );
}

/// NixOps uploads a key whose owner does not exist yet as root's, and the
/// activation (which creates the user) hands it over: a key may belong to a
/// user the same deploy creates.
#[test]
fn a_key_may_belong_to_a_user_the_same_deploy_creates() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1"]) else {
        return;
    };
    env.create_network(
        r#"{
  web1 = {
    users.users.appuser = { isNormalUser = true; };
    users.groups.appgroup = { };
    deployment.keys.app = {
      text = "app key";
      user = "appuser";
      group = "appgroup";
      permissions = "0640";
    };
  };
}
"#,
    );
    env.deploy(&[]).0.ok();
    assert_eq!(
        env.on("web1", &["stat", "-c", "%U %G %a", "/run/keys/app"]),
        "appuser appgroup 640"
    );
    assert_eq!(env.on("web1", &["cat", "/run/keys/app"]), "app key");
}

/// A redeploy updates changed keys and removes the files of keys no longer
/// declared.
#[test]
fn a_redeploy_updates_and_removes_keys() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1"]) else {
        return;
    };
    env.create_network(
        "{ web1 = { deployment.keys.kept.text = \"v1\"; deployment.keys.dropped.text = \"gone soon\"; }; }\n",
    );
    env.deploy(&[]).0.ok();
    assert_eq!(env.on("web1", &["cat", "/run/keys/kept"]), "v1");
    assert_eq!(env.on("web1", &["cat", "/run/keys/dropped"]), "gone soon");

    env.write(
        "network.nix",
        "{ web1 = { deployment.keys.kept.text = \"v2\"; }; }\n",
    );
    env.deploy(&[]).0.ok();
    assert_eq!(env.on("web1", &["cat", "/run/keys/kept"]), "v2");
    assert!(
        !env.exists_on("web1", "/run/keys/dropped"),
        "the key no longer declared is still on the machine"
    );
}
