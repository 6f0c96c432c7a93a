//! Records arriving (by gossip or in an answer), and the peers around us:
//! connections and subscriptions.

use std::borrow::Cow;

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::{Coordinator, Output};
use crate::coordinator::replica::Refusal;
use crate::core::accept::RejectReason;
use crate::core::order::Version;
use crate::core::record::{Op, Record};
use crate::core::topic::Topic;
use crate::event::{Event, Source};
use crate::store::RecordStore;
use crate::wire::failure::OutboundFailure;

impl<S: RecordStore> Coordinator<S> {
    /// Anti-entropy on connection: with a node that watches many keys, a
    /// range reconciliation of everything both hold (spec §18). Otherwise
    /// the keys we deleted are asked about at once, with our tombstone's
    /// version (the peer answers a newer write, and remembers that we
    /// watch the key); followed keys are reconciled as the peer's
    /// subscriptions arrive ([`Self::on_peer_subscribed`]).
    pub(super) fn on_connected(&mut self, peer: PeerId, now_ms: i64) {
        if self.is_banned(&peer, now_ms) {
            return;
        }
        self.connected.insert(peer);
        if !self.reconcile_with(peer) {
            for key in self.replica.tombstoned_keys() {
                self.ask(peer, &key, None);
            }
        }
    }

    pub(super) fn on_disconnected(&mut self, peer: PeerId, now_ms: i64) {
        self.connected.remove(&peer);
        self.throttle_peer_gone(peer, now_ms);
        self.followers.peer_gone(&peer);
        self.shard_peers.peer_gone(&peer);
        self.watchers.peer_gone(&peer);
        self.penalties.peer_gone(&peer);
        self.reconcile_peer_gone(&peer);
        // What still waited for the peer fails now; asks in flight fail as
        // the shell reports them.
        let waiting = self.dispatch.forget(peer);
        self.fail(peer, waiting, OutboundFailure::ConnectionClosed);
    }

    /// One of the peer's connections closed with gossip perhaps lost on
    /// it: reconcile as on a new connection, by ranges where the two do,
    /// else key by key: the followed keys the peer follows, those no
    /// connected peer is known to follow (the peer may write them without
    /// following them), tombstones and shared shards.
    pub(super) fn on_connection_lost(&mut self, peer: PeerId) {
        if !self.connected.contains(&peer) || self.reconcile_with(peer) {
            return;
        }
        let mut keys: Vec<String> = self
            .subscribed
            .iter()
            .filter(|key| self.followers_of(key).contains(&peer))
            .cloned()
            .collect();
        keys.extend(self.lonely_keys());
        keys.sort_unstable();
        for key in keys {
            self.ask(peer, &key, None);
        }
        self.reconcile_per_key(peer);
    }

    /// A peer follows `key`. If we watch it (follow it, or hold its
    /// tombstone), the two reconcile: we ask with our version, the peer
    /// answers only a newer record, and asks us back if ours is newer.
    pub(super) fn on_peer_subscribed(&mut self, peer: PeerId, key: String, now_ms: i64) {
        if !self.connected.contains(&peer) {
            return;
        }
        self.followers.add(peer, &key);
        self.check_subscriptions(peer, now_ms);
        if self.connected.contains(&peer) && self.watches(&key) {
            self.discover_follower(peer, &key);
            self.ask(peer, &key, None);
        }
    }

    pub(super) fn on_gossip(
        &mut self,
        peer: PeerId,
        message: MessageId,
        topic: Option<Topic>,
        data: &[u8],
        now_ms: i64,
    ) {
        self.ledger.earn(peer, data.len(), now_ms);
        let (acceptance, key) = match topic {
            _ if self.is_banned(&peer, now_ms) => (MessageAcceptance::Ignore, None),
            None => (
                self.reject(peer, String::new(), RejectReason::ForeignTopic, now_ms),
                None,
            ),
            Some(Topic::Key(key)) => (self.on_key_gossip(peer, &key, data, now_ms), Some(key)),
            Some(Topic::Shard { count, index }) => {
                self.on_shard_gossip(peer, (count, index), data, now_ms)
            }
        };
        let accepted = matches!(acceptance, MessageAcceptance::Accept);
        self.outputs.push_back(Output::Verdict {
            message,
            peer,
            acceptance,
        });
        // A gossiped delete must still be forwarded along our mesh, which
        // leaving the topic first would drop: leave after the verdict.
        if let (true, Some(key)) = (accepted, key) {
            if self.is_tombstoned(&key) {
                self.unsubscribe(&key);
            }
        }
    }

    /// Runs a record from the network through the accept path.
    pub(super) fn absorb(
        &mut self,
        record: Record,
        peer: PeerId,
        source: Source,
        now_ms: i64,
    ) -> MessageAcceptance {
        let key = record.key().to_owned();
        let gossip = matches!(source, Source::Gossip { .. });
        let replaced = self.replica.get(&key).map(Cow::into_owned);
        if replaced.is_none() && self.expired(&record, now_ms) {
            return MessageAcceptance::Ignore;
        }
        match self.replica.receive(record.clone(), now_ms) {
            Ok(()) => {
                self.schedule_flush();
                // A value that replaces our tombstone means the key was
                // written again after the delete: follow it again.
                let revived =
                    record.op() == Op::Mut && replaced.as_ref().is_some_and(Record::is_tombstone);
                if revived && self.join(&key) {
                    self.ask_peers(&key, None);
                }
                if gossip {
                    // Our mesh neighbours got it with us (gossipsub forwards
                    // it on our Accept): no need to republish it this interval.
                    self.trickle.heard_same(&key);
                } else {
                    self.learnt_by_fetch(&record, peer);
                }
                self.changed(&record, replaced.as_ref(), Some(peer));
                self.applied(record, source);
                MessageAcceptance::Accept
            }
            Err(Refusal::Same) => {
                if gossip {
                    self.trickle.heard_same(&key);
                }
                MessageAcceptance::Ignore
            }
            Err(Refusal::Older) => {
                // The sender is behind (its record passed the signature
                // check): ask it with our version, and it asks us back. The
                // reaction is one small ask to the peer that showed it, not
                // our record to the whole mesh, so a replayed stale record
                // cannot make us send more than its sender did (spec §14,
                // "What a peer can make us do"). A fetch answer that is
                // older is asked again by `on_entry`.
                if gossip && self.subscribed.contains(&key) {
                    self.trickle.heard_older(&key);
                    self.ask_back(peer, &key, now_ms);
                }
                MessageAcceptance::Ignore
            }
            Err(Refusal::Invalid(reason)) => self.reject(peer, key, reason, now_ms),
            // Judged and reported when it first came.
            Err(Refusal::Refused) => MessageAcceptance::Ignore,
            // A write a collected delete had replaced: dead, and nobody's
            // fault (its sender may have been offline that long).
            Err(Refusal::Buried) => MessageAcceptance::Ignore,
            Err(Refusal::Store(error)) => {
                self.emit(Event::StoreFailed { key, error });
                MessageAcceptance::Ignore
            }
        }
    }

    /// A newer record learnt through a fetch is news for our mesh
    /// neighbours too (they did not see it pass): we ask each follower but
    /// the peer it came from with our new version, and one that is behind
    /// asks us back. A version per key and follower costs far less than
    /// publishing the record to followers that mostly hold it already (a
    /// fresh node catching up thousands of keys from several peers).
    fn learnt_by_fetch(&mut self, record: &Record, from: PeerId) {
        let key = record.key();
        if !self.subscribed.contains(key) {
            return;
        }
        let others: Vec<PeerId> = self
            .followers_of(key)
            .into_iter()
            .filter(|p| *p != from)
            .collect();
        for peer in others {
            self.ask(peer, key, None);
        }
    }

    /// Our record of a key changed: peers that watch it without following
    /// its topic (they left it on a delete) cannot hear the gossip, so we
    /// ask them with our new version; one that is behind asks us back.
    pub(super) fn changed(
        &mut self,
        record: &Record,
        replaced: Option<&Record>,
        from: Option<PeerId>,
    ) {
        let key = record.key();
        let followers = self.followers_of(key);
        let watchers: Vec<PeerId> = self
            .watchers
            .of(key)
            .iter()
            .copied()
            .filter(|p| Some(*p) != from && !followers.contains(p))
            .collect();
        for peer in watchers {
            self.ask(peer, key, None);
        }
        // Having left the topic on a delete, we ask the followers we knew
        // with our tombstone: they remember that we watch the key, and tell
        // us of a later write.
        let deleted = record.is_tombstone() && !replaced.is_some_and(Record::is_tombstone);
        if deleted {
            for peer in followers.into_iter().filter(|p| Some(*p) != from) {
                self.ask(peer, key, None);
            }
        }
        // A delete of a deleted key: everyone left its topic, and a peer
        // that learnt the older delete by gossip is known to nobody as
        // one that holds it. Every connected peer is asked, one key each:
        // a delete of a deleted key is rare, and it must be a newer
        // tombstone that passed every check, so what it costs is bounded
        // by our connections per write. One that holds the older
        // tombstone asks back.
        let redeleted = record.is_tombstone() && replaced.is_some_and(Record::is_tombstone);
        if redeleted {
            let peers: Vec<PeerId> = self
                .connected
                .iter()
                .copied()
                .filter(|p| Some(*p) != from)
                .collect();
            for peer in peers {
                self.ask(peer, key, None);
            }
        }
    }

    /// A record was stored: tell the user; a delete leaves the topic, except
    /// a gossiped one, which leaves after its verdict ([`Self::on_gossip`]).
    pub(super) fn applied(&mut self, record: Record, source: Source) {
        if record.is_tombstone() {
            if !matches!(source, Source::Gossip { .. }) {
                self.unsubscribe(record.key());
            }
            self.emit(Event::RecordDeleted { record, source });
        } else {
            self.emit(Event::RecordUpdated { record, source });
        }
    }

    /// A tombstone older than `tombstone_ttl` would have been collected
    /// by every node that held it: one arriving for a key we hold nothing
    /// of is a replay (it would end our following of the key for nothing),
    /// and is dropped as stale.
    fn expired(&self, record: &Record, now_ms: i64) -> bool {
        let horizon = now_ms.saturating_sub(super::ms(self.config.tombstone_ttl));
        record.is_tombstone() && record.time() < horizon
    }

    /// The version we hold of `key`, for an `Ask`.
    pub(super) fn version(&self, key: &str) -> Option<Version> {
        self.replica.get(key).as_deref().map(Version::of)
    }
}
