//! Pluggable storage for records, shaped like libp2p-kad's `RecordStore`.
//!
//! A store keeps at most one record per key, tombstones included, and does
//! no ordering of its own: `Pointer` decides which record wins and calls
//! [`RecordStore::put`] only for the winner. Stores enforce their own
//! capacity limits and say so with a typed [`Error`].

use std::borrow::Cow;
use std::sync::Arc;

use crate::record::Record;

mod memory;

#[cfg(test)]
pub(crate) mod conformance;

pub use memory::{MemoryStore, MemoryStoreConfig};

/// The result of a store operation.
pub type Result<T> = std::result::Result<T, Error>;

/// Why a store refused an operation. A refused operation changes nothing.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The store is full and the key is new.
    #[error("the store holds its maximum of {limit} records")]
    MaxRecords {
        /// The configured maximum number of records.
        limit: usize,
    },
    /// The value is larger than the store accepts.
    #[error("value of {len} bytes exceeds the store's limit of {limit} bytes")]
    ValueTooLarge {
        /// Size of the value in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The storage backend failed (disk, database, ...).
    #[error("storage backend failed: {0}")]
    Backend(Arc<dyn std::error::Error + Send + Sync>),
}

/// Storage for the newest record of each key.
pub trait RecordStore {
    /// Iterator over all stored records.
    type RecordsIter<'a>: Iterator<Item = Cow<'a, Record>>
    where
        Self: 'a;

    /// The record stored for `key`, tombstone or value.
    fn get(&self, key: &str) -> Option<Cow<'_, Record>>;

    /// Stores `record` under its key, replacing what was there. Replacing an
    /// existing key never fails for lack of room.
    fn put(&mut self, record: Record) -> Result<()>;

    /// Stores several records at once, each replacing what its key held.
    /// Stores with expensive commits (disk) write them in one transaction:
    /// either all are stored or, on error, none. The default stores them
    /// one by one and stops at the first error.
    fn put_many(&mut self, records: Vec<Record>) -> Result<()> {
        records.into_iter().try_for_each(|r| self.put(r))
    }

    /// Removes the record of `key`, if any.
    fn remove(&mut self, key: &str) -> Result<()>;

    /// All stored records, in no particular order.
    fn records(&self) -> Self::RecordsIter<'_>;
}
