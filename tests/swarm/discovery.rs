//! Discovery through libp2p-kad on real swarms (memory transport): a `get`
//! finds a follower that is not a neighbour, and a user's own
//! `kad::Behaviour` handed to Pointer keeps answering the user's queries.

use std::time::Duration;

use futures::future::select_all;
use futures::FutureExt;
use futures::StreamExt;
use libp2p::kad::store::{MemoryStoreConfig, RecordStore as _};
use libp2p::kad::{self, store::MemoryStore as KadStore};
use libp2p::swarm::SwarmEvent;
use libp2p::Swarm;
use libp2p_swarm_test::SwarmExt;
use pointer::discovery::{Kad, PROTOCOL};
use pointer::{Behaviour, Config, Event, GetOutcome, MemoryStore, Open};

type Node = Swarm<Behaviour<MemoryStore, Kad>>;

const PATIENCE: Duration = Duration::from_secs(30);

fn config() -> Config {
    Config::builder()
        .fetch_timeout(Duration::from_secs(5))
        .build()
        .expect("valid config")
}

async fn node_with(discovery: impl FnOnce(libp2p::PeerId) -> Kad) -> Node {
    node_configured(config(), discovery).await
}

async fn node_configured(config: Config, discovery: impl FnOnce(libp2p::PeerId) -> Kad) -> Node {
    let mut swarm = Swarm::new_ephemeral_tokio(|key| {
        let kad = discovery(key.public().to_peer_id());
        Behaviour::with_validator_and_discovery(&key, MemoryStore::new(), config, Open, kad)
            .expect("valid config")
    });
    swarm.listen().with_memory_addr_external().await;
    swarm
}

/// Connects `a` and `b`, each knowing the other's address in its routing
/// table (what identify's listen addresses give the node program).
async fn link(nodes: &mut [Node], a: usize, b: usize) {
    for (from, to) in [(a, b), (b, a)] {
        let peer = *nodes[to].local_peer_id();
        let addrs: Vec<_> = nodes[to].external_addresses().cloned().collect();
        let kad = nodes[from].behaviour_mut().discovery_mut().behaviour_mut();
        for addr in addrs {
            kad.add_address(&peer, addr);
        }
    }
    let (left, right) = nodes.split_at_mut(b);
    left[a].connect(&mut right[0]).await;
}

/// Drives every node until `node`'s next event that `pick` maps to a value.
async fn until<T>(nodes: &mut [Node], node: usize, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
    until_swarm(nodes, |i, event| match event {
        SwarmEvent::Behaviour(e) if i == node => pick(e),
        _ => None,
    })
    .await
}

/// Drives every node until a swarm event of one (`i`, event) that `pick`
/// maps to a value.
async fn until_swarm<T>(
    nodes: &mut [Node],
    mut pick: impl FnMut(usize, &SwarmEvent<Event>) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let next = select_all(
                nodes
                    .iter_mut()
                    .enumerate()
                    .map(|(i, n)| n.select_next_some().map(move |e| (i, e)).boxed()),
            );
            let ((i, event), _, _) = next.await;
            if let Some(found) = pick(i, &event) {
                return found;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .expect("the awaited event came")
}

#[tokio::test]
async fn a_get_finds_a_follower_three_hops_away() {
    let mut nodes = Vec::new();
    for _ in 0..4 {
        nodes.push(node_with(Kad::new).await);
    }
    for i in 0..3 {
        link(&mut nodes, i, i + 1).await;
    }
    let record = nodes[0].behaviour_mut().put("q/1", "far").expect("put");
    // No wait for the advertisement to spread: the lookup walks towards
    // the writer through B and C, and the writer answers for itself.
    let id = nodes[3].behaviour_mut().get("q/1");
    let outcome = until(&mut nodes, 3, |e| match e {
        Event::GetFinished {
            id: got, outcome, ..
        } if *got == id => Some(outcome.clone()),
        _ => None,
    })
    .await;
    assert_eq!(outcome, GetOutcome::Found(record));
    assert!(
        nodes[3].is_connected(nodes[0].local_peer_id()),
        "the reader dialed the follower it found"
    );
}

/// A node that follows keys in bulk on shard topics advertises its shards,
/// not its keys, and a node on a topic per key two hops away that follows
/// one of those keys still gets its record. In a DHT this small the key's
/// own lookup already walks through the writer; which lookups a node makes
/// when, and that a lookup of the key's shard follows one that found
/// nobody, is shown input by input in the coordinator's tests.
#[tokio::test]
async fn a_follower_on_a_topic_per_key_finds_a_follower_on_shards() {
    const SHARDS: u16 = 16;
    let base = || {
        Config::builder()
            .fetch_timeout(Duration::from_secs(5))
            .auto_topic_shards(8_192, SHARDS)
    };
    let sharded = base().topic_shards(SHARDS).build().expect("config");
    let mut nodes = vec![
        node_configured(sharded, Kad::new).await,
        node_with(Kad::new).await,
        node_configured(base().build().expect("config"), Kad::new).await,
    ];
    link(&mut nodes, 0, 1).await;
    link(&mut nodes, 1, 2).await;
    let keys: Vec<String> = (0..200).map(|i| format!("bulk/{i}")).collect();
    nodes[0]
        .behaviour_mut()
        .subscribe_many(&keys)
        .expect("keys ok");
    let record = nodes[0].behaviour_mut().put("bulk/7", "v").expect("put");
    nodes[2]
        .behaviour_mut()
        .subscribe("bulk/7")
        .expect("key ok");
    let source = until(&mut nodes, 2, |e| match e {
        Event::RecordUpdated { record: r, source } if *r == record => Some(*source),
        _ => None,
    })
    .await;
    assert!(
        nodes[2].is_connected(nodes[0].local_peer_id()),
        "the follower on shards was reached through the DHT ({source:?})"
    );
    let advertised: Vec<String> = nodes[0]
        .behaviour_mut()
        .discovery_mut()
        .behaviour_mut()
        .store_mut()
        .provided()
        .map(|r| String::from_utf8_lossy(r.key.as_ref()).into_owned())
        .collect();
    assert!(
        !advertised.is_empty() && advertised.len() <= usize::from(SHARDS),
        "one advertisement per shard, not per key: {advertised:?}"
    );
    assert!(advertised
        .iter()
        .all(|k| k.starts_with("/pointer/shard/16/")));
}

/// A connection the DHT dialed for its own walk is closed once it has
/// lingered: three nodes in a line follow one key, the end nodes' kad
/// walks connect them, and gossipsub would keep that link (both follow the
/// key); it closes, and a write still crosses the line through the middle.
#[tokio::test]
async fn a_connection_the_dht_dialed_is_closed_after_its_linger() {
    let config = || {
        Config::builder()
            .fetch_timeout(Duration::from_secs(5))
            .dht_connection_linger(Some(Duration::from_secs(1)))
            .build()
            .expect("config")
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(node_configured(config(), Kad::new).await);
    }
    link(&mut nodes, 0, 1).await;
    link(&mut nodes, 1, 2).await;
    for node in &mut nodes {
        node.behaviour_mut().subscribe("line/c").expect("key ok");
    }
    // The ends' DHT link opens, then closes.
    let far = *nodes[2].local_peer_id();
    let mut opened = false;
    until_swarm(&mut nodes, |i, event| match event {
        SwarmEvent::ConnectionEstablished { peer_id, .. } if i == 0 && *peer_id == far => {
            opened = true;
            None
        }
        SwarmEvent::ConnectionClosed {
            peer_id,
            num_established: 0,
            ..
        } if i == 0 && *peer_id == far && opened => Some(()),
        _ => None,
    })
    .await;
    let record = nodes[0].behaviour_mut().put("line/c", "v").expect("put");
    until(&mut nodes, 2, |e| match e {
        Event::RecordUpdated { record: r, .. } if *r == record => Some(()),
        _ => None,
    })
    .await;
}

#[tokio::test]
async fn a_users_own_kad_keeps_serving_the_users_queries() {
    let own = |peer| {
        let mut kad =
            kad::Behaviour::with_config(peer, KadStore::new(peer), kad::Config::new(PROTOCOL));
        kad.set_mode(Some(kad::Mode::Server));
        Kad::from_behaviour(kad)
    };
    let mut nodes = vec![node_with(own).await, node_with(own).await];
    link(&mut nodes, 0, 1).await;
    let target = *nodes[1].local_peer_id();
    let query = nodes[0]
        .behaviour_mut()
        .discovery_mut()
        .behaviour_mut()
        .get_closest_peers(target);
    let found = until(&mut nodes, 0, |e| match e {
        Event::Kad(event) => match &**event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::GetClosestPeers(result),
                ..
            } if *id == query => Some(result.is_ok()),
            _ => None,
        },
        _ => None,
    })
    .await;
    assert!(
        found,
        "the user's query ran and its result reached the user"
    );

    // The user's own advertisement: its result is the user's too, not
    // taken for one of Pointer's.
    let query = nodes[0]
        .behaviour_mut()
        .discovery_mut()
        .behaviour_mut()
        .start_providing(kad::RecordKey::new(&"the user's own"))
        .expect("provide");
    let provided = until(&mut nodes, 0, |e| match e {
        Event::Kad(event) => match &**event {
            kad::Event::OutboundQueryProgressed {
                id,
                result: kad::QueryResult::StartProviding(result),
                ..
            } if *id == query => Some(result.is_ok()),
            _ => None,
        },
        _ => None,
    })
    .await;
    assert!(provided, "the user's advertisement reached the DHT");
}

/// A DHT peer that advertises more keys than our bound makes us hold
/// provider records for that many keys at most: a plain kad peer (no
/// Pointer) sends the `ADD_PROVIDER`s over the wire.
#[tokio::test]
async fn a_peer_cannot_make_us_hold_providers_for_more_keys_than_the_bound() {
    const BOUND: usize = 10;
    let mut ours = node_with(|peer| {
        Kad::with_store_config(
            peer,
            MemoryStoreConfig {
                max_provided_keys: BOUND,
                ..Default::default()
            },
        )
    })
    .await;
    let mut flooder = Swarm::new_ephemeral_tokio(|key| {
        let peer = key.public().to_peer_id();
        let mut kad =
            kad::Behaviour::with_config(peer, KadStore::new(peer), kad::Config::new(PROTOCOL));
        kad.set_mode(Some(kad::Mode::Server));
        kad
    });
    let target = *ours.local_peer_id();
    let addr = ours.external_addresses().next().expect("address").clone();
    flooder.behaviour_mut().add_address(&target, addr);
    flooder.connect(&mut ours).await;
    let keys: Vec<kad::RecordKey> = (0..50)
        .map(|i| kad::RecordKey::new(&format!("k{i}")))
        .collect();
    for key in &keys {
        flooder
            .behaviour_mut()
            .start_providing(key.clone())
            .expect("the flooder's own store takes them");
    }
    // Every advertisement reached us once each of the flooder's queries
    // finished; meanwhile we drive our node too.
    let mut pending = keys.len();
    let drive = async {
        loop {
            tokio::select! {
                event = flooder.select_next_some() => {
                    if let SwarmEvent::Behaviour(kad::Event::OutboundQueryProgressed {
                        result: kad::QueryResult::StartProviding(_),
                        ..
                    }) = event
                    {
                        pending -= 1;
                        if pending == 0 {
                            return;
                        }
                    }
                }
                _ = ours.select_next_some() => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, drive)
        .await
        .expect("advertisements sent");
    let store = ours
        .behaviour_mut()
        .discovery_mut()
        .behaviour_mut()
        .store_mut();
    let held = keys
        .iter()
        .filter(|k| !store.providers(k).is_empty())
        .count();
    // All 50 arrived; the first BOUND keys were stored, no more.
    assert_eq!(held, BOUND, "held providers for {held} keys");
}
