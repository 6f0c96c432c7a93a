//! The swarm: transports and the behaviours next to `Pointer`.

use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, mdns, noise, ping, tcp, yamux, Swarm, SwarmBuilder};
use pointer::{Config, Pointer, PointerEvent, RecordStore};

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
    pub pointer: Pointer<S>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    pub mdns: Toggle<mdns::tokio::Behaviour>,
}

/// What the behaviours report. A named enum (rather than the derived one)
/// because the derived one would carry the unused store type parameter.
#[derive(Debug)]
pub enum NodeEvent {
    Pointer(PointerEvent),
    Identify(Box<identify::Event>),
    Ping(ping::Event),
    Mdns(mdns::Event),
}

impl From<PointerEvent> for NodeEvent {
    fn from(e: PointerEvent) -> Self {
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

/// A TCP + QUIC swarm (noise, yamux) signing records with `keypair`.
pub fn build<S: RecordStore + 'static>(
    keypair: Keypair,
    store: S,
    config: Config,
    mdns: bool,
) -> Result<Swarm<Behaviour<S>>, Error> {
    let swarm = SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|key| -> Result<_, Error> {
            let peer = key.public().to_peer_id();
            Ok(Behaviour {
                pointer: Pointer::new(key, store, config)?,
                identify: identify::Behaviour::new(
                    identify::Config::new("/pointer/node/1".into(), key.public())
                        .with_agent_version(AGENT.into()),
                ),
                ping: ping::Behaviour::default(),
                mdns: Toggle::from(mdns.then(|| start_mdns(peer)).flatten()),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_CONNECTION_TIMEOUT))
        .build();
    Ok(swarm)
}

/// mDNS needs multicast; where there is none the node still works with
/// `--dial`, so a failure is a warning.
fn start_mdns(peer: libp2p::PeerId) -> Option<mdns::tokio::Behaviour> {
    mdns::tokio::Behaviour::new(mdns::Config::default(), peer)
        .inspect_err(|e| tracing::warn!("mDNS is off: {e}"))
        .ok()
}
