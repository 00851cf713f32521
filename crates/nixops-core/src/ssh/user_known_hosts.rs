//! The user's `~/.ssh/known_hosts`, edited the way NixOps edits it: entries
//! keyed by IP address, for `import --include-keys`.
//!
//! It owns that edit and nothing else. Deploys never touch this file (they pin
//! host keys in the state file); only an explicit request does.

use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;

/// `contents` with `ip` taken out of every entry (an entry left without names
/// is dropped) and one `<ip> <key>` line added per key, as NixOps'
/// `known_hosts.add` does. Lines without a space are kept as they are.
pub fn with_host(contents: &str, ip: &str, keys: &[String]) -> String {
    let mut lines: Vec<String> = contents
        .lines()
        .filter_map(|line| {
            let Some((first, rest)) = line.split_once(' ') else {
                return Some(line.to_owned());
            };
            let names: Vec<&str> = first.split(',').collect();
            if !names.contains(&ip) {
                return Some(line.to_owned());
            }
            let others: Vec<&str> = names.into_iter().filter(|n| *n != ip).collect();
            (!others.is_empty()).then(|| format!("{} {rest}", others.join(",")))
        })
        .collect();
    for key in keys.iter().map(|k| k.trim()).filter(|k| !k.is_empty()) {
        lines.push(format!("{ip} {key}"));
    }
    let mut out = lines.join("\n");
    out.push('\n');
    out
}

/// Record `keys` for `ip` in `<home>/.ssh/known_hosts` (see [`with_host`]).
/// The directory is created (0700) if missing; concurrent writers, NixOps'
/// included, are kept apart by a lock on `<home>/.ssh/.known_hosts.lock`, and
/// the file is replaced in one rename.
pub fn add(home: &Path, ip: &str, keys: &[String]) -> io::Result<()> {
    let dir = home.join(".ssh");
    if !dir.is_dir() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)?;
    }
    let lock = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".known_hosts.lock"))?;
    lock.lock()?;
    let path = dir.join("known_hosts");
    let contents = match fs::read_to_string(&path) {
        Ok(c) => c,
        Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let tmp = dir.join(format!("known_hosts.tmp-{}", std::process::id()));
    fs::write(&tmp, with_host(&contents, ip, keys))?;
    fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_the_address_and_keeps_the_rest() {
        let before = "10.0.0.1,web ssh-ed25519 OLD\n\
                      10.0.0.1 ssh-rsa OLDER\n\
                      10.0.0.2 ssh-ed25519 OTHER\n\
                      # a comment\n";
        let after = with_host(before, "10.0.0.1", &["ssh-ed25519 NEW".to_owned()]);
        assert_eq!(
            after,
            "web ssh-ed25519 OLD\n10.0.0.2 ssh-ed25519 OTHER\n# a comment\n\
             10.0.0.1 ssh-ed25519 NEW\n"
        );
    }

    #[test]
    fn several_keys_and_an_empty_file() {
        let after = with_host(
            "",
            "192.0.2.7",
            &[
                "ssh-ed25519 A".to_owned(),
                String::new(),
                "ssh-rsa B\n".to_owned(),
            ],
        );
        assert_eq!(after, "192.0.2.7 ssh-ed25519 A\n192.0.2.7 ssh-rsa B\n");
    }
}
