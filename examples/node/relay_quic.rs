//! The relays the node goes through, reached over QUIC as well. DCUtR
//! punches through the addresses peers observed the node at, and a node
//! that reaches its relay over TCP alone has no UDP address observed: it
//! never tries QUIC. A home router that answers unasked TCP with a reset
//! (Linux's own default) defeats every TCP punch, while UDP gets through
//! once both sides have sent: behind such routers the two laptops of
//! `tests/kernel/nat.rs` stayed on the relay until it ended the circuit.
//!
//! So once a relay named in a circuit address (`--listen`, `--dial`) has
//! identified itself, the node dials the relay's QUIC address too, at the
//! host the user gave for it. Identify on that connection reports the
//! node's UDP address, and DCUtR offers it (see [`crate::punch`] for the
//! try that follows a new kind of address).

use std::collections::{BTreeSet, HashMap, HashSet};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

/// Most QUIC ports of one relay dialed: a relay could list any number
/// in its identify answer, and one connection is all the node wants.
const MOST_PORTS: usize = 4;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub struct RelayQuic {
    /// Each relay and the host (IP or DNS name) the user reaches it at.
    hosts: HashMap<PeerId, Protocol<'static>>,
    /// Relays dialed over QUIC since the node last lost them.
    dialed: HashSet<PeerId>,
}

impl RelayQuic {
    /// Notes the relay of `addr`, if it goes through one.
    pub fn note(&mut self, addr: &Multiaddr) {
        if let Some((relay, host)) = relay_and_host(addr) {
            self.hosts.entry(relay).or_insert(host);
        }
    }

    /// `peer` identified itself, listening on `listen`; `over_quic`: the
    /// node already has a QUIC connection to it. The addresses to dial
    /// it at over QUIC, once per time it is reached.
    pub fn identified(
        &mut self,
        peer: PeerId,
        listen: &[Multiaddr],
        over_quic: bool,
    ) -> Vec<Multiaddr> {
        let Some(host) = self.hosts.get(&peer) else {
            return Vec::new();
        };
        if over_quic || !self.dialed.insert(peer) {
            return Vec::new();
        }
        let ports: BTreeSet<u16> = listen.iter().filter_map(|l| quic_port(l, host)).collect();
        ports
            .into_iter()
            .take(MOST_PORTS)
            .map(|port| {
                Multiaddr::empty()
                    .with(host.clone())
                    .with(Protocol::Udp(port))
                    .with(Protocol::QuicV1)
                    .with(Protocol::P2p(peer))
            })
            .collect()
    }

    /// Every connection to `peer` closed: dial it over QUIC again when
    /// it is back.
    pub fn lost(&mut self, peer: &PeerId) {
        self.dialed.remove(peer);
    }
}

/// The relay of a circuit address and the host it is reached at.
fn relay_and_host(addr: &Multiaddr) -> Option<(PeerId, Protocol<'static>)> {
    let parts: Vec<Protocol> = addr.iter().collect();
    let circuit = parts.iter().position(|p| *p == Protocol::P2pCircuit)?;
    let Some(Protocol::P2p(relay)) = circuit.checked_sub(1).map(|i| &parts[i]) else {
        return None;
    };
    let host = match parts.first()? {
        h @ (Protocol::Ip4(_)
        | Protocol::Ip6(_)
        | Protocol::Dns(_)
        | Protocol::Dns4(_)
        | Protocol::Dns6(_)) => h.clone().acquire(),
        _ => return None,
    };
    Some((*relay, host))
}

/// The UDP port of `listen` if it is a QUIC address the relay can be
/// reached at through `host`: the same IP, or any IP of its family when
/// the user named it by DNS (identify lists addresses, not names).
fn quic_port(listen: &Multiaddr, host: &Protocol) -> Option<u16> {
    let mut parts = listen.iter();
    let ip = parts.next()?;
    let (Some(Protocol::Udp(port)), Some(Protocol::QuicV1)) = (parts.next(), parts.next()) else {
        return None;
    };
    let reachable = match (host, &ip) {
        (Protocol::Ip4(_) | Protocol::Ip6(_), _) => *host == ip,
        (Protocol::Dns4(_) | Protocol::Dns(_), Protocol::Ip4(a)) => !a.is_loopback(),
        (Protocol::Dns6(_) | Protocol::Dns(_), Protocol::Ip6(a)) => !a.is_loopback(),
        _ => false,
    };
    reachable.then_some(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

    fn addr(s: &str) -> Multiaddr {
        s.replace("RELAY", RELAY).parse().expect("valid")
    }

    fn relay() -> PeerId {
        RELAY.parse().expect("valid")
    }

    /// What a relay listening on TCP and QUIC on every interface reports.
    fn relay_listens() -> Vec<Multiaddr> {
        [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/127.0.0.1/udp/4001/quic-v1",
            "/ip4/10.0.1.1/tcp/4001",
            "/ip4/10.0.1.1/udp/4001/quic-v1",
            "/ip4/10.0.2.1/udp/4002/quic-v1",
        ]
        .map(addr)
        .to_vec()
    }

    #[test]
    fn a_relay_of_a_circuit_is_dialed_over_quic_at_the_host_given_once() {
        let mut quic = RelayQuic::default();
        quic.note(&addr("/ip4/10.0.1.1/tcp/4001/p2p/RELAY/p2p-circuit"));
        let dial = quic.identified(relay(), &relay_listens(), false);
        assert_eq!(dial, vec![addr("/ip4/10.0.1.1/udp/4001/quic-v1/p2p/RELAY")]);
        assert!(
            quic.identified(relay(), &relay_listens(), false).is_empty(),
            "once while the relay is connected"
        );
        quic.lost(&relay());
        assert_eq!(quic.identified(relay(), &relay_listens(), false), dial);
    }

    #[test]
    fn nothing_for_other_peers_relays_reached_over_quic_or_without_quic() {
        let mut quic = RelayQuic::default();
        assert!(quic.identified(relay(), &relay_listens(), false).is_empty());
        // The address of a peer behind the relay names it too.
        quic.note(&addr(
            "/ip4/10.0.1.1/tcp/4001/p2p/RELAY/p2p-circuit/p2p/12D3KooWPjceQrSwdWXPyLLeABRXmuqt69Rg3sBYbU1Nft9HyQ6X",
        ));
        assert!(quic.identified(relay(), &relay_listens(), true).is_empty());
        quic.lost(&relay());
        let tcp_only = [addr("/ip4/10.0.1.1/tcp/4001")];
        assert!(quic.identified(relay(), &tcp_only, false).is_empty());
        // A relay not named in any circuit address is no relay of ours.
        let mut other = RelayQuic::default();
        other.note(&addr("/ip4/10.0.1.1/tcp/4001/p2p/RELAY"));
        assert!(other
            .identified(relay(), &relay_listens(), false)
            .is_empty());
    }

    #[test]
    fn at_most_a_few_ports_of_a_relay_listing_many() {
        let mut quic = RelayQuic::default();
        quic.note(&addr("/ip4/10.0.1.1/tcp/4001/p2p/RELAY/p2p-circuit"));
        let many: Vec<Multiaddr> = (5000..6000)
            .map(|port| addr(&format!("/ip4/10.0.1.1/udp/{port}/quic-v1")))
            .collect();
        assert_eq!(quic.identified(relay(), &many, false).len(), MOST_PORTS);
    }

    #[test]
    fn a_relay_named_by_dns_is_dialed_by_that_name_on_each_quic_port() {
        let mut quic = RelayQuic::default();
        quic.note(&addr(
            "/dns4/relay.example.com/tcp/4001/p2p/RELAY/p2p-circuit",
        ));
        assert_eq!(
            quic.identified(relay(), &relay_listens(), false),
            vec![
                addr("/dns4/relay.example.com/udp/4001/quic-v1/p2p/RELAY"),
                addr("/dns4/relay.example.com/udp/4002/quic-v1/p2p/RELAY"),
            ]
        );
    }
}
