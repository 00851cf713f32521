//! State file tests against real SQLite files: NixOps-format fixtures built with the
//! `sqlite3` CLI, schema text, migrations, refusals, permissions, export/import,
//! concurrent writer processes and the deployment lock across processes.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nixops_core::state::{
    AttrValue, DeploymentLock, LockWait, ResourceState, SetArgs, StateError, StateFile, SCHEMA_DDL,
};

const D1: &str = "0d9c5a1e-60f5-11e9-8a3c-0242ac110002";
const D2: &str = "7f3e2b10-60f6-11e9-8a3c-0242ac110002";

fn sqlite3(file: &Path, sql: &str) -> String {
    let out = Command::new("sqlite3")
        .arg(file)
        .arg(sql)
        .output()
        .expect("the sqlite3 CLI must be installed for these tests");
    assert!(
        out.status.success(),
        "sqlite3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Build a NixOps-format state file with the fixture script.
fn fixture(dir: &Path, version: u32) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/state/make-nixops-state.sh");
    let out = dir.join(format!("v{version}.nixops"));
    let status = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .arg(version.to_string())
        .status()
        .expect("run make-nixops-state.sh");
    assert!(status.success(), "make-nixops-state.sh failed");
    out
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Collapse whitespace so DDL text compares regardless of line layout.
fn normalise(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn nixops_v3_fixture_loads_records() {
    let dir = tmp();
    let path = fixture(dir.path(), 3);
    let sf = StateFile::open(&path).expect("open fixture");
    assert!(sf.migrated().is_empty());
    assert!(!sf.created());
    let all = sf.deployments().expect("load all");
    assert_eq!(
        all.iter().map(|d| d.uuid.as_str()).collect::<Vec<_>>(),
        [D1, D2]
    );

    let d = &all[0];
    assert_eq!(d.name(), Some("test"));
    assert_eq!(d.description(), "Test network");
    assert_eq!(
        d.nix_exprs().expect("json"),
        ["/home/alice/net.nix", "<nixops/templates/virtualbox.nix>"]
    );
    assert_eq!(d.nix_path().expect("json"), ["nixpkgs=/home/alice/nixpkgs"]);
    let args = d.args().expect("json");
    assert_eq!(args["greeting"], "\"h\u{e9}llo\\n\"");
    assert_eq!(args["n"], "42");
    assert!(d.rollback_enabled());
    assert!(d.configs_path().expect("set").ends_with("-nixops-machines"));
    assert_eq!(
        d.resources
            .iter()
            .map(|r| r.name.as_str())
            .collect::<Vec<_>>(),
        ["web", "db", "old"]
    );
    let web = d.resource("web").expect("web");
    assert_eq!((web.id, web.type_.as_str()), (1, "none"));
    assert_eq!(web.state(), ResourceState::Up);
    assert_eq!(web.index(), Some(0));
    assert!(!web.obsolete());
    assert!(web.ssh_pinged());
    assert_eq!(web.target_host(), Some("192.168.56.11"));
    assert_eq!(web.creation_time(), Some(1_555_500_000));
    assert!(web.toplevel().expect("set").contains("nixos-system-web"));
    assert_eq!(web.keys().expect("json")["secret"]["text"], "s3cr\u{ea}t");
    let db = d.resource("db").expect("db");
    assert_eq!(db.state(), ResourceState::Stopped);
    assert_eq!(db.state().name(), "Stopped");
    assert_eq!(db.private_ipv4(), Some("192.168.56.12"));
    assert_eq!(db.public_ipv4(), None);
    assert!(d.resource("old").expect("old").obsolete());

    let d2 = sf.load(D2).expect("load one");
    assert_eq!(d2, all[1]);
    assert_eq!(d2.description(), "Réseau ünïcode ☃");
    assert!(d2.resources.is_empty());
    assert!(!d2.rollback_enabled());
    assert!(matches!(
        sf.load("nope"),
        Err(StateError::NoSuchDeployment { .. })
    ));
}

#[test]
fn export_has_nixops_shape_and_escaping() {
    let dir = tmp();
    let path = fixture(dir.path(), 3);
    let sf = StateFile::open(&path).expect("open fixture");
    let text = sf.export(&[D2.to_string()]).expect("export");
    let expected = format!(
        "{{\n  \"{D2}\": {{\n    \"description\": \"R\\u00e9seau \\u00fcn\\u00efcode \\u2603\", \n    \"name\": \"staging\", \n    \"nixExprs\": \"[\\\"/srv/staging.nix\\\"]\", \n    \"resources\": {{}}\n  }}\n}}"
    );
    assert_eq!(text, expected);

    let all = sf.export(&sf.uuids().expect("uuids")).expect("export all");
    let parsed: serde_json::Value = serde_json::from_str(&all).expect("valid json");
    let web = &parsed[D1]["resources"]["web"];
    assert_eq!(web["type"], "none");
    assert_eq!(web["state"], "3");
    assert!(web["none.sshPrivateKey"]
        .as_str()
        .expect("string")
        .contains('\n'));
    assert_eq!(parsed[D1]["rollbackEnabled"], "1");
    // Every line but the last ends in "," + space only where Python 2 puts one.
    assert!(all.lines().all(|l| !l.ends_with(' ') || l.ends_with(", ")));
    let py3 = sf
        .export_styled(
            &[D1.to_string(), D2.to_string()],
            nixops_core::state::PyStyle::Python3,
        )
        .expect("export py3");
    assert_eq!(py3, all.replace(", \n", ",\n"));
}

#[test]
fn new_file_has_spec_schema_permissions_and_encoding() {
    let dir = tmp();
    let path = dir.path().join("sub/dir/deployments.nixops");
    let sf = StateFile::open(&path).expect("create");
    assert!(sf.created());
    assert!(sf.migrated().is_empty());
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.path().join("sub/dir")), 0o700);
    assert_eq!(mode(&dir.path().join("sub")), 0o700);

    // SQLite keeps each statement's text (with `if not exists` dropped), so the
    // schema dump must be the spec's DDL, byte for byte.
    let schema = sqlite3(&path, ".schema");
    let mut expected: Vec<String> = SCHEMA_DDL
        .split(';')
        .map(str::trim)
        .filter(|s| s.starts_with("create table"))
        .map(|s| s.replace("create table if not exists ", "CREATE TABLE ") + ";")
        .collect();
    expected.insert(4, "CREATE TABLE sqlite_sequence(name,seq);".to_string());
    assert_eq!(
        schema,
        expected.join("\n") + "\n",
        "sqlite3 .schema differs from the spec DDL"
    );
    // The same holds, modulo layout, for a file made by NixOps' DDL.
    let nixops = sqlite3(&fixture(dir.path(), 3), ".schema");
    assert_eq!(normalise(&nixops), normalise(&schema));
    assert_eq!(sqlite3(&path, "select version from SchemaVersion"), "3\n");
    assert_eq!(sqlite3(&path, "pragma journal_mode"), "wal\n");

    let uuid = sf.create_deployment(None).expect("create deployment");
    let exprs = AttrValue::str_list(&["/net/ü.nix".into()]);
    let empty = AttrValue::str_list(&[]);
    sf.set_deployment_attrs(
        &uuid,
        &[
            ("name", Some("net".into())),
            ("nixExprs", exprs.encode_against(&empty)),
            ("nixPath", empty.encode_against(&empty)),
            ("rollbackEnabled", AttrValue::Bool(true).encode()),
        ],
    )
    .expect("set attrs");
    let id = sf.add_resource(&uuid, "m", "none").expect("add resource");
    sf.set_resource_attrs(
        id,
        &[
            (
                "state",
                AttrValue::Int(3).encode_against(&AttrValue::Int(0)),
            ),
            ("index", AttrValue::Int(0).encode()),
            (
                "obsolete",
                AttrValue::Bool(false).encode_against(&AttrValue::Bool(false)),
            ),
            (
                "sshPinged",
                AttrValue::Bool(true).encode_against(&AttrValue::Bool(false)),
            ),
        ],
    )
    .expect("set resource attrs");
    drop(sf);
    assert_eq!(
        sqlite3(
            &path,
            "select name, value from DeploymentAttrs order by name"
        ),
        "name|net\nnixExprs|[\"/net/\\u00fc.nix\"]\nrollbackEnabled|1\n"
    );
    assert_eq!(
        sqlite3(
            &path,
            "select name, value, typeof(value) from ResourceAttrs order by name"
        ),
        "index|0|text\nsshPinged|1|text\nstate|3|text\n"
    );
}

#[test]
fn old_schemas_are_migrated() {
    let dir = tmp();
    for (version, steps) in [(1u32, vec![(1, 2), (2, 3)]), (2, vec![(2, 3)])] {
        let path = fixture(dir.path(), version);
        let sf = StateFile::open(&path).expect("open old file");
        assert_eq!(sf.migrated(), steps.as_slice(), "version {version}");
        let d = sf.load(D1).expect("load");
        assert_eq!(d.resources.len(), 3);
        assert_eq!(d.resource("web").expect("web").state(), ResourceState::Up);
        drop(sf);
        assert_eq!(sqlite3(&path, "select version from SchemaVersion"), "3\n");
        assert_eq!(
            sqlite3(&path, "select name from sqlite_master where type = 'table' order by name"),
            "DeploymentAttrs\nDeployments\nResourceAttrs\nResources\nSchemaVersion\nsqlite_sequence\n"
        );
        let again = StateFile::open(&path).expect("reopen");
        assert!(again.migrated().is_empty());
        // Foreign keys still cascade after the renames.
        again.delete_deployment(D1, true).expect("delete");
        drop(again);
        assert_eq!(sqlite3(&path, "select count(*) from ResourceAttrs"), "0\n");
    }
}

/// Assert that opening `path` fails with a message naming it and changes no byte.
fn assert_refused(path: &Path, what: &str) -> StateError {
    let before = fs::read(path).expect("read before");
    let err = StateFile::open(path).expect_err(what);
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{what}: {msg}");
    assert!(!msg.contains('\n'), "{what}: one line: {msg}");
    assert_eq!(
        fs::read(path).expect("read after"),
        before,
        "{what}: bytes changed"
    );
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert!(!Path::new(&wal).exists(), "{what}: a -wal file appeared");
    err
}

#[test]
fn newer_garbage_and_truncated_files_are_refused_untouched() {
    let dir = tmp();
    let v4 = fixture(dir.path(), 3);
    sqlite3(&v4, "update SchemaVersion set version = 4");
    let err = assert_refused(&v4, "schema 4");
    assert!(matches!(err, StateError::SchemaTooNew { version: 4, .. }));
    assert_eq!(sqlite3(&v4, "pragma journal_mode"), "delete\n");

    let garbage = dir.path().join("garbage.nixops");
    fs::write(
        &garbage,
        b"this is not a database at all, just some text\n".repeat(50),
    )
    .expect("write");
    assert_refused(&garbage, "garbage");

    let good = fixture(dir.path(), 3);
    let bytes = fs::read(&good).expect("read");
    for cut in [50usize, bytes.len() / 2, bytes.len() - 1] {
        let truncated = dir.path().join(format!("cut{cut}.nixops"));
        fs::write(&truncated, &bytes[..cut]).expect("write");
        assert_refused(&truncated, &format!("truncated at {cut}"));
    }

    let a_dir = dir.path().join("dir.nixops");
    fs::create_dir(&a_dir).expect("mkdir");
    let msg = StateFile::open(&a_dir)
        .expect_err("a directory")
        .to_string();
    assert!(
        msg.contains("Is a directory") && msg.contains("dir.nixops"),
        "{msg}"
    );

    // An empty file (what NixOps leaves if it dies right after creating one) is new.
    let empty = dir.path().join("empty.nixops");
    fs::write(&empty, b"").expect("write");
    let sf = StateFile::open(&empty).expect("empty file becomes a state file");
    assert!(sf.uuids().expect("uuids").is_empty());
}

#[test]
fn unreachable_directory_is_a_clear_error() {
    // A parent that is a regular file fails for root too (ENOTDIR).
    let dir = tmp();
    let file = dir.path().join("plain");
    fs::write(&file, b"x").expect("write");
    let path = file.join("deployments.nixops");
    let err = StateFile::open(&path).expect_err("parent is a file");
    let msg = err.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(matches!(err, StateError::Io { .. }), "{msg}");
    assert_eq!(fs::read(&file).expect("read"), b"x");
}

#[test]
fn unreadable_directory_as_unprivileged_user() {
    // Root ignores permission bits, so the opening process drops to `nobody`.
    assert!(
        Path::new("/usr/bin/setpriv").exists(),
        "setpriv (util-linux) is needed for this test"
    );
    let dir = tmp();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let locked = dir.path().join("locked");
    fs::create_dir(&locked).expect("mkdir");
    let path = locked.join("deployments.nixops");
    drop(StateFile::open(&path).expect("create as root"));
    let before = fs::read(&path).expect("read");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod 000");
    let status = Command::new("/usr/bin/setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(std::env::current_exe().expect("current exe"))
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("open-denied\u{1f}{}", path.display()))
        .status()
        .expect("run child as nobody");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).expect("chmod back");
    assert!(
        status.success(),
        "the unprivileged open did not fail as expected"
    );
    assert_eq!(fs::read(&path).expect("read"), before);
}

#[test]
fn selection_uses_nixops_rules_and_texts() {
    let dir = tmp();
    let path = dir.path().join("s.nixops");
    let sf = StateFile::open(&path).expect("create");
    let err = sf.find_deployment(None).expect_err("empty");
    assert_eq!(
        err.to_string(),
        format!(
            "could not find specified deployment in state file ‘{}’",
            path.display()
        )
    );
    let a = sf
        .create_deployment(Some("aaaa1111-0000-0000-0000-000000000000"))
        .expect("a");
    assert_eq!(sf.find_deployment(None).expect("only one"), a);
    let b = sf
        .create_deployment(Some("aaaa2222-0000-0000-0000-000000000000"))
        .expect("b");
    assert_eq!(
        sf.find_deployment(None).expect_err("two").to_string(),
        "state file contains multiple deployments, so you should specify which one to use using ‘-d’, or set the environment variable NIXOPS_DEPLOYMENT"
    );
    sf.set_deployment_attrs(&a, &[("name", Some("prod".into()))])
        .expect("name");
    assert_eq!(sf.find_deployment(Some("prod")).expect("by name"), a);
    assert_eq!(sf.find_deployment(Some(&b)).expect("by uuid"), b);
    assert_eq!(sf.find_deployment(Some("aaaa2")).expect("by prefix"), b);
    assert_eq!(
        sf.find_deployment(Some("aaaa")).expect_err("ambiguous").to_string(),
        "state file contains multiple deployments with the same name, so you should specify one using its UUID"
    );
    assert!(matches!(
        sf.find_deployment(Some("AAAA1")),
        Err(StateError::DeploymentNotFound { .. })
    ));
    assert_eq!(sf.find_deployment(Some("aaaa[1]")).expect("glob class"), a);
    // A clone must get a new name: the same name twice makes `-d` ambiguous.
    assert!(matches!(
        sf.clone_deployment(&a, None),
        Err(StateError::DuplicateName { .. })
    ));
    // State files written by NixOps can still have two deployments of one name.
    sf.import(r#"{"cccc0000-0000-0000-0000-000000000000": {"name": "prod", "resources": {}}}"#)
        .expect("import keeps names as they are");
    assert!(matches!(
        sf.find_deployment(Some("prod")),
        Err(StateError::AmbiguousDeployment { .. })
    ));
    let err = sf
        .set_deployment_attrs(&a, &[("name", Some("9bad".into()))])
        .expect_err("bad name");
    assert_eq!(err.to_string(), "invalid deployment name ‘9bad’");
}

#[test]
fn mutations_follow_nixops() {
    let dir = tmp();
    let sf = StateFile::open(&dir.path().join("m.nixops")).expect("create");
    let u = sf.create_deployment(None).expect("create");
    sf.set_deployment_attrs(
        &u,
        &[
            ("name", Some("net".into())),
            ("configsPath", Some("/nix/store/x".into())),
            ("description", Some("d".into())),
        ],
    )
    .expect("set");
    sf.set_deployment_attrs(&u, &[("description", None)])
        .expect("delete attr");
    let id = sf.add_resource(&u, "web", "none").expect("add");
    assert_eq!(
        sf.add_resource(&u, "web", "none")
            .expect_err("dup")
            .to_string(),
        "resource already exists in database!"
    );
    sf.set_resource_attrs(id, &[("state", Some("3".into())), ("x", Some("y".into()))])
        .expect("set");
    sf.set_resource_attrs(id, &[("x", None)]).expect("unset");
    assert!(matches!(
        sf.set_resource_attrs(999, &[("x", None)]),
        Err(StateError::NoSuchResource { id: 999 })
    ));

    let clone = sf.clone_deployment(&u, Some("copy")).expect("clone");
    let c = sf.load(&clone).expect("load clone");
    assert_eq!(c.name(), Some("copy"));
    assert_eq!(c.configs_path(), None);
    assert!(c.resources.is_empty());
    assert_eq!(c.description(), "Unnamed NixOps network");

    let id2 = sf.add_resource(&u, "db", "virtualbox").expect("add");
    let rename_err = |from: &str, to: &str| {
        sf.rename_resource(&u, from, to)
            .expect_err("rename refused")
            .to_string()
    };
    assert_eq!(rename_err("nope", "x"), "resource ‘nope’ not found");
    assert_eq!(
        rename_err("web", "db"),
        "resource with name ‘db’ already exists"
    );
    assert_eq!(
        rename_err("web", "a.b"),
        "a.b is not a valid resource identifier"
    );
    sf.rename_resource(&u, "web", "front-1").expect("rename");
    let d = sf.load(&u).expect("load");
    let front = d.resource("front-1").expect("renamed");
    assert_eq!((front.id, front.state()), (id, ResourceState::Up));
    assert_eq!(front.attrs.len(), 1);
    assert_eq!(
        d.resource("db").expect("db").state(),
        ResourceState::Missing
    );

    assert_eq!(
        sf.delete_deployment(&u, false)
            .expect_err("has resources")
            .to_string(),
        "cannot delete this deployment because it still has resources"
    );
    sf.delete_resource(id2).expect("delete resource");
    assert!(matches!(
        sf.delete_resource(id2),
        Err(StateError::NoSuchResource { .. })
    ));
    sf.delete_deployment(&u, true).expect("force delete");
    assert_eq!(sf.uuids().expect("uuids"), vec![clone.clone()]);
    sf.delete_deployment(&clone, false).expect("no resources");
    assert!(sf.uuids().expect("uuids").is_empty());
}

#[test]
fn set_args_stores_python_json() {
    let dir = tmp();
    let path = dir.path().join("a.nixops");
    let sf = StateFile::open(&path).expect("create");
    let u = sf.create_deployment(None).expect("create");
    let changes = SetArgs {
        arg: vec![("n".into(), "42".into())],
        argstr: vec![("s".into(), "é ${x}\n".into())],
        unset: vec![],
    };
    let args = sf.set_args(&u, &changes).expect("set-args");
    assert_eq!(args["s"], "\"é \\${x}\\n\"");
    assert_eq!(
        sqlite3(
            &path,
            "select value from DeploymentAttrs where name = 'args'"
        ),
        "{\"n\": \"42\", \"s\": \"\\\"\\u00e9 \\\\${x}\\\\n\\\"\"}\n"
    );
    let err = sf
        .set_args(
            &u,
            &SetArgs {
                arg: vec![("a b".into(), "1".into())],
                ..SetArgs::default()
            },
        )
        .expect_err("bad name");
    assert_eq!(err.to_string(), "invalid argument name ‘a b’");
    let unset = SetArgs {
        unset: vec!["n".into(), "s".into()],
        ..SetArgs::default()
    };
    assert!(sf.set_args(&u, &unset).expect("unset").is_empty());
    assert_eq!(
        sqlite3(&path, "select count(*) from DeploymentAttrs"),
        "0\n"
    );
}

#[test]
fn export_import_round_trip_and_refusals() {
    let dir = tmp();
    let src = StateFile::open(&fixture(dir.path(), 3)).expect("open fixture");
    let uuids = src.uuids().expect("uuids");
    let dump = src.export(&uuids).expect("export");

    let dst_path = dir.path().join("dst.nixops");
    let dst = StateFile::open(&dst_path).expect("create");
    assert_eq!(dst.import(&dump).expect("import"), uuids);
    let strip = |ds: Vec<nixops_core::state::DeploymentRecord>| {
        ds.into_iter()
            .map(|d| {
                let res: BTreeMap<_, _> = d
                    .resources
                    .into_iter()
                    .map(|r| (r.name, (r.type_, r.attrs)))
                    .collect();
                (d.uuid, d.attrs, res)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        strip(dst.deployments().expect("load")),
        strip(src.deployments().expect("load"))
    );
    assert_eq!(dst.export(&uuids).expect("re-export"), dump);

    let before = fs::read(&dst_path).expect("read");
    let err = dst.import(&dump).expect_err("existing uuid");
    assert_eq!(
        err.to_string(),
        format!("state file already contains a deployment with UUID ‘{D1}’")
    );
    // A new deployment together with an existing one: nothing at all is imported.
    let mixed = format!(
        "{{\"11111111-0000-0000-0000-000000000000\": {{\"name\": \"n\", \"resources\": {{}}}}, \"{D2}\": {{\"resources\": {{}}}}}}"
    );
    assert!(dst.import(&mixed).is_err());
    assert_eq!(dst.uuids().expect("uuids"), uuids);
    let lacks = r#"{"22222222-0000-0000-0000-000000000000": {"resources": {"m": {"state": "3"}}}}"#;
    assert_eq!(
        dst.import(lacks).expect_err("no type").to_string(),
        "imported resource lacks a type"
    );
    let number = r#"{"33333333-0000-0000-0000-000000000000": {"index": 3, "resources": {}}}"#;
    let err = dst.import(number).expect_err("non-string");
    assert!(err.to_string().contains("attribute ‘index’"), "{err}");
    assert!(dst.import("[1,").is_err());
    assert_eq!(dst.uuids().expect("uuids"), uuids);
    drop(dst);
    let _ = before;
    assert_eq!(sqlite3(&dst_path, "pragma integrity_check"), "ok\n");
}

// ---- processes -------------------------------------------------------------------

const CHILD_ENV: &str = "NIXOPS_STATE_TEST_CHILD";

/// Spawn this test binary running only `child_entry`, with `args` in the environment.
fn spawn_child(args: &[&str]) -> std::process::Child {
    Command::new(std::env::current_exe().expect("current exe"))
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, args.join("\u{1f}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn child")
}

/// Entry point of child processes (a no-op in a normal test run).
#[test]
fn child_entry() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let args: Vec<&str> = spec.split('\u{1f}').collect();
    match args.as_slice() {
        ["write", path, uuid, tag, n] => {
            let sf = StateFile::open(Path::new(path)).expect("child open");
            let n: usize = n.parse().expect("count");
            for i in 0..n {
                let id = sf
                    .add_resource(uuid, &format!("{tag}-{i}"), "none")
                    .expect("child add resource");
                sf.set_resource_attrs(
                    id,
                    &[("state", Some("3".into())), ("index", Some(i.to_string()))],
                )
                .expect("child set resource attrs");
                sf.set_deployment_attrs(uuid, &[(&format!("{tag}-last"), Some(i.to_string()))])
                    .expect("child set deployment attr");
            }
        }
        ["lock", dir, uuid, ready, release] => {
            let _lock = DeploymentLock::acquire(
                Path::new(dir),
                uuid,
                "net",
                "nixops deploy",
                LockWait::NoWait,
            )
            .expect("child lock");
            fs::write(ready, b"").expect("signal ready");
            let deadline = Instant::now() + Duration::from_secs(30);
            while !Path::new(release).exists() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        ["open-denied", path] => {
            let err = StateFile::open(Path::new(path)).expect_err("directory is unreadable");
            let msg = err.to_string();
            assert!(matches!(err, StateError::Io { .. }), "{msg}");
            assert!(
                msg.contains(path) && msg.contains("Permission denied"),
                "{msg}"
            );
            assert!(!msg.contains('\n'), "{msg}");
        }
        other => panic!("unknown child command {other:?}"),
    }
}

#[test]
fn concurrent_writer_processes_keep_every_write() {
    let dir = tmp();
    let path = dir.path().join("c.nixops");
    let uuid = StateFile::open(&path)
        .expect("create")
        .create_deployment(None)
        .expect("deployment");
    let path_s = path.to_str().expect("utf-8 path");
    let children: Vec<_> = (0..4)
        .map(|t| spawn_child(&["write", path_s, &uuid, &format!("w{t}"), "40"]))
        .collect();
    for mut c in children {
        assert!(c.wait().expect("wait").success(), "a writer failed");
    }
    assert_eq!(sqlite3(&path, "pragma integrity_check"), "ok\n");
    let d = StateFile::open(&path)
        .expect("open")
        .load(&uuid)
        .expect("load");
    assert_eq!(d.resources.len(), 160);
    assert!(d.resources.iter().all(|r| r.state() == ResourceState::Up));
    for t in 0..4 {
        assert_eq!(d.attr(&format!("w{t}-last")), Some("39"));
    }
}

#[test]
fn deployment_lock_names_holder_and_waits() {
    let dir = tmp();
    let locks = dir.path().join("home/.nixops/locks");
    let uuid = "0d9c5a1e-60f5-11e9-8a3c-0242ac110002";
    let ready = dir.path().join("ready");
    let release = dir.path().join("release");
    let s = |p: &Path| p.to_str().expect("utf-8").to_string();
    let mut child = spawn_child(&["lock", &s(&locks), uuid, &s(&ready), &s(&release)]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "child never took the lock");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        fs::metadata(&locks).expect("stat").permissions().mode() & 0o777,
        0o700
    );

    let err = DeploymentLock::acquire(&locks, uuid, "net", "nixops destroy", LockWait::NoWait)
        .expect_err("held by the child");
    assert_eq!(
        err.to_string(),
        format!(
            "deployment ‘net’ is locked by pid {} (nixops deploy)",
            child.id()
        )
    );

    let release2 = release.clone();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        fs::write(release2, b"").expect("signal release");
    });
    let mut seen = Vec::new();
    let mut on_wait = |h: &nixops_core::state::LockHolder| seen.push(h.clone());
    let started = Instant::now();
    let lock = DeploymentLock::acquire(
        &locks,
        uuid,
        "net",
        "nixops destroy",
        LockWait::Wait(&mut on_wait),
    )
    .expect("acquired after release");
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "did not wait"
    );
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].pid, Some(child.id()));
    assert_eq!(
        fs::read_to_string(lock.path()).expect("read"),
        format!("{}\nnixops destroy\n", std::process::id())
    );
    releaser.join().expect("releaser");
    assert!(child.wait().expect("wait").success());
    drop(lock);
    // Free again. Other tests of this binary start processes meanwhile: a child
    // forked while the lock was open shares its file description until it
    // executes its program, so allow it a moment.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match DeploymentLock::acquire(&locks, uuid, "net", "x", LockWait::NoWait) {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("not free again: {e:?}"),
        }
    }
}

#[test]
fn shallow_and_sparse_id_loading() {
    let dir = tmp();
    let path = fixture(dir.path(), 3);
    // A far-away id forces the sparse lookup path.
    sqlite3(
        &path,
        &format!(
            "insert into Resources(id, deployment, name, type) values (9000000, '{D2}', 'far', 'none');
             insert into ResourceAttrs values (9000000, 'state', '6');"
        ),
    );
    let sf = StateFile::open(&path).expect("open");
    let all = sf.deployments().expect("load");
    let far = all[1].resource("far").expect("far");
    assert_eq!(far.state(), ResourceState::Unreachable);
    assert_eq!(all[0].resource("web").expect("web").attrs.len(), 13);
    let some = sf
        .deployments_with_attrs(&["state", "vmId"])
        .expect("selected attrs");
    let web = some[0].resource("web").expect("web");
    assert_eq!(web.attrs.keys().collect::<Vec<_>>(), ["state", "vmId"]);
    assert_eq!(
        web.attrs["vmId"],
        all[0].resource("web").expect("web").attrs["vmId"]
    );
    assert_eq!(some[0].attrs, all[0].attrs);
    let shallow = sf.deployments_shallow().expect("shallow");
    assert_eq!(shallow.len(), 2);
    for (s, full) in shallow.iter().zip(&all) {
        assert_eq!((&s.uuid, &s.attrs), (&full.uuid, &full.attrs));
        let names = |d: &nixops_core::state::DeploymentRecord| {
            d.resources
                .iter()
                .map(|r| (r.id, r.name.clone(), r.type_.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(s), names(full));
        assert!(s.resources.iter().all(|r| r.attrs.is_empty()));
    }
}
