//! Tests of the redb store: durability, corruption, schema, limits.

use std::fs;

use ed25519_dalek::SigningKey;
use tempfile::TempDir;

use super::*;
use crate::coordinator::replica::{Refusal, Replica};
use crate::core::accept::Limits;
use crate::core::record::Op;
use crate::core::validator::Open;

fn rec(key: &str, op: Op, value: &str, time: i64) -> Record {
    Record::sign(key, op, value, time, &SigningKey::from_bytes(&[5; 32]))
}

fn db_path(dir: &TempDir) -> PathBuf {
    dir.path().join("records.redb")
}

/// A store at `path` with a few records, closed again.
fn write_store(path: &Path, records: &[Record]) {
    let mut store = RedbStore::open(path).expect("open");
    store.put_many(records.to_vec()).expect("put_many");
}

/// Runs `f` on the raw redb database at `path`, in one write transaction.
fn with_raw_db(path: &Path, f: impl FnOnce(&::redb::WriteTransaction)) {
    let db = Database::create(path).expect("raw open");
    let txn = db.begin_write().expect("begin");
    f(&txn);
    txn.commit().expect("commit");
}

#[test]
fn conformance() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut n = 0;
    crate::store::conformance::run(|limits| {
        n += 1;
        let config = RedbStoreConfig {
            max_records: limits.max_records,
            max_value_bytes: limits.max_value_bytes,
            ..RedbStoreConfig::default()
        };
        RedbStore::open_with_config(dir.path().join(format!("{n}.redb")), config).expect("open")
    });
}

#[test]
fn records_and_tombstones_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let value = rec("a", Op::Mut, "1", 1);
    let tombstone = rec("b", Op::Del, "", 2);
    {
        let mut store = RedbStore::open(&path).expect("open");
        store.put(value.clone()).expect("put");
        store.put(tombstone.clone()).expect("put");
        store.put(rec("c", Op::Mut, "gone", 1)).expect("put");
        store.remove("c").expect("remove");
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("a").map(Cow::into_owned), Some(value));
    assert_eq!(store.get("b").map(Cow::into_owned), Some(tombstone));
    assert_eq!(store.get("c"), None);
    assert_eq!(store.records().count(), 2);
}

#[test]
fn reopened_tombstone_still_rejects_an_older_mut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let limits = || Limits {
        max_key_bytes: 64,
        max_value_bytes: 64,
        max_clock_skew_ms: 300_000,
    };
    write_store(&path, &[rec("k", Op::Del, "", 2_000)]);
    let store = RedbStore::open(&path).expect("reopen");
    let mut replica = Replica::new(store, Box::new(Open), limits(), 1024);
    let older = rec("k", Op::Mut, "back from the dead", 1_000);
    assert!(matches!(replica.receive(older, 3_000), Err(Refusal::Older)));
}

#[test]
fn lowered_max_records_still_accepts_updates_but_no_new_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    write_store(
        &path,
        &[rec("a", Op::Mut, "1", 1), rec("b", Op::Mut, "1", 1)],
    );
    let config = RedbStoreConfig {
        max_records: 1,
        ..RedbStoreConfig::default()
    };
    let mut store = RedbStore::open_with_config(&path, config).expect("reopen");
    store
        .put(rec("a", Op::Mut, "2", 2))
        .expect("update needs no room");
    let err = store.put(rec("c", Op::Mut, "1", 1)).unwrap_err();
    assert!(matches!(err, Error::MaxRecords { limit: 1 }), "{err:?}");
    assert_eq!(store.len(), 2);
}

#[test]
fn empty_file_becomes_a_new_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    fs::write(&path, b"").expect("write");
    let mut store = RedbStore::open(&path).expect("open");
    assert!(store.is_empty());
    store.put(rec("a", Op::Mut, "1", 1)).expect("put");
}

#[test]
fn other_schema_version_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    write_store(&path, &[rec("a", Op::Mut, "1", 1)]);
    with_raw_db(&path, |txn| {
        let mut meta = txn.open_table(META).expect("meta");
        meta.insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION + 1)
            .expect("insert");
    });
    let err = RedbStore::open(&path).unwrap_err();
    assert!(
        matches!(err, OpenError::SchemaVersion { found, expected: SCHEMA_VERSION, .. }
            if found == SCHEMA_VERSION + 1),
        "{err:?}"
    );
}

#[test]
fn another_applications_database_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    with_raw_db(&path, |txn| {
        let users: TableDefinition<u64, u64> = TableDefinition::new("users");
        txn.open_table(users)
            .expect("table")
            .insert(1, 2)
            .expect("insert");
    });
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::ForeignDatabase { .. }), "{err:?}");
}

#[test]
fn meta_table_of_another_type_is_a_typed_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    with_raw_db(&path, |txn| {
        let meta: TableDefinition<u64, &str> = TableDefinition::new("meta");
        txn.open_table(meta)
            .expect("table")
            .insert(1, "x")
            .expect("insert");
    });
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::ForeignDatabase { .. }), "{err:?}");
}

#[test]
fn foreign_file_is_not_a_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    for content in [&b"hello, I am a text file\n"[..], &[0xff; 10_000], b"r"] {
        fs::write(&path, content).expect("write");
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::NotADatabase { .. }), "{err:?}");
        // The file is left as it was: open never overwrites a foreign file.
        assert_eq!(fs::read(&path).expect("read"), content);
    }
}

#[test]
fn damaged_page_is_a_corrupted_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    write_store(&path, &[rec("a-key-to-find", Op::Mut, "1", 1)]);
    let mut bytes = fs::read(&path).expect("read");
    let at = find(&bytes, b"a-key-to-find").expect("key is in the file");
    bytes[at..at + 4].copy_from_slice(b"XXXX");
    fs::write(&path, &bytes).expect("write");
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::Corrupted { .. }), "{err:?}");
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn damaged_files_give_intact_records_or_a_typed_error_never_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let records: Vec<Record> = (0..50)
        .map(|i| rec(&format!("k{i}"), Op::Mut, &format!("v{i}"), 1))
        .collect();
    write_store(&path, &records);
    let pristine = fs::read(&path).expect("read");
    // Every byte of the header, then a sample of the rest.
    let offsets = (0..320)
        .step_by(7)
        .chain((320..pristine.len()).step_by(1009));
    for at in offsets {
        let mut bytes = pristine.clone();
        bytes[at] ^= 0xff;
        fs::write(&path, &bytes).expect("write");
        if let Ok(store) = RedbStore::open(&path) {
            for r in &records {
                let got = store.get(r.key()).map(Cow::into_owned);
                assert_eq!(got.as_ref(), Some(r), "byte {at} flipped");
            }
        }
    }
}

#[test]
fn unreadable_redb_file_formats_are_typed_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    write_store(&path, &[rec("a", Op::Mut, "1", 1)]);
    let pristine = fs::read(&path).expect("read");
    // The format version is the first byte of each of the two commit
    // slots (redb's header.rs): 2 needs an upgrade, 4 is from the future.
    for version in [2u8, 4] {
        let mut bytes = pristine.clone();
        bytes[64] = version;
        bytes[192] = version;
        fs::write(&path, &bytes).expect("write");
        let err = RedbStore::open(&path).unwrap_err();
        assert!(
            matches!(err, OpenError::FileFormat { found, .. } if found == version),
            "{err:?}"
        );
    }
}

#[test]
fn second_open_is_locked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let _first = RedbStore::open(&path).expect("open");
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, OpenError::Locked { .. }), "{err:?}");
}

#[test]
fn unusable_path_is_an_io_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    for path in [dir.path().to_owned(), dir.path().join("missing/dir/db")] {
        let err = RedbStore::open(&path).unwrap_err();
        assert!(matches!(err, OpenError::Io { .. }), "{path:?}: {err:?}");
    }
}

#[test]
fn undecodable_value_reads_as_absent_and_can_be_replaced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let good = rec("good", Op::Mut, "1", 1);
    write_store(&path, std::slice::from_ref(&good));
    with_raw_db(&path, |txn| {
        let mut table = txn.open_table(RECORDS).expect("records");
        table
            .insert("bad", &[0xff, 0xff, 0xff][..])
            .expect("insert");
    });
    let mut store = RedbStore::open(&path).expect("open");
    assert_eq!(store.get("bad"), None);
    let listed: Vec<Record> = store.records().map(Cow::into_owned).collect();
    assert_eq!(listed, [good]);
    assert_eq!(store.len(), 2, "the bad entry still takes a slot");
    let fixed = rec("bad", Op::Mut, "fixed", 2);
    store.put(fixed.clone()).expect("put");
    assert_eq!(store.len(), 2);
    assert_eq!(store.get("bad").map(Cow::into_owned), Some(fixed));
}

#[test]
fn a_pointer_behaviour_runs_on_it() {
    fn is_send<T: Send + 'static>(_: &T) {}
    let dir = tempfile::tempdir().expect("tempdir");
    let store = RedbStore::open(db_path(&dir)).expect("open");
    let keypair = libp2p::identity::Keypair::generate_ed25519();
    let pointer =
        crate::Behaviour::new(&keypair, store, crate::Config::default()).expect("pointer");
    is_send(&pointer);
}

#[test]
fn records_lists_every_record_across_many_pages() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store = RedbStore::open(db_path(&dir)).expect("open");
    let records: Vec<Record> = (0..1_000)
        .map(|i| rec(&format!("key-{i:04}"), Op::Mut, &"v".repeat(100), 1))
        .collect();
    store.put_many(records.clone()).expect("put_many");
    let mut listed: Vec<Record> = store.records().map(Cow::into_owned).collect();
    listed.sort_by(|a, b| a.key().cmp(b.key()));
    assert_eq!(listed, records);
}

#[test]
fn staged_records_past_a_batch_read_as_stored_and_survive_a_flush() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    let n = STAGE_BATCH * 2 + 100;
    let config = RedbStoreConfig {
        max_records: n + 10,
        ..RedbStoreConfig::default()
    };
    {
        let mut store = RedbStore::open_with_config(&path, config.clone()).expect("open");
        // Some keys are in the file already, so staging replaces them.
        write_store_with(&mut store, &[rec("k00007", Op::Mut, "old", 1)]);
        for i in 0..n {
            store
                .stage(rec(&format!("k{i:05}"), Op::Mut, "new", 2))
                .expect("room for every key");
        }
        // A key staged twice keeps its last record and counts once.
        store.stage(rec("k00003", Op::Del, "", 3)).expect("stage");
        assert_eq!(store.len(), n, "each key counted once, staged or written");
        let listed: Vec<Record> = store.records().map(Cow::into_owned).collect();
        assert_eq!(listed.len(), n, "each key listed once");
        assert_eq!(store.get("k00007").expect("held").value(), "new");
        assert!(store.get("k00003").expect("held").is_tombstone());
        // Full: a new key is refused and changes nothing; a held one is not.
        for i in n..n + 10 {
            store
                .stage(rec(&format!("k{i:05}"), Op::Mut, "v", 2))
                .expect("room up to max_records");
        }
        assert!(matches!(
            store.stage(rec("k99999", Op::Mut, "v", 2)),
            Err(Error::MaxRecords { .. })
        ));
        assert!(store.get("k99999").is_none());
        store
            .stage(rec("k00001", Op::Mut, "again", 4))
            .expect("a held key");
        store.flush().expect("flush");
    }
    let store = RedbStore::open_with_config(&path, config).expect("reopen");
    assert_eq!(store.len(), n + 10);
    assert_eq!(store.get("k00001").expect("held").value(), "again");
    assert!(store.get("k00003").expect("held").is_tombstone());
    assert_eq!(store.records().count(), n + 10);
}

#[test]
fn a_durable_put_writes_what_was_staged_before_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = db_path(&dir);
    {
        let mut store = RedbStore::open(&path).expect("open");
        store.stage(rec("a", Op::Mut, "staged", 1)).expect("stage");
        store.stage(rec("b", Op::Mut, "staged", 1)).expect("stage");
        store.put(rec("b", Op::Mut, "put", 2)).expect("put");
        store.remove("a").expect("remove");
        assert!(store.get("a").is_none(), "a staged key removed");
        assert_eq!(store.len(), 1);
        // The put was durable and took the staged records along: nothing
        // is left for a flush to write.
        assert_eq!(store.staged.len(), 0);
        assert!(!store.unsynced);
    }
    let store = RedbStore::open(&path).expect("reopen");
    assert_eq!(store.get("b").expect("held").value(), "put");
    assert!(store.get("a").is_none());
    assert_eq!(store.len(), 1);
}

fn write_store_with(store: &mut RedbStore, records: &[Record]) {
    store.put_many(records.to_vec()).expect("put_many");
}
