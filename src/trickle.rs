//! When to republish, and when to stay quiet (after RFC 6206, Trickle).
//!
//! Time is cut into intervals of length `I`. In each interval a node picks a
//! random moment `t` in `[I/2, I)`; at `t` it republishes only the keys for
//! which it has *not* heard the same record from the network during this
//! interval. Nodes that fire late hear the early ones and stay quiet, so an
//! idle network sends about one copy per key and neighbourhood per
//! interval instead of one per node. A key for which a peer sent an *older*
//! record is pushed promptly (within the push delay, not at the next
//! firing), and again at the next firing regardless: that peer is behind.
//! Only records heard by gossip suppress a republish: one learnt through a
//! fetch did not pass our mesh neighbours.

use std::collections::HashSet;
use std::time::Duration;

/// Republish bookkeeping; pure, the caller owns the timer.
#[derive(Debug)]
pub struct Trickle {
    interval: Duration,
    heard: HashSet<String>,
    behind: HashSet<String>,
    push: HashSet<String>,
    rest_of_interval: Duration,
}

impl Trickle {
    /// Bookkeeping for intervals of length `interval`.
    pub fn new(interval: Duration) -> Self {
        Trickle {
            interval,
            heard: HashSet::new(),
            behind: HashSet::new(),
            push: HashSet::new(),
            rest_of_interval: Duration::ZERO,
        }
    }

    /// The same record as ours arrived by gossip: our neighbours have it.
    pub fn heard_same(&mut self, key: &str) {
        self.heard.insert(key.to_owned());
    }

    /// A peer sent a record older than ours: it missed an update. Returns
    /// whether the key is newly due for a prompt push.
    pub fn heard_older(&mut self, key: &str) -> bool {
        self.behind.insert(key.to_owned());
        self.push.insert(key.to_owned())
    }

    /// The keys due for a prompt push, in a reproducible order; forgets them.
    pub fn take_push(&mut self) -> Vec<String> {
        let mut keys: Vec<String> = self.push.drain().collect();
        keys.sort_unstable();
        keys
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

    #[test]
    fn keys_heard_this_interval_are_suppressed() {
        let mut t = Trickle::new(Duration::from_secs(60));
        t.heard_same("a");
        assert_eq!(t.fire(["a", "b"]), ["b"]);
        // The next interval starts fresh.
        assert_eq!(t.fire(["a", "b"]), ["a", "b"]);
    }

    #[test]
    fn a_peer_behind_is_pushed_promptly_once() {
        let mut t = Trickle::new(Duration::from_secs(60));
        assert!(t.heard_older("a"));
        assert!(!t.heard_older("a"), "already due");
        assert!(t.heard_older("c"));
        t.heard_same("a");
        assert_eq!(
            t.take_push(),
            ["a", "c"],
            "behind peers are pushed even if heard"
        );
        assert!(t.take_push().is_empty());
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
