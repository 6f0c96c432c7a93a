//! Reconciling what we hold with a peer by key ranges (spec §18): when a
//! peer connects or joins one of our shards, and at the anti-entropy of
//! each republish firing. Two replicas that hold the same records learn so
//! in one round trip; where they differ, the keys that differ are asked
//! about as any catch-up is (so each record still passes every check and
//! only keys we watch are taken). A node that watches fewer than
//! `reconcile_min_keys` keys, or a peer that does not speak the
//! extension, reconciles with a version per key as before.

use std::collections::VecDeque;

use libp2p::PeerId;

use super::Coordinator;
use crate::coordinator::cost;
use crate::core::reconcile::{every_key, Index, KeyRange, Learnt, RangeAsk, RangeReply};
use crate::event::Event;
use crate::store::RecordStore;
use crate::wire;
use crate::wire::exchange::{Request, Response};
use crate::wire::failure::OutboundFailure;

/// A reconciliation with one peer: the ranges still to compare.
#[derive(Debug)]
pub(crate) struct Session {
    pending: VecDeque<KeyRange>,
    in_flight: Option<u64>,
    rounds: usize,
    /// The peer is in debt (the cost model): no round is sent until it is
    /// back in credit.
    paused: bool,
    /// Keys the peer showed us that we do not watch: a peer that holds far
    /// more than we care about is cheaper to reconcile a key at a time.
    unwanted: usize,
}

/// One reconciliation `Ask` in flight.
#[derive(Debug)]
pub(crate) struct RangeFetch {
    peer: PeerId,
    asks: Vec<RangeAsk>,
}

impl<S: RecordStore> Coordinator<S> {
    /// Whether `id` is a reconciliation ask.
    pub(super) fn reconciling(&self, id: u64) -> bool {
        self.range_fetches.contains_key(&id)
    }

    /// How many keys we watch: followed, or tombstoned.
    pub(super) fn watched(&mut self) -> usize {
        self.subscribed.len() + self.replica.tombstone_count()
    }

    /// Starts reconciling with `peer` by key ranges, unless one runs
    /// already. Returns `false` (the caller reconciles key by key) when we
    /// watch fewer than `reconcile_min_keys` keys or the peer does not
    /// speak the extension.
    pub(super) fn reconcile_with(&mut self, peer: PeerId) -> bool {
        if !self.connected.contains(&peer) || self.per_key_peers.contains(&peer) {
            return false;
        }
        if self.sessions.contains_key(&peer) {
            return true;
        }
        if self.watched() < self.config.reconcile_min_keys {
            return false;
        }
        let session = Session {
            pending: VecDeque::from([KeyRange::all()]),
            in_flight: None,
            rounds: 0,
            paused: false,
            unwanted: 0,
        };
        self.sessions.insert(peer, session);
        true
    }

    /// Key by key: our tombstoned keys, and the keys of every shard the
    /// peer is on (a key's own topic is reconciled as the peer joins it).
    pub(super) fn reconcile_per_key(&mut self, peer: PeerId) {
        let mut keys = self.replica.tombstoned_keys();
        for (index, shard) in &self.shard_keys {
            if self.shard_peers.of(&index.to_string()).contains(&peer) {
                keys.extend(shard.iter().cloned());
            }
        }
        for key in keys {
            self.ask(peer, &key, None);
        }
    }

    /// Sends the next ask of every reconciliation with none in flight, in
    /// a fetch slot of its peer left free by the key asks.
    pub(super) fn send_reconciliations(&mut self) {
        let idle: Vec<PeerId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.in_flight.is_none() && !s.paused)
            .map(|(peer, _)| *peer)
            .collect();
        for peer in idle {
            if !self.dispatch.try_reserve(peer) {
                continue;
            }
            let asks = self.next_range_asks(peer);
            if asks.is_empty() {
                self.dispatch.finished(peer);
                self.sessions.remove(&peer);
                continue;
            }
            let id = self.next_id();
            if let Some(session) = self.sessions.get_mut(&peer) {
                session.in_flight = Some(id);
                session.rounds += 1;
            }
            let request = Request {
                keys: Vec::new(),
                ranges: asks.clone(),
            };
            self.range_fetches.insert(id, RangeFetch { peer, asks });
            self.outputs
                .push_back(super::Output::Ask { peer, id, request });
        }
    }

    /// The ranges of `peer`'s session to ask about now, with our side of
    /// each, as many as `max_reconcile_ranges` and the message limit allow.
    /// None once the session is done or out of rounds.
    fn next_range_asks(&mut self, peer: PeerId) -> Vec<RangeAsk> {
        let max_rounds = self.config.max_reconcile_rounds;
        let max_ranges = self.config.max_reconcile_ranges;
        let budget = self.config.max_message_bytes;
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Vec::new();
        };
        if session.rounds >= max_rounds {
            tracing::debug!(%peer, "reconciliation out of rounds; the next firing starts again");
            return Vec::new();
        }
        let mut ranges = Vec::new();
        while ranges.len() < max_ranges {
            let Some(range) = session.pending.pop_front() else {
                break;
            };
            ranges.push(range);
        }
        let mut asks = Vec::with_capacity(ranges.len());
        let mut left = Vec::new();
        let mut spent = 0;
        for range in ranges {
            if !left.is_empty() {
                left.push(range);
                continue;
            }
            let mut ask = self.replica.range_ask(range);
            if wire::range_ask_cost(&ask) > budget {
                // Our listing alone is over the limit: let the peer split.
                ask.items = None;
            }
            let cost = wire::range_ask_cost(&ask);
            if spent + cost > budget && !asks.is_empty() {
                left.push(ask.range);
                continue;
            }
            spent += cost;
            asks.push(ask);
        }
        // What did not fit goes first next time, in its order.
        if let Some(session) = self.sessions.get_mut(&peer) {
            for range in left.into_iter().rev() {
                session.pending.push_front(range);
            }
        }
        asks
    }

    /// The answer to a reconciliation ask.
    pub(super) fn on_ranges_answered(
        &mut self,
        id: u64,
        result: Result<Response, OutboundFailure>,
        now_ms: i64,
    ) {
        let Some(RangeFetch { peer, asks }) = self.range_fetches.remove(&id) else {
            return;
        };
        self.dispatch.finished(peer);
        if !self.sessions.contains_key(&peer) {
            return;
        }
        let replies = match result {
            Ok(response) if response.ranges.is_empty() => {
                // It answered the empty key and no range: it does not
                // speak the extension.
                return self.reconcile_key_by_key(peer);
            }
            Ok(response) => response.ranges,
            Err(error) => {
                tracing::debug!(%peer, "reconciliation ask failed: {error}");
                self.sessions.remove(&peer);
                return;
            }
        };
        let answered = replies.len();
        let mut again = Vec::new();
        // What the replies make us compare is charged to the peer (a round
        // is bounded by our ask); a peer in debt is asked its next round
        // once back in credit.
        let work = replies.iter().map(cost::range_reply_cost).sum();
        let in_credit = self.charge(peer, work, now_ms);
        for (ask, reply) in asks.iter().zip(replies) {
            match self.learn_range(peer, ask, reply, now_ms) {
                Ok(more) => again.extend(more),
                Err(error) => {
                    self.sessions.remove(&peer);
                    let error = OutboundFailure::Malformed(error);
                    let keys = Vec::new();
                    return self.emit(Event::FetchFailed { peer, keys, error });
                }
            }
        }
        // A reply may have ended the session (too much we do not want).
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.in_flight = None;
        session.paused = !in_credit;
        // Depth first: the parts just learnt go ahead of what waits, so
        // what waits is at most a split's parts per level of the tree, and
        // a peer that splits without end fills the queue in a few rounds
        // instead of growing it by a split per range asked.
        let mut front: VecDeque<KeyRange> = asks
            .into_iter()
            .skip(answered)
            .map(|ask| ask.range)
            .chain(again)
            .collect();
        front.append(&mut session.pending);
        session.pending = front;
        if session.pending.len() > self.config.max_reconcile_pending {
            tracing::debug!(%peer, "reconciliation has too many ranges waiting; the next firing starts again");
            self.sessions.remove(&peer);
        } else if session.pending.is_empty() {
            self.sessions.remove(&peer);
        } else if !in_credit {
            tracing::debug!(%peer, "reconciliation paused: the peer is in debt");
            self.arm_throttle(now_ms);
        }
    }

    /// Acts on one range reply; returns the ranges still to compare.
    fn learn_range(
        &mut self,
        peer: PeerId,
        ask: &RangeAsk,
        reply: RangeReply,
        now_ms: i64,
    ) -> Result<Vec<KeyRange>, String> {
        let max_items = self.config.max_keys_per_ask;
        // A listing of what the peer holds is compared against the keys we
        // would tell it of, those it follows or watches: a peer that lists
        // nothing over the whole key space costs us its own keys, not a
        // read of every record we hold. One on our shards follows every key
        // of them, so all we hold in the range is compared, as an honest
        // follower of those shards costs too.
        let on_shards = self.shards() > 0 && self.shard_peers.count_of(&peer) > 0;
        let (followers, watchers) = (&self.followers, &self.watchers);
        let candidates = |index: &Index, range: &KeyRange| {
            if on_shards {
                return every_key(index, range);
            }
            let (lower, upper) = (range.lower.as_str(), range.upper.as_deref());
            let mut keys = followers.keys_in(&peer, lower, upper);
            keys.extend(watchers.keys_in(&peer, lower, upper));
            keys.sort_unstable();
            keys.dedup();
            keys
        };
        let Learnt {
            again,
            peer_ahead,
            we_ahead,
        } = self
            .replica
            .range_learn(ask, reply, max_items, candidates)
            .map_err(|e| e.to_string())?;
        let mut unwanted = 0;
        for key in peer_ahead {
            match self.watches(&key) {
                true => {
                    self.ask_back(peer, &key, now_ms);
                }
                false => unwanted += 1,
            }
        }
        // Asked with our version, a peer that follows the key asks us back.
        for key in we_ahead {
            if self.followers_of(&key).contains(&peer) || self.watchers.of(&key).contains(&peer) {
                self.ask_back(peer, &key, now_ms);
            }
        }
        let limit = self.watched().saturating_mul(4).max(4096);
        let Some(session) = self.sessions.get_mut(&peer) else {
            return Ok(Vec::new());
        };
        session.unwanted += unwanted;
        if session.unwanted > limit {
            tracing::debug!(%peer, "peer holds far more than we watch; reconciling key by key");
            self.reconcile_key_by_key(peer);
            return Ok(Vec::new());
        }
        Ok(again)
    }

    /// Gives up ranges with `peer` until it disconnects.
    fn reconcile_key_by_key(&mut self, peer: PeerId) {
        self.sessions.remove(&peer);
        self.per_key_peers.insert(peer);
        self.reconcile_per_key(peer);
    }

    /// Our replies to a peer's ranges, at most `max_reconcile_ranges` of
    /// them, each within its share of the message limit. Keys the peer is
    /// ahead on that we watch are asked about at once.
    pub(super) fn reply_ranges(
        &mut self,
        peer: PeerId,
        mut ranges: Vec<RangeAsk>,
        now_ms: i64,
    ) -> Vec<RangeReply> {
        ranges.truncate(self.config.max_reconcile_ranges);
        if ranges.is_empty() {
            return Vec::new();
        }
        let overhead = 64 + self.config.limits.max_key_bytes;
        let budget = self.config.max_message_bytes.saturating_sub(overhead) / ranges.len();
        let max_items = self.config.max_keys_per_ask;
        let mut replies = Vec::with_capacity(ranges.len());
        for ask in &ranges {
            let answered = self.replica.range_reply(ask, max_items, budget);
            for key in answered.asker_ahead {
                if self.watches(&key) {
                    self.ask_back(peer, &key, now_ms);
                }
            }
            replies.extend(answered.reply);
        }
        replies
    }

    /// Sessions paused for peers now back in credit go on; the peers of
    /// those still paused.
    pub(super) fn resume_reconciliations(&mut self, now_ms: i64) -> Vec<PeerId> {
        let mut still = Vec::new();
        for (peer, session) in self.sessions.iter_mut().filter(|(_, s)| s.paused) {
            session.paused = !self.ledger.in_credit(*peer, now_ms);
            if session.paused {
                still.push(*peer);
            }
        }
        still
    }

    /// The peer is gone: so is our reconciliation with it.
    pub(super) fn reconcile_peer_gone(&mut self, peer: &PeerId) {
        self.sessions.remove(peer);
        self.per_key_peers.remove(peer);
    }
}
