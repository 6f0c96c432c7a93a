//! [`ConfigBuilder`]: every knob of a [`Config`], with its default and
//! why it is there.

use std::time::Duration;

use super::limits::{check, duration_ms};
use super::{Config, ConfigError};

/// Builder of a [`Config`].
#[derive(Debug)]
pub struct ConfigBuilder(pub(super) Config);

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
    /// [`Discovery`](crate::behaviour::discovery::Discovery) is attached. A `get`'s
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

    /// How long a connection that the DHT dialed for its own queries (a
    /// lookup's or an advertisement's walk) stays open; after it, the
    /// connection is closed unless the peer is the only connected one on a
    /// key or shard we follow. Without it, gossipsub keeps every such
    /// connection to a peer that follows one of our keys, and a network of
    /// nodes that follow the same keys ends up fully connected, each write
    /// crossing many more links than the graph the users dialed. Peers
    /// Pointer's discovery dials, the swarm's user dials, and inbound
    /// connections are never closed by this. `None` keeps them all.
    /// Default: 30 s.
    pub fn dht_connection_linger(mut self, linger: Option<Duration>) -> Self {
        self.0.dht_connection_linger = linger;
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
    /// key, the seed's wire; at most [`MAX_TOPIC_SHARDS`](super::MAX_TOPIC_SHARDS).
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
    /// checks the records of an answer one by one as it judges them
    /// ([`Record::verify_each`](crate::Record::verify_each) spreads them
    /// over threads beforehand). A fresh node catching up many keys is bound by
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
