//! Criterion micro-benchmarks of the pure core:
//! `cargo bench --bench micro`.
//!
//! One record with a 100-byte value under a 60-byte `OwnedKeys` key, as the
//! network benchmark sends: encode/decode of the gossip payload, sign,
//! verify, the accept path for a stale record (a comparison, no signature
//! check) and a fresh one (signature checked), and `MemoryStore` put/get.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use ed25519_dalek::SigningKey;
use libp2p::identity::Keypair;
use pointer::internals::accept::{judge, Limits, Verdict};
use pointer::internals::replica::Replica;
use pointer::internals::wire::{decode_operate, encode_operate};
use pointer::signing_key;
use pointer::store::{MemoryStore, RecordStore};
use pointer::{Config, Op, OwnedKeys, Record};

const VALUE_BYTES: usize = 100;
const TIME: i64 = 1_700_000_000_000;

struct Fixture {
    signer: SigningKey,
    key: String,
    value: String,
    record: Record,
    older: Record,
    limits: Limits,
}

fn fixture() -> Fixture {
    let keypair = Keypair::generate_ed25519();
    let signer = signing_key(&keypair).expect("ed25519");
    let key = OwnedKeys::key(&keypair.public().to_peer_id(), "bench");
    let value = "v".repeat(VALUE_BYTES);
    let record = Record::sign(&key, Op::Mut, &value, TIME, &signer);
    let older = Record::sign(&key, Op::Mut, &value, TIME - 1, &signer);
    Fixture {
        signer,
        key,
        value,
        record,
        older,
        limits: *Config::default().limits(),
    }
}

/// A copy of `record` that was never checked: a record remembers the
/// outcome of its signature check, and its clones carry it.
fn unchecked(record: &Record) -> Record {
    Record::from_parts(
        record.key().to_owned(),
        record.op(),
        record.value().to_owned(),
        record.time(),
        *record.author(),
        *record.signature(),
    )
}

fn wire(c: &mut Criterion) {
    let f = fixture();
    let bytes = encode_operate(&f.record);
    let limit = Config::default().max_message_bytes();
    c.bench_function("wire/encode_operate", |b| {
        b.iter(|| encode_operate(black_box(&f.record)))
    });
    c.bench_function("wire/decode_operate", |b| {
        b.iter(|| decode_operate(black_box(&f.key), black_box(&bytes), limit).expect("decodes"))
    });
}

fn crypto(c: &mut Criterion) {
    let f = fixture();
    c.bench_function("record/sign", |b| {
        b.iter(|| {
            Record::sign(
                black_box(&f.key),
                Op::Mut,
                black_box(&f.value),
                TIME,
                &f.signer,
            )
        })
    });
    // A record remembers its check, so each iteration checks a copy that
    // never was; the remembered outcome is measured on its own.
    c.bench_function("record/verify", |b| {
        b.iter_batched(
            || unchecked(&f.record),
            |r| assert!(black_box(&r).verify()),
            BatchSize::SmallInput,
        )
    });
    let checked = unchecked(&f.record);
    assert!(checked.verify());
    c.bench_function("record/verify_remembered", |b| {
        b.iter(|| assert!(black_box(&checked).verify()))
    });
    // The parts of a verify: decompressing the author's public key, and
    // the signature check proper with the key at hand.
    let author = *f.record.author().as_bytes();
    c.bench_function("record/verify_parts/decompress_author", |b| {
        b.iter(|| ed25519_dalek::VerifyingKey::from_bytes(black_box(&author)).expect("valid"))
    });
    c.bench_function("validator/owned_keys", |b| {
        b.iter(|| {
            assert!(pointer::Validator::may_write(
                &OwnedKeys,
                black_box(f.record.key()),
                black_box(f.record.author())
            ))
        })
    });
    let key = ed25519_dalek::VerifyingKey::from_bytes(&author).expect("valid");
    let bytes = f.record.signed_bytes();
    let signature = ed25519_dalek::Signature::from_bytes(f.record.signature().as_bytes());
    c.bench_function("record/verify_parts/verify_strict", |b| {
        b.iter(|| {
            key.verify_strict(black_box(&bytes), black_box(&signature))
                .expect("valid")
        })
    });
}

fn accept(c: &mut Criterion) {
    let f = fixture();
    let validator = OwnedKeys;
    // Stale: the stored record is newer, so the incoming one loses on
    // precedence before any signature check.
    c.bench_function("accept/judge_stale", |b| {
        b.iter(|| {
            let v = judge(
                black_box(&f.older),
                Some(black_box(&f.record)),
                TIME,
                &f.limits,
                &validator,
            );
            assert_eq!(v, Verdict::Older);
        })
    });
    // Fresh: newer than the stored one, so its signature and the validator
    // are checked.
    c.bench_function("accept/judge_fresh", |b| {
        b.iter_batched(
            || unchecked(&f.record),
            |record| {
                let v = judge(
                    black_box(&record),
                    Some(black_box(&f.older)),
                    TIME,
                    &f.limits,
                    &validator,
                );
                assert_eq!(v, Verdict::Newer);
            },
            BatchSize::SmallInput,
        )
    });
    // The whole receive path of a replica (judge + store), stale and fresh.
    let max_message = Config::default().max_message_bytes();
    let mut stale = Replica::new(
        MemoryStore::new(),
        Box::new(OwnedKeys),
        f.limits,
        max_message,
    );
    stale.receive(f.record.clone(), TIME).expect("stored");
    c.bench_function("accept/replica_receive_stale", |b| {
        b.iter_batched(
            || f.older.clone(),
            |r| stale.receive(r, TIME).expect_err("stale"),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("accept/replica_receive_fresh", |b| {
        b.iter_batched(
            || {
                let mut replica = Replica::new(
                    MemoryStore::new(),
                    Box::new(OwnedKeys),
                    f.limits,
                    max_message,
                );
                replica.receive(f.older.clone(), TIME).expect("stored");
                (replica, unchecked(&f.record))
            },
            |(mut replica, r)| {
                replica.receive(r, TIME).expect("fresh");
                replica
            },
            BatchSize::SmallInput,
        )
    });
}

/// One `Answer`'s worth of fresh records (256, as `max_keys_per_ask`)
/// received into an empty store, their signatures checked beforehand on
/// one thread and on two (`verify_threads`, as the fetch handler does).
fn burst(c: &mut Criterion) {
    let f = fixture();
    let max_message = Config::default().max_message_bytes();
    let records: Vec<Record> = (0..256)
        .map(|i| Record::sign(&format!("{}{i}", f.key), Op::Mut, &f.value, TIME, &f.signer))
        .collect();
    for threads in [1, 2] {
        c.bench_function(
            &format!("accept/answer_of_256/verify_threads_{threads}"),
            |b| {
                b.iter_batched(
                    || {
                        let replica = Replica::new(
                            MemoryStore::new(),
                            Box::new(pointer::Open),
                            f.limits,
                            max_message,
                        );
                        (replica, records.iter().map(unchecked).collect::<Vec<_>>())
                    },
                    |(mut replica, records)| {
                        let refs: Vec<&Record> = records.iter().collect();
                        Record::verify_each(&refs, threads);
                        for r in records {
                            replica.receive(r, TIME).expect("fresh");
                        }
                        replica
                    },
                    BatchSize::LargeInput,
                )
            },
        );
    }
}

fn store(c: &mut Criterion) {
    let f = fixture();
    let mut store = MemoryStore::new();
    // 10,000 other keys, so the map is of a realistic size.
    for i in 0..10_000 {
        let r = Record::sign(&format!("{}{i}", f.key), Op::Mut, &f.value, TIME, &f.signer);
        store.put(r).expect("room");
    }
    store.put(f.record.clone()).expect("room");
    c.bench_function("store/memory_put_overwrite", |b| {
        b.iter_batched(
            || f.record.clone(),
            |r| store.put(r).expect("room"),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("store/memory_get", |b| {
        b.iter(|| store.get(black_box(&f.key)).expect("held").time())
    });
}

criterion_group!(benches, wire, crypto, accept, burst, store);
criterion_main!(benches);
