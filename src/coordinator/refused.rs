//! Records our validator refused a moment ago, remembered by signature, so
//! that a replay is dropped before its signature is checked again.
//!
//! A validly signed record our validator refuses is not blamed on its
//! sender (validators may differ between honest nodes), and gossipsub's
//! message id includes the unsigned `round`: without this memory one
//! signed record, replayed under endless ids, would cost a signature check
//! and a `RecordRejected` event each time. Keyed by the signature alone: a
//! record that carries a remembered signature is either that very record
//! or one whose signature does not match its content, and both are
//! refused.

use std::collections::{HashSet, VecDeque};

/// How long a refused record is remembered: a validator whose answer
/// changes (an allow list that grows) sees the record again after this.
pub(crate) const REMEMBERED_MS: i64 = 60_000;

/// At most `capacity` signatures, each for [`REMEMBERED_MS`].
#[derive(Debug)]
pub(crate) struct Refused {
    capacity: usize,
    held: HashSet<[u8; 64]>,
    /// In the order remembered, with when.
    order: VecDeque<([u8; 64], i64)>,
}

impl Refused {
    /// Remembers up to `capacity` signatures (0: none).
    pub fn new(capacity: usize) -> Self {
        Refused {
            capacity,
            held: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether a record with `signature` was refused within
    /// [`REMEMBERED_MS`] before `now_ms`.
    pub fn contains(&mut self, signature: &[u8; 64], now_ms: i64) -> bool {
        self.forget_older(now_ms);
        self.held.contains(signature)
    }

    /// Remembers that a record with `signature` was refused at `now_ms`;
    /// past the capacity the oldest is forgotten.
    pub fn insert(&mut self, signature: [u8; 64], now_ms: i64) {
        if self.capacity == 0 || !self.held.insert(signature) {
            return;
        }
        self.order.push_back((signature, now_ms));
        while self.order.len() > self.capacity {
            self.pop_oldest();
        }
    }

    fn forget_older(&mut self, now_ms: i64) {
        while self
            .order
            .front()
            .is_some_and(|(_, at)| now_ms.saturating_sub(*at) >= REMEMBERED_MS)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((signature, _)) = self.order.pop_front() {
            self.held.remove(&signature);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_for_a_minute_and_up_to_its_capacity() {
        let mut refused = Refused::new(2);
        refused.insert([1; 64], 0);
        refused.insert([2; 64], 10);
        assert!(refused.contains(&[1; 64], 100));
        refused.insert([3; 64], 20);
        assert!(!refused.contains(&[1; 64], 100), "the oldest went first");
        assert!(refused.contains(&[2; 64], 100));
        assert!(refused.contains(&[3; 64], REMEMBERED_MS + 19));
        assert!(!refused.contains(&[3; 64], REMEMBERED_MS + 20), "expired");
        assert!(!refused.contains(&[2; 64], REMEMBERED_MS + 20));
    }

    #[test]
    fn a_capacity_of_zero_remembers_nothing() {
        let mut refused = Refused::new(0);
        refused.insert([1; 64], 0);
        assert!(!refused.contains(&[1; 64], 1));
    }
}
