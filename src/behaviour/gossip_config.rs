//! The gossipsub inside [`Behaviour`](crate::Behaviour): its configuration and
//! the subscription filter that keeps only record topics.

use std::time::Duration;

use libp2p::gossipsub::{
    self, MaxCountSubscriptionFilter, MessageAuthenticity, MessageId, TopicHash,
    TopicSubscriptionFilter, ValidationMode,
};

use super::{parse_topic, BuildError, Gossip};
use crate::config::Config;
use crate::core::topic::Topic;
use crate::wire;

/// Keeps only the subscriptions a Pointer node can use: record topics whose
/// key is within `max_key_bytes`, and our count's shard topics. A peer's
/// other subscriptions (any string it names, of any length) are never
/// stored.
pub struct RecordTopics {
    max_key_bytes: usize,
    shards: u16,
}

impl TopicSubscriptionFilter for RecordTopics {
    fn can_subscribe(&mut self, topic: &TopicHash) -> bool {
        match parse_topic(topic, self.shards) {
            Some(Topic::Key(key)) => key.len() <= self.max_key_bytes,
            Some(Topic::Shard { .. }) => true,
            None => false,
        }
    }
}

pub(super) fn build_gossipsub(config: &Config) -> Result<Gossip, BuildError> {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::new(&wire::message_id(m.topic.as_str(), &m.data))
        })
        // gossipsub sends all our subscriptions in one hello RPC, and one
        // topic per key makes it large: the RPC limit must hold it (records
        // are held to max_message_bytes by our own decoding).
        .max_transmit_size(
            config
                .max_gossip_rpc_bytes
                .max(config.max_message_bytes + config.limits.max_key_bytes + 1024),
        )
        // ...and gossipsub holds the subscriptions of one RPC to this
        // separate limit (16 KiB by default: a few hundred keys).
        .max_control_message_size(config.max_gossip_rpc_bytes)
        .heartbeat_interval(config.heartbeat_interval)
        // Identical republishes must not be refused as duplicates when the
        // next interval comes round.
        .duplicate_cache_time(duplicate_window(config.republish_interval));
    if let Some(prefix) = &config.gossipsub_protocol_prefix {
        builder.protocol_id_prefix(prefix.clone());
    }
    let gossip_config = builder
        .build()
        .map_err(|e| BuildError::Gossipsub(e.to_string()))?;
    // One RPC may carry at most a peer's whole allowance of topics; more
    // is refused whole (the coordinator bans a peer that goes beyond it
    // over several RPCs). Our own topics are not limited here; the bound
    // is far enough from `usize::MAX` that gossipsub's sum cannot overflow.
    let filter = MaxCountSubscriptionFilter {
        filter: RecordTopics {
            max_key_bytes: config.limits.max_key_bytes,
            shards: config.shard_topic_count(),
        },
        max_subscribed_topics: usize::MAX / 4,
        max_subscriptions_per_request: config.max_topics_per_peer,
    };
    Gossip::new_with_subscription_filter(MessageAuthenticity::Anonymous, gossip_config, filter)
        .map_err(|e| BuildError::Gossipsub(e.to_string()))
}

/// Republishes come at least half an interval apart; the duplicate cache
/// must forget a message before then.
fn duplicate_window(republish: Duration) -> Duration {
    (republish / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}
