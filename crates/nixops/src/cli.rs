//! The command line: the top-level parser and the options every subcommand shares.
//!
//! NixOps defines all options on each subcommand, so they come after its name
//! (`nixops deploy -d foo`). Unambiguous prefixes of long options are accepted, as
//! argparse does (`--inc` for `--include`).

use std::ffi::OsString;

use clap::{Args, Parser, Subcommand};

use crate::commands;

/// NixOS cloud deployment tool
#[derive(Debug, Parser)]
#[command(
    name = "nixops",
    display_name = "NixOps",
    version = crate::VERSION,
    disable_version_flag = true,
    infer_long_args = true,
    subcommand_required = true,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    /// show program's version number and exit
    #[arg(long, action = clap::ArgAction::Version)]
    version: Option<bool>,

    #[command(subcommand)]
    pub command: Command,
}

/// Options that NixOps adds to every subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// path to state file
    #[arg(long = "state", short = 's', value_name = "FILE")]
    pub state_file: Option<std::path::PathBuf>,

    /// UUID or symbolic name of the deployment
    #[arg(long, short = 'd', value_name = "UUID_OR_NAME")]
    pub deployment: Option<String>,

    /// enable debug output
    #[arg(long)]
    pub debug: bool,

    /// confirm dangerous operations; do not ask
    #[arg(long)]
    pub confirm: bool,

    /// append a directory to the Nix search path
    #[arg(short = 'I', value_name = "PATH", action = clap::ArgAction::Append)]
    pub nix_path: Vec<String>,

    /// set maximum number of concurrent Nix builds
    #[arg(long, short = 'j', value_name = "N")]
    pub max_jobs: Option<u32>,

    /// sets the value of the NIX_BUILD_CORES environment variable in the invocation of builders
    #[arg(long, value_name = "N")]
    pub cores: Option<u32>,

    /// keep going after failed builds
    #[arg(long)]
    pub keep_going: bool,

    /// keep temporary directories of failed builds
    #[arg(long, short = 'K')]
    pub keep_failed: bool,

    /// print a Nix stack trace if evaluation fails
    #[arg(long)]
    pub show_trace: bool,

    /// fall back on installation from source
    #[arg(long)]
    pub fallback: bool,

    /// suppress output written by builders
    #[arg(long)]
    pub no_build_output: bool,

    /// set a Nix option
    #[arg(long = "option", num_args = 2, value_names = ["NAME", "VALUE"], action = clap::ArgAction::Append)]
    pub nix_options: Vec<String>,

    /// run Nix evaluations in read-only mode
    #[arg(long)]
    pub read_only_mode: bool,
}

/// The options NixOps shares between `deploy`, `rollback` and a few others.
#[derive(Debug, Clone, Args)]
pub struct DeploymentOptions {
    /// perform deployment actions on the specified machines only
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub include: Vec<String>,

    /// do not perform deployment actions on the specified machines
    #[arg(long, num_args = 1.., value_name = "MACHINE-NAME")]
    pub exclude: Vec<String>,

    /// do not assume that the recorded state is correct
    #[arg(long)]
    pub check: bool,

    /// reboot machines if necessary
    #[arg(long)]
    pub allow_reboot: bool,

    /// reboot machines unconditionally
    #[arg(long)]
    pub force_reboot: bool,

    /// maximum number of concurrent nix-copy-closure processes
    #[arg(
        long,
        value_name = "N",
        default_value_t = 5,
        allow_negative_numbers = true
    )]
    pub max_concurrent_copy: i64,

    /// maximum number of concurrent machine activations
    #[arg(long, value_name = "N", default_value_t = -1, allow_negative_numbers = true)]
    pub max_concurrent_activate: i64,

    /// do not flush buffers to disk
    #[arg(long)]
    pub no_sync: bool,
}

macro_rules! subcommands {
    ($( $(#[$doc:meta])* $variant:ident($module:ident) = $name:literal, )*) => {
        #[derive(Debug, Subcommand)]
        pub enum Command {
            $(
                $(#[$doc])*
                #[command(name = $name)]
                $variant(commands::$module::Args),
            )*
        }

        impl Command {
            /// The options every subcommand has.
            pub fn common(&self) -> &CommonArgs {
                match self {
                    $( Command::$variant(args) => &args.common, )*
                }
            }

            /// Subcommand `name` parsed from `args` (its options) by a parser of
            /// that subcommand alone; `None` when `name` is not one, or on any
            /// error or request for help, which the whole parser then reports.
            fn parse_alone(name: &str, args: &[OsString]) -> Option<Command> {
                match name {
                    $( $name => {
                        let parser = <commands::$module::Args as Args>::augment_args(
                            clap::Command::new($name),
                        )
                        .infer_long_args(true);
                        let mut matches = parser
                            .try_get_matches_from(std::iter::once(OsString::from($name)).chain(args.iter().cloned()))
                            .ok()?;
                        <commands::$module::Args as clap::FromArgMatches>::from_arg_matches_mut(&mut matches)
                            .ok()
                            .map(Command::$variant)
                    } )*
                    _ => None,
                }
            }
        }
    };
}

impl Cli {
    /// The command line of this process, parsed as [`Parser::parse`] would
    /// (exiting on errors and help requests). The whole parser describes all
    /// 33 subcommands, which takes longer to build than most commands take to
    /// run: a command line that names a subcommand first is parsed by a parser
    /// of that subcommand alone, and only what that one cannot take goes to the
    /// whole parser, which reports it.
    pub fn from_env() -> Cli {
        let argv: Vec<OsString> = std::env::args_os().collect();
        argv.get(1)
            .and_then(|name| name.to_str())
            .and_then(|name| Command::parse_alone(name, &argv[2..]))
            .map_or_else(Cli::parse, |command| Cli {
                version: None,
                command,
            })
    }
}

subcommands! {
    /// list all known deployments
    List(list) = "list",
    /// create a new deployment
    Create(create) = "create",
    /// modify an existing deployment
    Modify(modify) = "modify",
    /// clone an existing deployment
    Clone(clone) = "clone",
    /// delete a deployment
    Delete(delete) = "delete",
    /// show the state of the deployment
    Info(info) = "info",
    /// check the state of the machines in the network (note that this might alter the internal nixops state to consolidate with the real state of the resource)
    Check(check) = "check",
    /// persistently set arguments to the deployment specification
    SetArgs(set_args) = "set-args",
    /// deploy the network configuration
    Deploy(deploy) = "deploy",
    /// send encryption keys
    SendKeys(send_keys) = "send-keys",
    /// destroy all resources in the specified deployment
    Destroy(destroy) = "destroy",
    /// stop all virtual machines in the network
    Stop(stop) = "stop",
    /// start all virtual machines in the network
    Start(start) = "start",
    /// reboot all virtual machines in the network
    Reboot(reboot) = "reboot",
    /// print the arguments to the network expressions
    ShowArguments(show_arguments) = "show-arguments",
    /// print the physical network expression
    ShowPhysical(show_physical) = "show-physical",
    /// login on the specified machine via SSH
    Ssh(ssh) = "ssh",
    /// execute a command on each machine via SSH
    SshForEach(ssh_for_each) = "ssh-for-each",
    /// copy files to or from the specified machine via scp
    Scp(scp) = "scp",
    /// mount a directory from the specified machine into the local filesystem
    Mount(mount) = "mount",
    /// rename machine in network
    Rename(rename) = "rename",
    /// make snapshots of persistent disks in network (currently EC2-only)
    Backup(backup) = "backup",
    /// get status of backups
    BackupStatus(backup_status) = "backup-status",
    /// remove a given backup
    RemoveBackup(remove_backup) = "remove-backup",
    /// remove old backups
    CleanBackups(clean_backups) = "clean-backups",
    /// restore machines based on snapshots of persistent disks in network (currently EC2-only)
    Restore(restore) = "restore",
    /// print the value of a configuration option
    ShowOption(show_option) = "show-option",
    /// list previous configurations to which you can roll back
    ListGenerations(list_generations) = "list-generations",
    /// roll back to a previous configuration
    Rollback(rollback) = "rollback",
    /// remove a previous configuration
    DeleteGeneration(delete_generation) = "delete-generation",
    /// print the machine's console output on stdout
    ShowConsoleOutput(show_console_output) = "show-console-output",
    /// dump Nix paths referenced in deployments
    DumpNixPaths(dump_nix_paths) = "dump-nix-paths",
    /// export the state of a deployment
    Export(export) = "export",
    /// import deployments into the state file
    Import(import) = "import",
    /// open the deployment specification in $EDITOR
    Edit(edit) = "edit",
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn parser_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every subcommand, parsed alone, reads what the whole parser reads, and
    /// leaves to it what it refuses.
    #[test]
    fn a_subcommand_alone_parses_as_the_whole_parser() {
        let whole = Cli::command();
        let option_sets: &[&[&str]] = &[
            &[],
            &["-d", "net", "-s", "x.nixops"],
            &[
                "--deployment=net",
                "--stat",
                "x.nixops",
                "--debug",
                "--confirm",
            ],
            &["-I", "a", "-I", "b", "--option", "k", "v", "--show-trace"],
            &["--all", "--no-eval", "--json", "--plain", "--force"],
            &[
                "--include",
                "a",
                "b",
                "--exclude",
                "c",
                "--dry-run",
                "--copy-only",
            ],
            &["--max-concurrent-copy", "-1", "--build-only", "--check"],
            &["--arg", "x", "1", "--argstr", "y", "z", "--unset", "w"],
            &["machine", "--", "ls", "-l"],
            &["a.nix", "b.nix", "--name", "n"],
            &["--help"],
            &["-h"],
            &["--version"],
            &["--no-such-option"],
            &["--dry"],
        ];
        let mut alone = 0;
        for sub in whole.get_subcommands() {
            let name = sub.get_name();
            for options in option_sets {
                let args: Vec<OsString> = options.iter().map(OsString::from).collect();
                let full = Cli::try_parse_from(
                    ["nixops", name]
                        .iter()
                        .map(OsString::from)
                        .chain(args.iter().cloned()),
                );
                match Command::parse_alone(name, &args) {
                    Some(command) => {
                        alone += 1;
                        let full = full.unwrap_or_else(|e| {
                            panic!("{name} {options:?}: alone it parses, whole: {e}")
                        });
                        assert_eq!(
                            format!("{command:?}"),
                            format!("{:?}", full.command),
                            "{name} {options:?}"
                        );
                    }
                    None => assert!(
                        full.is_err(),
                        "{name} {options:?}: the whole parser takes what alone is refused"
                    ),
                }
            }
        }
        // Most of these are valid for some subcommand: the fast path is taken.
        assert!(alone >= 33, "{alone}");
        assert!(Command::parse_alone("no-such-command", &[]).is_none());
    }

    #[test]
    fn options_come_after_the_subcommand() {
        let cli = Cli::try_parse_from(["nixops", "info", "-d", "foo", "--no-eval"])
            .expect("invariant: valid command line");
        assert_eq!(cli.command.common().deployment.as_deref(), Some("foo"));
        let err = Cli::try_parse_from(["nixops", "-d", "foo", "info"])
            .expect_err("invariant: options before the subcommand are refused");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn long_option_prefixes_are_accepted() {
        let cli = Cli::try_parse_from(["nixops", "deploy", "--inc", "a", "b", "--dry-r"])
            .expect("invariant: unambiguous prefixes");
        let Command::Deploy(args) = cli.command else {
            panic!("expected deploy");
        };
        assert_eq!(args.opts.include, ["a", "b"]);
        assert!(args.dry_run);
        let err = Cli::try_parse_from(["nixops", "deploy", "--dry"])
            .expect_err("invariant: --dry is ambiguous");
        assert_eq!(err.exit_code(), 2);
    }

    #[test]
    fn option_takes_two_values() {
        let cli = Cli::try_parse_from([
            "nixops", "info", "--option", "a", "1", "--option", "b", "2", "-I", "x", "-I", "y",
        ])
        .expect("invariant: valid command line");
        let common = cli.command.common();
        assert_eq!(common.nix_options, ["a", "1", "b", "2"]);
        assert_eq!(common.nix_path, ["x", "y"]);
    }
}
