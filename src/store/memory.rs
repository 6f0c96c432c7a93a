//! An in-memory [`RecordStore`](super::RecordStore) with bounded size.

use std::borrow::Cow;
use std::collections::{hash_map, HashMap, HashSet};
use std::iter;

use super::{check_value_size, Error, RecordStore, Result};
use super::{DEFAULT_MAX_RECORDS, DEFAULT_MAX_VALUE_BYTES};
use crate::core::record::Record;

/// Limits of a [`MemoryStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemoryStoreConfig {
    /// Most records (values and tombstones) kept at once. Default: 65,536.
    pub max_records: usize,
    /// Largest value accepted, in bytes. Default: 61,440 (60 KiB), which
    /// with the record's other fields fits gossipsub's default 64 KiB
    /// message.
    pub max_value_bytes: usize,
}

impl Default for MemoryStoreConfig {
    fn default() -> Self {
        MemoryStoreConfig {
            max_records: DEFAULT_MAX_RECORDS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
        }
    }
}

/// Records in a `HashMap`: fast, bounded, and gone when the process exits.
#[derive(Debug, Clone, Default)]
pub struct MemoryStore {
    config: MemoryStoreConfig,
    records: HashMap<String, Record>,
}

impl MemoryStore {
    /// An empty store with the default limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store with the given limits.
    pub fn with_config(config: MemoryStoreConfig) -> Self {
        MemoryStore {
            config,
            records: HashMap::new(),
        }
    }

    /// Number of records held, tombstones included.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Refuses `new_keys` more keys if they do not fit.
    fn check_room(&self, new_keys: usize) -> Result<()> {
        if new_keys > 0 && self.records.len() + new_keys > self.config.max_records {
            return Err(Error::MaxRecords {
                limit: self.config.max_records,
            });
        }
        Ok(())
    }
}

impl RecordStore for MemoryStore {
    type RecordsIter<'a> =
        iter::Map<hash_map::Values<'a, String, Record>, fn(&'a Record) -> Cow<'a, Record>>;

    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.records.get(key).map(Cow::Borrowed)
    }

    fn put(&mut self, record: Record) -> Result<()> {
        check_value_size(&record, self.config.max_value_bytes)?;
        let is_new = !self.records.contains_key(record.key());
        self.check_room(usize::from(is_new))?;
        self.records.insert(record.key().to_owned(), record);
        Ok(())
    }

    /// All or nothing, like the on-disk stores: every value and the room
    /// for every new key are checked before anything is stored.
    fn put_many(&mut self, records: Vec<Record>) -> Result<()> {
        for record in &records {
            check_value_size(record, self.config.max_value_bytes)?;
        }
        // A key that comes twice in one batch takes one slot.
        let new_keys: HashSet<&str> = records
            .iter()
            .map(Record::key)
            .filter(|key| !self.records.contains_key(*key))
            .collect();
        self.check_room(new_keys.len())?;
        for record in records {
            self.records.insert(record.key().to_owned(), record);
        }
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        self.records.remove(key);
        Ok(())
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.records.values().map(Cow::Borrowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        crate::store::conformance::run(|limits| {
            MemoryStore::with_config(MemoryStoreConfig {
                max_records: limits.max_records,
                max_value_bytes: limits.max_value_bytes,
            })
        });
    }
}
