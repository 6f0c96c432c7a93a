//! [`Pointer`]: the `NetworkBehaviour` that joins gossipsub, the fetch
//! protocol and a [`Replica`]. It only moves bytes and timers; every
//! decision is made by the pure core.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ed25519_dalek::SigningKey;
use either::Either;
use futures::FutureExt;
use futures_timer::Delay;
use libp2p::core::transport::PortUse;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::gossipsub::{
    self, AllowAllSubscriptionFilter, IdentTopic, IdentityTransform, MessageAcceptance,
    MessageAuthenticity, MessageId, PublishError, TopicHash, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::swarm::{
    behaviour::ConnectionEstablished, ConnectionClosed, ConnectionDenied, ConnectionHandler,
    ConnectionHandlerSelect, ConnectionId, FromSwarm, NetworkBehaviour, NotifyHandler, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use smallvec::SmallVec;

use crate::accept::RejectReason;
use crate::batch;
use crate::config::Config;
use crate::dispatch::Dispatch;
use crate::event::{GetOutcome, PointerEvent, QueryId, Source};
use crate::followers::Followers;
use crate::handler::{FetchLimits, Handler, HandlerIn, HandlerOut};
use crate::proto::pointer as pb;
use crate::protocol::FetchError;
use crate::query::Queries;
use crate::record::{signing_key, Op, Record};
use crate::replica::{Refusal, Replica, WriteError};
use crate::store::{MemoryStore, RecordStore};
use crate::trickle::Trickle;
use crate::validator::OwnedKeys;
use crate::wire;

/// Prefix of every record topic: the topic of key `k` is `/pointer/record/k`.
pub const TOPIC_PREFIX: &str = "/pointer/record/";

/// Bytes an `Answer` adds around its `Operate`: field tags, the embedded
/// length varint (at most 5 bytes) and the status.
const ANSWER_OVERHEAD: usize = 16;

type Gossip = gossipsub::Behaviour<IdentityTransform, AllowAllSubscriptionFilter>;

/// What the joined per-connection handler takes from the behaviour; named
/// without `Self` so the event queue does not tie `S` to `'static`.
type HandlerInEvent = Either<THandlerInEvent<Gossip>, HandlerIn>;

/// Why a [`Pointer`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// Records are signed with Ed25519; the swarm's identity is another kind.
    #[error("the identity keypair must be Ed25519")]
    NotEd25519,
    /// The internal gossipsub refused its configuration.
    #[error("invalid gossipsub configuration: {0}")]
    Gossipsub(String),
}

/// The topic that carries the records of `key`.
pub fn topic(key: &str) -> IdentTopic {
    IdentTopic::new(format!("{TOPIC_PREFIX}{key}"))
}

/// The key a record topic carries, if it is one.
fn topic_key(topic: &TopicHash) -> Option<&str> {
    topic.as_str().strip_prefix(TOPIC_PREFIX)
}

/// One key to ask one peer about: a catch-up, or part of a `get`.
#[derive(Debug)]
struct Wanted {
    key: String,
    query: Option<QueryId>,
}

/// One `Ask` in flight: the keys it carries, in the order they were asked.
#[derive(Debug)]
struct Fetch {
    peer: PeerId,
    connection: ConnectionId,
    wanted: Vec<Wanted>,
}

/// A decentralized key-value store inside a libp2p swarm.
///
/// See the [crate documentation](crate) for an example.
pub struct Pointer<S: RecordStore = MemoryStore> {
    config: Config,
    signer: SigningKey,
    local_peer: PeerId,
    gossipsub: Gossip,
    replica: Replica<S>,
    subscribed: HashSet<String>,
    followers: Followers,
    connections: HashMap<PeerId, SmallVec<[ConnectionId; 2]>>,
    fetches: HashMap<u64, Fetch>,
    dispatch: Dispatch<PeerId, Wanted>,
    catching_up: HashSet<(PeerId, String)>,
    queries: Queries,
    trickle: Trickle,
    republish_timer: Delay,
    /// Armed while received records wait to be made durable.
    flush_timer: Option<Delay>,
    events: VecDeque<ToSwarm<PointerEvent, HandlerInEvent>>,
    next_id: u64,
}

impl<S: RecordStore> Pointer<S> {
    /// A `Pointer` that signs with the swarm's Ed25519 `keypair` and keeps
    /// records in `store`. Every key that holds a value in `store` is
    /// followed at once (a node restarted on its database picks up where it
    /// left off).
    pub fn new(keypair: &Keypair, store: S, mut config: Config) -> Result<Self, BuildError> {
        let signer = signing_key(keypair).ok_or(BuildError::NotEd25519)?;
        let gossipsub = build_gossipsub(&config)?;
        let validator = std::mem::replace(&mut config.validator, Box::new(OwnedKeys));
        let replica = Replica::new(store, validator, config.limits, config.max_message_bytes)
            .with_author_key_cache(config.author_key_cache);
        let mut trickle = Trickle::new(config.republish_interval);
        let first = trickle.next_delay(rand::random());
        let mut pointer = Pointer {
            signer,
            local_peer: keypair.public().to_peer_id(),
            gossipsub,
            replica,
            subscribed: HashSet::new(),
            followers: Followers::default(),
            connections: HashMap::new(),
            fetches: HashMap::new(),
            dispatch: Dispatch::new(config.max_outbound_fetch_streams),
            catching_up: HashSet::new(),
            queries: Queries::default(),
            trickle,
            republish_timer: Delay::new(first),
            flush_timer: None,
            events: VecDeque::new(),
            next_id: 0,
            config,
        };
        pointer.follow_stored_values();
        Ok(pointer)
    }

    /// A node restarted on a persistent store follows again every key it
    /// holds a value for, so it republishes them and hears their updates.
    /// Tombstoned keys stay unfollowed, as after the delete.
    fn follow_stored_values(&mut self) {
        let keys: Vec<String> = self
            .replica
            .store()
            .records()
            .filter(|r| !r.is_tombstone())
            .map(|r| r.key().to_owned())
            .collect();
        for key in keys {
            self.join(&key);
        }
    }

    /// The peer id records are signed as.
    pub fn local_peer_id(&self) -> PeerId {
        self.local_peer
    }

    /// The key `"<local peer id>/<name>"`, which only this node may write
    /// under the default [`OwnedKeys`] validator.
    pub fn owned_key(&self, name: &str) -> String {
        OwnedKeys::key(&self.local_peer, name)
    }

    /// Sets `key` to `value` network-wide: signs, stores, subscribes to the
    /// key's topic and publishes. Returns the stored record.
    pub fn put(&mut self, key: &str, value: &str) -> Result<Record, WriteError> {
        self.write(key, Op::Mut, value)
    }

    /// Deletes `key` network-wide: stores and publishes a tombstone, then
    /// leaves the key's topic. Returns the tombstone.
    pub fn delete(&mut self, key: &str) -> Result<Record, WriteError> {
        self.write(key, Op::Del, "")
    }

    /// Stores a record signed elsewhere (another key of yours, a relay)
    /// through the same accept path as the network's records, then follows
    /// and publishes it. Refused records change nothing.
    pub fn insert(&mut self, record: Record) -> Result<(), Refusal> {
        self.replica.receive(record.clone(), now_ms())?;
        if record.op() == Op::Mut && self.join(record.key()) {
            self.ask_peers(record.key(), None);
        }
        if let Err(error) = self.publish(&record) {
            self.push_event(PointerEvent::PublishFailed {
                key: record.key().to_owned(),
                error,
            });
        }
        self.applied(record, Source::Local);
        Ok(())
    }

    /// Connected peers known to follow `key` (gossipsub told us).
    pub fn peers_following(&self, key: &str) -> Vec<PeerId> {
        self.followers.of(key).to_vec()
    }

    /// Finds the value of `key`. Answers from the store when subscribed and
    /// holding a value; otherwise subscribes and asks up to `fetch_fanout`
    /// peers. The answer comes as [`PointerEvent::GetFinished`].
    pub fn get(&mut self, key: &str) -> QueryId {
        let id = QueryId(self.next_id());
        if crate::accept::check_sizes(key, "", &self.config.limits).is_err() {
            // No node stores a key over the limit: nothing to follow or ask.
            self.finish_get(id, key.to_owned(), GetOutcome::NotFound);
            return id;
        }
        let local = self.value_record(key);
        if let (true, Some(record)) = (self.subscribed.contains(key), local) {
            self.finish_get(id, key.to_owned(), GetOutcome::Found(record));
            return id;
        }
        self.join(key);
        let asked = self.ask_peers(key, Some(id));
        if asked == 0 {
            // Nobody to ask: what we hold is all there is.
            let outcome = self.local_outcome(key, true);
            self.finish_get(id, key.to_owned(), outcome);
        } else {
            self.queries.start(id, key.to_owned(), asked);
        }
        id
    }

    /// Follows `key`: joins its topic and catches up from peers. Returns
    /// `false` if it was already followed.
    pub fn subscribe(&mut self, key: &str) -> Result<bool, RejectReason> {
        crate::accept::check_sizes(key, "", &self.config.limits)?;
        if self.subscribed.contains(key) {
            return Ok(false);
        }
        self.join(key);
        self.ask_peers(key, None);
        Ok(true)
    }

    /// Stops following `key`. Its record stays in the store and is still
    /// served to peers that ask. Returns `false` if it was not followed.
    pub fn unsubscribe(&mut self, key: &str) -> bool {
        if !self.subscribed.remove(key) {
            return false;
        }
        self.gossipsub.unsubscribe(&topic(key));
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

    /// The record stored for `key`: a value or a tombstone.
    pub fn record(&self, key: &str) -> Option<Cow<'_, Record>> {
        self.replica.get(key)
    }

    /// The value of `key`, if it has one (not deleted).
    pub fn value(&self, key: &str) -> Option<String> {
        self.value_record(key).map(|r| r.value().to_owned())
    }

    /// All stored records, tombstones included.
    pub fn records(&self) -> S::RecordsIter<'_> {
        self.replica.store().records()
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

    /// The configuration in force (its validator moved into the replica).
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn write(&mut self, key: &str, op: Op, value: &str) -> Result<Record, WriteError> {
        let record = self.replica.write(key, op, value, now_ms(), &self.signer)?;
        // A newly followed key is caught up like any other: a peer may hold
        // a record dated ahead of our clock that still beats this write.
        if op == Op::Mut && self.join(key) {
            self.ask_peers(key, None);
        }
        if let Err(error) = self.publish(&record) {
            self.push_event(PointerEvent::PublishFailed {
                key: key.to_owned(),
                error,
            });
        }
        self.applied(record.clone(), Source::Local);
        Ok(record)
    }

    fn value_record(&self, key: &str) -> Option<Record> {
        self.replica
            .get(key)
            .filter(|r| !r.is_tombstone())
            .map(Cow::into_owned)
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn push_event(&mut self, event: PointerEvent) {
        self.events.push_back(ToSwarm::GenerateEvent(event));
    }

    /// Joins the key's topic (no catch-up). Returns whether it is new.
    fn join(&mut self, key: &str) -> bool {
        if !self.subscribed.insert(key.to_owned()) {
            return false;
        }
        if let Err(e) = self.gossipsub.subscribe(&topic(key)) {
            tracing::warn!(%key, "gossipsub refused the subscription: {e}");
        }
        true
    }

    /// Publishes a record on its topic. `Duplicate` means the network
    /// already has these exact bytes, so it is success.
    fn publish(&mut self, record: &Record) -> Result<(), PublishError> {
        self.publish_bytes(record.key(), wire::encode_operate(record))
    }

    /// Publishes a record again, stamped with this republish round so that
    /// gossipsub's duplicate cache does not swallow it (see
    /// [`wire::encode_republish`]).
    fn republish(&mut self, record: &Record) -> Result<(), PublishError> {
        let interval = self.config.republish_interval.as_millis().max(1);
        let round = u64::try_from(now_ms()).unwrap_or(0) / u64::try_from(interval).unwrap_or(1);
        self.publish_bytes(record.key(), wire::encode_republish(record, round))
    }

    fn publish_bytes(&mut self, key: &str, bytes: Vec<u8>) -> Result<(), PublishError> {
        match self.gossipsub.publish(topic(key), bytes) {
            Ok(_) | Err(PublishError::Duplicate) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A record was stored: follow up and tell the user.
    fn applied(&mut self, record: Record, source: Source) {
        if record.is_tombstone() {
            // A gossiped delete must still be forwarded along our mesh,
            // which leaving the topic would drop: that one leaves after it
            // is reported (`on_gossip_message`).
            if !matches!(source, Source::Gossip { .. }) {
                self.unsubscribe(record.key());
            }
            self.push_event(PointerEvent::RecordDeleted { record, source });
        } else {
            self.push_event(PointerEvent::RecordUpdated { record, source });
        }
    }

    /// Runs a record from the network through the accept path.
    fn absorb(&mut self, record: Record, peer: PeerId, source: Source) -> MessageAcceptance {
        let key = record.key().to_owned();
        match self.replica.receive(record.clone(), now_ms()) {
            Ok(()) => {
                self.schedule_flush();
                // Our neighbours got it with us; no need to republish it
                // this interval.
                self.trickle.heard_same(&key);
                self.applied(record, source);
                MessageAcceptance::Accept
            }
            Err(Refusal::Same) => {
                self.trickle.heard_same(&key);
                MessageAcceptance::Ignore
            }
            Err(Refusal::Older) => {
                self.trickle.heard_older(&key);
                MessageAcceptance::Ignore
            }
            Err(Refusal::Invalid(reason)) => {
                self.push_event(PointerEvent::RecordRejected { peer, key, reason });
                MessageAcceptance::Reject
            }
            Err(Refusal::Store(error)) => {
                self.push_event(PointerEvent::StoreFailed { key, error });
                MessageAcceptance::Ignore
            }
        }
    }

    /// Received records are synced to disk in groups: the first one arms
    /// the timer, the timer syncs all that came meanwhile.
    fn schedule_flush(&mut self) {
        if self.flush_timer.is_none() {
            self.flush_timer = Some(Delay::new(self.config.store_flush_interval));
        }
    }

    fn flush_store(&mut self) {
        self.flush_timer = None;
        if let Err(error) = self.replica.flush() {
            tracing::error!(%error, "could not make received records durable");
        }
    }

    fn on_gossip_message(&mut self, peer: PeerId, id: MessageId, message: gossipsub::Message) {
        let acceptance = match topic_key(&message.topic).map(str::to_owned) {
            None => self.reject(peer, String::new(), RejectReason::ForeignTopic),
            Some(key) => {
                match wire::decode_operate(&key, &message.data, self.config.max_message_bytes) {
                    Ok(record) => self.absorb(record, peer, Source::Gossip { peer }),
                    Err(e) => self.reject(peer, key, e.into()),
                }
            }
        };
        let accepted = matches!(acceptance, MessageAcceptance::Accept);
        self.gossipsub
            .report_message_validation_result(&id, &peer, acceptance);
        if accepted {
            self.leave_if_deleted(&message.topic);
        }
    }

    /// After an accepted delete has been forwarded, leave its topic.
    fn leave_if_deleted(&mut self, topic: &TopicHash) {
        let Some(key) = topic_key(topic).map(str::to_owned) else {
            return;
        };
        if self.replica.get(&key).is_some_and(|r| r.is_tombstone()) {
            self.unsubscribe(&key);
        }
    }

    fn reject(&mut self, peer: PeerId, key: String, reason: RejectReason) -> MessageAcceptance {
        self.push_event(PointerEvent::RecordRejected { peer, key, reason });
        MessageAcceptance::Reject
    }

    fn on_gossip_event(&mut self, event: gossipsub::Event) {
        match event {
            gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            } => self.on_gossip_message(propagation_source, message_id, message),
            gossipsub::Event::Subscribed { peer_id, topic } => {
                if let Some(key) = topic_key(&topic) {
                    let key = key.to_owned();
                    self.followers.subscribed(peer_id, &key);
                    self.on_peer_subscribed(peer_id, &key);
                }
            }
            gossipsub::Event::Unsubscribed { peer_id, topic } => {
                if let Some(key) = topic_key(&topic) {
                    self.followers.unsubscribed(&peer_id, key);
                }
            }
            _ => {}
        }
    }

    /// A peer follows `key`. If we follow it too, catch up from that peer
    /// (this is how a new connection that shares topics is asked). If we
    /// deleted it, push the tombstone so the peer stops serving the value.
    fn on_peer_subscribed(&mut self, peer: PeerId, key: &str) {
        if self.subscribed.contains(key) {
            self.ask(peer, key, None);
            return;
        }
        let tombstone = self.replica.get(key).filter(|r| r.is_tombstone());
        if let Some(tombstone) = tombstone.map(Cow::into_owned) {
            if let Err(e) = self.republish(&tombstone) {
                tracing::debug!(%key, "could not push tombstone: {e}");
            }
        }
    }

    /// Asks up to `fetch_fanout` peers for `key`: peers known to follow it,
    /// or any connected peer when none is known. Returns how many were asked.
    fn ask_peers(&mut self, key: &str, query: Option<QueryId>) -> usize {
        let targets = self.ask_targets(key);
        let mut asked = 0;
        for peer in targets {
            if self.ask(peer, key, query) {
                asked += 1;
            }
        }
        asked
    }

    fn ask_targets(&self, key: &str) -> Vec<PeerId> {
        let fanout = self.config.fetch_fanout;
        let followers: Vec<PeerId> = self
            .followers
            .of(key)
            .iter()
            .copied()
            .filter(|peer| self.connections.contains_key(peer))
            .take(fanout)
            .collect();
        if !followers.is_empty() {
            return followers;
        }
        self.connections.keys().copied().take(fanout).collect()
    }

    /// Queues one key to ask `peer` about; it goes out with the next `Ask`
    /// to that peer (see [`Self::send_waiting`]). A `get`'s key goes ahead
    /// of waiting catch-ups, so a user's read is not stuck behind a bulk
    /// catch-up. Catch-up asks (no query) are not repeated while one to the
    /// same peer for the same key waits or is in flight.
    fn ask(&mut self, peer: PeerId, key: &str, query: Option<QueryId>) -> bool {
        if !self.connections.contains_key(&peer) {
            return false;
        }
        if query.is_none() && !self.catching_up.insert((peer, key.to_owned())) {
            return false;
        }
        let wanted = Wanted {
            key: key.to_owned(),
            query,
        };
        match query {
            Some(_) => self.dispatch.push_front(peer, wanted),
            None => self.dispatch.push(peer, wanted),
        }
        true
    }

    /// Packs the keys waiting for each peer into `Ask`s, as many as the
    /// peer has free slots. Runs once the events at hand are handled, so
    /// that a burst (a peer's subscriptions, a user following many keys)
    /// goes out in a few full `Ask`s rather than many single-key ones.
    fn send_waiting(&mut self) {
        let max_keys = self.config.max_keys_per_ask;
        let budget = self.config.max_message_bytes + ANSWER_OVERHEAD;
        let cost = |wanted: &Wanted| batch::ask_cost(&wanted.key);
        while let Some((peer, wanted)) = self.dispatch.next_batch(max_keys, budget, cost) {
            let Some(&connection) = self.connections.get(&peer).and_then(|c| c.first()) else {
                self.dispatch.finished(peer);
                self.fail(peer, wanted, FetchError::ConnectionClosed);
                continue;
            };
            let id = self.next_id();
            let keys = wanted.iter().map(|w| w.key.clone()).collect();
            let fetch = Fetch {
                peer,
                connection,
                wanted,
            };
            self.fetches.insert(id, fetch);
            self.events.push_back(ToSwarm::NotifyHandler {
                peer_id: peer,
                handler: NotifyHandler::One(connection),
                event: Either::Right(HandlerIn::Ask { id, keys }),
            });
        }
    }

    fn on_answer(&mut self, id: u64, result: Result<pb::Answer, FetchError>) {
        let Some(mut fetch) = self.fetches.remove(&id) else {
            return;
        };
        let peer = fetch.peer;
        let asked = fetch.wanted.len();
        let entries = result.and_then(|answer| {
            batch::entries(answer, asked).map_err(|e| FetchError::Malformed(e.to_string()))
        });
        let entries = match entries {
            Ok(entries) => entries,
            // A peer with a larger message limit than ours packed more
            // than we read, or one with a smaller limit (or a glitch)
            // dropped the stream: as an answer that left every key out, so
            // they are asked again, a key at a time to begin with. A single
            // key that fails this way fails for good.
            Err(FetchError::TooLarge { .. } | FetchError::ConnectionClosed)
                if asked > 1 && self.connections.contains_key(&peer) =>
            {
                Vec::new()
            }
            Err(error) => {
                self.dispatch.finished(peer);
                return self.fail(peer, fetch.wanted, error);
            }
        };
        // Keys past the answered ones did not fit the answer: ask again,
        // in batches sized by what this peer answers.
        let unanswered = fetch.wanted.split_off(entries.len());
        if self.connections.contains_key(&peer) {
            self.dispatch.answered(peer, asked, entries.len());
            self.dispatch.requeue(peer, unanswered);
        } else {
            self.fail(peer, unanswered, FetchError::ConnectionClosed);
        }
        self.dispatch.finished(peer);
        for (wanted, entry) in fetch.wanted.into_iter().zip(entries) {
            self.on_entry(peer, wanted, entry);
        }
    }

    /// The peer's answer for one key.
    fn on_entry(&mut self, peer: PeerId, wanted: Wanted, entry: pb::Entry) {
        if wanted.query.is_none() {
            self.catching_up.remove(&(peer, wanted.key.clone()));
        }
        match (entry.status, entry.op) {
            (pb::Status::NotExist, _) => {}
            (pb::Status::Ok_pb, Some(op)) => match wire::from_operate(&wanted.key, op) {
                Ok(record) => {
                    self.absorb(record, peer, Source::Fetch { peer });
                }
                Err(e) => {
                    self.reject(peer, wanted.key.clone(), e.into());
                }
            },
            (pb::Status::Ok_pb, None) => {
                let reason =
                    crate::wire::DecodeError::Protobuf("Ok answer without a record".into());
                self.reject(peer, wanted.key.clone(), reason.into());
            }
        }
        if let Some(query) = wanted.query {
            self.on_query_reply(query, true);
        }
    }

    /// Nothing was learnt from `peer` for these keys.
    fn fail(&mut self, peer: PeerId, wanted: Vec<Wanted>, error: FetchError) {
        if wanted.is_empty() {
            return;
        }
        let mut keys = Vec::with_capacity(wanted.len());
        let mut queries = Vec::new();
        for Wanted { key, query } in wanted {
            match query {
                None => {
                    self.catching_up.remove(&(peer, key.clone()));
                }
                Some(query) => queries.push(query),
            }
            keys.push(key);
        }
        self.push_event(PointerEvent::FetchFailed { peer, keys, error });
        for query in queries {
            self.on_query_reply(query, false);
        }
    }

    fn on_query_reply(&mut self, id: QueryId, answered: bool) {
        if let Some(done) = self.queries.reply(id, answered) {
            let outcome = self.local_outcome(&done.key, done.answered);
            self.finish_get(id, done.key, outcome);
        }
    }

    fn local_outcome(&self, key: &str, answered: bool) -> GetOutcome {
        match self.value_record(key) {
            Some(record) => GetOutcome::Found(record),
            None if answered || self.replica.get(key).is_some() => GetOutcome::NotFound,
            None => GetOutcome::TimedOut,
        }
    }

    fn finish_get(&mut self, id: QueryId, key: String, outcome: GetOutcome) {
        // A get follows the key; if the key turned out deleted, leave it
        // again, as a delete does.
        if self.replica.get(&key).is_some_and(|r| r.is_tombstone()) {
            self.unsubscribe(&key);
        }
        self.push_event(PointerEvent::GetFinished { id, key, outcome });
    }

    /// Answers a peer's `Ask` from the store: its keys in order, as many as
    /// fit one answer.
    fn on_inbound_ask(
        &mut self,
        keys: &[String],
        reply: futures::channel::oneshot::Sender<pb::Answer>,
    ) {
        let replica = &self.replica;
        let entries = keys
            .iter()
            .map(|key| batch::entry(replica.get(key).as_deref()));
        let max_bytes = self.config.max_message_bytes + ANSWER_OVERHEAD;
        let answer = batch::answer(entries, max_bytes, self.config.max_keys_per_ask);
        // The stream may have been closed meanwhile; nothing to do then.
        let _ = reply.send(answer);
    }

    /// Republishes what Trickle says is due, then collects old tombstones.
    fn on_republish_timer(&mut self) {
        // Borrow, not clone: this runs over every followed key each interval.
        let candidates: Vec<String> = self
            .subscribed
            .iter()
            .filter(|k| self.replica.get(k).is_some_and(|r| !r.is_tombstone()))
            .cloned()
            .collect();
        for key in self.trickle.fire(candidates.iter().map(String::as_str)) {
            if let Some(record) = self.value_record(&key) {
                if let Err(e) = self.republish(&record) {
                    tracing::debug!(%key, "republish not sent: {e}");
                }
            }
        }
        self.recheck_orphans();
        let ttl = i64::try_from(self.config.tombstone_ttl.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.replica.collect_tombstones(now_ms(), ttl) {
            tracing::warn!("tombstone collection failed: {e}");
        }
        let delay = self.trickle.next_delay(rand::random());
        self.republish_timer.reset(delay);
    }

    /// Keys we follow that no connected peer follows get no gossip, so we
    /// would never hear of their updates or deletes: ask peers about them
    /// once an interval (a peer that deleted the key answers the tombstone).
    fn recheck_orphans(&mut self) {
        if self.connections.is_empty() {
            return;
        }
        let orphans: Vec<String> = self
            .subscribed
            .iter()
            .filter(|key| self.followers.of(key).is_empty())
            .cloned()
            .collect();
        for key in orphans {
            self.ask_peers(&key, None);
        }
    }

    fn on_connection_established(&mut self, peer: PeerId, connection: ConnectionId) {
        self.connections.entry(peer).or_default().push(connection);
    }

    fn on_connection_closed(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(list) = self.connections.get_mut(&peer) {
            list.retain(|c| *c != connection);
            if list.is_empty() {
                self.connections.remove(&peer);
            }
        }
        if !self.connections.contains_key(&peer) {
            self.followers.peer_gone(&peer);
            // What still waited for the peer fails now; the asks in flight
            // on this connection fail below.
            let waiting = self.dispatch.forget(peer);
            self.fail(peer, waiting, FetchError::ConnectionClosed);
        }
        let lost: Vec<u64> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.connection == connection)
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.on_answer(id, Err(FetchError::ConnectionClosed));
        }
    }

    fn new_handler(&self) -> Handler {
        Handler::new(FetchLimits {
            // An Answer wraps the record: tag, length and status on top.
            max_message_size: self.config.max_message_bytes + ANSWER_OVERHEAD,
            timeout: self.config.fetch_timeout,
            max_inbound_streams: self.config.max_inbound_fetch_streams,
            max_outbound_streams: self.config.max_outbound_fetch_streams,
        })
    }
}

impl<S: RecordStore> Drop for Pointer<S> {
    /// Records received since the last flush are made durable on shutdown.
    fn drop(&mut self) {
        if self.flush_timer.is_some() {
            self.flush_store();
        }
    }
}

fn build_gossipsub(config: &Config) -> Result<Gossip, BuildError> {
    let mut builder = gossipsub::ConfigBuilder::default();
    builder
        .validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
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
    Gossip::new_with_subscription_filter(
        MessageAuthenticity::Anonymous,
        gossip_config,
        AllowAllSubscriptionFilter {},
    )
    .map_err(|e| BuildError::Gossipsub(e.to_string()))
}

/// Republishes come at least half an interval apart; the duplicate cache
/// must forget a message before then.
fn duplicate_window(republish: Duration) -> Duration {
    (republish / 4).clamp(Duration::from_millis(100), Duration::from_secs(60))
}

fn now_ms() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO);
    i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
}

impl<S: RecordStore + 'static> NetworkBehaviour for Pointer<S> {
    type ConnectionHandler = ConnectionHandlerSelect<THandler<Gossip>, Handler>;
    type ToSwarm = PointerEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.gossipsub
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let gossip = self.gossipsub.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )?;
        Ok(gossip.select(self.new_handler()))
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.gossipsub.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        let gossip = self.gossipsub.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )?;
        Ok(gossip.select(self.new_handler()))
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.gossipsub.on_swarm_event(event);
        match event {
            FromSwarm::ConnectionEstablished(ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            }) => self.on_connection_established(peer_id, connection_id),
            FromSwarm::ConnectionClosed(ConnectionClosed {
                peer_id,
                connection_id,
                ..
            }) => self.on_connection_closed(peer_id, connection_id),
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {
            Either::Left(gossip) => self
                .gossipsub
                .on_connection_handler_event(peer, connection, gossip),
            Either::Right(HandlerOut::InboundAsk { keys, reply }) => {
                self.on_inbound_ask(&keys, reply)
            }
            Either::Right(HandlerOut::Answered { id, result }) => self.on_answer(id, result),
            Either::Right(HandlerOut::InboundFailed { error }) => {
                self.push_event(PointerEvent::InboundFetchFailed { peer, error })
            }
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            if let Some(event) = self.events.pop_front() {
                return Poll::Ready(event);
            }
            if self.republish_timer.poll_unpin(cx).is_ready() {
                self.on_republish_timer();
                continue;
            }
            if let Some(timer) = &mut self.flush_timer {
                if timer.poll_unpin(cx).is_ready() {
                    self.flush_store();
                    continue;
                }
            }
            match self.gossipsub.poll(cx) {
                Poll::Ready(ToSwarm::GenerateEvent(event)) => self.on_gossip_event(event),
                Poll::Ready(action) => {
                    return Poll::Ready(
                        action
                            .map_in(Either::Left)
                            .map_out(|_| unreachable!("gossipsub events are handled above")),
                    )
                }
                Poll::Pending => {
                    self.send_waiting();
                    if self.events.is_empty() {
                        return Poll::Pending;
                    }
                }
            }
        }
    }
}
