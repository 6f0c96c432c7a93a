//! Connections the DHT opened for its own queries, closed once they have
//! lingered.
//!
//! Kademlia dials whatever peers its walks pass through. When such a peer
//! follows one of our keys, gossipsub meshes it and keeps the connection
//! alive for good, so in a network of a few dozen nodes that follow the
//! same keys nearly every node ends up connected to every other (419 to
//! 435 links among 30 nodes, where the graph dialed had 84): each write
//! then reaches each node over more mesh links, at up to twice the CPU. A connection
//! kad dialed is therefore closed [`Config::dht_connection_linger`] after
//! it opened, unless Pointer needs the peer: it is the only connected peer
//! on some key or shard we follow. Peers Pointer's discovery dials, the
//! user dials, or that dial us are never closed here.
//!
//! [`Config::dht_connection_linger`]: crate::Config::dht_connection_linger

use std::collections::HashMap;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::FutureExt;
use futures_timer::Delay;
use libp2p::swarm::ConnectionId;
use libp2p::PeerId;

/// The connections kad dialed, and when they opened.
#[derive(Default)]
pub(super) struct DhtLinks {
    linger: Option<Duration>,
    /// Dials kad asked for that have not yet ended, and their peer when
    /// the dial names one.
    dialing: HashMap<ConnectionId, Option<PeerId>>,
    /// Connections closed here whose close the swarm has not reported
    /// yet: their peers no longer count as neighbours.
    closing: HashMap<ConnectionId, PeerId>,
    /// Connections kad dialed that are up, and when they opened (ms
    /// since the Unix epoch).
    open: HashMap<ConnectionId, (PeerId, i64)>,
    timer: Option<Delay>,
}

impl DhtLinks {
    /// `linger`: how long a connection kad dialed stays open; `None`
    /// keeps them.
    pub(super) fn new(linger: Option<Duration>) -> Self {
        DhtLinks {
            linger,
            ..Self::default()
        }
    }

    /// kad asked the swarm for connection `id` (to `peer`, if named).
    pub(super) fn dialing(&mut self, id: ConnectionId, peer: Option<PeerId>) {
        if self.linger.is_some() {
            self.dialing.insert(id, peer);
        }
    }

    /// Connection `id` to `peer` is up. If kad dialed it, its linger
    /// starts.
    pub(super) fn established(&mut self, id: ConnectionId, peer: PeerId, now_ms: i64) {
        let Some(linger) = self.linger else { return };
        if self.dialing.remove(&id).is_some() {
            tracing::debug!(%peer, "a connection the DHT dialed is up");
            self.open.insert(id, (peer, now_ms));
            if self.timer.is_none() {
                self.timer = Some(Delay::new(linger));
            }
        }
    }

    /// Connection `id` closed, or its dial failed.
    pub(super) fn ended(&mut self, id: ConnectionId) {
        self.dialing.remove(&id);
        self.open.remove(&id);
        self.closing.remove(&id);
    }

    /// Pointer wants `peer` (its discovery dials it): its connections, up
    /// or still being dialed by kad, are kept. Pointer's own dial of a peer
    /// kad is dialing is dropped by the swarm, so kad's is the one it gets.
    pub(super) fn wanted(&mut self, peer: PeerId) {
        self.open.retain(|_, (p, _)| *p != peer);
        self.dialing.retain(|_, p| *p != Some(peer));
    }

    /// The connections whose linger is over, once the check is due; those
    /// `needed` says Pointer needs are kept and never asked about again.
    /// `needed` is given the peers whose connections are being closed,
    /// which no longer count as neighbours: two links due together to the
    /// only two followers of a key are not both closed.
    pub(super) fn poll_due(
        &mut self,
        cx: &mut Context<'_>,
        now_ms: i64,
        mut needed: impl FnMut(PeerId, &[PeerId]) -> bool,
    ) -> Vec<(PeerId, ConnectionId)> {
        let (Some(linger), Some(timer)) = (self.linger, self.timer.as_mut()) else {
            return Vec::new();
        };
        if timer.poll_unpin(cx) == Poll::Pending {
            return Vec::new();
        }
        let linger_ms = i64::try_from(linger.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<(ConnectionId, PeerId)> = self
            .open
            .iter()
            .filter(|(_, (_, at))| now_ms.saturating_sub(*at) >= linger_ms)
            .map(|(id, (peer, _))| (*id, *peer))
            .collect();
        let mut close = Vec::new();
        for (id, peer) in due {
            self.open.remove(&id);
            let leaving: Vec<PeerId> = self.closing.values().copied().collect();
            if needed(peer, &leaving) {
                tracing::debug!(%peer, "keeping a connection the DHT dialed: the peer is needed");
            } else {
                tracing::debug!(%peer, "closing a connection the DHT dialed");
                self.closing.insert(id, peer);
                close.push((peer, id));
            }
        }
        // The next check is when the oldest connection left is due.
        let next = self.open.values().map(|(_, at)| *at).min();
        self.timer = next.map(|at| {
            let due_ms = at.saturating_add(linger_ms).saturating_sub(now_ms).max(0);
            Delay::new(Duration::from_millis(u64::try_from(due_ms).unwrap_or(0)))
        });
        if let Some(timer) = self.timer.as_mut() {
            // Registers the waker for the next check.
            let _ = timer.poll_unpin(cx);
        }
        close
    }
}
