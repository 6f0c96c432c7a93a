//! A store written outside the crate, as a user would write one, runs the
//! published conformance suite (`pointer::store::conformance`, feature
//! `test-utils`): the same checks `MemoryStore` and `RedbStore` pass.

#![cfg(feature = "test-utils")]

use std::borrow::Cow;
use std::collections::BTreeMap;

use pointer::store::conformance::{self, Limits};
use pointer::store::{Error, RecordStore, Result};
use pointer::Record;

/// An ordered map with the two limits the contract asks of every store.
struct OrderedStore {
    records: BTreeMap<String, Record>,
    max_records: usize,
    max_value_bytes: usize,
}

impl OrderedStore {
    fn admits(&self, record: &Record, extra_keys: usize) -> Result<()> {
        let len = record.value().len();
        if len > self.max_value_bytes {
            return Err(Error::ValueTooLarge {
                len,
                limit: self.max_value_bytes,
            });
        }
        let new = !self.records.contains_key(record.key());
        if new && self.records.len() + extra_keys >= self.max_records {
            return Err(Error::MaxRecords {
                limit: self.max_records,
            });
        }
        Ok(())
    }
}

impl RecordStore for OrderedStore {
    type RecordsIter<'a> = std::iter::Map<
        std::collections::btree_map::Values<'a, String, Record>,
        fn(&'a Record) -> Cow<'a, Record>,
    >;

    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.records.get(key).map(Cow::Borrowed)
    }

    fn put(&mut self, record: Record) -> Result<()> {
        self.admits(&record, 0)?;
        self.records.insert(record.key().to_owned(), record);
        Ok(())
    }

    /// All or nothing, as the contract asks: every record is checked
    /// before any is stored.
    fn put_many(&mut self, records: Vec<Record>) -> Result<()> {
        let mut fresh = std::collections::BTreeSet::new();
        for record in &records {
            let extra = fresh.len();
            self.admits(record, extra)?;
            if !self.records.contains_key(record.key()) {
                fresh.insert(record.key().to_owned());
            }
        }
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

#[test]
fn a_store_of_our_own_passes_the_conformance_suite() {
    conformance::run(
        |Limits {
             max_records,
             max_value_bytes,
             ..
         }| OrderedStore {
            records: BTreeMap::new(),
            max_records,
            max_value_bytes,
        },
    );
}

/// The suite is not a formality: a store that ignores its record limit
/// fails it.
#[test]
#[should_panic]
fn a_store_that_ignores_its_limit_fails_the_suite() {
    conformance::run(
        |Limits {
             max_value_bytes, ..
         }| OrderedStore {
            records: BTreeMap::new(),
            max_records: usize::MAX,
            max_value_bytes,
        },
    );
}
