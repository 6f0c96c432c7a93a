//! Peers the node keeps connected to: every address given with `--dial`,
//! `--bootstrap` or the `dial` command. A peer lost (a partition, its
//! restart, a timeout) or a dial that failed is dialed again after a
//! backoff that doubles from 1 s to 5 s, and starts over at 1 s once a
//! connection is up. So a line of nodes split by a partition joins up again
//! when it heals, and a node restarted while its neighbours were out of
//! reach finds them when they come back, with no help from outside.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

/// The first wait before a redial.
const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between redials: short, so that a network whose
/// partition heals is joined up again within seconds (the fault suite
/// wants agreement within 10 s of the heal); each try is one dial.
/// `--redial-max-secs` sets it.
pub const MOST: Duration = Duration::from_secs(5);

/// One address to stay connected to.
#[derive(Debug)]
struct Target {
    addr: Multiaddr,
    /// From the address's `/p2p/` suffix, or learnt from the first
    /// connection it made.
    peer: Option<PeerId>,
    backoff: Duration,
    /// When to dial next; `None` while connected or being dialed.
    due: Option<Instant>,
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Redial {
    /// The longest wait between tries.
    most: Duration,
    targets: Vec<Target>,
    /// Dials in flight, by connection, to the target they are for.
    dialing: HashMap<ConnectionId, usize>,
}

impl Default for Redial {
    fn default() -> Self {
        Redial::new(MOST)
    }
}

impl Redial {
    /// Waits at most `most` between tries.
    pub fn new(most: Duration) -> Self {
        Redial {
            most,
            targets: Vec::new(),
            dialing: HashMap::new(),
        }
    }

    /// Keeps `addr` connected from now on (once per address).
    pub fn keep(&mut self, addr: Multiaddr) {
        if self.targets.iter().any(|t| t.addr == addr) {
            return;
        }
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        self.targets.push(Target {
            addr,
            peer,
            backoff: FIRST,
            due: None,
        });
    }

    /// A dial of `addr` went out as `connection`.
    pub fn dialing(&mut self, addr: &Multiaddr, connection: ConnectionId) {
        if let Some(i) = self.targets.iter().position(|t| t.addr == *addr) {
            self.targets[i].due = None;
            self.dialing.insert(connection, i);
        }
    }

    /// A connection to `peer` is up (`connection` may be one of ours).
    pub fn connected(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(i) = self.dialing.remove(&connection) {
            self.targets[i].peer.get_or_insert(peer);
        }
        for target in self.targets.iter_mut().filter(|t| t.peer == Some(peer)) {
            target.backoff = FIRST;
            target.due = None;
        }
    }

    /// The last connection to `peer` closed at `now`: its targets are
    /// dialed again after their backoff.
    pub fn lost(&mut self, peer: PeerId, now: Instant) {
        for target in self.targets.iter_mut().filter(|t| t.peer == Some(peer)) {
            target.due = Some(now + target.backoff);
        }
    }

    /// The dial `connection` failed at `now`: tried again after a backoff
    /// twice as long.
    pub fn failed(&mut self, connection: ConnectionId, now: Instant) {
        let Some(i) = self.dialing.remove(&connection) else {
            return;
        };
        let target = &mut self.targets[i];
        target.due = Some(now + target.backoff);
        target.backoff = (target.backoff * 2).min(self.most);
    }

    /// Addresses due for a dial at `now`; each is not due again until its
    /// dial fails or its connection is lost.
    pub fn due(&mut self, now: Instant) -> Vec<Multiaddr> {
        self.targets
            .iter_mut()
            .filter(|t| t.due.is_some_and(|due| due <= now))
            .map(|t| {
                t.due = None;
                t.addr.clone()
            })
            .collect()
    }

    /// When the next dial is due, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.targets.iter().filter_map(|t| t.due).min()
    }
}
