//! `nixops ssh-for-each`: run a command on every active machine, one after the
//! other or all at once, its output prefixed with the machine's name.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Output lines are prefixed with the machine's name, on stderr. Exit status: the largest of the machines' statuses (255 for a machine that cannot be reached)."
)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// additional arguments to SSH
    #[arg(value_name = "ARG", allow_hyphen_values = true)]
    pub args: Vec<String>,

    /// run in parallel
    #[arg(long, short = 'p')]
    pub parallel: bool,

    /// run command only on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// run command on all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// run ssh-for-each for all deployments
    #[arg(long)]
    pub all: bool,
}

use nixops_core::backend::is_machine_type;
use nixops_core::events::{Event, Phase, Reporter, Status};
use nixops_core::names::natural_cmp;
use nixops_core::parallel;
use nixops_core::ssh::ssh_for_each_cmd;
use nixops_core::state::{ResourceRecord, StateFile};

use super::ssh::{connect, CONNECT_FAILED};
use crate::error::CliResult;
use crate::render::log::LogRenderer;
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depls = settings.select_many(&state, args.all)?;
    let mut machines: Vec<ResourceRecord> = Vec::new();
    // Prefixes are padded to the longest name of the deployments' resources, as
    // in deploy logs.
    let mut names: Vec<(i64, String)> = Vec::new();
    for depl in &depls {
        names.extend(
            depl.resources
                .iter()
                .map(|r| (r.index().unwrap_or(i64::MAX), r.name.clone())),
        );
        let mut active: Vec<ResourceRecord> = depl
            .resources
            .iter()
            .filter(|r| is_machine_type(&r.type_) && !r.obsolete())
            .filter(|r| selects(args, &r.name))
            .cloned()
            .collect();
        active.sort_by(|a, b| natural_cmp(&a.name, &b.name));
        machines.extend(active);
    }
    names.sort();
    let names: Vec<String> = names.into_iter().map(|(_, n)| n).collect();
    let renderer = LogRenderer::new(&names, settings.debug);
    let dir = super::machines::temp_dir()?;
    let state = std::sync::Mutex::new(state);
    let run_one =
        |record: ResourceRecord| run_on(&state, &record, &args.args, dir.path(), &renderer);
    let statuses: Vec<i32> = if args.parallel {
        parallel::for_each(machines, run_one)
    } else {
        machines.into_iter().map(run_one).collect()
    };
    let max = statuses.into_iter().max().unwrap_or(0);
    Ok(super::ssh::exit_code(max))
}

/// NixOps' `should_do`.
fn selects(args: &Args, name: &str) -> bool {
    !args.exclude.iter().any(|e| e == name)
        && (args.include.is_empty() || args.include.iter().any(|i| i == name))
}

/// Run the command on one machine, its output lines prefixed with the machine's
/// name; returns its exit status (255 when the machine cannot be reached).
fn run_on(
    state: &std::sync::Mutex<StateFile>,
    record: &ResourceRecord,
    user_args: &[String],
    dir: &std::path::Path,
    renderer: &LogRenderer,
) -> i32 {
    let fail = |message: String| {
        renderer
            .report(Event::new(Some(&record.name), Phase::Connect, Status::Failed).error(message));
        i32::from(CONNECT_FAILED)
    };
    // Connect without holding the state, so that machines connect in parallel.
    let session = match connect(record, dir) {
        Ok((session, updates)) => {
            let state = state.lock().unwrap_or_else(|e| e.into_inner());
            if !updates.is_empty() {
                if let Err(e) = state.set_resource_attrs(record.id, &updates) {
                    return fail(e.to_string());
                }
            }
            session
        }
        Err(e) => return fail(e.message),
    };
    let mut on_line = |_, line: &str| {
        renderer.report(Event::new(Some(&record.name), Phase::Connect, Status::Log).message(line));
    };
    match ssh_for_each_cmd(&session, user_args).run_streaming_unchecked(&mut on_line) {
        Ok(out) => out.code(),
        Err(e) => fail(e.to_string()),
    }
}
