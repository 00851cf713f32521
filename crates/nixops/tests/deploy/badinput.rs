//! Network files that cannot be deployed fail before any host is contacted,
//! and hostile-looking argument values and key names are plain data.

use nixops_testkit::env::{Events, NetEnv, Run, DEPLOYMENT};

use crate::common::web;
use crate::NIXOPS;

const HOSTS: [&str; 2] = ["web1", "web2"];

const GOOD: &str =
    "{\n  web1 = { services.toyweb = { enable = true; message = \"one\"; }; };\n  web2 = { };\n}\n";

/// What the hosts show, to compare before and after a failed deploy.
fn host_view(env: &NetEnv) -> Vec<String> {
    HOSTS
        .iter()
        .map(|h| {
            env.on(
                h,
                &[
                    "sh",
                    "-c",
                    "readlink -f /nix/var/nix/profiles/system; stat -c %.9Y /run/current-system; ls /nix/store",
                ],
            )
        })
        .collect()
}

/// Deploy the good network, then replace it by `bad` (or delete it for
/// `None`) and deploy again: that deploy must fail, contact no host, change
/// no host, and leave the deployment's state as it was.
fn deploy_broken(bad: Option<&str>) -> Option<(NetEnv, Run)> {
    let env = NetEnv::new(NIXOPS, &HOSTS)?;
    env.create_network(GOOD);
    env.deploy(&[]).0.ok();
    let hosts_before = host_view(&env);
    let state_before = env.export();
    match bad {
        Some(text) => {
            env.write("network.nix", text);
        }
        None => std::fs::remove_file(env.path("network.nix")).expect("rm network.nix"),
    }
    let (run, events) = env.deploy(&[]);
    let run = run.failed();
    assert_no_contact(&events, &run);
    assert_eq!(host_view(&env), hosts_before, "a host was changed");
    assert_eq!(env.export(), state_before, "the state changed");
    for (h, status) in env.statuses() {
        assert_eq!(status, "Up / Up-to-date", "{h}");
    }
    Some((env, run))
}

#[track_caller]
fn assert_no_contact(events: &Events, run: &Run) {
    assert_eq!(
        events.machines(),
        Vec::<String>::new(),
        "machines were worked on: {:?}\n{}",
        events.0,
        run.render()
    );
    assert!(
        !events
            .0
            .iter()
            .any(|e| e.phase == "connect" || e.phase == "copy" || e.phase == "activate"),
        "{:?}",
        events.0
    );
}

#[test]
fn a_syntax_error_is_reported_with_file_and_line() {
    let bad = "{\n  web1 = { services.toyweb.enable = true; };\n  web2 = { networking.hostName = \"x\" };\n}\n";
    let Some((_env, run)) = deploy_broken(Some(bad)) else {
        return;
    };
    assert!(run.stderr.contains("syntax error"), "{}", run.render());
    assert!(
        run.stderr.contains("network.nix:3:"),
        "no file and line in:\n{}",
        run.render()
    );
}

#[test]
fn a_missing_network_file_is_reported() {
    let Some((_env, run)) = deploy_broken(None) else {
        return;
    };
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("network.nix")),
        "the missing file is not named:\n{}",
        run.render()
    );
}

#[test]
fn an_unknown_option_is_reported() {
    let bad = "{\n  web1 = { deployment.foo = 1; };\n  web2 = { };\n}\n";
    let Some((_env, run)) = deploy_broken(Some(bad)) else {
        return;
    };
    assert!(
        run.stderr
            .contains("The option `deployment.foo' does not exist"),
        "{}",
        run.render()
    );
}

#[test]
fn a_machine_name_with_a_space_is_refused() {
    let bad = "{\n  web1 = { };\n  web2 = { };\n  \"bad name\" = { };\n}\n";
    let Some((_env, run)) = deploy_broken(Some(bad)) else {
        return;
    };
    assert!(
        run.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains("‘bad name’")),
        "{}",
        run.render()
    );
}

#[test]
fn shell_metacharacters_in_arguments_and_key_names_are_data() {
    let Some(env) = NetEnv::new(NIXOPS, &HOSTS) else {
        return;
    };
    let marker_arg = format!("/tmp/nixops-pwned-arg-{}", env.nonce());
    // A key name is a file name: no slash, so the command names a relative
    // file, created in whatever directory ran it.
    let marker_key_name = format!("nixops-pwned-key-{}", env.nonce());
    let key_name = format!("a b;$(touch {marker_key_name}) `touch {marker_key_name}`");
    let network = format!(
        "{{ msg ? \"unset\" }}: {{\n  web1 = {{ services.toyweb = {{ enable = true; message = msg; }};\n    deployment.keys.\"{key_name}\".text = \"key text\";\n  }};\n  web2 = {};\n}}\n",
        web("two")
    );
    env.create_network(&network);
    let value = format!("it's \"quoted\"; $(touch {marker_arg}) `touch {marker_arg}` | & > <");
    env.run(&["set-args", "-d", DEPLOYMENT, "--argstr", "msg", &value])
        .ok();
    let (run, _events) = env.deploy(&[]);
    run.ok();

    assert_eq!(env.http_get("web1").as_deref(), Some(value.as_str()));
    let key_path = format!("/run/keys/{key_name}");
    assert_eq!(env.on("web1", &["cat", &key_path]), "key text");
    let local_key_markers = [
        env.path(&marker_key_name),
        std::path::Path::new("/").join(&marker_key_name),
    ];
    for marker in &local_key_markers {
        assert!(!marker.exists(), "{} was created here", marker.display());
    }
    let host_key_markers = [
        format!("/root/{marker_key_name}"),
        format!("/{marker_key_name}"),
        format!("/run/keys/{marker_key_name}"),
    ];
    for marker in &host_key_markers {
        for h in HOSTS {
            assert!(!env.exists_on(h, marker), "{marker} was created on {h}");
        }
    }
    for marker in [&marker_arg] {
        assert!(
            !std::path::Path::new(marker).exists(),
            "{marker} was created here"
        );
        for h in HOSTS {
            assert!(!env.exists_on(h, marker), "{marker} was created on {h}");
        }
    }
}
