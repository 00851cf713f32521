//! Exact command lines of the ssh builders. Nothing here connects anywhere.

use super::*;

fn argv(cmd: &Cmd) -> Vec<String> {
    std::iter::once(cmd.program())
        .chain(cmd.get_args().iter().map(|a| a.as_os_str()))
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

fn target() -> SshTarget {
    SshTarget {
        port: Some(2222),
        identity: Some(PathBuf::from("/keys/id_nixops-web1")),
        extra_opts: vec!["-o".into(), "LogLevel=ERROR".into()],
        use_user_config: false,
        ..SshTarget::new("root", "198.18.0.11")
    }
}

fn session(host_keys: HostKeys) -> SshSession {
    SshSession::new("web1", target(), host_keys, SessionOptions::default())
        .expect("a temp dir can be created")
}

/// Replace the session's temp dir by `$D` so expected argv can be written out.
fn norm(session: &SshSession, words: Vec<String>) -> Vec<String> {
    let dir = session.dir.path().display().to_string();
    words.into_iter().map(|w| w.replace(&dir, "$D")).collect()
}

fn strs(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

const PINNED_FLAGS: [&str; 24] = [
    "-F",
    "none",
    "-o",
    "BatchMode=yes",
    "-o",
    "StrictHostKeyChecking=yes",
    "-o",
    "UserKnownHostsFile=$D/known_hosts",
    "-o",
    "HostKeyAlias=[198.18.0.11]:2222",
    "-o",
    "GlobalKnownHostsFile=/dev/null",
    "-o",
    "HashKnownHosts=no",
    "-o",
    "UpdateHostKeys=no",
    "-o",
    "ConnectTimeout=20",
    "-p",
    "2222",
    "-i",
    "/keys/id_nixops-web1",
    "-o",
    "LogLevel=ERROR",
];

fn pinned_flags() -> Vec<String> {
    strs(&PINNED_FLAGS)
}

#[test]
fn socket_dir_is_short() {
    let s = session(HostKeys::Learn);
    assert!(
        s.control_path().as_os_str().len() + 17 < 104,
        "{}",
        s.control_path().display()
    );
}

#[test]
fn pinned_keys_are_written_for_host_and_port() {
    let s = session(HostKeys::Pinned(
        vec!["ssh-ed25519 AAAAkey root@old".into()],
    ));
    let path = s.known_hosts_path().expect("pinned sessions have a file");
    assert_eq!(
        fs::read_to_string(path).expect("written"),
        "[198.18.0.11]:2222 ssh-ed25519 AAAAkey\n"
    );
    assert_eq!(
        s.learned_host_keys().expect("readable"),
        ["ssh-ed25519 AAAAkey"]
    );
    let err = SshSession::new(
        "web1",
        target(),
        HostKeys::Pinned(vec![]),
        SessionOptions::default(),
    )
    .expect_err("invariant: no keys to pin");
    assert!(matches!(err, SshError::NoPinnedKeys { .. }));
}

#[test]
fn master_argv() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let mut expected = strs(&[
        "ssh",
        "-M",
        "-N",
        "-f",
        "-S",
        "$D/m",
        "-o",
        "ControlPersist=600",
        "-o",
        "ServerAliveInterval=60",
    ]);
    expected.extend(pinned_flags());
    expected.extend(strs(&["-x", "root@198.18.0.11"]));
    assert_eq!(norm(&s, argv(&s.master_cmd())), expected);
}

#[test]
fn learn_and_user_policies() {
    let s = session(HostKeys::Learn);
    let flags = norm(&s, s.ssh_flags());
    assert!(flags.contains(&"StrictHostKeyChecking=accept-new".to_owned()));
    assert!(flags.contains(&"UserKnownHostsFile=$D/known_hosts".to_owned()));

    let user = SshSession::new(
        "web1",
        SshTarget::new("deploy", "web1.example.org"),
        HostKeys::UserKnownHosts,
        SessionOptions::default(),
    )
    .expect("session");
    assert_eq!(
        user.ssh_flags(),
        ["-o", "BatchMode=yes", "-o", "ConnectTimeout=20"]
    );
    assert_eq!(user.known_hosts_path(), None);
    assert_eq!(
        user.learned_host_keys().expect("no file"),
        Vec::<String>::new()
    );
}

#[test]
fn command_argv_quotes_every_word() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let cmd = s.command(&["printf", "%s\\n", "a b", "$(touch /tmp/x)", "'", ";"]);
    let mut expected = strs(&["ssh", "-o", "ControlPath=$D/m"]);
    expected.extend(pinned_flags());
    expected.extend(strs(&[
        "-x",
        "root@198.18.0.11",
        "--",
        r"printf '%s\n' 'a b' '$(touch /tmp/x)' ''\''' ';'",
    ]));
    assert_eq!(norm(&s, argv(&cmd)), expected);

    let shell = s.shell("test -d /run/keys || exit 1");
    assert_eq!(
        argv(&shell).last().map(String::as_str),
        Some("test -d /run/keys || exit 1")
    );
}

#[test]
fn stdin_is_not_in_the_command_line() {
    let s = session(HostKeys::Learn);
    let cmd = s
        .command(&["cat"])
        .stdin_bytes(b"-----BEGIN SECRET-----".to_vec());
    assert!(!format!("{cmd} {cmd:?}").contains("BEGIN SECRET"));
}

#[test]
fn nix_sshopts_and_copy_closure() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let mut opts = pinned_flags();
    opts.push("-oControlPath=$D/m".to_owned());
    assert_eq!(norm(&s, vec![s.nix_sshopts()]), [opts.join(" ")]);

    let cmd = s.copy_closure(Path::new("/nix/store/abc-system"), true);
    assert_eq!(
        argv(&cmd),
        [
            "nix-copy-closure",
            "--to",
            "root@198.18.0.11",
            "--use-substitutes",
            "/nix/store/abc-system"
        ]
    );
    assert_eq!(
        cmd.get_env(),
        [("NIX_SSHOPTS".into(), Some(s.nix_sshopts().into()))]
    );
    let fast = s.copy_closure(Path::new("/nix/store/abc-system"), false);
    assert_eq!(argv(&fast).len(), 4);
}

#[test]
fn interactive_and_for_each_argv() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let cmd = interactive_ssh(&s, &["-tv", "-L", "80:localhost:80", "ls", "-l", "*"]);
    let mut expected = strs(&[
        "ssh",
        "-o",
        "ControlPath=$D/m",
        "-t",
        "-v",
        "-L",
        "80:localhost:80",
    ]);
    expected.extend(pinned_flags());
    expected.extend(strs(&["root@198.18.0.11", "--", "ls", "-l", "*"]));
    assert_eq!(norm(&s, argv(&cmd)), expected);

    let bare = interactive_ssh::<&str>(&s, &[]);
    assert_eq!(
        argv(&bare).last().map(String::as_str),
        Some("root@198.18.0.11")
    );

    let each = ssh_for_each_cmd(&s, &["uptime"]);
    let mut expected = strs(&["ssh", "-o", "ControlPath=$D/m"]);
    expected.extend(pinned_flags());
    expected.extend(strs(&["-x", "root@198.18.0.11", "--", "uptime"]));
    assert_eq!(norm(&s, argv(&each)), expected);
}

#[test]
fn scp_argv() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let cmd = scp_cmd(&s, ScpDirection::From, "/etc/hosts", "./hosts");
    let mut expected = strs(&["scp", "-r", "-o", "ControlPath=$D/m"]);
    expected.extend(
        pinned_flags()
            .into_iter()
            .map(|f| if f == "-p" { "-P".to_owned() } else { f }),
    );
    expected.extend(strs(&["root@198.18.0.11:/etc/hosts", "./hosts"]));
    assert_eq!(norm(&s, argv(&cmd)), expected);

    let v6 = SshTarget::new("root", "fd00::1");
    assert_eq!(
        scp_endpoints(&v6, ScpDirection::To, "a", "/b"),
        ("a".to_owned(), "root@[fd00::1]:/b".to_owned())
    );
}

#[test]
fn error_messages_name_the_machine() {
    let s = session(HostKeys::Pinned(vec!["ssh-ed25519 AAAA".into()]));
    let changed = s
        .classify(b"@@@ WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED! @@@\nHost key verification failed.\n")
        .expect("recognised");
    assert!(matches!(changed, SshError::HostKeyChanged { .. }));
    let msg = changed.to_string();
    assert!(msg.contains("‘web1’ (198.18.0.11)"), "{msg}");

    let refused = s
        .classify(b"ssh: connect to host 198.18.0.11 port 2222: Connection refused\n")
        .expect("recognised");
    assert_eq!(
        refused.to_string(),
        "unable to connect to machine ‘web1’ at ‘root@198.18.0.11’: \
         ssh: connect to host 198.18.0.11 port 2222: Connection refused"
    );
    assert_eq!(refused.machine(), "web1");
    assert!(s.classify(b"some remote program's own error\n").is_none());

    let user = SshSession::new(
        "web1",
        SshTarget::new("root", "web1.example.org"),
        HostKeys::UserKnownHosts,
        SessionOptions::default(),
    )
    .expect("session");
    let rejected = user
        .classify(b"No ED25519 host key is known for web1.example.org and you have requested strict checking.\r\nHost key verification failed.\r\n")
        .expect("recognised");
    assert_eq!(
        rejected.to_string(),
        "the host key of machine ‘web1’ (web1.example.org) is not accepted by your SSH \
         configuration: Host key verification failed."
    );

    let failed = SshError::CommandFailed {
        machine: "web1".into(),
        command: "false".into(),
        status: 1,
        stderr_tail: String::new(),
    };
    assert_eq!(
        failed.to_string(),
        "command ‘false’ failed on machine ‘web1’ (exit code 1)"
    );
}
