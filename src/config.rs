//! Configuration of [`Behaviour`](crate::Behaviour), with documented defaults.

use std::fmt;
use std::time::Duration;

use crate::accept::Limits;

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
            author_key_cache: crate::replica::DEFAULT_AUTHOR_KEY_CACHE,
            refused_record_cache: crate::replica::DEFAULT_REFUSED_CACHE,
            collected_delete_memory: crate::replica::DEFAULT_COLLECTED_DELETE_MEMORY,
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
            .field("topic_shards", &self.topic_shards)
            .field("auto_shards_after", &self.auto_shards_after)
            .field("auto_shards", &self.auto_shards)
            .field("verify_threads", &self.verify_threads)
            .finish_non_exhaustive()
    }
}

/// Builder of a [`Config`].
#[derive(Debug)]
pub struct ConfigBuilder(Config);

impl ConfigBuilder {
    /// Longest key in bytes. Default: 512.
    pub fn max_key_bytes(mut self, bytes: usize) -> Self {
        self.0.limits.max_key_bytes = bytes;
        self
    }

    /// Longest value in bytes. Default: 61,440 (60 KiB).
    pub fn max_value_bytes(mut self, bytes: usize) -> Self {
        self.0.limits.max_value_bytes = bytes;
        self
    }

    /// Largest encoded record on the wire, for gossip and for each fetch
    /// frame. Default: 65,536 (64 KiB). Pointer's gossipsub accepts RPCs of
    /// this size plus room for the topic and framing.
    pub fn max_message_bytes(mut self, bytes: usize) -> Self {
        self.0.max_message_bytes = bytes;
        self
    }

    /// Largest gossipsub RPC frame accepted or sent, in bytes. On connect
    /// gossipsub sends all of a node's subscriptions in one RPC, one topic
    /// per followed key (about 20 bytes plus the key each): a frame too
    /// small for it is dropped and the peers never learn what the other
    /// follows. Default: 4 MiB, room for about 50,000 keys of 60 bytes
    /// (beyond that, use [`topic_shards`](Self::topic_shards)). Records
    /// stay bounded by `max_message_bytes`.
    pub fn max_gossip_rpc_bytes(mut self, bytes: usize) -> Self {
        self.0.max_gossip_rpc_bytes = bytes;
        self
    }

    /// How far ahead of the local clock a record's time may be. Default:
    /// 5 minutes.
    pub fn max_clock_skew(mut self, skew: Duration) -> Self {
        self.0.limits.max_clock_skew_ms = duration_ms(skew);
        self
    }

    /// How long a tombstone is kept before it is collected. Default: 24 h.
    /// After that, a node that was offline longer can bring an old value
    /// back; choose it longer than your nodes stay offline.
    pub fn tombstone_ttl(mut self, ttl: Duration) -> Self {
        self.0.tombstone_ttl = ttl;
        self
    }

    /// Mean time between republishes of each subscribed key (each firing
    /// falls at a random point of the second half of its interval).
    /// Default: 60 s.
    pub fn republish_interval(mut self, interval: Duration) -> Self {
        self.0.republish_interval = interval;
        self
    }

    /// Time allowed for one `Ask`/`Answer` exchange, stream negotiation
    /// included. Default: 10 s.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.0.fetch_timeout = timeout;
        self
    }

    /// How long a `get` waits for the rest of the peers it asked once one
    /// has answered with a record (a value or a tombstone); it then ends
    /// with the newest record held. Without it, one peer answering just
    /// before `fetch_timeout` would hold every `get` of its keys that
    /// long. A newer record a slower peer holds still arrives, as a
    /// `RecordUpdated`: the `get` follows the key. Zero ends the `get` at
    /// the first answer with a record. Default: 500 ms.
    pub fn get_grace(mut self, grace: Duration) -> Self {
        self.0.get_grace = grace;
        self
    }

    /// How many peers a catch-up or a `get` asks at most (at least 1).
    /// Default: 3.
    pub fn fetch_fanout(mut self, peers: usize) -> Self {
        self.0.fetch_fanout = peers;
        self
    }

    /// Most keys one `Ask` carries, and most records one `Answer` gives.
    /// Catch-up of many keys packs the keys waiting for a peer into one
    /// `Ask` (within `max_message_bytes` too), so following 10,000 keys
    /// costs tens of streams, not tens of thousands; an answerer gives at
    /// most this many records, as far as they fit `max_message_bytes`, and
    /// the asker asks again for the rest. `1` asks one key per stream, as
    /// peers that only know the original schema do. Default: 256.
    pub fn max_keys_per_ask(mut self, keys: usize) -> Self {
        self.0.max_keys_per_ask = keys;
        self
    }

    /// Fewest keys a node must watch (follow, or hold a tombstone of) to
    /// reconcile with a peer by key ranges (spec §18) rather than by a
    /// version per key. Below it a version per key costs a few kilobytes;
    /// above it range reconciliation compares what two replicas hold in a
    /// round trip. `0` always reconciles ranges. Default: 1,024.
    pub fn reconcile_min_keys(mut self, keys: usize) -> Self {
        self.0.reconcile_min_keys = keys;
        self
    }

    /// Most key ranges one reconciliation `Ask` carries, and most of a
    /// peer's ranges answered (the rest are left unanswered, and the asker
    /// asks again): what one `Ask` can make this node compute is bounded
    /// by it. At most 256. Default: 16.
    pub fn max_reconcile_ranges(mut self, ranges: usize) -> Self {
        self.0.max_reconcile_ranges = ranges;
        self
    }

    /// Most `Ask`s one reconciliation with a peer sends before it gives up
    /// (a peer that keeps splitting ranges cannot keep us asking forever);
    /// the next republish firing starts afresh. Default: 4,096.
    pub fn max_reconcile_rounds(mut self, rounds: usize) -> Self {
        self.0.max_reconcile_rounds = rounds;
        self
    }

    /// Most key ranges one reconciliation with a peer keeps waiting to be
    /// asked. Ranges are compared depth first, so an honest reconciliation
    /// keeps about a split's parts per level of the tree waiting (16 per
    /// range asked, a few levels deep at a million keys); a peer whose
    /// splits would queue more is cut off, and the next republish firing
    /// starts afresh. What a peer's splits make us hold is therefore at
    /// most this many ranges (each two keys of at most `max_key_bytes`).
    /// Default: 8,192.
    pub fn max_reconcile_pending(mut self, ranges: usize) -> Self {
        self.0.max_reconcile_pending = ranges;
        self
    }

    /// How old a record must be (by its own time, against the local clock)
    /// to count as *settled*: a node that reconciles by key ranges
    /// republishes a settled record only at one firing in
    /// [`settled_republish_every`](Self::settled_republish_every) (spec
    /// §11). Records younger than this are republished at every firing.
    /// Default: 10 minutes.
    pub fn settled_after(mut self, age: Duration) -> Self {
        self.0.settled_after = age;
        self
    }

    /// At how many republish firings in a row a settled record is
    /// republished once, by a node that reconciles by key ranges (it
    /// watches at least [`reconcile_min_keys`](Self::reconcile_min_keys)
    /// keys). The range reconciliation of every firing already finds what a
    /// neighbour lacks, so republishing a million old records every
    /// interval bought nothing but a million gossip messages. Which firing
    /// is a record's turn follows from its signature, so every node that
    /// holds it republishes it in the same round and Trickle still
    /// suppresses the copies. `1` republishes every record at every firing.
    /// At least 1. Default: 32.
    pub fn settled_republish_every(mut self, firings: u32) -> Self {
        self.0.settled_republish_every = firings;
        self
    }

    /// Most authors whose decompressed Ed25519 public keys are kept, so
    /// that checking their next records skips decompressing the key (about
    /// 3 µs of a 35 µs check). About 200 bytes each; when full, the cache
    /// starts over. `0` keeps none. Default: 1,024.
    pub fn author_key_cache(mut self, authors: usize) -> Self {
        self.0.author_key_cache = authors;
        self
    }

    /// Most records our validator refused whose signatures are remembered,
    /// each for a minute: a replay of one (under a new gossip message id)
    /// is then dropped without a second signature check or a second
    /// `RecordRejected`. Such a record is not blamed on its sender, since
    /// validators may differ between honest nodes; this bounds what
    /// replaying it costs. About 150 bytes each; past the bound the oldest
    /// is forgotten. `0` remembers none. Default: 4,096.
    pub fn refused_record_cache(mut self, records: usize) -> Self {
        self.0.refused_record_cache = records;
        self
    }

    /// Most deletes remembered after their tombstones are collected
    /// (`tombstone_ttl` after the delete): a write the delete had replaced
    /// that comes back later (replayed by anyone who kept it) is refused
    /// rather than brought back to life. Memory only, about 60 bytes and
    /// the key each; past the bound the oldest is forgotten, and a
    /// restarted node remembers none. `0` remembers none. Default: 65,536.
    pub fn collected_delete_memory(mut self, deletes: usize) -> Self {
        self.0.collected_delete_memory = deletes;
        self
    }

    /// Topic joins and leaves handed to gossipsub per second, a quarter of
    /// that at once; the rest wait, in order. Each join queues a GRAFT per
    /// mesh peer on a control queue gossipsub bounds at 20,000 per peer
    /// and drops past (its "Send Queue full" warning), which would leave
    /// those topics' meshes half built: following 50,000 keys at once
    /// must not. With a topic per key this paces follows (10,000 keys a
    /// second); with shards, the shards. At least 1. Default: 10,000.
    pub fn topic_changes_per_second(mut self, changes: u32) -> Self {
        self.0.topic_changes_per_second = changes;
        self
    }

    /// Records republished per second at most, a quarter of that at once.
    /// A firing that finds more due than an interval's worth republishes
    /// a share of them, a different share each firing (so each record
    /// still goes out, less often); writes are never held back. A burst of
    /// a million republishes overflows gossipsub's per-peer queue of 5,000
    /// and takes a core: a node with many keys relies on range
    /// reconciliation (spec §18) to repair what republish no longer
    /// repeats every interval. At least 1. Default: 200.
    pub fn republish_per_second(mut self, records: u32) -> Self {
        self.0.republish_per_second = records;
        self
    }

    /// Concurrent inbound fetch streams per peer, over all its connections
    /// (more connections give a peer no more); further streams are closed
    /// at once. Default: 32.
    pub fn max_inbound_fetch_streams(mut self, streams: usize) -> Self {
        self.0.max_inbound_fetch_streams = streams;
        self
    }

    /// Concurrent inbound fetch streams over all connections together, so
    /// a peer with many connections (or many peers at once) cannot make the
    /// node serve more; further streams are closed at once
    /// (`InboundFailure::TooManyStreamsInTotal`). Default: 256.
    pub fn max_inbound_fetch_streams_total(mut self, streams: usize) -> Self {
        self.0.max_inbound_fetch_streams_total = streams;
        self
    }

    /// Concurrent outbound fetches per connection; further asks fail at
    /// once. Default: 32.
    pub fn max_outbound_fetch_streams(mut self, streams: usize) -> Self {
        self.0.max_outbound_fetch_streams = streams;
        self
    }

    /// Speak gossipsub under `"<prefix>/1.1.0"` and `"<prefix>/1.0.0"`
    /// instead of the standard `/meshsub/…` ids. Set it when the swarm also
    /// runs a gossipsub of its own, so the two never share a stream. Default:
    /// the standard ids (interoperable with any gossipsub).
    pub fn gossipsub_protocol_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.0.gossipsub_protocol_prefix = Some(prefix.into());
        self
    }

    /// Gossipsub heartbeat. Default: 1 s (gossipsub's own default).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.0.heartbeat_interval = interval;
        self
    }

    /// Longest time a record received from the network may wait before the
    /// store makes it durable ([`RecordStore::flush`]). Received records are
    /// committed at once but synced to disk in groups, so a catch-up is not
    /// one `fsync` per record; a crash may lose at most this much of what
    /// arrived, which peers still hold and send again. Local writes are
    /// durable when `put` returns. Default: 100 ms.
    ///
    /// [`RecordStore::flush`]: crate::RecordStore::flush
    pub fn store_flush_interval(mut self, interval: Duration) -> Self {
        self.0.store_flush_interval = interval;
        self
    }

    /// Formerly the wait before a node published its record to the whole
    /// mesh when a peer gossiped an older one. That push let one replayed
    /// stale record make the node send its record to every follower; the
    /// node now asks the sender back instead (spec §7), so the delay no
    /// longer applies. Kept, with no effect, for one release.
    #[deprecated(
        note = "a peer that gossips an older record is asked back at once; no push follows"
    )]
    pub fn push_delay(mut self, delay: Duration) -> Self {
        self.0.push_delay = delay;
        self
    }

    /// How many DHT operations (advertising a followed key, looking up the
    /// followers of one) the node starts per second at most, when a
    /// [`Discovery`](crate::discovery::Discovery) is attached. A `get`'s
    /// lookup goes first and is never held back; background work (keys
    /// followed in bulk, re-lookups) waits its turn, so following 100,000
    /// keys spreads over 100,000 / rate seconds instead of a burst of
    /// queries. Default: 20.
    pub fn discovery_rate(mut self, per_second: u32) -> Self {
        self.0.discovery_rate = per_second;
        self
    }

    /// How many of the followers a lookup finds are dialed at most (fewer
    /// when followers are connected already). Default: 3.
    pub fn discovery_dials(mut self, peers: usize) -> Self {
        self.0.discovery_dials = peers;
        self
    }

    /// Least time between two background lookups of one key that has no
    /// connected follower (a `get` looks up at once). Default: 5 minutes.
    pub fn discovery_interval(mut self, interval: Duration) -> Self {
        self.0.discovery_interval = interval;
        self
    }

    /// How many invalid records (a bad signature, malformed bytes, a time
    /// beyond the clock skew) a peer may send per `window` before it is
    /// disconnected and banned: a burst of `count`, refilled steadily over
    /// `window`. Records an honest peer sends in the normal course never
    /// count (stale, duplicate, refused by our validator or size limits
    /// only). Default: 20 per 10 s.
    pub fn invalid_record_budget(mut self, count: u32, window: Duration) -> Self {
        self.0.invalid_record_budget = count;
        self.0.invalid_record_window = window;
        self
    }

    /// What a peer may make us do, in bytes sent or read on its behalf
    /// (answers to its asks, range replies, asks back): an account of
    /// `burst` bytes, refilled at `per_second`. A peer in debt has its
    /// asks answered only once it is back in credit, and the reactions its
    /// gossip or range replies would cause are skipped; honest catch-ups
    /// are served at `per_second`. Both at least 1. Default: 32 MiB,
    /// refilled at 8 MiB/s.
    pub fn peer_work_budget(mut self, burst: usize, per_second: usize) -> Self {
        self.0.peer_work_burst = burst;
        self.0.peer_work_per_second = per_second;
        self
    }

    /// Bytes of work a peer earns for each byte it sends of its own accord
    /// (asks and gossip), up to the burst of
    /// [`peer_work_budget`](Self::peer_work_budget). `0` earns nothing.
    /// Default: 2.
    pub fn work_earned_per_byte(mut self, bytes: u32) -> Self {
        self.0.work_earned_per_byte = bytes;
        self
    }

    /// How long a banned peer's connections are refused. Default: 10 min.
    pub fn ban_duration(mut self, duration: Duration) -> Self {
        self.0.ban_duration = duration;
        self
    }

    /// Most peers banned at once; when full, the ban that ends soonest
    /// makes room. Default: 4,096.
    pub fn max_banned_peers(mut self, peers: usize) -> Self {
        self.0.max_banned_peers = peers;
        self
    }

    /// Most record topics one peer may subscribe to; a peer that goes
    /// beyond is banned. Topics that are not `/pointer/record/<key>` with a
    /// key within `max_key_bytes` are not kept at all. Default: 65,536.
    pub fn max_topics_per_peer(mut self, topics: usize) -> Self {
        self.0.max_topics_per_peer = topics;
        self
    }

    /// Most bytes the subscriptions of all connected peers may take
    /// together (each counted as four times its key plus 256 bytes, what
    /// one costs in resident memory); past it, the peer holding the most is
    /// banned.
    /// Raise it for nodes that share very many keys with many peers.
    /// Default: 32 MiB.
    pub fn max_subscription_bytes(mut self, bytes: usize) -> Self {
        self.0.max_subscription_bytes = bytes;
        self
    }

    /// Spread the keys over `count` shard topics,
    /// `/pointer/shard/<count>/<index>` (the sharded topics extension,
    /// spec §17), instead of a topic per key. A node following a million
    /// keys then joins at most `count` topics, its hello to each peer stays
    /// small, and catch-up starts as soon as a connection is up. The price:
    /// a node relays (verifies and forwards, without storing) the records
    /// of every key in the shards it joins, not only of the keys it
    /// follows. A key's own topic is still joined while a connected peer
    /// follows it there, so nodes without the extension interoperate.
    /// Every node of a network should use the same count; shards of
    /// another count are not recognised. 0 (the default) keeps a topic per
    /// key, the seed's wire; at most [`MAX_TOPIC_SHARDS`].
    pub fn topic_shards(mut self, count: u16) -> Self {
        self.0.topic_shards = count;
        self
    }

    /// A node that keeps a topic per key (`topic_shards` 0) moves to
    /// `count` shard topics once it follows `after_keys` keys, and stays
    /// on them until it restarts. Below that a topic per key costs little
    /// and reaches every peer; past it gossipsub's work grows with the
    /// topics (a heartbeat walks every mesh, and two nodes that share
    /// 50,000 topics queue more GRAFTs than gossipsub's per-peer queue of
    /// 20,000 holds). It keeps the key topics that connected peers
    /// without shards are on, so small nodes and peers that speak only
    /// the seed's wire are still served. Nodes that move should agree on
    /// `count`. `after_keys` 0 never moves, and neither does a node whose
    /// largest record would not fit a shard topic's payload with its key
    /// (`max_value_bytes` + `max_key_bytes` + 3 + the record's overhead
    /// over `max_message_bytes`). Default: after 8,192 keys, to 256
    /// shards.
    pub fn auto_topic_shards(mut self, after_keys: usize, count: u16) -> Self {
        self.0.auto_shards_after = after_keys;
        self.0.auto_shards = count;
        self
    }

    /// Threads the signature checks of one `Answer` are spread over (each
    /// still the `verify_strict` a single check makes, so the outcome is
    /// the same; answers of fewer than 16 records are checked on one
    /// thread). The checks run on the answer's connection task as it is
    /// decoded, so the node's own loop stores one answer while the next is
    /// checked; the threads beyond that task are shared by all connections
    /// (at most `threads - 1` run at once in the node). A
    /// [`Coordinator`](crate::coordinator::Coordinator) driven directly
    /// spreads the checks of answers it is given unchecked over these
    /// threads itself. A fresh node catching up many keys is bound by
    /// these checks. Default: the machine's available parallelism; 1 keeps
    /// each answer's checks on its connection's task alone.
    pub fn verify_threads(mut self, threads: usize) -> Self {
        self.0.verify_threads = threads;
        self
    }

    /// The finished configuration, or why it cannot work: a zero where a
    /// count or an interval must be positive, a duration or size too large
    /// to mean anything (they would overflow timers or buffers), or a
    /// value limit that no record could meet within `max_message_bytes`.
    /// Nothing is clamped silently.
    pub fn build(self) -> Result<Config, ConfigError> {
        check(&self.0)?;
        Ok(self.0)
    }
}

mod limits;

use self::limits::{check, duration_ms};
pub use self::limits::{
    ConfigError, MAX_DURATION, MAX_GOSSIP_RPC_BYTES, MAX_MESSAGE_BYTES, MAX_RECONCILE_RANGES,
    MAX_TOPIC_SHARDS, MAX_VERIFY_THREADS, OPERATE_OVERHEAD,
};

#[cfg(test)]
mod tests;
