//! `export` and `import`: moving deployments between state files as JSON.
//!
//! Owns the NixOps export shape (`{uuid: {attr: raw, …, "resources": {name:
//! {attr: raw, …, "type": t}}}}`), printed byte for byte as Python's
//! `json.dumps(indent=2, sort_keys=True)`, and the import of that shape. Import is
//! stricter and safer than NixOps: the whole input is validated and every UUID
//! checked before anything is written, and everything is written in one transaction.

use super::pyjson::{self, PyStyle, Tree};
use super::{
    deployment_exists, insert_resource, set_depl_attrs, set_res_attrs, StateError, StateFile,
};

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
        let all;
        let records = if uuids.len() > 1 {
            all = self.deployments()?;
            all.into_iter()
                .filter(|d| uuids.contains(&d.uuid))
                .collect::<Vec<_>>()
        } else {
            uuids
                .iter()
                .map(|u| self.load(u))
                .collect::<Result<Vec<_>, _>>()?
        };
        if let Some(missing) = uuids
            .iter()
            .find(|u| !records.iter().any(|d| &d.uuid == *u))
        {
            return Err(StateError::NoSuchDeployment {
                uuid: missing.clone(),
            });
        }
        // Borrow every string: records keep their sorted maps, so only the
        // resource names need sorting and two keys need inserting.
        let mut top: Vec<(&str, Tree<'_>)> = Vec::with_capacity(records.len());
        for d in &records {
            let mut resources: Vec<(&str, Tree<'_>)> = d
                .resources
                .iter()
                .map(|r| {
                    let attrs = r
                        .attrs
                        .iter()
                        .map(|(k, v)| (k.as_str(), Tree::Str(v)))
                        .collect();
                    (
                        r.name.as_str(),
                        Tree::sorted_with(attrs, "type", Tree::Str(&r.type_)),
                    )
                })
                .collect();
            resources.sort_by(|a, b| a.0.cmp(b.0));
            // Names are not unique in the schema; a JSON object can hold one of each.
            resources.dedup_by(|a, b| a.0 == b.0);
            let attrs = d
                .attrs
                .iter()
                .map(|(k, v)| (k.as_str(), Tree::Str(v)))
                .collect();
            top.push((
                d.uuid.as_str(),
                Tree::sorted_with(attrs, "resources", Tree::Map(resources)),
            ));
        }
        top.sort_by(|a, b| a.0.cmp(b.0));
        Ok(pyjson::dumps_pretty(&Tree::Map(top), style))
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
