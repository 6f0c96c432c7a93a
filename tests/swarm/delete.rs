//! A delete arrives everywhere, removes the value, leaves a
//! tombstone that refuses an older `Mut` replayed afterwards, and leaves the
//! topic. A node that missed the delete learns it too.

use std::time::Duration;

use crate::common::*;
use libp2p::swarm::SwarmEvent;
use pointer::{Event, Refusal};

#[tokio::test]
async fn delete_wipes_the_key_everywhere_and_the_tombstone_holds() {
    let mut nodes = following_mesh(3, "doc").await;
    let old = nodes[0].behaviour_mut().put("doc", "draft").expect("put");
    until(&mut nodes, "the value is everywhere", |n| {
        values(n, "doc").iter().all(Option::is_some)
    })
    .await;

    let tombstone = nodes[1].behaviour_mut().delete("doc").expect("delete");

    until(&mut nodes, "the delete is everywhere", |n| {
        n.iter().all(|x| {
            x.behaviour().record("doc").as_deref() == Some(&tombstone)
                && !x.behaviour().is_subscribed("doc")
        })
    })
    .await;
    assert_eq!(values(&nodes, "doc"), vec![None; 3]);

    // Replaying the older Mut (as a node that missed the delete would) is
    // refused everywhere and brings nothing back.
    for n in nodes.iter_mut() {
        let refused = n.behaviour_mut().insert(old.clone());
        assert!(matches!(refused, Err(Refusal::Older)), "{refused:?}");
        assert_eq!(n.behaviour().record("doc").as_deref(), Some(&tombstone));
    }
}

#[tokio::test]
async fn get_of_a_deleted_key_is_not_found_and_does_not_follow_it() {
    let mut nodes = full_mesh(2).await;
    nodes[0].behaviour_mut().put("doc", "draft").expect("put");
    nodes[0].behaviour_mut().delete("doc").expect("delete");
    // Node 1 learns the delete by asking; node 0 already holds the tombstone
    // and hears it back from node 1.
    for asker in [1, 0] {
        let outcome = get(&mut nodes, asker, "doc").await;
        assert_eq!(outcome, pointer::GetOutcome::NotFound);
        let pointer = nodes[asker].behaviour();
        assert!(pointer.record("doc").is_some_and(|r| r.is_tombstone()));
        assert!(
            !pointer.is_subscribed("doc"),
            "node {asker} follows a deleted key"
        );
    }
}

#[tokio::test]
async fn a_node_that_missed_the_delete_learns_it_after_reconnecting() {
    // A short republish interval: the returning node follows a key that no
    // connected peer follows any more, and rechecks it with its peers.
    let config = || republishing_every(Duration::from_millis(200));
    let mut nodes = following_mesh_with(2, "doc", config).await;
    nodes[0].behaviour_mut().put("doc", "draft").expect("put");
    until(&mut nodes, "both hold the value", |n| {
        values(n, "doc").iter().all(Option::is_some)
    })
    .await;

    // Node 1 goes away; node 0 deletes while it is gone.
    let peer1 = *nodes[1].local_peer_id();
    nodes[0].disconnect_peer_id(peer1).expect("connected");
    until(&mut nodes, "disconnected", |n| !n[0].is_connected(&peer1)).await;
    nodes[0].behaviour_mut().delete("doc").expect("delete");

    let (a, b) = nodes.split_at_mut(1);
    libp2p_swarm_test::SwarmExt::connect(&mut b[0], &mut a[0]).await;
    wait_for(&mut nodes, "node 1 to learn the delete", |i, e| {
        matches!((i, e), (1, Event::RecordDeleted { .. })).then_some(())
    })
    .await;
    assert_eq!(values(&nodes, "doc"), vec![None, None]);
}

#[tokio::test]
async fn deleting_on_a_lone_node_still_stores_the_tombstone() {
    let mut nodes = vec![node().await];
    nodes[0].behaviour_mut().put("k", "v").expect("put");
    let tombstone = nodes[0].behaviour_mut().delete("k").expect("delete");
    assert!(tombstone.is_tombstone());
    assert_eq!(nodes[0].behaviour().value("k"), None);
    // Publishing had nobody to reach; the user is told, nothing is lost.
    let (_, event) = next_event(&mut nodes).await;
    assert!(
        matches!(event, SwarmEvent::Behaviour(Event::PublishFailed { .. })),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_delete_travels_more_than_one_hop() {
    // A line: 0 - 1 - 2. The delete on 2 reaches 0 only if 1 forwards it.
    let mut nodes = vec![node().await, node().await, node().await];
    for (i, j) in [(0, 1), (1, 2)] {
        let (left, right) = nodes.split_at_mut(j);
        libp2p_swarm_test::SwarmExt::connect(&mut left[i], &mut right[0]).await;
    }
    for n in nodes.iter_mut() {
        n.behaviour_mut().subscribe("doc").expect("valid key");
    }
    until(&mut nodes, "the line follows the key", |n| {
        n[0].behaviour().peers_following("doc").len() == 1
            && n[1].behaviour().peers_following("doc").len() == 2
            && n[2].behaviour().peers_following("doc").len() == 1
    })
    .await;
    nodes[0].behaviour_mut().put("doc", "draft").expect("put");
    until(&mut nodes, "the value crossed the line", |n| {
        values(n, "doc").iter().all(Option::is_some)
    })
    .await;

    nodes[2].behaviour_mut().delete("doc").expect("delete");
    let (_, source) = wait_for(&mut nodes, "the delete to reach node 0", |i, e| match e {
        Event::RecordDeleted { source, .. } if i == 0 => Some(*source),
        _ => None,
    })
    .await;
    assert!(
        matches!(source, pointer::Source::Gossip { .. }),
        "{source:?}"
    );
    assert_eq!(values(&nodes, "doc"), vec![None; 3]);
    assert!(nodes.iter().all(|n| !n.behaviour().is_subscribed("doc")));
}

/// A delete of a key already deleted everywhere: nobody is on the key's
/// topic any more, so no gossip carries it, and a node that learnt the
/// first delete by fetch is known to nobody as a holder of the key. It
/// still reaches every node holding the older tombstone, in round trips
/// (it took a republish, up to a minute, before).
#[tokio::test]
async fn a_delete_of_a_deleted_key_reaches_every_holder_of_the_older_tombstone() {
    for by_ranges in [false, true] {
        a_delete_of_a_deleted_key_travels(by_ranges).await;
    }
}

/// `by_ranges`: the nodes reconcile by key ranges (spec §18) when they
/// connect, rather than asking key by key.
async fn a_delete_of_a_deleted_key_travels(by_ranges: bool) {
    let config = move || {
        let min_keys = if by_ranges { 0 } else { 1024 };
        test_config()
            .reconcile_min_keys(min_keys)
            .build()
            .expect("valid config")
    };
    let mut nodes = following_mesh_with(2, "doc", config).await;
    nodes[0].behaviour_mut().put("doc", "draft").expect("put");
    until(&mut nodes, "the value is on both", |n| {
        values(n, "doc").iter().all(Option::is_some)
    })
    .await;
    // Node 1 misses the first delete and learns it by fetch once back.
    let (peer0, peer1) = (*nodes[0].local_peer_id(), *nodes[1].local_peer_id());
    nodes[0].disconnect_peer_id(peer1).expect("connected");
    until(&mut nodes, "apart", |n| {
        !n[0].is_connected(&peer1) && !n[1].is_connected(&peer0)
    })
    .await;
    let first = nodes[0].behaviour_mut().delete("doc").expect("delete");
    link(&mut nodes, 0, 1).await;
    until(&mut nodes, "the first delete is on both", |n| {
        n.iter()
            .all(|x| x.behaviour().record("doc").as_deref() == Some(&first))
    })
    .await;
    let second = nodes[0]
        .behaviour_mut()
        .delete("doc")
        .expect("delete again");
    assert!(second.time() > first.time());
    let started = std::time::Instant::now();
    until(&mut nodes, "the second delete is on both", |n| {
        n.iter()
            .all(|x| x.behaviour().record("doc").as_deref() == Some(&second))
    })
    .await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "by ranges {by_ranges}: took {took:?}"
    );
}
