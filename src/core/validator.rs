//! Who may write a key.
//!
//! A [`Validator`] is asked, after the signature checked out, whether the
//! record's author may write the record's key. Three policies ship ready:
//! [`OwnedKeys`] (the default), [`AllowList`] and [`Open`]. Any
//! `Fn(&str, &Author) -> bool + Send + 'static` is a validator too.

use std::collections::HashSet;

use libp2p::multihash::Multihash;
use libp2p::PeerId;

use crate::core::record::Author;

/// Decides whether `author` may write `key`.
pub trait Validator: Send + 'static {
    /// `true` if a record for `key` signed by `author` may be stored.
    fn may_write(&self, key: &str, author: &Author) -> bool;
}

impl Validator for Box<dyn Validator> {
    fn may_write(&self, key: &str, author: &Author) -> bool {
        (**self).may_write(key, author)
    }
}

impl<F> Validator for F
where
    F: Fn(&str, &Author) -> bool + Send + 'static,
{
    fn may_write(&self, key: &str, author: &Author) -> bool {
        self(key, author)
    }
}

/// Single-writer keys, IPNS style: a key `"<PeerId>/<name>"` may be written
/// only by the Ed25519 key of that `PeerId`. Keys of any other shape are
/// refused. This is the default policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct OwnedKeys;

impl OwnedKeys {
    /// The key `"<owner>/<name>"`, which only `owner` may write.
    pub fn key(owner: &PeerId, name: &str) -> String {
        format!("{owner}/{name}")
    }

    /// The owner named by a key, if the key has the owned shape.
    pub fn owner(key: &str) -> Option<PeerId> {
        let (owner, _) = key.split_once('/')?;
        owner.parse().ok()
    }
}

impl Validator for OwnedKeys {
    fn may_write(&self, key: &str, author: &Author) -> bool {
        Self::owner(key).is_some_and(|owner| owner == peer_id_of(author))
    }
}

/// The `PeerId` of the Ed25519 key `author`: the identity multihash of the
/// protobuf-encoded public key. [`Author::peer_id`] gives the same id but
/// decompresses the curve point first to refuse invalid bytes (3 µs on
/// every record); validators need not, because the signature has been
/// verified, which checks the point, before any validator is asked.
fn peer_id_of(author: &Author) -> PeerId {
    /// Protobuf `PublicKey { Type = Ed25519, Data = <32 bytes> }` header.
    const ED25519_KEY_HEADER: [u8; 4] = [0x08, 0x01, 0x12, 0x20];
    const IDENTITY: u64 = 0x00;
    let mut encoded = [0u8; 36];
    encoded[..4].copy_from_slice(&ED25519_KEY_HEADER);
    encoded[4..].copy_from_slice(author.as_bytes());
    let multihash = Multihash::wrap(IDENTITY, &encoded).expect("36 bytes fit a 64-byte multihash");
    PeerId::from_multihash(multihash).expect("an identity multihash of 36 bytes is a PeerId")
}

/// A fixed set of authors may write any key: a team's cluster.
#[derive(Debug, Clone, Default)]
pub struct AllowList {
    authors: HashSet<PeerId>,
}

impl AllowList {
    /// Allows exactly these peers (their Ed25519 identities) to write.
    pub fn new(peers: impl IntoIterator<Item = PeerId>) -> Self {
        AllowList {
            authors: peers.into_iter().collect(),
        }
    }
}

impl Validator for AllowList {
    fn may_write(&self, _key: &str, author: &Author) -> bool {
        self.authors.contains(&peer_id_of(author))
    }
}

/// Any valid signature may write any key; the newest record wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Validator for Open {
    fn may_write(&self, _key: &str, _author: &Author) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::signing_key;
    use libp2p::identity::Keypair;

    fn author_of(kp: &Keypair) -> Author {
        Author::from(&signing_key(kp).expect("ed25519"))
    }

    #[test]
    fn owned_keys_admit_only_the_owner() {
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let key = OwnedKeys::key(&alice.public().to_peer_id(), "profile");
        assert!(OwnedKeys.may_write(&key, &author_of(&alice)));
        assert!(!OwnedKeys.may_write(&key, &author_of(&bob)));
    }

    #[test]
    fn peer_id_of_an_author_is_its_libp2p_peer_id() {
        for _ in 0..32 {
            let keypair = Keypair::generate_ed25519();
            let author = author_of(&keypair);
            assert_eq!(peer_id_of(&author), keypair.public().to_peer_id());
            assert_eq!(Some(peer_id_of(&author)), author.peer_id());
        }
    }

    #[test]
    fn owned_keys_refuse_keys_without_an_owner() {
        let alice = Keypair::generate_ed25519();
        for key in ["plain", "not-a-peer/name", "", "/name"] {
            assert!(!OwnedKeys.may_write(key, &author_of(&alice)), "{key}");
        }
    }

    #[test]
    fn allow_list_admits_listed_authors_on_any_key() {
        let (alice, bob) = (Keypair::generate_ed25519(), Keypair::generate_ed25519());
        let list = AllowList::new([alice.public().to_peer_id()]);
        assert!(list.may_write("anything", &author_of(&alice)));
        assert!(!list.may_write("anything", &author_of(&bob)));
    }

    #[test]
    fn open_and_closures_are_validators() {
        let alice = author_of(&Keypair::generate_ed25519());
        assert!(Open.may_write("k", &alice));
        let only_public = |key: &str, _: &Author| key.starts_with("public/");
        assert!(only_public.may_write("public/x", &alice));
        assert!(!only_public.may_write("private/x", &alice));
    }
}
