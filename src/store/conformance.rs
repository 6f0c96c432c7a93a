//! The behaviour every [`RecordStore`] must show, as one generic test suite.
//! Each store's tests call [`run`] with a constructor.

use std::borrow::Cow;

use ed25519_dalek::SigningKey;

use super::{Error, RecordStore};
use crate::record::{Op, Record};

/// The limits a store under test is built with.
pub(crate) struct Limits {
    pub max_records: usize,
    pub max_value_bytes: usize,
}

fn rec(key: &str, op: Op, value: &str, time: i64) -> Record {
    Record::sign(key, op, value, time, &SigningKey::from_bytes(&[3; 32]))
}

/// Runs every check against fresh stores from `make`.
pub(crate) fn run<S: RecordStore>(mut make: impl FnMut(Limits) -> S) {
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
