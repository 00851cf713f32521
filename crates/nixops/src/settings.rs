//! Settings resolved once, before any command logic runs: the state file, the
//! deployment selector, and the flags passed on to Nix.

use std::ffi::OsString;
use std::path::PathBuf;

use nixops_core::state::{self as path, StateEnv};
use nixops_core::state::{StateError, StateFile};

use nixops_core::eval::NixFlags;

use crate::cli::CommonArgs;
use crate::env_vars;
use crate::error::CliError;

/// Flags passed to Nix, in NixOps' order.
#[derive(Clone, Debug, Default)]
pub struct NixSettings {
    /// `-I` entries given on the command line (they take precedence over the
    /// deployment's stored ones).
    pub include_paths: Vec<String>,
    /// `--option`, `--max-jobs`, `--cores`, `--keep-going`, ... for Nix.
    pub flags: NixFlags,
    /// `--read-only-mode` was given.
    pub read_only: bool,
}

/// Everything a command needs to know about its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub home: Option<OsString>,
    pub state_path: PathBuf,
    pub deployment: Option<String>,
    pub debug: bool,
    /// `--confirm`: answer yes to every question.
    pub confirm: bool,
    pub nix: NixSettings,
}

impl Settings {
    pub fn resolve(common: &CommonArgs) -> Result<Settings, CliError> {
        let env = StateEnv {
            home: env_vars::get(env_vars::HOME),
            nixops_state: env_vars::get(env_vars::NIXOPS_STATE),
            charon_state: env_vars::get(env_vars::CHARON_STATE),
        };
        let state_path = path::resolve_state_path(&env, common.state_file.as_deref())?;
        let deployment = common.deployment.clone().or_else(|| {
            env_vars::get(env_vars::NIXOPS_DEPLOYMENT)
                .or_else(|| env_vars::get(env_vars::CHARON_DEPLOYMENT))
                .map(|v| v.to_string_lossy().into_owned())
        });
        Ok(Settings {
            home: env.home,
            state_path,
            deployment,
            debug: common.debug,
            confirm: common.confirm,
            nix: nix_settings(common),
        })
    }

    /// Open (creating if needed) the state file, telling the user about migrations.
    pub fn open_state(&self) -> Result<StateFile, CliError> {
        self.open_state_with(StateFile::open)
    }

    /// Like [`Settings::open_state`], for commands that only read the state: an
    /// up-to-date file is opened without taking the write lock.
    pub fn open_state_for_reading(&self) -> Result<StateFile, CliError> {
        self.open_state_with(StateFile::open_for_reading)
    }

    fn open_state_with(
        &self,
        open: impl FnOnce(&std::path::Path) -> Result<StateFile, nixops_core::state::StateError>,
    ) -> Result<StateFile, CliError> {
        if self.uses_default_home() {
            if let path::HomePrepared::RenamedFromCharon { from, to } =
                path::prepare_nixops_home(self.home.as_ref())?
            {
                eprintln!("renaming ‘{}’ to ‘{}’...", from.display(), to.display());
            }
        }
        let state = open(&self.state_path)?;
        for (from, to) in state.migrated() {
            eprintln!("updating database schema from version {from} to {to}...");
        }
        Ok(state)
    }

    fn uses_default_home(&self) -> bool {
        self.state_path
            .starts_with(path::nixops_home(self.home.as_ref()))
    }

    /// The rollback profile of deployment `uuid`.
    pub fn profile(&self, uuid: &str) -> nixops_core::generations::Profile {
        use nixops_core::generations;
        generations::Profile::new(
            std::path::Path::new(generations::PROFILES_DIR),
            &generations::user_name(),
            uuid,
        )
    }

    /// The directory of deployment lock files.
    pub fn locks_dir(&self) -> PathBuf {
        path::locks_dir(self.home.as_ref())
    }
}

fn nix_settings(common: &CommonArgs) -> NixSettings {
    NixSettings {
        include_paths: common.nix_path.clone(),
        flags: NixFlags {
            options: common
                .nix_options
                .chunks(2)
                .map(|p| (p[0].clone(), p.get(1).cloned().unwrap_or_default()))
                .collect(),
            max_jobs: common.max_jobs.map(|n| n.to_string()),
            cores: common.cores,
            keep_going: common.keep_going,
            keep_failed: common.keep_failed,
            show_trace: common.show_trace,
            fallback: common.fallback,
            no_build_output: common.no_build_output,
        },
        read_only: common.read_only_mode,
    }
}

impl From<StateError> for CliError {
    fn from(err: StateError) -> Self {
        CliError::new(err.to_string())
    }
}

/// Helpers every command uses once the state file is open.
impl Settings {
    /// The deployment selected by `-d` / `NIXOPS_DEPLOYMENT` (or the only one).
    pub fn select(
        &self,
        state: &StateFile,
    ) -> Result<nixops_core::state::DeploymentRecord, CliError> {
        let uuid = state.find_deployment(self.deployment.as_deref())?;
        Ok(state.load(&uuid)?)
    }

    /// `--all`: every deployment; otherwise the selected one.
    pub fn select_many(
        &self,
        state: &StateFile,
        all: bool,
    ) -> Result<Vec<nixops_core::state::DeploymentRecord>, CliError> {
        if all {
            Ok(state.deployments()?)
        } else {
            Ok(vec![self.select(state)?])
        }
    }

    /// Take the deployment's lock for `command`, waiting (and saying so) if another
    /// nixops holds it.
    pub fn lock(
        &self,
        depl: &nixops_core::state::DeploymentRecord,
        command: &str,
    ) -> Result<nixops_core::state::DeploymentLock, CliError> {
        use nixops_core::state::{DeploymentLock, LockWait};
        let mut on_wait = |holder: &nixops_core::state::LockHolder| {
            eprintln!("waiting for exclusive deployment lock (held by {holder})...");
        };
        Ok(DeploymentLock::acquire(
            &self.locks_dir(),
            &depl.uuid,
            depl.name_or_uuid(),
            &format!("nixops {command}"),
            LockWait::Wait(&mut on_wait),
        )?)
    }
}

impl Settings {
    /// An evaluator for `depl`'s network files, with this run's Nix flags.
    pub fn evaluator(
        &self,
        depl: &nixops_core::state::DeploymentRecord,
    ) -> Result<nixops_core::eval::Evaluator, CliError> {
        use nixops_core::eval::{EvalSettings, Evaluator, NetworkExpr};
        let mut nix_path = self.nix.include_paths.clone();
        nix_path.extend(depl.nix_path()?);
        let settings = EvalSettings {
            network_exprs: depl
                .nix_exprs()?
                .iter()
                .map(|e| NetworkExpr::parse(e))
                .collect(),
            args: depl.args()?,
            uuid: depl.uuid.clone(),
            deployment_name: depl.name().unwrap_or("").to_owned(),
            nix_path,
            nix_flags: self.nix.flags.clone(),
            read_only: self.nix.read_only,
        };
        Ok(Evaluator::new(settings)?)
    }
}

impl From<nixops_core::eval::EvalError> for CliError {
    fn from(err: nixops_core::eval::EvalError) -> Self {
        let cli = CliError::new(err.to_string());
        match err.nix_message() {
            Some(msg) => cli.with_detail(msg.to_owned()),
            None => cli,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_flags_follow_nixops_order() {
        let common = CommonArgs {
            nix_options: vec!["a".into(), "1".into()],
            max_jobs: Some(4),
            cores: Some(2),
            show_trace: true,
            keep_going: true,
            ..CommonArgs::default()
        };
        assert_eq!(
            nix_settings(&common).flags.to_args(),
            [
                "--option",
                "a",
                "1",
                "--max-jobs",
                "4",
                "--cores",
                "2",
                "--keep-going",
                "--show-trace"
            ]
        );
    }
}
