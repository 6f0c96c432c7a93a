//! A node that missed an update while disconnected converges
//! after reconnecting, through catch-up (no new put, no republish).

mod common;

use common::*;
use libp2p_swarm_test::SwarmExt;

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
