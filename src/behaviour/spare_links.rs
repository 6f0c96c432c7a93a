//! Connections whose gossipsub handler may sit idle with messages queued.
//!
//! gossipsub 0.50 keeps one send queue per peer, shared by the handlers of
//! all its connections; a handler opens its outbound stream only when it
//! is polled and finds the queue non-empty, and until then it registers no
//! wake-up for new messages. The first connection to a peer opens its
//! stream at once (the subscriptions are queued for it); a second one
//! (a direct connection beside a relayed one, a second circuit) usually
//! never does while the first takes every message. When the first closes,
//! what is published next waits in the queue until something else polls
//! the second one's task (its ping, up to 15 s later): a node-program run
//! behind NAT routers waited past its 5 s bound this way.
//!
//! So such connections are kept here, and after each publish and each
//! accepted message the behaviour sends their handlers a no-op
//! ([`HandlerIn::Wake`](crate::handler::HandlerIn::Wake)), which makes
//! the connection's task poll every handler on it, gossipsub's included.
//! A connection is spare when it opened while the peer had another, or
//! when another connection of its peer closed; it stays so until it
//! closes (whether gossipsub's handler has its stream is not visible from
//! here), so the cost is one event per such connection per message.

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use libp2p::PeerId;

/// See the [module docs](self).
#[derive(Debug, Default)]
pub(crate) struct SpareLinks {
    links: HashMap<ConnectionId, PeerId>,
}

impl SpareLinks {
    /// `connection` to `peer` opened; `others` are the peer's other
    /// connections.
    pub(crate) fn opened(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        others: &[ConnectionId],
    ) {
        if !others.is_empty() {
            self.links.insert(connection, peer);
        }
    }

    /// `connection` closed; `remaining` are its peer's connections left.
    pub(crate) fn closed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remaining: &[ConnectionId],
    ) {
        self.links.remove(&connection);
        for c in remaining {
            self.links.insert(*c, peer);
        }
    }

    /// The connections to wake after a message was queued.
    pub(crate) fn all(&self) -> impl Iterator<Item = (PeerId, ConnectionId)> + '_ {
        self.links.iter().map(|(c, p)| (*p, *c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_connection_and_the_survivors_of_a_close_are_spare() {
        let mut spare = SpareLinks::default();
        let peer = PeerId::random();
        let (first, second) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        spare.opened(peer, first, &[]);
        assert_eq!(
            spare.all().count(),
            0,
            "a peer's only connection has its stream"
        );
        spare.opened(peer, second, &[first]);
        assert_eq!(spare.all().collect::<Vec<_>>(), vec![(peer, second)]);

        // The first closes: the second stays spare; once it closes too,
        // nothing is left.
        spare.closed(peer, first, &[second]);
        assert_eq!(spare.all().collect::<Vec<_>>(), vec![(peer, second)]);
        spare.closed(peer, second, &[]);
        assert_eq!(spare.all().count(), 0);
    }

    #[test]
    fn when_the_second_closes_first_the_first_is_spare_too() {
        let mut spare = SpareLinks::default();
        let peer = PeerId::random();
        let (first, second) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        spare.opened(peer, first, &[]);
        spare.opened(peer, second, &[first]);
        spare.closed(peer, second, &[first]);
        assert_eq!(spare.all().collect::<Vec<_>>(), vec![(peer, first)]);
    }
}
