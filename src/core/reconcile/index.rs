//! The sorted summary of a store that range reconciliation reads: every key
//! held, in byte order, with a hash of the record held for it and its time
//! (which republish reads to tell settled records from young ones, without
//! reading the store).
//!
//! A range's fingerprint is the wrapping sum of its items' hashes and their
//! count. Summing a range of a million items one by one would let any peer
//! that asks for it cost us milliseconds per range, so the index keeps its
//! items in a sorted array with running sums: a range's fingerprint is two
//! binary searches and a subtraction. Changes go first into a small ordered
//! map and are merged into the array once they are many, so a burst of
//! records (a catch-up) does not rebuild the array per record; a
//! fingerprint adds the pending changes in its range on top.

use std::collections::BTreeMap;
use std::ops::Bound;

use sha2::{Digest, Sha256};

use super::{Fingerprint, KeyRange};
use crate::core::order::Version;
use crate::core::record::Op;

/// Pending changes are merged into the array once there are more than
/// this many, or more than a sixteenth of the array.
const MERGE_AT: usize = 1024;

/// The hash of one item: the first 16 bytes of SHA-256 over the key's
/// length, the key and the record's version. Two nodes that hold the same
/// record of a key compute the same hash; any other difference changes it.
pub fn item_hash(key: &str, version: &Version) -> u128 {
    let mut hasher = Sha256::new();
    hasher.update((key.len() as u64).to_be_bytes());
    hasher.update(key.as_bytes());
    hasher.update(version.time.to_be_bytes());
    hasher.update([match version.op {
        Op::Mut => 0,
        Op::Del => 1,
    }]);
    hasher.update(version.signature);
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    u128::from_be_bytes(first)
}

/// One held record as the index sees it: its item hash and its time.
type Entry = (u128, i64);

/// Every key held with its item hash; see the module docs.
#[derive(Debug, Clone)]
pub struct Index {
    /// Sorted by key.
    keys: Vec<Box<str>>,
    hashes: Vec<u128>,
    /// The time of each key's record.
    times: Vec<i64>,
    /// `sums[i]` is the wrapping sum of `hashes[..i]`.
    sums: Vec<u128>,
    /// Changes not merged yet: the new entry, or `None` for a removed key.
    pending: BTreeMap<Box<str>, Option<Entry>>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            keys: Vec::new(),
            hashes: Vec::new(),
            times: Vec::new(),
            sums: vec![0],
            pending: BTreeMap::new(),
        }
    }
}

impl Index {
    /// An index of `items` (each key with the version of its record), in
    /// any order.
    pub fn from_items(items: impl IntoIterator<Item = (String, Version)>) -> Self {
        let mut items: Vec<(Box<str>, Entry)> = items
            .into_iter()
            .map(|(k, v)| {
                let entry = (item_hash(&k, &v), v.time);
                (k.into_boxed_str(), entry)
            })
            .collect();
        items.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        items.dedup_by(|b, a| a.0 == b.0);
        let mut index = Index::default();
        index.rebuild(items.into_iter());
        index
    }

    /// `key` now holds the record of `version`.
    pub fn insert(&mut self, key: &str, version: &Version) {
        let entry = (item_hash(key, version), version.time);
        self.pending.insert(key.into(), Some(entry));
        self.maybe_merge();
    }

    /// Every key held with its item hash and time, in key order, after
    /// merging what is pending.
    pub fn entries(&mut self) -> impl Iterator<Item = (&str, u128, i64)> + '_ {
        self.merge();
        self.keys
            .iter()
            .zip(self.hashes.iter().zip(&self.times))
            .map(|(k, (h, t))| (&**k, *h, *t))
    }

    /// `key` holds nothing any more.
    pub fn remove(&mut self, key: &str) {
        self.pending.insert(key.into(), None);
        self.maybe_merge();
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &str) -> bool {
        match self.pending.get(key) {
            Some(entry) => entry.is_some(),
            None => self.find(key).is_ok(),
        }
    }

    /// How many keys are held.
    pub fn len(&self) -> usize {
        self.fingerprint(&KeyRange::all()).count as usize
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The fingerprint of the items in `range`.
    pub fn fingerprint(&self, range: &KeyRange) -> Fingerprint {
        let (lo, hi) = self.span(range);
        let mut sum = self.sums[hi].wrapping_sub(self.sums[lo]);
        let mut count = (hi - lo) as u64;
        for (key, hash) in self.pending.range::<str, _>(bounds(range)) {
            if let Ok(at) = self.find(key) {
                sum = sum.wrapping_sub(self.hashes[at]);
                count -= 1;
            }
            if let Some((hash, _)) = hash {
                sum = sum.wrapping_add(*hash);
                count += 1;
            }
        }
        Fingerprint { sum, count }
    }

    /// The keys in `range`, in order, at most `limit` of them.
    pub fn keys(&self, range: &KeyRange, limit: usize) -> Vec<String> {
        let (lo, hi) = self.span(range);
        let mut base = self.keys[lo..hi].iter().map(|k| &**k).peekable();
        let mut pending = self.pending.range::<str, _>(bounds(range)).peekable();
        let mut out = Vec::new();
        while out.len() < limit {
            let next = match (base.peek(), pending.peek()) {
                (None, None) => break,
                (Some(_), None) => base.next(),
                (Some(b), Some((p, _))) if *b < &***p => base.next(),
                (_, Some((p, _))) => {
                    if base.peek() == Some(&&***p) {
                        base.next();
                    }
                    let (key, hash) = pending.next().expect("peeked");
                    hash.map(|_| &**key)
                }
            };
            if let Some(key) = next {
                out.push(key.to_owned());
            }
        }
        out
    }

    /// `range` cut into at most `parts` consecutive ranges of about equal
    /// counts, each with its fingerprint. Merges pending changes first.
    pub fn split(&mut self, range: &KeyRange, parts: usize) -> Vec<(KeyRange, Fingerprint)> {
        self.merge();
        let (lo, hi) = self.span(range);
        let n = hi - lo;
        let parts = parts.clamp(1, n.max(1));
        let mut out = Vec::with_capacity(parts);
        let mut lower = range.lower.clone();
        for i in 1..=parts {
            let end = lo + n * i / parts;
            let upper = if i == parts {
                range.upper.clone()
            } else {
                Some(self.keys[end].to_string())
            };
            let start = lo + n * (i - 1) / parts;
            let fingerprint = Fingerprint {
                sum: self.sums[end].wrapping_sub(self.sums[start]),
                count: (end - start) as u64,
            };
            let part = KeyRange {
                lower: std::mem::take(&mut lower),
                upper,
            };
            lower = part.upper.clone().unwrap_or_default();
            out.push((part, fingerprint));
        }
        out
    }

    /// The array positions `[lo, hi)` of the merged keys in `range`.
    fn span(&self, range: &KeyRange) -> (usize, usize) {
        let lo = self.keys.partition_point(|k| **k < *range.lower);
        let hi = match &range.upper {
            Some(upper) => self.keys.partition_point(|k| **k < **upper),
            None => self.keys.len(),
        };
        (lo, hi.max(lo))
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        self.keys.binary_search_by(|k| (**k).cmp(key))
    }

    fn maybe_merge(&mut self) {
        if self.pending.len() > MERGE_AT.max(self.keys.len() / 16) {
            self.merge();
        }
    }

    /// Folds the pending changes into the arrays in place: overwrites are
    /// written where they stand, removals close their gaps, and new keys
    /// are merged in from the back. No array is allocated afresh: at a
    /// million keys a fresh copy per merge had the kernel zero tens of
    /// megabytes each time.
    fn merge(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        let mut first_changed = self.keys.len();
        let mut removed = Vec::new();
        let mut added = Vec::new();
        for (key, entry) in pending {
            match (self.find(&key), entry) {
                (Ok(at), Some((hash, time))) => {
                    self.hashes[at] = hash;
                    self.times[at] = time;
                    first_changed = first_changed.min(at);
                }
                (Ok(at), None) => {
                    removed.push(at);
                    first_changed = first_changed.min(at);
                }
                (Err(at), Some(entry)) => {
                    added.push((key, entry));
                    first_changed = first_changed.min(at);
                }
                (Err(_), None) => {}
            }
        }
        self.close_gaps(&removed);
        self.merge_in(added);
        self.sum_from(first_changed);
    }

    /// Drops the items at `removed` (ascending positions).
    fn close_gaps(&mut self, removed: &[usize]) {
        if removed.is_empty() {
            return;
        }
        let mut gone = removed.iter().peekable();
        let mut kept = 0;
        for at in 0..self.keys.len() {
            if gone.next_if_eq(&&at).is_some() {
                continue;
            }
            self.move_item(at, kept);
            kept += 1;
        }
        self.keys.truncate(kept);
        self.hashes.truncate(kept);
        self.times.truncate(kept);
        self.sums.truncate(kept + 1);
    }

    /// Merges `added` (in key order, none held yet) into the arrays, from
    /// the back, so each held item moves at most once.
    fn merge_in(&mut self, added: Vec<(Box<str>, Entry)>) {
        if added.is_empty() {
            return;
        }
        let held = self.keys.len();
        let total = held + added.len();
        // Grown by an eighth at least, so a growing index reallocates (and
        // copies) every few merges rather than at each, for at most an
        // eighth of spare room.
        let grow = added.len().max(held / 8);
        reserve(&mut self.keys, added.len(), grow);
        reserve(&mut self.hashes, added.len(), grow);
        reserve(&mut self.times, added.len(), grow);
        self.keys.resize_with(total, Box::default);
        self.hashes.resize(total, 0);
        self.times.resize(total, 0);
        let mut base = held;
        let mut to = total;
        for (key, (hash, time)) in added.into_iter().rev() {
            while base > 0 && self.keys[base - 1] > key {
                base -= 1;
                to -= 1;
                self.move_item(base, to);
            }
            to -= 1;
            self.keys[to] = key;
            self.hashes[to] = hash;
            self.times[to] = time;
        }
    }

    /// Moves the item at `from` to `to`; what `from` holds after is a
    /// leftover, to be overwritten or truncated.
    fn move_item(&mut self, from: usize, to: usize) {
        self.keys.swap(to, from);
        self.hashes[to] = self.hashes[from];
        self.times[to] = self.times[from];
    }

    /// Recomputes the running sums from position `from` on.
    fn sum_from(&mut self, from: usize) {
        let len = self.keys.len();
        self.sums.truncate(from + 1);
        let needed = len + 1 - self.sums.len();
        reserve(&mut self.sums, needed, needed.max(len / 8));
        let mut sum = self.sums[from];
        for hash in &self.hashes[from..] {
            sum = sum.wrapping_add(*hash);
            self.sums.push(sum);
        }
    }

    fn rebuild(&mut self, items: impl ExactSizeIterator<Item = (Box<str>, Entry)>) {
        let n = items.len();
        self.keys = Vec::with_capacity(n);
        self.hashes = Vec::with_capacity(n);
        self.times = Vec::with_capacity(n);
        self.sums = Vec::with_capacity(n + 1);
        let mut sum = 0u128;
        self.sums.push(sum);
        for (key, (hash, time)) in items {
            sum = sum.wrapping_add(hash);
            self.keys.push(key);
            self.hashes.push(hash);
            self.times.push(time);
            self.sums.push(sum);
        }
    }
}

/// Makes room in `items` for `needed` more, growing it by `grow` when it
/// has to grow.
fn reserve<T>(items: &mut Vec<T>, needed: usize, grow: usize) {
    if items.capacity() - items.len() < needed {
        items.reserve_exact(grow.max(needed));
    }
}

/// The map bounds of `range`; an empty range (one a peer may send with its
/// end before its start) reads as `[lower, lower)`, as `BTreeMap::range`
/// panics on reversed bounds.
fn bounds(range: &KeyRange) -> (Bound<&str>, Bound<&str>) {
    let upper = match &range.upper {
        Some(upper) if *upper <= range.lower => Bound::Excluded(range.lower.as_str()),
        Some(upper) => Bound::Excluded(upper.as_str()),
        None => Bound::Unbounded,
    };
    (Bound::Included(range.lower.as_str()), upper)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn version(time: i64) -> Version {
        Version {
            time,
            op: Op::Mut,
            signature: [time as u8; 16],
        }
    }

    fn range(lower: &str, upper: Option<&str>) -> KeyRange {
        KeyRange {
            lower: lower.to_owned(),
            upper: upper.map(str::to_owned),
        }
    }

    /// The fingerprint and keys of `range` computed the slow way.
    fn naive(model: &BTreeMap<String, u128>, r: &KeyRange) -> (Fingerprint, Vec<String>) {
        let keys: Vec<String> = model.keys().filter(|k| r.contains(k)).cloned().collect();
        let sum = keys.iter().fold(0u128, |s, k| s.wrapping_add(model[k]));
        let count = keys.len() as u64;
        (Fingerprint { sum, count }, keys)
    }

    proptest! {
        /// Whatever the mix of inserts, overwrites, removals and merges,
        /// every range reads as the plain sorted map of what is held.
        #[test]
        fn ranges_read_as_the_held_items(
            ops in prop::collection::vec((0u8..40, 0i64..5, 0u8..10), 0..3000),
            cuts in prop::collection::vec((0u8..45, 0u8..45), 1..8),
        ) {
            let mut index = Index::default();
            let mut model = BTreeMap::new();
            for (k, t, action) in ops {
                let key = format!("k{k:02}");
                if action == 0 {
                    // Merge what is pending into what was merged before.
                    index.merge();
                }
                if action < 4 {
                    index.remove(&key);
                    model.remove(&key);
                } else {
                    index.insert(&key, &version(t));
                    model.insert(key.clone(), item_hash(&key, &version(t)));
                }
            }
            for (a, b) in cuts {
                let lower = format!("k{a:02}");
                let upper = (b < 42).then(|| format!("k{b:02}"));
                let r = range(&lower, upper.as_deref());
                let (fingerprint, keys) = naive(&model, &r);
                prop_assert_eq!(index.fingerprint(&r), fingerprint);
                prop_assert_eq!(index.keys(&r, usize::MAX), keys);
                for k in 0u8..45 {
                    let key = format!("k{k:02}");
                    prop_assert_eq!(index.contains(&key), model.contains_key(&key));
                }
                let parts = index.clone().split(&r, 4);
                let total = parts.iter().fold(Fingerprint::default(), |f, (_, p)| f.add(p));
                prop_assert_eq!(total, fingerprint);
                for (part, f) in &parts {
                    prop_assert_eq!(*f, naive(&model, part).0);
                }
            }
        }
    }

    #[test]
    fn a_split_covers_the_range_in_order_with_about_equal_parts() {
        let items = (0..100).map(|i| (format!("k{i:03}"), version(i)));
        let mut index = Index::from_items(items);
        let parts = index.split(&KeyRange::all(), 16);
        assert_eq!(parts.len(), 16);
        assert_eq!(parts[0].0.lower, "");
        assert_eq!(parts[15].0.upper, None);
        for pair in parts.windows(2) {
            assert_eq!(pair[0].0.upper.as_deref(), Some(pair[1].0.lower.as_str()));
        }
        assert!(parts.iter().all(|(_, f)| (6..=7).contains(&f.count)));
    }

    #[test]
    fn the_same_records_give_the_same_fingerprint_in_any_insertion_order() {
        let mut a = Index::default();
        let mut b = Index::default();
        for i in 0..3000 {
            a.insert(&format!("k{i}"), &version(i));
        }
        for i in (0..3000).rev() {
            b.insert(&format!("k{i}"), &version(i));
        }
        assert_eq!(
            a.fingerprint(&KeyRange::all()),
            b.fingerprint(&KeyRange::all())
        );
        b.insert("k7", &version(8));
        assert_ne!(
            a.fingerprint(&KeyRange::all()),
            b.fingerprint(&KeyRange::all())
        );
    }
}
