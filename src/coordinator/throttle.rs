//! The cost model at work ([`crate::coordinator::cost`]): a peer's `Ask` is answered
//! while its account is in credit and waits while it is in debt; what its
//! input would make us ask back is charged to it, and skipped in debt.

use std::collections::VecDeque;

use libp2p::PeerId;

use super::{ms, Coordinator, Output, Timer};
use crate::coordinator::cost;
use crate::store::RecordStore;
use crate::wire::exchange::{Reply, Request};

/// An `Ask` from a peer in debt, waiting for its account to refill.
#[derive(Debug)]
pub(super) struct Deferred {
    id: u64,
    request: Request,
    since_ms: i64,
}

impl<S: RecordStore> Coordinator<S> {
    /// A peer's `Ask`: answered at once if the peer is in credit and has
    /// no ask waiting before it, else queued behind its others.
    pub(super) fn on_asked(&mut self, peer: PeerId, id: u64, request: Request, now_ms: i64) {
        self.ledger
            .earn(peer, cost::request_bytes(&request), now_ms);
        let none_waiting = self.deferred.get(&peer).is_none_or(VecDeque::is_empty);
        if none_waiting && self.ledger.in_credit(peer, now_ms) {
            return self.answer_ask(peer, id, request, now_ms);
        }
        let limit = self.config.max_inbound_fetch_streams;
        let queue = self.deferred.entry(peer).or_default();
        queue.push_back(Deferred {
            id,
            request,
            since_ms: now_ms,
        });
        // The shell bounds a peer's open streams, but a stream it timed out
        // frees a slot while its ask still waits here: the oldest waiting
        // gets an empty answer (its asker asks again for its keys).
        let dropped = (queue.len() > limit).then(|| queue.pop_front()).flatten();
        if let Some(old) = dropped {
            self.reply_empty(old.id);
        }
        self.arm_throttle(now_ms);
    }

    /// Answers the waiting asks of peers back in credit, oldest first; an
    /// ask that waited past `fetch_timeout` (its asker gave up) gets an
    /// empty answer.
    pub(super) fn on_throttle_timer(&mut self, now_ms: i64) {
        let expired_before = now_ms.saturating_sub(ms(self.config.fetch_timeout));
        let peers: Vec<PeerId> = self.deferred.keys().copied().collect();
        for peer in peers {
            while let Some(front) = self.deferred.get(&peer).and_then(VecDeque::front) {
                let expired = front.since_ms <= expired_before;
                if !expired && !self.ledger.in_credit(peer, now_ms) {
                    break;
                }
                let Some(ask) = self.deferred.get_mut(&peer).and_then(VecDeque::pop_front) else {
                    break;
                };
                match expired {
                    true => self.reply_empty(ask.id),
                    false => self.answer_ask(peer, ask.id, ask.request, now_ms),
                }
            }
            if self.deferred.get(&peer).is_some_and(VecDeque::is_empty) {
                self.deferred.remove(&peer);
            }
        }
        self.arm_throttle(now_ms);
    }

    /// Arms [`Timer::Throttle`] for the first waiting ask that can be
    /// answered or has expired, or paused reconciliation that can go on.
    pub(super) fn arm_throttle(&mut self, now_ms: i64) {
        let timeout = ms(self.config.fetch_timeout);
        let mut firsts: Vec<(PeerId, i64)> = self
            .deferred
            .iter()
            .filter_map(|(peer, queue)| Some((*peer, queue.front()?.since_ms)))
            .collect();
        let paused = self.resume_reconciliations(now_ms);
        firsts.extend(paused.into_iter().map(|peer| (peer, i64::MAX)));
        let wait = firsts
            .into_iter()
            .map(|(peer, since)| {
                let expires = since.saturating_add(timeout).saturating_sub(now_ms);
                self.ledger.wait_ms(peer, now_ms).min(expires)
            })
            .min();
        if let Some(wait) = wait {
            self.set_timer_ms(Timer::Throttle, wait.max(1));
        }
    }

    /// The peer is gone: its waiting asks get empty answers (their streams
    /// are closed), and its account is kept only while in debt.
    pub(super) fn throttle_peer_gone(&mut self, peer: PeerId, now_ms: i64) {
        for ask in self.deferred.remove(&peer).into_iter().flatten() {
            self.reply_empty(ask.id);
        }
        self.ledger.peer_gone(peer, now_ms);
    }

    /// Asks `peer` back about `key` in reaction to its input, charged to
    /// it; skipped while it is in debt (the next republish or
    /// anti-entropy round makes up for it). Whether the ask was queued.
    pub(super) fn ask_back(&mut self, peer: PeerId, key: &str, now_ms: i64) -> bool {
        if !self.ledger.in_credit(peer, now_ms) {
            return false;
        }
        self.ledger.spend(peer, cost::ask_cost(key), now_ms);
        self.ask(peer, key, None)
    }

    /// Charges `peer` for `bytes` of work its input caused; whether it is
    /// still in credit.
    pub(super) fn charge(&mut self, peer: PeerId, bytes: usize, now_ms: i64) -> bool {
        self.ledger.spend(peer, bytes, now_ms);
        self.ledger.in_credit(peer, now_ms)
    }

    fn reply_empty(&mut self, id: u64) {
        let reply = Reply::default();
        self.outputs.push_back(Output::Reply { id, reply });
    }
}
