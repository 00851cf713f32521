//! Evaluation of network files with real `nix-instantiate` / `nix-build`
//! against the mini NixOS fixture standing in for `<nixpkgs>`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use nixops_core::eval::{
    physical, EvalError, EvalSettings, Evaluator, MachineName, NetworkExpr, NixFlags, OptionFormat,
    PhysicalMachine,
};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn mini_nixpkgs() -> PathBuf {
    let p = workspace().join("tests/fixtures/mini-nixpkgs");
    assert!(
        p.join("nixos/lib/eval-config.nix").exists(),
        "the mini NixOS fixture is missing at {}",
        p.display()
    );
    p
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/networks")
        .join(name)
}

fn settings(exprs: Vec<NetworkExpr>) -> EvalSettings {
    EvalSettings {
        network_exprs: exprs,
        args: BTreeMap::new(),
        uuid: "3f1c2c1e-0000-4000-8000-000000000001".into(),
        deployment_name: "evaltest".into(),
        nix_path: vec![format!("nixpkgs={}", mini_nixpkgs().display())],
        nix_flags: NixFlags {
            options: vec![
                ("substituters".into(), String::new()),
                ("build-users-group".into(), String::new()),
            ],
            ..NixFlags::default()
        },
        read_only: false,
    }
}

fn name(n: &str) -> MachineName {
    MachineName::new(n).expect("invariant: valid test machine name")
}

/// The main network copied to a temp dir with a fresh secret in it.
fn main_network(dir: &Path) -> (PathBuf, String) {
    let secret = format!("s3cr3t-{}-{}", std::process::id(), rand_suffix());
    let text = std::fs::read_to_string(fixture("main.nix"))
        .expect("read main.nix")
        .replace("@SECRET@", &secret);
    std::fs::write(dir.join("main.nix"), text).expect("write main.nix");
    std::fs::copy(fixture("extra.nix"), dir.join("extra.nix")).expect("copy extra.nix");
    (dir.join("main.nix"), secret)
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

fn nix_error(err: &EvalError) -> &str {
    err.nix_message()
        .unwrap_or_else(|| panic!("expected a Nix error, got {err:?}"))
}

#[test]
fn info_of_three_machines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (main, secret) = main_network(dir.path());
    let mut s = settings(vec![NetworkExpr::File(main.clone())]);
    s.args.insert("dbPort".into(), "6543".into());
    s.args
        .insert("motd".into(), r#""hello; $(rm -rf /) ' \" \${x}""#.into());
    let ev = Evaluator::new(s).expect("evaluator");
    let info = ev.info().expect("info");

    assert_eq!(
        info.network.description.as_deref(),
        Some("Eval test network")
    );
    assert!(info.network.enable_rollback);
    let names: Vec<&str> = info.machines.keys().map(MachineName::as_str).collect();
    assert_eq!(names, ["db", "web1", "web2"]);

    let web1 = &info.machines[&name("web1")];
    assert_eq!(web1.target_env, "none");
    assert_eq!(web1.target_host, "198.18.0.11");
    assert_eq!(web1.target_port, 22);
    assert_eq!(web1.target_user, "root");
    assert!(web1.always_activate && web1.provision_ssh_key && !web1.has_fast_connection);
    let key = &web1.keys["secret"];
    assert_eq!(key.text.as_ref().map(|t| t.expose()), Some(secret.as_str()));
    assert!(
        !format!("{key:?}").contains(&secret),
        "Debug must redact the secret"
    );
    assert_eq!(key.path, "/run/keys/secret");
    assert_eq!(
        (key.user.as_str(), key.permissions.as_str()),
        ("root", "0600")
    );
    let file = &web1.keys["file"];
    assert_eq!(
        file.key_file.as_deref(),
        Some(dir.path().join("extra.nix").to_str().expect("utf-8 path")),
        "keyFile stays a local path, not a store path"
    );
    let cmd = &web1.keys["cmd"];
    assert_eq!(
        cmd.key_command,
        Some(vec!["echo".to_owned(), "hi".to_owned()])
    );
    assert_eq!(
        (cmd.user.as_str(), cmd.permissions.as_str()),
        ("nobody", "0640")
    );
    let odd = "odd key;$(touch /tmp/pwned)'\"";
    assert_eq!(web1.keys[odd].path, format!("/run/keys/{odd}"));

    let web2 = &info.machines[&name("web2")];
    assert_eq!(
        web2.target_host, "web2",
        "targetHost defaults to the machine name"
    );
    assert_eq!(web2.target_port, 2222);
    assert_eq!(web2.ssh_options, ["-o", "Compression=no"]);

    let db = &info.machines[&name("db")];
    assert!(!db.always_activate && db.has_fast_connection);
    assert_eq!(db.owners, ["ops@example.org"]);
    assert_eq!(db.public_ipv4.as_deref(), Some("198.18.0.13"));
    assert!(db.nixos_release.is_some());
    assert_eq!(db.virtualbox, serde_json::json!({}));

    assert_eq!(
        info.resources["sshKeyPairs"][&name("kp")],
        serde_json::json!({})
    );
    assert_eq!(
        info.resources["commandOutput"][&name("greeting")]["script"],
        "echo greeting 3f1c2c1e-0000-4000-8000-000000000001"
    );

    // The arguments reached the function-of-args network file.
    let motd = ev
        .show_option(
            &name("db"),
            "environment.etc.motd.text",
            OptionFormat::Json,
            None,
        )
        .expect("show-option");
    assert_eq!(
        serde_json::from_str::<String>(&motd).expect("json string"),
        r#"hello; $(rm -rf /) ' " ${x}"#
    );
    let port = ev
        .show_option(
            &name("db"),
            "environment.etc.dbport.text",
            OptionFormat::Nix,
            None,
        )
        .expect("show-option");
    assert_eq!(port.trim(), r#""6543""#);
    assert!(!Path::new("/tmp/pwned").exists());
}

#[test]
fn show_option_formats_and_defaults() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (main, _) = main_network(dir.path());
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(main)])).expect("evaluator");
    let host = ev
        .show_option(
            &name("web1"),
            "networking.hostName",
            OptionFormat::Nix,
            None,
        )
        .expect("show-option");
    assert_eq!(host.trim(), r#""web1""#);
    let etc = ev
        .show_option(
            &name("web2"),
            "environment.etc.nixops-test.text",
            OptionFormat::Json,
            None,
        )
        .expect("show-option");
    assert_eq!(etc, r#""machine web2""#, "defaults apply to every machine");
    let xml = ev
        .show_option(
            &name("web2"),
            "deployment.targetPort",
            OptionFormat::Xml,
            None,
        )
        .expect("show-option");
    assert!(xml.contains(r#"<int value="2222" />"#), "{xml}");
    let with_phys = ev
        .show_option(
            &name("web2"),
            "networking.publicIPv4",
            OptionFormat::Json,
            Some("{ web2 = { networking.publicIPv4 = \"198.18.0.12\"; }; }\n"),
        )
        .expect("show-option with physical");
    assert_eq!(with_phys, r#""198.18.0.12""#);

    // The NixOS side of keys: a unit per key, the waiting unit, the activation snippet.
    let units = ev
        .show_option(&name("web1"), "systemd.services", OptionFormat::Json, None)
        .expect("units");
    let units: serde_json::Value = serde_json::from_str(&units).expect("json");
    assert_eq!(units["nixops-keys"]["enable"], true);
    assert_eq!(units["secret-key"]["serviceConfig"]["Restart"], "always");
    assert!(units.get("cmd-key").is_some() && units.get("file-key").is_some());
    let web2_units = ev
        .show_option(
            &name("web2"),
            "systemd.services.nixops-keys.enable",
            OptionFormat::Nix,
            None,
        )
        .expect("units");
    assert_eq!(web2_units.trim(), "false", "no keys, no waiting for them");
    let act = ev
        .show_option(
            &name("web1"),
            "system.activationScripts.nixops-keys.text",
            OptionFormat::Json,
            None,
        )
        .expect("activation");
    let act: String = serde_json::from_str(&act).expect("json string");
    assert!(act.contains("chown root:keys /run/keys"), "{act}");
    assert!(
        act.contains("if [ -f /run/keys/cmd ]; then chown nobody:root /run/keys/cmd; fi"),
        "{act}"
    );
}

#[test]
fn arguments_of_network_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (main, _) = main_network(dir.path());
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(main)])).expect("evaluator");
    let args = ev.arguments().expect("arguments");
    let extra = dir.path().join("extra.nix").display().to_string();
    assert_eq!(args.keys().collect::<Vec<_>>(), ["dbPort", "motd"]);
    assert_eq!(args["dbPort"], [extra]);
}

#[test]
fn backend_options_are_declared() {
    let ev =
        Evaluator::new(settings(vec![NetworkExpr::File(fixture("vbox.nix"))])).expect("evaluator");
    let info = ev.info().expect("info");
    let vm = &info.machines[&name("vm")];
    assert_eq!(vm.target_env, "virtualbox");
    assert_eq!(vm.virtualbox["memorySize"], 1024);
    assert_eq!(vm.virtualbox["headless"], true);
    let other = &info.machines[&name("other")];
    assert_eq!(
        other.libvirtd,
        serde_json::json!({}),
        "only the machine's own backend is exported"
    );
}

fn toplevel(ev: &Evaluator, m: &str, physical_nix: &str) -> String {
    let out = ev
        .show_option(
            &name(m),
            "system.build.toplevel.outPath",
            OptionFormat::Json,
            Some(physical_nix),
        )
        .expect("toplevel path");
    serde_json::from_str(&out).expect("json string")
}

#[test]
fn build_two_of_three_keeps_secrets_out_of_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (main, secret) = main_network(dir.path());
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(main)])).expect("evaluator");
    let phys = physical::render(&[
        PhysicalMachine {
            name: "web1".into(),
            public_ipv4: Some("198.18.0.11".into()),
            authorized_key: Some("ssh-ed25519 AAAAtest nixops".into()),
            state_version: Some("24.05".into()),
            ..Default::default()
        },
        PhysicalMachine {
            name: "db".into(),
            host_key: Some("ssh-ed25519 AAAAhost db".into()),
            ..Default::default()
        },
    ])
    .expect("physical");
    let mut lines = Vec::new();
    let configs = ev
        .build(&[name("web1"), name("db")], &phys, false, false, &mut |l| {
            lines.push(l.to_owned())
        })
        .expect("build")
        .expect("not a dry run");
    assert!(configs.starts_with("/nix/store"), "{}", configs.display());
    let mut entries: Vec<String> = std::fs::read_dir(&configs)
        .expect("configs dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    assert_eq!(entries, ["db", "web1"]);
    for m in ["db", "web1"] {
        let target = std::fs::read_link(configs.join(m)).expect("symlink");
        assert_eq!(target, PathBuf::from(toplevel(&ev, m, &phys)));
    }

    // The dry run builds nothing and returns no path.
    let dry = ev
        .build(&[name("web2")], &phys, true, false, &mut |_| {})
        .expect("dry run");
    assert_eq!(dry, None);

    // No derivation or output in the store holds the key text.
    let grep = Command::new("grep")
        .args(["-rlF", "--", &secret, "/nix/store"])
        .output()
        .expect("run grep");
    assert_eq!(
        String::from_utf8_lossy(&grep.stdout),
        "",
        "the secret leaked into the store"
    );
    // Exit 1: nothing found. Exit 2 is accepted only for paths that vanished while
    // grep ran (other tests build and collect at the same time).
    let stderr = String::from_utf8_lossy(&grep.stderr);
    let vanished_only = stderr
        .lines()
        .all(|l| l.ends_with("No such file or directory"));
    assert!(
        grep.status.code() == Some(1) || (grep.status.code() == Some(2) && vanished_only),
        "grep failed: {stderr}"
    );
}

#[test]
fn syntax_error_reaches_the_user_with_file_and_line() {
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(fixture(
        "syntax-error.nix",
    ))]))
    .expect("evaluator");
    let err = ev.info().expect_err("syntax error");
    assert_eq!(
        err.to_string(),
        "evaluation of the deployment specification failed"
    );
    let msg = nix_error(&err);
    assert!(msg.contains("syntax error"), "{msg}");
    assert!(msg.contains("syntax-error.nix:2:"), "{msg}");
}

#[test]
fn missing_network_file_is_named_without_calling_nix() {
    let mut s = settings(vec![NetworkExpr::File("/nonexistent/network.nix".into())]);
    // Were Nix called, this flag would make it fail differently.
    s.nix_flags
        .options
        .push(("no-such-option".into(), "x".into()));
    let ev = Evaluator::new(s).expect("evaluator");
    let err = ev.info().expect_err("missing file");
    assert!(
        matches!(err, EvalError::MissingNetworkFile { .. }),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "network file ‘/nonexistent/network.nix’ does not exist"
    );
    let err = ev
        .build(&[name("x")], "{}\n", false, false, &mut |_| {})
        .expect_err("missing file");
    assert!(
        matches!(err, EvalError::MissingNetworkFile { .. }),
        "{err:?}"
    );
}

#[test]
fn unknown_deployment_option_is_named() {
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(fixture(
        "unknown-option.nix",
    ))]))
    .expect("evaluator");
    let err = ev.info().expect_err("unknown option");
    let msg = nix_error(&err);
    assert!(msg.contains("deployment.foo"), "{msg}");
    // show-option does not check, as in NixOps.
    let port = ev
        .show_option(
            &name("web"),
            "deployment.targetPort",
            OptionFormat::Nix,
            None,
        )
        .expect("show-option ignores unknown options");
    assert_eq!(port.trim(), "22");
}

#[test]
fn invalid_machine_name() {
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(fixture("bad-name.nix"))]))
        .expect("evaluator");
    let err = ev.info().expect_err("bad name");
    assert_eq!(err.to_string(), "invalid resource name ‘bad name’");
}

#[test]
fn key_without_source_is_named() {
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(fixture("bad-key.nix"))]))
        .expect("evaluator");
    let err = ev.info().expect_err("bad key");
    let msg = nix_error(&err);
    assert!(
        msg.contains("Deployment key 'empty' must have either a 'text', 'keyCommand' or a 'keyFile' specified."),
        "{msg}"
    );
}

/// A network of `n` small machines, for the timings below.
fn generated_network(dir: &Path, n: usize) -> PathBuf {
    // A fresh nonce makes every toplevel new, so the build really builds.
    let nonce = rand_suffix();
    let mut text = String::from("{\n  network.description = \"bench\";\n");
    for i in 0..n {
        text.push_str(&format!(
            "  m{i} = {{ environment.etc.id.text = \"{nonce}-{i}\"; deployment.targetHost = \"198.18.1.{i}\"; }};\n"
        ));
    }
    text.push_str("}\n");
    let path = dir.join(format!("net{n}.nix"));
    std::fs::write(&path, text).expect("write network");
    path
}

/// Times info() and build() for 1, 10 and 30 machines (run with --nocapture
/// to see them). Each run uses a fresh network so nothing is cached.
#[test]
fn timings_for_1_10_30_machines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut report = String::new();
    for n in [1usize, 10, 30] {
        let net = generated_network(dir.path(), n);
        let ev = Evaluator::new(settings(vec![NetworkExpr::File(net)])).expect("evaluator");
        let t = Instant::now();
        let info = ev.info().expect("info");
        let t_info = t.elapsed();
        assert_eq!(info.machines.len(), n);
        let names: Vec<MachineName> = info.machines.keys().cloned().collect();
        let t = Instant::now();
        let configs = ev
            .build(&names, "{}\n", false, false, &mut |_| {})
            .expect("build")
            .expect("path");
        let t_build = t.elapsed();
        assert_eq!(std::fs::read_dir(configs).expect("configs").count(), n);
        report.push_str(&format!(
            "n={n}: info {:.0} ms, build {:.0} ms\n",
            t_info.as_secs_f64() * 1e3,
            t_build.as_secs_f64() * 1e3
        ));
    }
    std::io::Write::write_all(&mut std::io::stderr(), report.as_bytes()).expect("stderr");
}

#[test]
fn build_failure_streams_nix_output_and_keeps_it() {
    let ev = Evaluator::new(settings(vec![NetworkExpr::File(fixture("build-fail.nix"))]))
        .expect("evaluator");
    let mut lines = Vec::new();
    let err = ev
        .build(&[name("broken")], "{}\n", false, false, &mut |l| {
            lines.push(l.to_owned())
        })
        .expect_err("the build fails");
    assert_eq!(
        err.to_string(),
        "unable to build all machine configurations"
    );
    assert!(
        nix_error(&err).contains("build-exploded-on-purpose"),
        "{err:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("build-exploded-on-purpose")),
        "{lines:?}"
    );
}

#[test]
fn unknown_machine_in_build_is_named() {
    let ev =
        Evaluator::new(settings(vec![NetworkExpr::File(fixture("vbox.nix"))])).expect("evaluator");
    let err = ev
        .build(&[name("nosuch")], "{}\n", true, false, &mut |_| {})
        .expect_err("unknown machine");
    assert!(
        nix_error(&err).contains("unknown machine ‘nosuch’"),
        "{err:?}"
    );
}
