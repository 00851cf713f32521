//! `OpsEnv`: test hosts (`nixops_testkit::Network`) plus the `nixops` binary run in
//! a cleared environment against them: its own HOME and state file, the network's
//! ssh-agent, the mini NixOS as `<nixpkgs>`, and Nix told never to reach a cache.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nixops_testkit::{prerequisites, Network, TestHost};

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A network of operations tests: three machines like `examples/network.nix`
/// (two web servers and a proxy), a function of two arguments so that tests can
/// change a machine without editing files: `message` (web1's page) and `failing`
/// (units of web2 that fail to start).
pub const NETWORK: &str = r#"{ message ? "hello", failing ? [ ] }:
{
  network.description = "Operations test network";
  network.enableRollback = true;

  defaults = { config, ... }: {
    services.openssh.enable = true;
    environment.etc."motd".text = "This is ${config.networking.hostName}\n";
  };

  web1 = { ... }: {
    services.toyweb = { enable = true; message = "web1 says ${message}"; };
  };

  web2 = { ... }: {
    services.toyweb = { enable = true; message = "web2"; };
    test.failingUnits = failing;
  };

  proxy = { nodes, ... }: {
    services.toyweb = {
      enable = true;
      message = "proxy for ${nodes.web1.config.networking.hostName}";
    };
  };
}
"#;

pub struct OpsEnv {
    pub net: Network,
    pub dir: tempfile::TempDir,
    agent: PathBuf,
}

/// The result of one run: exit code, stdout, stderr.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn render(&self) -> String {
        format!(
            "exit: {}\n----- stdout -----\n{}----- stderr -----\n{}",
            self.code, self.stdout, self.stderr
        )
    }

    pub fn ok(self) -> Self {
        assert_eq!(self.code, 0, "command failed:\n{}", self.render());
        self
    }
}

impl OpsEnv {
    /// Test hosts named `names`, or `None` (skip) when this machine cannot run
    /// them and we are not in CI. In CI a missing prerequisite fails the test.
    #[allow(clippy::print_stderr)] // the skip reason must be visible in the test output
    pub fn new(test: &str, names: &[&str]) -> Option<OpsEnv> {
        let missing = prerequisites().err().map(|e| e.to_string()).or_else(|| {
            let nix = Command::new("nix-build").arg("--version").output();
            (!nix.is_ok_and(|o| o.status.success()))
                .then(|| "‘nix-build’ is not installed".to_owned())
        });
        if let Some(reason) = missing {
            if std::env::var_os("CI").is_some() {
                panic!("{test}: {reason}");
            }
            eprintln!("skipping {test}: {reason}");
            return None;
        }
        let mut net = Network::new().expect("creating a test network");
        net.add_named_hosts(names).expect("adding test hosts");
        let agent = net.ssh_agent().expect("starting the ssh agent");
        let dir = tempfile::Builder::new()
            .prefix("nixops-ops-")
            .tempdir()
            .expect("creating a temporary directory");
        std::fs::create_dir_all(dir.path().join("home")).expect("creating HOME");
        Some(OpsEnv { net, dir, agent })
    }

    pub fn host(&self, name: &str) -> &TestHost {
        self.net.host(name).expect("a host of this network")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, contents: &[u8]) -> PathBuf {
        let p = self.path(rel);
        std::fs::write(&p, contents).expect("writing a test file");
        p
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nixops"));
        cmd.args(args)
            .env_clear()
            .env("HOME", self.path("home"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("NO_COLOR", "1")
            .env("NIXOPS_STATE", self.path("state.nixops"))
            .env("SSH_AUTH_SOCK", &self.agent)
            .current_dir(self.dir.path())
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        to_run(
            self.command(args)
                .output()
                .expect("running the nixops binary"),
        )
    }

    /// Create deployment `name` of [`NETWORK`] on this network's hosts and deploy
    /// it.
    pub fn create_and_deploy(&self, name: &str) {
        let network = self.write("network.nix", NETWORK.as_bytes());
        let mut hosts = String::from("{\n");
        for h in self.net.hosts() {
            hosts.push_str(&format!(
                "  {} = {{ deployment.targetHost = \"{}\"; }};\n",
                h.name(),
                h.ip()
            ));
        }
        hosts.push_str("}\n");
        let hosts = self.write("hosts.nix", hosts.as_bytes());
        let nixpkgs = format!(
            "nixpkgs={}",
            repo().join("tests/fixtures/mini-nixpkgs").display()
        );
        self.run(&[
            "create",
            &network.to_string_lossy(),
            &hosts.to_string_lossy(),
            "-d",
            name,
            "-I",
            &nixpkgs,
        ])
        .ok();
        self.deploy(&[]).ok();
    }

    /// `nixops deploy` with Nix kept off any binary cache, plus `extra` options.
    pub fn deploy(&self, extra: &[&str]) -> Run {
        let mut args = vec![
            "deploy",
            "--option",
            "substituters",
            "",
            "--option",
            "build-users-group",
            "",
        ];
        args.extend(extra);
        self.run(&args)
    }

    /// Replace temp paths, host addresses and UUIDs by placeholders.
    pub fn filters(&self) -> Vec<(String, String)> {
        let mut f = vec![(
            regex_escape(&self.dir.path().to_string_lossy()),
            "[TMP]".to_owned(),
        )];
        for h in self.net.hosts() {
            f.push((
                format!(r"\b{}\b", regex_escape(&h.ip().to_string())),
                format!("[IP-{}]", h.name()),
            ));
        }
        f.push((
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}".to_owned(),
            "[UUID]".to_owned(),
        ));
        f
    }
}

fn to_run(out: Output) -> Run {
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn regex_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Replace every cell of the column headed `header` in the text tables of `text`
/// by `mask` (empty cells stay empty), re-padding the column, so that a snapshot
/// does not depend on values like load averages.
pub fn mask_column(text: &str, header: &str, mask: &str) -> String {
    let width = header.chars().count().max(mask.chars().count());
    let lines: Vec<&str> = text.lines().collect();
    let mut column: Option<usize> = None;
    let mut out = String::new();
    for (n, line) in lines.iter().enumerate() {
        let is_border = line.starts_with('+');
        let is_row = line.starts_with('|');
        if !is_border && !is_row {
            column = None;
            out.push_str(line);
            out.push('\n');
            continue;
        }
        // A table starts with a border followed by its header row.
        if is_border && column.is_none() {
            column = lines
                .get(n + 1)
                .and_then(|h| h.split('|').position(|c| c.trim() == header));
        }
        let sep = if is_border { '+' } else { '|' };
        let mut cells: Vec<String> = line.split(sep).map(str::to_owned).collect();
        if let Some(i) = column.filter(|i| *i < cells.len()) {
            cells[i] = if is_border {
                "-".repeat(width + 2)
            } else {
                let value = cells[i].trim();
                let shown = if value == header {
                    header
                } else if value.is_empty() {
                    ""
                } else {
                    mask
                };
                format!(" {shown:<width$} ")
            };
        }
        out.push_str(&cells.join(&sep.to_string()));
        out.push('\n');
    }
    out
}

/// Snapshot a run with the environment's filters.
#[macro_export]
macro_rules! snap {
    ($env:expr, $text:expr) => {{
        let filters = $env.filters();
        let filters: Vec<(&str, &str)> = filters
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        insta::with_settings!({filters => filters}, {
            insta::assert_snapshot!($text);
        });
    }};
}

#[test]
fn mask_column_repads_the_column() {
    let table = "\
+------+----------------+---+
| Name | Load avg.      | U |
+------+----------------+---+
| web1 | 0.10 0.20 0.30 |   |
| web2 |                | x |
+------+----------------+---+
";
    assert_eq!(
        mask_column(table, "Load avg.", "[LOAD]"),
        "\
+------+-----------+---+
| Name | Load avg. | U |
+------+-----------+---+
| web1 | [LOAD]    |   |
| web2 |           | x |
+------+-----------+---+
"
    );
}
