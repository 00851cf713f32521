//! What the operations tests share: the network they deploy, and the masking
//! of table cells that change all the time. The environment they run in is
//! `nixops_testkit::env::NetEnv`.

use nixops_testkit::env::NetEnv;

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

/// Create deployment `name` of [`NETWORK`] on the environment's hosts and
/// deploy it; panics unless both succeed.
pub fn create_and_deploy(env: &NetEnv, name: &str) {
    let network = env.write("network.nix", NETWORK);
    env.create_as(name, &[&network, &env.path("hosts.nix")])
        .ok();
    env.deploy(&[]).0.ok();
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
