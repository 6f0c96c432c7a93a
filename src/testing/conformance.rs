//! The behaviour every [`RecordStore`] must show, as one generic test
//! suite (feature `test-utils`). [`MemoryStore`](crate::store::MemoryStore) and
//! `RedbStore` pass it; a store of your own (on sled, SQLite, RocksDB…)
//! runs the same checks by calling [`run`] from a test with a constructor
//! that honours the [`Limits`] it is given. A check that fails panics with
//! what the store did wrong.
//!
//! ```
//! use pointer::store::conformance::{self, Limits};
//! use pointer::{MemoryStore, MemoryStoreConfig};
//!
//! // In a #[test] of your crate, with your store in place of MemoryStore:
//! conformance::run(|Limits { max_records, max_value_bytes, .. }| {
//!     MemoryStore::with_config(MemoryStoreConfig {
//!         max_records,
//!         max_value_bytes,
//!     })
//! });
//! ```

use std::borrow::Cow;

use ed25519_dalek::SigningKey;

use crate::coordinator::replica::{Refusal, Replica};
use crate::core::accept::Limits as AcceptLimits;
use crate::core::record::{Op, Record};
use crate::core::validator::Open;
use crate::store::{Error, RecordStore};

/// The limits a store under test must be built with: the checks fill it
/// to them and expect [`Error::MaxRecords`] and [`Error::ValueTooLarge`] past
/// them.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Most records (values and tombstones) the store holds.
    pub max_records: usize,
    /// Longest value it accepts, in bytes.
    pub max_value_bytes: usize,
}

fn rec(key: &str, op: Op, value: &str, time: i64) -> Record {
    Record::sign(key, op, value, time, &SigningKey::from_bytes(&[3; 32]))
}

/// Runs every check against fresh, empty stores from `make`; panics on the
/// first store behaviour that breaks the [`RecordStore`] contract.
pub fn run<S: RecordStore>(mut make: impl FnMut(Limits) -> S) {
    let mut fresh = || {
        make(Limits {
            max_records: 3,
            max_value_bytes: 8,
        })
    };
    put_then_get_returns_the_record(&mut fresh());
    put_replaces_the_record_of_a_key(&mut fresh());
    tombstones_are_stored_like_values(&mut fresh());
    remove_forgets_the_key(&mut fresh());
    records_lists_everything(&mut fresh());
    full_store_refuses_new_keys_but_accepts_updates(&mut fresh());
    oversize_value_is_refused_and_changes_nothing(&mut fresh());
    put_many_stores_every_record_last_one_wins(&mut fresh());
    put_many_that_overflows_stores_nothing(&mut fresh());
    put_many_with_an_oversize_value_stores_nothing(&mut fresh());
    put_many_of_updates_fits_a_full_store(&mut fresh());
    staged_records_obey_the_same_rules_as_puts(&mut fresh());
    tombstones_are_collected_and_refute_older_writes(fresh());
}

fn staged_records_obey_the_same_rules_as_puts<S: RecordStore>(store: &mut S) {
    let staged = rec("a", Op::Mut, "1", 1);
    store.stage(staged.clone()).expect("stage");
    assert_eq!(
        get(store, "a"),
        Some(staged.clone()),
        "visible before a flush"
    );
    store.flush().expect("flush");
    store.flush().expect("a flush with nothing staged is fine");
    assert_eq!(get(store, "a"), Some(staged));
    let err = store.stage(rec("a", Op::Mut, "123456789", 2)).unwrap_err();
    assert!(matches!(err, Error::ValueTooLarge { .. }), "{err:?}");
    for key in ["b", "c"] {
        store.stage(rec(key, Op::Mut, "1", 1)).expect("room");
    }
    let err = store.stage(rec("d", Op::Mut, "1", 1)).unwrap_err();
    assert!(matches!(err, Error::MaxRecords { limit: 3 }), "{err:?}");
    assert_eq!(get(store, "d"), None);
}

fn get<S: RecordStore>(store: &S, key: &str) -> Option<Record> {
    store.get(key).map(Cow::into_owned)
}

fn put_then_get_returns_the_record<S: RecordStore>(store: &mut S) {
    let r = rec("a", Op::Mut, "1", 1);
    store.put(r.clone()).expect("put");
    assert_eq!(get(store, "a"), Some(r));
    assert_eq!(get(store, "b"), None);
}

fn put_replaces_the_record_of_a_key<S: RecordStore>(store: &mut S) {
    store.put(rec("a", Op::Mut, "1", 1)).expect("put");
    let newer = rec("a", Op::Mut, "2", 2);
    store.put(newer.clone()).expect("put");
    assert_eq!(get(store, "a"), Some(newer));
}

fn tombstones_are_stored_like_values<S: RecordStore>(store: &mut S) {
    let del = rec("a", Op::Del, "", 3);
    store.put(del.clone()).expect("put");
    assert_eq!(get(store, "a"), Some(del));
}

fn remove_forgets_the_key<S: RecordStore>(store: &mut S) {
    store.put(rec("a", Op::Mut, "1", 1)).expect("put");
    store.remove("a").expect("remove");
    assert_eq!(get(store, "a"), None);
    store
        .remove("never-there")
        .expect("removing a missing key is fine");
}

fn records_lists_everything<S: RecordStore>(store: &mut S) {
    store.put(rec("a", Op::Mut, "1", 1)).expect("put");
    store.put(rec("b", Op::Del, "", 1)).expect("put");
    let mut keys: Vec<String> = store.records().map(|r| r.key().to_owned()).collect();
    keys.sort();
    assert_eq!(keys, ["a", "b"]);
}

fn full_store_refuses_new_keys_but_accepts_updates<S: RecordStore>(store: &mut S) {
    for key in ["a", "b", "c"] {
        store.put(rec(key, Op::Mut, "1", 1)).expect("room");
    }
    let err = store.put(rec("d", Op::Mut, "1", 1)).unwrap_err();
    assert!(matches!(err, Error::MaxRecords { limit: 3 }), "{err:?}");
    assert_eq!(get(store, "d"), None);
    store
        .put(rec("a", Op::Mut, "2", 2))
        .expect("updating an existing key needs no room");
}

fn oversize_value_is_refused_and_changes_nothing<S: RecordStore>(store: &mut S) {
    let old = rec("a", Op::Mut, "small", 1);
    store.put(old.clone()).expect("put");
    let err = store.put(rec("a", Op::Mut, "123456789", 2)).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { len: 9, limit: 8 }),
        "{err:?}"
    );
    assert_eq!(get(store, "a"), Some(old));
}

fn put_many_stores_every_record_last_one_wins<S: RecordStore>(store: &mut S) {
    store.put_many(Vec::new()).expect("an empty batch is fine");
    let batch = vec![
        rec("a", Op::Mut, "1", 1),
        rec("b", Op::Del, "", 1),
        rec("a", Op::Mut, "2", 2),
    ];
    store.put_many(batch).expect("two keys fit");
    assert_eq!(get(store, "a"), Some(rec("a", Op::Mut, "2", 2)));
    assert_eq!(get(store, "b"), Some(rec("b", Op::Del, "", 1)));
    // "a" came twice but takes one slot: one more key still fits.
    store
        .put(rec("c", Op::Mut, "1", 1))
        .expect("room for a third");
}

fn put_many_that_overflows_stores_nothing<S: RecordStore>(store: &mut S) {
    store.put(rec("a", Op::Mut, "1", 1)).expect("put");
    let batch = vec![
        rec("a", Op::Mut, "2", 2),
        rec("b", Op::Mut, "1", 1),
        rec("c", Op::Mut, "1", 1),
        rec("d", Op::Mut, "1", 1),
    ];
    let err = store.put_many(batch).unwrap_err();
    assert!(matches!(err, Error::MaxRecords { limit: 3 }), "{err:?}");
    assert_eq!(get(store, "a"), Some(rec("a", Op::Mut, "1", 1)));
    assert_eq!(store.records().count(), 1);
}

fn put_many_with_an_oversize_value_stores_nothing<S: RecordStore>(store: &mut S) {
    let batch = vec![rec("a", Op::Mut, "1", 1), rec("b", Op::Mut, "123456789", 1)];
    let err = store.put_many(batch).unwrap_err();
    assert!(
        matches!(err, Error::ValueTooLarge { len: 9, .. }),
        "{err:?}"
    );
    assert_eq!(store.records().count(), 0);
}

fn put_many_of_updates_fits_a_full_store<S: RecordStore>(store: &mut S) {
    let keys = ["a", "b", "c"];
    let batch = |time| keys.iter().map(|k| rec(k, Op::Mut, "v", time)).collect();
    store.put_many(batch(1)).expect("fills the store");
    store.put_many(batch(2)).expect("updates need no room");
    assert_eq!(get(store, "c"), Some(rec("c", Op::Mut, "v", 2)));
}

/// Tombstones go through the store like any record: they refute an older
/// write, and `Replica::collect_tombstones` removes the expired ones.
fn tombstones_are_collected_and_refute_older_writes<S: RecordStore>(store: S) {
    let limits = AcceptLimits {
        max_key_bytes: 8,
        max_value_bytes: 8,
        max_clock_skew_ms: 1_000,
    };
    let mut replica = Replica::new(store, Box::new(Open), limits, 1024);
    for record in [
        rec("old", Op::Del, "", 1_000),
        rec("young", Op::Del, "", 9_000),
        rec("value", Op::Mut, "v", 1_000),
    ] {
        replica.receive(record, 10_000).expect("accepted");
    }
    let stale = rec("young", Op::Mut, "v", 8_000);
    assert!(matches!(
        replica.receive(stale, 10_000),
        Err(Refusal::Older)
    ));
    let collected = replica.collect_tombstones(10_000, 5_000).expect("gc");
    assert_eq!(collected, ["old"]);
    let mut keys: Vec<String> = replica
        .store()
        .records()
        .map(|r| r.key().to_owned())
        .collect();
    keys.sort();
    assert_eq!(keys, ["value", "young"]);
}
