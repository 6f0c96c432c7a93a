//! The store a bench node runs on: `MemoryStore`, or with the `redb`
//! feature an on-disk `RedbStore` in a temporary directory
//! (`POINTER_BENCH_SCALE_STORE=redb` in the scale scenario).

use std::borrow::Cow;

use pointer::store::{self, RecordStore};
use pointer::{MemoryStore, Record};

/// One of the crate's stores, chosen at run time.
pub(crate) enum BenchStore {
    Memory(MemoryStore),
    #[cfg(feature = "redb")]
    /// The directory is removed when the store is dropped.
    Redb {
        /// Boxed: a redb store is several times larger than a memory one.
        store: Box<pointer::RedbStore>,
        _dir: tempfile::TempDir,
    },
}

impl From<MemoryStore> for BenchStore {
    fn from(store: MemoryStore) -> Self {
        BenchStore::Memory(store)
    }
}

impl BenchStore {
    /// An empty store of `kind` (`memory` or `redb`) with room for
    /// `max_records`.
    pub(crate) fn empty(kind: &str, max_records: usize) -> Self {
        match kind {
            #[cfg(feature = "redb")]
            "redb" => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let config = pointer::RedbStoreConfig {
                    max_records,
                    ..Default::default()
                };
                let store =
                    pointer::RedbStore::open_with_config(dir.path().join("records.redb"), config)
                        .expect("a fresh redb store opens");
                BenchStore::Redb {
                    store: Box::new(store),
                    _dir: dir,
                }
            }
            "memory" => BenchStore::Memory(MemoryStore::with_config(pointer::MemoryStoreConfig {
                max_records,
                ..Default::default()
            })),
            other => panic!("unknown store {other:?}: memory or redb (with the redb feature)"),
        }
    }
}

impl RecordStore for BenchStore {
    type RecordsIter<'a> = Box<dyn Iterator<Item = Cow<'a, Record>> + 'a>;

    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        match self {
            BenchStore::Memory(s) => s.get(key),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.get(key),
        }
    }

    fn put(&mut self, record: Record) -> store::Result<()> {
        match self {
            BenchStore::Memory(s) => s.put(record),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.put(record),
        }
    }

    fn put_many(&mut self, records: Vec<Record>) -> store::Result<()> {
        match self {
            BenchStore::Memory(s) => s.put_many(records),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.put_many(records),
        }
    }

    fn stage(&mut self, record: Record) -> store::Result<()> {
        match self {
            BenchStore::Memory(s) => s.stage(record),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.stage(record),
        }
    }

    fn flush(&mut self) -> store::Result<()> {
        match self {
            BenchStore::Memory(s) => s.flush(),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.flush(),
        }
    }

    fn remove(&mut self, key: &str) -> store::Result<()> {
        match self {
            BenchStore::Memory(s) => s.remove(key),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => s.remove(key),
        }
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        match self {
            BenchStore::Memory(s) => Box::new(s.records()),
            #[cfg(feature = "redb")]
            BenchStore::Redb { store: s, .. } => Box::new(s.records()),
        }
    }
}
