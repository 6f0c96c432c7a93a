//! A connection to a peer closes while another remains: gossip in flight
//! on it may be lost, so the node asks the peer again for the keys both
//! follow.

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output};
use crate::core::topic::Topic;
use crate::core::validator::Open;
use crate::store::MemoryStore;
use crate::wire::exchange::{Entry, Response};
use crate::Config;

const T0: i64 = 1_800_000_000_000;

fn node() -> Coordinator<MemoryStore> {
    let signer = SigningKey::from_bytes(&[9; 32]);
    Coordinator::new(
        signer,
        MemoryStore::new(),
        Config::default(),
        Box::new(Open),
        3,
    )
}

/// The keys asked of `peer` in `c`'s pending outputs; each ask is
/// answered (the peer holds none of them), as a peer would.
fn asked_of(c: &mut Coordinator<MemoryStore>, peer: PeerId) -> Vec<String> {
    c.pack_asks();
    let asks: Vec<(u64, Vec<String>)> = std::iter::from_fn(|| c.poll_output())
        .filter_map(|o| match o {
            Output::Ask {
                peer: p,
                id,
                request,
            } if p == peer => Some((id, request.keys.into_iter().map(|k| k.key).collect())),
            _ => None,
        })
        .collect();
    let mut keys = Vec::new();
    for (id, asked) in asks {
        let response = Response {
            entries: asked.iter().map(|_| Ok(Entry::NotExist)).collect(),
            ranges: Vec::new(),
        };
        c.handle(
            Input::Answered {
                id,
                result: Ok(response),
            },
            T0,
        );
        keys.extend(asked);
    }
    keys
}

#[test]
fn a_lost_connection_among_several_asks_the_peer_again_for_shared_and_lonely_keys() {
    let mut c = node();
    let (peer, other) = (PeerId::random(), PeerId::random());
    for key in ["lamp", "door", "bell"] {
        c.subscribe(key).expect("valid key");
    }
    for (p, key) in [(peer, "lamp"), (peer, "fan"), (other, "bell")] {
        c.handle(Input::Connected { peer: p }, T0);
        let topic = Topic::Key(key.into());
        c.handle(Input::PeerSubscribed { peer: p, topic }, T0);
    }
    let first = asked_of(&mut c, peer);
    assert_eq!(first, vec!["lamp".to_owned()], "asked as the peer joined");

    c.handle(Input::ConnectionLost { peer }, T0 + 1);
    let again = asked_of(&mut c, peer);
    // "lamp": both follow it; "door": no connected peer is known to
    // follow it, and the peer may be its writer; not "bell", which
    // another peer follows, nor "fan", which we do not.
    assert_eq!(again, vec!["door".to_owned(), "lamp".to_owned()]);
}

#[test]
fn a_lost_connection_of_a_peer_already_gone_asks_nothing() {
    let mut c = node();
    let peer = PeerId::random();
    c.subscribe("lamp").expect("valid key");
    c.handle(Input::Connected { peer }, T0);
    c.handle(
        Input::PeerSubscribed {
            peer,
            topic: Topic::Key("lamp".into()),
        },
        T0,
    );
    let _ = asked_of(&mut c, peer);
    c.handle(Input::Disconnected { peer }, T0 + 1);
    c.handle(Input::ConnectionLost { peer }, T0 + 2);
    assert!(asked_of(&mut c, peer).is_empty());
}
