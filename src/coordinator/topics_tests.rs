//! Topics a node is on as it moves from a topic per key to shard topics
//! (`auto_topic_shards`), driven input by input.

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::topic::{shard_index, Topic};
use crate::core::validator::Open;
use crate::store::MemoryStore;
use crate::Config;

const T0: i64 = 1_800_000_000_000;
const COUNT: u16 = 4;

fn node() -> Coordinator<MemoryStore> {
    let config = Config::builder()
        .auto_topic_shards(3, COUNT)
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[5; 32]);
    Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7)
}

fn drain(c: &mut Coordinator<MemoryStore>) -> Vec<Output> {
    c.pack_asks();
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn joined(outputs: &[Output]) -> Vec<Topic> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Join(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn left(outputs: &[Output]) -> Vec<Topic> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Leave(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn key(k: &str) -> Topic {
    Topic::Key(k.into())
}

#[test]
fn a_node_moves_to_shards_at_the_threshold_and_keeps_the_key_topics_peers_need() {
    let mut c = node();
    let seed_peer = PeerId::random();
    let sharded_peer = PeerId::random();
    for peer in [seed_peer, sharded_peer] {
        c.handle(Input::Connected { peer }, T0);
    }
    c.subscribe("a").expect("key ok");
    c.subscribe("b").expect("key ok");
    let out = drain(&mut c);
    assert_eq!(joined(&out), vec![key("a"), key("b")]);
    assert_eq!(c.topic_shards(), 0);

    // The third key moves the node: its key topic, then every shard of
    // its keys, each once.
    c.subscribe("c").expect("key ok");
    let out = drain(&mut c);
    assert_eq!(c.topic_shards(), COUNT);
    let mut shards: Vec<u16> = ["a", "b", "c"]
        .iter()
        .map(|k| shard_index(k, COUNT))
        .collect();
    shards.sort_unstable();
    shards.dedup();
    let expected: Vec<Topic> = std::iter::once(key("c"))
        .chain(shards.iter().map(|&index| Topic::Shard {
            count: COUNT,
            index,
        }))
        .collect();
    assert_eq!(joined(&out), expected);

    // A peer without shards is on `a`'s topic; a sharded one on `b`'s
    // topic and on `b`'s shard. At the next firing the node leaves the key
    // topics only sharded peers (or nobody) are on.
    let on = |peer, topic| Input::PeerSubscribed { peer, topic };
    c.handle(on(seed_peer, key("a")), T0);
    c.handle(on(sharded_peer, key("b")), T0);
    let b_shard = shard_index("b", COUNT);
    c.handle(
        on(
            sharded_peer,
            Topic::Shard {
                count: COUNT,
                index: b_shard,
            },
        ),
        T0,
    );
    drain(&mut c);
    c.handle(Input::Timer(Timer::Republish), T0 + 1);
    let mut gone = left(&drain(&mut c));
    gone.sort_by_key(Topic::name);
    assert_eq!(
        gone,
        vec![key("b"), key("c")],
        "a's topic stays for the seed peer"
    );

    // Once the seed peer is on a's shard too, a's topic goes as well.
    let a_shard = shard_index("a", COUNT);
    c.handle(
        on(
            seed_peer,
            Topic::Shard {
                count: COUNT,
                index: a_shard,
            },
        ),
        T0 + 2,
    );
    drain(&mut c);
    c.handle(Input::Timer(Timer::Republish), T0 + 3);
    assert_eq!(left(&drain(&mut c)), vec![key("a")]);
    // A fourth key goes on its shard only: no peer is on its own topic.
    c.subscribe("d").expect("key ok");
    let out = drain(&mut c);
    assert!(!joined(&out).contains(&key("d")), "{out:?}");
}

#[test]
fn a_node_below_the_threshold_or_with_auto_off_keeps_a_topic_per_key() {
    let config = Config::builder()
        .auto_topic_shards(0, COUNT)
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[5; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7);
    for k in ["a", "b", "c", "d"] {
        c.subscribe(k).expect("key ok");
    }
    let out = drain(&mut c);
    assert_eq!(c.topic_shards(), 0);
    assert_eq!(joined(&out).len(), 4);
    assert!(joined(&out).iter().all(|t| matches!(t, Topic::Key(_))));
}

#[test]
fn a_peer_is_needed_while_it_is_the_only_one_on_a_followed_key_or_shard() {
    let mut c = node();
    let (a, b) = (PeerId::random(), PeerId::random());
    c.subscribe("k").expect("key ok");
    for peer in [a, b] {
        c.handle(Input::Connected { peer }, T0);
        c.handle(
            Input::PeerSubscribed {
                peer,
                topic: key("k"),
            },
            T0,
        );
    }
    assert!(!c.needs_peer(&a, &[]), "another follower of k is connected");
    assert!(c.needs_peer(&a, &[b]), "the other one is being closed");
    c.handle(Input::Disconnected { peer: b }, T0);
    assert!(c.needs_peer(&a, &[]), "a is k's only neighbour");
    c.unsubscribe("k");
    assert!(!c.needs_peer(&a, &[]), "k is no longer followed");

    // On shards, the only peer on a followed key's shard.
    for k in ["k1", "k2", "k3"] {
        c.subscribe(k).expect("key ok");
    }
    let shard = Topic::shard_of("k1", COUNT);
    c.handle(
        Input::PeerSubscribed {
            peer: a,
            topic: shard,
        },
        T0,
    );
    assert!(c.needs_peer(&a, &[]));
}
