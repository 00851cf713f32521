//! `nixops ssh`, `ssh-for-each` and `scp` against deployed test hosts.

use nixops_testkit::env::NetEnv;
use nixops_testkit::snap;

use crate::common::create_and_deploy;
use crate::NIXOPS;

#[test]
fn ssh_ssh_for_each_and_scp() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2", "proxy"]) else {
        return;
    };
    create_and_deploy(&env, "ops");

    // ssh: a command's output and exit status pass through.
    let run = env.run(&["ssh", "web1", "--", "cat", "/etc/hostname"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "web1\n"),
        "{}",
        run.render()
    );
    let run = env.run(&["ssh", "web1", "--", "exit", "3"]);
    assert_eq!(run.code, 3, "{}", run.render());
    let run = env.run(&["ssh", "root@proxy", "-o", "LogLevel=ERROR", "whoami"]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "root\n"),
        "{}",
        run.render()
    );
    // The remote shell interprets the words, as with plain ssh.
    let run = env.run(&["ssh", "web2", "--", "echo $((6 * 7))"]);
    assert_eq!(run.stdout, "42\n", "{}", run.render());

    // ssh-for-each in parallel: one prefixed line per machine, on stderr.
    let run = env.run(&["ssh-for-each", "-p", "--", "cat", "/etc/hostname"]);
    assert_eq!(run.code, 0, "{}", run.render());
    let mut lines: Vec<&str> = run.stderr.lines().collect();
    lines.sort_unstable();
    assert_eq!(lines, ["proxy> proxy", "web1.> web1", "web2.> web2"]);
    assert_eq!(run.stdout, "");

    // Sequentially, in name order; the exit status is the largest one.
    let script = "h=$(cat /etc/hostname); echo \"on $h\"; \
                  case $h in web1) exit 3;; web2) exit 7;; esac";
    let run = env.run(&["ssh-for-each", "--", script]);
    assert_eq!(run.code, 7, "{}", run.render());
    snap!(env, run.render());
    let run = env.run(&["ssh-for-each", "-p", "--exclude", "web2", "--", script]);
    assert_eq!(run.code, 3, "{}", run.render());
    let run = env.run(&["ssh-for-each", "--include", "proxy", "--", "true"]);
    assert_eq!((run.code, run.stderr.as_str()), (0, ""), "{}", run.render());

    // scp both ways keeps every byte.
    let blob: Vec<u8> = (0..65536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let local = env.write_bytes("blob.bin", &blob);
    let run = env.run(&["scp", "--to", "web1", "blob.bin", "/root/blob.bin"]);
    assert_eq!(run.code, 0, "{}", run.render());
    snap!(env, run.render());
    let on_host = env
        .host("web1")
        .exec(&["cat", "/root/blob.bin"])
        .expect("reading the copy on web1");
    assert!(on_host.stdout == blob, "the copy on web1 differs");
    env.host("web1")
        .exec(&["sh", "-c", "printf '\\000\\377end' >> /root/blob.bin"])
        .expect("appending to the copy on web1");
    let run = env.run(&["scp", "--from", "web1", "/root/blob.bin", "back.bin"]);
    assert_eq!(run.code, 0, "{}", run.render());
    snap!(env, run.render());
    let back = std::fs::read(env.path("back.bin")).expect("reading the copy back");
    let mut expected = blob.clone();
    expected.extend_from_slice(b"\x00\xffend");
    assert!(back == expected, "the copy from web1 differs");
    assert_eq!(std::fs::read(&local).expect("reading blob"), blob);
    let run = env.run(&["scp", "--from", "web1", "/root/missing", "x"]);
    assert_ne!(run.code, 0, "{}", run.render());

    // A machine that cannot be reached counts as ssh's 255; the others still run.
    env.host("web2").kill_sshd().expect("killing sshd");
    let run = env.run(&["ssh-for-each", "-p", "--", "cat", "/etc/hostname"]);
    assert_eq!(run.code, 255, "{}", run.render());
    assert!(run.stderr.contains("web1.> web1\n"), "{}", run.render());
    assert!(run.stderr.contains("proxy> proxy\n"), "{}", run.render());
    assert!(
        run.stderr
            .contains("web2.> error: unable to connect to machine ‘web2’"),
        "{}",
        run.render()
    );
}

#[test]
fn errors() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2", "proxy"]) else {
        return;
    };
    create_and_deploy(&env, "ops");
    snap!(env, env.run(&["ssh", "nope"]).render());
    snap!(env, env.run(&["ssh", "alice@nope", "--", "true"]).render());
    snap!(env, env.run(&["scp", "web1", "a", "b"]).render());
    snap!(
        env,
        env.run(&["scp", "--from", "--to", "web1", "a", "b"])
            .render()
    );
    snap!(env, env.run(&["scp", "--to", "nope", "a", "b"]).render());
    let run = env.run(&["ssh", "-d", "other", "web1"]);
    assert_eq!(run.code, 1);
    snap!(env, run.render());

    // A machine whose host key changed is refused, with the reason.
    let conn = rusqlite::Connection::open(env.path("state.nixops")).expect("opening the state");
    conn.execute(
        "update ResourceAttrs set value = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHa+GKcFnMiuFejEDMXYf8b1PHVLWgt42byGoNmGEl5j' \
         where name = 'publicHostKey'",
        [],
    )
    .expect("changing the pinned key");
    drop(conn);
    let run = env.run(&["ssh", "web1", "--", "true"]);
    assert_eq!(run.code, 255, "{}", run.render());
    snap!(env, run.render());
    let run = env.run(&["ssh-for-each", "--", "true"]);
    assert_eq!(run.code, 255, "{}", run.render());
    snap!(env, run.render());
    let run = env.run(&["check"]);
    assert_eq!(run.code, 4, "{}", run.render());
    assert!(run.stdout.contains("has changed"), "{}", run.render());

    // Forgetting web1's key pins the one it presents now; it is reachable again.
    let run = env.run(&["check", "--forget-host-key", "web1", "--include", "web1"]);
    assert_eq!(run.code, 0, "{}", run.render());
    let run = env.run(&["ssh", "web1", "--", "true"]);
    assert_eq!(run.code, 0, "{}", run.render());
    let pinned: String = rusqlite::Connection::open(env.path("state.nixops"))
        .expect("opening the state")
        .query_row(
            "select a.value from ResourceAttrs a join Resources r on r.id = a.machine \
             where r.name = 'web1' and a.name = 'publicHostKey'",
            [],
            |row| row.get(0),
        )
        .expect("a pinned key for web1");
    let presented: Vec<&str> = env
        .host("web1")
        .host_key_pub()
        .split_whitespace()
        .take(2)
        .collect();
    assert_eq!(pinned, presented.join(" "));
    snap!(
        env,
        env.run(&["check", "--forget-host-key", "nope"]).render()
    );
}

/// `nixops mount`: a machine's directory through sshfs, with the pinned host key.
#[test]
#[allow(clippy::print_stderr)] // the reason for skipping, outside CI
fn mount_a_directory_of_a_machine() {
    let Some(env) = NetEnv::new(NIXOPS, &["web1", "web2", "proxy"]) else {
        return;
    };
    let sshfs_ok = std::process::Command::new("sshfs")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        sshfs_ok || std::env::var_os("CI").is_none(),
        "sshfs is not installed (scripts/install-deps installs it)"
    );
    if !sshfs_ok {
        eprintln!("SKIPPED: sshfs is not installed");
        return;
    }
    create_and_deploy(&env, "ops");
    let mnt = env.path("mnt");
    std::fs::create_dir_all(&mnt).expect("mkdir");
    env.on(
        "web1",
        &[
            "sh",
            "-c",
            "mkdir -p /root/share && echo shared data > /root/share/file.txt",
        ],
    );
    let run = env.run(&["mount", "web1:/root/share", mnt.to_str().expect("utf8")]);
    assert_eq!(run.code, 0, "{}", run.render());
    let content = std::fs::read_to_string(mnt.join("file.txt"));
    // The file was just read: the mount can be busy for a moment.
    let unmount_once = || {
        std::process::Command::new("fusermount3")
            .arg("-u")
            .arg(&mnt)
            .status()
            .or_else(|_| std::process::Command::new("umount").arg(&mnt).status())
    };
    let mut unmount = unmount_once();
    for _ in 0..20 {
        if unmount.as_ref().is_ok_and(|s| s.success()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        unmount = unmount_once();
    }
    assert_eq!(
        content.expect("the file is readable through sshfs"),
        "shared data\n"
    );
    assert!(unmount.is_ok_and(|s| s.success()), "unmount failed");
    let run = env.run(&["mount", "nope:/", mnt.to_str().expect("utf8")]);
    assert_eq!(
        run.stderr.trim(),
        "error: unknown machine ‘nope’",
        "{}",
        run.render()
    );
}
