//! Topic joins and leaves handed to gossipsub at the pace its queues take.
//!
//! Joining a topic makes gossipsub queue a GRAFT for each mesh peer it
//! picks, and leaving one a PRUNE, on a per-peer control queue of 20,000
//! (gossipsub 0.50): past that it drops them ("Send Queue full") and the
//! meshes of those topics stay half built until heartbeats repair them. A
//! user following 50,000 keys at once would overflow it. So joins and
//! leaves wait here, in order (a leave never overtakes the join it
//! undoes), and go out at `topic_changes_per_second` with a burst of a
//! quarter of that. Subscriptions themselves are never dropped: gossipsub
//! queues them without bound.

use std::collections::VecDeque;
use std::task::Context;
use std::time::Duration;

use futures::FutureExt;
use futures_timer::Delay;

use crate::token_bucket::TokenBucket;
use crate::topic::Topic;

/// A join or a leave of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicChange {
    Join(Topic),
    Leave(Topic),
}

/// See the [module docs](self).
pub(crate) struct TopicPacer {
    waiting: VecDeque<TopicChange>,
    bucket: TokenBucket,
    /// Wakes the behaviour when the bucket has refilled.
    refill: Option<Delay>,
}

/// How long the pacer sleeps before it looks at its bucket again.
const REFILL_MS: u64 = 50;

impl TopicPacer {
    /// A pacer that hands out `per_second` changes a second, a quarter of
    /// that at once.
    pub fn new(per_second: u32) -> Self {
        let burst = (per_second / 4).max(1);
        TopicPacer {
            waiting: VecDeque::new(),
            bucket: TokenBucket::new(burst, 250),
            refill: None,
        }
    }

    /// Queues `change` behind those waiting.
    pub fn push(&mut self, change: TopicChange) {
        self.waiting.push_back(change);
    }

    /// Changes waiting.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// The changes that may go to gossipsub at `now_ms`, in order. When
    /// some must wait, arms a wake-up for when the bucket has refilled.
    pub fn poll_ready(&mut self, cx: &mut Context<'_>, now_ms: i64) -> Vec<TopicChange> {
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
        let mut pacer = TopicPacer::new(400);
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
}
