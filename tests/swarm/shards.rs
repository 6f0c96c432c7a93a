//! The sharded topics extension (`Config::topic_shards`, spec §16) on real
//! swarms: keys share shard topics, nodes relay the records of keys they do
//! not follow, a node without the extension still works with one that has
//! it, and a hostile peer cannot use a shard to slip records past the
//! checks.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::rogue::Rogue;
use crate::common::*;
use pointer::internals::topic::shard_index;
use pointer::internals::wire;
use pointer::signing_key;
use pointer::RejectReason;
use pointer::Signature;
use pointer::{Config, Event, Op, Record, Source, Topic};

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

fn sharded(count: u16) -> Config {
    test_config()
        .topic_shards(count)
        .build()
        .expect("valid config")
}

/// Two keys that hash to different shards of `count`.
fn keys_on_two_shards(count: u16) -> (String, String) {
    let first = "a".to_owned();
    let other = (0..)
        .map(|i| format!("b{i}"))
        .find(|k| shard_index(k, count) != shard_index(&first, count))
        .expect("some key lands elsewhere");
    (first, other)
}

/// A line 0 - 1 - 2 on one shard: the middle node follows another key
/// than the ends. A write at one end reaches the other by gossip through
/// the middle, which checks it and passes it on but does not keep it.
/// With a topic per key the middle node would not be on the key's topic
/// and gossip could not cross it.
#[tokio::test]
async fn a_node_relays_the_records_of_keys_it_does_not_follow() {
    let mut nodes = linked_with(3, &line_links(3), || sharded(1)).await;
    nodes[0]
        .behaviour_mut()
        .subscribe("far")
        .expect("valid key");
    nodes[1]
        .behaviour_mut()
        .subscribe("near")
        .expect("valid key");
    nodes[2]
        .behaviour_mut()
        .subscribe("far")
        .expect("valid key");
    until_links_follow(&mut nodes, &line_links(3), &["far"]).await;

    let record = nodes[0].behaviour_mut().put("far", "v1").expect("put");
    let (_, source) = wait_for(
        &mut nodes,
        "the far end to take the write",
        |i, e| match e {
            Event::RecordUpdated { record: r, source } if i == 2 && *r == record => Some(*source),
            _ => None,
        },
    )
    .await;
    assert!(matches!(source, Source::Gossip { .. }), "{source:?}");
    assert_eq!(
        nodes[1].behaviour().record("far"),
        None,
        "relayed, not kept"
    );
}

/// A node without the extension (a topic per key) and a sharded node
/// follow the same key: writes cross both ways by gossip, and each catches
/// up what the other held before it followed.
#[tokio::test]
async fn a_node_without_shards_and_a_sharded_node_interoperate() {
    let mut nodes = vec![
        node_with(|| test_config().build().expect("valid config")).await,
        node_with(|| sharded(16)).await,
    ];
    let early = nodes[1].behaviour_mut().put("early", "e").expect("put");
    link(&mut nodes, 0, 1).await;
    for node in nodes.iter_mut() {
        node.behaviour_mut().subscribe("k").expect("valid key");
    }
    until_following(&mut nodes, &[0, 1], "k").await;

    for (writer, reader, value) in [(0, 1, "from the seed"), (1, 0, "from the shard")] {
        let record = nodes[writer].behaviour_mut().put("k", value).expect("put");
        let (_, source) = wait_for(&mut nodes, "the other node to take it", |i, e| match e {
            Event::RecordUpdated { record: r, source } if i == reader && *r == record => {
                Some(*source)
            }
            _ => None,
        })
        .await;
        assert!(matches!(source, Source::Gossip { .. }), "{source:?}");
    }

    nodes[0]
        .behaviour_mut()
        .subscribe("early")
        .expect("valid key");
    until(&mut nodes, "the seed node catches up", |nodes| {
        nodes[0].behaviour().record("early").as_deref() == Some(&early)
    })
    .await;
}

/// The rogue joins the target's shard and sends, there, a record of a key
/// from another shard and a forged record of a key the target does not
/// follow. Both are refused with the reason, and neither is relayed: the
/// node beyond the target, on the same shards, hears only the honest
/// record the rogue sends last.
#[tokio::test]
async fn a_shard_carries_only_valid_records_of_its_own_keys() {
    let count = 16;
    let (here, elsewhere) = keys_on_two_shards(count);
    let mut nodes = linked_with(2, &[(0, 1)], || sharded(count)).await;
    nodes[0]
        .behaviour_mut()
        .subscribe(&here)
        .expect("valid key");
    nodes[1]
        .behaviour_mut()
        .subscribe(&here)
        .expect("valid key");
    nodes[1]
        .behaviour_mut()
        .subscribe(&elsewhere)
        .expect("valid key");
    until_links_follow(&mut nodes, &[(0, 1)], &[&here]).await;
    let rogue = Rogue::connected_to(&mut nodes[0]).await;
    let target = *nodes[0].local_peer_id();
    let shard = Topic::shard_of(&here, count).name();
    rogue.subscribe(shard.clone());
    until(
        &mut nodes,
        "the rogue and the target see each other on the shard",
        |nodes| {
            rogue.topics_of(&target) >= 1
                && nodes[0]
                    .behaviour()
                    .peers_following(&here)
                    .contains(&rogue.peer)
        },
    )
    .await;

    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let misplaced = Record::sign(&elsewhere, Op::Mut, "misplaced", now_ms(), &signer);
    rogue.publish(shard.clone(), wire::encode_shard_operate(&misplaced, 0));
    assert_eq!(
        rejected(&mut nodes, &elsewhere).await,
        RejectReason::WrongShard
    );

    let stranger = (0..)
        .map(|i| format!("s{i}"))
        .find(|k| shard_index(k, count) == shard_index(&here, count))
        .expect("another key on the shard");
    let good = Record::sign(&stranger, Op::Mut, "v", now_ms(), &signer);
    let mut sig = *good.signature().as_bytes();
    sig[0] ^= 1;
    let forged = Record::from_parts(
        stranger.clone(),
        Op::Mut,
        "v".into(),
        good.time(),
        *good.author(),
        Signature::from_bytes(sig),
    );
    rogue.publish(shard.clone(), wire::encode_shard_operate(&forged, 0));
    assert_eq!(
        rejected(&mut nodes, &stranger).await,
        RejectReason::BadSignature
    );

    let marker = Record::sign(&here, Op::Mut, "honest", now_ms(), &signer);
    rogue.publish(shard, wire::encode_shard_operate(&marker, 0));
    let (_, heard_bad) = wait_for(
        &mut nodes,
        "the node beyond to take the honest record",
        |i, e| match e {
            Event::RecordRejected { key, .. } if i == 1 => Some(Some(key.clone())),
            Event::RecordUpdated { record, .. } if i == 1 && *record == marker => Some(None),
            _ => None,
        },
    )
    .await;
    assert_eq!(heard_bad, None, "a refused record was relayed");
    assert!(nodes[1].behaviour().record(&elsewhere).is_none());
}

/// Waits for node 0 to refuse a record of `key`; returns why.
async fn rejected(nodes: &mut [Node], key: &str) -> RejectReason {
    wait_for(nodes, "the target to refuse the record", |i, e| match e {
        Event::RecordRejected { key: k, reason, .. } if i == 0 && k == key => Some(reason.clone()),
        _ => None,
    })
    .await
    .1
}
