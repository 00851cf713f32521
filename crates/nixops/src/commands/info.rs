//! `nixops info`: the deployment's header and a table of its machines.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// show all deployments
    #[arg(long)]
    pub all: bool,

    /// do not pretty-print the output
    #[arg(long)]
    pub plain: bool,

    /// do not evaluate the deployment specification
    #[arg(long)]
    pub no_eval: bool,

    /// print the information as JSON (an addition to NixOps)
    #[arg(long)]
    pub json: bool,
}

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::process::ExitCode;

use nixops_core::backend::is_machine_type;
use nixops_core::generations::{self, Profile};
use nixops_core::names::{natural_cmp, natural_key, FnvBuild};
use nixops_core::state::{
    DeploymentRecord, ResourceRecord, ResourceState, ResourceView, StateSnapshot,
};

use crate::error::CliResult;
use crate::render::table::{self, Align, Cells};
use crate::settings::Settings;

/// What evaluation knows about a deployment's machines: their names and types.
/// `None` when the deployment was not evaluated (`--no-eval`, or it failed).
pub type Definitions = Option<Vec<(String, String)>>;

/// What the rows of a deployment show of it.
#[derive(Debug)]
struct DeplNames<'a> {
    uuid: &'a str,
    /// The deployment's name, or `(none)`.
    name: &'a str,
    /// The name, or else the UUID: the `Deployment` column.
    shown: &'a str,
}

impl<'a> DeplNames<'a> {
    fn of(depl: &'a DeploymentRecord) -> Self {
        DeplNames {
            uuid: &depl.uuid,
            name: depl.name().unwrap_or("(none)"),
            shown: depl.name_or_uuid(),
        }
    }
}

/// One row of the table, borrowing from the state and the definitions. Ten
/// thousand machines make ten thousand rows: what they share is behind `depl`.
#[derive(Debug, serde::Serialize)]
struct Row<'a> {
    #[serde(rename = "deployment", serialize_with = "shown_name")]
    depl: &'a DeplNames<'a>,
    name: &'a str,
    status: &'a str,
    #[serde(rename = "type")]
    type_: &'a str,
    resource_id: &'a str,
    public_ipv4: &'a str,
    private_ipv4: &'a str,
}

fn shown_name<S: serde::Serializer>(depl: &&DeplNames<'_>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(depl.shown)
}

/// The deployments to show, and where their resources come from.
enum Shown<'a> {
    /// `--all`: every deployment of a snapshot.
    All(&'a StateSnapshot),
    /// One deployment, read whole.
    One(&'a DeploymentRecord),
}

impl<'a> Shown<'a> {
    fn deployments(&self) -> &'a [DeploymentRecord] {
        match *self {
            Shown::All(snapshot) => snapshot.deployments(),
            Shown::One(depl) => std::slice::from_ref(depl),
        }
    }

    /// How many resources the `i`th deployment has.
    fn count(&self, i: usize) -> usize {
        match *self {
            Shown::All(snapshot) => snapshot.resources(i).len(),
            Shown::One(depl) => depl.resources.len(),
        }
    }

    /// The resources of the `i`th deployment, as a deployment's rows are made:
    /// one deployment's views at a time, in memory that is then reused.
    fn resources(&self, i: usize) -> Vec<ResourceView<'a>> {
        match *self {
            Shown::All(snapshot) => snapshot.resources(i).collect(),
            Shown::One(depl) => depl.resources.iter().map(ResourceRecord::view).collect(),
        }
    }
}

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let mut state = settings.open_state_for_reading()?;
    // The process ends after printing: its buffers are left to the exit.
    state.leave_memory_to_exit();
    if args.all {
        // Every machine of every deployment: read only what a row shows, and
        // leave it where it is in the file.
        return state.with_attrs(ROW_ATTRS, |snapshot| {
            show(args, settings, Shown::All(snapshot))
        })?;
    }
    let single = settings.select(&state)?;
    show(args, settings, Shown::One(&single))
}

/// Print the deployments of `shown`, each with its resources.
fn show(args: &Args, settings: &Settings, shown: Shown<'_>) -> CliResult {
    let depls = shown.deployments();
    let names: Vec<DeplNames<'_>> = depls.iter().map(DeplNames::of).collect();
    let defs: Vec<Definitions> = depls
        .iter()
        .map(|depl| {
            if args.no_eval {
                None
            } else {
                definitions(depl, settings)
            }
        })
        .collect();
    let texts = StatusTexts::new();
    let mut out = String::new();
    let mut json = Vec::new();
    let per_depl = all_rows(&shown, &names, &defs, &texts);
    for (depl, depl_rows) in depls.iter().zip(&per_depl) {
        if args.json {
            json.push(serde_json::json!({
                "uuid": depl.uuid,
                "name": depl.name(),
                "description": depl.description(),
                "nixExprs": depl.nix_exprs()?,
                "nixPath": depl.nix_path()?,
                "args": depl.args()?,
                "configsPath": depl.configs_path(),
                "machines": depl_rows,
            }));
        } else if !args.plain && !args.all {
            out.push_str(&header(depl)?);
        }
    }
    let rows = per_depl.iter().flatten();
    if args.json {
        let value = if args.all {
            serde_json::Value::Array(json)
        } else {
            json.pop().unwrap_or_default()
        };
        println!("{value:#}");
        return Ok(ExitCode::SUCCESS);
    }
    if args.plain {
        for r in rows {
            let mut fields: Vec<&str> = Vec::with_capacity(8);
            if args.all {
                fields.push(r.depl.uuid);
                fields.push(r.depl.name);
            }
            let status = r.status.to_lowercase();
            fields.extend([
                r.name,
                &status,
                r.type_,
                r.resource_id,
                r.public_ipv4,
                r.private_ipv4,
            ]);
            out.push_str(&fields.join("\t"));
            out.push('\n');
        }
        print!("{out}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut columns = vec![
        ("Name", Align::Left),
        ("Status", Align::Center),
        ("Type", Align::Left),
        ("Resource Id", Align::Left),
        ("IP address", Align::Left),
    ];
    if args.all {
        columns.insert(0, ("Deployment", Align::Left));
    }
    let cells = RowCells {
        rows: rows.collect(),
        first: if args.all { 0 } else { 1 },
    };
    // The header (if any), then the table in pieces: it can be megabytes.
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(out.as_bytes())?;
    let mut failed = None;
    table::write(&columns, &cells, |piece| {
        if failed.is_none() {
            failed = stdout.write_all(piece).err();
        }
    });
    if let Some(err) = failed {
        return Err(err.into());
    }
    stdout.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The table's cells, read from the rows as they are laid out.
struct RowCells<'r, 'a> {
    rows: Vec<&'r Row<'a>>,
    /// The first column shown: 0 with the deployment column (`--all`), else 1.
    first: usize,
}

impl Cells for RowCells<'_, '_> {
    fn rows(&self) -> usize {
        self.rows.len()
    }

    fn cell(&self, row: usize, column: usize) -> &str {
        let r = self.rows[row];
        match column + self.first {
            0 => r.depl.shown,
            1 => r.name,
            2 => r.status,
            3 => r.type_,
            4 => r.resource_id,
            _ if r.public_ipv4.is_empty() => r.private_ipv4,
            _ => r.public_ipv4,
        }
    }
}

/// Evaluate `depl` for the names and types of its machines; on failure warn, as
/// NixOps does, and go on with what the state knows.
fn definitions(depl: &DeploymentRecord, settings: &Settings) -> Definitions {
    let result = settings
        .evaluator(depl)
        .and_then(|ev| ev.info().map_err(crate::error::CliError::from));
    match result {
        Ok(info) => Some(
            info.machines
                .iter()
                .map(|(name, m)| (name.to_string(), m.target_env.clone()))
                .collect(),
        ),
        Err(err) => {
            if let Some(detail) = &err.detail {
                eprintln!("{}", detail.trim_end());
            }
            eprintln!(
                "warning: evaluation of the deployment specification failed; status info may be incorrect\n"
            );
            None
        }
    }
}

fn header(depl: &DeploymentRecord) -> Result<String, crate::error::CliError> {
    let mut h = format!(
        "Network name: {}\nNetwork UUID: {}\nNetwork description: {}\nNix expressions: {}\n",
        depl.name().unwrap_or("(none)"),
        depl.uuid,
        depl.description(),
        depl.nix_exprs()?.join(" "),
    );
    let nix_path = depl.nix_path()?;
    if !nix_path.is_empty() {
        let flags: Vec<String> = nix_path.iter().map(|p| format!("-I {p}")).collect();
        h.push_str(&format!("Nix path: {}\n", flags.join(" ")));
    }
    if depl.rollback_enabled() {
        let profile = Profile::new(
            std::path::Path::new(generations::PROFILES_DIR),
            &generations::user_name(),
            &depl.uuid,
        );
        h.push_str(&format!("Nix profile: {}\n", profile.path().display()));
    }
    let args = depl.args()?;
    if !args.is_empty() {
        let pairs: Vec<String> = args.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        h.push_str(&format!("Nix arguments: {}\n", pairs.join(", ")));
    }
    h.push('\n');
    Ok(h)
}

/// The resource attributes [`rows_of`] reads (through `state()`, `obsolete()`,
/// `configs_path()`, `vm_id()`, `public_ipv4()`, `private_ipv4()`); `--all` loads
/// only these. Keep in step with [`rows_of`] and [`status`].
const ROW_ATTRS: &[&str] = &[
    "state",
    "obsolete",
    "configsPath",
    "vmId",
    "publicIpv4",
    "privateIpv4",
];

/// The texts of the status column, made once: `state / config` for machines,
/// `state` alone for other resources.
struct StatusTexts {
    /// By state code, then by [`Config`] position.
    machine: Vec<[String; 4]>,
}

/// The configuration part of a machine's status.
#[derive(Clone, Copy)]
enum Config {
    Obsolete = 0,
    Revived = 1,
    Outdated = 2,
    UpToDate = 3,
}

const CONFIG_TEXTS: [&str; 4] = ["Obsolete", "Revived", "Outdated", "Up-to-date"];

impl StatusTexts {
    fn new() -> Self {
        let machine = (0..8)
            .map(|code| {
                let state = ResourceState::from_code(code).name();
                CONFIG_TEXTS.map(|config| format!("{state} / {config}"))
            })
            .collect();
        StatusTexts { machine }
    }
}

/// Tables with more machines than this are built on two threads.
const PARALLEL_ROWS: usize = 2000;

/// The rows of every deployment; with many machines, the deployments are split
/// over two threads.
fn all_rows<'a>(
    shown: &Shown<'a>,
    names: &'a [DeplNames<'a>],
    defs: &'a [Definitions],
    texts: &'a StatusTexts,
) -> Vec<Vec<Row<'a>>> {
    let depls = shown.deployments();
    let one = |i: usize| rows_of(&depls[i], &names[i], &shown.resources(i), &defs[i], texts);
    let counts: Vec<usize> = (0..depls.len()).map(|i| shown.count(i)).collect();
    let machines: usize = counts.iter().sum();
    if machines < PARALLEL_ROWS {
        return (0..depls.len()).map(one).collect();
    }
    // Split where half of the machines are on each side.
    let mut acc = 0;
    let mid = counts
        .iter()
        .position(|n| {
            acc += n;
            acc * 2 >= machines
        })
        .map_or(depls.len(), |i| i + 1);
    std::thread::scope(|s| {
        let one = &one;
        let second = s.spawn(move || (mid..depls.len()).map(one).collect::<Vec<_>>());
        let mut rows: Vec<_> = (0..mid).map(one).collect();
        rows.extend(
            second
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p)),
        );
        rows
    })
}

/// The rows of one deployment: every resource in state and every definition,
/// sorted by type, then name in natural order.
fn rows_of<'a>(
    depl: &'a DeploymentRecord,
    names_of_depl: &'a DeplNames<'a>,
    resources: &[ResourceView<'a>],
    defs: &'a Definitions,
    texts: &'a StatusTexts,
) -> Vec<Row<'a>> {
    let mut names: Vec<(&str, &str)> = resources.iter().map(|r| (r.type_, r.name)).collect();
    if let Some(defs) = defs {
        let in_state: HashSet<&str, FnvBuild> = resources.iter().map(|r| r.name).collect();
        for (name, type_) in defs {
            if !in_state.contains(name.as_str()) {
                names.push((type_, name));
            }
        }
    }
    // Resources are mostly in order already (by id, as they were created): check
    // that first, which allocates nothing.
    let in_order = |a: &(&str, &str), b: &(&str, &str)| {
        a.0.cmp(b.0).then_with(|| natural_cmp(a.1, b.1)) != std::cmp::Ordering::Greater
    };
    if !names.is_sorted_by(in_order) {
        names.sort_by_cached_key(|&(type_, name)| (type_, natural_key(name)));
    }
    // Look names up by hash, not by scanning: a deployment may have hundreds of
    // machines. The first resource of a name wins, as `DeploymentRecord::resource`.
    let mut by_name: HashMap<&str, &ResourceView<'a>, FnvBuild> =
        HashMap::with_capacity_and_hasher(resources.len(), FnvBuild::default());
    for r in resources {
        by_name.entry(r.name).or_insert(r);
    }
    let defined_names: Option<HashSet<&str, FnvBuild>> = defs
        .as_ref()
        .map(|d| d.iter().map(|(n, _)| n.as_str()).collect());
    let configs_path = depl.configs_path();
    names
        .into_iter()
        .map(|(type_, name)| {
            let res = by_name.get(name).copied();
            let defined = defined_names.as_ref().map(|d| d.contains(name));
            Row {
                depl: names_of_depl,
                name,
                status: status(configs_path, res, defined, texts),
                type_: res.map_or(type_, |r| r.type_),
                resource_id: res.and_then(|r| r.vm_id()).unwrap_or(""),
                public_ipv4: res.and_then(|r| r.public_ipv4()).unwrap_or(""),
                private_ipv4: res.and_then(|r| r.private_ipv4()).unwrap_or(""),
            }
        })
        .collect()
}

/// NixOps' status column (V1 rules). `defined` is `None` without evaluation.
/// `configs_path` is the deployment's.
fn status<'a>(
    configs_path: Option<&str>,
    res: Option<&ResourceView<'_>>,
    defined: Option<bool>,
    texts: &'a StatusTexts,
) -> &'a str {
    let Some(res) = res else {
        return "Missing";
    };
    let state = res.state();
    if !is_machine_type(res.type_) {
        return state.name();
    }
    let config = match (defined, res.obsolete()) {
        (Some(false), _) | (None, true) => Config::Obsolete,
        (Some(true), true) => Config::Revived,
        _ if configs_path != res.configs_path() => Config::Outdated,
        _ => Config::UpToDate,
    };
    let code = usize::try_from(state.code()).expect("invariant: state codes are 0..8");
    &texts.machine[code][config as usize]
}
