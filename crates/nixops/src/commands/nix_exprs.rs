//! Network file and `-I` arguments as `create` and `modify` store them.

use std::path::Path;

use crate::error::CliError;

/// The `nixExprs` list: files made absolute (unless `<...>`), then templates.
pub fn network_files(files: &[String], templates: &[String]) -> Result<Vec<String>, CliError> {
    if files.is_empty() && templates.is_empty() {
        return Err(CliError::new(
            "you must specify the path to a Nix expression and/or use ‘-t’",
        ));
    }
    let mut out = Vec::with_capacity(files.len() + templates.len());
    for f in files {
        if f.starts_with('<') {
            out.push(f.clone());
            continue;
        }
        let abs = absolute(f)?;
        if !Path::new(&abs).exists() {
            return Err(CliError::new(format!("network file ‘{f}’ does not exist")));
        }
        out.push(abs);
    }
    for t in templates {
        out.push(format!("<nixops/templates/{t}.nix>"));
    }
    Ok(out)
}

/// The `nixPath` list: `prefix=path` and bare paths made absolute; URLs kept.
pub fn nix_path(entries: &[String]) -> Result<Vec<String>, CliError> {
    entries
        .iter()
        .map(|e| {
            let keep = ["http://", "https://", "file://", "channel:"];
            if keep.iter().any(|p| e.starts_with(p)) {
                return Ok(e.clone());
            }
            match e.split_once('=') {
                Some((prefix, path)) if keep.iter().any(|p| path.starts_with(p)) => {
                    Ok(format!("{prefix}={path}"))
                }
                Some((prefix, path)) => Ok(format!("{prefix}={}", absolute(path)?)),
                None => absolute(e),
            }
        })
        .collect()
}

fn absolute(p: &str) -> Result<String, CliError> {
    let path = std::path::absolute(p)
        .map_err(|e| CliError::new(format!("cannot resolve path ‘{p}’: {e}")))?;
    Ok(normalise(&path))
}

/// Like Python's `os.path.abspath`: `.` and `..` removed lexically.
fn normalise(path: &Path) -> String {
    use std::path::Component;
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                parts.pop();
            }
            Component::Normal(s) => parts.push(s),
            _ => {}
        }
    }
    let mut s = String::new();
    for p in parts {
        s.push('/');
        s.push_str(&p.to_string_lossy());
    }
    if s.is_empty() {
        s.push('/');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_path_entries_are_made_absolute() {
        let out = nix_path(&[
            "nixpkgs=/a/../b".into(),
            "/x/./y".into(),
            "https://example.org/x.tar.gz".into(),
            "n=channel:nixos-24.05".into(),
        ])
        .expect("invariant: valid entries");
        assert_eq!(
            out,
            [
                "nixpkgs=/b",
                "/x/y",
                "https://example.org/x.tar.gz",
                "n=channel:nixos-24.05"
            ]
        );
    }

    #[test]
    fn templates_become_search_path_files() {
        let out =
            network_files(&["<net.nix>".into()], &["virtualbox".into()]).expect("invariant: valid");
        assert_eq!(out, ["<net.nix>", "<nixops/templates/virtualbox.nix>"]);
        assert!(network_files(&[], &[]).is_err());
    }
}
