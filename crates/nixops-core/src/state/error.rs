//! The error type of the state layer.
//!
//! Owns `StateError`: every failure of opening, reading or writing a state file,
//! of selecting a deployment, of import/export and of the deployment lock. Variants
//! carry the path, UUID or resource they concern. Texts follow NixOps where the
//! specification gives them; the CLI prints `error: <Display>`.

use std::path::PathBuf;

/// Everything that can go wrong in the state layer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The `-s` / `$NIXOPS_STATE` path lacks a `.nixops` or `.charon` extension.
    #[error("state file ‘{}’ should have extension ‘.nixops’", path.display())]
    BadExtension {
        /// The offending path.
        path: PathBuf,
    },
    /// A filesystem operation on the state file, its directory or a lock file failed.
    #[error("cannot {action} ‘{}’: {source}", path.display())]
    Io {
        /// What we were doing, e.g. `create state file`.
        action: &'static str,
        /// The path concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused or failed; also a file that is not a database.
    #[error("state file ‘{}’: {source}", path.display())]
    Sqlite {
        /// The state file.
        path: PathBuf,
        /// The SQLite error.
        #[source]
        source: rusqlite::Error,
    },
    /// The file has a schema newer than the one we know.
    #[error("state file ‘{}’ has schema version {version}; this nixops only understands versions up to 3", path.display())]
    SchemaTooNew {
        /// The state file.
        path: PathBuf,
        /// The version found in `SchemaVersion`.
        version: i64,
    },
    /// A deployment name that another deployment already has.
    #[error("deployment name ‘{name}’ is already used by deployment ‘{uuid}’")]
    DuplicateName {
        /// The name.
        name: String,
        /// The deployment that has it.
        uuid: String,
    },
    /// `-d` matched nothing (or the file has no deployment at all).
    #[error("could not find specified deployment in state file ‘{}’", path.display())]
    DeploymentNotFound {
        /// The state file.
        path: PathBuf,
        /// The selector given with `-d`, if any.
        selector: Option<String>,
    },
    /// No `-d` and more than one deployment.
    #[error("state file contains multiple deployments, so you should specify which one to use using ‘-d’, or set the environment variable NIXOPS_DEPLOYMENT")]
    MultipleDeployments,
    /// `-d` matched several deployments (same name or ambiguous UUID prefix).
    #[error("state file contains multiple deployments with the same name, so you should specify one using its UUID")]
    AmbiguousDeployment {
        /// The selector given with `-d`.
        selector: String,
    },
    /// A deployment UUID that is not in the file (API misuse or a concurrent delete).
    #[error("deployment ‘{uuid}’ does not exist in the state file")]
    NoSuchDeployment {
        /// The UUID asked for.
        uuid: String,
    },
    /// A resource id that is not in the file.
    #[error("resource #{id} does not exist in the state file")]
    NoSuchResource {
        /// The resource id asked for.
        id: i64,
    },
    /// Deployment name not matching `^[a-zA-Z_\-][a-zA-Z0-9_\-\.]*$`.
    #[error("invalid deployment name ‘{name}’")]
    InvalidDeploymentName {
        /// The rejected name.
        name: String,
    },
    /// `delete` without `--force` on a deployment that has resources.
    #[error("cannot delete this deployment because it still has resources")]
    HasResources {
        /// The deployment.
        uuid: String,
    },
    /// A resource of that name already exists in the deployment.
    #[error("resource already exists in database!")]
    ResourceExists {
        /// The deployment.
        uuid: String,
        /// The resource name.
        name: String,
    },
    /// `rename FROM TO`: no resource FROM.
    #[error("resource ‘{name}’ not found")]
    ResourceNotFound {
        /// The deployment.
        uuid: String,
        /// The missing resource name.
        name: String,
    },
    /// `rename FROM TO`: TO is taken.
    #[error("resource with name ‘{name}’ already exists")]
    ResourceNameTaken {
        /// The deployment.
        uuid: String,
        /// The name already in use.
        name: String,
    },
    /// `rename FROM TO`: TO does not match `^[\w-]+$`.
    #[error("{name} is not a valid resource identifier")]
    InvalidResourceName {
        /// The rejected name.
        name: String,
    },
    /// `set-args --arg NAME VALUE` with an unusable name.
    #[error("invalid argument name ‘{name}’")]
    InvalidArgName {
        /// The rejected name.
        name: String,
    },
    /// `set-args --arg NAME ''`: an empty Nix expression.
    #[error("argument ‘{name}’ has an empty value, which is not a Nix expression")]
    EmptyArgValue {
        /// The argument name.
        name: String,
    },
    /// An attribute that should hold JSON does not parse.
    #[error("attribute ‘{attr}’ of {owner} is not valid JSON: {source}")]
    BadJsonAttr {
        /// `deployment ‘uuid’` or `resource ‘name’`.
        owner: String,
        /// The attribute name.
        attr: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `import`: the input is not JSON of the export shape.
    #[error("cannot import: {reason}")]
    BadImport {
        /// What is wrong, naming the deployment/resource/attribute.
        reason: String,
    },
    /// `import`: the input is not JSON at all.
    #[error("cannot import: input is not valid JSON: {source}")]
    ImportJson {
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// `import`: a resource without `type`.
    #[error("imported resource lacks a type")]
    ImportedResourceLacksType {
        /// The deployment.
        uuid: String,
        /// The resource.
        resource: String,
    },
    /// `import`: the UUID exists already.
    #[error("state file already contains a deployment with UUID ‘{uuid}’")]
    DeploymentExists {
        /// The UUID.
        uuid: String,
    },
    /// Deployment lock held by another process and the policy was `NoWait`.
    #[error("deployment ‘{name}’ is locked by {holder}")]
    Locked {
        /// Name (or UUID) of the deployment.
        name: String,
        /// Who holds it, e.g. `pid 123 (nixops deploy)`.
        holder: LockHolder,
    },
}

/// The process holding a deployment lock, as written into the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockHolder {
    /// Its process id, if the lock file names one.
    pub pid: Option<u32>,
    /// Its description, e.g. `nixops deploy`.
    pub description: String,
}

impl std::fmt::Display for LockHolder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.pid {
            Some(pid) if self.description.is_empty() => write!(f, "pid {pid}"),
            Some(pid) => write!(f, "pid {pid} ({})", self.description),
            None => f.write_str("another process"),
        }
    }
}
