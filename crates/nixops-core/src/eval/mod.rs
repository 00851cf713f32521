//! Evaluation of network files: the `nix-instantiate` / `nix-build` calls on
//! the embedded glue (`nix/*.nix`), typed results, the physical expression and
//! the `py2nix` renderer.
//!
//! It owns the evaluator's temporary directory (glue, `physical.nix`, the
//! `configs` GC root). It never touches the state file or the machines, and
//! never prints: Nix's output reaches the caller as values or through the
//! `on_line` callback of [`Evaluator::build`].

mod glue;
pub mod info;
pub mod physical;
pub mod py2nix;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use info::{HealthCheck, KeySpec, MachineInfo, MachineName, NetworkAttrs, NetworkInfo, Secret};
pub use physical::PhysicalMachine;
pub use py2nix::{py2nix, NixValue};

use crate::exec::{Cmd, ExecError};

/// Errors of evaluating or building a network.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A network file named in the deployment does not exist.
    #[error("network file ‘{}’ does not exist", .path.display())]
    MissingNetworkFile { path: PathBuf },
    /// Nix rejected the network; `stderr` is Nix's message, intact.
    #[error("evaluation of the deployment specification failed")]
    Nix { cmd: String, stderr: String },
    /// `nix-build` of the machine configurations failed.
    #[error("unable to build all machine configurations")]
    Build { cmd: String, stderr: String },
    /// Nix could not be started.
    #[error("unable to run Nix")]
    Exec(#[source] ExecError),
    /// Nix printed something that is not the JSON we asked for.
    #[error("unable to parse the output of ‘{cmd}’")]
    Json {
        cmd: String,
        #[source]
        source: serde_json::Error,
    },
    /// A machine or resource name that nixops does not accept.
    #[error("invalid resource name ‘{name}’")]
    InvalidName { name: String },
    /// The temporary directory or a file in it could not be written.
    #[error("unable to write ‘{}’", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The physical expression could not be assembled.
    #[error("unable to compute the physical network expression")]
    Physical(#[source] py2nix::MergeError),
}

impl EvalError {
    /// Nix's own error output (file, line, message), if Nix produced the error.
    pub fn nix_message(&self) -> Option<&str> {
        match self {
            EvalError::Nix { stderr, .. } | EvalError::Build { stderr, .. } => Some(stderr),
            _ => None,
        }
    }
}

/// A network expression: a file or a `<nix/path/lookup>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NetworkExpr {
    File(PathBuf),
    Lookup(String),
}

impl NetworkExpr {
    /// `<x>` is a lookup, anything else a file (made absolute against the
    /// current directory when relative).
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix('<').and_then(|r| r.strip_suffix('>')) {
            Some(inner) => NetworkExpr::Lookup(inner.to_owned()),
            None => {
                let p = PathBuf::from(s);
                let p = if p.is_absolute() {
                    p
                } else {
                    std::env::current_dir().map(|d| d.join(&p)).unwrap_or(p)
                };
                NetworkExpr::File(p)
            }
        }
    }

    fn to_nix(&self) -> NixValue {
        match self {
            NetworkExpr::File(p) => NixValue::str(p.to_string_lossy()),
            NetworkExpr::Lookup(l) => NixValue::raw(format!("<{l}>")),
        }
    }
}

/// Nix flags given on the command line, in NixOps' order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NixFlags {
    /// `--option NAME VALUE`, in order.
    pub options: Vec<(String, String)>,
    pub max_jobs: Option<String>,
    pub cores: Option<u32>,
    pub keep_going: bool,
    pub keep_failed: bool,
    pub show_trace: bool,
    pub fallback: bool,
    pub no_build_output: bool,
}

impl NixFlags {
    /// The flags as Nix arguments.
    pub fn to_args(&self) -> Vec<String> {
        let mut a = Vec::new();
        for (n, v) in &self.options {
            a.extend(["--option".to_owned(), n.clone(), v.clone()]);
        }
        if let Some(j) = &self.max_jobs {
            a.extend(["--max-jobs".to_owned(), j.clone()]);
        }
        if let Some(c) = self.cores {
            a.extend(["--cores".to_owned(), c.to_string()]);
        }
        for (on, flag) in [
            (self.keep_going, "--keep-going"),
            (self.keep_failed, "--keep-failed"),
            (self.show_trace, "--show-trace"),
            (self.fallback, "--fallback"),
            (self.no_build_output, "--no-build-output"),
        ] {
            if on {
                a.push(flag.to_owned());
            }
        }
        a
    }
}

/// Everything an evaluation depends on, resolved once.
#[derive(Clone, Debug, Default)]
pub struct EvalSettings {
    /// The deployment's network files.
    pub network_exprs: Vec<NetworkExpr>,
    /// Deployment arguments: name → Nix expression text (as `set-args` stores them).
    pub args: BTreeMap<String, String>,
    pub uuid: String,
    pub deployment_name: String,
    /// `-I` entries: the command line's first, then the deployment's `nixPath`.
    pub nix_path: Vec<String>,
    pub nix_flags: NixFlags,
    /// `--read-only-mode`: evaluate without writing `.drv` files.
    pub read_only: bool,
}

/// How `show-option` prints the value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionFormat {
    Nix,
    Json,
    Xml,
}

/// What one evaluation of a deploy gives: the network's `info`, and the
/// derivation that builds the machines it selected, already in the store.
#[derive(Debug)]
pub struct Plan {
    pub info: NetworkInfo,
    /// `None` when no machine of the `none` backend is selected.
    pub build: Option<PlannedBuild>,
}

/// The derivation of the `machines` directory for `names`, instantiated with the
/// physical expression `physical`: valid for a deploy whose selection and
/// physical expression turn out the same.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedBuild {
    pub names: Vec<String>,
    pub drv_path: PathBuf,
    pub out_path: PathBuf,
    pub physical: String,
}

/// A plan evaluation running in the background. Dropping it stops it.
#[derive(Debug)]
pub struct PendingPlan {
    child: Option<std::process::Child>,
    cmd: String,
    out: PathBuf,
    err: PathBuf,
    physical: String,
}

impl PendingPlan {
    /// Wait for the evaluation and read its result.
    pub fn wait(mut self) -> Result<Plan, EvalError> {
        let Some(mut child) = self.child.take() else {
            return Err(EvalError::Exec(ExecError::Spawn {
                cmd: self.cmd.clone(),
                source: std::io::Error::other("already waited for"),
            }));
        };
        let status = child.wait().map_err(|source| {
            EvalError::Exec(ExecError::Spawn {
                cmd: self.cmd.clone(),
                source,
            })
        })?;
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| EvalError::Io {
                path: path.to_owned(),
                source,
            })
        };
        if !status.success() {
            return Err(EvalError::Nix {
                cmd: self.cmd.clone(),
                stderr: String::from_utf8_lossy(&read(&self.err)?).into_owned(),
            });
        }
        let cmd = "nix-instantiate -A plan";
        let raw: RawPlan =
            serde_json::from_slice(&read(&self.out)?).map_err(|source| EvalError::Json {
                cmd: cmd.to_owned(),
                source,
            })?;
        Ok(Plan {
            info: NetworkInfo::from_raw(raw.info)?,
            build: raw.build.map(|b| PlannedBuild {
                names: b.names,
                drv_path: b.drv_path,
                out_path: b.output,
                physical: std::mem::take(&mut self.physical),
            }),
        })
    }
}

impl Drop for PendingPlan {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // Not wanted any more (the deploy stopped): stop it, reap it.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[derive(serde::Deserialize)]
struct RawPlan {
    info: info::RawInfo,
    build: Option<RawPlannedBuild>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawPlannedBuild {
    names: Vec<String>,
    drv_path: PathBuf,
    output: PathBuf,
}

/// Runs Nix on a deployment's network files through the embedded glue.
#[derive(Debug)]
pub struct Evaluator {
    settings: EvalSettings,
    dir: tempfile::TempDir,
}

impl Evaluator {
    /// Write the glue to a fresh temporary directory owned by the evaluator.
    pub fn new(settings: EvalSettings) -> Result<Self, EvalError> {
        let dir = tempfile::Builder::new()
            .prefix("nixops-eval-")
            .tempdir()
            .map_err(|source| EvalError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        glue::write_to(dir.path())?;
        Ok(Evaluator { settings, dir })
    }

    /// The settings this evaluator runs with.
    pub fn settings(&self) -> &EvalSettings {
        &self.settings
    }

    /// The directory holding the glue (passed to Nix as `-I nixops=<dir>`).
    pub fn glue_dir(&self) -> &Path {
        self.dir.path()
    }

    fn check_files(&self) -> Result<(), EvalError> {
        for e in &self.settings.network_exprs {
            if let NetworkExpr::File(p) = e {
                if !p.exists() {
                    return Err(EvalError::MissingNetworkFile { path: p.clone() });
                }
            }
        }
        Ok(())
    }

    /// The arguments common to every call (V1 order), with the physical
    /// expression at `physical`, if any.
    fn common(&self, physical: Option<&Path>, check: bool) -> Vec<String> {
        let s = &self.settings;
        let mut a = Vec::new();
        for p in &s.nix_path {
            a.extend(["-I".to_owned(), p.clone()]);
        }
        a.extend(s.nix_flags.to_args());
        a.extend([
            "-I".to_owned(),
            format!("nixops={}", self.dir.path().display()),
        ]);
        let args = NixValue::Attrs(
            s.args
                .iter()
                .map(|(k, v)| (k.clone(), NixValue::raw(v.clone())))
                .collect(),
        );
        a.extend([
            "--arg".to_owned(),
            "networkExprs".to_owned(),
            py2nix(&NixValue::List(self.exprs()), true),
            "--arg".to_owned(),
            "args".to_owned(),
            py2nix(&args, true),
            "--argstr".to_owned(),
            "uuid".to_owned(),
            s.uuid.clone(),
            "--argstr".to_owned(),
            "deploymentName".to_owned(),
            s.deployment_name.clone(),
            "--arg".to_owned(),
            "checkConfigurationOptions".to_owned(),
            check.to_string(),
        ]);
        if let Some(p) = physical {
            a.extend([
                "--arg".to_owned(),
                "physicalExprs".to_owned(),
                py2nix(
                    &NixValue::List(vec![NixValue::str(p.to_string_lossy())]),
                    true,
                ),
            ]);
        }
        a.extend([self
            .dir
            .path()
            .join("eval-machine-info.nix")
            .display()
            .to_string()]);
        a
    }

    fn exprs(&self) -> Vec<NixValue> {
        self.settings
            .network_exprs
            .iter()
            .map(NetworkExpr::to_nix)
            .collect()
    }

    /// `nix-instantiate --eval-only --strict` on the glue with `extra` arguments.
    fn instantiate_cmd(&self, physical: Option<&Path>, check: bool, extra: &[&str]) -> Cmd {
        let mut cmd = Cmd::new("nix-instantiate");
        if !self.settings.read_only {
            cmd = cmd.arg("--read-write-mode");
        }
        cmd.args(self.common(physical, check))
            .args(["--eval-only", "--strict"])
            .args(extra)
    }

    fn instantiate(&self, cmd: Cmd) -> Result<Vec<u8>, EvalError> {
        self.check_files()?;
        let out = cmd.output_unchecked().map_err(EvalError::Exec)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(EvalError::Nix {
                cmd: cmd.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// The command [`Evaluator::info`] runs. Unknown options are errors.
    pub fn info_cmd(&self) -> Cmd {
        self.instantiate_cmd(None, true, &["--json", "-A", "info"])
    }

    /// The command [`Evaluator::machine_names`] runs.
    pub fn machine_names_cmd(&self) -> Cmd {
        self.instantiate_cmd(None, false, &["--json", "-A", "machineNames"])
    }

    /// The names of the machines the network files define, read without
    /// evaluating any machine (a few milliseconds). Not validated: a bad name is
    /// reported by [`Evaluator::info`].
    pub fn machine_names(&self) -> Result<Vec<String>, EvalError> {
        let out = self.instantiate(self.machine_names_cmd())?;
        serde_json::from_slice(&out).map_err(|source| EvalError::Json {
            cmd: "nix-instantiate -A machineNames".to_owned(),
            source,
        })
    }

    /// The command [`Evaluator::arguments`] runs.
    pub fn arguments_cmd(&self) -> Cmd {
        self.instantiate_cmd(None, false, &["--json", "-A", "nixopsArguments"])
    }

    /// The command [`Evaluator::show_option`] runs; `physical` is the path of
    /// a physical expression to add to the network.
    pub fn show_option_cmd(
        &self,
        machine: &MachineName,
        option: &str,
        format: OptionFormat,
        physical: Option<&Path>,
    ) -> Cmd {
        let attr = format!(
            "nodes.{}.config.{option}",
            py2nix::attr_name(machine.as_str())
        );
        let mut extra = vec!["-A", attr.as_str()];
        match format {
            OptionFormat::Nix => {}
            OptionFormat::Json => extra.push("--json"),
            OptionFormat::Xml => extra.push("--xml"),
        }
        self.instantiate_cmd(physical, false, &extra)
    }

    /// The command [`Evaluator::build`] runs, with the physical expression at `physical`.
    pub fn build_cmd(
        &self,
        names: &[MachineName],
        physical: &Path,
        dry_run: bool,
        repair: bool,
    ) -> Cmd {
        let names_arg = NixValue::List(names.iter().map(|n| NixValue::str(n.as_str())).collect());
        let mut cmd = Cmd::new("nix-build")
            .args(self.common(Some(physical), true))
            .args(["--arg", "names"])
            .arg(py2nix(&names_arg, true))
            .args(["-A", "machines", "-o"])
            .arg(self.dir.path().join("configs"));
        if dry_run {
            cmd = cmd.arg("--dry-run");
        }
        if repair {
            cmd = cmd.arg("--repair");
        }
        cmd
    }

    /// Evaluate the whole network once: network attributes, every machine's
    /// deployment options and keys, the resources. Unknown options are errors,
    /// so that a typo stops a deploy before any machine is created.
    pub fn info(&self) -> Result<NetworkInfo, EvalError> {
        let cmd = self.info_cmd();
        let out = self.instantiate(cmd)?;
        NetworkInfo::parse(&out, "nix-instantiate -A info")
    }

    /// The command [`Evaluator::plan`] runs, with the physical expression at
    /// `physical`. Needs read-write mode: it writes the derivations.
    pub fn plan_cmd(&self, physical: &Path, include: &[String], exclude: &[String]) -> Cmd {
        let list = |names: &[String]| {
            py2nix(
                &NixValue::List(names.iter().map(NixValue::str).collect()),
                true,
            )
        };
        let (include, exclude) = (list(include), list(exclude));
        self.instantiate_cmd(
            Some(physical),
            true,
            &[
                "--json",
                "-A",
                "plan",
                "--arg",
                "include",
                include.as_str(),
                "--arg",
                "exclude",
                exclude.as_str(),
            ],
        )
    }

    /// One evaluation for a deploy: `info`, and the derivation building the
    /// machines that `include`/`exclude` select, with `physical_nix` (a guess
    /// made from the state before evaluating) added to the network. `None`
    /// when the evaluator is read-only, since the derivations must be written.
    /// A Nix error here may come from the guess: the caller falls back to
    /// [`Evaluator::info`], whose errors are the ones to show.
    pub fn plan(
        &self,
        physical_nix: &str,
        include: &[String],
        exclude: &[String],
    ) -> Result<Option<Plan>, EvalError> {
        match self.spawn_plan(physical_nix, include, exclude)? {
            Some(pending) => pending.wait().map(Some),
            None => Ok(None),
        }
    }

    /// [`Evaluator::plan`], started in the background: the evaluation runs
    /// while the caller does other work, and [`PendingPlan::wait`] collects it.
    pub fn spawn_plan(
        &self,
        physical_nix: &str,
        include: &[String],
        exclude: &[String],
    ) -> Result<Option<PendingPlan>, EvalError> {
        if self.settings.read_only {
            return Ok(None);
        }
        self.check_files()?;
        let physical = self.write_physical("physical-plan.nix", physical_nix)?;
        let cmd = self.plan_cmd(&physical, include, exclude);
        // Files, not pipes: nothing reads them until the evaluation is done.
        let out = self.dir.path().join("plan.json");
        let err = self.dir.path().join("plan.log");
        let open = |path: &Path| {
            std::fs::File::create(path).map_err(|source| EvalError::Io {
                path: path.to_owned(),
                source,
            })
        };
        let child = cmd
            .to_command()
            .stdin(std::process::Stdio::null())
            .stdout(open(&out)?)
            .stderr(open(&err)?)
            .spawn()
            .map_err(|source| {
                EvalError::Exec(ExecError::Spawn {
                    cmd: cmd.to_string(),
                    source,
                })
            })?;
        Ok(Some(PendingPlan {
            child: Some(child),
            cmd: cmd.to_string(),
            out,
            err,
            physical: physical_nix.to_owned(),
        }))
    }

    /// The command [`Evaluator::realise`] runs.
    pub fn realise_cmd(&self, planned: &PlannedBuild, repair: bool) -> Cmd {
        let mut cmd = Cmd::new("nix-store")
            .args(self.settings.nix_flags.to_args())
            .arg("--realise")
            .arg(&planned.drv_path)
            .arg("--add-root")
            .arg(self.dir.path().join("configs"))
            .arg("--indirect");
        if repair {
            cmd = cmd.arg("--repair");
        }
        cmd
    }

    /// Build a planned derivation (as [`Evaluator::build`] does, without
    /// evaluating again). Returns the `machines` directory, which stays a GC
    /// root as long as the evaluator lives.
    pub fn realise(
        &self,
        planned: &PlannedBuild,
        repair: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<PathBuf, EvalError> {
        run_build(&self.realise_cmd(planned, repair), on_line)?;
        Ok(planned.out_path.clone())
    }

    /// `nixopsArguments`: every function argument of the network files, with
    /// the files that take it.
    pub fn arguments(&self) -> Result<BTreeMap<String, Vec<String>>, EvalError> {
        let out = self.instantiate(self.arguments_cmd())?;
        serde_json::from_slice(&out).map_err(|source| EvalError::Json {
            cmd: "nix-instantiate -A nixopsArguments".to_owned(),
            source,
        })
    }

    /// Write a physical expression to `name` in the evaluator's directory.
    fn write_physical(&self, name: &str, physical_nix: &str) -> Result<PathBuf, EvalError> {
        let path = self.dir.path().join(name);
        std::fs::write(&path, physical_nix).map_err(|source| EvalError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The raw output of `nix-instantiate -A nodes.<m>.config.<option>`, with
    /// unknown options allowed (as `show-option` does). With `physical_nix`,
    /// that expression is evaluated together with the network.
    pub fn show_option(
        &self,
        machine: &MachineName,
        option: &str,
        format: OptionFormat,
        physical_nix: Option<&str>,
    ) -> Result<String, EvalError> {
        let physical = physical_nix
            .map(|p| self.write_physical("physical.nix", p))
            .transpose()?;
        let cmd = self.show_option_cmd(machine, option, format, physical.as_deref());
        let out = self.instantiate(cmd)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Build the configurations of `names` in one `nix-build` (so Nix builds
    /// them in parallel), with `physical_nix` added to the network. Returns the
    /// store path of a directory holding one symlink per machine to its
    /// toplevel, or `None` for a dry run. Nix's log lines go to `on_line`.
    /// The result stays a GC root as long as the evaluator lives.
    pub fn build(
        &self,
        names: &[MachineName],
        physical_nix: &str,
        dry_run: bool,
        repair: bool,
        on_line: &mut dyn FnMut(&str),
    ) -> Result<Option<PathBuf>, EvalError> {
        self.check_files()?;
        let physical = self.write_physical("physical.nix", physical_nix)?;
        let cmd = self.build_cmd(names, &physical, dry_run, repair);
        // Nix logs on stderr; stdout is only the result path.
        let out = run_build(&cmd, on_line)?;
        if dry_run {
            return Ok(None);
        }
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .map(PathBuf::from))
    }
}

/// Run a build command, its log lines (stderr) to `on_line`; a failure is
/// [`EvalError::Build`] with Nix's message. Stdout (the result paths) stays in
/// the output and is not logged.
fn run_build(cmd: &Cmd, on_line: &mut dyn FnMut(&str)) -> Result<crate::exec::Output, EvalError> {
    let out = cmd
        .run_streaming_unchecked(&mut |stream, line| {
            if stream == crate::exec::Stream::Stderr {
                on_line(line)
            }
        })
        .map_err(EvalError::Exec)?;
    if !out.status.success() {
        return Err(EvalError::Build {
            cmd: cmd.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(cmd: &Cmd) -> Vec<String> {
        std::iter::once(cmd.program())
            .chain(cmd.get_args().iter().map(|a| a.as_os_str()))
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    fn evaluator() -> Evaluator {
        let settings = EvalSettings {
            network_exprs: vec![
                NetworkExpr::parse("/net/a.nix"),
                NetworkExpr::parse("<nixops/templates/x.nix>"),
            ],
            args: BTreeMap::from([
                ("n".to_owned(), "1".to_owned()),
                ("odd-key".to_owned(), r#""a \${b}""#.to_owned()),
            ]),
            uuid: "u-1".into(),
            deployment_name: "d".into(),
            nix_path: vec!["nixpkgs=/np".into(), "/other".into()],
            nix_flags: NixFlags {
                options: vec![("substituters".into(), String::new())],
                max_jobs: Some("4".into()),
                cores: Some(2),
                keep_going: true,
                keep_failed: true,
                show_trace: true,
                fallback: true,
                no_build_output: true,
            },
            read_only: false,
        };
        Evaluator::new(settings).expect("invariant: a temp dir can be created")
    }

    /// The arguments every call shares, in NixOps' order.
    fn common(ev: &Evaluator, exprs: &str, check: bool, physical: Option<&str>) -> Vec<String> {
        let dir = ev.glue_dir().display().to_string();
        let mut v = strings(&[
            "-I",
            "nixpkgs=/np",
            "-I",
            "/other",
            "--option",
            "substituters",
            "",
            "--max-jobs",
            "4",
            "--cores",
            "2",
            "--keep-going",
            "--keep-failed",
            "--show-trace",
            "--fallback",
            "--no-build-output",
            "-I",
        ]);
        v.push(format!("nixops={dir}"));
        v.extend(strings(&[
            "--arg",
            "networkExprs",
            exprs,
            "--arg",
            "args",
            r#"{ n = 1; "odd-key" = "a \${b}"; }"#,
            "--argstr",
            "uuid",
            "u-1",
            "--argstr",
            "deploymentName",
            "d",
            "--arg",
            "checkConfigurationOptions",
            if check { "true" } else { "false" },
        ]));
        if let Some(p) = physical {
            v.extend(strings(&["--arg", "physicalExprs", p]));
        }
        v.push(format!("{dir}/eval-machine-info.nix"));
        v
    }

    #[test]
    fn info_argv() {
        let ev = evaluator();
        let mut want = strings(&["nix-instantiate", "--read-write-mode"]);
        want.extend(common(
            &ev,
            r#"[ "/net/a.nix" <nixops/templates/x.nix> ]"#,
            true,
            None,
        ));
        want.extend(strings(&[
            "--eval-only",
            "--strict",
            "--json",
            "-A",
            "info",
        ]));
        assert_eq!(argv(&ev.info_cmd()), want);
    }

    #[test]
    fn build_argv() {
        let ev = evaluator();
        let names = [
            MachineName::new("a").expect("valid"),
            MachineName::new("b-2").expect("valid"),
        ];
        let cmd = ev.build_cmd(&names, Path::new("/t/physical.nix"), true, true);
        let mut want = strings(&["nix-build"]);
        want.extend(common(
            &ev,
            r#"[ "/net/a.nix" <nixops/templates/x.nix> ]"#,
            true,
            Some(r#"[ "/t/physical.nix" ]"#),
        ));
        want.extend(strings(&[
            "--arg",
            "names",
            r#"[ "a" "b-2" ]"#,
            "-A",
            "machines",
            "-o",
        ]));
        want.push(ev.glue_dir().join("configs").display().to_string());
        want.extend(strings(&["--dry-run", "--repair"]));
        assert_eq!(argv(&cmd), want);
    }

    #[test]
    fn show_option_argv_quotes_the_machine() {
        let ev = evaluator();
        let m = MachineName::new("db.example").expect("valid");
        let args = argv(&ev.show_option_cmd(&m, "networking.hostName", OptionFormat::Xml, None));
        assert_eq!(
            args[args.len() - 3..],
            strings(&[
                "-A",
                r#"nodes."db.example".config.networking.hostName"#,
                "--xml"
            ])
        );
        let check = args
            .iter()
            .position(|a| a == "checkConfigurationOptions")
            .expect("invariant: always passed");
        assert_eq!(
            args[check + 1],
            "false",
            "show-option does not check options"
        );
    }

    #[test]
    fn read_only_mode_drops_read_write() {
        let mut ev = evaluator();
        ev.settings.read_only = true;
        assert_eq!(argv(&ev.arguments_cmd())[1], "-I");
    }

    #[test]
    fn network_expr_parsing() {
        assert_eq!(
            NetworkExpr::parse("<a/b.nix>"),
            NetworkExpr::Lookup("a/b.nix".into())
        );
        assert_eq!(
            NetworkExpr::parse("/x.nix"),
            NetworkExpr::File("/x.nix".into())
        );
        match NetworkExpr::parse("rel.nix") {
            NetworkExpr::File(p) => assert!(p.is_absolute() && p.ends_with("rel.nix")),
            other => panic!("{other:?}"),
        }
    }
}
