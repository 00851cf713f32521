//! `nixops-testkit`: bring test hosts up and down from the shell, for demos and
//! benchmarks. A thin layer over the library: every command is one call into
//! it, and the network lives on in `DIR/hosts.json` between invocations.

// This is a command-line front end: printing results and choosing the exit
// status is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use nixops_testkit::{cleanup_stale, Network, TestkitError};

/// Test hosts: network namespaces with their own /nix, /run, /etc and sshd.
#[derive(Parser)]
#[command(name = "nixops-testkit", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bring up a network of hosts that keeps running after this command exits.
    Up {
        /// Directory for the network's files (keys, hosts.json, host dirs).
        #[arg(long)]
        dir: PathBuf,
        /// Number of hosts (named host1, host2, ... unless --names is given).
        #[arg(long, default_value_t = 1)]
        hosts: usize,
        /// Comma-separated host names (overrides --hosts).
        #[arg(long, value_delimiter = ',')]
        names: Vec<String>,
        /// Also start a nix-daemon in every host.
        #[arg(long)]
        nix_daemon: bool,
    },
    /// Remove the network in DIR and everything it started.
    Down {
        #[arg(long)]
        dir: PathBuf,
    },
    /// Run a command inside a host (as root, in its namespaces).
    Exec {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Reboot a host: kill everything in it, fresh /run, activation, sshd.
    Reboot {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        /// Stay down this many seconds before booting.
        #[arg(long, default_value_t = 0.0)]
        down_secs: f64,
    },
    /// Power a host off (it stays unreachable until `start`).
    Stop {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// Boot a stopped host.
    Start {
        #[arg(long)]
        dir: PathBuf,
        host: String,
    },
    /// How long HOST stays down when rebooted from inside (`never`: for good).
    RebootDelay {
        #[arg(long)]
        dir: PathBuf,
        host: String,
        /// Seconds, or `never`.
        delay: String,
    },
    /// Remove leftovers of killed runs.
    Cleanup {
        /// Also remove networks left running by `up`.
        #[arg(long)]
        all: bool,
    },
}

fn run(cli: Cli) -> Result<ExitCode, TestkitError> {
    match cli.command {
        Command::Up {
            dir,
            hosts,
            names,
            nix_daemon,
        } => {
            let started = Instant::now();
            let mut net = Network::new_in(&dir)?;
            let added = if names.is_empty() {
                net.add_hosts(hosts)?
            } else {
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                net.add_named_hosts(&names)?
            };
            if nix_daemon {
                for h in &added {
                    h.start_nix_daemon()?;
                }
            }
            let agent = net.ssh_agent()?;
            let mut out = std::io::stdout().lock();
            for h in &added {
                let _ = writeln!(out, "{}\t{}", h.name(), h.ip());
            }
            let _ = writeln!(out, "client key:    {}", net.client_key_path().display());
            let _ = writeln!(out, "known hosts:   {}", net.known_hosts_path().display());
            let _ = writeln!(out, "SSH_AUTH_SOCK={}", agent.display());
            let _ = writeln!(
                out,
                "{} hosts up in {:.2} s; description in {}",
                added.len(),
                started.elapsed().as_secs_f64(),
                net.dir().join("hosts.json").display()
            );
            net.detach()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Down { dir } => {
            Network::open(&dir)?.teardown()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Exec { dir, host, command } => {
            let net = Network::open(&dir)?;
            let argv: Vec<&str> = command.iter().map(String::as_str).collect();
            let out = net.host(&host)?.exec_unchecked(&argv)?;
            let _ = std::io::stdout().write_all(&out.stdout);
            let _ = std::io::stderr().write_all(&out.stderr);
            let code = out.status.code().unwrap_or(1);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
        }
        Command::Reboot {
            dir,
            host,
            down_secs,
        } => {
            let net = Network::open(&dir)?;
            let h = net.host(&host)?;
            h.stop()?;
            std::thread::sleep(Duration::from_secs_f64(down_secs.max(0.0)));
            h.start()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Stop { dir, host } => {
            Network::open(&dir)?.host(&host)?.stop()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Start { dir, host } => {
            Network::open(&dir)?.host(&host)?.start()?;
            Ok(ExitCode::SUCCESS)
        }
        Command::RebootDelay { dir, host, delay } => {
            let down = if delay == "never" {
                None
            } else {
                let secs: f64 = delay.parse().map_err(|_| TestkitError::Host {
                    host: host.clone(),
                    reason: format!("invalid reboot delay ‘{delay}’ (seconds or ‘never’)"),
                })?;
                Some(Duration::from_secs_f64(secs.max(0.0)))
            };
            Network::open(&dir)?.host(&host)?.set_reboot_delay(down)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cleanup { all } => {
            for what in cleanup_stale(all)? {
                println!("removed {what}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            ExitCode::FAILURE
        }
    }
}
