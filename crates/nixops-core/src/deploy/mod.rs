//! `nixops deploy`: evaluate, reconcile the state with the network, build every
//! selected machine in one Nix invocation, then copy and activate each machine as
//! soon as its closure is ready.
//!
//! Machines proceed independently: one machine's failure never stops the others,
//! every result is collected, and the state records each machine's result right
//! when it happens. This module prints nothing; it reports [`Event`]s.

mod machine;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};

use crate::backend::{self, none};
use crate::eval::{
    EvalError, Evaluator, MachineInfo, MachineName, NetworkInfo, PendingPlan, PhysicalMachine,
    PlannedBuild,
};
use crate::events::{Event, Phase, Reporter, Status};
use crate::exec::ExecError;
use crate::generations::{GenerationError, Profile};
use crate::parallel::{self, Limit};
use crate::ssh::SshSession;
use crate::state::{depl_attr, AttrValue, DeploymentRecord, ResourceRecord, StateError, StateFile};

pub use machine::{
    connect, session_for, EarlySession, MachineOutcome, MachineSpec, SshSettings, HOST_KEY_ATTR,
};

/// The options of `nixops deploy` (and of `rollback`, which shares the second half).
#[derive(Clone, Debug, Default)]
pub struct DeployOptions {
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub kill_obsolete: bool,
    pub dry_run: bool,
    pub build_only: bool,
    pub create_only: bool,
    /// Show what resource creation would change, and stop. No backend here has
    /// a plan operation, so each selected machine only says so (as NixOps does).
    pub plan_only: bool,
    pub copy_only: bool,
    pub dry_activate: bool,
    /// `switch-to-configuration test`: activate without setting the system profile.
    pub test: bool,
    /// `switch-to-configuration boot`: set the profile, activate at next boot.
    pub boot: bool,
    pub repair: bool,
    pub always_activate: bool,
    /// Do not trust the recorded state: always connect and copy.
    pub check: bool,
    pub allow_reboot: bool,
    pub force_reboot: bool,
    pub no_sync: bool,
    /// NixOps' convention: negative means unlimited.
    pub max_concurrent_copy: i64,
    pub max_concurrent_activate: i64,
}

impl DeployOptions {
    /// NixOps' `should_do`: not excluded, and included if there is an include list.
    pub fn selects(&self, name: &str) -> bool {
        !self.exclude.iter().any(|e| e == name)
            && (self.include.is_empty() || self.include.iter().any(|i| i == name))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error(transparent)]
    Eval(#[from] EvalError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error("the type of resource ‘{name}’ changed from ‘{old}’ to ‘{new}’, which is currently unsupported")]
    TypeChanged {
        name: String,
        old: String,
        new: String,
    },
    #[error("machine ‘{name}’ given to ‘--include’ or ‘--exclude’ does not exist in the network")]
    UnknownMachine { name: String },
    #[error("cannot roll back machine ‘{name}’ which no longer exists")]
    NoLongerExists { name: String },
    #[error("cannot create a temporary directory")]
    TempDir(#[source] std::io::Error),
    #[error("cannot generate an SSH key pair for machine ‘{machine}’")]
    KeyPair {
        machine: String,
        #[source]
        source: crate::exec::ExecError,
    },
}

/// Each machine's name and how it ended.
type Outcomes = Vec<(String, MachineOutcome)>;

/// A machine to deploy: its record, what to do, and a session opened before
/// (at first contact, or while the network was evaluated), if any.
type Task<'c> = (
    ResourceRecord,
    MachineSpec,
    Option<SshSession>,
    Option<EarlySession>,
    Option<&'c Contact>,
);

/// The state attribute recording that a machine was last deployed with
/// `deployment.alwaysActivate` (our own; NixOps ignores it). It predicts that
/// the next deploy activates the machine, and so connects to it, whatever the
/// evaluation says: the connection can be opened while evaluating.
pub const ALWAYS_ACTIVATE_ATTR: &str = "alwaysActivate";

/// How a deploy ended for each machine it touched.
#[derive(Debug, Default)]
pub struct DeploySummary {
    /// Per selected machine, in name order.
    pub machines: Vec<(String, MachineOutcome)>,
    /// The built `nixops-machines` directory (none for a dry run).
    pub configs_path: Option<PathBuf>,
}

impl DeploySummary {
    pub fn failed(&self) -> Vec<(&str, &str)> {
        self.machines
            .iter()
            .filter_map(|(m, o)| match o {
                MachineOutcome::Failed(reason) => Some((m.as_str(), reason.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// The state file, shared by the machine threads; every write is its own
/// transaction, made right after the fact it records.
pub struct SharedState {
    state: Mutex<StateFile>,
    pub uuid: String,
}

impl SharedState {
    pub fn new(state: StateFile, uuid: String) -> Self {
        SharedState {
            state: Mutex::new(state),
            uuid,
        }
    }

    pub fn with<T>(&self, f: impl FnOnce(&StateFile) -> T) -> T {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&state)
    }

    pub fn load(&self) -> Result<DeploymentRecord, StateError> {
        self.with(|s| s.load(&self.uuid))
    }

    pub fn set_resource_attrs(
        &self,
        id: i64,
        attrs: &[(&str, Option<String>)],
    ) -> Result<(), StateError> {
        self.with(|s| s.set_resource_attrs(id, attrs))
    }

    pub fn into_inner(self) -> StateFile {
        self.state.into_inner().unwrap_or_else(|e| e.into_inner())
    }
}

/// Everything a deploy needs besides its options.
pub struct Deployer<'a> {
    pub state: &'a SharedState,
    pub evaluator: &'a Evaluator,
    pub ssh: SshSettings,
    pub reporter: &'a dyn Reporter,
    /// The rollback profile of this deployment.
    pub profile: Profile,
}

impl Deployer<'_> {
    fn report(&self, event: Event) {
        self.reporter.report(event);
    }

    fn log(&self, phase: Phase, message: impl Into<String>) {
        self.report(Event::new(None, phase, Status::Log).message(message));
    }

    /// Evaluate the network and bring the state in line with it: new machines get
    /// a row, vanished ones are marked obsolete (and destroyed with
    /// `--kill-obsolete`), every machine gets an index.
    ///
    /// Unless it is a dry run, the one evaluation also instantiates the build of
    /// the selected machines, with the physical expression guessed from the
    /// state as it is now; the planned build is returned for [`Deployer::build`]
    /// to use if the guess holds.
    ///
    /// On a first deploy, the key pairs that nixops provisions for `none`
    /// machines go into their configurations, so they are generated before
    /// evaluating (in `tmp`), for every machine name the network files define;
    /// [`Deployer::deploy`] records those of the machines that need one.
    pub fn evaluate(
        &self,
        opts: &DeployOptions,
        depl: &DeploymentRecord,
        tmp: &Path,
    ) -> Result<(NetworkInfo, PlanSlot, KeyPairs), DeployError> {
        self.report(Event::new(None, Phase::Evaluate, Status::Started));
        let first = !depl
            .resources
            .iter()
            .any(|r| backend::is_machine_type(&r.type_));
        let mut pairs = KeyPairs::new();
        let (info, slot) = if opts.dry_run || opts.plan_only {
            (self.evaluator.info()?, PlanSlot::default())
        } else if first {
            // `info` (quick: no machine is instantiated) runs beside the plan, so
            // that the first contacts can start before the plan is done.
            // The plan starts once `info` is done: on a small network the first
            // contacts are the longest part of the deploy, and they wait for it.
            let (info, guess) = std::thread::scope(|scope| {
                let info = scope.spawn(|| self.evaluator.info());
                let guess = self.first_guess(tmp, &mut pairs);
                let info = match info.join() {
                    Ok(info) => info,
                    Err(panic) => std::panic::resume_unwind(panic),
                };
                (info, guess)
            });
            let info = info?;
            let pending = match guess? {
                Some(guess) => self
                    .evaluator
                    .spawn_plan(&guess, &opts.include, &opts.exclude)
                    .unwrap_or_else(|e| {
                        tracing::debug!("cannot start the evaluation of the plan: {e}");
                        None
                    }),
                None => None,
            };
            (info, PlanSlot::pending(pending))
        } else {
            let guess = physical_nix_of(depl, |_| true)?;
            match self.evaluator.plan(&guess, &opts.include, &opts.exclude) {
                Ok(Some(plan)) => (plan.info, PlanSlot::ready(plan.build)),
                Ok(None) => (self.evaluator.info()?, PlanSlot::default()),
                // Evaluate again without the guess: its errors are the ones to show.
                Err(e) => {
                    tracing::debug!("evaluation with the guessed physical expression failed: {e}");
                    (self.evaluator.info()?, PlanSlot::default())
                }
            }
        };
        let uuid = &self.state.uuid;
        // NixOps ignores names that match nothing (issue #459); a typo there would
        // silently deploy everything else.
        for name in opts.include.iter().chain(&opts.exclude) {
            let defined = MachineName::new(name)
                .map(|n| info.machines.contains_key(&n))
                .unwrap_or(false);
            if !defined && depl.resource(name).is_none() {
                return Err(DeployError::UnknownMachine { name: name.clone() });
            }
        }
        self.state.with(|s| {
            s.set_deployment_attrs(
                uuid,
                &[
                    (
                        depl_attr::DESCRIPTION,
                        info.network
                            .description
                            .clone()
                            .filter(|d| d != crate::state::DEFAULT_DESCRIPTION),
                    ),
                    (
                        depl_attr::ROLLBACK_ENABLED,
                        info.network.enable_rollback.then(|| "1".to_owned()),
                    ),
                ],
            )
        })?;
        let depl = self.state.load()?;
        for (name, def) in &info.machines {
            match depl.resource(name.as_str()) {
                None => {
                    self.state
                        .with(|s| s.add_resource(uuid, name.as_str(), &def.target_env))?;
                }
                Some(r) if r.type_ != def.target_env => {
                    return Err(DeployError::TypeChanged {
                        name: name.to_string(),
                        old: r.type_.clone(),
                        new: def.target_env.clone(),
                    })
                }
                Some(r) if r.obsolete() => {
                    self.log(
                        Phase::Evaluate,
                        format!("resource ‘{name}’ is no longer obsolete"),
                    );
                    self.state.set_resource_attrs(r.id, &[("obsolete", None)])?;
                }
                Some(_) => {}
            }
        }
        let depl = self.state.load()?;
        for r in &depl.resources {
            let defined = MachineName::new(&r.name)
                .map(|n| info.machines.contains_key(&n))
                .unwrap_or(false);
            if defined || !backend::is_machine_type(&r.type_) {
                continue;
            }
            if !r.obsolete() {
                self.log(
                    Phase::Evaluate,
                    format!("resource ‘{}’ is obsolete", r.name),
                );
                self.state
                    .set_resource_attrs(r.id, &[("obsolete", Some("1".to_owned()))])?;
            }
            if opts.kill_obsolete && opts.selects(&r.name) {
                self.log(Phase::Destroy, format!("destroying ‘{}’...", r.name));
                self.state.with(|s| s.delete_resource(r.id))?;
            }
        }
        // Stable small indices (log colours), assigned once.
        let depl = self.state.load()?;
        let next = depl
            .resources
            .iter()
            .filter_map(ResourceRecord::index)
            .max()
            .map_or(0, |m| m + 1);
        let unindexed = depl
            .resources
            .iter()
            .filter(|r| r.index().is_none() && !r.obsolete());
        for (r, index) in unindexed.zip(next..) {
            self.state
                .set_resource_attrs(r.id, &[("index", Some(index.to_string()))])?;
        }
        let depl = self.state.load()?;
        let mut active: Vec<(i64, String)> = depl
            .resources
            .iter()
            .filter(|r| !r.obsolete() && opts.selects(&r.name))
            .map(|r| (r.index().unwrap_or(i64::MAX), r.name.clone()))
            .collect();
        active.sort();
        let names: Vec<String> = active.into_iter().map(|(_, n)| n).collect();
        self.reporter.machines(&names);
        self.report(Event::new(None, Phase::Evaluate, Status::Succeeded));
        Ok((info, slot, pairs))
    }

    /// Start connecting, while the network is evaluated, to the machines this
    /// deploy will most likely activate: selected, reached before (host key
    /// pinned, a configuration recorded), and last deployed with
    /// `alwaysActivate` (or `--always-activate`/`--check` now). Only the
    /// connection is made; nothing runs on the machine and nothing is recorded.
    fn connect_early(
        &self,
        opts: &DeployOptions,
        depl: &DeploymentRecord,
        tmp: &Path,
    ) -> BTreeMap<String, EarlySession> {
        if opts.dry_run || opts.build_only || opts.create_only || opts.plan_only {
            return BTreeMap::new();
        }
        depl.resources
            .iter()
            .filter(|r| {
                r.type_ == "none"
                    && !r.obsolete()
                    && opts.selects(&r.name)
                    && r.ssh_pinged()
                    && r.attr(HOST_KEY_ATTR).is_some()
                    && r.toplevel().is_some()
                    && (opts.always_activate || opts.check || r.bool_attr(ALWAYS_ACTIVATE_ATTR))
            })
            .filter_map(|r| {
                let session = machine::session_for(r, &self.ssh, tmp).ok()?;
                Some((r.name.clone(), EarlySession::start(session)?))
            })
            .collect()
    }

    /// The physical expression a first deploy guesses: key pairs for every
    /// machine name the network files define (into `pairs`), and nothing else
    /// known yet. `None` if the names cannot be read (the evaluation of `info`
    /// reports why).
    fn first_guess(&self, tmp: &Path, pairs: &mut KeyPairs) -> Result<Option<String>, DeployError> {
        let names = match self.evaluator.machine_names() {
            Ok(names) => names,
            Err(e) => {
                tracing::debug!("cannot read the machine names: {e}");
                return Ok(None);
            }
        };
        *pairs = generate_key_pairs(names, tmp)?;
        let machines: Vec<PhysicalMachine> = pairs
            .iter()
            .map(|(name, pair)| PhysicalMachine {
                name: name.clone(),
                authorized_key: Some(pair.public.clone()),
                ..PhysicalMachine::default()
            })
            .collect();
        Ok(Some(
            crate::eval::physical::render(&machines).map_err(EvalError::Physical)?,
        ))
    }

    /// Record what each selected machine's definition says (NixOps'
    /// `set_common_state` and the backend's `create`): target, port, keys, and for
    /// `none` machines a provisioned SSH key pair.
    fn create(
        &self,
        selected: &[(ResourceRecord, MachineInfo)],
        mut pregenerated: KeyPairs,
        tmp: &Path,
    ) -> Result<(), DeployError> {
        // The provisioned key pairs of new machines: those made before the
        // evaluation (a first deploy), the others generated now, all at once.
        let need_key: Vec<String> = selected
            .iter()
            .filter(|(r, def)| {
                r.vm_id().is_none()
                    && def.provision_ssh_key
                    && r.attr(none::attr::PUBLIC_KEY).is_none()
            })
            .map(|(r, _)| r.name.clone())
            .collect();
        let missing: Vec<String> = need_key
            .iter()
            .filter(|n| !pregenerated.contains_key(*n))
            .cloned()
            .collect();
        pregenerated.extend(generate_key_pairs(missing, tmp)?);
        let mut pairs: KeyPairs = need_key
            .into_iter()
            .filter_map(|n| pregenerated.remove(&n).map(|pair| (n, pair)))
            .collect();
        for (r, def) in selected {
            let keys = serde_json::to_value(&def.keys).expect("invariant: keys serialise");
            let mut attrs: Vec<(&str, Option<String>)> = vec![
                ("targetHost", Some(def.target_host.clone())),
                (
                    "targetPort",
                    (def.target_port != 22).then(|| def.target_port.to_string()),
                ),
                (
                    "targetUser",
                    (def.target_user != "root").then(|| def.target_user.clone()),
                ),
                (
                    "sshOptions",
                    (!def.ssh_options.is_empty())
                        .then(|| AttrValue::Json(serde_json::json!(def.ssh_options)).encode())
                        .flatten(),
                ),
                (
                    "hasFastConnection",
                    def.has_fast_connection.then(|| "1".to_owned()),
                ),
                ("publicIpv4", def.public_ipv4.clone()),
                (
                    ALWAYS_ACTIVATE_ATTR,
                    def.always_activate.then(|| "1".to_owned()),
                ),
                (
                    "keys",
                    (!def.keys.is_empty())
                        .then(|| AttrValue::Json(keys.clone()).encode())
                        .flatten(),
                ),
            ];
            if r.creation_time().is_none() {
                attrs.push(("creationTime", Some(now().to_string())));
            }
            if r.vm_id().is_none() {
                if let Some(pair) = pairs.remove(&r.name) {
                    attrs.push((none::attr::PRIVATE_KEY, Some(pair.private)));
                    attrs.push((none::attr::PUBLIC_KEY, Some(pair.public)));
                }
                attrs.push((
                    "vmId",
                    Some(format!("nixops-{}-{}", self.state.uuid, r.name)),
                ));
            }
            self.state.set_resource_attrs(r.id, &attrs)?;
        }
        Ok(())
    }

    /// Run the whole pipeline.
    pub fn deploy(&self, opts: &DeployOptions) -> Result<DeploySummary, DeployError> {
        let tmp = tempfile::Builder::new()
            .prefix("nixops-deploy-")
            .tempdir()
            .map_err(DeployError::TempDir)?;
        let before_eval = self.state.load()?;
        let mut early = self.connect_early(opts, &before_eval, tmp.path());
        let (info, planned, pairs) = self.evaluate(opts, &before_eval, tmp.path())?;
        let planned = &planned;
        let depl = self.state.load()?;
        let mut selected: Vec<(ResourceRecord, MachineInfo)> = Vec::new();
        let mut summary = DeploySummary::default();
        for (name, def) in &info.machines {
            if !opts.selects(name.as_str()) {
                continue;
            }
            let Some(r) = depl.resource(name.as_str()) else {
                continue;
            };
            if def.target_env != "none" {
                summary.machines.push((
                    name.to_string(),
                    MachineOutcome::Failed(format!(
                        "the ‘{}’ backend is not implemented yet",
                        def.target_env
                    )),
                ));
                continue;
            }
            selected.push((r.clone(), def.clone()));
        }

        // The records before `create` records the new keys: the files of keys no
        // longer declared are removed from the machine.
        let before: BTreeMap<String, ResourceRecord> = selected
            .iter()
            .map(|(r, _)| (r.name.clone(), r.clone()))
            .collect();
        if opts.plan_only && !opts.dry_run && !opts.build_only {
            for r in depl
                .resources
                .iter()
                .filter(|r| !r.obsolete() && opts.selects(&r.name))
            {
                self.report(
                    Event::new(Some(&r.name), Phase::Create, Status::Warning).message(format!(
                        "resource type {} doesn't implement a plan operation",
                        r.type_
                    )),
                );
            }
            return Ok(DeploySummary::default());
        }
        if !opts.dry_run && !opts.build_only {
            self.report(Event::new(None, Phase::Create, Status::Started));
            self.create(&selected, pairs, tmp.path())?;
            if opts.create_only {
                return Ok(summary);
            }
            // Continue with the records as created.
            let depl = self.state.load()?;
            for (r, _) in &mut selected {
                if let Some(fresh) = depl.resource(&r.name) {
                    *r = fresh.clone();
                }
            }
        }

        // First contact with machines never reached before: pin the host key and
        // learn the NixOS version. The version goes into the physical expression,
        // so the build started meanwhile is speculative: it is used unless a
        // version learnt here changes that expression.
        let mut sessions: BTreeMap<String, SshSession> = BTreeMap::new();
        let mut speculative: Option<(String, Result<Option<PathBuf>, DeployError>)> = None;
        let (fresh, known): (Vec<_>, Vec<_>) = if opts.dry_run || opts.build_only {
            (Vec::new(), selected)
        } else {
            selected.into_iter().partition(|(r, _)| !r.ssh_pinged())
        };
        selected = known;
        let contacts: Vec<Contact> = fresh.iter().map(|_| Contact::default()).collect();
        let wake = Wakeup::default();
        std::thread::scope(|scope| {
            let mut pending: BTreeMap<String, &Contact> = BTreeMap::new();
            if !fresh.is_empty() {
                let all_names: Vec<MachineName> = selected
                    .iter()
                    .chain(&fresh)
                    .filter_map(|(r, _)| MachineName::new(&r.name).ok())
                    .collect();
                let physical = physical_nix(&self.state.load()?, &info)?;
                for ((r, _), contact) in fresh.iter().zip(&contacts) {
                    let r = r.clone();
                    let tmp = tmp.path();
                    let wake = &wake;
                    scope.spawn(move || {
                        let result = self.first_contact(&r, tmp, &|| {
                            contact.retrying.store(true, Ordering::SeqCst);
                            wake.notify();
                        });
                        contact.slot.set(result);
                        wake.notify();
                    });
                }
                let built = self.nix_build(&all_names, &physical, planned, opts);
                speculative = Some((physical, built));
                // What the first contacts learn settles the build. A machine that
                // did not answer its first try no longer holds it up: it goes on
                // trying on its own, and the others deploy meanwhile.
                wake.wait_until(|| contacts.iter().all(Contact::settled));
                for ((r, def), contact) in fresh.into_iter().zip(&contacts) {
                    match contact.slot.take() {
                        Some(Ok((session, _))) => {
                            sessions.insert(r.name.clone(), session);
                            selected.push((r, def));
                        }
                        Some(Err(reason)) => {
                            self.report(
                                Event::new(Some(&r.name), Phase::Connect, Status::Failed)
                                    .error(reason.clone()),
                            );
                            summary
                                .machines
                                .push((r.name, MachineOutcome::Failed(reason)));
                        }
                        None => {
                            pending.insert(r.name.clone(), contact);
                            selected.push((r, def));
                        }
                    }
                }
                selected.sort_by(|a, b| a.0.name.cmp(&b.0.name));
            }

            let depl = self.state.load()?;
            let physical = physical_nix(&depl, &info)?;
            let names: Vec<MachineName> = selected
                .iter()
                .filter_map(|(r, _)| MachineName::new(&r.name).ok())
                .collect();

            if opts.dry_run || opts.build_only || names.is_empty() {
                let configs = self.build(&names, &physical, planned, opts)?;
                summary.configs_path = configs;
                return Ok(summary);
            }

            // Build while the machines connect: the build runs here, every machine
            // waits for it on its own thread, then copies and activates.
            let tasks = selected
                .into_iter()
                .map(|(r, def)| {
                    let session = sessions.remove(&r.name);
                    // The record as first contact left it (pinned host key).
                    let spec = MachineSpec::from_def(&def, before.get(&r.name).unwrap_or(&r));
                    let r = depl.resource(&r.name).cloned().unwrap_or(r);
                    // An early connection counts only if it went where the record,
                    // as this deploy left it, says to go.
                    let early = early.remove(&r.name).filter(|e| {
                        machine::session_for(&r, &self.ssh, tmp.path())
                            .is_ok_and(|fresh| e.matches(&fresh))
                    });
                    let contact = pending.remove(&r.name);
                    (r, spec, session, early, contact)
                })
                .collect();
            let (outcomes, built) =
                self.run_machines(opts, tasks, tmp.path(), || match speculative {
                    Some((guess, built)) if guess == physical => {
                        let configs = built?;
                        self.record_build(configs.as_deref())?;
                        Ok(configs)
                    }
                    _ => self.build(&names, &physical, planned, opts),
                });
            summary.configs_path = built?;
            summary.machines.extend(outcomes);
            summary.machines.sort_by(|a, b| a.0.cmp(&b.0));
            if summary.failed().is_empty() {
                self.report(
                    Event::new(None, Phase::Deploy, Status::Succeeded).message(format!(
                        "{}> deployment finished successfully",
                        self.depl_label(&depl)
                    )),
                );
            }
            Ok(summary)
        })
    }

    /// Run every machine's task on its own thread while `produce` (the build)
    /// runs on this one; the machines wait for its result.
    fn run_machines<B>(
        &self,
        opts: &DeployOptions,
        tasks: Vec<Task<'_>>,
        tmp: &Path,
        produce: B,
    ) -> (Outcomes, Result<Option<PathBuf>, DeployError>)
    where
        B: FnOnce() -> Result<Option<PathBuf>, DeployError>,
    {
        let build_result = BuildSlot::default();
        let copy_limit = Limit::from_nixops(opts.max_concurrent_copy);
        let activate_limit = Limit::from_nixops(opts.max_concurrent_activate);
        std::thread::scope(|scope| {
            let machines = scope.spawn(|| {
                parallel::for_each(tasks, |(record, def, session, early, contact)| {
                    let task = machine::MachineTask {
                        session,
                        early,
                        contact,
                        deployer: self,
                        opts,
                        record,
                        def,
                        tmp,
                        build: &build_result,
                        copy_limit: &copy_limit,
                        activate_limit: &activate_limit,
                    };
                    let name = task.record.name.clone();
                    (name, task.run())
                })
            });
            let built = produce();
            build_result.set(match &built {
                Ok(Some(p)) => Ok(p.clone()),
                Ok(None) => Err("the build produced no output".to_owned()),
                Err(e) => Err(e.to_string()),
            });
            let outcomes = match machines.join() {
                Ok(o) => o,
                Err(panic) => std::panic::resume_unwind(panic),
            };
            (outcomes, built)
        })
    }

    /// `nixops rollback N`: switch the rollback profile to generation `n` and
    /// copy and activate the machines it holds, without evaluating.
    pub fn rollback(
        &self,
        generation: u32,
        opts: &DeployOptions,
    ) -> Result<DeploySummary, DeployError> {
        let depl = self.state.load()?;
        if !depl.rollback_enabled() {
            return Err(GenerationError::NotEnabled.into());
        }
        let configs = self.profile.switch(generation)?;
        let mut names: Vec<String> = std::fs::read_dir(&configs)
            .map_err(|source| GenerationError::Read {
                profile: configs.clone(),
                source,
            })?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let selected: Vec<&String> = names.iter().filter(|n| opts.selects(n)).collect();
        for name in &selected {
            if depl.resource(name).is_none() {
                return Err(DeployError::NoLongerExists {
                    name: (*name).clone(),
                });
            }
        }
        for r in depl
            .resources
            .iter()
            .filter(|r| backend::is_machine_type(&r.type_))
        {
            let in_generation = names.contains(&r.name);
            if in_generation && r.obsolete() {
                self.log(
                    Phase::Deploy,
                    format!("machine ‘{}’ is no longer obsolete", r.name),
                );
                self.state.set_resource_attrs(r.id, &[("obsolete", None)])?;
            } else if !in_generation && !r.obsolete() {
                self.log(Phase::Deploy, format!("machine ‘{}’ is obsolete", r.name));
                self.state
                    .set_resource_attrs(r.id, &[("obsolete", Some("1".to_owned()))])?;
            }
        }
        let configs_str = configs.to_string_lossy().into_owned();
        self.state.with(|s| {
            s.set_deployment_attrs(
                &self.state.uuid,
                &[(depl_attr::CONFIGS_PATH, Some(configs_str))],
            )
        })?;
        let depl = self.state.load()?;
        let tasks = selected
            .iter()
            .filter_map(|n| depl.resource(n))
            .map(|r| (r.clone(), MachineSpec::from_record(r), None, None, None))
            .collect();
        let tmp = tempfile::Builder::new()
            .prefix("nixops-rollback-")
            .tempdir()
            .map_err(DeployError::TempDir)?;
        let opts = DeployOptions {
            always_activate: true,
            dry_activate: false,
            test: false,
            boot: false,
            ..opts.clone()
        };
        let (mut outcomes, _) =
            self.run_machines(&opts, tasks, tmp.path(), || Ok(Some(configs.clone())));
        outcomes.sort_by(|a, b| a.0.cmp(&b.0));
        if outcomes
            .iter()
            .all(|(_, o)| !matches!(o, MachineOutcome::Failed(_)))
        {
            self.report(
                Event::new(None, Phase::Deploy, Status::Succeeded).message(format!(
                    "{}> rollback to generation {generation} finished successfully",
                    self.depl_label(&depl)
                )),
            );
        }
        Ok(DeploySummary {
            machines: outcomes,
            configs_path: Some(configs),
        })
    }

    /// Connect to a machine never reached before, pin its host key, and record
    /// its NixOS version.
    ///
    /// `on_retry` is called when a try to connect failed and another one is
    /// coming. The flag that comes back says whether a NixOS version was learnt.
    fn first_contact(
        &self,
        r: &ResourceRecord,
        tmp: &Path,
        on_retry: &dyn Fn(),
    ) -> Result<(SshSession, bool), String> {
        self.report(
            Event::new(Some(&r.name), Phase::Connect, Status::Started)
                .message("waiting for SSH..."),
        );
        let session = machine::session_for(r, &self.ssh, tmp).map_err(|e| e.to_string())?;
        // The NixOS version is read by the command that opens the connection.
        let os_release = if r.attr("stateVersion").is_none() {
            let out = session
                .connect_running_watched(&machine::os_release(), on_retry)
                .map_err(|e| e.to_string())?;
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            None
        };
        machine::connect(&session, r, self).map_err(|e| e.to_string())?;
        let mut learnt = false;
        if let Some(os_release) = os_release {
            match machine::state_version(&os_release) {
                Some(v) => {
                    learnt = true;
                    self.report(
                        Event::new(Some(&r.name), Phase::Connect, Status::Log)
                            .message(format!("setting state version to {v}")),
                    );
                    self.state
                        .set_resource_attrs(r.id, &[("stateVersion", Some(v))])
                        .map_err(|e| e.to_string())?;
                }
                None => self.report(
                    Event::new(Some(&r.name), Phase::Connect, Status::Warning)
                        .message("cannot determine NixOS version"),
                ),
            }
        }
        Ok((session, learnt))
    }

    fn depl_label(&self, depl: &DeploymentRecord) -> String {
        depl.name().unwrap_or("unnamed").to_owned()
    }

    /// One `nix-build` of all selected machines; records `configsPath` and the
    /// rollback generation.
    fn build(
        &self,
        names: &[MachineName],
        physical: &str,
        planned: &PlanSlot,
        opts: &DeployOptions,
    ) -> Result<Option<PathBuf>, DeployError> {
        let configs = self.nix_build(names, physical, planned, opts)?;
        self.record_build(configs.as_deref())?;
        Ok(configs)
    }

    /// The build of `names` (one Nix invocation, so Nix builds in parallel),
    /// with its log reported as events. Records nothing. When the evaluation
    /// planned this very build (same machines, same physical expression), its
    /// derivation is realised without evaluating again; else `nix-build`.
    fn nix_build(
        &self,
        names: &[MachineName],
        physical: &str,
        planned: &PlanSlot,
        opts: &DeployOptions,
    ) -> Result<Option<PathBuf>, DeployError> {
        self.report(
            Event::new(None, Phase::Build, Status::Started)
                .message("building all machine configurations..."),
        );
        let reporter = self.reporter;
        let mut on_line = |line: &str| {
            reporter.report(Event::new(None, Phase::Build, Status::Log).message(line));
        };
        let mut wanted: Vec<&str> = names.iter().map(MachineName::as_str).collect();
        wanted.sort_unstable();
        match planned.get() {
            Some(p) if !opts.dry_run && p.physical == physical && p.names == wanted => Ok(Some(
                self.evaluator.realise(p, opts.repair, &mut on_line)?,
            )),
            _ => Ok(self.evaluator.build(
                names,
                physical,
                opts.dry_run,
                opts.repair,
                &mut on_line,
            )?),
        }
    }

    /// Record a build: the deployment's `configsPath` and a rollback generation.
    fn record_build(&self, configs: Option<&Path>) -> Result<(), DeployError> {
        let Some(configs) = configs else {
            return Ok(());
        };
        let depl = self.state.load()?;
        if depl.rollback_enabled() {
            self.profile.set(configs)?;
        }
        self.state.with(|s| {
            s.set_deployment_attrs(
                &self.state.uuid,
                &[(
                    depl_attr::CONFIGS_PATH,
                    Some(configs.to_string_lossy().into_owned()),
                )],
            )
        })?;
        self.report(
            Event::new(None, Phase::Build, Status::Succeeded).store_path(configs.to_string_lossy()),
        );
        Ok(())
    }
}

/// The physical network expression from the state of the active machines.
pub fn physical_machines(depl: &DeploymentRecord, info: &NetworkInfo) -> Vec<PhysicalMachine> {
    physical_machines_of(depl, |name| {
        MachineName::new(name)
            .map(|n| info.machines.contains_key(&n))
            .unwrap_or(false)
    })
}

/// The physical machines of `depl` whose names pass `defined`.
fn physical_machines_of(
    depl: &DeploymentRecord,
    defined: impl Fn(&str) -> bool,
) -> Vec<PhysicalMachine> {
    depl.resources
        .iter()
        .filter(|r| backend::is_machine_type(&r.type_) && !r.obsolete())
        .filter(|r| defined(&r.name))
        .map(|r| PhysicalMachine {
            name: r.name.clone(),
            public_ipv4: r.public_ipv4().map(str::to_owned),
            private_ipv4: r.private_ipv4().map(str::to_owned),
            authorized_key: r.attr(none::attr::PUBLIC_KEY).map(str::to_owned),
            host_key: None,
            state_version: r.attr("stateVersion").map(str::to_owned),
        })
        .collect()
}

/// The physical network expression (`physical.nix`) of `depl`.
pub fn physical_nix(depl: &DeploymentRecord, info: &NetworkInfo) -> Result<String, EvalError> {
    crate::eval::physical::render(&physical_machines(depl, info)).map_err(EvalError::Physical)
}

/// The physical network expression of the machines of `depl` whose names pass
/// `defined` (before evaluating: every active machine).
fn physical_nix_of(
    depl: &DeploymentRecord,
    defined: impl Fn(&str) -> bool,
) -> Result<String, EvalError> {
    crate::eval::physical::render(&physical_machines_of(depl, defined)).map_err(EvalError::Physical)
}

/// The build that the evaluation planned, once known: ready, still being
/// evaluated in the background, or none.
#[derive(Default)]
pub struct PlanSlot {
    pending: Mutex<Option<PendingPlan>>,
    done: OnceLock<Option<PlannedBuild>>,
}

impl PlanSlot {
    fn ready(build: Option<PlannedBuild>) -> Self {
        PlanSlot {
            pending: Mutex::new(None),
            done: OnceLock::from(build),
        }
    }

    fn pending(pending: Option<PendingPlan>) -> Self {
        PlanSlot {
            pending: Mutex::new(pending),
            done: OnceLock::new(),
        }
    }

    /// The planned build, waiting for its evaluation if it still runs. A plan
    /// that failed is no plan: the deploy builds with `nix-build`.
    fn get(&self) -> Option<&PlannedBuild> {
        self.done
            .get_or_init(|| {
                let pending = self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()?;
                match pending.wait() {
                    Ok(plan) => plan.build,
                    Err(e) => {
                        tracing::debug!("the planned evaluation failed: {e}");
                        None
                    }
                }
            })
            .as_ref()
    }
}

/// Provisioned key pairs by machine name.
pub type KeyPairs = BTreeMap<String, none::KeyPair>;

/// A key pair for each of `names`, generated in parallel: one `ssh-keygen`
/// each (~8 ms apiece; in a row they added a quarter of a second to a first
/// deploy of 30 machines), each in its own directory under `tmp`, since the key
/// file name is fixed.
fn generate_key_pairs(names: Vec<String>, tmp: &Path) -> Result<KeyPairs, DeployError> {
    let generated = parallel::for_each(names, |name| {
        let pair = tempfile::Builder::new()
            .prefix("keygen-")
            .tempdir_in(tmp)
            .map_err(|source| ExecError::Spawn {
                cmd: format!("mkdir {}", tmp.display()),
                source,
            })
            .and_then(|dir| {
                none::generate_key_pair(dir.path(), &format!("NixOps client key for {name}"))
            });
        (name, pair)
    });
    generated
        .into_iter()
        .map(|(name, pair)| match pair {
            Ok(pair) => Ok((name, pair)),
            Err(source) => Err(DeployError::KeyPair {
                machine: name,
                source,
            }),
        })
        .collect()
}

/// A machine's first contact, made on a thread of its own.
#[derive(Default)]
pub struct Contact {
    /// The session and whether a NixOS version was learnt, or why it failed.
    slot: Slot<Result<(SshSession, bool), String>>,
    /// A try failed and another one is coming.
    retrying: AtomicBool,
}

impl Contact {
    /// Done, or past its first try.
    fn settled(&self) -> bool {
        self.slot.is_set() || self.retrying.load(Ordering::SeqCst)
    }

    /// Wait for the contact to end: the session, or why it failed. A NixOS
    /// version learnt this late cannot be in the configuration already built,
    /// so the machine is not deployed with it.
    pub(super) fn wait(&self, machine: &str) -> Result<SshSession, String> {
        match self.slot.wait_take() {
            Ok((session, false)) => Ok(session),
            Ok((_, true)) => Err(format!(
                "‘{machine}’ answered only after the configurations were built, and the NixOS \
                 version it reports changes its configuration; deploy again"
            )),
            Err(reason) => Err(reason),
        }
    }
}

/// Wakes a thread that waits for a condition others change.
#[derive(Default)]
struct Wakeup {
    lock: Mutex<()>,
    changed: Condvar,
}

impl Wakeup {
    /// Call after changing what a waiter checks.
    fn notify(&self) {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        self.changed.notify_all();
    }

    /// Return once `done` holds (checked after every notification).
    fn wait_until(&self, done: impl Fn() -> bool) {
        let mut guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        while !done() {
            guard = self
                .changed
                .wait_timeout(guard, std::time::Duration::from_millis(500))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

/// A value one thread hands to others once.
pub struct Slot<T> {
    value: Mutex<Option<T>>,
    ready: Condvar,
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: Mutex::new(None),
            ready: Condvar::new(),
        }
    }
}

impl<T> Slot<T> {
    fn set(&self, value: T) {
        *self.value.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        self.ready.notify_all();
    }

    fn is_set(&self) -> bool {
        self.value
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// The value, if it is there.
    fn take(&self) -> Option<T> {
        self.value.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// The value, once it is there, taken out (one waiter).
    fn wait_take(&self) -> T {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = value.take() {
                return v;
            }
            value = self.ready.wait(value).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// A copy of the value, once it is there (any number of waiters).
    pub fn wait_cloned(&self) -> T
    where
        T: Clone,
    {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(v) = &*value {
                return v.clone();
            }
            value = self.ready.wait(value).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// The result of the one build, awaited by every machine.
pub type BuildSlot = Slot<Result<PathBuf, String>>;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
