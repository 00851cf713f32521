//! The `nixops` command line: parse, resolve settings once, run one subcommand,
//! print its error once.

// The binary is where printing and exit codes belong.
#![allow(clippy::print_stderr, clippy::print_stdout, clippy::exit)]

mod cli;
mod commands;
mod env_vars;
mod error;
mod render;
mod settings;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::CliResult;
use crate::settings::Settings;

/// The version `nixops --version` prints.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let cli = Cli::from_env();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            if let Some(detail) = &err.detail {
                eprintln!("{}", detail.trim_end());
            }
            eprintln!("error: {}", err.message);
            if let Some(hint) = &err.hint {
                eprintln!("hint: {hint}");
            }
            ExitCode::from(err.code)
        }
    }
}

fn run(command: Command) -> CliResult {
    init_tracing(command.common().debug);
    let settings = Settings::resolve(command.common())?;
    use commands as c;
    match &command {
        Command::List(a) => c::list::run(a, &settings),
        Command::Create(a) => c::create::run(a, &settings),
        Command::Modify(a) => c::modify::run(a, &settings),
        Command::Clone(a) => c::clone::run(a, &settings),
        Command::Delete(a) => c::delete::run(a, &settings),
        Command::Info(a) => c::info::run(a, &settings),
        Command::SetArgs(a) => c::set_args::run(a, &settings),
        Command::Rename(a) => c::rename::run(a, &settings),
        Command::Export(a) => c::export::run(a, &settings),
        Command::Import(a) => c::import::run(a, &settings),
        Command::Edit(a) => c::edit::run(a, &settings),
        Command::Deploy(a) => c::deploy::run(a, &settings),
        Command::Rollback(a) => c::rollback::run(a, &settings),
        Command::ListGenerations(a) => c::list_generations::run(a, &settings),
        Command::DeleteGeneration(a) => c::delete_generation::run(a, &settings),
        Command::ShowPhysical(a) => c::show_physical::run(a, &settings),
        Command::ShowOption(a) => c::show_option::run(a, &settings),
        Command::ShowArguments(a) => c::show_arguments::run(a, &settings),
        Command::DumpNixPaths(a) => c::dump_nix_paths::run(a, &settings),
        Command::SendKeys(a) => c::send_keys::run(a, &settings),
        Command::Reboot(a) => c::reboot::run(a, &settings),
        Command::Destroy(a) => c::destroy::run(a, &settings),
        Command::Stop(a) => c::stop::run(a, &settings),
        Command::Start(a) => c::start::run(a, &settings),
        Command::ShowConsoleOutput(a) => c::show_console_output::run(a, &settings),
        Command::Backup(a) => c::backup::run(a, &settings),
        Command::Restore(a) => c::restore::run(a, &settings),
        Command::BackupStatus(a) => c::backup_status::run(a, &settings),
        Command::RemoveBackup(a) => c::remove_backup::run(a, &settings),
        Command::CleanBackups(a) => c::clean_backups::run(a, &settings),
        Command::Mount(a) => c::mount::run(a, &settings),
        Command::Check(a) => c::check::run(a, &settings),
        Command::Ssh(a) => c::ssh::run(a, &settings),
        Command::SshForEach(a) => c::ssh_for_each::run(a, &settings),
        Command::Scp(a) => c::scp::run(a, &settings),
    }
}

/// Debug logs of the library go to stderr with `--debug` or `RUST_LOG`; warnings
/// always do, as `warning: ...` lines.
fn init_tracing(debug: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = match env_vars::get(env_vars::RUST_LOG) {
        Some(f) => EnvFilter::new(f.to_string_lossy()),
        None if debug => EnvFilter::new("debug"),
        None => EnvFilter::new("warn"),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .event_format(render::trace::PlainFormat)
        .init();
}
