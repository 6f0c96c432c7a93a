//! Work handed to gossipsub at the pace its queues take.
//!
//! gossipsub (0.50) queues what it sends each peer in bounded queues and
//! drops what does not fit ("Send Queue full"):
//!
//! - joining a topic queues a GRAFT for each mesh peer it picks, and
//!   leaving one a PRUNE, on a control queue of 20,000 per peer; past it
//!   the meshes of those topics stay half built until heartbeats repair
//!   them, and a user following 50,000 keys at once would overflow it.
//!   Joins and leaves wait in a [`Pacer`], in order (a leave never
//!   overtakes the join it undoes), and go out at
//!   `topic_changes_per_second`. Subscriptions themselves are never
//!   dropped: gossipsub queues them without bound;
//! - a republish queues a message per mesh peer on a queue of 5,000
//!   (`connection_handler_queue_len`); a node republishing a million
//!   records at one firing would overflow it and spend a core doing so.
//!   Republishes wait in a [`Pacer`] and go out at `republish_per_second`
//!   (writes are never held back).
//!
//! Each pacer hands out a quarter second's worth at once, then waits for
//! its bucket to refill.

use std::collections::VecDeque;
use std::task::Context;
use std::time::Duration;

use futures::FutureExt;
use futures_timer::Delay;

use crate::coordinator::token_bucket::TokenBucket;
use crate::core::topic::Topic;

/// A join or a leave of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicChange {
    Join(Topic),
    Leave(Topic),
}

/// Items waiting for gossipsub, handed out at a pace; see the
/// [module docs](self).
pub(crate) struct Pacer<T> {
    waiting: VecDeque<T>,
    /// Most items waiting; past it the oldest is dropped.
    capacity: usize,
    bucket: TokenBucket,
    /// Wakes the behaviour when the bucket has refilled.
    refill: Option<Delay>,
}

/// How long the pacer sleeps before it looks at its bucket again.
const REFILL_MS: u64 = 50;

impl<T> Pacer<T> {
    /// A pacer that hands out `per_second` items a second, a quarter of
    /// that at once, and holds at most `capacity` waiting.
    pub fn new(per_second: u32, capacity: usize) -> Self {
        let burst = (per_second / 4).max(1);
        Pacer {
            waiting: VecDeque::new(),
            capacity,
            bucket: TokenBucket::new(burst, 250),
            refill: None,
        }
    }

    /// Queues `item` behind those waiting; returns the oldest, dropped,
    /// if the pacer was full.
    pub fn push(&mut self, item: T) -> Option<T> {
        self.waiting.push_back(item);
        (self.waiting.len() > self.capacity)
            .then(|| self.waiting.pop_front())
            .flatten()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Items waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The items that may go to gossipsub at `now_ms`, in order. When
    /// some must wait, arms a wake-up for when the bucket has refilled.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>, now_ms: i64) -> Vec<T> {
        if let Some(refill) = self.refill.as_mut() {
            if refill.poll_unpin(cx).is_pending() {
                return Vec::new();
            }
            self.refill = None;
        }
        let mut ready = Vec::new();
        while !self.waiting.is_empty() && self.bucket.take(now_ms) {
            ready.extend(self.waiting.pop_front());
        }
        if !self.waiting.is_empty() {
            let mut refill = Delay::new(Duration::from_millis(REFILL_MS));
            // Registers the waker: the behaviour is polled again then.
            let _ = refill.poll_unpin(cx);
            self.refill = Some(refill);
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use std::task::Waker;

    use super::*;

    fn join(i: usize) -> TopicChange {
        TopicChange::Join(Topic::Key(format!("k{i}")))
    }

    #[test]
    fn changes_go_out_in_order_at_the_pace() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut pacer = Pacer::new(400, 1000);
        for i in 0..250 {
            pacer.push(join(i));
        }
        pacer.push(TopicChange::Leave(Topic::Key("k0".into())));
        let first = pacer.poll_ready(&mut cx, 0);
        assert_eq!(first.len(), 100, "a quarter second's worth at once");
        assert_eq!(first[0], join(0));
        assert!(
            pacer.poll_ready(&mut cx, 0).is_empty(),
            "waits for the refill"
        );
        pacer.refill = None;
        assert_eq!(pacer.poll_ready(&mut cx, 100).len(), 40, "400 a second");
        pacer.refill = None;
        assert_eq!(
            pacer.poll_ready(&mut cx, 10_000).len(),
            100,
            "no more than the burst"
        );
        pacer.refill = None;
        let rest = pacer.poll_ready(&mut cx, 20_000);
        assert_eq!(rest.len(), 11);
        let leave = TopicChange::Leave(Topic::Key("k0".into()));
        assert_eq!(
            rest.last(),
            Some(&leave),
            "the leave stays behind the joins"
        );
        assert_eq!(pacer.len(), 0);
    }

    #[test]
    fn a_full_pacer_drops_its_oldest() {
        let mut pacer = Pacer::new(1, 2);
        assert_eq!(pacer.push(1), None);
        assert_eq!(pacer.push(2), None);
        assert_eq!(pacer.push(3), Some(1));
        assert_eq!(pacer.len(), 2);
    }
}
