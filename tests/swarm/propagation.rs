//! A put on one node arrives at all others; a later put wins
//! everywhere; concurrent puts with the same time converge everywhere.

use crate::common::*;
use ed25519_dalek::SigningKey;
use pointer::{Event, Op, Record, Source};

#[tokio::test]
async fn put_reaches_every_node_by_gossip() {
    let mut nodes = following_mesh(4, "color").await;

    let written = nodes[0].behaviour_mut().put("color", "blue").expect("put");

    let mut got = [false; 4];
    got[0] = true;
    while got.contains(&false) {
        let (i, record) = wait_for(&mut nodes, "the put to arrive", |i, e| match e {
            Event::RecordUpdated {
                record,
                source: Source::Gossip { .. },
            } => Some((i, record.clone())),
            _ => None,
        })
        .await
        .1;
        assert_eq!(record, written, "node {i} got the signed record unchanged");
        got[i] = true;
    }
    assert_eq!(values(&nodes, "color"), vec![Some("blue".to_owned()); 4]);
}

#[tokio::test]
async fn later_put_wins_everywhere() {
    let mut nodes = following_mesh(3, "color").await;

    nodes[0].behaviour_mut().put("color", "blue").expect("put");
    until(&mut nodes, "blue everywhere", |n| {
        values(n, "color")
            .iter()
            .all(|v| v.as_deref() == Some("blue"))
    })
    .await;
    // A different node writes later: its record has the greater time.
    let later = nodes[2].behaviour_mut().put("color", "red").expect("put");
    until(&mut nodes, "red everywhere", |n| {
        values(n, "color")
            .iter()
            .all(|v| v.as_deref() == Some("red"))
    })
    .await;
    for n in &nodes {
        assert_eq!(n.behaviour().record("color").as_deref(), Some(&later));
    }
}

#[tokio::test]
async fn concurrent_puts_with_equal_time_converge_to_one_record() {
    let mut nodes = following_mesh(3, "color").await;

    // Two authors stamp the very same millisecond; each record is injected
    // at a different node, so the nodes see them in opposite orders.
    let time = nodes[0]
        .behaviour()
        .record("color")
        .map_or(1, |r| r.time() + 1)
        + 1_000;
    let a = Record::sign(
        "color",
        Op::Mut,
        "green",
        time,
        &SigningKey::from_bytes(&[1; 32]),
    );
    let b = Record::sign(
        "color",
        Op::Mut,
        "violet",
        time,
        &SigningKey::from_bytes(&[2; 32]),
    );
    let winner = if pointer::internals::order::supersedes(&a, &b) {
        a.clone()
    } else {
        b.clone()
    };
    nodes[0].behaviour_mut().insert(a).expect("a is valid");
    nodes[1].behaviour_mut().insert(b).expect("b is valid");

    until(&mut nodes, "one record everywhere", |n| {
        n.iter()
            .all(|x| x.behaviour().record("color").as_deref() == Some(&winner))
    })
    .await;
}
