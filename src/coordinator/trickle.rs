//! When to republish, and when to stay quiet (after RFC 6206, Trickle).
//!
//! Time is cut into intervals of length `I`. In each interval a node picks a
//! random moment `t` in `[I/2, I)`; at `t` it republishes only the keys for
//! which it has *not* heard the same record from the network during this
//! interval. Nodes that fire late hear the early ones and stay quiet, so an
//! idle network sends about one copy per key and neighbourhood per
//! interval instead of one per node. A key for which a peer sent an *older*
//! record is republished at the next firing regardless (the coordinator
//! also asks that peer back at once): that peer is behind.
//! Only records heard by gossip suppress a republish: one learnt through a
//! fetch did not pass our mesh neighbours.
//!
//! A node that reconciles by key ranges also thins out the republishing of
//! *settled* records (old by their own time): each is a candidate at one
//! firing in `every`, see [`Settled`].

use std::collections::HashSet;
use std::time::Duration;

/// Which old records are republished at a firing, for a node whose range
/// reconciliation already finds what a neighbour lacks (spec §11). Pure:
/// the time and the round are passed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settled {
    /// A record whose time is more than this many milliseconds behind the
    /// clock is settled.
    pub after_ms: i64,
    /// A settled record is republished at one round in this many.
    pub every: u32,
}

impl Settled {
    /// Whether a record of `time` whose item hash (spec §18) is `hash` is a
    /// republish candidate in `round` at `now_ms`: always while it is
    /// young; once settled, only in the rounds its hash picks. Every node
    /// holding the record picks the same rounds, so their copies still
    /// collapse and suppress each other.
    pub fn due(&self, hash: u128, time: i64, now_ms: i64, round: u64) -> bool {
        if now_ms.saturating_sub(time) <= self.after_ms || self.every <= 1 {
            return true;
        }
        let every = u128::from(self.every);
        u128::from(round) % every == hash % every
    }
}

/// Republish bookkeeping; pure, the caller owns the timer.
#[derive(Debug)]
pub struct Trickle {
    interval: Duration,
    heard: HashSet<String>,
    behind: HashSet<String>,
    rest_of_interval: Duration,
}

impl Trickle {
    /// Bookkeeping for intervals of length `interval`.
    pub fn new(interval: Duration) -> Self {
        Trickle {
            interval,
            heard: HashSet::new(),
            behind: HashSet::new(),
            rest_of_interval: Duration::ZERO,
        }
    }

    /// The same record as ours arrived by gossip: our neighbours have it.
    pub fn heard_same(&mut self, key: &str) {
        self.heard.insert(key.to_owned());
    }

    /// A peer sent a record older than ours: it missed an update, and
    /// perhaps others did too, so our next firing republishes the key even
    /// if we heard it meanwhile.
    pub fn heard_older(&mut self, key: &str) {
        self.behind.insert(key.to_owned());
    }

    /// Delay until the next firing, given `unit` drawn uniformly from
    /// `[0, 1)`. Covers the rest of the current interval plus the random
    /// point in the next one.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let half = self.interval / 2;
        let offset = half + half.mul_f64(unit.clamp(0.0, 1.0));
        let delay = self.rest_of_interval + offset;
        self.rest_of_interval = self.interval.saturating_sub(offset);
        delay
    }

    /// At a firing: the keys among `candidates` to republish now. Starts a
    /// new interval, forgetting what was heard.
    pub fn fire<'a>(&mut self, candidates: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        let due = candidates
            .into_iter()
            .filter(|k| !self.heard.contains(*k) || self.behind.contains(*k))
            .map(str::to_owned)
            .collect();
        self.heard.clear();
        self.behind.clear();
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The item hash of a Mut of `key` at `time`, as the index holds it.
    fn hash_at(key: &str, time: i64) -> u128 {
        let version = crate::wire::exchange::Version {
            time,
            op: crate::core::record::Op::Mut,
            signature: [3; 16],
        };
        crate::core::reconcile::item_hash(key, &version)
    }

    #[test]
    fn young_records_are_due_every_round() {
        let rule = Settled {
            after_ms: 600_000,
            every: 32,
        };
        let hash = hash_at("k", 1_000_000);
        for round in 0..64 {
            assert!(rule.due(hash, 1_000_000, 1_000_000 + 600_000, round));
        }
    }

    #[test]
    fn settled_records_are_due_once_in_every_rounds_spread_over_keys() {
        let rule = Settled {
            after_ms: 600_000,
            every: 8,
        };
        let now = 10_000_000;
        let mut per_round = vec![0usize; 8];
        for i in 0..400 {
            let hash = hash_at(&format!("k{i}"), 0);
            let due: Vec<u64> = (0..8).filter(|&r| rule.due(hash, 0, now, r)).collect();
            assert_eq!(due.len(), 1, "one turn in every 8 rounds: {due:?}");
            assert!(
                rule.due(hash, 0, now, due[0] + 8),
                "the same turn next cycle"
            );
            per_round[due[0] as usize] += 1;
        }
        // Spread over the rounds, not all in one (400 / 8 = 50 each).
        assert!(
            per_round.iter().all(|&n| (20..=80).contains(&n)),
            "{per_round:?}"
        );
    }

    #[test]
    fn every_one_republishes_settled_records_each_round() {
        let rule = Settled {
            after_ms: 0,
            every: 1,
        };
        let hash = hash_at("k", 0);
        assert!((0..10).all(|round| rule.due(hash, 0, 1_000_000, round)));
    }

    #[test]
    fn keys_heard_this_interval_are_suppressed() {
        let mut t = Trickle::new(Duration::from_secs(60));
        t.heard_same("a");
        assert_eq!(t.fire(["a", "b"]), ["b"]);
        // The next interval starts fresh.
        assert_eq!(t.fire(["a", "b"]), ["a", "b"]);
    }

    #[test]
    fn a_peer_behind_overrides_suppression() {
        let mut t = Trickle::new(Duration::from_secs(60));
        t.heard_same("a");
        t.heard_older("a");
        assert_eq!(t.fire(["a"]), ["a"]);
    }

    #[test]
    fn firings_fall_in_the_second_half_of_each_interval() {
        let i = Duration::from_secs(60);
        let mut t = Trickle::new(i);
        let first = t.next_delay(0.0);
        assert_eq!(first, i / 2);
        // From a firing at I/2 to one at the very end of the next interval.
        let second = t.next_delay(0.999_999);
        assert!(second > i && second < i + i / 2 + i / 2, "{second:?}");
        // Over many intervals the average period is I.
        let mut t = Trickle::new(i);
        let total: Duration = (0..100)
            .map(|n| t.next_delay(f64::from(n % 10) / 10.0))
            .sum();
        let avg = total / 100;
        assert!(avg > i * 9 / 10 && avg < i * 11 / 10, "{avg:?}");
    }
}
