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

use std::collections::{BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use libp2p::PeerId;
use smallvec::SmallVec;

/// What one (peer, key) entry costs the node, as measured under a
/// subscription flood (`tests/nodes/flood.rs`): the key about four times
/// (ours, gossipsub's, and what decoding and allocator slack leave
/// resident) plus this much of index and set state.
pub(crate) const ENTRY_OVERHEAD: usize = 256;

/// How many times an entry's key counts (see [`ENTRY_OVERHEAD`]).
pub(crate) const KEY_COPIES: usize = 4;

/// Peers of each key, among connected peers, in the order they came, and
/// the keys of each peer, so a departure costs the peer's keys only.
#[derive(Debug, Default)]
pub(crate) struct PeerIndex {
    by_key: HashMap<Arc<str>, SmallVec<[PeerId; 4]>>,
    by_peer: HashMap<PeerId, Peer>,
    bytes: usize,
}

#[derive(Debug, Default)]
struct Peer {
    /// Ordered, so that the keys of a peer within a key range are found
    /// without reading the others ([`PeerIndex::keys_in`]).
    keys: BTreeSet<Arc<str>>,
    bytes: usize,
}

fn cost(key: &str) -> usize {
    KEY_COPIES * key.len() + ENTRY_OVERHEAD
}

impl PeerIndex {
    /// `peer` follows (or watches) `key` now.
    pub fn add(&mut self, peer: PeerId, key: &str) {
        let entry = self.by_peer.entry(peer).or_default();
        if entry.keys.contains(key) {
            return;
        }
        let key: Arc<str> = match self.by_key.get_key_value(key) {
            Some((shared, _)) => shared.clone(),
            None => Arc::from(key),
        };
        entry.keys.insert(key.clone());
        entry.bytes += cost(&key);
        self.bytes += cost(&key);
        self.by_key.entry(key).or_default().push(peer);
    }

    /// `peer` no longer follows `key`.
    pub fn remove(&mut self, peer: &PeerId, key: &str) {
        let Some(entry) = self.by_peer.get_mut(peer) else {
            return;
        };
        if !entry.keys.remove(key) {
            return;
        }
        entry.bytes -= cost(key);
        self.bytes -= cost(key);
        if entry.keys.is_empty() {
            self.by_peer.remove(peer);
        }
        self.unlink(peer, key);
    }

    fn unlink(&mut self, peer: &PeerId, key: &str) {
        if let Some(peers) = self.by_key.get_mut(key) {
            peers.retain(|p| p != peer);
            if peers.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    /// `peer` disconnected: it is attached to nothing we can reach
    /// (gossipsub does not report unsubscriptions for a peer that goes
    /// away). Costs the peer's own keys, not the whole index.
    pub fn peer_gone(&mut self, peer: &PeerId) {
        let Some(entry) = self.by_peer.remove(peer) else {
            return;
        };
        self.bytes -= entry.bytes;
        for key in entry.keys {
            self.unlink(peer, &key);
        }
    }

    /// The peers of `key`.
    pub fn of(&self, key: &str) -> &[PeerId] {
        self.by_key.get(key).map_or(&[], |peers| peers.as_slice())
    }

    /// The keys `peer` is attached to from `lower` (included) to `upper`
    /// (excluded; `None` for no end), in order. Costs those keys, not the
    /// peer's others.
    pub fn keys_in(&self, peer: &PeerId, lower: &str, upper: Option<&str>) -> Vec<String> {
        let Some(entry) = self.by_peer.get(peer) else {
            return Vec::new();
        };
        if upper.is_some_and(|u| u <= lower) {
            return Vec::new();
        }
        let upper = upper.map_or(Bound::Unbounded, Bound::Excluded);
        entry
            .keys
            .range::<str, _>((Bound::Included(lower), upper))
            .map(|k| k.to_string())
            .collect()
    }

    /// How many keys `peer` is attached to.
    pub fn count_of(&self, peer: &PeerId) -> usize {
        self.by_peer.get(peer).map_or(0, |p| p.keys.len())
    }

    /// The bytes the whole index accounts for (keys and a fixed overhead
    /// per entry).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The peer whose entries weigh most on us: the most bytes in keys for
    /// which `charged` holds, and among peers equal in those, the most
    /// bytes in all. Reads every entry, so it is for the rare moment a
    /// bound is passed.
    pub fn heaviest_by(&self, charged: impl Fn(&str) -> bool) -> Option<PeerId> {
        self.by_peer
            .iter()
            .max_by_key(|(_, p)| {
                let keys = p.keys.iter().filter(|k| charged(k));
                (keys.map(|k| cost(k)).sum::<usize>(), p.bytes)
            })
            .map(|(peer, _)| *peer)
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
        assert_eq!((f.count_of(&a), f.count_of(&b)), (2, 0));
        assert_eq!(f.bytes(), 2 * (KEY_COPIES + ENTRY_OVERHEAD));
        assert_eq!(f.heaviest_by(|_| true), Some(a));
        f.add(b, "i");
        assert_eq!(
            f.heaviest_by(|k| k == "i"),
            Some(b),
            "what is charged counts first"
        );
        assert_eq!(f.heaviest_by(|_| false), Some(a), "then all it holds");
        f.remove(&b, "i");
        f.peer_gone(&a);
        assert!(f.of("k").is_empty() && f.of("j").is_empty());
        assert!(f.by_key.is_empty(), "no empty entries are kept");
        assert!(f.by_peer.is_empty() && f.bytes() == 0);
    }
}
