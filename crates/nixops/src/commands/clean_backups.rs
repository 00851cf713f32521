//! `nixops clean-backups`: remove old backups.

use crate::cli::CommonArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// number of backups to keep around
    #[arg(long, value_name = "KEEP")]
    pub keep: Option<u32>,

    /// keep backups newer than N days
    #[arg(long, value_name = "N")]
    pub keep_days: Option<u32>,

    /// do not remove the physical backups, only remove backups from nixops state
    #[arg(long)]
    pub keep_physical: bool,
}

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nixops_core::exec::Cmd;

use super::machines::{active_machines, refuse};
use crate::error::{CliError, CliResult};
use crate::settings::Settings;

pub fn run(args: &Args, settings: &Settings) -> CliResult {
    let keep = args.keep.filter(|&n| n > 0);
    let keep_days = args.keep_days.filter(|&n| n > 0);
    match (keep, keep_days) {
        (Some(_), Some(_)) => {
            return Err(CliError::new(
                "Combining of --keep and --keep-days arguments are not possible, please use one.",
            ))
        }
        (None, None) => {
            return Err(CliError::new(
                "Please specify at least --keep or --keep-days arguments.",
            ))
        }
        _ => {}
    }
    let state = settings.open_state()?;
    let depl = settings.select(&state)?;
    let machines = active_machines(&depl, &[], &[]);
    let other: Vec<_> = machines.into_iter().filter(|m| m.type_ != "none").collect();
    if !other.is_empty() {
        return refuse(&other, "clean the backups of", "");
    }
    if let Some(days) = keep_days {
        // NixOps prints the cutoff, a local time like the backup IDs.
        let cutoff = SystemTime::now()
            .checked_sub(Duration::from_secs(u64::from(days) * 86_400))
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let out = Cmd::new("date")
            .arg("-d")
            .arg(format!("@{cutoff}"))
            .arg("+%Y%m%d%H%M%S")
            .output()?;
        println!("{}", out.stdout_text());
    }
    // `none` machines have no backups: there is nothing to remove.
    Ok(ExitCode::SUCCESS)
}
