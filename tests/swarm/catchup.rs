//! A node that joins after the put gets the value through
//! `Ask`/`Answer` without waiting for a republish; `get` of a key nobody
//! has finishes with not-found; a value outlives its publisher.

use std::time::{Duration, Instant};

use crate::common::raw_peer::{RawPeer, Reply};
use crate::common::*;
use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p_swarm_test::SwarmExt;
use pointer::{Event, GetOutcome, Source};

#[tokio::test]
async fn late_joiner_gets_the_value_by_asking() {
    let mut nodes = vec![node().await, node().await];
    // Written before anyone else exists: only Ask can deliver it (the
    // republish interval is an hour).
    let written = nodes[0].behaviour_mut().put("k", "v").expect("put");
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;

    assert_eq!(
        get(&mut nodes, 1, "k").await,
        GetOutcome::Found(written.clone())
    );
    assert_eq!(nodes[1].behaviour().record("k").as_deref(), Some(&written));
}

#[tokio::test]
async fn subscribing_before_connecting_catches_up_on_connect() {
    let mut nodes = vec![node().await, node().await];
    let written = nodes[0].behaviour_mut().put("k", "v").expect("put");
    nodes[1].behaviour_mut().subscribe("k").expect("valid key");
    let peer0 = *nodes[0].local_peer_id();
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;

    let (_, record) = wait_for(&mut nodes, "the catch-up", |i, e| match e {
        Event::RecordUpdated {
            record,
            source: Source::Fetch { peer },
        } if i == 1 && *peer == peer0 => Some(record.clone()),
        _ => None,
    })
    .await;
    assert_eq!(record, written);
}

#[tokio::test]
async fn get_of_a_key_nobody_has_is_not_found() {
    let mut nodes = full_mesh(3).await;
    assert_eq!(
        get(&mut nodes, 0, "nobody-wrote-this").await,
        GetOutcome::NotFound
    );
}

#[tokio::test]
async fn get_without_peers_is_not_found_at_once() {
    let mut nodes = vec![node().await];
    assert_eq!(get(&mut nodes, 0, "k").await, GetOutcome::NotFound);
}

#[tokio::test]
async fn value_outlives_its_publisher() {
    let mut nodes = full_mesh(2).await;
    nodes[0].behaviour_mut().put("k", "survives").expect("put");
    assert!(matches!(
        get(&mut nodes, 1, "k").await,
        GetOutcome::Found(_)
    ));

    // The publisher leaves for good; a newcomer asks the node that stayed.
    drop(nodes.remove(0));
    nodes.push(node().await);
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    match get(&mut nodes, 1, "k").await {
        GetOutcome::Found(record) => assert_eq!(record.value(), "survives"),
        other => panic!("expected the value, got {other:?}"),
    }
}

#[tokio::test]
async fn get_from_a_silent_peer_times_out_within_the_fetch_timeout() {
    let timeout = Duration::from_millis(500);
    // The default validator, as `Behaviour::new` gives.
    let config = || {
        test_config()
            .fetch_timeout(timeout)
            .build()
            .expect("valid config")
    };
    let mut asker = node_with_validator(config, pointer::OwnedKeys).await;
    // A peer that reads every ask and holds its stream open unanswered.
    let _silent = RawPeer::serving(&mut asker, |_| Reply::Hold).await;

    let started = Instant::now();
    let id = asker.behaviour_mut().get("k");
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            if let SwarmEvent::Behaviour(Event::GetFinished {
                id: got, outcome, ..
            }) = asker.select_next_some().await
            {
                if got == id {
                    return outcome;
                }
            }
        }
    })
    .await
    .expect("the get finishes");
    assert_eq!(outcome, GetOutcome::TimedOut);
    let took = started.elapsed();
    assert!(took >= timeout && took < timeout * 4, "took {took:?}");
}

#[tokio::test]
async fn get_of_an_overlong_key_is_not_found_and_not_followed() {
    let mut nodes = full_mesh(2).await;
    let key = "k".repeat(513);
    assert_eq!(get(&mut nodes, 0, &key).await, GetOutcome::NotFound);
    assert!(!nodes[0].behaviour().is_subscribed(&key));
}

#[tokio::test]
async fn a_record_at_the_message_limit_is_served_over_fetch() {
    const LIMIT: usize = 300;
    let config = || {
        test_config()
            .max_message_bytes(LIMIT)
            .max_value_bytes(LIMIT - pointer::OPERATE_OVERHEAD)
            .build()
            .expect("valid config")
    };
    let mut nodes = vec![node_with(config).await, node_with(config).await];
    // The largest value the limits allow: its record comes within a few
    // bytes of the message limit (the value limit leaves room for the
    // largest time and round varints).
    let written = (0..LIMIT)
        .rev()
        .find_map(|len| nodes[0].behaviour_mut().put("k", &"x".repeat(len)).ok())
        .expect("some value fits");
    let encoded = pointer::internals::wire::encode_operate(&written).len();
    assert!(encoded > LIMIT - 8 && encoded <= LIMIT, "{encoded}");

    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    assert_eq!(get(&mut nodes, 1, "k").await, GetOutcome::Found(written));
}

#[tokio::test]
async fn following_many_keys_at_once_catches_up_every_one() {
    // Far more keys than asks allowed in flight per connection: the rest
    // wait their turn instead of failing.
    let config = || {
        test_config()
            .max_outbound_fetch_streams(4)
            .build()
            .expect("valid config")
    };
    let mut nodes = vec![node_with(config).await, node_with(config).await];
    let keys: Vec<String> = (0..200).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        nodes[0].behaviour_mut().put(key, key).expect("put");
    }
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    for key in &keys {
        nodes[1].behaviour_mut().subscribe(key).expect("valid key");
    }
    until(&mut nodes, "every key is caught up", |n| {
        keys.iter()
            .all(|k| n[1].behaviour().value(k).as_deref() == Some(k.as_str()))
    })
    .await;
}

/// Keys followed by node 0 that node 1 knows node 0 follows.
fn known_followed(nodes: &[Node], keys: &[String]) -> usize {
    let peer0 = *nodes[0].local_peer_id();
    keys.iter()
        .filter(|k| nodes[1].behaviour().peers_following(k).contains(&peer0))
        .count()
}

#[tokio::test]
async fn peers_that_follow_thousands_of_keys_learn_each_others_topics() {
    // gossipsub sends every subscription in one hello RPC on connect; with
    // 3,000 keys it is far over gossipsub's default 64 KiB frame.
    let keys: Vec<String> = (0..3_000)
        .map(|i| format!("a-somewhat-long-key-{i}"))
        .collect();
    let mut nodes = vec![node().await, node().await];
    for key in &keys {
        nodes[0].behaviour_mut().subscribe(key).expect("valid key");
    }
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    until(&mut nodes, "node 1 knows every key node 0 follows", |n| {
        known_followed(n, &keys) == keys.len()
    })
    .await;
}
