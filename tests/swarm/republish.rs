//! The republish firing delivers a record that neither a put nor a
//! catch-up delivered, and a node's own republishes never change what
//! others hold. A firing both republishes (gossip) and reconciles with a
//! neighbour (an `Ask` with versions, or the neighbour's ask back), so the
//! record may arrive either way; whichever comes first, it must arrive
//! every round, though the republished bytes are unchanged.

use std::time::Duration;

use crate::common::*;
use ed25519_dalek::SigningKey;
use pointer::{Event, Op, Record, RecordStore, Source};

#[tokio::test]
async fn republish_delivers_what_nobody_asked_for() {
    let config = || republishing_every(Duration::from_millis(300));
    let mut nodes = following_mesh_with(2, "k", config).await;

    // Both caught up (nothing there) long ago; the record appears on node 0
    // without a put, so only a republish can carry it to node 1.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let record = Record::sign("k", Op::Mut, "v", now, &SigningKey::from_bytes(&[5; 32]));
    nodes[0]
        .behaviour_mut()
        .store_mut()
        .put(record.clone())
        .expect("room");

    assert_eq!(gossiped_to_node_1(&mut nodes).await, record);
}

#[tokio::test]
async fn republish_reaches_a_peer_that_lost_the_record_in_a_quiet_network() {
    // gossipsub refuses to publish bytes still in its duplicate cache, and
    // in a quiet network it never purges it: an unchanged republish would be
    // swallowed for good. Each round's republish must get through.
    let config = || republishing_every(Duration::from_millis(300));
    let mut nodes = following_mesh_with(2, "k", config).await;
    let written = nodes[0].behaviour_mut().put("k", "v").expect("put");
    until(&mut nodes, "node 1 holds it", |n| {
        n[1].behaviour().record("k").is_some()
    })
    .await;

    // Node 1 loses the record (a store rolled back, say) and hears of it
    // again only through node 0's republish of the very same record.
    for round in 0..2 {
        nodes[1]
            .behaviour_mut()
            .store_mut()
            .remove("k")
            .expect("remove");
        assert_eq!(
            gossiped_to_node_1(&mut nodes).await,
            written,
            "round {round}"
        );
    }
}

/// The next record node 1 takes in from node 0's firing: its republish
/// (gossip) or its reconciliation (fetch), never a local write.
async fn gossiped_to_node_1(nodes: &mut [Node]) -> Record {
    let (_, got) = wait_for(nodes, "the republish", |i, e| match e {
        Event::RecordUpdated {
            record,
            source: Source::Gossip { .. } | Source::Fetch { .. },
        } if i == 1 => Some(record.clone()),
        _ => None,
    })
    .await;
    got
}
