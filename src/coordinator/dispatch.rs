//! What the behaviour still has to ask each peer, and how many `Ask`s are
//! in flight to it. Keys wait here per peer; when the peer has a free slot,
//! as many of them as fit go out together in one `Ask`. A node that follows
//! ten thousand keys at once therefore opens tens of streams per peer, not
//! ten thousand, and loses none of its catch-ups to the handler's cap on
//! streams per connection.
//!
//! How many keys go in one batch adapts to the peer: after an answer that
//! left keys out (a peer that knows only the original schema answers one key
//! per `Ask`; large records fill the message limit sooner), the next batch
//! to that peer is only as large as that answer was, and each complete
//! answer doubles it again, up to the configured maximum. Re-asking the
//! rest therefore costs a constant factor, not a full batch per answered
//! key.

use std::collections::{BTreeMap, VecDeque};

#[derive(Debug)]
struct Lane<T> {
    in_flight: usize,
    waiting: VecDeque<T>,
    /// Largest batch for this peer now (see the module docs).
    batch: usize,
}

impl<T> Lane<T> {
    fn new() -> Self {
        Lane {
            in_flight: 0,
            waiting: VecDeque::new(),
            batch: usize::MAX,
        }
    }
}

/// Per-peer queues with a cap on batches in flight.
#[derive(Debug)]
pub(crate) struct Dispatch<P, T> {
    limit: usize,
    /// Ordered, so that which peer goes first replays from a seed.
    lanes: BTreeMap<P, Lane<T>>,
}

impl<P: Ord + Copy, T> Dispatch<P, T> {
    /// At most `limit` batches in flight per peer (at least one).
    pub fn new(limit: usize) -> Self {
        Dispatch {
            limit: limit.max(1),
            lanes: BTreeMap::new(),
        }
    }

    /// Queues `item` for `peer`, behind what already waits.
    pub fn push(&mut self, peer: P, item: T) {
        self.lanes
            .entry(peer)
            .or_insert_with(Lane::new)
            .waiting
            .push_back(item);
    }

    /// Queues `item` for `peer` ahead of what already waits.
    pub fn push_front(&mut self, peer: P, item: T) {
        self.lanes
            .entry(peer)
            .or_insert_with(Lane::new)
            .waiting
            .push_front(item);
    }

    /// Puts `items` back at the front of `peer`'s queue, in their order:
    /// the part of a batch the peer did not answer goes out next.
    pub fn requeue(&mut self, peer: P, items: Vec<T>) {
        if items.is_empty() {
            return;
        }
        let lane = self.lanes.entry(peer).or_insert_with(Lane::new);
        for item in items.into_iter().rev() {
            lane.waiting.push_front(item);
        }
    }

    /// The next batch to send: a peer with waiting items and a free slot,
    /// and its oldest items, as many as `max_items` and a total `cost` of
    /// `budget` allow (always at least one). The batch counts as in flight
    /// until [`finished`](Self::finished).
    pub fn next_batch(
        &mut self,
        max_items: usize,
        budget: usize,
        cost: impl Fn(&T) -> usize,
    ) -> Option<(P, Vec<T>)> {
        let limit = self.limit;
        let (&peer, lane) = self
            .lanes
            .iter_mut()
            .find(|(_, lane)| lane.in_flight < limit && !lane.waiting.is_empty())?;
        let max_items = max_items.min(lane.batch);
        let mut batch = Vec::new();
        let mut spent = 0;
        while let Some(item) = lane.waiting.front() {
            let c = cost(item);
            if !batch.is_empty() && (batch.len() >= max_items || spent + c > budget) {
                break;
            }
            spent += c;
            batch.extend(lane.waiting.pop_front());
        }
        lane.in_flight += 1;
        Some((peer, batch))
    }

    /// Takes a slot of `peer` for an ask that carries no item (a
    /// reconciliation), if one is free; [`finished`](Self::finished) frees
    /// it.
    pub fn try_reserve(&mut self, peer: P) -> bool {
        let lane = self.lanes.entry(peer).or_insert_with(Lane::new);
        if lane.in_flight >= self.limit {
            return false;
        }
        lane.in_flight += 1;
        true
    }

    /// A batch of `sent` items to `peer` was answered for `answered` of
    /// them: the next batches to that peer are sized by it.
    pub fn answered(&mut self, peer: P, sent: usize, answered: usize) {
        let Some(lane) = self.lanes.get_mut(&peer) else {
            return;
        };
        lane.batch = if answered < sent {
            answered.max(1)
        } else {
            // A small batch answered whole (only one key was waiting) must
            // not cap the batches of a burst that follows.
            lane.batch.max(sent.saturating_mul(2))
        };
    }

    /// A batch to `peer` finished (answered or failed): its slot is free.
    pub fn finished(&mut self, peer: P) {
        let Some(lane) = self.lanes.get_mut(&peer) else {
            return;
        };
        lane.in_flight = lane.in_flight.saturating_sub(1);
        if lane.in_flight == 0 && lane.waiting.is_empty() {
            self.lanes.remove(&peer);
        }
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

    fn unit(_: &u32) -> usize {
        1
    }

    #[test]
    fn batches_up_to_the_item_limit_then_waits_for_a_free_slot() {
        let mut d = Dispatch::new(2);
        for i in 1..=7 {
            d.push('p', i);
        }
        assert_eq!(d.next_batch(3, 100, unit), Some(('p', vec![1, 2, 3])));
        assert_eq!(d.next_batch(3, 100, unit), Some(('p', vec![4, 5, 6])));
        assert_eq!(d.next_batch(3, 100, unit), None, "both slots taken");
        d.finished('p');
        assert_eq!(d.next_batch(3, 100, unit), Some(('p', vec![7])));
        assert_eq!(d.next_batch(3, 100, unit), None, "nothing waits");
    }

    #[test]
    fn batches_stop_at_the_budget_but_always_carry_one_item() {
        let mut d = Dispatch::new(4);
        for i in [5, 5, 20, 1] {
            d.push('p', i);
        }
        let cost = |i: &u32| *i as usize;
        assert_eq!(d.next_batch(10, 12, cost), Some(('p', vec![5, 5])));
        assert_eq!(
            d.next_batch(10, 12, cost),
            Some(('p', vec![20])),
            "over budget alone"
        );
        assert_eq!(d.next_batch(10, 12, cost), Some(('p', vec![1])));
    }

    #[test]
    fn peers_are_independent() {
        let mut d = Dispatch::new(1);
        d.push('p', 1);
        d.push('q', 2);
        let mut sent = vec![
            d.next_batch(8, 100, unit).expect("one peer"),
            d.next_batch(8, 100, unit).expect("the other"),
        ];
        sent.sort();
        assert_eq!(sent, vec![('p', vec![1]), ('q', vec![2])]);
    }

    #[test]
    fn requeued_items_go_out_first_in_their_order() {
        let mut d = Dispatch::new(1);
        for i in 1..=4 {
            d.push('p', i);
        }
        assert_eq!(d.next_batch(3, 100, unit), Some(('p', vec![1, 2, 3])));
        d.finished('p');
        d.requeue('p', vec![2, 3]);
        assert_eq!(d.next_batch(8, 100, unit), Some(('p', vec![2, 3, 4])));
    }

    #[test]
    fn an_item_pushed_to_the_front_goes_out_with_the_next_batch() {
        let mut d = Dispatch::new(1);
        for i in 1..=4 {
            d.push('p', i);
        }
        d.push_front('p', 9);
        assert_eq!(d.next_batch(2, 100, unit), Some(('p', vec![9, 1])));
    }

    #[test]
    fn batches_shrink_to_what_the_peer_answers_and_grow_back() {
        let mut d = Dispatch::new(1);
        for i in 1..=40 {
            d.push('p', i);
        }
        let (_, first) = d.next_batch(16, 100, unit).expect("a batch");
        assert_eq!(first.len(), 16);
        d.answered('p', 16, 1);
        d.finished('p');
        d.requeue('p', first[1..].to_vec());
        let sizes: Vec<usize> = (0..4)
            .map(|_| {
                let (_, batch) = d.next_batch(16, 100, unit).expect("a batch");
                d.answered('p', batch.len(), batch.len());
                d.finished('p');
                batch.len()
            })
            .collect();
        assert_eq!(sizes, vec![1, 2, 4, 8], "doubling after complete answers");
        let (_, batch) = d.next_batch(16, 100, unit).expect("a batch");
        assert_eq!(batch.len(), 16, "never past the maximum");
    }

    #[test]
    fn a_small_batch_answered_whole_does_not_cap_later_ones() {
        let mut d = Dispatch::new(2);
        d.push('p', 1);
        assert_eq!(d.next_batch(16, 100, unit), Some(('p', vec![1])));
        for i in 2..=40 {
            d.push('p', i);
        }
        d.answered('p', 1, 1);
        d.finished('p');
        let (_, batch) = d.next_batch(16, 100, unit).expect("a batch");
        assert_eq!(batch.len(), 16);
    }

    #[test]
    fn forgetting_a_peer_returns_what_waited() {
        let mut d = Dispatch::new(1);
        for i in 1..=3 {
            d.push('p', i);
        }
        assert_eq!(d.next_batch(1, 100, unit), Some(('p', vec![1])));
        assert_eq!(d.forget('p'), vec![2, 3]);
        d.finished('p');
        d.push('p', 4);
        assert_eq!(
            d.next_batch(1, 100, unit),
            Some(('p', vec![4])),
            "a fresh lane"
        );
    }
}
