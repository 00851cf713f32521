//! `send-keys` after a deploy: restoring keys, a failing `keyCommand`, a key
//! whose user does not exist.

use crate::harness::OpsEnv;
use nixops_testkit::snap;

/// web1 gets a text key owned by a user the network creates; web2 a key made
/// by a local command reading `web2-key` in the test directory.
pub fn network(env: &OpsEnv) -> String {
    format!(
        r#"{{
  network.enableRollback = true;
  defaults = {{ ... }}: {{
    users.users.app = {{ isNormalUser = true; }};
    users.groups.appgrp = {{ }};
  }};
  web1 = {{ ... }}: {{
    deployment.keys.secret = {{
      text = "s3cret-web1";
      user = "app";
      group = "appgrp";
      permissions = "0640";
    }};
  }};
  web2 = {{ ... }}: {{
    deployment.keys.other.keyCommand = [ "cat" "{}" ];
  }};
}}
"#,
        env.path("web2-key").display()
    )
}

#[test]
fn send_keys_restores_deleted_keys() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.write("web2-key", "from-a-command");
    env.create(&network(&env));
    env.deploy();
    env.on("web1", &["rm", "/run/keys/secret"]);
    env.on("web2", &["rm", "/run/keys/other"]);

    let run = env.run("send-keys", &[]).ok();

    assert_eq!(env.on("web1", &["cat", "/run/keys/secret"]), "s3cret-web1");
    assert_eq!(env.stat("web1", "/run/keys/secret"), "app appgrp 640");
    assert_eq!(
        env.on("web2", &["cat", "/run/keys/other"]),
        "from-a-command"
    );
    assert_eq!(env.stat("web2", "/run/keys/other"), "root root 600");
    assert!(!run.stderr.contains("s3cret"), "{}", run.render());
    snap!(env, "send_keys", run.stable().render());
}

#[test]
fn a_failing_key_command_fails_only_its_machine() {
    let Some(env) = OpsEnv::new(&["web1", "web2"]) else {
        return;
    };
    env.write("web2-key", "from-a-command");
    env.create(&network(&env));
    env.deploy();
    env.on("web1", &["rm", "/run/keys/secret"]);
    env.on("web2", &["rm", "/run/keys/other"]);
    // The key command now fails (`cat` of a missing file).
    std::fs::remove_file(env.path("web2-key")).expect("invariant: the key file exists");

    let run = env.run("send-keys", &[]).failed_with(1);

    assert!(
        run.stderr
            .contains("the command generating key ‘other’ of machine ‘web2’ failed"),
        "{}",
        run.render()
    );
    assert_eq!(env.on("web1", &["cat", "/run/keys/secret"]), "s3cret-web1");
    let gone = env
        .host("web2")
        .exec_unchecked(&["test", "-e", "/run/keys/other"])
        .expect("test runs on the host");
    assert!(
        !gone.status.success(),
        "web2 got a key from a failed command"
    );
    snap!(env, "send_keys_failing_command", run.stable().render());
}

#[test]
fn a_key_for_a_missing_user_is_a_clear_error() {
    let Some(env) = OpsEnv::new(&["web1"]) else {
        return;
    };
    env.create(
        r#"{
  web1 = { ... }: {
    deployment.keys.secret = { text = "x"; user = "ghost"; };
  };
}
"#,
    );
    // Activation cannot hand the key to a user that does not exist either; what
    // matters here is that the keys are recorded.
    let _ = env.run("deploy", &[]);
    env.host("web1")
        .exec_unchecked(&["rm", "-f", "/run/keys/secret"])
        .expect("rm runs on the host");

    let run = env.run("send-keys", &[]).failed_with(1);

    assert!(
        run.stderr.contains(
            "cannot upload key ‘secret’ to machine ‘web1’: user ‘ghost’ does not exist on the machine"
        ),
        "{}",
        run.render()
    );
    snap!(env, "send_keys_missing_user", run.render());
}
