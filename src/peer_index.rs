//! Which connected peers stand in some relation to which key, answered in
//! constant time per key. The coordinator keeps two:
//!
//! - **followers**, as gossipsub told us. gossipsub only offers
//!   `all_peers()`, which builds every peer's topic list on each call:
//!   asking it per key made following ten thousand keys cost ten thousand
//!   times the size of the whole subscription table;
//! - **watchers**: peers that asked about a key with a version from outside
//!   its topic (a node that left the topic on a delete). When our record of
//!   the key changes we ask them with the new version, which makes a
//!   watcher that is behind ask back (spec §10).

use std::collections::HashMap;

use libp2p::PeerId;
use smallvec::SmallVec;

/// Peers of each key, among connected peers, in the order they came.
#[derive(Debug, Default)]
pub(crate) struct PeerIndex {
    by_key: HashMap<String, SmallVec<[PeerId; 4]>>,
}

impl PeerIndex {
    /// `peer` follows (or watches) `key` now.
    pub fn add(&mut self, peer: PeerId, key: &str) {
        let peers = self.by_key.entry(key.to_owned()).or_default();
        if !peers.contains(&peer) {
            peers.push(peer);
        }
    }

    /// `peer` no longer follows `key`.
    pub fn remove(&mut self, peer: &PeerId, key: &str) {
        if let Some(peers) = self.by_key.get_mut(key) {
            peers.retain(|p| p != peer);
            if peers.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// `peer` disconnected: it is attached to nothing we can reach.
    /// gossipsub does not report unsubscriptions for a peer that goes away,
    /// and a disconnection is rare enough to pay one pass over the keys.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.by_key.retain(|_, peers| {
            peers.retain(|p| p != peer);
            !peers.is_empty()
        });
    }

    /// The peers of `key`.
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
        let mut f = PeerIndex::default();
        f.add(a, "k");
        f.add(a, "k");
        f.add(b, "k");
        f.add(a, "j");
        assert_eq!(f.of("k"), [a, b]);
        f.remove(&b, "k");
        assert_eq!(f.of("k"), [a]);
        f.peer_gone(&a);
        assert!(f.of("k").is_empty() && f.of("j").is_empty());
        assert!(f.by_key.is_empty(), "no empty entries are kept");
    }
}
