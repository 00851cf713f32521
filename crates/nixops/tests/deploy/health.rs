//! `deployment.healthChecks`: checks run after activation; a failing one
//! switches the machine back to the configuration it had before.

use nixops_testkit::env::NetEnv;

use crate::NIXOPS;

/// web1 serves `msg`; its health check wants the page to say `want`.
fn network(msg: &str, want: &str) -> String {
    format!(
        r#"{{
  web1 = {{
    services.toyweb = {{ enable = true; message = "{msg}"; }};
    deployment.healthChecks = [ {{
      name = "page says {want}";
      command = "curl -sf http://127.0.0.1/ | grep -q '{want}'";
      timeout = 2;
    }} ];
  }};
  web2 = {{ services.toyweb = {{ enable = true; message = "web2 {msg}"; }}; }};
}}
"#
    )
}

#[test]
fn a_failing_health_check_switches_the_machine_back() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2"]) else {
        return;
    };
    env.create_network(&network("one", "one"));
    let (run, events) = env.deploy(&[]);
    run.ok();
    assert!(
        events.find("web1", "check", "succeeded").is_some(),
        "{:?}",
        events.0
    );
    let good = env.system_of("web1").expect("deployed");

    // The new page no longer passes the check.
    env.write("network.nix", &network("two", "one"));
    let (run, events) = env.deploy(&[]);
    assert_eq!(run.code, 1, "{}", run.render());
    let failure = events.failure("web1").expect("web1 failed");
    assert!(
        failure.contains("health check ‘page says one’ failed")
            && failure.contains(&format!("switched back to {good}")),
        "{failure}"
    );
    assert_eq!(env.system_of("web1").as_ref(), Some(&good));
    assert_eq!(
        env.on("web1", &["readlink", "-f", "/run/current-system"]),
        good
    );
    assert_eq!(env.http_get("web1").as_deref(), Some("one"));
    // The other machine is not affected.
    assert_eq!(env.http_get("web2").as_deref(), Some("web2 two"));
    let statuses = env.statuses();
    assert_eq!(statuses["web1"], "Up / Outdated", "{statuses:?}");
    assert_eq!(statuses["web2"], "Up / Up-to-date", "{statuses:?}");

    // A check that passes lets the new configuration stay.
    env.write("network.nix", &network("two", "two"));
    env.deploy(&[]).0.ok();
    assert_eq!(env.http_get("web1").as_deref(), Some("two"));
}
