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

use crate::retry::{self, Retry};

/// One address to stay connected to.
#[derive(Debug)]
struct Target {
    retry: Retry,
    /// From the address's `/p2p/` suffix, or learnt from the first
    /// connection it made.
    peer: Option<PeerId>,
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
        Redial::new(retry::MOST)
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
        if self.targets.iter().any(|t| t.retry.addr == addr) {
            return;
        }
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(peer)) => Some(peer),
            _ => None,
        };
        self.targets.push(Target {
            retry: Retry::new(addr),
            peer,
        });
    }

    /// A dial of `addr` went out as `connection`.
    pub fn dialing(&mut self, addr: &Multiaddr, connection: ConnectionId) {
        if let Some(i) = self.targets.iter().position(|t| t.retry.addr == *addr) {
            self.targets[i].retry.trying();
            self.dialing.insert(connection, i);
        }
    }

    /// A connection to `peer` is up (`connection` may be one of ours).
    pub fn connected(&mut self, peer: PeerId, connection: ConnectionId) {
        if let Some(i) = self.dialing.remove(&connection) {
            self.targets[i].peer.get_or_insert(peer);
        }
        for target in self.targets.iter_mut().filter(|t| t.peer == Some(peer)) {
            target.retry.succeeded();
        }
    }

    /// The last connection to `peer` closed at `now`: its targets are
    /// dialed again after their backoff.
    pub fn lost(&mut self, peer: PeerId, now: Instant) {
        for target in self.targets.iter_mut().filter(|t| t.peer == Some(peer)) {
            target.retry.lost(now);
        }
    }

    /// The dial `connection` failed at `now`: tried again after a backoff
    /// twice as long.
    pub fn failed(&mut self, connection: ConnectionId, now: Instant) {
        if let Some(i) = self.dialing.remove(&connection) {
            self.targets[i].retry.failed(now, self.most);
        }
    }

    /// Addresses due for a dial at `now`; each is not due again until its
    /// dial fails or its connection is lost.
    pub fn due(&mut self, now: Instant) -> Vec<Multiaddr> {
        self.targets
            .iter_mut()
            .filter_map(|t| t.retry.take_if_due(now))
            .collect()
    }

    /// When the next dial is due, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.targets.iter().filter_map(|t| t.retry.due()).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The redial schedule: a lost peer is dialed again after 1 s, a failed
    /// dial after a backoff that doubles up to 5 s, and a connection
    /// resets it.
    #[test]
    fn lost_peers_are_dialed_again_with_a_doubling_backoff() {
        let peer = libp2p::PeerId::random();
        let addr: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .expect("address");
        let mut r = Redial::default();
        r.keep(addr.clone());
        let t0 = Instant::now();
        let first = ConnectionId::new_unchecked(1);
        r.dialing(&addr, first);
        r.connected(peer, first);
        assert_eq!(r.next_due(), None, "connected: nothing to do");
        r.lost(peer, t0);
        assert_eq!(r.next_due(), Some(t0 + Duration::from_secs(1)));
        assert!(r.due(t0).is_empty());
        let mut at = t0 + Duration::from_secs(1);
        let mut waits = Vec::new();
        for n in 2..10 {
            assert_eq!(r.due(at), vec![addr.clone()]);
            assert_eq!(r.next_due(), None, "not due again while dialing");
            let dial = ConnectionId::new_unchecked(n);
            r.dialing(&addr, dial);
            r.failed(dial, at);
            let next = r.next_due().expect("due again");
            waits.push((next - at).as_secs());
            at = next;
        }
        assert_eq!(waits, vec![1, 2, 4, 5, 5, 5, 5, 5]);
        // An inbound connection from the peer ends the backoff.
        r.connected(peer, ConnectionId::new_unchecked(99));
        assert_eq!(r.next_due(), None);
        r.lost(peer, at);
        assert_eq!(r.next_due(), Some(at + Duration::from_secs(1)));
    }
}
