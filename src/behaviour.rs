//! [`Behaviour`]: the `NetworkBehaviour` shell around a [`Coordinator`]. It
//! joins gossipsub, the fetch protocol's handler and a
//! [`Discovery`], turns what they report
//! into [`Input`]s, reads the clock once per `poll`, and executes the
//! coordinator's [`Output`]s. It makes no decision of its own.

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Weak};
use std::task::{Context, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use either::Either;
use futures::channel::oneshot;
use futures::FutureExt;
use futures_timer::Delay;

use self::pacer::{Pacer, TopicChange};
use libp2p::gossipsub::{
    self, IdentTopic, IdentityTransform, MaxCountSubscriptionFilter, MessageAcceptance, MessageId,
    PublishError, TopicHash,
};
use libp2p::identity::Keypair;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{
    CloseConnection, ConnectionDenied, ConnectionId, NotifyHandler, THandlerInEvent, ToSwarm,
};
use libp2p::PeerId;
use smallvec::SmallVec;

use crate::behaviour::discovery::{Discovery, NoDiscovery};
use crate::behaviour::handler::{FetchLimits, Handler, HandlerIn, HandlerOut};
use crate::config::Config;
use crate::coordinator::misbehaviour::Banned;
use crate::coordinator::replica::{Refusal, WriteError};
use crate::coordinator::{Coordinator, Input, Output, Publication, Timer};
use crate::core::accept::{KeyRefused, RejectReason};
use crate::core::record::{signing_key, Record};
use crate::core::topic::Topic;
use crate::core::validator::{OwnedKeys, Validator};
use crate::event::{Event, QueryId};
use crate::store::{MemoryStore, RecordStore};
use crate::wire::failure::OutboundFailure;

mod dht_links;
pub mod discovery;
mod gossip_config;
pub mod handler;
mod network;
mod pacer;
mod parallel_verify;
mod probe;
pub mod protocol;
mod spare_links;

use self::dht_links::DhtLinks;
use self::gossip_config::{build_gossipsub, RecordTopics};
use self::probe::Probe;
use self::spare_links::SpareLinks;

/// Bytes an `Answer` adds around its `Operate`: field tags, the embedded
/// length varint (at most 5 bytes) and the status.
const ANSWER_OVERHEAD: usize = 16;

type Gossip = gossipsub::Behaviour<IdentityTransform, MaxCountSubscriptionFilter<RecordTopics>>;

/// What the joined per-connection handler takes from the behaviour; named
/// without `Self` so the event queue does not tie `S` to `'static`.
type HandlerInEvent<D> = Either<Either<THandlerInEvent<Gossip>, HandlerIn>, THandlerInEvent<D>>;

/// Why a [`Behaviour`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Records are signed with Ed25519; the swarm's identity is another kind.
    #[error("the identity keypair must be Ed25519")]
    NotEd25519,
    /// The internal gossipsub refused its configuration.
    #[error("invalid gossipsub configuration: {0}")]
    Gossipsub(String),
}

/// The key's own topic, `/pointer/record/<key>`, which carries its records
/// (with [`ConfigBuilder::topic_shards`](crate::ConfigBuilder::topic_shards),
/// its shard topic does too: [`Topic::shard_of`]).
pub fn topic(key: &str) -> IdentTopic {
    IdentTopic::new(Topic::Key(key.to_owned()).name())
}

/// The record topic a gossipsub topic is, for a node on `shards` shards.
fn parse_topic(topic: &TopicHash, shards: u16) -> Option<Topic> {
    Topic::parse(topic.as_str(), shards)
}

/// The coordinator's timers, one of each kind.
#[derive(Default)]
struct Timers {
    republish: Option<Delay>,
    flush: Option<Delay>,
    discover: Option<Delay>,
    get_grace: Option<Delay>,
    throttle: Option<Delay>,
}

impl Timers {
    fn slot(&mut self, timer: Timer) -> &mut Option<Delay> {
        match timer {
            Timer::Republish => &mut self.republish,
            Timer::Flush => &mut self.flush,
            Timer::Discover => &mut self.discover,
            Timer::GetGrace => &mut self.get_grace,
            Timer::Throttle => &mut self.throttle,
        }
    }

    /// The first timer that fired; it is disarmed.
    fn poll_fired(&mut self, cx: &mut Context<'_>) -> Option<Timer> {
        [
            Timer::Republish,
            Timer::Flush,
            Timer::Discover,
            Timer::GetGrace,
            Timer::Throttle,
        ]
        .into_iter()
        .find(|timer| {
            let slot = self.slot(*timer);
            let fired = slot.as_mut().is_some_and(|d| d.poll_unpin(cx).is_ready());
            if fired {
                *slot = None;
            }
            fired
        })
    }
}

/// A decentralized key-value store inside a libp2p swarm.
///
/// See the [crate documentation](crate) for an example. `D` finds the
/// followers of a key beyond our connections ([`crate::behaviour::discovery`]);
/// without one a node learns from its connected peers only.
pub struct Behaviour<S: RecordStore = MemoryStore, D: Discovery = NoDiscovery> {
    gossipsub: Gossip,
    discovery: D,
    core: Coordinator<S>,
    connections: HashMap<PeerId, SmallVec<[ConnectionId; 2]>>,
    /// The connection each `Ask` in flight went out on.
    asks: HashMap<u64, (PeerId, ConnectionId)>,
    /// Inbound asks waiting for the coordinator's reply.
    replies: HashMap<u64, oneshot::Sender<crate::wire::exchange::Reply>>,
    next_reply: u64,
    /// What the swarm told us outside `poll`, handled in the next `poll`
    /// with the clock read there.
    inputs: VecDeque<Input>,
    timers: Timers,
    /// Joins and leaves waiting for room in gossipsub's queues.
    topic_changes: Pacer<TopicChange>,
    /// Republishes waiting for room in gossipsub's queues.
    republishes: Pacer<(Topic, String, Vec<u8>)>,
    events: VecDeque<ToSwarm<Event, HandlerInEvent<D>>>,
    waker: Option<Waker>,
    /// Inbound fetch streams served now, over every connection.
    inbound_streams: Arc<AtomicUsize>,
    /// Each peer's inbound streams, shared by its connections' handlers;
    /// an entry lives while one of them does.
    peer_streams: HashMap<PeerId, Weak<AtomicUsize>>,
    /// Threads the fetch handlers have borrowed for signature checks, shared
    /// so that all connections together borrow at most `verify_threads - 1`.
    verify_threads_lent: Arc<AtomicUsize>,
    /// Connections the DHT dialed, closed once they have lingered.
    dht_links: DhtLinks,
    /// Connections whose gossipsub handler may not notice queued messages.
    spare_links: SpareLinks,
    /// Metrics (feature `metrics`), or hooks that do nothing.
    probe: Probe,
}

impl<S: RecordStore> Behaviour<S> {
    /// A `Behaviour` that signs with the swarm's Ed25519 `keypair` and keeps
    /// records in `store`, under the default validator [`OwnedKeys`] (a
    /// key `"<PeerId>/<name>"` is written only by that peer), with no
    /// discovery: it learns from the peers it is connected to. Every key
    /// that holds a value in `store` is followed at once (a node restarted
    /// on its database picks up where it left off).
    pub fn new(keypair: &Keypair, store: S, config: Config) -> Result<Self, BuildError> {
        Self::with_validator(keypair, store, config, OwnedKeys)
    }

    /// [`Behaviour::new`] with another rule for who may write which key:
    /// [`Open`](crate::Open), an [`AllowList`](crate::AllowList), or a
    /// [`Validator`] of your own.
    pub fn with_validator(
        keypair: &Keypair,
        store: S,
        config: Config,
        validator: impl Validator,
    ) -> Result<Self, BuildError> {
        Self::with_validator_and_discovery(
            keypair,
            store,
            config,
            validator,
            NoDiscovery::default(),
        )
    }
}

impl<S: RecordStore, D: Discovery> Behaviour<S, D> {
    /// [`Behaviour::new`], finding followers beyond its connections through
    /// `discovery` (for example [`discovery::Kad`](crate::behaviour::discovery)).
    pub fn with_discovery(
        keypair: &Keypair,
        store: S,
        config: Config,
        discovery: D,
    ) -> Result<Self, BuildError> {
        Self::with_validator_and_discovery(keypair, store, config, OwnedKeys, discovery)
    }

    /// [`Behaviour::with_validator`] and [`Behaviour::with_discovery`] at
    /// once.
    pub fn with_validator_and_discovery(
        keypair: &Keypair,
        store: S,
        config: Config,
        validator: impl Validator,
        discovery: D,
    ) -> Result<Self, BuildError> {
        let signer = signing_key(keypair).ok_or(BuildError::NotEd25519)?;
        let gossipsub = build_gossipsub(&config)?;
        let validator: Box<dyn Validator> = Box::new(validator);
        // Joins and leaves are never dropped; republishes past a minute's
        // worth are (the next firing republishes them).
        let topic_changes = Pacer::new(config.topic_changes_per_second, usize::MAX);
        let per_second = config.republish_per_second;
        let republishes = Pacer::new(per_second, usize::try_from(per_second).unwrap_or(0) * 60);
        let dht_links = DhtLinks::new(config.dht_connection_linger);
        let mut core = Coordinator::new(signer, store, config, validator, rand::random());
        if discovery.is_enabled() {
            core.enable_discovery();
        }
        let mut pointer = Behaviour {
            gossipsub,
            discovery,
            core,
            connections: HashMap::new(),
            asks: HashMap::new(),
            replies: HashMap::new(),
            next_reply: 0,
            inputs: VecDeque::new(),
            timers: Timers::default(),
            topic_changes,
            republishes,
            events: VecDeque::new(),
            waker: None,
            inbound_streams: Arc::default(),
            peer_streams: HashMap::new(),
            verify_threads_lent: Arc::default(),
            dht_links,
            spare_links: SpareLinks::default(),
            probe: Probe::default(),
        };
        pointer.execute();
        Ok(pointer)
    }

    /// Records this behaviour's metrics in `metrics`: records stored and
    /// rejected, gossip verdicts, asks, `get` and catch-up latencies, what
    /// is held, store flushes. See [`crate::metrics`] (feature `metrics`).
    #[cfg(feature = "metrics")]
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.probe.enable(metrics);
        self
    }

    /// The peer id records are signed as.
    pub fn local_peer_id(&self) -> PeerId {
        self.core.local_peer_id()
    }

    /// The discovery.
    pub fn discovery(&self) -> &D {
        &self.discovery
    }

    /// The discovery, mutably (for [`discovery::Kad`](crate::behaviour::discovery):
    /// add addresses, bootstrap, run your own queries).
    pub fn discovery_mut(&mut self) -> &mut D {
        &mut self.discovery
    }

    /// The key `"<local peer id>/<name>"`, which only this node may write
    /// under the default [`OwnedKeys`](crate::OwnedKeys) validator.
    pub fn owned_key(&self, name: &str) -> String {
        self.core.owned_key(name)
    }

    /// Sets `key` to `value` network-wide: signs, stores, subscribes to the
    /// key's topic and publishes. Returns the stored record.
    pub fn put(&mut self, key: &str, value: &str) -> Result<Record, WriteError> {
        let result = self.core.put(key, value, now_ms());
        self.execute();
        result
    }

    /// Deletes `key` network-wide: stores and publishes a tombstone, then
    /// leaves the key's topic. Returns the tombstone. Peers that followed
    /// the key still learn of a later write (see `docs/spec.md`).
    pub fn delete(&mut self, key: &str) -> Result<Record, WriteError> {
        let result = self.core.delete(key, now_ms());
        self.execute();
        result
    }

    /// Stores a record signed elsewhere (another key of yours, a relay)
    /// through the same accept path as the network's records, then follows
    /// and publishes it. Refused records change nothing; an accepted one is
    /// durable when this returns.
    pub fn insert(&mut self, record: Record) -> Result<(), Refusal> {
        let result = self.core.insert(record, now_ms());
        self.execute();
        result
    }

    /// Connected peers known to follow `key` (gossipsub told us).
    pub fn peers_following(&self, key: &str) -> Vec<PeerId> {
        self.core.peers_following(key)
    }

    /// Finds the value of `key`. Answers from the store when subscribed and
    /// holding a value; otherwise subscribes and asks up to `fetch_fanout`
    /// peers. The answer comes as [`Event::GetFinished`].
    pub fn get(&mut self, key: &str) -> QueryId {
        let id = self.core.get(key, now_ms());
        // Before `execute`: a `get` answered from the store has finished.
        self.probe.get_started(id);
        self.execute();
        id
    }

    /// Follows `key`: joins its topic and catches up from peers. Returns
    /// `false` if it was already followed.
    pub fn subscribe(&mut self, key: &str) -> Result<bool, RejectReason> {
        let result = self.core.subscribe(key);
        if result == Ok(true) {
            let core = &self.core;
            self.probe.subscribed(key, || core.record(key).is_none());
        }
        self.execute();
        result
    }

    /// Follows every key of `keys`, as [`Self::subscribe`] does each, in
    /// one call: the keys are all checked first (a key over
    /// `max_key_bytes` is returned and none is followed), their catch-up
    /// asks are packed together, and their topics are joined at the pace
    /// gossipsub's queues take. Returns how many keys were not followed
    /// before.
    pub fn subscribe_many<K: AsRef<str>>(
        &mut self,
        keys: impl IntoIterator<Item = K>,
    ) -> Result<usize, KeyRefused> {
        let keys: Vec<K> = keys.into_iter().collect();
        let fresh: Vec<&str> = keys
            .iter()
            .map(AsRef::as_ref)
            .filter(|k| !self.core.is_subscribed(k))
            .collect();
        let new = self.core.subscribe_many(&fresh)?;
        let core = &self.core;
        for key in fresh {
            self.probe.subscribed(key, || core.record(key).is_none());
        }
        self.execute();
        Ok(new)
    }

    /// Stops following `key`. Its record stays in the store and is still
    /// served to peers that ask. Returns `false` if it was not followed.
    pub fn unsubscribe(&mut self, key: &str) -> bool {
        let left = self.core.unsubscribe(key);
        self.probe.unsubscribed(key);
        self.execute();
        left
    }

    /// Whether `key` is followed.
    pub fn is_subscribed(&self, key: &str) -> bool {
        self.core.is_subscribed(key)
    }

    /// Shard topics in use: [`Config::topic_shards`], or the count the
    /// node moved to past [`Config::auto_topic_shards`]; 0 while it keeps
    /// a topic per key.
    pub fn topic_shards(&self) -> u16 {
        self.core.topic_shards()
    }

    /// The followed keys.
    pub fn subscribed(&self) -> impl Iterator<Item = &str> {
        self.core.subscribed()
    }

    /// The record stored for `key`: a value or a tombstone.
    pub fn record(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.core.record(key)
    }

    /// The value of `key`, if it has one (not deleted).
    pub fn value(&self, key: &str) -> Option<String> {
        self.core.value(key)
    }

    /// All stored records, tombstones included.
    pub fn records(&self) -> S::RecordsIter<'_> {
        self.core.store().records()
    }

    /// The store.
    pub fn store(&self) -> &S {
        self.core.store()
    }

    /// The store, mutably. Records written through it skip every check and
    /// are not published.
    pub fn store_mut(&mut self) -> &mut S {
        self.probe.changed();
        self.core.store_mut()
    }

    /// The configuration in force (its validator moved into the replica).
    pub fn config(&self) -> &Config {
        self.core.config()
    }

    /// Executes what the coordinator decided, and wakes `poll` for what
    /// it queued.
    /// Hands gossipsub the joins, leaves and republishes its queues can
    /// take now.
    fn pace(&mut self, cx: &mut Context<'_>, now: i64) {
        self.change_topics(cx, now);
        for (topic, key, data) in self.republishes.poll_ready(cx, now) {
            self.publish(topic, key, data, Publication::Republish);
        }
    }

    fn change_topics(&mut self, cx: &mut Context<'_>, now: i64) {
        for change in self.topic_changes.poll_ready(cx, now) {
            match change {
                TopicChange::Join(topic) => {
                    let name = topic.name();
                    if let Err(e) = self.gossipsub.subscribe(&IdentTopic::new(&name)) {
                        tracing::warn!(topic = %name, "gossipsub refused the subscription: {e}");
                    }
                }
                TopicChange::Leave(topic) => {
                    self.gossipsub.unsubscribe(&IdentTopic::new(topic.name()));
                }
            }
        }
    }

    fn execute(&mut self) {
        let idle_pacers = (self.topic_changes.is_empty(), self.republishes.is_empty());
        while let Some(output) = self.core.poll_output() {
            self.execute_one(output);
        }
        // Joins and republishes wait in pacers that only `poll` drains: a
        // pacer that just got its first item (a `subscribe` from outside
        // `poll`, say) needs a poll soon, not at the next event. One that
        // already held items has its refill timer armed.
        let woke_pacer = (idle_pacers.0 && !self.topic_changes.is_empty())
            || (idle_pacers.1 && !self.republishes.is_empty());
        if !self.events.is_empty() || !self.inputs.is_empty() || woke_pacer {
            if let Some(waker) = self.waker.take() {
                waker.wake();
            }
        }
    }

    fn execute_one(&mut self, output: Output) {
        self.probe.output(&output);
        match output {
            // Never full: nothing is dropped.
            Output::Join(topic) => drop(self.topic_changes.push(TopicChange::Join(topic))),
            Output::Leave(topic) => drop(self.topic_changes.push(TopicChange::Leave(topic))),
            Output::Publish {
                topic,
                key,
                data,
                why: Publication::Republish,
            } => {
                if let Some((_, key, _)) = self.republishes.push((topic, key, data)) {
                    tracing::debug!(%key, "republish dropped: more waiting than a minute's worth");
                }
            }
            Output::Publish {
                topic,
                key,
                data,
                why,
            } => self.publish(topic, key, data, why),
            Output::Verdict {
                message,
                peer,
                acceptance,
            } => {
                let forwarded = acceptance == MessageAcceptance::Accept;
                self.gossipsub
                    .report_message_validation_result(&message, &peer, acceptance);
                if forwarded {
                    self.wake_spare_links();
                }
            }
            Output::Ask { peer, id, request } => self.send_ask(peer, id, request),
            Output::Reply { id, reply } => {
                // The stream may have been closed meanwhile; nothing to do.
                if let Some(sender) = self.replies.remove(&id) {
                    let _ = sender.send(reply);
                }
            }
            Output::SetTimer { timer, after } => {
                *self.timers.slot(timer) = Some(Delay::new(after));
            }
            Output::Ban { peer, .. } => self.events.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::All,
            }),
            Output::Provide(at) => self.discovery.provide(&at.name()),
            Output::StopProviding(at) => self.discovery.stop_providing(&at.name()),
            Output::FindProviders(at) => {
                if self.discovery.can_look_up() {
                    self.discovery.find_providers(&at.name())
                } else {
                    self.inputs.push_back(Input::LookupSkipped { topic: at });
                }
            }
            Output::Dial(peer) => {
                self.dht_links.wanted(peer);
                self.events.push_back(ToSwarm::Dial {
                    opts: DialOpts::peer_id(peer)
                        .condition(PeerCondition::DisconnectedAndNotDialing)
                        .build(),
                })
            }
            Output::Event(event) => self.events.push_back(ToSwarm::GenerateEvent(event)),
        }
    }

    /// A banned peer's connections are refused for the whole swarm.
    fn refuse_banned(&self, peer: PeerId) -> Result<(), ConnectionDenied> {
        if self.core.is_banned(&peer, now_ms()) {
            return Err(ConnectionDenied::new(Banned));
        }
        Ok(())
    }

    /// Makes the tasks of spare connections poll their gossipsub handler,
    /// which may otherwise leave what was just queued unsent (see
    /// [`SpareLinks`]).
    fn wake_spare_links(&mut self) {
        for (peer_id, connection) in self.spare_links.all() {
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id,
                handler: NotifyHandler::One(connection),
                event: Either::Left(Either::Right(HandlerIn::Wake)),
            });
        }
    }

    /// `Duplicate` means the network already has these exact bytes, so it
    /// is success.
    /// With shard topics, a write is reported failed only if its shard
    /// publish fails: the key's own topic is a courtesy to peers without
    /// the extension.
    fn publish(&mut self, topic: Topic, key: String, data: Vec<u8>, why: Publication) {
        let reported = why == Publication::Write
            && (self.core.topic_shards() == 0 || matches!(topic, Topic::Shard { .. }));
        match self.gossipsub.publish(IdentTopic::new(topic.name()), data) {
            Ok(_) => self.wake_spare_links(),
            Err(PublishError::Duplicate) => {}
            Err(error) => match reported {
                true => {
                    let event = Event::PublishFailed { key, error };
                    self.events.push_back(ToSwarm::GenerateEvent(event));
                }
                false => {
                    tracing::debug!(%key, "republish not sent: {error}");
                }
            },
        }
    }

    fn send_ask(&mut self, peer: PeerId, id: u64, request: crate::wire::exchange::Request) {
        let Some(&connection) = self.connections.get(&peer).and_then(|c| c.first()) else {
            let result = Err(OutboundFailure::ConnectionClosed);
            self.inputs.push_back(Input::Answered { id, result });
            return;
        };
        self.asks.insert(id, (peer, connection));
        self.events.push_back(ToSwarm::NotifyHandler {
            peer_id: peer,
            handler: NotifyHandler::One(connection),
            event: Either::Left(Either::Right(HandlerIn::Ask { id, request })),
        });
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event, now: i64) {
        // Shard topics of the count we use or may move to are recognised.
        let shards = self.core.config().shard_topic_count();
        let input = match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => gossip_input(propagation_source, message_id, message, shards),
            gossipsub::Event::Subscribed { peer_id, topic } => match parse_topic(&topic, shards) {
                Some(topic) => Input::PeerSubscribed {
                    peer: peer_id,
                    topic,
                },
                None => return,
            },
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                match parse_topic(&topic, shards) {
                    Some(topic) => Input::PeerUnsubscribed {
                        peer: peer_id,
                        topic,
                    },
                    None => return,
                }
            }
            _ => return,
        };
        self.core.handle(input, now);
    }

    /// Connections are handed to the coordinator at once, not at the next
    /// `poll`: a command issued right after a connection comes up must
    /// already see the peer.
    fn on_connection_established(&mut self, peer: PeerId, connection: ConnectionId) {
        let list = self.connections.entry(peer).or_default();
        self.spare_links.opened(peer, connection, list);
        list.push(connection);
        if list.len() == 1 {
            self.core.handle(Input::Connected { peer }, now_ms());
            self.execute();
        }
    }

    /// The count of `peer`'s inbound streams its handlers share. Entries
    /// whose handlers are all gone (connections closed, or denied by
    /// another behaviour before they were established) are dropped as the
    /// map grows past the peers connected.
    fn peer_streams(&mut self, peer: PeerId) -> Arc<AtomicUsize> {
        if let Some(count) = self.peer_streams.get(&peer).and_then(Weak::upgrade) {
            return count;
        }
        if self.peer_streams.len() > 2 * self.connections.len() + 64 {
            self.peer_streams
                .retain(|_, count| count.strong_count() > 0);
        }
        let count = Arc::new(AtomicUsize::new(0));
        self.peer_streams.insert(peer, Arc::downgrade(&count));
        count
    }

    fn on_connection_closed(&mut self, peer: PeerId, connection: ConnectionId) {
        let now = now_ms();
        if let Some(list) = self.connections.get_mut(&peer) {
            list.retain(|c| *c != connection);
            self.spare_links.closed(peer, connection, list);
            if list.is_empty() {
                self.connections.remove(&peer);
                self.core.handle(Input::Disconnected { peer }, now);
            } else {
                self.core.handle(Input::ConnectionLost { peer }, now);
            }
        }
        let lost: Vec<u64> = self
            .asks
            .iter()
            .filter(|(_, (_, c))| *c == connection)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.asks.remove(&id);
            let result = Err(OutboundFailure::ConnectionClosed);
            let input = Input::Answered { id, result };
            self.probe.input(&input);
            self.core.handle(input, now);
        }
        self.execute();
    }

    fn on_fetch_event(&mut self, peer: PeerId, event: HandlerOut) {
        match event {
            HandlerOut::InboundAsk { request, reply } => {
                self.next_reply += 1;
                let id = self.next_reply;
                self.replies.insert(id, reply);
                self.inputs.push_back(Input::Asked { peer, id, request });
            }
            HandlerOut::Answered { id, result } => {
                self.asks.remove(&id);
                self.inputs.push_back(Input::Answered { id, result });
            }
            HandlerOut::InboundFailed { error } => {
                self.probe.inbound_failed(&error);
                let event = Event::InboundFetchFailed { peer, error };
                self.events.push_back(ToSwarm::GenerateEvent(event));
            }
        }
    }

    fn new_handler(&mut self, peer: PeerId) -> Handler {
        let peer_inbound = self.peer_streams(peer);
        let config = self.core.config();
        Handler::new(FetchLimits {
            // An Answer wraps the record: tag, length and status on top.
            max_message_size: config.max_message_bytes + ANSWER_OVERHEAD,
            timeout: config.fetch_timeout,
            max_inbound_streams: config.max_inbound_fetch_streams,
            peer_inbound,
            inbound_total: self.inbound_streams.clone(),
            max_inbound_total: config.max_inbound_fetch_streams_total,
            max_outbound_streams: config.max_outbound_fetch_streams,
            verify_threads: config.verify_threads,
            verify_threads_lent: self.verify_threads_lent.clone(),
        })
    }
}

fn gossip_input(peer: PeerId, message: MessageId, data: gossipsub::Message, shards: u16) -> Input {
    Input::Gossip {
        peer,
        message,
        topic: parse_topic(&data.topic, shards),
        data: data.data,
    }
}

impl<S: RecordStore, D: Discovery> Drop for Behaviour<S, D> {
    /// Records received since the last flush are made durable on shutdown.
    fn drop(&mut self) {
        if self.core.needs_flush() {
            let core = &mut self.core;
            self.probe.flush(|| core.flush_store());
        }
    }
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering;

    use super::*;
    use crate::store::MemoryStore;

    fn behaviour() -> Behaviour<MemoryStore> {
        let key = Keypair::generate_ed25519();
        Behaviour::new(&key, MemoryStore::new(), Config::default()).expect("valid config")
    }

    /// The handlers of one peer's connections count its inbound streams
    /// together, so more connections give it no more streams.
    #[test]
    fn a_peers_connections_share_one_count_of_inbound_streams() {
        let mut b = behaviour();
        let (peer, other) = (PeerId::random(), PeerId::random());
        let first = b.peer_streams(peer);
        first.fetch_add(3, Ordering::Relaxed);
        let second = b.peer_streams(peer);
        assert!(Arc::ptr_eq(&first, &second));
        assert_eq!(second.load(Ordering::Relaxed), 3);
        assert!(!Arc::ptr_eq(&first, &b.peer_streams(other)));
    }

    /// Entries whose handlers are gone (denied connections, say) do not
    /// pile up.
    #[test]
    fn counts_no_handler_holds_are_dropped_as_the_map_grows() {
        let mut b = behaviour();
        for _ in 0..1_000 {
            drop(b.peer_streams(PeerId::random()));
        }
        assert!(b.peer_streams.len() <= 66, "{}", b.peer_streams.len());
    }
}
