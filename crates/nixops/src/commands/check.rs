//! `nixops check`: probe every machine and report what is wrong, as two tables
//! (or JSON) on stdout; the exit status is the OR of the machines' problem bits.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
#[command(after_help = EXIT_STATUS_HELP)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// check all deployments
    #[arg(long)]
    pub all: bool,

    /// check only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// check all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// print the results as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,

    /// forget the pinned SSH host key of these machines first, e.g. after a
    /// reinstall; the check pins the key they present now (an addition to NixOps)
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub forget_host_key: Vec<String>,
}

/// The exit status, as `--help` explains it.
const EXIT_STATUS_HELP: &str = "\
Exit status: the bitwise OR over the checked machines of
   1  the machine does not exist
   2  the machine is not up
   4  the machine is not reachable over SSH
   8  a disk is not OK
  16  some systemd units failed
  32  not up to date: the deployment's last build is not deployed to it, or it
      runs another system than the one deployed (not in NixOps)";

use std::io::IsTerminal;
use std::process::ExitCode;

use nixops_core::check::{self, CheckOptions, CheckReport, CheckResult};

use crate::error::{CliError, CliResult};
use crate::render::table::{Align, Table};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let mut depls = settings.select_many(&state, args.all)?;
    if !args.forget_host_key.is_empty() {
        forget_host_keys(&state, &depls, &args.forget_host_key)?;
        depls = settings.select_many(&state, args.all)?;
    }
    let opts = CheckOptions {
        include: args.include.clone(),
        exclude: args.exclude.clone(),
        ..CheckOptions::default()
    };
    let report = check::check(&state, &depls, &opts).map_err(|e| CliError::new(e.to_string()))?;
    if args.json {
        let value = serde_json::to_value(&report).expect("invariant: the report serialises");
        println!("{value:#}");
    } else {
        let colour = std::io::stdout().is_terminal()
            && crate::env_vars::get(crate::env_vars::NO_COLOR).is_none();
        print!("{}", render(&report, args.all, colour));
    }
    Ok(ExitCode::from(report.status()))
}

/// Remove the pinned host keys of `machines` (each must be a machine of one of
/// `depls`).
fn forget_host_keys(
    state: &nixops_core::state::StateFile,
    depls: &[nixops_core::state::DeploymentRecord],
    machines: &[String],
) -> Result<(), CliError> {
    for name in machines {
        let records: Vec<_> = depls
            .iter()
            .filter_map(|d| d.resource(name))
            .filter(|r| nixops_core::backend::is_machine_type(&r.type_))
            .collect();
        if records.is_empty() {
            return Err(CliError::new(format!("unknown machine ‘{name}’")));
        }
        for r in records {
            state.set_resource_attrs(r.id, &[(nixops_core::deploy::HOST_KEY_ATTR, None)])?;
        }
    }
    Ok(())
}

/// NixOps' colours, used only on a terminal.
struct Paint(bool);

impl Paint {
    fn code(&self, code: &str, text: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
    fn success(&self, text: &str) -> String {
        self.code("1;32", text)
    }
    fn warn(&self, text: &str) -> String {
        self.code("1;33", text)
    }
    fn highlight(&self, text: &str) -> String {
        self.code("1;35", text)
    }
    fn tristate(&self, value: Option<bool>) -> String {
        match value {
            None => "N/A".to_owned(),
            Some(true) => self.success("Yes"),
            Some(false) => self.warn("No"),
        }
    }
}

/// Both tables, each after its green title, as NixOps prints them.
fn render(report: &CheckReport, all: bool, colour: bool) -> String {
    let p = Paint(colour);
    let mut columns = vec![
        ("Name", Align::Left),
        ("Exists", Align::Left),
        ("Up", Align::Left),
        ("Reachable", Align::Left),
        ("Disks OK", Align::Left),
        ("Load avg.", Align::Left),
        ("Units", Align::Left),
        ("Notes", Align::Left),
    ];
    if all {
        columns.insert(0, ("Deployment", Align::Left));
    }
    let mut machines = Table::new(&columns);
    for m in &report.machines {
        let mut row = Vec::with_capacity(columns.len());
        if all {
            row.push(m.deployment.clone());
        }
        row.push(m.name.clone());
        row.extend(machine_cells(&m.result, &p));
        machines.push(row);
    }
    let mut columns = vec![("Name", Align::Left), ("Exists", Align::Left)];
    if all {
        columns.insert(0, ("Deployment", Align::Left));
    }
    let mut resources = Table::new(&columns);
    for r in &report.resources {
        let mut row = Vec::with_capacity(columns.len());
        if all {
            row.push(r.deployment.clone());
        }
        row.push(r.name.clone());
        row.push(p.tristate(Some(r.exists)));
        resources.push(row);
    }
    format!(
        "{}\n{}\n{}\n{}\n",
        p.success("Machines state:"),
        machines.render(),
        p.success("Non machines resources state:"),
        resources.render()
    )
}

/// Exists, Up, Reachable, Disks OK, Load avg., Units, Notes.
fn machine_cells(r: &CheckResult, p: &Paint) -> [String; 7] {
    let mut units: Vec<String> = Vec::new();
    for u in r.failed_units.iter().flatten() {
        units.push(p.warn(&format!("{u} [failed]")));
    }
    for u in &r.in_progress_units {
        units.push(p.highlight(&format!("{u} [running]")));
    }
    let notes: Vec<String> = r.notes.iter().map(|n| p.warn(n)).collect();
    [
        p.tristate(r.exists),
        p.tristate(r.up),
        p.tristate(r.reachable),
        p.tristate(r.disks_ok),
        r.load.as_ref().map(|l| l.join(" ")).unwrap_or_default(),
        units.join("\n"),
        notes.join("\n"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixops_core::check::{MachineCheck, ResourceCheck};

    #[test]
    fn tables_in_nixops_layout() {
        let result = CheckResult {
            exists: Some(true),
            up: Some(true),
            reachable: Some(true),
            load: Some(vec!["0.10".into(), "0.20".into(), "0.30".into()]),
            failed_units: Some(vec!["foo.service".into()]),
            in_progress_units: vec!["bar.service".into()],
            up_to_date: Some(false),
            notes: vec![check::note::BUILD_NOT_DEPLOYED.into()],
            ..CheckResult::default()
        };
        let report = CheckReport {
            machines: vec![MachineCheck {
                deployment: "d".into(),
                name: "web1".into(),
                type_: "none".into(),
                status: result.status(),
                result,
            }],
            resources: vec![ResourceCheck {
                deployment: "d".into(),
                name: "key".into(),
                type_: "ssh-keypair".into(),
                exists: false,
            }],
        };
        let expected = "\
Machines state:
+------+--------+-----+-----------+----------+----------------+-----------------------+-----------------------------------------+
| Name | Exists | Up  | Reachable | Disks OK | Load avg.      | Units                 | Notes                                   |
+------+--------+-----+-----------+----------+----------------+-----------------------+-----------------------------------------+
| web1 | Yes    | Yes | Yes       | N/A      | 0.10 0.20 0.30 | foo.service [failed]  | not up to date: last build not deployed |
|      |        |     |           |          |                | bar.service [running] |                                         |
+------+--------+-----+-----------+----------+----------------+-----------------------+-----------------------------------------+

Non machines resources state:
+------+--------+
| Name | Exists |
+------+--------+
| key  | No     |
+------+--------+

";
        assert_eq!(render(&report, false, false), expected);
        assert_eq!(report.status(), 16 | 32);
        let coloured = render(&report, true, true);
        assert!(coloured.starts_with("\x1b[1;32mMachines state:\x1b[0m\n"));
        assert!(coloured.contains("| d          | web1 | \x1b[1;32mYes\x1b[0m    |"));
    }
}
