//! How many `Ask`s go to one peer at once. The fetch handler refuses asks
//! beyond its per-connection cap, so the behaviour keeps the rest waiting
//! here and sends the next one as each answer comes in: a node that follows
//! ten thousand keys at once catches up at the pace the peer allows, and
//! loses none of them.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

#[derive(Debug)]
struct Lane<T> {
    in_flight: usize,
    waiting: VecDeque<T>,
}

/// Per-peer queues with a cap on items in flight.
#[derive(Debug)]
pub(crate) struct Dispatch<P, T> {
    limit: usize,
    lanes: HashMap<P, Lane<T>>,
}

impl<P: Eq + Hash + Copy, T> Dispatch<P, T> {
    /// At most `limit` items in flight per peer (at least one).
    pub fn new(limit: usize) -> Self {
        Dispatch {
            limit: limit.max(1),
            lanes: HashMap::new(),
        }
    }

    /// Queues `item` for `peer`; returns it if it may be sent now.
    pub fn push(&mut self, peer: P, item: T) -> Option<T> {
        let lane = self.lanes.entry(peer).or_insert_with(|| Lane {
            in_flight: 0,
            waiting: VecDeque::new(),
        });
        if lane.in_flight < self.limit {
            lane.in_flight += 1;
            return Some(item);
        }
        lane.waiting.push_back(item);
        None
    }

    /// One item to `peer` finished; returns the next one to send, if any.
    pub fn finished(&mut self, peer: P) -> Option<T> {
        let lane = self.lanes.get_mut(&peer)?;
        if let Some(next) = lane.waiting.pop_front() {
            return Some(next);
        }
        lane.in_flight = lane.in_flight.saturating_sub(1);
        if lane.in_flight == 0 {
            self.lanes.remove(&peer);
        }
        None
    }

    /// The peer is gone: everything still waiting for it.
    pub fn forget(&mut self, peer: P) -> Vec<T> {
        self.lanes
            .remove(&peer)
            .map(|lane| lane.waiting.into())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_up_to_the_limit_then_one_per_finish() {
        let mut d = Dispatch::new(2);
        assert_eq!(d.push('p', 1), Some(1));
        assert_eq!(d.push('p', 2), Some(2));
        assert_eq!(d.push('p', 3), None);
        assert_eq!(d.push('q', 9), Some(9), "peers are independent");
        assert_eq!(d.finished('p'), Some(3));
        assert_eq!(d.finished('p'), None);
        assert_eq!(d.finished('p'), None);
        // Both slots are free again.
        assert_eq!(d.push('p', 4), Some(4));
        assert_eq!(d.push('p', 5), Some(5));
    }

    #[test]
    fn forgetting_a_peer_returns_what_waited() {
        let mut d = Dispatch::new(1);
        assert_eq!(d.push('p', 1), Some(1));
        assert_eq!(d.push('p', 2), None);
        assert_eq!(d.push('p', 3), None);
        assert_eq!(d.forget('p'), vec![2, 3]);
        assert_eq!(d.push('p', 4), Some(4), "a fresh lane after forgetting");
    }
}
