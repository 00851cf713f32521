//! The `Resources` rows of one read, held compactly.
//!
//! Owns [`ResourceList`]: each resource's id, the position of its deployment and
//! its name and type, the texts of all rows in one string. A bulk read of ten
//! thousand machines then makes two allocations instead of twenty thousand, and
//! touches a third of the memory. It only holds rows: reading them is the
//! caller's (SQLite, or the page reader).

use super::records::ResourceRecord;

/// `Resources` rows, in the order they were pushed.
#[derive(Default)]
pub(super) struct ResourceList {
    rows: Vec<Row>,
    /// Every row's name followed by its type.
    text: String,
}

/// One row: the name is `text[name..type_]`, the type `text[type_..end]`.
#[derive(Clone, Copy)]
struct Row {
    id: i64,
    depl: u32,
    name: u32,
    type_: u32,
    end: u32,
}

/// The list would pass 4 GiB of text or 2^32 deployments.
#[derive(Debug, thiserror::Error)]
#[error("more than 4 GiB of resource names and types")]
pub(super) struct TooLarge;

impl ResourceList {
    /// Room for `rows` rows.
    pub(super) fn with_capacity(rows: usize) -> Self {
        ResourceList {
            rows: Vec::with_capacity(rows),
            text: String::with_capacity(rows * 16),
        }
    }

    /// Append resource `id` of the deployment at position `depl`.
    pub(super) fn push(
        &mut self,
        id: i64,
        depl: usize,
        name: &str,
        type_: &str,
    ) -> Result<(), TooLarge> {
        let at = |len: usize| u32::try_from(len).map_err(|_| TooLarge);
        let depl = at(depl)?;
        at(self.text.len() + name.len() + type_.len())?;
        let name_at = at(self.text.len())?;
        self.text.push_str(name);
        let type_at = at(self.text.len())?;
        self.text.push_str(type_);
        self.rows.push(Row {
            id,
            depl,
            name: name_at,
            type_: type_at,
            end: at(self.text.len())?,
        });
        Ok(())
    }

    pub(super) fn clear(&mut self) {
        self.rows.clear();
        self.text.clear();
    }

    /// The `i`th resource's id.
    pub(super) fn id(&self, i: usize) -> i64 {
        self.rows[i].id
    }

    /// The `i`th resource's name.
    pub(super) fn name(&self, i: usize) -> &str {
        let r = &self.rows[i];
        &self.text[r.name as usize..r.type_ as usize]
    }

    /// The `i`th resource's type.
    pub(super) fn type_(&self, i: usize) -> &str {
        let r = &self.rows[i];
        &self.text[r.type_ as usize..r.end as usize]
    }

    /// The ids of all rows, in order.
    pub(super) fn ids(&self) -> impl ExactSizeIterator<Item = i64> + Clone + '_ {
        self.rows.iter().map(|r| r.id)
    }

    /// The positions of the deployments of all rows, in order.
    pub(super) fn depls(&self) -> impl ExactSizeIterator<Item = usize> + '_ {
        self.rows.iter().map(|r| r.depl as usize)
    }

    /// The `i`th resource as a record without attributes.
    pub(super) fn record(&self, i: usize) -> ResourceRecord {
        ResourceRecord {
            id: self.id(i),
            name: self.name(i).to_owned(),
            type_: self.type_(i).to_owned(),
            attrs: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_read_back_as_pushed() {
        let rows = [
            (7, 0, "web", "none"),
            (-3, 2, "", "ec2"),
            (1 << 40, 1, "dbé", ""),
            (8, 0, "", ""),
        ];
        let mut list = ResourceList::with_capacity(1);
        for (id, depl, name, type_) in rows {
            list.push(id, depl, name, type_).expect("push");
        }
        let ids: Vec<i64> = list.ids().collect();
        assert_eq!(ids, rows.map(|r| r.0));
        let depls: Vec<usize> = list.depls().collect();
        assert_eq!(depls, rows.map(|r| r.1));
        for (i, (id, _, name, type_)) in rows.into_iter().enumerate() {
            assert_eq!((list.id(i), list.name(i), list.type_(i)), (id, name, type_));
            let record = list.record(i);
            assert_eq!(
                (record.id, &*record.name, &*record.type_),
                (id, name, type_)
            );
            assert!(record.attrs.is_empty());
        }
        list.clear();
        assert_eq!(list.ids().len(), 0);
    }

    #[test]
    fn a_deployment_position_past_u32_is_refused() {
        let mut list = ResourceList::default();
        assert!(list.push(1, usize::MAX, "a", "b").is_err());
    }
}
