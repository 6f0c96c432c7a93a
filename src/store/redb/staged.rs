//! Records a [`RedbStore`](super::RedbStore) has staged but not written
//! yet. Received records arrive one at a time, and a redb commit costs
//! about the same for one record as for thousands (it rewrites the pages
//! of the tree's path): a million records staged one commit each spent
//! more CPU on commits than on their signatures. So staged records wait
//! here, readable like stored ones, and go to the file in one transaction
//! per batch or at the next flush.

use std::collections::HashMap;

use crate::core::record::Record;

/// Most records held in memory before they are written (not yet durably).
pub(super) const STAGE_BATCH: usize = 4096;

/// Staged records by key, each with whether the file holds its key when
/// that is known. Finding out costs a read, which a catch-up of records not
/// held yet would pay once per record for nothing, so it is asked only near
/// the store's limit, and at most once per staged record.
#[derive(Debug, Default)]
pub(super) struct Staged {
    records: HashMap<String, (Record, Option<bool>)>,
}

impl Staged {
    /// The staged record of `key`.
    pub(super) fn get(&self, key: &str) -> Option<&Record> {
        self.records.get(key).map(|(record, _)| record)
    }

    /// Stages `record`, replacing what its key had staged (and keeping
    /// what is known of its key).
    pub(super) fn insert(&mut self, record: Record) {
        let key = record.key().to_owned();
        let known = self.records.get(&key).and_then(|(_, known)| *known);
        self.records.insert(key, (record, known));
    }

    /// How many staged keys the file does not hold, reading with
    /// `in_file` only the keys not asked before; a failed read counts as
    /// held and is asked again next time.
    pub(super) fn new_keys<E>(&mut self, in_file: impl Fn(&str) -> Result<bool, E>) -> usize {
        let mut new = 0;
        for (key, (_, known)) in &mut self.records {
            if known.is_none() {
                *known = in_file(key).ok();
            }
            if *known == Some(false) {
                new += 1;
            }
        }
        new
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
        self.records.values().map(|(record, _)| record)
    }

    /// Forgets everything: it was written.
    pub(super) fn clear(&mut self) {
        self.records.clear();
    }
}
