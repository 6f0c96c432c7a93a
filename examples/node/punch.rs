//! Hole punching tried again. DCUtR tries to punch a direct connection
//! once per relayed connection, when it opens, and gives up after three
//! attempts within milliseconds: a NAT that was not ready (a mapping not
//! yet made, a router that answered with a reset) leaves the pair on the
//! relay until the relay ends the circuit. The side that dialed through
//! the relay therefore opens a fresh relayed connection to a peer it
//! reaches only through relays, after a wait that doubles from 30 s to
//! 16 times that (`--punch-retry-secs`; 0 turns the tries off), and DCUtR
//! tries again on it. The first address the node is observed at on a
//! transport (TCP, QUIC) makes every try due at once: DCUtR offers it on
//! the next relayed connection. A direct connection ends the tries;
//! losing the peer ends them too (the redials take over).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// The first wait before another try, by default.
pub const FIRST: Duration = Duration::from_secs(30);
/// The longest wait between tries, as a multiple of the first: each try
/// costs the relay a circuit.
const MOST_TIMES_FIRST: u32 = 16;

#[derive(Debug)]
struct Target {
    /// The relayed address the peer was dialed at.
    addr: Multiaddr,
    backoff: Duration,
    due: Instant,
}

/// See the [module docs](self).
#[derive(Debug)]
pub struct Punch {
    /// The first wait; `None`: no tries.
    first: Option<Duration>,
    targets: HashMap<PeerId, Target>,
    /// The transports the node has been observed on.
    observed: HashSet<Transport>,
}

/// A transport DCUtR can punch through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Transport {
    Tcp,
    Quic,
}

impl Default for Punch {
    fn default() -> Self {
        Punch::new(Some(FIRST))
    }
}

/// Whether `addr` goes through a relay.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

impl Punch {
    /// Tries after `first`, doubling; `None` never tries.
    pub fn new(first: Option<Duration>) -> Self {
        Punch {
            first,
            targets: HashMap::new(),
            observed: HashSet::new(),
        }
    }

    /// A connection to `peer` opened at `now`: `dialed` is the address
    /// this node dialed, `None` for a connection the peer opened.
    pub fn connected(
        &mut self,
        peer: PeerId,
        dialed: Option<&Multiaddr>,
        remote: &Multiaddr,
        now: Instant,
    ) {
        if !is_relayed(remote) {
            self.targets.remove(&peer);
            return;
        }
        let (Some(first), Some(addr)) = (self.first, dialed.filter(|a| is_relayed(a))) else {
            return;
        };
        self.targets.entry(peer).or_insert_with(|| Target {
            addr: addr.clone(),
            backoff: first,
            due: now + first,
        });
    }

    /// The node was observed at `addr`. If it is the first address of
    /// its transport (TCP or QUIC) the node was observed at, DCUtR can now
    /// offer what it could not when the relayed connections opened (a
    /// relay reached over QUIC after the circuit, or an identify answer
    /// that came after it): every try is due at `now`, the waits unchanged.
    pub fn observed(&mut self, addr: &Multiaddr, now: Instant) {
        let transport = if addr.iter().any(|p| p == Protocol::QuicV1) {
            Transport::Quic
        } else if addr.iter().any(|p| matches!(p, Protocol::Tcp(_))) {
            Transport::Tcp
        } else {
            return;
        };
        if self.observed.insert(transport) {
            for target in self.targets.values_mut() {
                target.due = target.due.min(now);
            }
        }
    }

    /// Every connection to `peer` closed.
    pub fn lost(&mut self, peer: &PeerId) {
        self.targets.remove(peer);
    }

    /// The peers and relayed addresses due for another try at `now`; each
    /// is due again after twice the wait.
    pub fn due(&mut self, now: Instant) -> Vec<(PeerId, Multiaddr)> {
        let most = self.first.unwrap_or_default() * MOST_TIMES_FIRST;
        self.targets
            .iter_mut()
            .filter(|(_, t)| t.due <= now)
            .map(|(peer, t)| {
                t.backoff = (t.backoff * 2).min(most);
                t.due = now + t.backoff;
                (*peer, t.addr.clone())
            })
            .collect()
    }

    /// When the next try is due, if any is.
    pub fn next_due(&self) -> Option<Instant> {
        self.targets.values().map(|t| t.due).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    fn circuit(peer: &PeerId) -> Multiaddr {
        format!("/ip4/10.0.0.1/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{peer}")
            .parse()
            .expect("valid")
    }

    #[test]
    fn a_peer_reached_only_through_a_relay_is_tried_again_until_direct() {
        let mut punch = Punch::default();
        let peer = PeerId::random();
        let addr = circuit(&peer);
        let now = Instant::now();
        punch.connected(peer, Some(&addr), &addr, now);
        assert!(punch.due(now).is_empty(), "not at once: DCUtR is trying");
        assert_eq!(punch.due(now + FIRST), vec![(peer, addr.clone())]);
        assert_eq!(
            punch.next_due(),
            Some(now + FIRST + 2 * FIRST),
            "the wait doubles"
        );

        // Another relayed connection (the retry) changes nothing; a direct
        // one ends the tries.
        punch.connected(peer, Some(&addr), &addr, now + FIRST);
        assert_eq!(punch.next_due(), Some(now + 3 * FIRST));
        let direct: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().expect("valid");
        punch.connected(peer, None, &direct, now + FIRST);
        assert_eq!(punch.next_due(), None);
    }

    #[test]
    fn only_the_side_that_dialed_through_the_relay_tries_and_never_past_most() {
        let mut punch = Punch::default();
        let peer = PeerId::random();
        let addr = circuit(&peer);
        let now = Instant::now();
        punch.connected(peer, None, &addr, now);
        assert_eq!(
            punch.next_due(),
            None,
            "the listening side cannot dial back"
        );

        punch.connected(peer, Some(&addr), &addr, now);
        let mut at = now;
        for _ in 0..20 {
            at = punch.next_due().expect("due");
            let _ = punch.due(at);
        }
        assert_eq!(punch.next_due(), Some(at + FIRST * MOST_TIMES_FIRST));
        punch.lost(&peer);
        assert_eq!(
            punch.next_due(),
            None,
            "a lost peer is the redials' business"
        );
    }

    #[test]
    fn the_first_address_observed_of_a_transport_makes_the_tries_due_now() {
        let mut punch = Punch::default();
        let peer = PeerId::random();
        let addr = circuit(&peer);
        let now = Instant::now();
        punch.connected(peer, Some(&addr), &addr, now);
        let tcp: Multiaddr = "/ip4/10.0.0.2/tcp/4001".parse().expect("valid");
        let quic: Multiaddr = "/ip4/10.0.0.2/udp/4001/quic-v1".parse().expect("valid");
        let later = now + Duration::from_secs(1);
        punch.observed(&tcp, later);
        assert_eq!(punch.next_due(), Some(later), "TCP is new");
        assert_eq!(punch.due(later), vec![(peer, addr.clone())]);
        let due = punch.next_due();
        punch.observed(&tcp, later);
        punch.observed(&"/ip4/10.0.0.2/tcp/4002".parse().expect("valid"), later);
        assert_eq!(punch.next_due(), due, "TCP again is nothing new");
        punch.observed(&quic, later);
        assert_eq!(punch.next_due(), Some(later), "QUIC is new");
    }

    #[test]
    fn no_tries_when_turned_off() {
        let mut punch = Punch::new(None);
        let peer = PeerId::random();
        let addr = circuit(&peer);
        punch.connected(peer, Some(&addr), &addr, Instant::now());
        assert_eq!(punch.next_due(), None);
    }
}
