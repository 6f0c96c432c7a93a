//! Records received from the network are staged and made durable in
//! groups: a catch-up of many records is a handful of store flushes, not
//! one `fsync` per record, and every staged record is flushed in the end.

use std::borrow::Cow;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use crate::common::*;
use libp2p_swarm_test::SwarmExt;
use pointer::store::Result;
use pointer::{MemoryStore, Record, RecordStore};

/// How a store was written to.
#[derive(Debug, Default)]
struct Counts {
    puts: AtomicUsize,
    staged: AtomicUsize,
    flushes: AtomicUsize,
    /// Staged records not yet flushed.
    unflushed: AtomicUsize,
}

/// A MemoryStore that counts its writes.
struct Counting {
    inner: MemoryStore,
    counts: Arc<Counts>,
}

impl RecordStore for Counting {
    type RecordsIter<'a> = <MemoryStore as RecordStore>::RecordsIter<'a>;

    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.inner.get(key)
    }

    fn put(&mut self, record: Record) -> Result<()> {
        self.counts.puts.fetch_add(1, SeqCst);
        self.inner.put(record)
    }

    fn stage(&mut self, record: Record) -> Result<()> {
        self.counts.staged.fetch_add(1, SeqCst);
        self.counts.unflushed.fetch_add(1, SeqCst);
        self.inner.put(record)
    }

    fn flush(&mut self) -> Result<()> {
        self.counts.flushes.fetch_add(1, SeqCst);
        self.counts.unflushed.store(0, SeqCst);
        Ok(())
    }

    fn remove(&mut self, key: &str) -> Result<()> {
        self.inner.remove(key)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }
}

#[tokio::test]
async fn a_catch_up_is_flushed_in_groups() {
    const KEYS: usize = 300;
    let counts: Vec<Arc<Counts>> = (0..2).map(|_| Arc::default()).collect();
    let mut nodes = Vec::new();
    for c in &counts {
        let store = Counting {
            inner: MemoryStore::new(),
            counts: c.clone(),
        };
        nodes.push(node_with_store(store, test_config().build().expect("valid config")).await);
    }
    let keys: Vec<String> = (0..KEYS).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        nodes[0].behaviour_mut().put(key, "v").expect("put");
    }
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    for key in &keys {
        nodes[1].behaviour_mut().subscribe(key).expect("valid key");
    }
    let receiver = counts[1].clone();
    until(&mut nodes, "all caught up and flushed", |n| {
        keys.iter().all(|k| n[1].behaviour().value(k).is_some())
            && receiver.unflushed.load(SeqCst) == 0
    })
    .await;

    assert_eq!(
        counts[0].puts.load(SeqCst),
        KEYS,
        "local writes are put, durable at once"
    );
    assert_eq!(receiver.puts.load(SeqCst), 0, "received records are staged");
    assert_eq!(receiver.staged.load(SeqCst), KEYS);
    let flushes = receiver.flushes.load(SeqCst);
    assert!(
        (1..=KEYS / 10).contains(&flushes),
        "{flushes} flushes for {KEYS} records"
    );
}

/// `insert` is as durable as `put` when it returns: the record it stages
/// through the accept path is flushed before it returns, not at the next
/// flush timer (which a crash right after would never see).
#[tokio::test]
async fn an_insert_is_durable_when_it_returns() {
    let counts = Arc::new(Counts::default());
    let store = Counting {
        inner: MemoryStore::new(),
        counts: counts.clone(),
    };
    let mut node = node_with_store(store, test_config().build().expect("valid config")).await;
    let signer = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let record = Record::sign("k", pointer::Op::Mut, "v", 1_700_000_000_000, &signer);
    node.behaviour_mut().insert(record.clone()).expect("valid");
    assert_eq!(counts.unflushed.load(SeqCst), 0, "nothing left unflushed");
    assert!(counts.flushes.load(SeqCst) >= 1);
    assert_eq!(node.behaviour().record("k").as_deref(), Some(&record));
}
