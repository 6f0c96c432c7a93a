//! Finding the followers of a key beyond our connections.
//!
//! A node that follows a key advertises itself in a DHT as a *provider* of
//! the key's topic (`/pointer/record/<key>`), the way go-libp2p-pubsub's
//! discovery uses a DHT rendezvous; a node on shard topics advertises its
//! shards (`/pointer/shard/<count>/<index>`) instead, one record per shard
//! however many keys it follows. A node that follows or `get`s a key and
//! has no follower of it among its connections looks the providers up,
//! dials a few ([`ConfigBuilder::discovery_dials`]), and catches up from
//! them; gossipsub then meshes them.
//!
//! [`Behaviour`](crate::Behaviour) decides what to advertise, what to look up
//! and whom to dial; a [`Discovery`] carries it out. It is a
//! `NetworkBehaviour` that `Behaviour` owns and drives like its gossipsub:
//! its connection handler runs beside Pointer's, and its events come back
//! to Pointer through [`Discovery::on_event`]. The crate has two:
//!
//! - [`NoDiscovery`], the default: a node learns only from the peers it is
//!   connected to.
//! - [`Kad`] (feature `kad`): libp2p-kad provider records. Build a fresh
//!   one with [`Kad::new`], or hand in the `kad::Behaviour` your swarm
//!   already runs ([`Kad::from_behaviour`]); Pointer then owns it, so use it
//!   through [`Behaviour::discovery_mut`](crate::Behaviour::discovery_mut), and
//!   its own events reach you as
//!   [`Event::Kad`].
//!
//! Why Pointer owns the DHT instead of calling one beside it: a
//! `NetworkBehaviour` cannot reach a sibling in the swarm, so a DHT beside
//! Pointer would need the user's event loop to carry every request and
//! result between the two. Owned, it works with `#[derive(NetworkBehaviour)]`
//! and no glue code, and a user with a DHT of another kind implements this
//! trait for it.
//!
//! [`ConfigBuilder::discovery_dials`]: crate::ConfigBuilder::discovery_dials

#[cfg(feature = "kad")]
mod kad;

use libp2p::swarm::{dummy, NetworkBehaviour};
use libp2p::PeerId;

use crate::event::Event;

#[cfg(feature = "kad")]
pub use self::kad::{Kad, MAX_PROVIDER_KEYS, PROTOCOL};

/// A DHT that [`Behaviour`](crate::Behaviour) drives to find followers. Topics
/// are record topics: `/pointer/record/<key>`, or a shard's
/// `/pointer/shard/<count>/<index>`.
pub trait Discovery: NetworkBehaviour {
    /// Whether it does anything: with `false` Pointer never calls it.
    fn is_enabled(&self) -> bool {
        true
    }

    /// Advertise that this node follows `topic`, until
    /// [`Self::stop_providing`]. Keeping the advertisement alive
    /// (re-providing) is the DHT's business.
    fn provide(&mut self, topic: &str);

    /// Stop advertising `topic`.
    fn stop_providing(&mut self, topic: &str);

    /// Look up the peers that advertise `topic`. The results come back as
    /// [`Discovered::Providers`] events (any number), then one
    /// [`Discovered::Done`].
    fn find_providers(&mut self, topic: &str);

    /// Whether a lookup started now could reach anyone. With `false`
    /// Pointer takes a lookup as over, having found nobody, without
    /// starting it: a `get` then settles on what is held instead of
    /// waiting `fetch_timeout` for a lookup that cannot run (a DHT with an
    /// empty routing table, say). Background lookups are made again
    /// later. The default says yes.
    fn can_look_up(&mut self) -> bool {
        true
    }

    /// What an event of this behaviour means to Pointer.
    fn on_event(&mut self, event: Self::ToSwarm) -> Option<Discovered>;
}

/// What a [`Discovery`] reports.
#[derive(Debug)]
pub enum Discovered {
    /// Some of the peers that advertise `topic`.
    Providers {
        /// The topic looked up.
        topic: String,
        /// Peers found; the swarm must be able to dial them by peer id
        /// (the DHT knows their addresses).
        peers: Vec<PeerId>,
    },
    /// The lookup of `topic` is over.
    Done {
        /// The topic looked up.
        topic: String,
    },
    /// An event for the user, passed on as it is.
    Event(Box<Event>),
}

/// No discovery: a node learns only from the peers it is connected to.
pub struct NoDiscovery(dummy::Behaviour);

impl Default for NoDiscovery {
    fn default() -> Self {
        NoDiscovery(dummy::Behaviour)
    }
}

impl std::fmt::Debug for NoDiscovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoDiscovery")
    }
}

impl NetworkBehaviour for NoDiscovery {
    type ConnectionHandler = <dummy::Behaviour as NetworkBehaviour>::ConnectionHandler;
    type ToSwarm = <dummy::Behaviour as NetworkBehaviour>::ToSwarm;

    fn handle_established_inbound_connection(
        &mut self,
        id: libp2p::swarm::ConnectionId,
        peer: PeerId,
        local: &libp2p::Multiaddr,
        remote: &libp2p::Multiaddr,
    ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
        self.0
            .handle_established_inbound_connection(id, peer, local, remote)
    }

    fn handle_established_outbound_connection(
        &mut self,
        id: libp2p::swarm::ConnectionId,
        peer: PeerId,
        addr: &libp2p::Multiaddr,
        role: libp2p::core::Endpoint,
        port_use: libp2p::core::transport::PortUse,
    ) -> Result<libp2p::swarm::THandler<Self>, libp2p::swarm::ConnectionDenied> {
        self.0
            .handle_established_outbound_connection(id, peer, addr, role, port_use)
    }

    fn on_swarm_event(&mut self, event: libp2p::swarm::FromSwarm) {
        self.0.on_swarm_event(event)
    }

    fn on_connection_handler_event(
        &mut self,
        peer: PeerId,
        id: libp2p::swarm::ConnectionId,
        event: libp2p::swarm::THandlerOutEvent<Self>,
    ) {
        self.0.on_connection_handler_event(peer, id, event)
    }

    fn poll(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<libp2p::swarm::ToSwarm<Self::ToSwarm, libp2p::swarm::THandlerInEvent<Self>>>
    {
        self.0.poll(cx)
    }
}

impl Discovery for NoDiscovery {
    fn is_enabled(&self) -> bool {
        false
    }

    fn provide(&mut self, _topic: &str) {}

    fn stop_providing(&mut self, _topic: &str) {}

    fn find_providers(&mut self, _topic: &str) {}

    fn on_event(&mut self, event: Self::ToSwarm) -> Option<Discovered> {
        match event {}
    }
}

/// A discovery switched on or off at start (a command-line flag, say).
impl<D: Discovery> Discovery for libp2p::swarm::behaviour::toggle::Toggle<D> {
    fn is_enabled(&self) -> bool {
        self.as_ref().is_some_and(|d| d.is_enabled())
    }

    fn provide(&mut self, topic: &str) {
        if let Some(d) = self.as_mut() {
            d.provide(topic)
        }
    }

    fn stop_providing(&mut self, topic: &str) {
        if let Some(d) = self.as_mut() {
            d.stop_providing(topic)
        }
    }

    fn find_providers(&mut self, topic: &str) {
        if let Some(d) = self.as_mut() {
            d.find_providers(topic)
        }
    }

    fn can_look_up(&mut self) -> bool {
        self.as_mut().is_some_and(|d| d.can_look_up())
    }

    fn on_event(&mut self, event: Self::ToSwarm) -> Option<Discovered> {
        self.as_mut().and_then(|d| d.on_event(event))
    }
}
