//! Which connected peers follow which key, as gossipsub told us.
//!
//! gossipsub only offers `all_peers()`, which builds every peer's topic list
//! on each call: asking it per key made following ten thousand keys cost
//! ten thousand times the size of the whole subscription table. This index
//! answers "who follows this key" in constant time.

use std::collections::HashMap;

use libp2p::PeerId;
use smallvec::SmallVec;

/// Followers of each key, among connected peers.
#[derive(Debug, Default)]
pub(crate) struct Followers {
    by_key: HashMap<String, SmallVec<[PeerId; 4]>>,
}

impl Followers {
    /// `peer` subscribed to the topic of `key`.
    pub fn subscribed(&mut self, peer: PeerId, key: &str) {
        let peers = self.by_key.entry(key.to_owned()).or_default();
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    /// `peer` left the topic of `key`.
    pub fn unsubscribed(&mut self, peer: &PeerId, key: &str) {
        if let Some(peers) = self.by_key.get_mut(key) {
            peers.retain(|p| p != peer);
            if peers.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// `peer` disconnected: it follows nothing we can reach. gossipsub does
    /// not report unsubscriptions for a peer that goes away, and a
    /// disconnection is rare enough to pay one pass over the keys.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.by_key.retain(|_, peers| {
            peers.retain(|p| p != peer);
            !peers.is_empty()
        });
    }

    /// The peers following `key`.
    pub fn of(&self, key: &str) -> &[PeerId] {
        self.by_key.get(key).map_or(&[], |peers| peers.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_subscriptions_and_departures() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut f = Followers::default();
        f.subscribed(a, "k");
        f.subscribed(a, "k");
        f.subscribed(b, "k");
        f.subscribed(a, "j");
        assert_eq!(f.of("k"), [a, b]);
        f.unsubscribed(&b, "k");
        assert_eq!(f.of("k"), [a]);
        f.peer_gone(&a);
        assert!(f.of("k").is_empty() && f.of("j").is_empty());
        assert!(f.by_key.is_empty(), "no empty entries are kept");
    }
}
