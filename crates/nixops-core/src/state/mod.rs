//! The SQLite state file in NixOps' schema version 3.
//!
//! Owns opening (creation with mode 0600, WAL, foreign keys, busy timeout, schema
//! creation and the v1→v2→v3 migrations, refusal of newer or foreign files without
//! touching them), bulk loading of deployments, deployment selection by `-d`, every
//! mutation (each in one immediate transaction), export/import and the deployment
//! lock. Commands that only read open the file without writing anything
//! ([`StateFile::open_for_reading`]). Files it writes open in Python NixOps and vice versa. It never prints:
//! migrations and other notable events are returned as values for the CLI to show.

mod args;
mod error;
mod lock;
mod pages;
mod path;
mod pyjson;
mod records;
mod resource_list;
mod scan;
mod transfer;
mod view;

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension};

pub use args::{apply_set_args, is_valid_arg_name, nix_string_literal, SetArgs};
pub use error::{LockHolder, StateError};
pub use lock::{DeploymentLock, LockWait};
pub use path::{
    check_extension, locks_dir, nixops_home, prepare_nixops_home, resolve_state_path, HomePrepared,
    StateEnv,
};
pub use pyjson::PyStyle;
use resource_list::ResourceList;

pub use records::{
    depl_attr, AttrValue, DeploymentRecord, ResourceRecord, ResourceState, DEFAULT_DESCRIPTION,
};
pub use view::{ResourceView, StateSnapshot};

/// The schema version this library reads and writes.
pub const SCHEMA_VERSION: i64 = 3;

/// The DDL NixOps runs on a new file, statement by statement, so that
/// `sqlite3 FILE .schema` shows the same text for files from either program.
pub const SCHEMA_DDL: &str = "create table if not exists SchemaVersion(
  version integer not null
);
insert into SchemaVersion(version) values (3);

create table if not exists Deployments(
  uuid text primary key
);

create table if not exists DeploymentAttrs(
  deployment text not null,
  name text not null,
  value text not null,
  primary key(deployment, name),
  foreign key(deployment) references Deployments(uuid) on delete cascade
);

create table if not exists Resources(
  id integer primary key autoincrement,
  deployment text not null,
  name text not null,
  type text not null,
  foreign key(deployment) references Deployments(uuid) on delete cascade
);

create table if not exists ResourceAttrs(
  machine integer not null,
  name text not null,
  value text not null,
  primary key(machine, name),
  foreign key(machine) references Resources(id) on delete cascade
);
";

const SCHEMA_VERSION_DDL: &str = "create table if not exists SchemaVersion(
  version integer not null
);
insert into SchemaVersion(version) values (3);
";

/// How to open a state file.
#[derive(Debug, Clone)]
pub struct StateOpenOptions {
    /// How long to wait for another writer (NixOps: 60 s).
    pub busy_timeout: Duration,
}

impl Default for StateOpenOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(60),
        }
    }
}

/// An open state file.
#[derive(Debug)]
pub struct StateFile {
    conn: Connection,
    path: PathBuf,
    busy_timeout: Duration,
    created: bool,
    migrated: Vec<(u32, u32)>,
    /// Whether the buffers of bulk reads are left to the process's exit (see
    /// [`StateFile::leave_memory_to_exit`]).
    leave_memory: bool,
}

/// Resource names must match `^[\w-]+$` (ASCII `\w`, as in Python 2).
fn is_valid_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Deployment names must match `^[a-zA-Z_\-][a-zA-Z0-9_\-\.]*$`.
pub fn validate_deployment_name(name: &str) -> Result<(), StateError> {
    let mut chars = name.chars();
    let ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == '-')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(StateError::InvalidDeploymentName {
            name: name.to_string(),
        })
    }
}

/// A new time-based (version 1) UUID like Python's `uuid.uuid1()`, with a random
/// node id instead of the MAC address.
pub fn new_deployment_uuid() -> String {
    let random = uuid::Uuid::new_v4();
    let mut node = [0u8; 6];
    node.copy_from_slice(&random.as_bytes()[..6]);
    // Multicast bit set: marks the node id as random (RFC 4122 §4.5), as Python does.
    node[0] |= 0x01;
    uuid::Uuid::now_v1(&node).to_string()
}

/// The WAL file of the database at `db`.
fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    PathBuf::from(wal)
}

/// The first 100 bytes of a SQLite file, or why it is not one.
fn check_header(path: &Path, len: u64) -> Result<(), String> {
    let mut header = [0u8; 100];
    let mut f = fs::File::open(path).map_err(|e| e.to_string())?;
    f.read_exact(&mut header).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => "file is too short to be a database".to_string(),
        _ => e.to_string(),
    })?;
    if &header[..16] != b"SQLite format 3\0" {
        return Err("file is not a database".into());
    }
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65536u64,
        n => u64::from(n),
    };
    let pages = u64::from(u32::from_be_bytes([
        header[28], header[29], header[30], header[31],
    ]));
    let counter_valid = header[24..28] == header[92..96];
    // The in-header size is trustworthy only when it was written with the change
    // counter; a larger count than the file holds means the file was cut short.
    if counter_valid && pages > 0 && pages * page_size > len && !wal_path(path).exists() {
        return Err(format!(
            "file is truncated ({len} bytes, header says {} bytes)",
            pages * page_size
        ));
    }
    Ok(())
}

/// Whether `path` is a SQLite file whose header says WAL mode (read and write
/// versions 2) and that passes [`check_header`].
fn is_wal_file(path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if !meta.is_file() || check_header(path, meta.len()).is_err() {
        return false;
    }
    let mut header = [0u8; 20];
    fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok()
        && header[18] == 2
        && header[19] == 2
}

fn table_exists(conn: &Connection, table: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "select 1 from sqlite_master where name = ? and type = 'table'",
        [table],
        |_| Ok(()),
    )
    .optional()
    .map(|r| r.is_some())
}

/// The schema version: `SchemaVersion`'s row, 1 if only `Deployments` exists, 0 if new.
fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    if table_exists(conn, "SchemaVersion")? {
        conn.query_row("select version from SchemaVersion", [], |r| r.get(0))
    } else if table_exists(conn, "Deployments")? {
        Ok(1)
    } else {
        Ok(0)
    }
}

impl StateFile {
    /// Open (or create) the state file at `path` with default options.
    pub fn open(path: &Path) -> Result<StateFile, StateError> {
        Self::open_with(path, &StateOpenOptions::default())
    }

    /// Open (or create) the state file at `path`.
    ///
    /// A missing file is created with mode 0600 (and its directory with 0700). An
    /// existing file is first inspected read-only: a file that is not SQLite, is
    /// truncated or has a schema newer than 3 is refused with its bytes unchanged.
    /// Older schemas are migrated; see [`StateFile::migrated`].
    pub fn open_with(path: &Path, opts: &StateOpenOptions) -> Result<StateFile, StateError> {
        let sqlite_err = |source| StateError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let mut created = false;
        let len = match fs::metadata(path) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    if !parent.is_dir() {
                        fs::DirBuilder::new()
                            .recursive(true)
                            .mode(0o700)
                            .create(parent)
                            .map_err(|source| StateError::Io {
                                action: "create directory",
                                path: parent.to_path_buf(),
                                source,
                            })?;
                    }
                }
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(path)
                {
                    Ok(_) => created = true,
                    // Another process created it in between; fine.
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(source) => {
                        return Err(StateError::Io {
                            action: "create state file",
                            path: path.to_path_buf(),
                            source,
                        })
                    }
                }
                0
            }
            Err(source) => {
                return Err(StateError::Io {
                    action: "access state file",
                    path: path.to_path_buf(),
                    source,
                })
            }
        };

        if len > 0 {
            check_header(path, len).map_err(|reason| {
                sqlite_err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_NOTADB),
                    Some(reason),
                ))
            })?;
            // Look before writing: nothing, not even the journal mode, may change in a
            // file we end up refusing.
            let ro = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(sqlite_err)?;
            ro.busy_timeout(opts.busy_timeout).map_err(sqlite_err)?;
            let version = schema_version(&ro).map_err(sqlite_err)?;
            if version > SCHEMA_VERSION {
                return Err(StateError::SchemaTooNew {
                    path: path.to_path_buf(),
                    version,
                });
            }
            drop(ro);
        }

        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sqlite_err)?;
        conn.busy_timeout(opts.busy_timeout).map_err(sqlite_err)?;
        conn.query_row("pragma journal_mode = wal", [], |_| Ok(()))
            .map_err(sqlite_err)?;
        conn.execute_batch("pragma foreign_keys = 1")
            .map_err(sqlite_err)?;
        // Read pages through a memory map instead of a pread() copy each: loading
        // every deployment of a large file spends a sixth of its time copying pages.
        // Only reads use the map; writes still go through the WAL.
        conn.pragma_update(None, "mmap_size", scan::MMAP_SIZE)
            .map_err(sqlite_err)?;
        let mut sf = StateFile {
            conn,
            path: path.to_path_buf(),
            busy_timeout: opts.busy_timeout,
            created,
            migrated: Vec::new(),
            leave_memory: false,
        };
        sf.migrated = sf.write_tx(|c| {
            let version = schema_version(c)?;
            let mut steps = Vec::new();
            match version {
                SCHEMA_VERSION => {}
                0 => c.execute_batch(SCHEMA_DDL)?,
                v if v < SCHEMA_VERSION => {
                    if v <= 1 {
                        c.execute_batch(SCHEMA_VERSION_DDL)?;
                        steps.push((1, 2));
                    }
                    c.execute_batch(
                        "alter table Machines rename to Resources;
                         alter table MachineAttrs rename to ResourceAttrs;",
                    )?;
                    steps.push((2, 3));
                    c.execute("update SchemaVersion set version = ?", [SCHEMA_VERSION])?;
                }
                v => {
                    return Err(StateError::SchemaTooNew {
                        path: path.to_path_buf(),
                        version: v,
                    }
                    .into())
                }
            }
            Ok(steps)
        })?;
        Ok(sf)
    }

    /// Open the state file at `path` for commands that only read it (`info`,
    /// `export`, ...), without taking the write lock or changing anything.
    ///
    /// A file that exists, is in WAL mode (as every file NixOps or this library
    /// has opened) and has schema version 3 is opened as is: no journal mode
    /// switch, no schema transaction. Anything else (a missing or empty file, a
    /// file in rollback-journal mode, an older or newer schema, a file that is not
    /// SQLite) goes through [`StateFile::open`], which creates, migrates or refuses
    /// it exactly as for any other command.
    pub fn open_for_reading(path: &Path) -> Result<StateFile, StateError> {
        let opts = StateOpenOptions::default();
        if !is_wal_file(path) {
            return Self::open_with(path, &opts);
        }
        // Read-write but never written through: a read-only connection could not
        // remove the WAL files on close as NixOps' connections do. No mutex: a
        // `Connection` is `Send` but not `Sync`, so it is never used by two threads
        // at once, and SQLite's per-call locking would only cost time.
        let Ok(conn) = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        ) else {
            return Self::open_with(path, &opts);
        };
        let sqlite_err = |source| StateError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        conn.busy_timeout(opts.busy_timeout).map_err(sqlite_err)?;
        conn.pragma_update(None, "mmap_size", scan::MMAP_SIZE)
            .map_err(sqlite_err)?;
        if schema_version(&conn).map_err(sqlite_err)? != SCHEMA_VERSION {
            drop(conn);
            return Self::open_with(path, &opts);
        }
        Ok(StateFile {
            conn,
            path: path.to_path_buf(),
            busy_timeout: opts.busy_timeout,
            created: false,
            migrated: Vec::new(),
            leave_memory: false,
        })
    }

    /// For a process that ends soon after reading: the buffers of bulk reads
    /// (`info --all`, `export`) are then not given back. Unmapping megabytes
    /// that several threads have used costs more than the kernel's teardown of
    /// the whole process, which happens anyway.
    pub fn leave_memory_to_exit(&mut self) {
        self.leave_memory = true;
    }

    /// Drop `value`, or leave it to the process's exit (see
    /// [`StateFile::leave_memory_to_exit`]).
    fn dispose<T>(&self, value: T) {
        if self.leave_memory {
            std::mem::forget(value);
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `open` created the file.
    pub fn created(&self) -> bool {
        self.created
    }

    /// Schema migrations done by `open`, e.g. `[(1, 2), (2, 3)]`; the CLI prints
    /// `updating database schema from version 1 to 2...` for each.
    pub fn migrated(&self) -> &[(u32, u32)] {
        &self.migrated
    }

    fn sqlite_err(&self) -> impl Fn(rusqlite::Error) -> StateError + '_ {
        move |source| StateError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Run `f` in one `begin immediate` transaction (taking the write lock up front,
    /// so concurrent writers queue on the busy timeout instead of failing on upgrade).
    fn write_tx<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, TxError>,
    ) -> Result<T, StateError> {
        let conn = &self.conn;
        conn.execute_batch("begin immediate")
            .map_err(self.sqlite_err())?;
        match f(conn) {
            Ok(v) => {
                conn.execute_batch("commit").map_err(|e| {
                    let _ = conn.execute_batch("rollback");
                    self.sqlite_err()(e)
                })?;
                Ok(v)
            }
            Err(e) => {
                let _ = conn.execute_batch("rollback");
                Err(match e {
                    TxError::Sqlite(source) => self.sqlite_err()(source),
                    TxError::State(e) => e,
                })
            }
        }
    }

    /// UUIDs of all deployments, sorted.
    pub fn uuids(&self) -> Result<Vec<String>, StateError> {
        let mut stmt = self
            .conn
            .prepare_cached("select uuid from Deployments order by uuid")
            .map_err(self.sqlite_err())?;
        let rows = stmt
            .query_map([], |r| r.get(0))
            .map_err(self.sqlite_err())?;
        rows.collect::<Result<_, _>>().map_err(self.sqlite_err())
    }

    /// Every deployment with its attributes and resources, sorted by UUID, loaded with
    /// four queries in one read transaction.
    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, StateError> {
        self.load_where(None, AttrSet::All)
    }

    /// Every deployment with its attributes and resources but *without* resource
    /// attributes (`attrs` empty): enough for `list` (names, types, counts) and much
    /// cheaper on large files.
    pub fn deployments_shallow(&self) -> Result<Vec<DeploymentRecord>, StateError> {
        self.load_where(None, AttrSet::None)
    }

    /// Every deployment with its attributes and resources, but of the resource
    /// attributes only those named in `names`: for commands that show a few
    /// attributes of every machine (`info --all`) without materialising the rest.
    pub fn deployments_with_attrs(
        &self,
        names: &[&str],
    ) -> Result<Vec<DeploymentRecord>, StateError> {
        self.load_where(None, AttrSet::Only(names))
    }

    /// One deployment by exact UUID.
    pub fn load(&self, uuid: &str) -> Result<DeploymentRecord, StateError> {
        self.load_where(Some(uuid), AttrSet::All)?
            .pop()
            .ok_or_else(|| StateError::NoSuchDeployment {
                uuid: uuid.to_string(),
            })
    }

    fn load_where(
        &self,
        uuid: Option<&str>,
        attrs: AttrSet<'_>,
    ) -> Result<Vec<DeploymentRecord>, StateError> {
        let Loaded {
            mut depls,
            resources,
            table,
        } = self.read_snapshot(uuid, attrs)?;
        for (i, d) in resources.depls().enumerate() {
            let mut res = resources.record(i);
            if let Some(table) = &table {
                res.attrs = table
                    .attrs(i)
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
            }
            depls[d].resources.push(res);
        }
        Ok(depls)
    }

    /// Read deployments (all, or the one `uuid`), their attributes and resources,
    /// and the resource attributes `attrs` names, in one read transaction.
    fn read_snapshot(&self, uuid: Option<&str>, attrs: AttrSet<'_>) -> Result<Loaded, StateError> {
        self.with_snapshot(uuid, attrs, pages::Values::Copy, |loaded| loaded)
    }

    /// [`StateFile::read_snapshot`], handed to `f` before the read transaction
    /// ends. Unless `values` is [`pages::Values::Copy`], the values of a bulk
    /// read may be left in the mapped file instead of being copied: `f` must be
    /// done with them when it returns.
    ///
    /// Reading all deployments reads `ResourceAttrs` and `Resources` straight
    /// from the file's pages when it can (see `pages::PageFile::open`), and
    /// otherwise scans `ResourceAttrs` of a large file on two SQLite connections
    /// in parallel (see `scan::SideReader` for why they see the same snapshot).
    fn with_snapshot<R>(
        &self,
        uuid: Option<&str>,
        attrs: AttrSet<'_>,
        values: pages::Values,
        f: impl FnOnce(Loaded) -> R,
    ) -> Result<R, StateError> {
        let e = self.sqlite_err();
        let conn = &self.conn;
        let only = match attrs {
            AttrSet::Only(names) => Some(names),
            AttrSet::None | AttrSet::All => None,
        };
        let bulk = uuid.is_none() && !matches!(attrs, AttrSet::None);
        let file_len = self.file_len();
        // The pages are read directly when the WAL is empty. A side connection
        // is only worth opening when it is not; it notes the data version before
        // the main read begins. It only speeds things up: if it cannot be had,
        // the main one reads alone (and reports any real problem with the file).
        let side = if bulk && file_len >= scan::PARALLEL_MIN_BYTES && self.wal_len() > 0 {
            scan::SideReader::open(&self.path, self.busy_timeout).ok()
        } else {
            None
        };
        conn.execute_batch("begin").map_err(&e)?;
        let result = (|| -> rusqlite::Result<Loaded> {
            // The first read: it starts the main read transaction.
            let bounds = if bulk {
                scan::rowid_bounds(conn)?
            } else {
                None
            };
            let text_hint = usize::try_from(file_len).unwrap_or(0);
            let direct = if bounds.is_some() && side.is_none() {
                pages::PageFile::open(&self.path, conn)
            } else {
                None
            };
            // Every deployment without resource attributes (`list`): the
            // `Resources` rows alone, from the pages when they can be read,
            // which is only after a first read has begun the transaction.
            let listed = if uuid.is_none() && matches!(attrs, AttrSet::None) {
                scan::rowid_bounds(conn)?;
                pages::PageFile::open(&self.path, conn)
            } else {
                None
            };
            let listed_resources = listed.as_ref().and_then(pages::PageFile::resources);
            let (small, chunks) = match direct.as_ref().map(|direct| {
                let resources = direct.resources();
                let ids = resources.as_ref().and_then(pages::ResourceTable::dense_ids);
                direct.scan_attrs(only, values, text_hint, ids, || {
                    read_small_tables(conn, uuid, resources.as_ref())
                })
            }) {
                Some((small, Some(chunks))) => (small?, chunks),
                Some((small, None)) => {
                    let small = small?;
                    scan::scan_all(conn, None, bounds, only, text_hint, || Ok(small))?
                }
                None => {
                    let side = match side {
                        Some(side) if scan::wants_side(bounds) => side.join().ok().flatten(),
                        _ => None,
                    };
                    scan::scan_all(conn, side, bounds, only, text_hint, || {
                        read_small_tables(conn, uuid, listed_resources.as_ref())
                    })?
                }
            };
            drop(listed_resources);
            if let Some(listed) = listed {
                self.dispose(listed);
            }
            let (depls, resources) = small;
            let chunks = match (attrs, uuid) {
                (AttrSet::None, _) => None,
                (_, None) => Some(chunks),
                (_, Some(u)) => Some(vec![scan::scan_deployment(conn, u, only)?]),
            };
            // The mapped file goes with the values left in it.
            let file = match direct {
                Some(direct) if values == pages::Values::Copy => {
                    self.dispose(direct);
                    None
                }
                direct => direct,
            };
            let table = chunks.map(|chunks| scan::AttrTable::group(chunks, file, resources.ids()));
            Ok(Loaded {
                depls,
                resources,
                table,
            })
        })();
        let result = result.map(f);
        let _ = conn.execute_batch("commit");
        result.map_err(e)
    }

    /// The size of the file with its WAL (which may hold most of a file written
    /// recently): whether a parallel scan pays off, and how much it may read.
    fn file_len(&self) -> u64 {
        fs::metadata(&self.path).map_or(0, |m| m.len()) + self.wal_len()
    }

    /// The size of the WAL file, 0 when there is none.
    fn wal_len(&self) -> u64 {
        fs::metadata(wal_path(&self.path)).map_or(0, |m| m.len())
    }

    /// Resolve `-d` as NixOps does: no selector → the only deployment; else an exact
    /// UUID or name, else a UUID prefix (SQLite GLOB `<selector>*`). Errors: not found,
    /// multiple deployments (no selector), same name / ambiguous prefix.
    pub fn find_deployment(&self, selector: Option<&str>) -> Result<String, StateError> {
        let e = self.sqlite_err();
        let query = |sql: &str, args: &[&dyn rusqlite::ToSql]| -> Result<Vec<String>, StateError> {
            let mut stmt = self.conn.prepare_cached(sql).map_err(&e)?;
            let rows = stmt.query_map(args, |r| r.get(0)).map_err(&e)?;
            rows.collect::<Result<_, _>>().map_err(&e)
        };
        // NixOps treats an empty `-d` like none.
        let selector = selector.filter(|s| !s.is_empty());
        let found = match selector {
            None => query("select uuid from Deployments", &[])?,
            Some(s) => {
                let exact = query(
                    "select uuid from Deployments d where uuid = ?1 or exists (select 1 from DeploymentAttrs where deployment = d.uuid and name = 'name' and value = ?1)",
                    &[&s],
                )?;
                if exact.is_empty() {
                    // SQLite GLOB: case-sensitive, and `*?[` in the selector stay
                    // metacharacters, as in NixOps.
                    query(
                        "select uuid from Deployments where uuid glob ?1",
                        &[&format!("{s}*")],
                    )?
                } else {
                    exact
                }
            }
        };
        match (found.len(), selector) {
            (0, _) => Err(StateError::DeploymentNotFound {
                path: self.path.clone(),
                selector: selector.map(str::to_string),
            }),
            (1, _) => Ok(found
                .into_iter()
                .next()
                .expect("invariant: exactly one row")),
            (_, None) => Err(StateError::MultipleDeployments),
            (_, Some(s)) => Err(StateError::AmbiguousDeployment {
                selector: s.to_string(),
            }),
        }
    }

    /// Create a deployment (a new time-based UUID unless `uuid` is given); returns its
    /// UUID.
    pub fn create_deployment(&self, uuid: Option<&str>) -> Result<String, StateError> {
        let uuid = uuid.map_or_else(new_deployment_uuid, str::to_string);
        self.write_tx(|c| {
            if deployment_exists(c, &uuid)? {
                return Err(StateError::DeploymentExists { uuid: uuid.clone() }.into());
            }
            c.execute("insert into Deployments(uuid) values (?)", [&uuid])?;
            Ok(())
        })?;
        Ok(uuid)
    }

    /// Create a deployment with `attrs` in one transaction (a new time-based UUID
    /// unless `uuid` is given); returns its UUID. A name already used by another
    /// deployment is refused.
    pub fn create_deployment_with(
        &self,
        uuid: Option<&str>,
        attrs: &[(&str, Option<String>)],
    ) -> Result<String, StateError> {
        let uuid = uuid.map_or_else(new_deployment_uuid, str::to_string);
        for (name, value) in attrs {
            if let (&depl_attr::NAME, Some(v)) = (name, value) {
                validate_deployment_name(v)?;
            }
        }
        self.write_tx(|c| {
            if deployment_exists(c, &uuid)? {
                return Err(StateError::DeploymentExists { uuid: uuid.clone() }.into());
            }
            check_name_free(c, attrs, &uuid)?;
            c.execute("insert into Deployments(uuid) values (?)", [&uuid])?;
            set_depl_attrs(c, &uuid, attrs.iter().map(|(n, v)| (*n, v.as_deref())))?;
            Ok(())
        })?;
        Ok(uuid)
    }

    /// Set (`Some`, stored text) or delete (`None`) deployment attributes in one
    /// transaction. Setting `name` validates it and refuses a name another
    /// deployment already has.
    pub fn set_deployment_attrs(
        &self,
        uuid: &str,
        attrs: &[(&str, Option<String>)],
    ) -> Result<(), StateError> {
        for (name, value) in attrs {
            if let (&depl_attr::NAME, Some(v)) = (name, value) {
                validate_deployment_name(v)?;
            }
        }
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            check_name_free(c, attrs, uuid)?;
            set_depl_attrs(c, uuid, attrs.iter().map(|(n, v)| (*n, v.as_deref())))?;
            Ok(())
        })
    }

    /// Copy deployment `uuid` to a new deployment: every attribute except
    /// `configsPath`, no resources; `new_name` replaces the name if given (else the
    /// clone keeps the same name). Returns the new UUID.
    pub fn clone_deployment(
        &self,
        uuid: &str,
        new_name: Option<&str>,
    ) -> Result<String, StateError> {
        if let Some(n) = new_name {
            validate_deployment_name(n)?;
        }
        let new = new_deployment_uuid();
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            // Without a new name the clone would share the original's, and `-d`
            // could no longer tell them apart.
            let name: Option<String> = match new_name {
                Some(n) => Some(n.to_string()),
                None => c
                    .query_row(
                        "select value from DeploymentAttrs where deployment = ? and name = ?",
                        params![uuid, depl_attr::NAME],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            check_name_free(c, &[(depl_attr::NAME, name)], &new)?;
            c.execute("insert into Deployments(uuid) values (?)", [&new])?;
            c.execute(
                "insert into DeploymentAttrs (deployment, name, value) select ?, name, value from DeploymentAttrs where deployment = ?",
                params![new, uuid],
            )?;
            c.execute(
                "delete from DeploymentAttrs where deployment = ? and name = ?",
                params![new, depl_attr::CONFIGS_PATH],
            )?;
            if let Some(n) = new_name {
                set_depl_attrs(c, &new, [(depl_attr::NAME, Some(n))])?;
            }
            Ok(())
        })?;
        Ok(new)
    }

    /// Delete a deployment and (by cascade) its attributes and resources. Without
    /// `force`, refuses while it has resources.
    pub fn delete_deployment(&self, uuid: &str, force: bool) -> Result<(), StateError> {
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            let n: i64 = c.query_row(
                "select count(*) from Resources where deployment = ?",
                [uuid],
                |r| r.get(0),
            )?;
            if n > 0 && !force {
                return Err(StateError::HasResources {
                    uuid: uuid.to_string(),
                }
                .into());
            }
            c.execute("delete from Deployments where uuid = ?", [uuid])?;
            Ok(())
        })
    }

    /// Add resource `name` of type `type_` to a deployment; returns its id.
    pub fn add_resource(&self, uuid: &str, name: &str, type_: &str) -> Result<i64, StateError> {
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            insert_resource(c, uuid, name, type_)
        })
    }

    /// Set (`Some`) or delete (`None`) attributes of resource `id` in one transaction.
    pub fn set_resource_attrs(
        &self,
        id: i64,
        attrs: &[(&str, Option<String>)],
    ) -> Result<(), StateError> {
        self.write_tx(|c| {
            let exists = c
                .query_row("select 1 from Resources where id = ?", [id], |_| Ok(()))
                .optional()?
                .is_some();
            if !exists {
                return Err(StateError::NoSuchResource { id }.into());
            }
            set_res_attrs(c, id, attrs.iter().map(|(n, v)| (*n, v.as_deref())))?;
            Ok(())
        })
    }

    /// Rename resource `from` to `to` in deployment `uuid` (state only).
    pub fn rename_resource(&self, uuid: &str, from: &str, to: &str) -> Result<(), StateError> {
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            let id = resource_id(c, uuid, from)?.ok_or_else(|| StateError::ResourceNotFound {
                uuid: uuid.to_string(),
                name: from.to_string(),
            })?;
            if resource_id(c, uuid, to)?.is_some() {
                return Err(StateError::ResourceNameTaken {
                    uuid: uuid.to_string(),
                    name: to.to_string(),
                }
                .into());
            }
            if !is_valid_resource_name(to) {
                return Err(StateError::InvalidResourceName {
                    name: to.to_string(),
                }
                .into());
            }
            c.execute(
                "update Resources set name = ? where deployment = ? and id = ?",
                params![to, uuid, id],
            )?;
            Ok(())
        })
    }

    /// Delete resource `id` and its attributes.
    pub fn delete_resource(&self, id: i64) -> Result<(), StateError> {
        self.write_tx(|c| {
            let n = c.execute("delete from Resources where id = ?", [id])?;
            if n == 0 {
                return Err(StateError::NoSuchResource { id }.into());
            }
            Ok(())
        })
    }

    /// `set-args`: apply `changes` to the deployment's `args` attribute in one
    /// transaction; returns the new map.
    pub fn set_args(
        &self,
        uuid: &str,
        changes: &SetArgs,
    ) -> Result<BTreeMap<String, String>, StateError> {
        self.write_tx(|c| {
            require_deployment(c, uuid)?;
            let current: Option<String> = c
                .query_row(
                    "select value from DeploymentAttrs where deployment = ? and name = ?",
                    params![uuid, depl_attr::ARGS],
                    |r| r.get(0),
                )
                .optional()?;
            let current: BTreeMap<String, String> = match current {
                None => BTreeMap::new(),
                Some(text) => {
                    serde_json::from_str(&text).map_err(|source| StateError::BadJsonAttr {
                        owner: format!("deployment ‘{uuid}’"),
                        attr: depl_attr::ARGS.to_string(),
                        source,
                    })?
                }
            };
            let new = apply_set_args(&current, changes)?;
            let encoded =
                AttrValue::str_map(&new).encode_against(&AttrValue::str_map(&BTreeMap::new()));
            set_depl_attrs(c, uuid, [(depl_attr::ARGS, encoded.as_deref())])?;
            Ok(new)
        })
    }
}

/// Which resource attributes a load reads.
#[derive(Clone, Copy)]
enum AttrSet<'a> {
    None,
    All,
    Only(&'a [&'a str]),
}

/// What one read transaction loaded.
struct Loaded {
    /// Deployments sorted by UUID, with their attributes; `resources` empty.
    depls: Vec<DeploymentRecord>,
    /// Resources sorted by id with the position of their deployment in `depls`.
    resources: ResourceList,
    /// The resource attributes read, by position in `resources`.
    table: Option<scan::AttrTable>,
}

/// `Deployments`, `DeploymentAttrs` and `Resources` (all, or of deployment `uuid`);
/// all of `Resources` from `from_pages` (read from the file's pages) if given and it can.
fn read_small_tables(
    conn: &Connection,
    uuid: Option<&str>,
    from_pages: Option<&pages::ResourceTable<'_>>,
) -> rusqlite::Result<(Vec<DeploymentRecord>, ResourceList)> {
    let filter = uuid.is_some();
    let mut depls: Vec<DeploymentRecord> = Vec::new();
    let mut stmt = conn.prepare_cached(if filter {
        "select uuid from Deployments where uuid = ?1"
    } else {
        "select uuid from Deployments where ?1 is null"
    })?;
    let mut rows = stmt.query([uuid])?;
    while let Some(r) = rows.next()? {
        depls.push(DeploymentRecord {
            uuid: r.get(0)?,
            attrs: BTreeMap::new(),
            resources: Vec::new(),
        });
    }
    // Sorted here (not by SQL) so the order is Rust's, which the lookups rely on.
    depls.sort_unstable_by(|a, b| a.uuid.cmp(&b.uuid));
    let find = |depls: &[DeploymentRecord], u: &[u8]| {
        depls.binary_search_by(|d| d.uuid.as_bytes().cmp(u)).ok()
    };
    let mut stmt = conn.prepare_cached(
        "select deployment, name, value from DeploymentAttrs where ?1 is null or deployment = ?1",
    )?;
    let mut rows = stmt.query([uuid])?;
    while let Some(r) = rows.next()? {
        if let Some(i) = find(&depls, r.get_ref(0)?.as_bytes()?) {
            depls[i].attrs.insert(r.get(1)?, r.get(2)?);
        }
    }
    // Resources of one deployment usually follow each other: try the last one first.
    let mut last = None;
    let mut place = |u: &[u8]| {
        let depl = match last {
            Some(i)
                if depls
                    .get(i)
                    .is_some_and(|d: &DeploymentRecord| d.uuid.as_bytes() == u) =>
            {
                Some(i)
            }
            _ => find(&depls, u),
        };
        last = depl;
        depl
    };
    let mut resources = ResourceList::default();
    if let Some(table) = from_pages.filter(|_| uuid.is_none()) {
        let mut bad = false;
        resources = ResourceList::with_capacity(table.len);
        let read = table.read(|id, u, name, type_| {
            let Some(i) = place(u) else { return };
            match (std::str::from_utf8(name), std::str::from_utf8(type_)) {
                (Ok(name), Ok(type_)) => bad |= resources.push(id, i, name, type_).is_err(),
                _ => bad = true,
            }
        });
        if read.is_some() && !bad {
            return Ok((depls, resources));
        }
        // Read again with SQLite, which reports what is wrong.
        resources.clear();
    }
    let mut stmt = conn.prepare_cached(
        "select id, deployment, name, type from Resources where ?1 is null or deployment = ?1 order by id",
    )?;
    let mut rows = stmt.query([uuid])?;
    while let Some(r) = rows.next()? {
        if let Some(i) = place(r.get_ref(1)?.as_bytes()?) {
            let name = r.get_ref(2)?.as_str()?;
            let type_ = r.get_ref(3)?.as_str()?;
            resources.push(r.get(0)?, i, name, type_).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, e.into())
            })?;
        }
    }
    Ok((depls, resources))
}

/// An error inside a transaction: SQLite's, or one of ours.
#[derive(Debug)]
enum TxError {
    Sqlite(rusqlite::Error),
    State(StateError),
}

impl From<rusqlite::Error> for TxError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Sqlite(e)
    }
}

impl From<StateError> for TxError {
    fn from(e: StateError) -> Self {
        Self::State(e)
    }
}

/// Refuse setting a `name` in `attrs` that a deployment other than `uuid` has.
fn check_name_free(
    c: &Connection,
    attrs: &[(&str, Option<String>)],
    uuid: &str,
) -> Result<(), TxError> {
    for (attr, value) in attrs {
        let (&depl_attr::NAME, Some(name)) = (attr, value) else {
            continue;
        };
        let other: Option<String> = c
            .query_row(
                "select deployment from DeploymentAttrs where name = ? and value = ? and deployment != ? limit 1",
                params![depl_attr::NAME, name, uuid],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(other) = other {
            return Err(StateError::DuplicateName {
                name: name.clone(),
                uuid: other,
            }
            .into());
        }
    }
    Ok(())
}

fn deployment_exists(c: &Connection, uuid: &str) -> rusqlite::Result<bool> {
    c.query_row("select 1 from Deployments where uuid = ?", [uuid], |_| {
        Ok(())
    })
    .optional()
    .map(|r| r.is_some())
}

fn require_deployment(c: &Connection, uuid: &str) -> Result<(), TxError> {
    if deployment_exists(c, uuid)? {
        Ok(())
    } else {
        Err(StateError::NoSuchDeployment {
            uuid: uuid.to_string(),
        }
        .into())
    }
}

fn resource_id(c: &Connection, uuid: &str, name: &str) -> rusqlite::Result<Option<i64>> {
    c.query_row(
        "select id from Resources where deployment = ? and name = ?",
        params![uuid, name],
        |r| r.get(0),
    )
    .optional()
}

fn insert_resource(c: &Connection, uuid: &str, name: &str, type_: &str) -> Result<i64, TxError> {
    if resource_id(c, uuid, name)?.is_some() {
        return Err(StateError::ResourceExists {
            uuid: uuid.to_string(),
            name: name.to_string(),
        }
        .into());
    }
    c.execute(
        "insert into Resources(deployment, name, type) values (?, ?, ?)",
        params![uuid, name, type_],
    )?;
    Ok(c.last_insert_rowid())
}

fn set_depl_attrs<'a>(
    c: &Connection,
    uuid: &str,
    attrs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> rusqlite::Result<()> {
    let mut set = c.prepare_cached(
        "insert or replace into DeploymentAttrs(deployment, name, value) values (?, ?, ?)",
    )?;
    let mut del =
        c.prepare_cached("delete from DeploymentAttrs where deployment = ? and name = ?")?;
    for (name, value) in attrs {
        match value {
            Some(v) => set.execute(params![uuid, name, v])?,
            None => del.execute(params![uuid, name])?,
        };
    }
    Ok(())
}

fn set_res_attrs<'a>(
    c: &Connection,
    id: i64,
    attrs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> rusqlite::Result<()> {
    let mut set = c.prepare_cached(
        "insert or replace into ResourceAttrs(machine, name, value) values (?, ?, ?)",
    )?;
    let mut del = c.prepare_cached("delete from ResourceAttrs where machine = ? and name = ?")?;
    for (name, value) in attrs {
        match value {
            Some(v) => set.execute(params![id, name, v])?,
            None => del.execute(params![id, name])?,
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(validate_deployment_name("my-net.v2").is_ok());
        assert!(validate_deployment_name("_x").is_ok());
        let err = validate_deployment_name("1net").expect_err("digit first");
        assert_eq!(err.to_string(), "invalid deployment name ‘1net’");
        assert!(validate_deployment_name("").is_err());
        assert!(is_valid_resource_name("web-1_a"));
        assert!(!is_valid_resource_name("a.b"));
    }

    #[test]
    fn partial_loads_keep_everything_but_the_unnamed_attrs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = StateFile::open(&dir.path().join("s.nixops")).expect("open");
        for name in ["a", "b"] {
            let u = sf.create_deployment(None).expect("create");
            sf.set_deployment_attrs(&u, &[("name", Some(name.to_owned()))])
                .expect("name");
            for m in ["m1", "m2"] {
                let id = sf.add_resource(&u, m, "none").expect("add");
                sf.set_resource_attrs(
                    id,
                    &[
                        ("state", Some("3".to_owned())),
                        ("vmId", Some(format!("vm-{name}-{m}"))),
                        ("toplevel", Some("/nix/store/x".to_owned())),
                    ],
                )
                .expect("attrs");
            }
        }
        let full = sf.deployments().expect("full");
        let shallow = sf.deployments_shallow().expect("shallow");
        let some = sf.deployments_with_attrs(&["state", "vmId"]).expect("some");
        assert_eq!(full.len(), 2);
        for ((f, s), p) in full.iter().zip(&shallow).zip(&some) {
            assert_eq!((&f.uuid, &f.attrs), (&s.uuid, &s.attrs));
            assert_eq!((&f.uuid, &f.attrs), (&p.uuid, &p.attrs));
            assert_eq!(f.resources.len(), 2);
            for ((fr, sr), pr) in f.resources.iter().zip(&s.resources).zip(&p.resources) {
                assert_eq!((fr.id, &fr.name, &fr.type_), (sr.id, &sr.name, &sr.type_));
                assert_eq!((fr.id, &fr.name, &fr.type_), (pr.id, &pr.name, &pr.type_));
                assert_eq!(fr.attrs.len(), 3);
                assert!(sr.attrs.is_empty());
                let mut want = fr.attrs.clone();
                want.remove("toplevel");
                assert_eq!(pr.attrs, want);
            }
        }
    }

    #[test]
    fn uuids_are_time_based() {
        let u = new_deployment_uuid();
        let parsed = uuid::Uuid::parse_str(&u).expect("valid uuid");
        assert_eq!(parsed.get_version_num(), 1);
        assert_ne!(u, new_deployment_uuid());
    }
}
