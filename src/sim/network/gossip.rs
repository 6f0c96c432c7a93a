//! The model gossipsub: subscriptions announced to neighbours (kept only
//! where the receiver's filter recognises the topic), flood publish,
//! forwarding to at most `mesh_degree` neighbours after an `Accept`,
//! duplicate suppression by message id, and loss.

use libp2p::gossipsub::{MessageAcceptance, MessageId};
use rand::seq::SliceRandom;
use rand::RngExt;

use super::{ordered, Network, Scheduled};
use crate::coordinator::Input;
use crate::core::topic::Topic;
use crate::wire;

impl Network {
    pub(super) fn set_joined(&mut self, i: usize, topic: Topic, joined: bool) {
        let changed = if joined {
            self.nodes[i].joined.insert(topic.clone())
        } else {
            self.nodes[i].joined.remove(&topic)
        };
        if !changed {
            return;
        }
        for other in self.neighbours(i) {
            let link = self.links[&ordered(i, other)];
            let delay = self.latency();
            let topic = topic.clone();
            self.schedule(
                delay,
                Scheduled::Subscription {
                    to: other,
                    from: i,
                    link,
                    topic,
                    joined,
                },
            );
        }
    }

    /// gossipsub's publish: refused as a duplicate if the id was seen,
    /// otherwise sent to every neighbour on the topic (flood publish).
    pub(super) fn publish(&mut self, i: usize, topic: Topic, data: Vec<u8>) {
        let id = message_id(&topic, &data);
        if self.seen_recently(i, &id) {
            return;
        }
        self.nodes[i].seen.insert(id, self.now);
        self.flood(i, None, topic, data);
    }

    /// Sends a gossip message from `i` to its neighbours on the topic
    /// except `except`, at most `mesh_degree` of them when forwarding.
    pub(super) fn flood(&mut self, i: usize, except: Option<usize>, topic: Topic, data: Vec<u8>) {
        let mut targets: Vec<usize> = self
            .neighbours(i)
            .into_iter()
            .filter(|&n| Some(n) != except && self.nodes[n].joined.contains(&topic))
            .collect();
        if except.is_some() {
            targets.shuffle(&mut self.rng);
            targets.truncate(self.params.mesh_degree);
        }
        for to in targets {
            if self
                .rng
                .random_bool(self.params.gossip_loss.clamp(0.0, 1.0))
            {
                continue;
            }
            self.traffic.gossip += 1;
            let link = self.links[&ordered(i, to)];
            let delay = self.latency();
            let event = Scheduled::Gossip {
                to,
                from: i,
                link,
                topic: topic.clone(),
                data: data.clone(),
            };
            self.schedule(delay, event);
        }
    }

    pub(super) fn on_verdict(
        &mut self,
        i: usize,
        message: &MessageId,
        acceptance: MessageAcceptance,
    ) {
        let Some((from, topic, data)) = self.nodes[i].validating.remove(message) else {
            return;
        };
        if matches!(acceptance, MessageAcceptance::Accept) {
            self.flood(i, Some(from), topic, data);
        }
    }

    pub(super) fn receive_gossip(&mut self, to: usize, from: usize, topic: Topic, data: Vec<u8>) {
        let id = message_id(&topic, &data);
        if self.seen_recently(to, &id) || !self.nodes[to].joined.contains(&topic) {
            return;
        }
        self.nodes[to].seen.insert(id.clone(), self.now);
        self.nodes[to]
            .validating
            .insert(id.clone(), (from, topic.clone(), data.clone()));
        let peer = self.nodes[from].peer;
        self.input(
            to,
            Input::Gossip {
                peer,
                message: id,
                topic: Some(topic),
                data,
            },
        );
    }

    /// gossipsub's subscription filter: a node keeps a peer's shard
    /// topics only for its own count of shards.
    pub(super) fn recognises(&self, i: usize, topic: &Topic) -> bool {
        match topic {
            Topic::Key(_) => true,
            Topic::Shard { count, .. } => self.nodes[i]
                .core
                .as_ref()
                .is_some_and(|c| c.config().shard_topic_count() == *count),
        }
    }

    fn seen_recently(&self, i: usize, id: &MessageId) -> bool {
        self.nodes[i]
            .seen
            .get(id)
            .is_some_and(|at| self.now.saturating_sub(*at) < self.params.duplicate_window)
    }
}

/// The id Pointer's gossipsub gives a message on `topic`.
pub(super) fn message_id(topic: &Topic, data: &[u8]) -> MessageId {
    MessageId::new(&wire::message_id(&topic.name(), data))
}
