//! What any number of peers may make the node hold in connections: libp2p's
//! `connection-limits` (in total, per peer, pending) and
//! `memory-connection-limits` (no new connection while the process is near
//! the memory bound), and bounds per remote IP address, which neither
//! offers: connections at once, so that one host cannot take every slot
//! with Sybil identities, and new connections per 10 s, so that one cannot
//! make the node set connections up (handshakes, every protocol's hello)
//! in a loop.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::IpAddr;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use libp2p::core::multiaddr::Protocol;
use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    dummy, ConnectionClosed, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler,
    THandlerInEvent, THandlerOutEvent, ToSwarm,
};
use libp2p::{connection_limits, memory_connection_limits, Multiaddr, PeerId};

/// The bounds, as the command line gives them.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Established connections in total.
    pub total: u32,
    /// Established connections to one peer (a direct one and a relayed
    /// one may stand side by side while hole punching).
    pub per_peer: u32,
    /// Inbound connections still in their handshake.
    pub pending: u32,
    /// Inbound connections from one IP address.
    pub per_ip: usize,
    /// New inbound connections from one IP address per [`RATE_WINDOW`].
    pub new_per_ip: u32,
    /// No new connection once the process uses this share of the
    /// machine's memory.
    pub max_memory_fraction: f64,
}

/// The behaviours that enforce [`Limits`], for the node's swarm.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude", to_swarm = "Infallible")]
pub struct Guard {
    counts: connection_limits::Behaviour,
    memory: memory_connection_limits::Behaviour,
    per_ip: PerIp,
}

impl Guard {
    pub fn new(limits: Limits) -> Self {
        let counts = connection_limits::ConnectionLimits::default()
            .with_max_established(Some(limits.total))
            .with_max_established_per_peer(Some(limits.per_peer))
            .with_max_pending_incoming(Some(limits.pending));
        Guard {
            counts: connection_limits::Behaviour::new(counts),
            memory: memory_connection_limits::Behaviour::with_max_percentage(
                limits.max_memory_fraction,
            ),
            per_ip: PerIp::new(limits.per_ip, limits.new_per_ip),
        }
    }
}

/// The error an inbound connection over the per-IP bound is denied with.
#[derive(Debug, thiserror::Error)]
#[error("{ip} already has {limit} connections")]
pub struct TooManyFromIp {
    ip: IpAddr,
    limit: usize,
}

/// The error an inbound connection over the per-IP rate is denied with.
#[derive(Debug, thiserror::Error)]
#[error("{ip} opened {limit} connections within 10 s")]
pub struct TooFastFromIp {
    ip: IpAddr,
    limit: u32,
}

/// The window of `--max-new-connections-per-ip`.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

/// IP addresses whose rate is tracked before those with a full allowance
/// are forgotten (they would be granted as much anew).
const MAX_TRACKED_IPS: usize = 16_384;

/// Counts established inbound connections by the remote IP address, and
/// denies one past the bound; and refuses a new inbound connection, before
/// its handshake, from an address that opened `rate` within the last
/// [`RATE_WINDOW`] (a token bucket: `rate` at once, refilled over the
/// window). Relayed connections count against the relay's address, as it
/// is the host that carries them.
pub struct PerIp {
    limit: usize,
    by_ip: HashMap<IpAddr, usize>,
    of: HashMap<ConnectionId, IpAddr>,
    rate: u32,
    /// Per address: connections it may still open, and when that was.
    allowance: HashMap<IpAddr, (f64, Instant)>,
}

impl PerIp {
    pub fn new(limit: usize, rate: u32) -> Self {
        PerIp {
            limit,
            by_ip: HashMap::new(),
            of: HashMap::new(),
            rate,
            allowance: HashMap::new(),
        }
    }

    /// Takes one new connection from `ip` out of its allowance, if any is
    /// left.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        let rate = f64::from(self.rate);
        let refill = |(left, at): (f64, Instant)| {
            let earned = now.duration_since(at).as_secs_f64() / RATE_WINDOW.as_secs_f64() * rate;
            (left + earned).min(rate)
        };
        if self.allowance.len() >= MAX_TRACKED_IPS {
            self.allowance.retain(|_, entry| refill(*entry) < rate);
        }
        let left = self.allowance.get(&ip).map_or(rate, |entry| refill(*entry));
        if left < 1.0 {
            return false;
        }
        self.allowance.insert(ip, (left - 1.0, now));
        true
    }

    /// The IP address a multiaddress starts with, if any.
    fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
            Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
            _ => None,
        })
    }
}

impl NetworkBehaviour for PerIp {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = Infallible;

    fn handle_pending_inbound_connection(
        &mut self,
        _connection: ConnectionId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        let Some(ip) = Self::ip_of(remote) else {
            return Ok(());
        };
        if self.admit(ip, Instant::now()) {
            return Ok(());
        }
        let limit = self.rate;
        Err(ConnectionDenied::new(TooFastFromIp { ip, limit }))
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection: ConnectionId,
        _peer: PeerId,
        _local: &Multiaddr,
        remote: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        if let Some(ip) = Self::ip_of(remote) {
            let count = self.by_ip.entry(ip).or_default();
            if *count >= self.limit {
                let limit = self.limit;
                return Err(ConnectionDenied::new(TooManyFromIp { ip, limit }));
            }
            *count += 1;
            self.of.insert(connection, ip);
        }
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        _connection: ConnectionId,
        _peer: PeerId,
        _addr: &Multiaddr,
        _role: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        if let FromSwarm::ConnectionClosed(ConnectionClosed { connection_id, .. }) = event {
            let Some(ip) = self.of.remove(&connection_id) else {
                return;
            };
            if let Some(count) = self.by_ip.get_mut(&ip) {
                *count -= 1;
                if *count == 0 {
                    self.by_ip.remove(&ip);
                }
            }
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer: PeerId,
        _connection: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Infallible, THandlerInEvent<Self>>> {
        Poll::Pending
    }
}
