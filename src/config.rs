//! Configuration of [`Behaviour`](crate::Behaviour), with documented defaults.

use std::fmt;
use std::time::Duration;

use crate::core::accept::Limits;

/// Settings of a [`Behaviour`](crate::Behaviour). Build one with
/// [`Config::builder`]; [`Config::default`] gives the defaults listed on
/// each builder method. Who may write which key is not a setting: the
/// [`Validator`](crate::Validator) goes to the constructor
/// ([`Behaviour::with_validator`](crate::Behaviour::with_validator)), as
/// gossipsub takes its subscription filter, so a `Config` is plain data
/// that can be cloned, compared in tests and printed.
#[derive(Clone)]
pub struct Config {
    pub(crate) limits: Limits,
    pub(crate) max_message_bytes: usize,
    pub(crate) max_gossip_rpc_bytes: usize,
    pub(crate) tombstone_ttl: Duration,
    pub(crate) republish_interval: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) get_grace: Duration,
    pub(crate) fetch_fanout: usize,
    pub(crate) max_keys_per_ask: usize,
    pub(crate) author_key_cache: usize,
    pub(crate) refused_record_cache: usize,
    pub(crate) collected_delete_memory: usize,
    pub(crate) max_inbound_fetch_streams: usize,
    pub(crate) max_outbound_fetch_streams: usize,
    pub(crate) max_inbound_fetch_streams_total: usize,
    pub(crate) gossipsub_protocol_prefix: Option<String>,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) topic_changes_per_second: u32,
    pub(crate) republish_per_second: u32,
    pub(crate) store_flush_interval: Duration,
    pub(crate) push_delay: Duration,
    pub(crate) invalid_record_budget: u32,
    pub(crate) peer_work_burst: usize,
    pub(crate) peer_work_per_second: usize,
    pub(crate) work_earned_per_byte: u32,
    pub(crate) invalid_record_window: Duration,
    pub(crate) ban_duration: Duration,
    pub(crate) max_banned_peers: usize,
    pub(crate) max_topics_per_peer: usize,
    pub(crate) max_subscription_bytes: usize,
    pub(crate) discovery_rate: u32,
    pub(crate) discovery_dials: usize,
    pub(crate) discovery_interval: Duration,
    pub(crate) dht_connection_linger: Option<Duration>,
    pub(crate) topic_shards: u16,
    pub(crate) auto_shards_after: usize,
    pub(crate) auto_shards: u16,
    pub(crate) verify_threads: usize,
    pub(crate) reconcile_min_keys: usize,
    pub(crate) max_reconcile_ranges: usize,
    pub(crate) max_reconcile_rounds: usize,
    pub(crate) max_reconcile_pending: usize,
    pub(crate) settled_after: Duration,
    pub(crate) settled_republish_every: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits {
                max_key_bytes: 512,
                max_value_bytes: 60 * 1024,
                max_clock_skew_ms: 5 * 60 * 1000,
            },
            max_message_bytes: 64 * 1024,
            max_gossip_rpc_bytes: 4 * 1024 * 1024,
            tombstone_ttl: Duration::from_secs(24 * 60 * 60),
            republish_interval: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(10),
            get_grace: Duration::from_millis(500),
            fetch_fanout: 3,
            max_keys_per_ask: 256,
            author_key_cache: crate::coordinator::replica::DEFAULT_AUTHOR_KEY_CACHE,
            refused_record_cache: crate::coordinator::replica::DEFAULT_REFUSED_CACHE,
            collected_delete_memory: crate::coordinator::replica::DEFAULT_COLLECTED_DELETE_MEMORY,
            max_inbound_fetch_streams: 32,
            max_outbound_fetch_streams: 32,
            max_inbound_fetch_streams_total: 256,
            gossipsub_protocol_prefix: None,
            heartbeat_interval: Duration::from_secs(1),
            topic_changes_per_second: 10_000,
            republish_per_second: 200,
            store_flush_interval: Duration::from_millis(100),
            push_delay: Duration::from_millis(100),
            invalid_record_budget: 20,
            peer_work_burst: 32 * 1024 * 1024,
            peer_work_per_second: 8 * 1024 * 1024,
            work_earned_per_byte: 2,
            invalid_record_window: Duration::from_secs(10),
            ban_duration: Duration::from_secs(10 * 60),
            max_banned_peers: 4096,
            max_topics_per_peer: 65_536,
            max_subscription_bytes: 32 * 1024 * 1024,
            discovery_rate: 20,
            discovery_dials: 3,
            discovery_interval: Duration::from_secs(5 * 60),
            dht_connection_linger: Some(Duration::from_secs(30)),
            topic_shards: 0,
            auto_shards_after: 8_192,
            auto_shards: 256,
            verify_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            reconcile_min_keys: 1024,
            max_reconcile_ranges: 16,
            max_reconcile_rounds: 4096,
            max_reconcile_pending: 8192,
            settled_after: Duration::from_secs(10 * 60),
            settled_republish_every: 32,
        }
    }
}

impl Config {
    /// A builder that starts from the defaults.
    pub fn builder() -> ConfigBuilder {
        ConfigBuilder(Config::default())
    }

    /// Key, value and clock-skew limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Largest encoded record on the wire (gossip payload or fetch frame).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Largest gossipsub RPC frame.
    pub fn max_gossip_rpc_bytes(&self) -> usize {
        self.max_gossip_rpc_bytes
    }

    /// How long tombstones are kept.
    pub fn tombstone_ttl(&self) -> Duration {
        self.tombstone_ttl
    }

    /// Age after which a record counts as settled.
    pub fn settled_after(&self) -> Duration {
        self.settled_after
    }

    /// One firing in how many republishes a settled record.
    pub fn settled_republish_every(&self) -> u32 {
        self.settled_republish_every
    }

    /// Mean time between republishes of a key.
    pub fn republish_interval(&self) -> Duration {
        self.republish_interval
    }

    /// How long one `Ask` may take.
    pub fn fetch_timeout(&self) -> Duration {
        self.fetch_timeout
    }

    /// How long a `get` waits for its other peers once one has answered
    /// with a record.
    pub fn get_grace(&self) -> Duration {
        self.get_grace
    }

    /// How many peers a catch-up or `get` asks.
    pub fn fetch_fanout(&self) -> usize {
        self.fetch_fanout
    }

    /// Most keys in one `Ask`, and most records in one `Answer`.
    pub fn max_keys_per_ask(&self) -> usize {
        self.max_keys_per_ask
    }

    /// Most key ranges one reconciliation keeps waiting to be asked.
    pub fn max_reconcile_pending(&self) -> usize {
        self.max_reconcile_pending
    }

    /// Fewest keys watched for a node to reconcile ranges (spec §18).
    pub fn reconcile_min_keys(&self) -> usize {
        self.reconcile_min_keys
    }

    /// Most key ranges in one `Ask`, and most answered of a peer's `Ask`.
    pub fn max_reconcile_ranges(&self) -> usize {
        self.max_reconcile_ranges
    }

    /// Most `Ask`s one reconciliation with a peer sends.
    pub fn max_reconcile_rounds(&self) -> usize {
        self.max_reconcile_rounds
    }

    /// Most authors whose decompressed public keys are kept.
    pub fn author_key_cache(&self) -> usize {
        self.author_key_cache
    }

    /// Most signatures of records our validator refused that are
    /// remembered.
    pub fn refused_record_cache(&self) -> usize {
        self.refused_record_cache
    }

    /// Most deletes remembered after their tombstones are collected.
    pub fn collected_delete_memory(&self) -> usize {
        self.collected_delete_memory
    }

    /// The value given to [`ConfigBuilder::push_delay`], which no longer
    /// applies: a peer that gossips an older record is asked back at once.
    #[deprecated(
        note = "a peer that gossips an older record is asked back at once; no push follows"
    )]
    pub fn push_delay(&self) -> Duration {
        self.push_delay
    }

    /// Records republished per second at most.
    pub fn republish_per_second(&self) -> u32 {
        self.republish_per_second
    }

    /// Topic joins and leaves handed to gossipsub per second.
    pub fn topic_changes_per_second(&self) -> u32 {
        self.topic_changes_per_second
    }

    /// Longest wait before received records are made durable.
    pub fn store_flush_interval(&self) -> Duration {
        self.store_flush_interval
    }

    /// Invalid records a peer may send per window before it is banned:
    /// `(count, window)`.
    pub fn invalid_record_budget(&self) -> (u32, Duration) {
        (self.invalid_record_budget, self.invalid_record_window)
    }

    /// Bytes of work a peer's account holds and refills per second:
    /// `(burst, per_second)` (see [`ConfigBuilder::peer_work_budget`]).
    pub fn peer_work_budget(&self) -> (usize, usize) {
        (self.peer_work_burst, self.peer_work_per_second)
    }

    /// Bytes of work a peer earns per byte it sends of its own accord.
    pub fn work_earned_per_byte(&self) -> u32 {
        self.work_earned_per_byte
    }

    /// How long a banned peer is refused.
    pub fn ban_duration(&self) -> Duration {
        self.ban_duration
    }

    /// Most peers banned at once.
    pub fn max_banned_peers(&self) -> usize {
        self.max_banned_peers
    }

    /// Most inbound fetch streams served at once over all connections.
    pub fn max_inbound_fetch_streams_total(&self) -> usize {
        self.max_inbound_fetch_streams_total
    }

    /// Most topics one peer may subscribe to.
    pub fn max_topics_per_peer(&self) -> usize {
        self.max_topics_per_peer
    }

    /// Most bytes all peers' subscriptions may take together.
    pub fn max_subscription_bytes(&self) -> usize {
        self.max_subscription_bytes
    }

    /// DHT operations (provides and lookups) started per second at most.
    pub fn discovery_rate(&self) -> u32 {
        self.discovery_rate
    }

    /// Most followers found through the DHT that one lookup dials.
    pub fn discovery_dials(&self) -> usize {
        self.discovery_dials
    }

    /// Least time between two background lookups of one key.
    pub fn discovery_interval(&self) -> Duration {
        self.discovery_interval
    }

    /// How long a connection the DHT dialed for its own queries stays open
    /// before it is closed; `None` keeps them (see
    /// [`ConfigBuilder::dht_connection_linger`]).
    pub fn dht_connection_linger(&self) -> Option<Duration> {
        self.dht_connection_linger
    }

    /// How many shard topics keys are spread over from the start; 0: a
    /// topic per key (until [`Self::auto_topic_shards`] turns shards on).
    pub fn topic_shards(&self) -> u16 {
        self.topic_shards
    }

    /// `(after_keys, count)`: a node with a topic per key moves to `count`
    /// shard topics once it follows `after_keys` keys; 0 keys: never.
    pub fn auto_topic_shards(&self) -> (usize, u16) {
        (self.auto_shards_after, self.auto_shards)
    }

    /// The shard count this node's shard topics have or will have: the
    /// one it recognises in peers' subscriptions (0: none).
    pub(crate) fn shard_topic_count(&self) -> u16 {
        match (self.topic_shards, self.auto_shards_after) {
            (0, 0) => 0,
            (0, _) if self.shard_payload_fits() => self.auto_shards,
            (0, _) => 0,
            (count, _) => count,
        }
    }

    /// Whether the largest record fits a shard topic's payload, which
    /// carries the key too (spec §17).
    pub(crate) fn shard_payload_fits(&self) -> bool {
        let needed = self.limits.max_value_bytes
            + crate::config::OPERATE_OVERHEAD
            + self.limits.max_key_bytes
            + 3;
        needed <= self.max_message_bytes
    }

    /// Threads the signatures of one answer are checked on (see
    /// [`ConfigBuilder::verify_threads`]).
    pub fn verify_threads(&self) -> usize {
        self.verify_threads
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("limits", &self.limits)
            .field("max_message_bytes", &self.max_message_bytes)
            .field("max_gossip_rpc_bytes", &self.max_gossip_rpc_bytes)
            .field("tombstone_ttl", &self.tombstone_ttl)
            .field("republish_interval", &self.republish_interval)
            .field("fetch_timeout", &self.fetch_timeout)
            .field("get_grace", &self.get_grace)
            .field("fetch_fanout", &self.fetch_fanout)
            .field("max_keys_per_ask", &self.max_keys_per_ask)
            .field("reconcile_min_keys", &self.reconcile_min_keys)
            .field("settled_after", &self.settled_after)
            .field("settled_republish_every", &self.settled_republish_every)
            .field("max_reconcile_ranges", &self.max_reconcile_ranges)
            .field("max_reconcile_rounds", &self.max_reconcile_rounds)
            .field("max_reconcile_pending", &self.max_reconcile_pending)
            .field("author_key_cache", &self.author_key_cache)
            .field("refused_record_cache", &self.refused_record_cache)
            .field("collected_delete_memory", &self.collected_delete_memory)
            .field("max_inbound_fetch_streams", &self.max_inbound_fetch_streams)
            .field(
                "max_inbound_fetch_streams_total",
                &self.max_inbound_fetch_streams_total,
            )
            .field(
                "max_outbound_fetch_streams",
                &self.max_outbound_fetch_streams,
            )
            .field("gossipsub_protocol_prefix", &self.gossipsub_protocol_prefix)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("topic_changes_per_second", &self.topic_changes_per_second)
            .field("republish_per_second", &self.republish_per_second)
            .field("store_flush_interval", &self.store_flush_interval)
            .field("push_delay", &self.push_delay)
            .field("invalid_record_budget", &self.invalid_record_budget)
            .field("invalid_record_window", &self.invalid_record_window)
            .field("peer_work_burst", &self.peer_work_burst)
            .field("peer_work_per_second", &self.peer_work_per_second)
            .field("work_earned_per_byte", &self.work_earned_per_byte)
            .field("ban_duration", &self.ban_duration)
            .field("max_banned_peers", &self.max_banned_peers)
            .field("max_topics_per_peer", &self.max_topics_per_peer)
            .field("max_subscription_bytes", &self.max_subscription_bytes)
            .field("discovery_rate", &self.discovery_rate)
            .field("discovery_dials", &self.discovery_dials)
            .field("discovery_interval", &self.discovery_interval)
            .field("dht_connection_linger", &self.dht_connection_linger)
            .field("topic_shards", &self.topic_shards)
            .field("auto_shards_after", &self.auto_shards_after)
            .field("auto_shards", &self.auto_shards)
            .field("verify_threads", &self.verify_threads)
            .finish_non_exhaustive()
    }
}

mod builder;
mod limits;

pub use self::builder::ConfigBuilder;
pub use self::limits::{
    ConfigError, MAX_DURATION, MAX_GOSSIP_RPC_BYTES, MAX_MESSAGE_BYTES, MAX_RECONCILE_RANGES,
    MAX_TOPIC_SHARDS, MAX_VERIFY_THREADS, OPERATE_OVERHEAD,
};

#[cfg(test)]
mod tests;
