//! One node's copy of the key space: a store, a validator and the limits,
//! with no I/O and no clock (time is passed in). `Behaviour` drives it from
//! the network; tests and simulations drive it directly.

use std::borrow::Cow;
use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;

use crate::coordinator::graveyard::Graveyard;
use crate::coordinator::refused::Refused;
use crate::core::accept::{check_sizes, judge_with, Limits, RejectReason, Verdict};
use crate::core::author_keys::AuthorKeys;
use crate::core::order::Version;
use crate::core::reconcile::{self, Index, KeyRange, RangeAsk, RangeReply};
use crate::core::record::{Author, Op, Record};
use crate::core::validator::Validator;
use crate::store::{self, RecordStore};
use crate::wire;

/// Why a received record was not stored. Nothing changed in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Refusal {
    /// The same record is already stored.
    #[error("the same record is already stored")]
    Same,
    /// The stored record wins over this one, which is otherwise valid (its
    /// signature and author checked): its sender is behind.
    #[error("a newer record is already stored")]
    Older,
    /// The record breaks a rule; the sender is to blame.
    #[error("invalid record: {0}")]
    Invalid(RejectReason),
    /// The store refused it (full, or a backend error).
    #[error("store refused the record: {0}")]
    Store(store::Error),
    /// The same record (the same signature) was refused by our validator
    /// a moment ago, and was reported then; dropped unchecked.
    #[error("the same record was refused a moment ago")]
    Refused,
    /// A write the key's delete had replaced, come back after that
    /// delete's tombstone was collected (it is remembered: the
    /// `collected_delete_memory` knob). Not the sender's fault: it may
    /// have been offline longer than `tombstone_ttl`.
    #[error("the key's delete, collected since, replaced this record")]
    Buried,
}

/// Why a local write failed. Nothing changed in the store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// The key or value breaks a size limit, or the local identity may not
    /// write this key (see [`Validator`]).
    #[error(transparent)]
    Invalid(#[from] RejectReason),
    /// The encoded record would exceed the message size limit.
    #[error("encoded record of {len} bytes exceeds the message limit of {limit} bytes")]
    MessageTooLarge {
        /// Size of the encoded record.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The store refused the record.
    #[error("store refused the record: {0}")]
    Store(#[from] store::Error),
}

/// A store with the rules that decide what goes into it.
pub struct Replica<S> {
    store: S,
    validator: Box<dyn Validator>,
    limits: Limits,
    max_message_bytes: usize,
    author_keys: AuthorKeys,
    /// Records our validator refused lately, by signature.
    refused: Refused,
    /// Deletes whose tombstones were collected, remembered a while.
    graveyard: Graveyard,
    /// What range reconciliation reads: every key held, with its record's
    /// hash. Kept in step with every write made through the replica.
    index: Index,
    /// The keys whose record is a tombstone, so that finding them does not
    /// read every record of the store.
    tombstones: BTreeSet<String>,
    /// Written through [`Replica::store_mut`], which bypasses the replica:
    /// the index and tombstones are rebuilt before they are read again.
    stale: bool,
}

/// Authors whose decompressed keys a [`Replica`] keeps by default.
pub const DEFAULT_AUTHOR_KEY_CACHE: usize = 1024;

/// Signatures of refused records a [`Replica`] remembers by default.
pub const DEFAULT_REFUSED_CACHE: usize = 4096;

/// Collected deletes a [`Replica`] remembers by default.
pub const DEFAULT_COLLECTED_DELETE_MEMORY: usize = 65_536;

impl<S: RecordStore> Replica<S> {
    /// A replica over `store` that admits what `validator` allows.
    pub fn new(
        store: S,
        validator: Box<dyn Validator>,
        limits: Limits,
        max_message_bytes: usize,
    ) -> Self {
        let mut replica = Replica {
            store,
            validator,
            limits,
            max_message_bytes,
            author_keys: AuthorKeys::new(DEFAULT_AUTHOR_KEY_CACHE),
            refused: Refused::new(DEFAULT_REFUSED_CACHE),
            graveyard: Graveyard::new(DEFAULT_COLLECTED_DELETE_MEMORY),
            index: Index::default(),
            tombstones: BTreeSet::new(),
            stale: true,
        };
        replica.refresh();
        replica
    }

    /// Rebuilds the index and the tombstones from the store if a write
    /// bypassed the replica.
    fn refresh(&mut self) {
        if !self.stale {
            return;
        }
        let mut tombstones = BTreeSet::new();
        let items = self.store.records().map(|record| {
            if record.is_tombstone() {
                tombstones.insert(record.key().to_owned());
            }
            (record.key().to_owned(), Version::of(&record))
        });
        self.index = Index::from_items(items.collect::<Vec<_>>());
        self.tombstones = tombstones;
        self.stale = false;
    }

    /// A record of `version` was stored for `key`: the index and
    /// tombstones follow.
    fn stored(&mut self, key: &str, version: &Version) {
        // What the key holds now wins over its collected delete.
        self.graveyard.exhume(key);
        if self.stale {
            return;
        }
        self.index.insert(key, version);
        match version.op {
            Op::Del => self.tombstones.insert(key.to_owned()),
            Op::Mut => self.tombstones.remove(key),
        };
    }

    /// The keys holding a value (not a tombstone) for which `due(key,
    /// item hash, time)` holds, in key order. Reads the index, not the
    /// store, so a store on disk is not read a million times a firing.
    pub fn values_where(&mut self, mut due: impl FnMut(&str, u128, i64) -> bool) -> Vec<String> {
        self.refresh();
        let tombstones = &self.tombstones;
        self.index
            .entries()
            .filter(|(key, hash, time)| !tombstones.contains(*key) && due(key, *hash, *time))
            .map(|(key, _, _)| key.to_owned())
            .collect()
    }

    /// The keys whose record held is a tombstone, in order.
    pub fn tombstoned_keys(&mut self) -> Vec<String> {
        self.refresh();
        self.tombstones.iter().cloned().collect()
    }

    /// How many of the records held are tombstones.
    pub fn tombstone_count(&mut self) -> usize {
        self.refresh();
        self.tombstones.len()
    }

    /// How many records (tombstones included) are held.
    pub fn len(&mut self) -> usize {
        self.refresh();
        self.index.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&mut self) -> bool {
        self.len() == 0
    }

    fn version_of(store: &S, key: &str) -> Option<Version> {
        store.get(key).as_deref().map(Version::of)
    }

    /// Our side of `range`, to send in a reconciliation ask (spec §18).
    pub fn range_ask(&mut self, range: KeyRange) -> RangeAsk {
        self.refresh();
        let store = &self.store;
        reconcile::ask_for(&self.index, range, |k| Self::version_of(store, k))
    }

    /// Our reply to a peer's range (see [`reconcile::respond`]).
    pub fn range_reply(
        &mut self,
        ask: &RangeAsk,
        max_items: usize,
        budget: usize,
    ) -> reconcile::Answered {
        self.refresh();
        let store = &self.store;
        let version_of = |k: &str| Self::version_of(store, k);
        let cost = crate::wire::item_cost;
        reconcile::respond(&mut self.index, ask, version_of, max_items, budget, cost)
    }

    /// What a peer's reply to our range teaches (see [`reconcile::learn`]).
    pub fn range_learn(
        &mut self,
        ask: &RangeAsk,
        reply: RangeReply,
        max_items: usize,
        candidates: impl FnOnce(&Index, &KeyRange) -> Vec<String>,
    ) -> Result<reconcile::Learnt, reconcile::BadReply> {
        self.refresh();
        let store = &self.store;
        let version_of = |k: &str| Self::version_of(store, k);
        reconcile::learn(&self.index, ask, reply, version_of, max_items, candidates)
    }

    /// Remembers the signatures of up to `records` records our validator
    /// refused, for a minute each, so a replay is dropped unchecked
    /// (default [`DEFAULT_REFUSED_CACHE`]; `0` remembers none).
    pub fn with_refused_cache(mut self, records: usize) -> Self {
        self.refused = Refused::new(records);
        self
    }

    /// Remembers up to `deletes` deletes after their tombstones are
    /// collected, refusing the writes they had replaced should those come
    /// back (default [`DEFAULT_COLLECTED_DELETE_MEMORY`]; `0` remembers
    /// none).
    pub fn with_collected_delete_memory(mut self, deletes: usize) -> Self {
        self.graveyard = Graveyard::new(deletes);
        self
    }

    /// Keeps the decompressed keys of at most `authors` authors, so their
    /// next records are checked without decompressing the key again
    /// (default [`DEFAULT_AUTHOR_KEY_CACHE`]; `0` keeps none).
    pub fn with_author_key_cache(mut self, authors: usize) -> Self {
        self.author_keys = AuthorKeys::new(authors);
        self
    }

    /// The record held for `key`, tombstone or value.
    pub fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        // The index holds every key the store does (unless a write went
        // around the replica): a key it lacks costs no store read. On disk,
        // those were most of a catch-up's reads (the asks' versions and
        // the checks of records not held yet).
        Self::held(&self.store, &self.index, self.stale, key)
    }

    /// [`Replica::get`] over the replica's parts, for callers that hold
    /// other fields mutably.
    fn held<'a>(store: &'a S, index: &Index, stale: bool, key: &str) -> Option<Cow<'a, Record>> {
        if !stale && !index.contains(key) {
            return None;
        }
        store.get(key)
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The underlying store, mutably. Writes through it bypass every check.
    pub fn store_mut(&mut self) -> &mut S {
        self.stale = true;
        &mut self.store
    }

    /// Gives the store back.
    pub fn into_store(self) -> S {
        self.store
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Judges a record from the network and stores it if it wins. A record
    /// our validator refused a moment ago comes back as
    /// [`Refusal::Refused`] before its signature is checked again.
    pub fn receive(&mut self, record: Record, now_ms: i64) -> Result<(), Refusal> {
        let signature = *record.signature().as_bytes();
        self.unless_refused(signature, now_ms, |r| r.judge_and_store(record, now_ms))
    }

    /// Runs `judge` unless a record with `signature` was refused by our
    /// validator a moment ago; remembers it if the validator refuses it
    /// now.
    fn unless_refused(
        &mut self,
        signature: [u8; 64],
        now_ms: i64,
        judge: impl FnOnce(&mut Self) -> Result<(), Refusal>,
    ) -> Result<(), Refusal> {
        if self.refused.contains(&signature, now_ms) {
            return Err(Refusal::Refused);
        }
        let outcome = judge(self);
        if let Err(Refusal::Invalid(RejectReason::Unauthorized)) = outcome {
            self.refused.insert(signature, now_ms);
        }
        outcome
    }

    fn judge_and_store(&mut self, record: Record, now_ms: i64) -> Result<(), Refusal> {
        let verdict = {
            let stored = Self::held(&self.store, &self.index, self.stale, record.key());
            let keys = &mut self.author_keys;
            judge_with(
                &record,
                stored.as_deref(),
                now_ms,
                &self.limits,
                self.validator.as_ref(),
                |r| keys.verify(r),
            )
        };
        match verdict {
            Verdict::Newer if self.graveyard.buries(&record) => Err(Refusal::Buried),
            // Received records are staged: durable at the next flush.
            Verdict::Newer => {
                let (key, version) = (record.key().to_owned(), Version::of(&record));
                self.store.stage(record).map_err(Refusal::Store)?;
                self.stored(&key, &version);
                Ok(())
            }
            Verdict::Same => Err(Refusal::Same),
            Verdict::Older => Err(self.vet_older(&record)),
            Verdict::Invalid(reason) => Err(Refusal::Invalid(reason)),
        }
    }

    /// A record older than ours makes the node react (it asks the sender
    /// back, spec §7), so it is checked as a newer one would be before it
    /// counts as `Older`: a forged stale record is refused and charged to
    /// its sender instead of being answered, and one our validator refuses
    /// earns no reaction. An identical record (`Same`) still costs only a
    /// comparison: it is the common echo of a republish.
    fn vet_older(&mut self, record: &Record) -> Refusal {
        if !self.author_keys.verify(record) {
            return Refusal::Invalid(RejectReason::BadSignature);
        }
        if !self.validator.may_write(record.key(), record.author()) {
            return Refusal::Invalid(RejectReason::Unauthorized);
        }
        Refusal::Older
    }

    /// Runs every check on a record that is not to be stored (one a node
    /// relays on a shard topic for a key it does not follow): `Ok` when it
    /// would be stored were nothing held for its key. Like
    /// [`Self::receive`], a record our validator refused a moment ago comes
    /// back as [`Refusal::Refused`], unchecked.
    pub fn check(&mut self, record: &Record, now_ms: i64) -> Result<(), Refusal> {
        let signature = *record.signature().as_bytes();
        self.unless_refused(signature, now_ms, |r| r.judge_alone(record, now_ms))
    }

    fn judge_alone(&mut self, record: &Record, now_ms: i64) -> Result<(), Refusal> {
        let keys = &mut self.author_keys;
        let verdict = judge_with(
            record,
            None,
            now_ms,
            &self.limits,
            self.validator.as_ref(),
            |r| keys.verify(r),
        );
        match verdict {
            Verdict::Invalid(reason) => Err(Refusal::Invalid(reason)),
            _ => Ok(()),
        }
    }

    /// Makes every received record durable (see [`RecordStore::stage`]).
    pub fn flush(&mut self) -> Result<(), store::Error> {
        self.store.flush()
    }

    /// Signs and stores a local write. Its time is `max(now, stored + 1)`,
    /// so a node's later write always wins over its earlier one even if the
    /// clock stepped back.
    pub fn write(
        &mut self,
        key: &str,
        op: Op,
        value: &str,
        now_ms: i64,
        signer: &SigningKey,
    ) -> Result<Record, WriteError> {
        check_sizes(key, value, &self.limits)?;
        if !self.validator.may_write(key, &Author::from(signer)) {
            return Err(RejectReason::Unauthorized.into());
        }
        let time = match self.store.get(key) {
            Some(stored) => now_ms.max(stored.time().saturating_add(1)),
            None => now_ms,
        };
        let record = Record::sign(key, op, value, time, signer);
        let len = wire::encode_operate(&record).len();
        if len > self.max_message_bytes {
            return Err(WriteError::MessageTooLarge {
                len,
                limit: self.max_message_bytes,
            });
        }
        self.store.put(record.clone())?;
        self.stored(record.key(), &Version::of(&record));
        Ok(record)
    }

    /// Removes tombstones older than `ttl_ms` and returns their keys;
    /// their deletes are remembered a while (see
    /// [`Self::with_collected_delete_memory`]).
    pub fn collect_tombstones(
        &mut self,
        now_ms: i64,
        ttl_ms: i64,
    ) -> Result<Vec<String>, store::Error> {
        let horizon = now_ms.saturating_sub(ttl_ms);
        let expired: Vec<(String, Version)> = self
            .tombstoned_keys()
            .into_iter()
            .filter_map(|k| {
                let record = self.store.get(&k)?;
                let expired = record.is_tombstone() && record.time() < horizon;
                expired.then(|| (k, Version::of(&record)))
            })
            .collect();
        let mut keys = Vec::with_capacity(expired.len());
        for (key, version) in expired {
            self.store.remove(&key)?;
            self.index.remove(&key);
            self.tombstones.remove(&key);
            self.graveyard.bury(key.clone(), version);
            keys.push(key);
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::validator::{Open, OwnedKeys};
    use crate::store::{MemoryStore, MemoryStoreConfig};
    use proptest::prelude::*;

    const LIMITS: Limits = Limits {
        max_key_bytes: 64,
        max_value_bytes: 64,
        max_clock_skew_ms: 300_000,
    };

    fn replica() -> Replica<MemoryStore> {
        Replica::new(MemoryStore::new(), Box::new(Open), LIMITS, 1024)
    }

    fn signer(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    /// A record the validator refused comes back as `Refused`, unchecked,
    /// on both paths (stored keys and relayed shard records), and is
    /// judged again after a minute.
    #[test]
    fn a_refused_record_is_remembered_for_a_minute() {
        let owned = || Replica::new(MemoryStore::new(), Box::new(OwnedKeys), LIMITS, 1024);
        let record = Record::sign("someone/k", Op::Mut, "v", 1_000, &signer(1));
        let mut r = owned();
        let refused = |x: Result<(), Refusal>| matches!(x, Err(Refusal::Refused));
        let unauthorized = |x: &Result<(), Refusal>| {
            matches!(x, Err(Refusal::Invalid(RejectReason::Unauthorized)))
        };
        assert!(unauthorized(&r.receive(record.clone(), 2_000)));
        assert!(refused(r.receive(record.clone(), 3_000)));
        assert!(refused(r.check(&record, 3_000)));
        assert!(unauthorized(&r.receive(record.clone(), 62_000)));
        let mut r = owned();
        assert!(unauthorized(&r.check(&record, 2_000)));
        assert!(refused(r.check(&record, 3_000)));
    }

    #[test]
    fn local_write_after_a_clock_step_back_still_wins() {
        let mut r = replica();
        let first = r
            .write("k", Op::Mut, "a", 1_000, &signer(1))
            .expect("write");
        let second = r.write("k", Op::Mut, "b", 500, &signer(1)).expect("write");
        assert_eq!(second.time(), first.time() + 1);
        assert_eq!(r.get("k").map(|x| x.value().to_owned()), Some("b".into()));
    }

    #[test]
    fn tombstone_rejects_an_older_mut_replayed_later() {
        let mut r = replica();
        let old = Record::sign("k", Op::Mut, "v", 10, &signer(1));
        r.receive(old.clone(), 100).expect("first");
        r.write("k", Op::Del, "", 20, &signer(1)).expect("delete");
        assert!(matches!(r.receive(old, 100), Err(Refusal::Older)));
        assert!(r.get("k").expect("tombstone").is_tombstone());
    }

    #[test]
    fn write_checks_limits_and_authorization_and_stores_nothing() {
        let mut r = Replica::new(MemoryStore::new(), Box::new(OwnedKeys), LIMITS, 1024);
        let err = r
            .write("not-mine", Op::Mut, "v", 1, &signer(1))
            .unwrap_err();
        assert!(matches!(
            err,
            WriteError::Invalid(RejectReason::Unauthorized)
        ));
        let mut r = replica();
        let err = r
            .write("k", Op::Mut, &"x".repeat(65), 1, &signer(1))
            .unwrap_err();
        assert!(matches!(
            err,
            WriteError::Invalid(RejectReason::ValueTooLarge { .. })
        ));
        assert!(r.get("k").is_none());
    }

    #[test]
    fn write_over_the_message_limit_is_refused() {
        let mut r = Replica::new(MemoryStore::new(), Box::new(Open), LIMITS, 100);
        let err = r
            .write("k", Op::Mut, &"x".repeat(60), 1, &signer(1))
            .unwrap_err();
        assert!(
            matches!(err, WriteError::MessageTooLarge { limit: 100, .. }),
            "{err:?}"
        );
        assert!(r.get("k").is_none());
    }

    #[test]
    fn full_store_is_a_typed_refusal() {
        let store = MemoryStore::with_config(MemoryStoreConfig {
            max_records: 1,
            max_value_bytes: 64,
        });
        let mut r = Replica::new(store, Box::new(Open), LIMITS, 1024);
        r.receive(Record::sign("a", Op::Mut, "v", 1, &signer(1)), 10)
            .expect("room");
        let refused = r.receive(Record::sign("b", Op::Mut, "v", 1, &signer(1)), 10);
        assert!(matches!(
            refused,
            Err(Refusal::Store(store::Error::MaxRecords { .. }))
        ));
    }

    #[test]
    fn old_tombstones_are_collected_and_young_ones_kept() {
        let mut r = replica();
        r.write("old", Op::Del, "", 1_000, &signer(1)).expect("del");
        r.write("young", Op::Del, "", 9_000, &signer(1))
            .expect("del");
        r.write("value", Op::Mut, "v", 1_000, &signer(1))
            .expect("mut");
        let collected = r.collect_tombstones(10_000, 5_000).expect("gc");
        assert_eq!(collected, ["old"]);
        assert!(r.get("old").is_none());
        assert!(r.get("young").is_some());
        assert!(r.get("value").is_some());
    }

    fn arb_record() -> impl Strategy<Value = Record> {
        // Few keys, authors, times and values, so collisions and ties happen.
        (0..3u8, 1..4u8, 0..4i64, any::<bool>(), 0..3u8).prop_map(|(k, a, t, del, v)| {
            let (op, value) = if del {
                (Op::Del, String::new())
            } else {
                (Op::Mut, format!("v{v}"))
            };
            Record::sign(&format!("k{k}"), op, &value, t, &signer(a))
        })
    }

    fn final_state(records: &[Record]) -> Vec<Record> {
        let mut r = replica();
        for rec in records {
            let _ = r.receive(rec.clone(), 1_000);
        }
        let mut all: Vec<Record> = r.store().records().map(Cow::into_owned).collect();
        all.sort_by(|a, b| a.key().cmp(b.key()));
        all
    }

    proptest! {
        /// Any delivery order, with duplicates, converges to the same state.
        #[test]
        fn any_delivery_order_converges(
            records in prop::collection::vec(arb_record(), 1..24),
            seed in any::<u64>(),
        ) {
            let mut shuffled = records.clone();
            shuffled.extend(records.iter().take(seed as usize % (records.len() + 1)).cloned());
            let mut state = seed;
            for i in (1..shuffled.len()).rev() {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                shuffled.swap(i, (state >> 33) as usize % (i + 1));
            }
            prop_assert_eq!(final_state(&records), final_state(&shuffled));
        }
    }
}
