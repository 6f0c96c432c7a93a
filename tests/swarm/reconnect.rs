//! A node that missed an update while disconnected converges
//! after reconnecting, through catch-up (no new put, no republish).

use std::time::Duration;

use crate::common::*;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::Multiaddr;
use libp2p_swarm_test::SwarmExt;
use pointer::{Event, Source};

#[tokio::test]
async fn missed_update_converges_after_reconnect() {
    let mut nodes = following_mesh(3, "k").await;
    nodes[0].behaviour_mut().put("k", "v1").expect("put");
    until(&mut nodes, "v1 everywhere", |n| {
        values(n, "k").iter().all(|v| v.as_deref() == Some("v1"))
    })
    .await;

    // Node 2 drops off; two updates happen while it is away.
    let peer2 = *nodes[2].local_peer_id();
    for node in &mut nodes[..2] {
        node.disconnect_peer_id(peer2).expect("connected");
    }
    until(&mut nodes, "node 2 is cut off", |n| {
        !n[0].is_connected(&peer2) && !n[1].is_connected(&peer2)
    })
    .await;
    nodes[0].behaviour_mut().put("k", "v2").expect("put");
    until(&mut nodes, "v2 on node 1", |n| {
        n[1].behaviour().value("k").as_deref() == Some("v2")
    })
    .await;
    let latest = nodes[1].behaviour_mut().put("k", "v3").expect("put");
    until(&mut nodes, "v3 on the connected nodes", |n| {
        n[0].behaviour().value("k").as_deref() == Some("v3")
    })
    .await;
    assert_eq!(nodes[2].behaviour().value("k").as_deref(), Some("v1"));

    // It comes back to one peer only, and catches up from it.
    let (left, right) = nodes.split_at_mut(2);
    right[0].connect(&mut left[1]).await;
    until(&mut nodes, "node 2 converges", |n| {
        n[2].behaviour().record("k").as_deref() == Some(&latest)
    })
    .await;
}

/// Two connections between the same two nodes (a direct one beside a
/// relayed one, say); the one gossip went over closes. A write after that
/// must go by gossip over the other at once, not when something else
/// happens to poll it: gossipsub's handler on a second connection does not
/// notice queued messages by itself (see the behaviour's spare links).
#[tokio::test]
async fn a_write_goes_over_the_second_connection_once_the_first_closes() {
    let mut nodes = vec![node().await, node().await];
    let p0 = *nodes[0].local_peer_id();
    let addrs: Vec<Multiaddr> = nodes[0].external_addresses().cloned().collect();
    let dial = |addrs: &[Multiaddr]| {
        DialOpts::peer_id(p0)
            .addresses(addrs.to_vec())
            .condition(PeerCondition::Always)
            .build()
    };
    let established = |n: &Node| n.network_info().connection_counters().num_established();

    let first = dial(&addrs);
    let first_id = first.connection_id();
    nodes[1].dial(first).expect("dial");
    until(&mut nodes, "the first connection", |n| {
        established(&n[0]) == 1 && established(&n[1]) == 1
    })
    .await;
    for node in nodes.iter_mut() {
        node.behaviour_mut().subscribe("k").expect("valid key");
    }
    until_following(&mut nodes, &[0, 1], "k").await;
    nodes[0].behaviour_mut().put("k", "v1").expect("put");
    until(&mut nodes, "v1 over the first connection", |n| {
        n[1].behaviour().value("k").as_deref() == Some("v1")
    })
    .await;

    nodes[1].dial(dial(&addrs)).expect("dial");
    until(&mut nodes, "a second connection", |n| {
        established(&n[0]) == 2 && established(&n[1]) == 2
    })
    .await;
    assert!(nodes[1].close_connection(first_id), "the first is open");
    until(&mut nodes, "the first closed on both ends", |n| {
        established(&n[0]) == 1 && established(&n[1]) == 1
    })
    .await;

    nodes[0].behaviour_mut().put("k", "v2").expect("put");
    // By gossip: a fetch (the reconciliation when the first closed) would
    // hide a message stuck in gossipsub's queue.
    let arrived = tokio::time::timeout(
        Duration::from_secs(2),
        wait_for(&mut nodes, "v2 on node 1", |i, event| match event {
            Event::RecordUpdated { record, source } if i == 1 && record.value() == "v2" => {
                Some(*source)
            }
            _ => None,
        }),
    )
    .await;
    let (_, source) = arrived.expect("v2 did not arrive within 2 s");
    assert!(
        matches!(source, Source::Gossip { .. }),
        "v2 came by {source:?}"
    );
}
