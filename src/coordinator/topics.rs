//! Which gossipsub topics a node is on, what it publishes on them, and who
//! is on them with it: a topic per key, or, with `topic_shards`, the shard
//! topics plus a key's own topic while a connected peer follows the key
//! there (spec §17).

use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;

use super::{Coordinator, Output, Publication};
use crate::coordinator::replica::Refusal;
use crate::core::accept::RejectReason;
use crate::core::record::Record;
use crate::core::topic::{shard_index, Topic};
use crate::event::Source;
use crate::store::RecordStore;
use crate::wire;

impl<S: RecordStore> Coordinator<S> {
    pub(super) fn shards(&self) -> u16 {
        self.shards
    }

    /// A node on a topic per key that now follows `auto_topic_shards`
    /// keys moves to shard topics, for good: it joins the shard of every
    /// followed key and keeps the key topics it is on until
    /// [`Self::prune_key_topics`] finds them unneeded.
    pub(super) fn shard_when_due(&mut self) {
        let (after, count) = (
            self.config.auto_shards_after,
            self.config.shard_topic_count(),
        );
        if self.shards != 0 || count == 0 || self.subscribed.len() < after {
            return;
        }
        tracing::info!(
            keys = self.subscribed.len(),
            count,
            "moving to shard topics"
        );
        self.shards = count;
        let keys: Vec<String> = self.subscribed.iter().cloned().collect();
        for key in keys {
            let index = shard_index(&key, count);
            let members = self.shard_keys.entry(index).or_default();
            if members.is_empty() {
                self.outputs
                    .push_back(Output::Join(Topic::Shard { count, index }));
            }
            members.insert(key.clone());
            self.key_topics.insert(key);
        }
        self.discover_sharded();
    }

    /// A sharded node leaves a key's own topic once every connected peer
    /// on it is on the key's shard too: they hear the key there (a peer
    /// on both bridges the two). Run at each republish firing, not as
    /// subscriptions arrive: a peer's hello lists its key topics before
    /// its shards.
    pub(super) fn prune_key_topics(&mut self) {
        let count = self.shards;
        if count == 0 {
            return;
        }
        let unneeded: Vec<String> = self
            .key_topics
            .iter()
            .filter(|key| {
                let on_shard = self.shard_peers.of(&shard_index(key, count).to_string());
                self.followers.of(key).iter().all(|p| on_shard.contains(p))
            })
            .cloned()
            .collect();
        for key in unneeded {
            self.key_topics.remove(&key);
            self.outputs.push_back(Output::Leave(Topic::Key(key)));
        }
    }

    /// Joins the topics the records of `key` travel on; `key` was just
    /// followed.
    pub(super) fn join_topics(&mut self, key: &str) {
        let count = self.shards();
        if count == 0 {
            self.outputs
                .push_back(Output::Join(Topic::Key(key.to_owned())));
            return;
        }
        let index = shard_index(key, count);
        let members = self.shard_keys.entry(index).or_default();
        let first = members.is_empty();
        members.insert(key.to_owned());
        if first {
            self.outputs
                .push_back(Output::Join(Topic::Shard { count, index }));
        }
        if !self.followers.of(key).is_empty() {
            self.join_key_topic(key);
        }
    }

    /// Leaves the topics of `key`, no longer followed; a shard topic is
    /// left with the last followed key that hashes there.
    pub(super) fn leave_topics(&mut self, key: &str) {
        let count = self.shards();
        if count == 0 || self.key_topics.remove(key) {
            self.outputs
                .push_back(Output::Leave(Topic::Key(key.to_owned())));
        }
        if count == 0 {
            return;
        }
        let index = shard_index(key, count);
        let Some(members) = self.shard_keys.get_mut(&index) else {
            return;
        };
        members.remove(key);
        if members.is_empty() {
            self.shard_keys.remove(&index);
            self.outputs
                .push_back(Output::Leave(Topic::Shard { count, index }));
        }
    }

    /// A sharded node joins a followed key's own topic once a peer follows
    /// the key there: that peer may speak only the seed's wire. It stays
    /// on it until it stops following the key.
    fn join_key_topic(&mut self, key: &str) {
        if self.key_topics.insert(key.to_owned()) {
            self.outputs
                .push_back(Output::Join(Topic::Key(key.to_owned())));
        }
    }

    /// Whether we are on the key's own topic.
    fn on_key_topic(&self, key: &str) -> bool {
        if self.shards() == 0 {
            self.subscribed.contains(key)
        } else {
            self.key_topics.contains(key)
        }
    }

    /// Publishes `record` on every topic it travels on: its shard, and its
    /// own topic when we are on it or a peer follows it there (gossipsub
    /// publishes to a topic's peers without joining it). `round` is 0 for
    /// a write, and gives a republish its own message id.
    pub(super) fn publish_record(&mut self, record: &Record, round: u64, why: Publication) {
        let key = record.key();
        let count = self.shards();
        if count > 0 {
            self.outputs.push_back(Output::Publish {
                topic: Topic::shard_of(key, count),
                key: key.to_owned(),
                data: wire::encode_shard_operate(record, round),
                why,
            });
        }
        if count == 0 || self.on_key_topic(key) || !self.followers.of(key).is_empty() {
            // Round 0 is not encoded: a write's bytes are the seed's.
            self.outputs.push_back(Output::Publish {
                topic: Topic::Key(key.to_owned()),
                key: key.to_owned(),
                data: wire::encode_republish(record, round),
                why,
            });
        }
    }

    /// A newer record came by gossip on one kind of topic: peers on the
    /// other kind (the key's own topic and its shard) did not see it pass,
    /// so it goes on there too, stamped with the time so that gossipsub's
    /// duplicate cache cannot swallow it.
    fn bridge(&mut self, key: &str, from_shard: bool, now_ms: i64) {
        let count = self.shards();
        if count == 0 || !self.on_key_topic(key) {
            return;
        }
        let Some(record) = self.replica.get(key).map(std::borrow::Cow::into_owned) else {
            return;
        };
        let stamp = u64::try_from(now_ms).unwrap_or(0);
        let (topic, data) = if from_shard {
            (
                Topic::Key(key.to_owned()),
                wire::encode_republish(&record, stamp),
            )
        } else {
            (
                Topic::shard_of(key, count),
                wire::encode_shard_operate(&record, stamp),
            )
        };
        self.outputs.push_back(Output::Publish {
            topic,
            key: key.to_owned(),
            data,
            why: Publication::Republish,
        });
    }

    /// Connected peers that follow `key`, or are on its shard (they relay
    /// its records, and may hold it).
    pub(super) fn followers_of(&self, key: &str) -> Vec<PeerId> {
        let mut peers = self.followers.of(key).to_vec();
        for peer in self.on_shard_of(key) {
            if !peers.contains(peer) {
                peers.push(*peer);
            }
        }
        peers
    }

    /// Whether a connected peer follows `key` or is on its shard.
    pub(super) fn has_followers(&self, key: &str) -> bool {
        !self.followers.of(key).is_empty() || !self.on_shard_of(key).is_empty()
    }

    /// Whether `peer` is the only connected peer, besides those `leaving`,
    /// on a key or a shard we follow: without it, that key would have no
    /// neighbour.
    pub fn needs_peer(&self, peer: &PeerId, leaving: &[PeerId]) -> bool {
        let sole = |on: &[PeerId]| {
            on.iter()
                .filter(|p| !leaving.contains(p))
                .all(|p| p == peer)
        };
        let on_key = self.followers.keys_in(peer, "", None).into_iter();
        let sole_on_key = on_key
            .into_iter()
            .any(|key| self.subscribed.contains(&key) && sole(self.followers.of(&key)));
        let followed_shard = |index: &str| {
            index
                .parse::<u16>()
                .is_ok_and(|i| self.shard_keys.contains_key(&i))
        };
        let sole_on_shard = self
            .shard_peers
            .keys_in(peer, "", None)
            .into_iter()
            .any(|index| followed_shard(&index) && sole(self.shard_peers.of(&index)));
        sole_on_key || sole_on_shard
    }

    /// The followed keys that no connected peer follows or relays, in
    /// order. With shards, whole shards with a peer on them are skipped
    /// instead of hashing every key to its shard.
    pub(super) fn lonely_keys(&self) -> Vec<String> {
        let alone = |key: &&String| self.followers.of(key).is_empty();
        if self.shards() == 0 {
            return self.subscribed.iter().filter(alone).cloned().collect();
        }
        let mut keys: Vec<String> = self
            .shard_keys
            .iter()
            .filter(|(index, _)| self.shard_peers.of(&index.to_string()).is_empty())
            .flat_map(|(_, members)| members.iter().filter(alone).cloned())
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Connected peers on the shard of `key` (none without shards).
    fn on_shard_of(&self, key: &str) -> &[PeerId] {
        match self.shards() {
            0 => &[],
            count => self.shard_peers.of(&shard_index(key, count).to_string()),
        }
    }

    /// gossipsub: `peer` joined `topic`.
    pub(super) fn on_topic_joined(&mut self, peer: PeerId, topic: Topic, now_ms: i64) {
        match topic {
            Topic::Key(key) => {
                if self.shards() > 0 && self.subscribed.contains(&key) {
                    self.join_key_topic(&key);
                }
                self.on_peer_subscribed(peer, key, now_ms);
            }
            Topic::Shard { index, .. } => self.on_shard_joined(peer, index),
        }
    }

    /// gossipsub: `peer` left `topic`.
    pub(super) fn on_topic_left(&mut self, peer: PeerId, topic: Topic) {
        match topic {
            Topic::Key(key) => self.followers.remove(&peer, &key),
            Topic::Shard { index, .. } => self.shard_peers.remove(&peer, &index.to_string()),
        }
    }

    /// A peer on one of our shards may hold any of our keys there: each is
    /// reconciled with it, as a key's own topic is when a peer joins it,
    /// by the range reconciliation with the peer if one runs (spec §18).
    fn on_shard_joined(&mut self, peer: PeerId, index: u16) {
        if !self.connected.contains(&peer) {
            return;
        }
        self.shard_peers.add(peer, &index.to_string());
        let keys: Vec<String> = self
            .shard_keys
            .get(&index)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default();
        let by_ranges = self.reconcile_with(peer);
        for key in keys {
            self.discover_follower(peer, &key);
            if !by_ranges {
                self.ask(peer, &key, None);
            }
        }
    }

    /// A gossip message on the topic of `key`: runs the accept path, and
    /// passes a newer record on to the key's shard.
    pub(super) fn on_key_gossip(
        &mut self,
        peer: PeerId,
        key: &str,
        data: &[u8],
        now_ms: i64,
    ) -> MessageAcceptance {
        match wire::decode_operate(key, data, self.config.max_message_bytes) {
            Ok(record) => {
                let verdict = self.absorb(record, peer, Source::Gossip { peer }, now_ms);
                if matches!(verdict, MessageAcceptance::Accept) {
                    self.bridge(key, false, now_ms);
                }
                verdict
            }
            Err(e) => self.reject(peer, key.to_owned(), e.into(), now_ms),
        }
    }

    /// A gossip message on shard `index` of `count`. A record of a key we
    /// watch or hold runs the accept path (and goes on to the key's own
    /// topic if newer); any other is checked in full and relayed, not
    /// stored: the shard's mesh carries the records of all its keys, and a
    /// node that drops what it does not follow would cut it. Returns the
    /// verdict and the record's key.
    pub(super) fn on_shard_gossip(
        &mut self,
        peer: PeerId,
        (count, index): (u16, u16),
        data: &[u8],
        now_ms: i64,
    ) -> (MessageAcceptance, Option<String>) {
        let record = match wire::decode_shard_operate(data, self.config.max_message_bytes) {
            Ok(record) => record,
            Err(e) => return (self.reject(peer, String::new(), e.into(), now_ms), None),
        };
        let key = record.key().to_owned();
        if count != self.shards() || shard_index(&key, count) != index {
            let verdict = self.reject(peer, key.clone(), RejectReason::WrongShard, now_ms);
            return (verdict, Some(key));
        }
        if self.watches(&key) || self.replica.get(&key).is_some() {
            let verdict = self.absorb(record, peer, Source::Gossip { peer }, now_ms);
            if matches!(verdict, MessageAcceptance::Accept) {
                self.bridge(&key, true, now_ms);
            }
            return (verdict, Some(key));
        }
        let verdict = match self.replica.check(&record, now_ms) {
            Ok(()) => MessageAcceptance::Accept,
            Err(Refusal::Invalid(reason)) => self.reject(peer, key.clone(), reason, now_ms),
            // Refused a moment ago, and reported then.
            Err(_) => MessageAcceptance::Ignore,
        };
        (verdict, Some(key))
    }
}
