//! Records a [`RedbStore`](super::RedbStore) has staged but not written
//! yet. Received records arrive one at a time, and a redb commit costs
//! about the same for one record as for thousands (it rewrites the pages
//! of the tree's path): a million records staged one commit each spent
//! more CPU on commits than on their signatures. So staged records wait
//! here, readable like stored ones, and go to the file in one transaction
//! per batch or at the next flush.

use std::collections::HashMap;

use crate::record::Record;

/// Most records held in memory before they are written (not yet durably).
pub(super) const STAGE_BATCH: usize = 4096;

/// Staged records by key. Whether the file holds a staged key is not
/// kept: finding out costs a read, which a catch-up of records not held
/// yet would pay once per record; the store asks only near its limit.
#[derive(Debug, Default)]
pub(super) struct Staged {
    records: HashMap<String, Record>,
}

impl Staged {
    /// The staged record of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key)
    }

    /// Stages `record`, replacing what its key had staged.
    pub(super) fn insert(&mut self, record: Record) {
        self.records.insert(record.key().to_owned(), record);
    }

    /// Forgets the staged record of `key`, if any.
    pub(super) fn remove(&mut self, key: &str) {
        self.records.remove(key);
    }

    /// How many records are staged.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// The staged records, in no particular order.
    pub(super) fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values()
    }

    /// Forgets everything: it was written.
    pub(super) fn clear(&mut self) {
        self.records.clear();
    }
}
