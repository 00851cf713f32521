//! Borrowed views of resources, for commands that show many machines at once.
//!
//! Owns [`StateSnapshot`] (every deployment with its resources and a chosen few
//! resource attributes, kept in the bulk buffers they were read into) and
//! [`ResourceView`] (one resource's name, type and attributes, from a snapshot
//! or from a [`ResourceRecord`]). Reading `info --all` of a large file this way
//! allocates nothing per attribute. It decodes values like [`ResourceRecord`]
//! does and never touches the database.

use std::collections::BTreeMap;

use super::pages::Values;
use super::records::{DeploymentRecord, ResourceRecord, ResourceState};
use super::scan::AttrTable;
use super::{AttrSet, Loaded, StateError, StateFile};

/// Every deployment with its resources and some of their attributes, read in
/// one transaction (see [`StateFile::with_attrs`]).
pub struct StateSnapshot {
    loaded: Loaded,
    /// Per deployment, its resources' positions in `loaded.resources` (by id).
    by_depl: Vec<Vec<usize>>,
}

impl StateSnapshot {
    /// The deployments, sorted by UUID, with their attributes; their `resources`
    /// are empty: see [`StateSnapshot::resources`].
    pub fn deployments(&self) -> &[DeploymentRecord] {
        &self.loaded.depls
    }

    /// The resources of the `i`th deployment, ordered by id.
    pub fn resources(&self, i: usize) -> impl ExactSizeIterator<Item = ResourceView<'_>> + '_ {
        let resources = &self.loaded.resources;
        let table = self
            .loaded
            .table
            .as_ref()
            .expect("invariant: a snapshot reads resource attributes");
        self.by_depl[i].iter().map(move |&r| ResourceView {
            id: resources.id(r),
            name: resources.name(r),
            type_: resources.type_(r),
            attrs: Attrs::Table(table, r),
        })
    }
}

impl StateFile {
    /// Every deployment with its resources, but of the resource attributes only
    /// those named in `names`, handed to `f` in the bulk buffers they were read
    /// into: the cheap way to show a few attributes of every machine. The file
    /// is read in one read transaction.
    pub fn with_attrs<R>(
        &self,
        names: &[&str],
        f: impl FnOnce(&StateSnapshot) -> R,
    ) -> Result<R, StateError> {
        self.with_snapshot(None, AttrSet::Only(names), Values::Checked, |loaded| {
            let mut by_depl = vec![Vec::new(); loaded.depls.len()];
            for (i, d) in loaded.resources.depls().enumerate() {
                by_depl[d].push(i);
            }
            let snapshot = StateSnapshot { loaded, by_depl };
            let done = f(&snapshot);
            self.dispose(snapshot);
            done
        })
    }
}

/// Where a view's attributes are.
#[derive(Clone, Copy)]
enum Attrs<'a> {
    Map(&'a BTreeMap<String, String>),
    Table(&'a AttrTable, usize),
}

/// One resource as stored: a borrowed [`ResourceRecord`] or a resource of a
/// [`StateSnapshot`]. Accessors decode like [`ResourceRecord`]'s.
#[derive(Clone, Copy)]
pub struct ResourceView<'a> {
    /// `Resources.id`.
    pub id: i64,
    /// `Resources.name`.
    pub name: &'a str,
    /// `Resources.type`.
    pub type_: &'a str,
    attrs: Attrs<'a>,
}

impl ResourceRecord {
    /// This resource as a [`ResourceView`].
    pub fn view(&self) -> ResourceView<'_> {
        ResourceView {
            id: self.id,
            name: &self.name,
            type_: &self.type_,
            attrs: Attrs::Map(&self.attrs),
        }
    }
}

impl<'a> ResourceView<'a> {
    /// A raw attribute (in a snapshot: only the attributes it was read with).
    pub fn attr(&self, name: &str) -> Option<&'a str> {
        match self.attrs {
            Attrs::Map(map) => map.get(name).map(String::as_str),
            Attrs::Table(table, slot) => table.get(slot, name),
        }
    }

    /// The life-cycle state (`state`), or the type's default when absent.
    pub fn state(&self) -> ResourceState {
        self.attr("state")
            .and_then(|s| s.trim().parse().ok())
            .map(ResourceState::from_code)
            .unwrap_or_else(|| ResourceState::default_for(self.type_))
    }

    /// Whether the resource is no longer in the network specification.
    pub fn obsolete(&self) -> bool {
        self.attr("obsolete") == Some("1")
    }

    /// The deployment's configsPath at this machine's last activation.
    pub fn configs_path(&self) -> Option<&'a str> {
        self.attr("configsPath")
    }

    /// The backend's id of the machine.
    pub fn vm_id(&self) -> Option<&'a str> {
        self.attr("vmId")
    }

    /// Public IPv4 address (`publicIpv4`).
    pub fn public_ipv4(&self) -> Option<&'a str> {
        self.attr("publicIpv4")
    }

    /// Private IPv4 address (`privateIpv4`).
    pub fn private_ipv4(&self) -> Option<&'a str> {
        self.attr("privateIpv4")
    }
}
