//! `export` and `import`: moving deployments between state files as JSON.
//!
//! Owns the NixOps export shape (`{uuid: {attr: raw, …, "resources": {name:
//! {attr: raw, …, "type": t}}}}`), printed byte for byte as Python's
//! `json.dumps(indent=2, sort_keys=True)`, and the import of that shape. Import is
//! stricter and safer than NixOps: the whole input is validated and every UUID
//! checked before anything is written, and everything is written in one transaction.

use std::cmp::Ordering;

use super::pyjson::{self, PyStyle};
use super::records::DeploymentRecord;
use super::scan::AttrTable;
use super::{
    deployment_exists, insert_resource, set_depl_attrs, set_res_attrs, AttrSet, Loaded,
    StateError, StateFile,
};

/// Exports larger than this (estimated bytes) are formatted on two threads.
const PARALLEL_EXPORT_BYTES: usize = 1 << 20;

/// One deployment to export.
struct Export<'a> {
    depl: &'a DeploymentRecord,
    /// Positions in `Loaded::resources`, sorted by name, one per name.
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
    /// Per attribute name: `\n` + resource attribute indentation + `"name": `.
    keys: Vec<String>,
    /// Per attribute name: how it sorts against `type`.
    vs_type: Vec<Ordering>,
}

/// Indentation of deployment entries, deployment attributes, resources and
/// resource attributes (levels 1 to 4, two spaces each).
const IND1: &str = "\n  ";
const IND2: &str = "\n    ";
const IND3: &str = "\n      ";
const IND4: &str = "\n        ";

impl<'a> Formatter<'a> {
    fn new(loaded: &'a Loaded, table: &'a AttrTable, style: PyStyle) -> Self {
        let keys = table
            .names()
            .iter()
            .map(|n| {
                let mut k = String::from(IND4);
                pyjson::write_str(&mut k, n);
                k.push_str(": ");
                k
            })
            .collect();
        let vs_type = table.names().iter().map(|n| n.as_str().cmp("type")).collect();
        Formatter {
            loaded,
            table,
            sep: match style {
                PyStyle::Python2 => ", ",
                PyStyle::Python3 => ",",
            },
            keys,
            vs_type,
        }
    }

    /// The text of `depls`: with the opening brace if `first`, the closing one if
    /// `last`, and a separator before the first deployment unless `first`.
    fn part(&self, depls: &[Export<'_>], first: bool, last: bool) -> String {
        let weight: usize = depls.iter().map(|e| e.weight).sum();
        let mut out = String::with_capacity(weight + weight / 8);
        if first {
            out.push('{');
        }
        for (i, e) in depls.iter().enumerate() {
            if i > 0 || !first {
                out.push_str(self.sep);
            }
            out.push_str(IND1);
            pyjson::write_str(&mut out, &e.depl.uuid);
            out.push_str(": {");
            let mut n = 0;
            let mut resources_done = false;
            for (k, v) in &e.depl.attrs {
                if !resources_done && k.as_str() >= "resources" {
                    self.resources(&mut out, &mut n, &e.resources);
                    resources_done = true;
                    if k == "resources" {
                        continue;
                    }
                }
                self.entry(&mut out, &mut n, IND2, k);
                pyjson::write_str(&mut out, v);
            }
            if !resources_done {
                self.resources(&mut out, &mut n, &e.resources);
            }
            out.push_str(IND1);
            out.push('}');
        }
        if last {
            out.push_str("\n}");
        }
        out
    }

    /// Start the `n`th entry of an object: separator, newline, indentation, key.
    fn entry(&self, out: &mut String, n: &mut usize, indent: &str, key: &str) {
        if *n > 0 {
            out.push_str(self.sep);
        }
        *n += 1;
        out.push_str(indent);
        pyjson::write_str(out, key);
        out.push_str(": ");
    }

    /// The `"resources"` entry of a deployment.
    fn resources(&self, out: &mut String, n: &mut usize, resources: &[usize]) {
        self.entry(out, n, IND2, "resources");
        if resources.is_empty() {
            out.push_str("{}");
            return;
        }
        out.push('{');
        for (i, &r) in resources.iter().enumerate() {
            let res = &self.loaded.resources[r].1;
            if i > 0 {
                out.push_str(self.sep);
            }
            out.push_str(IND3);
            pyjson::write_str(out, &res.name);
            out.push_str(": {");
            let mut first = true;
            let mut type_done = false;
            let push_type = |out: &mut String, first: &mut bool| {
                if !*first {
                    out.push_str(self.sep);
                }
                *first = false;
                out.push_str(IND4);
                out.push_str("\"type\": ");
                pyjson::write_str(out, &res.type_);
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
                if !first {
                    out.push_str(self.sep);
                }
                first = false;
                out.push_str(&self.keys[rank]);
                if plain {
                    out.push('"');
                    out.push_str(value);
                    out.push('"');
                } else {
                    pyjson::write_str(out, value);
                }
            }
            if !type_done {
                push_type(out, &mut first);
            }
            out.push_str(IND3);
            out.push('}');
        }
        out.push_str(IND2);
        out.push('}');
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
        Ok(self.export_parts(uuids, style)?.concat())
    }

    /// The text of [`StateFile::export_styled`] in parts, to be written one after
    /// the other: large exports are formatted in parallel, and writing the parts
    /// avoids copying them into one string.
    pub fn export_parts(&self, uuids: &[String], style: PyStyle) -> Result<Vec<String>, StateError> {
        let filter = match uuids {
            [one] => Some(one.as_str()),
            _ => None,
        };
        let loaded = self.read_snapshot(filter, AttrSet::All)?;
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
        // Each deployment's resources by name; names are not unique in the schema
        // and a JSON object holds one of each: the first by id, as sorting is stable.
        let mut by_depl: Vec<Vec<usize>> = vec![Vec::new(); loaded.depls.len()];
        for (i, (d, _)) in loaded.resources.iter().enumerate() {
            by_depl[*d].push(i);
        }
        let mut selected: Vec<Export<'_>> = Vec::new();
        let mut total = 0;
        for (d, mut res) in loaded.depls.iter().zip(by_depl) {
            if filter.is_none() && !uuids.iter().any(|u| *u == d.uuid) {
                continue;
            }
            res.sort_by(|&a, &b| loaded.resources[a].1.name.cmp(&loaded.resources[b].1.name));
            res.dedup_by(|a, b| loaded.resources[*a].1.name == loaded.resources[*b].1.name);
            let weight: usize = res
                .iter()
                .map(|&r| table.weight(r) + 64)
                .sum::<usize>()
                + 256;
            total += weight;
            selected.push(Export {
                depl: d,
                resources: res,
                weight,
            });
        }
        let fmt = Formatter::new(&loaded, table, style);
        if selected.is_empty() {
            return Ok(vec!["{}".to_owned()]);
        }
        // Two halves of about equal size, the second on its own thread.
        let mut split = selected.len();
        if total >= PARALLEL_EXPORT_BYTES {
            let mut acc = 0;
            split = selected
                .iter()
                .position(|e| {
                    acc += e.weight;
                    acc * 2 >= total
                })
                .map_or(selected.len(), |i| i + 1);
        }
        let (first, second) = selected.split_at(split);
        let parts = std::thread::scope(|s| {
            let second = (!second.is_empty()).then(|| s.spawn(|| fmt.part(second, false, true)));
            let first = fmt.part(first, true, second.is_none());
            let mut parts = vec![first];
            if let Some(h) = second {
                parts.push(h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)));
            }
            parts
        });
        Ok(parts)
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
