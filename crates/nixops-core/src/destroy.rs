//! `destroy`: forgetting (and, for backends that can, destroying) resources, and
//! the rollback generation that records the machines that remain.
//!
//! Owns which resources a destroy selects, what each backend does when destroying
//! (`none` machines are only forgotten: nothing on them changes), and building the
//! `nixops-machines` directory of the remaining machines from their recorded
//! toplevels. It does not ask for confirmation or take the deployment lock (the
//! command does both) and never prints: progress goes to a [`Reporter`].

use std::path::{Path, PathBuf};

use crate::eval::py2nix::{attr_name, quote_string};
use crate::eval::NixFlags;
use crate::events::{Event, Phase, Reporter, Status};
use crate::exec::{Cmd, ExecError};
use crate::generations::{GenerationError, Profile};
use crate::state::{DeploymentRecord, ResourceRecord, StateError, StateFile};

#[derive(Debug, thiserror::Error)]
pub enum DestroyError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error("cannot update profile ‘{}’", .profile.display())]
    BuildProfile {
        profile: PathBuf,
        #[source]
        source: ExecError,
    },
    #[error(transparent)]
    Generation(#[from] GenerationError),
}

/// NixOps' `should_do`: not excluded, and included if there is an include list.
pub fn selects(include: &[String], exclude: &[String], name: &str) -> bool {
    !exclude.iter().any(|e| e == name) && (include.is_empty() || include.iter().any(|i| i == name))
}

/// The resources a destroy acts on: every selected one, active or obsolete.
pub fn select(
    depl: &DeploymentRecord,
    include: &[String],
    exclude: &[String],
) -> Vec<ResourceRecord> {
    depl.resources
        .iter()
        .filter(|r| selects(include, exclude, &r.name))
        .cloned()
        .collect()
}

/// What happened to each resource.
#[derive(Debug, Default)]
pub struct DestroySummary {
    /// Forgotten: their rows are gone from the state.
    pub destroyed: Vec<String>,
    /// Kept, because their backend cannot destroy them here.
    pub kept: Vec<String>,
}

/// Destroy `resources` (as [`select`] returned them) and delete the rows of
/// those that are gone. `none` machines are only forgotten.
pub fn destroy(
    state: &StateFile,
    resources: &[ResourceRecord],
    reporter: &dyn Reporter,
) -> Result<DestroySummary, DestroyError> {
    let mut summary = DestroySummary::default();
    for r in resources {
        if r.type_ == "none" {
            reporter.report(
                Event::new(Some(&r.name), Phase::Destroy, Status::Log)
                    .message("forgetting machine (nothing on it is changed)..."),
            );
            state.delete_resource(r.id)?;
            summary.destroyed.push(r.name.clone());
        } else {
            reporter.report(
                Event::new(Some(&r.name), Phase::Destroy, Status::Warning)
                    .message(format!("don't know how to destroy resource ‘{}’", r.name)),
            );
            summary.kept.push(r.name.clone());
        }
    }
    Ok(summary)
}

/// The Nix expression of a `nixops-machines` directory linking each machine to
/// its toplevel (NixOps' `update-profile.nix`, from `<nixpkgs>` like it).
fn machines_expr(machines: &[(String, String)]) -> String {
    let mut attrs = String::new();
    for (name, toplevel) in machines {
        attrs.push_str(&format!(
            "{} = builtins.storePath {}; ",
            attr_name(name),
            quote_string(toplevel)
        ));
    }
    format!(
        "let machines = {{ {attrs}}}; in \
         (import <nixpkgs> {{ }}).runCommand \"nixops-machines\" \
         {{ preferLocalBuild = true; allowSubstitutes = false; }} \
         (\"mkdir -p $out\\n\" + builtins.concatStringsSep \"\" \
         (map (n: \"ln -s ${{machines.${{n}}}} $out/${{n}}\\n\") (builtins.attrNames machines)))"
    )
}

/// The active machines of `depl` that have a recorded toplevel.
pub fn remaining_machines(depl: &DeploymentRecord) -> Vec<(String, String)> {
    depl.resources
        .iter()
        .filter(|r| crate::backend::is_machine_type(&r.type_) && !r.obsolete())
        .filter_map(|r| Some((r.name.clone(), r.toplevel()?.to_owned())))
        .collect()
}

/// Add a rollback generation holding `machines` (name, toplevel) to `profile`.
/// `nix_path` and `flags` are the deployment's, as for a build.
pub fn update_profile(
    profile: &Profile,
    machines: &[(String, String)],
    nix_path: &[String],
    flags: &NixFlags,
    tmp: &Path,
) -> Result<PathBuf, DestroyError> {
    let fail = |source| DestroyError::BuildProfile {
        profile: profile.path().to_owned(),
        source,
    };
    let out_link = tmp.join("nixops-machines");
    let mut cmd = Cmd::new("nix-build")
        .arg("-E")
        .arg(machines_expr(machines))
        .arg("-o")
        .arg(&out_link);
    for entry in nix_path {
        cmd = cmd.arg("-I").arg(entry);
    }
    let out = cmd.args(flags.to_args()).output().map_err(fail)?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let path = PathBuf::from(path);
    profile.set(&path)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_include_and_exclude() {
        let none: Vec<String> = vec![];
        assert!(selects(&none, &none, "a"));
        assert!(!selects(&["b".into()], &none, "a"));
        assert!(!selects(&none, &["a".into()], "a"));
    }

    #[test]
    fn the_expression_links_every_machine() {
        let e = machines_expr(&[("web-1".into(), "/nix/store/abc-x".into())]);
        assert!(
            e.contains("\"web-1\" = builtins.storePath \"/nix/store/abc-x\";"),
            "{e}"
        );
        assert!(e.contains("import <nixpkgs>"), "{e}");
    }
}
