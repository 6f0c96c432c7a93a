//! The swarm: transports and the behaviours next to `pointer::Behaviour`.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::metrics::Registry;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{autonat, dcutr, identify, mdns, noise, ping, relay, tcp, yamux, Swarm, SwarmBuilder};
use pointer::discovery::Kad;
use pointer::{Config, RecordStore, Validator};

use crate::limits::{self, Limits};
use crate::Error;

/// Connections stay open while idle. libp2p closes idle ones after 10 s by
/// default; a peer that shares no key yet is still the one a later `get`
/// asks, and in a line of nodes every link is the only path.
const IDLE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(u64::MAX);

/// Identifies the program to peers (identify's agent version).
const AGENT: &str = concat!("pointer-node/", env!("CARGO_PKG_VERSION"));

#[derive(NetworkBehaviour)]
#[behaviour(to_swarm = "NodeEvent")]
pub struct Behaviour<S: RecordStore + 'static> {
    /// First, so a connection past a limit is denied before any other
    /// behaviour sets up a handler for it.
    guard: limits::Guard,
    pub pointer: pointer::Behaviour<S, Toggle<Kad>>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
    relay_client: relay::client::Behaviour,
    dcutr: dcutr::Behaviour,
    autonat: autonat::Behaviour,
    pub relay_server: Toggle<relay::Behaviour>,
}

/// What the swarm is built with besides the keypair, store and config.
pub struct Options {
    /// mDNS on the local network.
    pub mdns: bool,
    /// The Kademlia DHT (discovery of followers).
    pub dht: bool,
    /// Serve as a circuit relay for other nodes.
    pub relay_server: bool,
    /// Bounds on connections.
    pub limits: Limits,
}

/// What the behaviours report. A named enum (rather than the derived one)
/// because the derived one would carry the unused store type parameter.
#[derive(Debug)]
pub enum NodeEvent {
    Pointer(pointer::Event),
    Identify(Box<identify::Event>),
    Ping(ping::Event),
    Mdns(mdns::Event),
    Relay(Box<relay::client::Event>),
    RelayServer(Box<relay::Event>),
    Dcutr(dcutr::Event),
    Autonat(autonat::Event),
}

impl From<std::convert::Infallible> for NodeEvent {
    fn from(never: std::convert::Infallible) -> Self {
        match never {}
    }
}

impl From<relay::client::Event> for NodeEvent {
    fn from(e: relay::client::Event) -> Self {
        NodeEvent::Relay(Box::new(e))
    }
}

impl From<relay::Event> for NodeEvent {
    fn from(e: relay::Event) -> Self {
        NodeEvent::RelayServer(Box::new(e))
    }
}

impl From<dcutr::Event> for NodeEvent {
    fn from(e: dcutr::Event) -> Self {
        NodeEvent::Dcutr(e)
    }
}

impl From<autonat::Event> for NodeEvent {
    fn from(e: autonat::Event) -> Self {
        NodeEvent::Autonat(e)
    }
}

impl From<pointer::Event> for NodeEvent {
    fn from(e: pointer::Event) -> Self {
        NodeEvent::Pointer(e)
    }
}

impl From<identify::Event> for NodeEvent {
    fn from(e: identify::Event) -> Self {
        NodeEvent::Identify(Box::new(e))
    }
}

impl From<ping::Event> for NodeEvent {
    fn from(e: ping::Event) -> Self {
        NodeEvent::Ping(e)
    }
}

impl From<mdns::Event> for NodeEvent {
    fn from(e: mdns::Event) -> Self {
        NodeEvent::Mdns(e)
    }
}

/// A TCP + QUIC swarm (noise, yamux; DNS names resolved; circuits through
/// relays) signing records with `keypair`. With a `registry`, Pointer's
/// metrics (feature `metrics`) and the transport's bandwidth go into it.
pub fn build<S: RecordStore + 'static>(
    keypair: Keypair,
    store: S,
    (config, validator): (Config, Box<dyn Validator>),
    options: Options,
    registry: Option<&mut Registry>,
) -> Result<Swarm<Behaviour<S>>, Error> {
    #[cfg(feature = "metrics")]
    let mut registry = registry;
    #[cfg(feature = "metrics")]
    let pointer_metrics = registry.as_deref_mut().map(pointer::metrics::Metrics::new);
    let behaviour = |key: &Keypair, relay_client| -> Result<_, Error> {
        let peer = key.public().to_peer_id();
        let kad = Toggle::from(options.dht.then(|| Kad::new(peer)));
        let pointer =
            pointer::Behaviour::with_validator_and_discovery(key, store, config, validator, kad)?;
        #[cfg(feature = "metrics")]
        let pointer = match pointer_metrics {
            Some(metrics) => pointer.with_metrics(metrics),
            None => pointer,
        };
        Ok(Behaviour {
            guard: limits::Guard::new(options.limits),
            pointer,
            identify: identify::Behaviour::new(
                identify::Config::new("/pointer/node/1".into(), key.public())
                    .with_agent_version(AGENT.into()),
            ),
            ping: ping::Behaviour::default(),
            mdns: Toggle::from(options.mdns.then(|| start_mdns(peer)).flatten()),
            relay_client,
            dcutr: dcutr::Behaviour::new(peer),
            autonat: autonat::Behaviour::new(peer, autonat::Config::default()),
            relay_server: Toggle::from(
                options
                    .relay_server
                    .then(|| relay::Behaviour::new(peer, relay::Config::default())),
            ),
        })
    };
    let builder = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_dns()?
        .with_relay_client(noise::Config::new, yamux::Config::default)?;
    // The two arms build different transport types, so each finishes the
    // swarm itself.
    let swarm = match registry {
        Some(registry) => builder
            .with_bandwidth_metrics(registry)
            .with_behaviour(behaviour)?
            .with_swarm_config(swarm_config)
            .build(),
        None => builder
            .with_behaviour(behaviour)?
            .with_swarm_config(swarm_config)
            .build(),
    };
    Ok(swarm)
}

fn swarm_config(config: libp2p::swarm::Config) -> libp2p::swarm::Config {
    config.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT)
}

/// mDNS needs multicast; where there is none the node still works with
/// `--dial`, so a failure is a warning.
fn start_mdns(peer: libp2p::PeerId) -> Option<mdns::tokio::Behaviour> {
    mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
        .inspect_err(|e| tracing::warn!("mDNS is off: {e}"))
        .ok()
}
