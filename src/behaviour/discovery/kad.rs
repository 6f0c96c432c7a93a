//! [`Kad`]: discovery on libp2p-kad provider records.

use std::collections::{HashMap, HashSet, VecDeque};
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::kad::{
    self, store::MemoryStore, store::MemoryStoreConfig, GetProvidersOk, Mode, QueryResult,
    RecordKey,
};
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId, StreamProtocol};

use super::{Discovered, Discovery};
use crate::event::Event;

/// The Kademlia protocol of the DHT [`Kad::new`] builds. A DHT of its own
/// rather than the IPFS one (`/ipfs/kad/1.0.0`): Pointer's provider
/// records are of no use to IPFS nodes, and a pointer network should not
/// depend on theirs.
pub const PROTOCOL: StreamProtocol = StreamProtocol::new("/pointer/kad/1.0.0");

/// Most keys [`Kad::new`]'s store holds provider records for, its own and
/// other nodes' together (kad's `max_provided_keys`): a bound on what DHT
/// peers can make this node hold (a key's providers are at most 20, about
/// 200 bytes each, so some 13 MiB when full and far less in practice) that
/// still lets a node advertise 65,536 keys. kad's default, 1,024, is far
/// below the keys a node follows.
pub const MAX_PROVIDER_KEYS: usize = 65_536;

/// Most DHT operations held back while the routing table is empty.
const MAX_HELD: usize = 4096;

/// A DHT operation Pointer asked for.
#[derive(Debug, Clone)]
enum Op {
    Provide(String),
    Find(String),
}

/// Discovery through a libp2p-kad `Behaviour` that Pointer owns: followed
/// keys are advertised as provider records of their topics, and lookups
/// are `get_providers` queries.
///
/// Kademlia keeps each advertisement alive itself: it re-publishes the
/// provider records of this node every `provider_publication_interval`
/// (12 h by default) and they expire after `provider_record_ttl` (48 h).
pub struct Kad {
    inner: kad::Behaviour<MemoryStore>,
    /// The topic of each lookup Pointer started.
    lookups: HashMap<kad::QueryId, String>,
    /// Advertisements Pointer started and kad has not finished: their
    /// results are Pointer's, not the user's.
    provides: HashSet<kad::QueryId>,
    /// Operations asked for while the routing table was empty: a query
    /// then reaches nobody (an advertisement would be lost until kad's
    /// next re-publish, hours later), so they wait for the first peer.
    held: VecDeque<Op>,
}

impl Kad {
    /// A fresh DHT on [`PROTOCOL`], in server mode, with an in-memory
    /// store holding provider records for up to [`MAX_PROVIDER_KEYS`] keys
    /// ([`Self::with_store_config`] to choose). Server mode because
    /// kad's automatic mode answers queries only once the node has a
    /// confirmed external address, which nodes on a LAN or loopback never
    /// get; a node behind a NAT may set `Some(Mode::Client)` through
    /// [`Self::behaviour_mut`]. Add peers' addresses with
    /// `behaviour_mut().add_address` (identify's listen addresses, a
    /// bootstrap list) and call `bootstrap` to fill the routing table.
    pub fn new(local_peer: PeerId) -> Self {
        Self::with_store_config(
            local_peer,
            MemoryStoreConfig {
                max_provided_keys: MAX_PROVIDER_KEYS,
                ..MemoryStoreConfig::default()
            },
        )
    }

    /// [`Self::new`] with kad's store limits chosen: `max_provided_keys`
    /// bounds the keys it holds provider records for (ours and other
    /// nodes'; past it new keys are refused, ours included), and
    /// `max_providers_per_key` the records per key.
    pub fn with_store_config(local_peer: PeerId, config: MemoryStoreConfig) -> Self {
        let store = MemoryStore::with_config(local_peer, config);
        let mut inner = kad::Behaviour::with_config(local_peer, store, kad::Config::new(PROTOCOL));
        inner.set_mode(Some(Mode::Server));
        Self::from_behaviour(inner)
    }

    /// Discovery through a `kad::Behaviour` you built (your protocol,
    /// store limits and mode). Pointer owns it from now on: reach it
    /// through [`Behaviour::discovery_mut`](crate::Behaviour::discovery_mut);
    /// its events that are not Pointer's come as
    /// [`Event::Kad`].
    pub fn from_behaviour(inner: kad::Behaviour<MemoryStore>) -> Self {
        Kad {
            inner,
            lookups: HashMap::new(),
            provides: HashSet::new(),
            held: VecDeque::new(),
        }
    }

    /// The Kademlia behaviour.
    pub fn behaviour(&self) -> &kad::Behaviour<MemoryStore> {
        &self.inner
    }

    /// The Kademlia behaviour, mutably: add addresses, bootstrap, run
    /// your own queries (their results come as [`Event::Kad`]).
    pub fn behaviour_mut(&mut self) -> &mut kad::Behaviour<MemoryStore> {
        &mut self.inner
    }

    fn has_peers(&mut self) -> bool {
        self.inner.kbuckets().any(|bucket| bucket.num_entries() > 0)
    }

    /// Runs `op` now, or holds it until the routing table has a peer. Past
    /// [`MAX_HELD`] the oldest is dropped: Pointer looks a key up again
    /// later, and kad re-publishes advertisements.
    fn run(&mut self, op: Op) {
        if !self.has_peers() {
            if self.held.len() >= MAX_HELD {
                self.held.pop_front();
            }
            self.held.push_back(op);
            return;
        }
        match op {
            Op::Provide(topic) => match self.inner.start_providing(RecordKey::new(&topic)) {
                Ok(id) => {
                    tracing::debug!(%topic, ?id, "advertising");
                    self.provides.insert(id);
                }
                Err(e) => tracing::warn!(%topic, "kad refused to provide: {e}"),
            },
            Op::Find(topic) => {
                let id = self.inner.get_providers(RecordKey::new(&topic));
                tracing::debug!(%topic, ?id, "looking up followers");
                self.lookups.insert(id, topic);
            }
        }
    }

    fn lookup_event(&mut self, id: kad::QueryId, last: bool, result: QueryResult) -> Discovered {
        let topic = if last {
            self.lookups.remove(&id)
        } else {
            self.lookups.get(&id).cloned()
        }
        .unwrap_or_default();
        match result {
            // kad ends a lookup with a step that finds nothing new; should
            // a last step carry providers, Pointer treats a lookup older
            // than its fetch timeout as over anyway.
            QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders { providers, .. })) => {
                tracing::debug!(%topic, found = providers.len(), last, "followers found");
                Discovered::Providers {
                    topic,
                    peers: providers.into_iter().collect(),
                }
            }
            _ => {
                tracing::debug!(%topic, last, "lookup over");
                Discovered::Done { topic }
            }
        }
    }
}

impl std::fmt::Debug for Kad {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kad")
            .field("lookups", &self.lookups.len())
            .finish_non_exhaustive()
    }
}

impl Discovery for Kad {
    fn provide(&mut self, topic: &str) {
        self.run(Op::Provide(topic.to_owned()));
    }

    fn stop_providing(&mut self, topic: &str) {
        self.held
            .retain(|op| !matches!(op, Op::Provide(t) if t == topic));
        self.inner.stop_providing(&RecordKey::new(&topic));
    }

    fn find_providers(&mut self, topic: &str) {
        self.run(Op::Find(topic.to_owned()));
    }

    /// Not while the routing table is empty: kad would hold the lookup
    /// until a first peer came, and a `get` would wait for it.
    fn can_look_up(&mut self) -> bool {
        self.has_peers()
    }

    fn on_event(&mut self, event: kad::Event) -> Option<Discovered> {
        if matches!(event, kad::Event::RoutingUpdated { .. }) && !self.held.is_empty() {
            for op in std::mem::take(&mut self.held) {
                self.run(op);
            }
        }
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } if self.lookups.contains_key(&id) => Some(self.lookup_event(id, step.last, result)),
            // Pointer's advertisements: kad keeps them alive; a failure is
            // retried at kad's next re-publish. The user's own go on below.
            kad::Event::OutboundQueryProgressed {
                id,
                result: QueryResult::StartProviding(result),
                step,
                ..
            } if self.provides.contains(&id) => {
                if step.last {
                    self.provides.remove(&id);
                }
                match result {
                    Ok(_) => tracing::debug!(?id, last = step.last, "advertised"),
                    Err(e) => tracing::debug!("provide did not reach the DHT: {e}"),
                }
                None
            }
            other => Some(Discovered::Event(Box::new(Event::Kad(Box::new(other))))),
        }
    }
}

impl NetworkBehaviour for Kad {
    type ConnectionHandler = THandler<kad::Behaviour<MemoryStore>>;
    type ToSwarm = kad::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        id: ConnectionId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(id, local, remote)
    }

    fn handle_established_inbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_pending_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: Option<PeerId>,
        addresses: &[Multiaddr],
        role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner
            .handle_pending_outbound_connection(id, peer, addresses, role)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        self.inner.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner.on_connection_handler_event(peer, id, event)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<ToSwarm<kad::Event, THandlerInEvent<Self>>> {
        self.inner.poll(cx)
    }
}
