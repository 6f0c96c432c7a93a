//! Deletes remembered after their tombstones are collected.
//!
//! A tombstone is removed `tombstone_ttl` after its time, and with it the
//! proof that the key's older writes are dead: anyone who kept such a
//! write (a peer offline for longer, or an attacker who recorded it) could
//! plant it again on a node that follows or gets the key. The graveyard
//! keeps the collected tombstone's version, about 60 bytes and the key,
//! for up to `capacity` keys (the oldest burial forgotten first), so such a
//! replay is refused for as long as the node remembers it. It is memory
//! only: a restarted node forgets, which is the horizon spec §15 states.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};

use crate::core::order::Version;
use crate::core::record::Record;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct Graveyard {
    capacity: usize,
    buried: HashMap<String, Version>,
    /// Keys in the order they were buried, to forget the oldest first.
    order: VecDeque<String>,
}

impl Graveyard {
    /// A graveyard that remembers up to `capacity` collected deletes.
    pub fn new(capacity: usize) -> Self {
        Graveyard {
            capacity,
            ..Graveyard::default()
        }
    }

    /// The tombstone of `key`, `version`, was collected.
    pub fn bury(&mut self, key: String, version: Version) {
        if self.capacity == 0 {
            return;
        }
        if self.buried.insert(key.clone(), version).is_none() {
            self.order.push_back(key);
        }
        while self.buried.len() > self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.buried.remove(&oldest);
        }
    }

    /// Whether `record` is a write the collected delete of its key wins
    /// over: one that delete had already replaced, come back.
    pub fn buries(&self, record: &Record) -> bool {
        self.buried
            .get(record.key())
            .is_some_and(|delete| delete.compare(record) != Ordering::Greater)
    }

    /// `key` holds a record again (a write newer than its delete): its
    /// burial is moot. The order entry goes when it reaches the front.
    pub fn exhume(&mut self, key: &str) {
        if self.buried.remove(key).is_some() {
            self.order.retain(|k| k != key);
        }
    }

    /// Deletes remembered.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.buried.len()
    }
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::core::record::Op;

    fn record(key: &str, op: Op, time: i64) -> Record {
        let value = if op == Op::Mut { "v" } else { "" };
        Record::sign(key, op, value, time, &SigningKey::from_bytes(&[1; 32]))
    }

    #[test]
    fn writes_older_than_a_collected_delete_stay_dead_and_newer_ones_live() {
        let mut graveyard = Graveyard::new(10);
        graveyard.bury("k".into(), Version::of(&record("k", Op::Del, 100)));
        assert!(graveyard.buries(&record("k", Op::Mut, 99)));
        assert!(
            graveyard.buries(&record("k", Op::Del, 100)),
            "the delete itself"
        );
        assert!(!graveyard.buries(&record("k", Op::Mut, 101)));
        assert!(!graveyard.buries(&record("other", Op::Mut, 1)));
    }

    #[test]
    fn the_oldest_burial_is_forgotten_first_and_zero_keeps_none() {
        let mut graveyard = Graveyard::new(2);
        for (i, key) in ["a", "b", "c"].into_iter().enumerate() {
            let time = i64::try_from(i).expect("small") + 100;
            graveyard.bury(key.into(), Version::of(&record(key, Op::Del, time)));
        }
        assert_eq!(graveyard.len(), 2);
        assert!(!graveyard.buries(&record("a", Op::Mut, 1)), "forgotten");
        assert!(graveyard.buries(&record("c", Op::Mut, 1)));
        graveyard.exhume("c");
        assert!(!graveyard.buries(&record("c", Op::Mut, 1)));
        let mut none = Graveyard::new(0);
        none.bury("a".into(), Version::of(&record("a", Op::Del, 100)));
        assert!(!none.buries(&record("a", Op::Mut, 1)));
    }
}
