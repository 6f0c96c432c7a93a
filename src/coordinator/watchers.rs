//! Peers that watch a key from outside its topic.
//!
//! A node that deleted a key left its topic, so gossip no longer reaches
//! it; yet a later write must. Such a node asks its neighbours about the
//! key with its tombstone's version; each neighbour remembers the asker
//! here, and when its own record of the key changes it asks the watcher
//! with the new version, which makes a watcher that is behind ask back.

use std::collections::HashMap;

use libp2p::PeerId;
use smallvec::SmallVec;

/// Watchers of each key, among connected peers.
#[derive(Debug, Default)]
pub(crate) struct Watchers {
    by_key: HashMap<String, SmallVec<[PeerId; 2]>>,
}

impl Watchers {
    /// `peer` asked about `key` with a version, from outside its topic.
    pub fn add(&mut self, peer: PeerId, key: &str) {
        if let Some(peers) = self.by_key.get_mut(key) {
            if !peers.contains(&peer) {
                peers.push(peer);
            }
            return;
        }
        self.by_key
            .insert(key.to_owned(), SmallVec::from_elem(peer, 1));
    }

    /// `peer` disconnected.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.by_key.retain(|_, peers| {
            peers.retain(|p| p != peer);
            !peers.is_empty()
        });
    }

    /// The peers watching `key`, in the order they came.
    pub fn of(&self, key: &str) -> &[PeerId] {
        self.by_key.get(key).map_or(&[], |peers| peers.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_watcher_once_until_it_leaves() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut w = Watchers::default();
        w.add(a, "k");
        w.add(a, "k");
        w.add(b, "k");
        assert_eq!(w.of("k"), [a, b]);
        w.peer_gone(&a);
        assert_eq!(w.of("k"), [b]);
        w.peer_gone(&b);
        assert!(w.of("k").is_empty() && w.by_key.is_empty());
    }
}
