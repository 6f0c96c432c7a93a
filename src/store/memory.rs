//! An in-memory [`RecordStore`](super::RecordStore) with bounded size.

use std::borrow::Cow;
use std::collections::{hash_map, HashMap};
use std::iter;

use super::{Error, RecordStore, Result};
use crate::record::Record;

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
            max_records: 65_536,
            max_value_bytes: 60 * 1024,
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
}

impl RecordStore for MemoryStore {
    type RecordsIter<'a> =
        iter::Map<hash_map::Values<'a, String, Record>, fn(&'a Record) -> Cow<'a, Record>>;

    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.records.get(key).map(Cow::Borrowed)
    }

    fn put(&mut self, record: Record) -> Result<()> {
        if record.value().len() > self.config.max_value_bytes {
            return Err(Error::ValueTooLarge {
                len: record.value().len(),
                limit: self.config.max_value_bytes,
            });
        }
        let is_new = !self.records.contains_key(record.key());
        if is_new && self.records.len() >= self.config.max_records {
            return Err(Error::MaxRecords {
                limit: self.config.max_records,
            });
        }
        self.records.insert(record.key().to_owned(), record);
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
