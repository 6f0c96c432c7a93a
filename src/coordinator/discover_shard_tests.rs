//! Discovery on shard topics: a node that follows keys in bulk advertises
//! and looks up its shards, not its keys, and a node on a topic per key
//! still finds followers that advertise only their shards.

use std::collections::BTreeSet;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::topic::Topic;
use crate::core::validator::Open;
use crate::store::MemoryStore;
use crate::{Config, ConfigBuilder};

const T0: i64 = 1_800_000_000_000;
const COUNT: u16 = 16;

fn node(config: ConfigBuilder) -> Coordinator<MemoryStore> {
    let config = config.build().expect("valid config");
    let signer = SigningKey::from_bytes(&[9; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 9);
    c.enable_discovery();
    c
}

fn drain(c: &mut Coordinator<MemoryStore>) -> Vec<Output> {
    c.pack_asks();
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// Every DHT operation the node starts over `secs` seconds of ticks from
/// `from` (enough for the bucket to let all queued work out).
fn ticks(c: &mut Coordinator<MemoryStore>, from: i64, secs: i64) -> Vec<Output> {
    let mut out = drain(c);
    for s in 0..secs {
        c.handle(Input::Timer(Timer::Discover), from + s * 1000);
        out.extend(drain(c));
    }
    out
}

fn provided(out: &[Output]) -> Vec<Topic> {
    out.iter()
        .filter_map(|o| match o {
            Output::Provide(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn looked_up(out: &[Output]) -> Vec<Topic> {
    out.iter()
        .filter_map(|o| match o {
            Output::FindProviders(t) => Some(t.clone()),
            _ => None,
        })
        .collect()
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k/{i}")).collect()
}

fn is_shard(t: &Topic) -> bool {
    matches!(t, Topic::Shard { count: COUNT, .. })
}

#[test]
fn a_node_on_shards_advertises_and_looks_up_each_shard_once_however_many_keys() {
    let mut c = node(Config::builder().topic_shards(COUNT).discovery_rate(1000));
    c.subscribe_many(keys(2_000)).expect("keys ok");
    let out = ticks(&mut c, T0, 3);
    let provides = provided(&out);
    let lookups = looked_up(&out);
    assert!(provides.iter().all(is_shard), "no key is advertised");
    let distinct: BTreeSet<&Topic> = provides.iter().collect();
    assert_eq!(provides.len(), usize::from(COUNT), "one per shard");
    assert_eq!(distinct.len(), usize::from(COUNT));
    assert!(lookups.iter().all(is_shard), "no key is looked up");
    assert_eq!(lookups.len(), usize::from(COUNT), "one lookup per shard");

    // Nobody found: at the next republish firings, each shard is looked up
    // again at most once per discovery_interval.
    for topic in lookups {
        c.handle(Input::LookupDone { topic }, T0 + 3_000);
    }
    let interval = Config::builder()
        .build()
        .expect("config")
        .discovery_interval();
    let after = T0 + i64::try_from(interval.as_millis()).expect("ms");
    let mut again = Vec::new();
    for s in [0, 1, 2] {
        c.handle(Input::Timer(Timer::Republish), after + s * 1000);
        again.extend(looked_up(&ticks(&mut c, after + s * 1000, 2)));
    }
    assert_eq!(again.len(), usize::from(COUNT), "{again:?}");
}

#[test]
fn a_shard_with_a_peer_on_it_is_not_looked_up() {
    let mut c = node(Config::builder().topic_shards(COUNT).discovery_rate(1000));
    let peer = PeerId::random();
    c.handle(Input::Connected { peer }, T0);
    for index in 0..COUNT {
        let topic = Topic::Shard {
            count: COUNT,
            index,
        };
        c.handle(Input::PeerSubscribed { peer, topic }, T0);
    }
    c.subscribe_many(keys(500)).expect("keys ok");
    let out = ticks(&mut c, T0, 2);
    assert_eq!(provided(&out).len(), usize::from(COUNT));
    assert_eq!(looked_up(&out), Vec::<Topic>::new());
}

#[test]
fn moving_to_shards_ends_the_key_advertisements_and_advertises_the_shards() {
    let config = Config::builder()
        .auto_topic_shards(100, COUNT)
        .discovery_rate(1000);
    let mut c = node(config);
    let mut out = Vec::new();
    for key in keys(99) {
        c.subscribe(&key).expect("key ok");
        out.extend(drain(&mut c));
    }
    out.extend(ticks(&mut c, T0, 2));
    assert_eq!(provided(&out).len(), 99, "a topic per key: each key");
    c.subscribe("k/last").expect("key ok");
    let out = ticks(&mut c, T0 + 5_000, 2);
    let stopped: BTreeSet<Topic> = out
        .iter()
        .filter_map(|o| match o {
            Output::StopProviding(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    let followed: BTreeSet<Topic> = keys(99)
        .into_iter()
        .chain(["k/last".to_owned()])
        .map(Topic::Key)
        .collect();
    assert_eq!(stopped, followed, "every key's advertisement ends");
    let provides = provided(&out);
    assert!(provides.iter().all(is_shard), "{provides:?}");
    assert_eq!(provides.len(), usize::from(COUNT));
}

#[test]
fn a_node_on_a_topic_per_key_looks_up_the_keys_shard_when_its_own_lookup_dials_nobody() {
    let mut c = node(Config::builder().auto_topic_shards(8_192, COUNT));
    c.subscribe("k").expect("key ok");
    let out = ticks(&mut c, T0, 1);
    assert_eq!(looked_up(&out), vec![Topic::Key("k".into())]);
    let topic = Topic::Key("k".into());
    c.handle(Input::LookupDone { topic }, T0 + 500);
    let out = ticks(&mut c, T0 + 1_000, 1);
    let shard = Topic::shard_of("k", COUNT);
    assert_eq!(looked_up(&out), vec![shard.clone()]);

    // What the shard's lookup finds is dialed: a node on shards that
    // follows the key joins its topic once we are connected.
    let sharded = PeerId::random();
    c.handle(
        Input::Providers {
            topic: shard,
            peers: vec![sharded],
        },
        T0 + 1_500,
    );
    let out = drain(&mut c);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Dial(p) if *p == sharded)));
}

#[test]
fn a_key_lookup_that_dialed_a_follower_looks_no_shard_up() {
    let mut c = node(Config::builder().auto_topic_shards(8_192, COUNT));
    c.subscribe("k").expect("key ok");
    ticks(&mut c, T0, 1);
    let topic = Topic::Key("k".into());
    let peers = vec![PeerId::random()];
    c.handle(
        Input::Providers {
            topic: topic.clone(),
            peers,
        },
        T0 + 400,
    );
    c.handle(Input::LookupDone { topic }, T0 + 500);
    let out = ticks(&mut c, T0 + 1_000, 2);
    assert_eq!(looked_up(&out), Vec::<Topic>::new());
}
