//! The sans-IO core of a node: every decision `Behaviour` makes, with no I/O,
//! no clock and no randomness of its own.
//!
//! A [`Coordinator`] takes [`Input`]s (a gossip message, a peer that
//! subscribed, a connection that came up, an answer, a timer) and commands
//! (put, delete, get, …), each with the current time passed in, and queues
//! [`Output`]s (join a topic, publish, the verdict for gossipsub, send an
//! `Ask`, answer one, arm a timer, tell the user). Its randomness comes from
//! a seeded RNG handed to it at construction. The libp2p shell
//! ([`Behaviour`](crate::Behaviour)) executes the outputs; the deterministic
//! simulator (feature `sim`) drives many coordinators over a model network.
//!
//! The coordinator never names a protobuf type: it sees records,
//! [`Request`]s and [`Reply`]s (keys with versions, key ranges with
//! fingerprints), and calls `wire` for the gossip payload
//! bytes.

pub(crate) mod cost;
pub(crate) mod dispatch;
pub(crate) mod graveyard;
pub mod misbehaviour;
pub(crate) mod peer_index;
pub(crate) mod query;
pub(crate) mod refused;
pub mod replica;
pub(crate) mod token_bucket;
pub(crate) mod trickle;

#[cfg(test)]
mod connection_lost_tests;
mod discover;
#[cfg(test)]
mod discover_shard_tests;
#[cfg(test)]
mod discover_tests;
mod fetch;
mod get;
#[cfg(test)]
mod get_tests;
mod gossip;
mod guard;
#[cfg(test)]
mod harness_tests;
#[cfg(test)]
mod pair_tests;
mod reconcile;
mod throttle;
#[cfg(test)]
mod throttle_tests;
mod topics;
#[cfg(test)]
mod topics_tests;
mod upkeep;
#[cfg(test)]
mod upkeep_tests;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::config::Config;
use crate::coordinator::cost::Ledger;
use crate::coordinator::dispatch::Dispatch;
use crate::coordinator::misbehaviour::Penalties;
use crate::coordinator::peer_index::PeerIndex;
use crate::coordinator::query::Queries;
use crate::coordinator::replica::{Refusal, Replica, WriteError};
use crate::coordinator::trickle::Trickle;
use crate::core::accept::{KeyRefused, RejectReason};
use crate::core::record::{Op, Record};
use crate::core::topic::Topic;
use crate::core::validator::{OwnedKeys, Validator};
use crate::event::{Event, GetOutcome, QueryId, Source};
use crate::store::RecordStore;
/// The fetch exchange's messages, as a coordinator takes and gives them.
#[cfg(feature = "coordinator")]
pub use crate::wire::exchange;
use crate::wire::exchange::{Reply, Request, Response};
use crate::wire::failure::OutboundFailure;

use self::fetch::{Fetch, Wanted};
use self::guard::ms;

/// What happened, as the shell (or the simulator) tells it.
#[derive(Debug)]
pub enum Input {
    /// The first connection to `peer` is up.
    Connected {
        /// The peer.
        peer: PeerId,
    },
    /// The last connection to `peer` closed.
    Disconnected {
        /// The peer.
        peer: PeerId,
    },
    /// One of several connections to `peer` closed; others remain. What
    /// was in flight on it may be lost (a relay ending a circuit cuts it
    /// mid-message), so the two reconcile again.
    ConnectionLost {
        /// The peer.
        peer: PeerId,
    },
    /// gossipsub: `peer` subscribed to a record topic.
    PeerSubscribed {
        /// The peer.
        peer: PeerId,
        /// The topic it joined.
        topic: Topic,
    },
    /// gossipsub: `peer` left a record topic.
    PeerUnsubscribed {
        /// The peer.
        peer: PeerId,
        /// The topic it left.
        topic: Topic,
    },
    /// gossipsub: a message on a topic we follow, waiting for our verdict.
    Gossip {
        /// The peer that forwarded it.
        peer: PeerId,
        /// gossipsub's id of the message, for the verdict.
        message: MessageId,
        /// The topic, or `None` for a topic that is not a record topic.
        topic: Option<Topic>,
        /// The payload.
        data: Vec<u8>,
    },
    /// `peer` sent an `Ask`; answer with [`Output::Reply`] `id`.
    Asked {
        /// The asking peer.
        peer: PeerId,
        /// Identifies the exchange, for the reply.
        id: u64,
        /// The keys, in order, each with the version the asker holds, and
        /// the ranges to reconcile.
        request: Request,
    },
    /// The outcome of [`Output::Ask`] `id`: one entry per key answered, in
    /// the order asked (possibly fewer than asked), and the range replies,
    /// or why it failed.
    Answered {
        /// The ask.
        id: u64,
        /// What the answer holds.
        result: Result<Response, OutboundFailure>,
    },
    /// A timer armed with [`Output::SetTimer`] fired.
    Timer(Timer),
    /// A lookup started by [`Output::FindProviders`] found peers that
    /// advertise `topic` (possibly in several parts).
    Providers {
        /// The rendezvous looked up.
        topic: Topic,
        /// The peers found.
        peers: Vec<PeerId>,
    },
    /// The lookup of `topic` is over.
    LookupDone {
        /// The rendezvous looked up.
        topic: Topic,
    },
    /// The lookup of `topic` could not start (the DHT knows no peer yet):
    /// over at once, and not counted as one that found nobody, so its
    /// background lookups do not back off for it.
    LookupSkipped {
        /// The rendezvous not looked up.
        topic: Topic,
    },
}

/// The coordinator's timers. Each is armed by [`Output::SetTimer`]; arming
/// one again replaces its earlier deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// The Trickle firing: republish, anti-entropy, tombstone collection.
    Republish,
    /// Records received since the last flush are to be made durable.
    Flush,
    /// Queued DHT work may start; parked `get`s may be due.
    Discover,
    /// A `get` that had an answer with a record has waited `get_grace`
    /// for its other peers.
    GetGrace,
    /// A peer's account may be back in credit, or its waiting ask expired
    /// (the cost model).
    Throttle,
}

/// Why a record is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publication {
    /// A local write: a failure is reported as
    /// [`Event::PublishFailed`].
    Write,
    /// A republish or a push of a record the network may lack: a failure
    /// is retried by the next republish.
    Republish,
}

/// What the shell is to do.
#[derive(Debug)]
pub enum Output {
    /// Subscribe to the topic.
    Join(Topic),
    /// Unsubscribe from the topic.
    Leave(Topic),
    /// Publish `data`, a record of `key`, on `topic`.
    Publish {
        /// The topic.
        topic: Topic,
        /// The record's key.
        key: String,
        /// The gossip payload.
        data: Vec<u8>,
        /// Why.
        why: Publication,
    },
    /// Report a gossip message's validation result to gossipsub.
    Verdict {
        /// gossipsub's id of the message.
        message: MessageId,
        /// The peer it came from.
        peer: PeerId,
        /// Accept (forward it), Ignore or Reject.
        acceptance: MessageAcceptance,
    },
    /// Send one `Ask` to `peer`; its outcome comes back as
    /// [`Input::Answered`] with the same `id`.
    Ask {
        /// The peer.
        peer: PeerId,
        /// Identifies the ask.
        id: u64,
        /// The keys, in order, with the versions we hold, and the ranges
        /// to reconcile.
        request: Request,
    },
    /// Answer [`Input::Asked`] `id`.
    Reply {
        /// The exchange.
        id: u64,
        /// One entry per key asked, one reply per range.
        reply: Reply,
    },
    /// Fire [`Input::Timer`] `timer` after `after`.
    SetTimer {
        /// The timer.
        timer: Timer,
        /// From now.
        after: Duration,
    },
    /// Close every connection to `peer` and refuse new ones until
    /// `until_ms` (our clock, ms since the Unix epoch).
    Ban {
        /// The peer.
        peer: PeerId,
        /// When the ban ends.
        until_ms: i64,
    },
    /// Advertise in the DHT that we are on `topic`: a key's own topic, or
    /// on shard topics a shard (spec §12).
    Provide(Topic),
    /// Stop advertising `topic`.
    StopProviding(Topic),
    /// Look up the peers that advertise `topic`; the results come back as
    /// [`Input::Providers`], then [`Input::LookupDone`].
    FindProviders(Topic),
    /// Connect to `peer` (a follower a lookup found) unless connected.
    Dial(PeerId),
    /// Tell the user.
    Event(Event),
}

/// One node's decisions; see the [module docs](self).
pub struct Coordinator<S: RecordStore> {
    config: Config,
    signer: SigningKey,
    local_peer: PeerId,
    replica: Replica<S>,
    rng: SmallRng,
    // Ordered sets where iteration produces outputs: a run must replay
    // exactly from its seed.
    subscribed: BTreeSet<String>,
    /// Shard topics in use (0: a topic per key); from `topic_shards`, or
    /// set once by `auto_topic_shards`.
    shards: u16,
    /// With shard topics: the followed keys of each shard we are on.
    shard_keys: BTreeMap<u16, BTreeSet<String>>,
    /// With shard topics: the keys whose own topic we joined too.
    key_topics: BTreeSet<String>,
    /// Connected peers on each key's topic, as gossipsub told us.
    followers: PeerIndex,
    /// Connected peers on each shard topic, by the shard's index.
    shard_peers: PeerIndex,
    /// Connected peers that watch a key from outside its topic.
    watchers: PeerIndex,
    connected: BTreeSet<PeerId>,
    fetches: HashMap<u64, Fetch>,
    dispatch: Dispatch<PeerId, Wanted>,
    /// Catch-up asks (no `get`) waiting or in flight, per peer and key.
    catching_up: fetch::CatchUps,
    queries: Queries,
    /// Whether [`Timer::GetGrace`] is set.
    grace_armed: bool,
    /// Range reconciliations running, by peer (spec §18).
    sessions: BTreeMap<PeerId, reconcile::Session>,
    range_fetches: HashMap<u64, reconcile::RangeFetch>,
    /// Peers reconciled key by key until they disconnect: they do not
    /// speak ranges, or hold far more than we watch.
    per_key_peers: BTreeSet<PeerId>,
    trickle: Trickle,
    /// The round of the last firing that republished.
    republished_round: Option<u64>,
    flush_armed: bool,
    outputs: VecDeque<Output>,
    next_id: u64,
    penalties: Penalties,
    /// What peers' input made us do, by peer (the cost model).
    ledger: Ledger,
    /// Asks from peers in debt, in the order they came.
    deferred: BTreeMap<PeerId, VecDeque<throttle::Deferred>>,
    discover: discover::Discover,
}

impl<S: RecordStore> Coordinator<S> {
    /// A coordinator that signs with `signer`, keeps records in `store`
    /// that `validator` admits, its randomness drawn from `seed`. Every key that holds a value in
    /// `store` is followed at once (a node restarted on its store picks up
    /// where it left off); the first outputs join their topics and arm the
    /// republish timer.
    pub fn new(
        signer: SigningKey,
        store: S,
        config: Config,
        validator: Box<dyn Validator>,
        seed: u64,
    ) -> Self {
        let replica = Replica::new(store, validator, config.limits, config.max_message_bytes)
            .with_author_key_cache(config.author_key_cache)
            .with_refused_cache(config.refused_record_cache)
            .with_collected_delete_memory(config.collected_delete_memory);
        let local_peer = crate::core::record::Author::from(&signer)
            .peer_id()
            .unwrap_or_else(PeerId::random);
        let mut coordinator = Coordinator {
            signer,
            local_peer,
            replica,
            rng: SmallRng::seed_from_u64(seed),
            subscribed: BTreeSet::new(),
            shards: config.topic_shards,
            shard_keys: BTreeMap::new(),
            key_topics: BTreeSet::new(),
            followers: PeerIndex::default(),
            shard_peers: PeerIndex::default(),
            watchers: PeerIndex::default(),
            connected: BTreeSet::new(),
            fetches: HashMap::new(),
            dispatch: Dispatch::new(config.max_outbound_fetch_streams),
            catching_up: fetch::CatchUps::default(),
            queries: Queries::default(),
            grace_armed: false,
            sessions: BTreeMap::new(),
            range_fetches: HashMap::new(),
            per_key_peers: BTreeSet::new(),
            trickle: Trickle::new(config.republish_interval),
            republished_round: None,
            flush_armed: false,
            outputs: VecDeque::new(),
            next_id: 0,
            penalties: Penalties::new(
                config.invalid_record_budget,
                ms(config.invalid_record_window),
                ms(config.ban_duration),
                config.max_banned_peers,
            ),
            ledger: Ledger::new(
                config.peer_work_burst,
                config.peer_work_per_second,
                config.work_earned_per_byte,
            ),
            deferred: BTreeMap::new(),
            discover: discover::Discover::default(),
            config,
        };
        coordinator.follow_stored_values();
        coordinator.arm_republish();
        coordinator
    }

    /// Handles one input at `now_ms` (milliseconds since the Unix epoch).
    pub fn handle(&mut self, input: Input, now_ms: i64) {
        match input {
            Input::Connected { peer } => self.on_connected(peer, now_ms),
            Input::Disconnected { peer } => self.on_disconnected(peer, now_ms),
            Input::ConnectionLost { peer } => self.on_connection_lost(peer),
            Input::PeerSubscribed { peer, topic } => self.on_topic_joined(peer, topic, now_ms),
            Input::PeerUnsubscribed { peer, topic } => self.on_topic_left(peer, topic),
            Input::Gossip {
                peer,
                message,
                topic,
                data,
            } => self.on_gossip(peer, message, topic, &data, now_ms),
            Input::Asked { peer, id, request } => self.on_asked(peer, id, request, now_ms),
            Input::Answered { id, result } => self.on_answered(id, result, now_ms),
            Input::Timer(Timer::Republish) => self.on_republish_timer(now_ms),
            Input::Timer(Timer::Flush) => self.flush_store(),
            Input::Timer(Timer::Discover) => self.on_discover_tick(now_ms),
            Input::Timer(Timer::GetGrace) => self.on_get_grace(now_ms),
            Input::Timer(Timer::Throttle) => self.on_throttle_timer(now_ms),
            Input::Providers { topic, peers } => self.on_providers(topic, peers, now_ms),
            Input::LookupDone { topic } => self.on_lookup_done(topic, now_ms),
            Input::LookupSkipped { topic } => self.on_lookup_skipped(topic, now_ms),
        }
    }

    /// The next output to execute, oldest first.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// Packs the keys waiting for each peer into [`Output::Ask`]s, as many
    /// as each peer has free slots. Call it once the inputs at hand are
    /// handled, so that a burst (a peer's subscriptions, a user following
    /// many keys) goes out in a few full `Ask`s rather than many small ones.
    pub fn pack_asks(&mut self) {
        self.send_waiting();
        self.send_reconciliations();
    }

    /// The peer id records are signed as.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer
    }

    /// The key `"<local peer id>/<name>"`.
    pub fn owned_key(&self, name: &str) -> String {
        OwnedKeys::key(&self.local_peer, name)
    }

    /// Sets `key` to `value`: signs, stores, follows and publishes.
    pub fn put(&mut self, key: &str, value: &str, now_ms: i64) -> Result<Record, WriteError> {
        self.write(key, Op::Mut, value, now_ms)
    }

    /// Deletes `key`: stores and publishes a tombstone, then leaves the topic.
    pub fn delete(&mut self, key: &str, now_ms: i64) -> Result<Record, WriteError> {
        self.write(key, Op::Del, "", now_ms)
    }

    /// Stores a record signed elsewhere through the accept path, then
    /// follows and publishes it. Refused records change nothing.
    pub fn insert(&mut self, record: Record, now_ms: i64) -> Result<(), Refusal> {
        let replaced = self.replica.get(record.key()).map(Cow::into_owned);
        self.replica.receive(record.clone(), now_ms)?;
        self.flush_store();
        self.after_local_change(record, replaced.as_ref());
        Ok(())
    }

    /// Finds the value of `key`: from the store when followed and held,
    /// otherwise follows it and asks every connected follower (or up to
    /// `fetch_fanout` connected peers when none is known). With discovery
    /// on and no follower connected, it also looks the key's followers up
    /// and asks those that connect before `fetch_timeout`. The answer
    /// comes as [`Event::GetFinished`].
    pub fn get(&mut self, key: &str, now_ms: i64) -> QueryId {
        let id = QueryId(self.next_id());
        if crate::core::accept::check_sizes(key, "", &self.config.limits).is_err() {
            // No node stores a key over the limit: nothing to follow or ask.
            self.finish_get(id, key.to_owned(), GetOutcome::NotFound);
            return id;
        }
        if let (true, Some(record)) = (self.subscribed.contains(key), self.value_record(key)) {
            self.finish_get(id, key.to_owned(), GetOutcome::Found(record));
            return id;
        }
        self.join(key);
        self.discover_for_get(id, key, now_ms);
        let asked = self.ask_round(key, Some(id), &[]);
        if asked.is_empty() {
            // Nobody to ask (yet): unless it waits for a lookup, what we
            // hold is all there is (`NotFound` when nothing).
            let done = crate::coordinator::query::Finished {
                key: key.to_owned(),
                answered: true,
                asked: Vec::new(),
            };
            if let Some(done) = self.park_for_discovery(id, done) {
                let outcome = self.local_outcome(&done.key, true);
                self.finish_get(id, done.key, outcome);
            }
        } else {
            self.queries.start(id, key.to_owned(), asked);
        }
        id
    }

    /// Follows `key`: joins its topic and catches up from peers. Returns
    /// `false` if it was already followed.
    pub fn subscribe(&mut self, key: &str) -> Result<bool, RejectReason> {
        crate::core::accept::check_sizes(key, "", &self.config.limits)?;
        if !self.join(key) {
            return Ok(false);
        }
        self.ask_peers(key, None);
        Ok(true)
    }

    /// Follows every key of `keys` as [`Self::subscribe`] does each, all
    /// checked first: if one breaks a size limit it is returned and none
    /// is followed. Their catch-up asks go out packed together (up to
    /// `max_keys_per_ask` keys an `Ask`). Returns how many keys were not
    /// followed before.
    pub fn subscribe_many<K: AsRef<str>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize, KeyRefused> {
        let keys: Vec<K> = keys.into_iter().collect();
        for key in &keys {
            let key = key.as_ref();
            crate::core::accept::check_sizes(key, "", &self.config.limits).map_err(|reason| {
                KeyRefused {
                    key: key.to_owned(),
                    reason,
                }
            })?;
        }
        let mut new = 0;
        for key in &keys {
            if self.join(key.as_ref()) {
                self.ask_peers(key.as_ref(), None);
                new += 1;
            }
        }
        Ok(new)
    }

    /// Stops following `key`; its record stays and is still served.
    /// Returns `false` if it was not followed.
    pub fn unsubscribe(&mut self, key: &str) -> bool {
        if !self.subscribed.remove(key) {
            return false;
        }
        self.leave_topics(key);
        self.discover_left(key);
        true
    }

    /// Whether `key` is followed.
    pub fn is_subscribed(&self, key: &str) -> bool {
        self.subscribed.contains(key)
    }

    /// The followed keys.
    pub fn subscribed(&self) -> impl Iterator<Item = &str> {
        self.subscribed.iter().map(String::as_str)
    }

    /// Shard topics in use: `topic_shards`, or the count
    /// `auto_topic_shards` moved to; 0 while a topic per key.
    pub fn topic_shards(&self) -> u16 {
        self.shards
    }

    /// How many keys are followed.
    pub fn followed_count(&self) -> usize {
        self.subscribed.len()
    }

    /// How many records held carry a value, and how many are tombstones.
    /// Cheap, but not free: it counts the changes since the reconciliation
    /// index last merged them (and reads the whole store after writes
    /// through [`Coordinator::store_mut`]).
    pub fn held(&mut self) -> (usize, usize) {
        let tombstones = self.replica.tombstone_count();
        let all = self.replica.len();
        (all.saturating_sub(tombstones), tombstones)
    }

    /// Connected peers known to follow `key` (with shard topics: or to be
    /// on its shard).
    pub fn peers_following(&self, key: &str) -> Vec<PeerId> {
        self.followers_of(key)
    }

    /// The record held for `key`: a value or a tombstone.
    pub fn record(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.replica.get(key)
    }

    /// The value of `key`, if it has one (not deleted).
    pub fn value(&self, key: &str) -> Option<String> {
        self.value_record(key).map(|r| r.value().to_owned())
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.replica.store()
    }

    /// The store, mutably. Records written through it skip every check and
    /// are not published.
    pub fn store_mut(&mut self) -> &mut S {
        self.replica.store_mut()
    }

    /// Makes what was received durable and gives the store back (a node
    /// that stops, or a simulated crash that keeps its disk).
    pub fn into_store(mut self) -> S {
        self.flush_store();
        self.replica.into_store()
    }

    /// The configuration in force (its validator moved into the replica).
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether received records wait for a flush.
    pub fn needs_flush(&self) -> bool {
        self.flush_armed
    }

    /// Makes received records durable now.
    pub fn flush_store(&mut self) {
        self.flush_armed = false;
        if let Err(error) = self.replica.flush() {
            tracing::error!(%error, "could not make received records durable");
        }
    }

    fn write(&mut self, key: &str, op: Op, value: &str, now_ms: i64) -> Result<Record, WriteError> {
        let replaced = self.replica.get(key).map(Cow::into_owned);
        let record = self.replica.write(key, op, value, now_ms, &self.signer)?;
        self.after_local_change(record.clone(), replaced.as_ref());
        Ok(record)
    }

    /// A local write or insert was stored: follow, catch up, publish, tell
    /// the peers that watch the key, tell the user.
    fn after_local_change(&mut self, record: Record, replaced: Option<&Record>) {
        let key = record.key().to_owned();
        // A newly followed key is caught up like any other: a peer may hold
        // a record dated ahead of our clock that still beats this write.
        if record.op() == Op::Mut && self.join(&key) {
            self.ask_peers(&key, None);
        }
        self.publish_record(&record, 0, Publication::Write);
        self.changed(&record, replaced, None);
        self.applied(record, Source::Local);
    }

    fn value_record(&self, key: &str) -> Option<Record> {
        self.replica
            .get(key)
            .filter(|r| !r.is_tombstone())
            .map(Cow::into_owned)
    }

    fn is_tombstoned(&self, key: &str) -> bool {
        self.replica.get(key).is_some_and(|r| r.is_tombstone())
    }

    /// Keys we want to hear about: followed ones, and deleted ones (a node
    /// that left a key's topic on a delete still learns of a later write).
    fn watches(&self, key: &str) -> bool {
        self.subscribed.contains(key) || self.is_tombstoned(key)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn emit(&mut self, event: Event) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Sets `timer` to fire `after_ms` from now (at once if negative).
    fn set_timer_ms(&mut self, timer: Timer, after_ms: i64) {
        let after = std::time::Duration::from_millis(u64::try_from(after_ms).unwrap_or(0));
        self.outputs.push_back(Output::SetTimer { timer, after });
    }

    /// Joins the key's topic (no catch-up). Returns whether it is new.
    fn join(&mut self, key: &str) -> bool {
        if !self.subscribed.insert(key.to_owned()) {
            return false;
        }
        self.join_topics(key);
        self.discover_joined(key);
        self.shard_when_due();
        true
    }

    /// A node restarted on a persistent store follows again every key it
    /// holds a value for. Tombstoned keys stay unfollowed, as after the
    /// delete, and are still watched.
    fn follow_stored_values(&mut self) {
        let mut keys: Vec<String> = self
            .replica
            .store()
            .records()
            .filter(|r| !r.is_tombstone())
            .map(|r| r.key().to_owned())
            .collect();
        keys.sort_unstable();
        for key in keys {
            self.join(&key);
        }
    }
}
