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

/// Staged records by key, each with whether the file already holds its
/// key (so the store's record count stays exact without a second read).
#[derive(Debug, Default)]
pub(super) struct Staged {
    records: HashMap<String, (Record, bool)>,
    new_keys: usize,
}

impl Staged {
    /// The staged record of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key).map(|(record, _)| record)
    }

    /// Whether the key is staged, and if so whether the file holds it.
    pub(super) fn in_file(&self, key: &str) -> Option<bool> {
        self.records.get(key).map(|(_, in_file)| *in_file)
    }

    /// Stages `record`; `in_file` says whether the file holds its key.
    pub(super) fn insert(&mut self, record: Record, in_file: bool) {
        let key = record.key().to_owned();
        let in_file = self.in_file(&key).unwrap_or(in_file);
        if self.records.insert(key, (record, in_file)).is_none() && !in_file {
            self.new_keys += 1;
        }
    }

    /// Forgets the staged record of `key`, if any.
    pub(super) fn remove(&mut self, key: &str) {
        if let Some((_, false)) = self.records.remove(key) {
            self.new_keys -= 1;
        }
    }

    /// How many records are staged.
    pub(super) fn len(&self) -> usize {
        self.records.len()
    }

    /// How many staged keys the file does not hold yet.
    pub(super) fn new_keys(&self) -> usize {
        self.new_keys
    }

    /// The staged records, in no particular order.
    pub(super) fn records(&self) -> impl Iterator<Item = &Record> {
        self.records.values().map(|(record, _)| record)
    }

    /// The staged records whose keys the file does not hold.
    pub(super) fn not_in_file(&self) -> impl Iterator<Item = &Record> {
        self.records
            .values()
            .filter(|(_, in_file)| !in_file)
            .map(|(record, _)| record)
    }

    /// Forgets everything: it was written.
    pub(super) fn clear(&mut self) {
        self.records.clear();
        self.new_keys = 0;
    }
}
