//! `nixops destroy`: destroy the deployment's resources.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// destroy only the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// destroy all except the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// securely wipe data on the machines
    #[arg(long)]
    pub wipe: bool,

    /// destroy all deployments
    #[arg(long)]
    pub all: bool,
}

use std::io::{BufRead, Write};
use std::process::ExitCode;

use nixops_core::destroy;
use nixops_core::generations::{self, Profile};

use super::machines::{describe, renderer, temp_dir};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let state = settings.open_state()?;
    let depls = settings.select_many(&state, args.all)?;
    for depl in &depls {
        let _lock = settings.lock(depl, "destroy")?;
        // What the state says now that nobody else changes it.
        let depl = state.load(&depl.uuid)?;
        let selected = destroy::select(&depl, &args.include, &args.exclude);
        if selected.is_empty() {
            continue;
        }
        let all_machines = selected
            .iter()
            .all(|r| nixops_core::backend::is_machine_type(&r.type_));
        let kind = if all_machines { "machine" } else { "resource" };
        let names: Vec<String> = selected.iter().map(|r| format!("‘{}’", r.name)).collect();
        let question = if names.len() == 1 {
            format!("are you sure you want to destroy {kind} {}?", names[0])
        } else {
            format!(
                "are you sure you want to destroy {kind}s {}?",
                names.join(", ")
            )
        };
        if !confirm(&question, settings.confirm)? {
            continue;
        }
        let renderer = renderer(&depl, settings);
        let summary = destroy::destroy(&state, &selected, &renderer)
            .map_err(|e| CliError::new(describe(&e)))?;
        if depl.rollback_enabled() && !summary.destroyed.is_empty() {
            let depl = state.load(&depl.uuid)?;
            let mut nix_path = settings.nix.include_paths.clone();
            nix_path.extend(depl.nix_path()?);
            let profile = Profile::new(
                std::path::Path::new(generations::PROFILES_DIR),
                &generations::user_name(),
                &depl.uuid,
            );
            let tmp = temp_dir()?;
            destroy::update_profile(
                &profile,
                &destroy::remaining_machines(&depl),
                &nix_path,
                &settings.nix.flags,
                tmp.path(),
            )
            .map_err(|e| CliError::new(describe(&e)))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// NixOps' confirmation: `warning: <question> (y/N) ` on stderr, an answer line
/// on stdin; `y` is yes, `n`, an empty line or end of input is no, anything else
/// asks again. With `--confirm` the answer is yes without asking.
pub(crate) fn confirm(question: &str, auto_yes: bool) -> Result<bool, CliError> {
    let mut stderr = std::io::stderr();
    let stdin = std::io::stdin();
    loop {
        let _ = write!(stderr, "warning: {question} (y/N) ");
        if auto_yes {
            let _ = writeln!(stderr, "y");
            return Ok(true);
        }
        let _ = stderr.flush();
        let mut line = String::new();
        let read = stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::new(format!("cannot read the answer: {e}")))?;
        if read == 0 {
            let _ = writeln!(stderr);
            return Ok(false);
        }
        match line.trim_end().to_lowercase().as_str() {
            "y" => return Ok(true),
            "n" | "" => return Ok(false),
            _ => {}
        }
    }
}
