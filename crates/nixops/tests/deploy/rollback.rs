//! Network generations: `network.enableRollback`, `list-generations`, `rollback N`
//! and `delete-generation N` with real Nix profiles.

use nixops_testkit::env::NetEnv;

use crate::NIXOPS;

const NETWORK: &str = r#"{ msg ? "first" }: {
  network.enableRollback = true;
  web1 = { services.toyweb = { enable = true; message = "web1 ${msg}"; }; };
  web2 = { services.toyweb = { enable = true; message = "web2 ${msg}"; }; };
}
"#;

#[test]
fn rollback_puts_the_earlier_configuration_back_on_every_host() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    env.create_network(NETWORK);
    let d = env.deployment();
    env.deploy(&[]).0.ok();
    let first: Vec<String> = ["web1", "web2"]
        .iter()
        .map(|h| env.system_of(h).expect("deployed"))
        .collect();

    env.run(&["set-args", "-d", &d, "--argstr", "msg", "second"])
        .ok();
    env.deploy(&[]).0.ok();
    assert_eq!(env.http_get("web1").as_deref(), Some("web1 second"));
    assert_ne!(env.system_of("web1").as_ref(), Some(&first[0]));

    let gens = env.run(&["list-generations", "-d", &d]).ok();
    let lines: Vec<&str> = gens.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", gens.render());
    assert!(
        lines[1].trim_end().ends_with("(current)"),
        "{}",
        gens.stdout
    );

    let run = env.run(&["rollback", "1", "-d", &d]).ok();
    assert!(
        run.stderr.contains("activation finished successfully"),
        "{}",
        run.render()
    );
    for (i, host) in ["web1", "web2"].iter().enumerate() {
        assert_eq!(env.system_of(host).as_ref(), Some(&first[i]), "{host}");
        assert_eq!(
            env.on(host, &["readlink", "-f", "/run/current-system"]),
            first[i]
        );
    }
    assert_eq!(env.http_get("web1").as_deref(), Some("web1 first"));
    assert_eq!(env.http_get("web2").as_deref(), Some("web2 first"));
    let gens = env.run(&["list-generations", "-d", &d]).ok();
    assert!(
        gens.stdout
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("(current)")),
        "{}",
        gens.stdout
    );

    // The current generation can't be deleted; another one can.
    let run = env.run(&["delete-generation", "1", "-d", &d]);
    assert_ne!(run.code, 0, "{}", run.render());
    env.run(&["delete-generation", "2", "-d", &d]).ok();
    let gens = env.run(&["list-generations", "-d", &d]).ok();
    assert_eq!(gens.stdout.lines().count(), 1, "{}", gens.stdout);
    let run = env.run(&["rollback", "2", "-d", &d]);
    assert_ne!(run.code, 0, "{}", run.render());
}

#[test]
fn rollback_needs_enable_rollback() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1"]) else {
        return;
    };
    env.create_network(r#"{ web1 = { services.toyweb.enable = true; }; }"#);
    let d = env.deployment();
    env.deploy(&[]).0.ok();
    for cmd in [
        vec!["rollback", "1", "-d", &d],
        vec!["list-generations", "-d", &d],
    ] {
        let run = env.run(&cmd);
        assert_eq!(run.code, 1, "{}", run.render());
        assert_eq!(
            run.stderr.trim(),
            "error: rollback is not enabled for this network; please set ‘network.enableRollback’ to ‘true’ and redeploy"
        );
    }
}
