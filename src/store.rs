//! Pluggable storage for records, shaped like libp2p-kad's `RecordStore`.
//!
//! A store keeps at most one record per key, tombstones included, and does
//! no ordering of its own: `Behaviour` decides which record wins and calls
//! [`RecordStore::put`] only for the winner. Stores enforce their own
//! capacity limits and say so with a typed [`Error`].
//!
//! Two stores come with the crate: [`MemoryStore`], and with the `redb`
//! feature (on by default) the durable, on-disk `RedbStore`.

use std::borrow::Cow;
use std::sync::Arc;

use crate::core::record::Record;

mod memory;
#[cfg(feature = "redb")]
mod redb;

// The checks run a replica over the store, so they live with the test
// utilities, above the coordinator; they are published here, where a
// store's author looks for them.
#[cfg(any(test, feature = "test-utils"))]
#[path = "testing/conformance.rs"]
pub mod conformance;

#[cfg(feature = "redb")]
pub use self::redb::{OpenError, RedbRecords, RedbStore, RedbStoreConfig, SCHEMA_VERSION};
pub use memory::{MemoryStore, MemoryStoreConfig};

/// Default most records a built-in store keeps, tombstones included.
pub const DEFAULT_MAX_RECORDS: usize = 65_536;

/// Default largest value a built-in store accepts, in bytes: 60 KiB, which
/// with the record's other fields fits gossipsub's default 64 KiB message.
pub const DEFAULT_MAX_VALUE_BYTES: usize = 60 * 1024;

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

/// Refuses a record whose value is over `limit` bytes; every built-in store
/// applies the same check, first, so a refused write changes nothing.
pub(crate) fn check_value_size(record: &Record, limit: usize) -> Result<()> {
    let len = record.value().len();
    if len > limit {
        return Err(Error::ValueTooLarge { len, limit });
    }
    Ok(())
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

    /// Stores `record` like [`put`](RecordStore::put), but it may become
    /// durable only at the next [`flush`](RecordStore::flush). `Behaviour`
    /// stages the records it receives from the network and flushes them in
    /// groups, so a catch-up of ten thousand records is not ten thousand
    /// `fsync`s; its local writes use `put`. The default is `put`.
    fn stage(&mut self, record: Record) -> Result<()> {
        self.put(record)
    }

    /// Makes every staged record durable. The default does nothing (a store
    /// whose `stage` is `put`, or one that is not durable at all).
    fn flush(&mut self) -> Result<()> {
        Ok(())
    }

    /// Removes the record of `key`, if any.
    fn remove(&mut self, key: &str) -> Result<()>;

    /// All stored records, in no particular order.
    fn records(&self) -> Self::RecordsIter<'_>;
}
