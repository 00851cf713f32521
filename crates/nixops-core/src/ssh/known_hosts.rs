//! The known_hosts files we hand to OpenSSH: pinned keys written out, learned keys read
//! back.
//!
//! It owns the format of those files and nothing else: it never reads or writes the
//! user's `~/.ssh/known_hosts`, and it runs no process.

use std::io::Write;
use std::path::Path;

/// The host pattern OpenSSH looks up for `host` on `port`: `host` on port 22 (or when
/// the port is not given), else `[host]:port`.
pub fn host_pattern(host: &str, port: Option<u16>) -> String {
    match port {
        Some(port) if port != 22 => format!("[{host}]:{port}"),
        _ => host.to_owned(),
    }
}

/// Render pinned key lines (`"<type> <base64> [comment]"`, e.g. the contents of a
/// `.pub` file) as known_hosts lines for `pattern`. Blank lines are skipped and
/// comments dropped.
pub fn render(pattern: &str, keys: &[String]) -> String {
    let mut out = String::new();
    for key in keys {
        if let Some(key) = key_of_line(key) {
            out.push_str(pattern);
            out.push(' ');
            out.push_str(&key);
            out.push('\n');
        }
    }
    out
}

/// Write a known_hosts file (mode 0600) for `pattern` with `keys`.
pub fn write(path: &Path, pattern: &str, keys: &[String]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(render(pattern, keys).as_bytes())
}

/// The keys (`"<type> <base64>"`) recorded in known_hosts contents, in file order,
/// without host fields, comments or duplicates.
pub fn parse_keys(contents: &str) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for line in contents.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        // `hosts type key [comment]`: the host field is dropped. Marker lines
        // (`@cert-authority`, `@revoked`) are not host keys and are skipped.
        if line.starts_with('@') {
            continue;
        }
        let rest: Vec<&str> = line.split_whitespace().skip(1).collect();
        if let Some(key) = key_of_line(&rest.join(" ")) {
            if !keys.contains(&key) {
                keys.push(key);
            }
        }
    }
    keys
}

/// `"<type> <base64>"` from a public key line `"<type> <base64> [comment]"`.
fn key_of_line(line: &str) -> Option<String> {
    let mut fields = line.split_whitespace();
    let kind = fields.next()?;
    let blob = fields.next()?;
    Some(format!("{kind} {blob}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_follow_openssh() {
        assert_eq!(host_pattern("198.18.0.11", None), "198.18.0.11");
        assert_eq!(host_pattern("198.18.0.11", Some(22)), "198.18.0.11");
        assert_eq!(host_pattern("127.0.0.1", Some(2222)), "[127.0.0.1]:2222");
    }

    #[test]
    fn renders_and_parses() {
        let keys = vec![
            "ssh-ed25519 AAAAC3Nza root@host".to_owned(),
            String::new(),
            "ssh-rsa AAAAB3Nza".to_owned(),
        ];
        let text = render("[h]:2", &keys);
        assert_eq!(
            text,
            "[h]:2 ssh-ed25519 AAAAC3Nza\n[h]:2 ssh-rsa AAAAB3Nza\n"
        );
        assert_eq!(
            parse_keys(&format!(
                "# comment\n{text}\n@cert-authority * ssh-rsa CA\n"
            )),
            ["ssh-ed25519 AAAAC3Nza", "ssh-rsa AAAAB3Nza"]
        );
    }
}
