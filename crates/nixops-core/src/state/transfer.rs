//! `export` and `import`: moving deployments between state files as JSON.
//!
//! Owns the NixOps export shape (`{uuid: {attr: raw, …, "resources": {name:
//! {attr: raw, …, "type": t}}}}`), printed byte for byte as Python's
//! `json.dumps(indent=2, sort_keys=True)`, and the import of that shape. Import is
//! stricter and safer than NixOps: the whole input is validated and every UUID
//! checked before anything is written, and everything is written in one transaction.
//!
//! Export writes its text directly from the bulk read (`scan`), without a tree
//! of values: attribute names are escaped once per name, values that need no
//! escaping (checked while they were read) are copied as they are, and a large
//! export is formatted on two threads.

use std::cmp::Ordering;
use std::path::Path;
use std::str::Utf8Error;

use super::pages::Values;
use super::pyjson::{self, PyStyle};
use super::records::DeploymentRecord;
use super::scan::AttrTable;
use super::{
    deployment_exists, insert_resource, set_depl_attrs, set_res_attrs, AttrSet, Loaded, StateError,
    StateFile,
};

/// Exports larger than this (estimated bytes) are formatted on two threads.
const PARALLEL_EXPORT_BYTES: usize = 1 << 20;

/// The size of the pieces an export is formatted and handed out in.
const STREAM_PIECE: usize = 1 << 17;

/// One deployment to export.
struct Export<'a> {
    depl: &'a DeploymentRecord,
    /// Positions in `Loaded::resources`, in id order: see [`by_name`].
    resources: Vec<usize>,
    /// Estimated output bytes.
    weight: usize,
}

/// Writes `json.dumps(indent=2, sort_keys=True)` text of the export shape
/// directly, without building a tree: attribute names are escaped once.
struct Formatter<'a> {
    loaded: &'a Loaded,
    table: &'a AttrTable,
    /// Item separator: `", "` (Python 2) or `","` (Python 3).
    sep: &'static str,
    /// Per attribute name: `\n` + resource attribute indentation + `"name": "`,
    /// for the first attribute of a resource ...
    first_keys: Vec<String>,
    /// ... and the others, after a separator.
    next_keys: Vec<String>,
    /// Per attribute name: how it sorts against `type`.
    vs_type: Vec<Ordering>,
}

/// How many resources ahead of the one being written the values are asked for.
const TOUCH_AHEAD: usize = 16;

/// Indentation of deployment entries, deployment attributes, resources and
/// resource attributes (levels 1 to 4, two spaces each).
const IND1: &str = "\n  ";
const IND2: &str = "\n    ";
const IND3: &str = "\n      ";
const IND4: &str = "\n        ";

impl<'a> Formatter<'a> {
    fn new(loaded: &'a Loaded, table: &'a AttrTable, style: PyStyle) -> Self {
        let sep = match style {
            PyStyle::Python2 => ", ",
            PyStyle::Python3 => ",",
        };
        let first_keys: Vec<String> = table
            .names()
            .iter()
            .map(|n| {
                let mut k = String::from(IND4);
                pyjson::write_str(&mut k, n);
                k.push_str(": \"");
                k
            })
            .collect();
        let next_keys = first_keys.iter().map(|k| format!("{sep}{k}")).collect();
        let vs_type = table
            .names()
            .iter()
            .map(|n| n.as_str().cmp("type"))
            .collect();
        Formatter {
            loaded,
            table,
            sep,
            first_keys,
            next_keys,
            vs_type,
        }
    }

    /// Append the `index`th deployment of the export (`"uuid": {...}`, after a
    /// separator unless it is the first).
    fn deployment(&self, out: &mut Vec<u8>, e: &Export<'_>, index: usize) -> Result<(), Utf8Error> {
        if index > 0 {
            out.extend_from_slice(self.sep.as_bytes());
        }
        out.extend_from_slice(IND1.as_bytes());
        pyjson::write_str_to(out, &e.depl.uuid);
        out.extend_from_slice(b": {");
        let mut n = 0;
        let mut resources_done = false;
        let resources = by_name(self.loaded, &e.resources);
        for (k, v) in &e.depl.attrs {
            if !resources_done && k.as_str() >= "resources" {
                self.resources(out, &mut n, &resources)?;
                resources_done = true;
                if k == "resources" {
                    continue;
                }
            }
            self.entry(out, &mut n, IND2, k);
            pyjson::write_str_to(out, v);
        }
        if !resources_done {
            self.resources(out, &mut n, &resources)?;
        }
        out.extend_from_slice(IND1.as_bytes());
        out.push(b'}');
        Ok(())
    }

    /// Start the `n`th entry of an object: separator, newline, indentation, key.
    fn entry(&self, out: &mut Vec<u8>, n: &mut usize, indent: &str, key: &str) {
        if *n > 0 {
            out.extend_from_slice(self.sep.as_bytes());
        }
        *n += 1;
        out.extend_from_slice(indent.as_bytes());
        pyjson::write_str_to(out, key);
        out.extend_from_slice(b": ");
    }

    /// The `"resources"` entry of a deployment.
    fn resources(
        &self,
        out: &mut Vec<u8>,
        n: &mut usize,
        resources: &[usize],
    ) -> Result<(), Utf8Error> {
        self.entry(out, n, IND2, "resources");
        if resources.is_empty() {
            out.extend_from_slice(b"{}");
            return Ok(());
        }
        out.push(b'{');
        for (i, &r) in resources.iter().enumerate() {
            // Ask for the values of a resource a few ahead now: their loads
            // then overlap with the work on this one and the next.
            if i == 0 {
                for &next in resources.iter().take(TOUCH_AHEAD).skip(1) {
                    self.table.touch(next);
                }
            }
            if let Some(&next) = resources.get(i + TOUCH_AHEAD) {
                self.table.touch(next);
            }
            let resources = &self.loaded.resources;
            if i > 0 {
                out.extend_from_slice(self.sep.as_bytes());
            }
            out.extend_from_slice(IND3.as_bytes());
            pyjson::write_str_to(out, resources.name(r));
            out.extend_from_slice(b": {");
            let mut first = true;
            let mut type_done = false;
            let push_type = |out: &mut Vec<u8>, first: &mut bool| {
                if !*first {
                    out.extend_from_slice(self.sep.as_bytes());
                }
                *first = false;
                out.extend_from_slice(IND4.as_bytes());
                out.extend_from_slice(b"\"type\": ");
                pyjson::write_str_to(out, resources.type_(r));
            };
            for (rank, value, plain) in self.table.ranked(r) {
                if !type_done {
                    match self.vs_type[rank] {
                        Ordering::Less => {}
                        Ordering::Equal => {
                            // The resource's type replaces an attribute named `type`.
                            push_type(out, &mut first);
                            type_done = true;
                            continue;
                        }
                        Ordering::Greater => {
                            push_type(out, &mut first);
                            type_done = true;
                        }
                    }
                }
                let key = if first {
                    &self.first_keys[rank]
                } else {
                    &self.next_keys[rank]
                };
                first = false;
                out.extend_from_slice(key.as_bytes());
                if plain {
                    out.extend_from_slice(value);
                } else {
                    pyjson::write_utf8_body(out, value)?;
                }
                out.push(b'"');
            }
            if !type_done {
                push_type(out, &mut first);
            }
            out.extend_from_slice(IND3.as_bytes());
            out.push(b'}');
        }
        out.extend_from_slice(IND2.as_bytes());
        out.push(b'}');
        Ok(())
    }
}

/// One deployment as read from an export.
struct Imported {
    uuid: String,
    attrs: Vec<(String, String)>,
    /// (name, type, attributes)
    resources: Vec<(String, String, Attrs)>,
}

/// Attribute name/value pairs in input order.
type Attrs = Vec<(String, String)>;

impl StateFile {
    /// Export the given deployments as NixOps 1.x prints them (Python 2 `json.dumps`,
    /// `indent=2, sort_keys=True`), without a trailing newline.
    pub fn export(&self, uuids: &[String]) -> Result<String, StateError> {
        self.export_styled(uuids, PyStyle::Python2)
    }

    /// Export in the given Python's pretty-printing style.
    pub fn export_styled(&self, uuids: &[String], style: PyStyle) -> Result<String, StateError> {
        let mut text = Vec::new();
        self.export_with(uuids, style, |piece| text.extend_from_slice(piece))?;
        Ok(String::from_utf8(text).expect("invariant: export text is made of UTF-8 pieces"))
    }

    /// The text of [`StateFile::export_styled`], handed to `sink` piece by piece
    /// in order. A large export is formatted on two threads and never held whole:
    /// it goes out in pieces through a few reused buffers, which saves touching
    /// megabytes of fresh memory, and values are read where they are in the file.
    pub fn export_with(
        &self,
        uuids: &[String],
        style: PyStyle,
        sink: impl FnMut(&[u8]),
    ) -> Result<(), StateError> {
        let filter = match uuids {
            [one] => Some(one.as_str()),
            _ => None,
        };
        // Values are formatted straight from the file's pages where they can be.
        self.with_snapshot(filter, AttrSet::All, Values::InPlace, |loaded| {
            let done = export_loaded(&loaded, &self.path, uuids, filter, style, sink);
            self.dispose(loaded);
            done
        })?
    }

    /// Import deployments from export JSON; returns their UUIDs in input order (the
    /// CLI prints `added deployment ‘<uuid>’` for each). Refuses the whole input if
    /// any UUID exists already, if a resource lacks `type`, or if any value is not a
    /// string; then nothing is written.
    pub fn import(&self, json_text: &str) -> Result<Vec<String>, StateError> {
        let value: serde_json::Value =
            serde_json::from_str(json_text).map_err(|source| StateError::ImportJson { source })?;
        let parsed = parse_import(value)?;
        self.write_tx(|c| {
            for d in &parsed {
                if deployment_exists(c, &d.uuid)? {
                    return Err(StateError::DeploymentExists {
                        uuid: d.uuid.clone(),
                    }
                    .into());
                }
            }
            for d in &parsed {
                c.execute("insert into Deployments(uuid) values (?)", [&d.uuid])?;
                set_depl_attrs(
                    c,
                    &d.uuid,
                    d.attrs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
                )?;
                for (name, type_, attrs) in &d.resources {
                    let id = insert_resource(c, &d.uuid, name, type_)?;
                    set_res_attrs(
                        c,
                        id,
                        attrs.iter().map(|(k, v)| (k.as_str(), Some(v.as_str()))),
                    )?;
                }
            }
            Ok(())
        })?;
        Ok(parsed.into_iter().map(|d| d.uuid).collect())
    }
}

/// The export text of `loaded` for `uuids` (just `filter` when given), handed to
/// `sink` in pieces.
fn export_loaded(
    loaded: &Loaded,
    path: &Path,
    uuids: &[String],
    filter: Option<&str>,
    style: PyStyle,
    mut sink: impl FnMut(&[u8]),
) -> Result<(), StateError> {
    if let Some(missing) = uuids.iter().find(|u| {
        loaded
            .depls
            .binary_search_by(|d| d.uuid.as_str().cmp(u))
            .is_err()
    }) {
        return Err(StateError::NoSuchDeployment {
            uuid: missing.clone(),
        });
    }
    let table = loaded
        .table
        .as_ref()
        .expect("invariant: AttrSet::All reads resource attributes");
    // Each deployment's resources, in id order.
    let mut by_depl: Vec<Vec<usize>> = vec![Vec::new(); loaded.depls.len()];
    for (i, d) in loaded.resources.depls().enumerate() {
        by_depl[d].push(i);
    }
    let mut selected: Vec<Export<'_>> = Vec::new();
    let mut total = 0;
    let mean = table.mean_weight() + 64;
    for (d, res) in loaded.depls.iter().zip(by_depl) {
        if filter.is_none() && !uuids.contains(&d.uuid) {
            continue;
        }
        let weight = res.len() * mean + 256;
        total += weight;
        selected.push(Export {
            depl: d,
            resources: res,
            weight,
        });
    }
    let fmt = Formatter::new(loaded, table, style);
    if selected.is_empty() {
        sink(b"{}");
        return Ok(());
    }
    // Consecutive deployments make pieces of about `STREAM_PIECE` bytes.
    let mut pieces = Vec::new();
    let mut from = 0;
    let mut acc = 0;
    for (i, e) in selected.iter().enumerate() {
        acc += e.weight;
        if acc >= STREAM_PIECE || i + 1 == selected.len() {
            pieces.push(from..i + 1);
            from = i + 1;
            acc = 0;
        }
    }
    let format = |piece: usize, out: &mut Vec<u8>| -> Result<(), Utf8Error> {
        for i in pieces[piece].clone() {
            fmt.deployment(out, &selected[i], i)?;
        }
        Ok(())
    };
    sink(b"{");
    let formatted = if total < PARALLEL_EXPORT_BYTES {
        let mut buf = Vec::new();
        (0..pieces.len()).try_for_each(|piece| {
            format(piece, &mut buf)?;
            sink(&buf);
            buf.clear();
            Ok(())
        })
    } else {
        crate::parallel::in_order(
            pieces.len(),
            STREAM_PIECE + STREAM_PIECE / 2,
            format,
            &mut sink,
        )
    };
    // A value left in the file that is not UTF-8: as SQLite would report it.
    formatted.map_err(|e| StateError::Sqlite {
        path: path.to_path_buf(),
        source: rusqlite::Error::Utf8Error(e),
    })?;
    sink(b"\n}");
    Ok(())
}

/// The resources at `positions` (in id order) sorted by name, one per name:
/// names are not unique in the schema and a JSON object holds one of each, the
/// first by id, as sorting is stable. Done as each deployment is formatted, on
/// the threads that format.
fn by_name(loaded: &Loaded, positions: &[usize]) -> Vec<usize> {
    let name = |r: usize| loaded.resources.name(r);
    let mut sorted = positions.to_vec();
    if !sorted.is_sorted_by(|&a, &b| name(a) < name(b)) {
        sorted.sort_by(|&a, &b| name(a).cmp(name(b)));
        sorted.dedup_by(|a, b| name(*a) == name(*b));
    }
    sorted
}

fn bad(reason: String) -> StateError {
    StateError::BadImport { reason }
}

fn parse_import(value: serde_json::Value) -> Result<Vec<Imported>, StateError> {
    use serde_json::Value;
    let Value::Object(top) = value else {
        return Err(bad("expected a JSON object of deployments by UUID".into()));
    };
    let mut out = Vec::new();
    for (uuid, depl) in top {
        let Value::Object(depl) = depl else {
            return Err(bad(format!("deployment ‘{uuid}’ is not a JSON object")));
        };
        let mut attrs = Vec::new();
        let mut resources = Vec::new();
        for (k, v) in depl {
            match (k.as_str(), v) {
                ("resources", Value::Object(res)) => {
                    for (name, r) in res {
                        let Value::Object(r) = r else {
                            return Err(bad(format!(
                                "resource ‘{name}’ of deployment ‘{uuid}’ is not a JSON object"
                            )));
                        };
                        let mut type_ = None;
                        let mut rattrs = Vec::new();
                        for (rk, rv) in r {
                            let Value::String(rv) = rv else {
                                return Err(bad(format!(
                                    "attribute ‘{rk}’ of resource ‘{name}’ in deployment ‘{uuid}’ is not a string"
                                )));
                            };
                            if rk == "type" {
                                type_ = Some(rv);
                            } else {
                                rattrs.push((rk, rv));
                            }
                        }
                        let Some(type_) = type_ else {
                            return Err(StateError::ImportedResourceLacksType {
                                uuid: uuid.clone(),
                                resource: name,
                            });
                        };
                        resources.push((name, type_, rattrs));
                    }
                }
                ("resources", _) => {
                    return Err(bad(format!(
                        "‘resources’ of deployment ‘{uuid}’ is not a JSON object"
                    )))
                }
                (_, Value::String(s)) => attrs.push((k, s)),
                (_, _) => {
                    return Err(bad(format!(
                        "attribute ‘{k}’ of deployment ‘{uuid}’ is not a string"
                    )))
                }
            }
        }
        out.push(Imported {
            uuid,
            attrs,
            resources,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::pyjson::Tree;
    use super::*;

    /// Deployments read back with plain queries and maps: the model the bulk
    /// readers must agree with. (uuid → (attrs, [(id, name, type, attrs)]))
    type Model = BTreeMap<String, (BTreeMap<String, String>, Vec<ModelResource>)>;
    type ModelResource = (i64, String, String, BTreeMap<String, String>);

    fn model(sf: &StateFile) -> Model {
        let c = &sf.conn;
        let mut m = Model::new();
        let mut s = c.prepare("select uuid from Deployments").expect("prepare");
        for u in s.query_map([], |r| r.get::<_, String>(0)).expect("query") {
            m.insert(u.expect("row"), Default::default());
        }
        let mut s = c
            .prepare("select deployment, name, value from DeploymentAttrs")
            .expect("prepare");
        let rows = s
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?)))
            .expect("query");
        for row in rows {
            let (d, k, v) = row.expect("row");
            m.get_mut(&d).expect("deployment").0.insert(k, v);
        }
        let mut s = c
            .prepare("select id, deployment, name, type from Resources order by id")
            .expect("prepare");
        let rows = s
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get(2)?,
                    r.get(3)?,
                ))
            })
            .expect("query");
        let mut depl_of = BTreeMap::new();
        for row in rows {
            let (id, d, name, type_) = row.expect("row");
            depl_of.insert(id, d.clone());
            m.get_mut(&d)
                .expect("deployment")
                .1
                .push((id, name, type_, BTreeMap::new()));
        }
        let mut s = c
            .prepare("select machine, name, value from ResourceAttrs")
            .expect("prepare");
        let rows = s
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?)))
            .expect("query");
        for row in rows {
            let (id, k, v) = row.expect("row");
            let d = &depl_of[&id];
            let res = m.get_mut(d).expect("deployment").1.iter_mut();
            let res = res.into_iter().find(|r| r.0 == id).expect("resource");
            res.3.insert(k, v);
        }
        m
    }

    /// The export of `uuids` from the model, through the plain tree printer.
    fn model_export(m: &Model, uuids: &[&str], style: PyStyle) -> String {
        let mut top = Vec::new();
        for (u, (attrs, resources)) in m.iter().filter(|(u, _)| uuids.contains(&u.as_str())) {
            let mut res: Vec<(&str, Tree<'_>)> = Vec::new();
            for (_, name, type_, attrs) in resources {
                if res.iter().any(|(n, _)| n == name) {
                    continue; // the first of a name (lowest id) wins
                }
                let attrs = attrs
                    .iter()
                    .map(|(k, v)| (k.as_str(), Tree::Str(v)))
                    .collect();
                res.push((name, Tree::sorted_with(attrs, "type", Tree::Str(type_))));
            }
            res.sort_by(|a, b| a.0.cmp(b.0));
            let attrs = attrs
                .iter()
                .map(|(k, v)| (k.as_str(), Tree::Str(v)))
                .collect();
            top.push((
                u.as_str(),
                Tree::sorted_with(attrs, "resources", Tree::Map(res)),
            ));
        }
        pyjson::dumps_pretty(&Tree::Map(top), style)
    }

    /// A file large enough for the parallel paths, with every corner the export
    /// shape has: attributes named `type` and `resources`, names sorting around
    /// them, duplicate resource names, escapes, non-ASCII text, empty values and
    /// rows of one machine scattered in rowid order.
    /// A large file of awkward content. `by_resource` writes each resource's
    /// attributes together (as `import` does), otherwise attribute by attribute
    /// (as NixOps' first deploy does); some are then replaced either way.
    fn tricky_file(dir: &std::path::Path, by_resource: bool) -> StateFile {
        let sf = StateFile::open(&dir.join("big.nixops")).expect("create");
        let c = &sf.conn;
        c.execute_batch("begin").expect("begin");
        let depls = ["b-depl", "a-depl", "c-empty"];
        for d in depls {
            c.execute("insert into Deployments(uuid) values (?)", [d])
                .expect("depl");
        }
        for (k, v) in [
            ("name", "net-a"),
            ("resources", "shadowed"),
            ("rollbackEnabled", "1"),
            ("args", "{\"x\": \"\\\"q\\\"\"}"),
            ("zz", ""),
        ] {
            c.execute(
                "insert into DeploymentAttrs values ('a-depl', ?, ?)",
                [k, v],
            )
            .expect("attr");
        }
        c.execute(
            "insert into DeploymentAttrs values ('b-depl', 'description', 'Réseau ☃ 😀')",
            [],
        )
        .expect("attr");
        // Longer than a page: it spills onto overflow pages, and is copied out
        // even where other values are read in place.
        let long = "é \"x\" /".repeat(480);
        let values = [
            "3",
            "",
            "plain text",
            "quote \" and back\\slash",
            "line\nbreak\ttab\u{1}\u{7f}",
            "ünïcödé ☃ 😀",
            "/nix/store/7v2q7nvs2i8l1s2b3c40h9v6x3mygm2l-nixos-system-machine-19.03",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----",
            &long,
        ];
        let names = [
            "state", "type", "toplevel", "typo", "a", "u", "vmId", "keys",
        ];
        for i in 0..5000_i64 {
            let d = if i % 3 == 0 { "a-depl" } else { "b-depl" };
            // Every 50th name repeats an earlier one: duplicates in the schema.
            let name = format!("m{}", if i % 50 == 49 { i - 7 } else { i });
            let type_ = if i % 7 == 0 { "virtualbox" } else { "none" };
            c.execute(
                "insert into Resources(deployment, name, type) values (?, ?, ?)",
                [d, &name, type_],
            )
            .expect("resource");
        }
        if by_resource {
            // Ids that need more than 31 bits, or are negative, are allowed too.
            for (id, name) in [(-3_i64, "negative"), (1 << 40, "wide")] {
                c.execute(
                    "insert into Resources(id, deployment, name, type) values (?, 'b-depl', ?, 'none')",
                    rusqlite::params![id, name],
                )
                .expect("resource");
                c.execute(
                    "insert into ResourceAttrs values (?, 'state', '1'), (?, 'vmId', ?)",
                    rusqlite::params![id, id, name],
                )
                .expect("attrs");
            }
            let mut sorted: Vec<(usize, &str)> = names.iter().copied().enumerate().collect();
            sorted.sort_by_key(|&(_, name)| name);
            for id in 1..=5000_i64 {
                for &(n, name) in &sorted {
                    if id % 5 != (n % 5) as i64 {
                        c.execute(
                            "insert into ResourceAttrs values (?1, ?2, ?3)",
                            rusqlite::params![id, name, values[n % values.len()]],
                        )
                        .expect("attr");
                    }
                }
            }
        } else {
            // A machine's rows are far apart in rowid order.
            for (n, name) in names.iter().enumerate() {
                c.execute(
                    "insert into ResourceAttrs select id, ?1, ?2 from Resources where id % 5 != ?3",
                    rusqlite::params![name, values[n % values.len()], (n % 5) as i64],
                )
                .expect("attrs");
            }
        }
        c.execute_batch(
            "insert or replace into ResourceAttrs select id, 'state', '5' from Resources where id % 11 = 0",
        )
        .expect("replace");
        for (i, value) in values.iter().enumerate() {
            c.execute(
                "insert or replace into ResourceAttrs select id, 'vmId', ? from Resources where id % 13 = ?",
                rusqlite::params![value, i as i64],
            )
            .expect("replace");
        }
        c.execute_batch("commit").expect("commit");
        sf
    }

    /// Each of `cases` twice: first with frames in the WAL, so that SQLite reads
    /// the file, then with the WAL emptied, so that its pages are read directly
    /// (`true`).
    fn both_paths<'a, T: Copy>(
        sf: &'a StateFile,
        cases: &'a [T],
    ) -> impl Iterator<Item = (T, bool)> + 'a {
        assert!(sf.wal_len() > 0, "the file was just written");
        let sqlite = cases.iter().map(|&c| (c, false));
        let direct = cases.iter().map(move |&c| {
            sf.conn
                .execute_batch("pragma wal_checkpoint(truncate)")
                .expect("checkpoint");
            assert_eq!(sf.wal_len(), 0);
            (c, true)
        });
        sqlite.chain(direct)
    }

    #[test]
    fn bulk_export_matches_the_plain_model() {
        for by_resource in [false, true] {
            bulk_export_matches(by_resource);
        }
    }

    fn bulk_export_matches(by_resource: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = tricky_file(dir.path(), by_resource);
        let bounds = super::super::scan::rowid_bounds(&sf.conn).expect("bounds");
        assert!(
            super::super::scan::wants_side(bounds)
                && sf.file_len() >= super::super::scan::PARALLEL_MIN_BYTES,
            "the file must be large enough for the parallel paths: {bounds:?}"
        );
        let m = model(&sf);
        let all: Vec<String> = m.keys().cloned().collect();
        let all_refs: Vec<&str> = all.iter().map(String::as_str).collect();
        for (style, direct) in both_paths(&sf, &[PyStyle::Python2, PyStyle::Python3]) {
            let mut parts = Vec::new();
            let before = super::super::pages::direct_reads();
            sf.export_with(&all, style, |p| parts.push(p.to_vec()))
                .expect("export");
            assert_eq!(
                super::super::pages::direct_reads() - before,
                usize::from(direct)
            );
            assert!(parts.len() > 1, "a large export is handed out in pieces");
            assert_eq!(
                String::from_utf8(parts.concat()).expect("UTF-8"),
                model_export(&m, &all_refs, style)
            );
            for subset in [&["a-depl"][..], &["c-empty"], &["c-empty", "b-depl"]] {
                let uuids: Vec<String> = subset.iter().map(|s| s.to_string()).collect();
                assert_eq!(
                    sf.export_styled(&uuids, style).expect("export subset"),
                    model_export(&m, subset, style),
                    "{subset:?}"
                );
            }
        }
        let err = sf
            .export(&["a-depl".to_owned(), "nope".to_owned()])
            .expect_err("missing deployment");
        assert!(matches!(err, StateError::NoSuchDeployment { uuid } if uuid == "nope"));
    }

    #[test]
    fn bulk_loads_match_the_plain_model() {
        for by_resource in [false, true] {
            bulk_loads_match(by_resource);
        }
    }

    fn bulk_loads_match(by_resource: bool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = tricky_file(dir.path(), by_resource);
        let m = model(&sf);
        let check = |depls: Vec<DeploymentRecord>, only: Option<&[&str]>| {
            assert_eq!(depls.len(), m.len());
            for (d, (u, (attrs, resources))) in depls.iter().zip(&m) {
                assert_eq!((&d.uuid, &d.attrs), (u, attrs));
                assert_eq!(d.resources.len(), resources.len());
                for (r, (id, name, type_, attrs)) in d.resources.iter().zip(resources) {
                    assert_eq!((r.id, &r.name, &r.type_), (*id, name, type_));
                    let mut want = attrs.clone();
                    if let Some(only) = only {
                        want.retain(|k, _| only.contains(&k.as_str()));
                    }
                    assert_eq!(r.attrs, want, "resource {id}");
                }
            }
        };
        for ((), direct) in both_paths(&sf, &[()]) {
            let before = super::super::pages::direct_reads();
            check(sf.deployments().expect("all"), None);
            let only = ["vmId", "type", "missing"];
            check(sf.deployments_with_attrs(&only).expect("some"), Some(&only));
            // Without resource attributes (`list`): `Resources` alone.
            let resource_reads = super::super::pages::resource_reads();
            check(sf.deployments_shallow().expect("shallow"), Some(&[]));
            assert_eq!(
                super::super::pages::resource_reads() - resource_reads,
                usize::from(direct)
            );
            sf.with_attrs(&only, |snap| {
                for (i, (d, (_, (_, resources)))) in snap.deployments().iter().zip(&m).enumerate() {
                    assert!(d.resources.is_empty());
                    let views: Vec<_> = snap.resources(i).collect();
                    assert_eq!(views.len(), resources.len());
                    for (v, (id, name, type_, attrs)) in views.iter().zip(resources) {
                        assert_eq!(
                            (v.id, v.name, v.type_),
                            (*id, name.as_str(), type_.as_str())
                        );
                        for k in ["vmId", "type", "missing", "state"] {
                            let want = attrs.get(k).filter(|_| only.contains(&k));
                            assert_eq!(v.attr(k), want.map(String::as_str), "{id} {k}");
                        }
                    }
                }
            })
            .expect("snapshot");
            assert_eq!(
                super::super::pages::direct_reads() - before,
                3 * usize::from(direct)
            );
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_an_error_on_either_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sf = tricky_file(dir.path(), true);
        sf.conn
            .execute_batch(
                "insert or replace into ResourceAttrs values (42, 'vmId', cast(x'6fff6f' as text))",
            )
            .expect("bad value");
        let all = sf.uuids().expect("uuids");
        let is_utf8_error = |err: StateError| {
            assert!(
                matches!(
                    &err,
                    StateError::Sqlite {
                        source: rusqlite::Error::Utf8Error(_),
                        ..
                    }
                ),
                "{err:?}"
            );
        };
        for ((), _direct) in both_paths(&sf, &[()]) {
            is_utf8_error(sf.export(&all).expect_err("not UTF-8"));
            is_utf8_error(sf.with_attrs(&["vmId"], |_| ()).expect_err("not UTF-8"));
            assert!(
                sf.with_attrs(&["state"], |_| ()).is_ok(),
                "other names are read"
            );
        }
    }
}
