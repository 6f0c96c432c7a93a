//! Range reconciliation (spec §18) against hostile peers over real
//! streams: what a peer's ranges can make a node compute is bounded, a
//! bad `Ask` is refused without harm, and an answerer that splits forever
//! or breaks the rules cannot keep a node asking.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::raw_peer::{Outcome, RawPeer, Reply};
use common::*;
use libp2p::PeerId;
use libp2p_swarm_test::SwarmExt;
use pointer::proto::pointer::{Answer, Ask, Range, RangeReply, Reconciled, Status};
use pointer::protocol::OutboundFailure;
use pointer::{Event, GetOutcome};

fn whole(count: u64) -> Range {
    Range {
        sum: vec![9; 16],
        count,
        ..Range::default()
    }
}

fn ranges_ask(ranges: Vec<Range>) -> Ask {
    Ask {
        ranges,
        ..Ask::default()
    }
}

/// A node holding 100 keys, running on its own, and a raw peer
/// connected to it.
async fn served(config: pointer::Config) -> RawPeer {
    let mut server = node_with(|| config).await;
    for i in 0..100 {
        server
            .behaviour_mut()
            .put(&format!("k{i:03}"), "v")
            .expect("put");
    }
    let asker = RawPeer::connected_to(&mut server).await;
    tokio::spawn(server.loop_on_next());
    asker
}

#[tokio::test]
async fn a_peer_gets_at_most_max_reconcile_ranges_replies() {
    let config = test_config()
        .max_reconcile_ranges(4)
        .build()
        .expect("valid");
    let asker = served(config).await;
    let answer = asker
        .ask(ranges_ask(vec![whole(7); 50]))
        .await
        .expect_answer();
    assert_eq!(answer.ranges.len(), 4, "capped at max_reconcile_ranges");
    // The whole key space, 100 items: cut into 16 parts.
    assert!(answer.ranges.iter().all(|r| r.kind == Reconciled::Split));
    assert_eq!(answer.ranges[0].parts.len(), 16);
    let total: u64 = answer.ranges[0].parts.iter().map(|p| p.count).sum();
    assert_eq!(total, 100, "the parts count every record held");
}

#[tokio::test]
async fn reversed_or_broken_ranges_are_answered_or_refused_without_harm() {
    let asker = served(test_config().build().expect("valid")).await;
    // A range whose end comes before its start holds nothing.
    let reversed = Range {
        lower: "z".into(),
        upper: "a".into(),
        ..whole(0)
    };
    let answer = asker.ask(ranges_ask(vec![reversed])).await.expect_answer();
    assert_eq!(answer.ranges.len(), 1);
    assert_eq!(answer.ranges[0].kind, Reconciled::Listed);
    assert!(answer.ranges[0].items.is_empty());
    // A fingerprint of 3 bytes: the stream is closed without an answer.
    let broken = Range {
        sum: vec![1, 2, 3],
        ..whole(1)
    };
    let outcome = asker.ask(ranges_ask(vec![broken])).await;
    assert!(
        matches!(outcome, Outcome::Closed | Outcome::Failed(_)),
        "{outcome:?}"
    );
    // And the node still serves.
    let plain = Ask {
        key: "k001".into(),
        ..Ask::default()
    };
    let answer = asker.ask(plain).await.expect_answer();
    assert_eq!(answer.status, Status::Ok_pb);
    assert!(answer.op.is_some());
}

/// How a raw answerer replies to a node's reconciliation asks.
#[derive(Clone, Copy)]
enum Splits {
    /// Into two valid parts with made-up fingerprints, forever.
    Forever,
    /// Into one part: not a split.
    One,
}

/// A raw peer that answers every `Ask` of the node it connects to: key
/// asks with `NotExist`, range asks by `splits`. Returns the peer, and how
/// many range asks it answered.
async fn splitter(node: &mut Node, splits: Splits) -> (PeerId, Arc<AtomicUsize>) {
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    let raw = RawPeer::serving(node, move |ask| {
        if !ask.ranges.is_empty() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
        Reply::Answer(Answer {
            status: Status::NotExist,
            ranges: ask.ranges.iter().map(|r| split(r, splits)).collect(),
            ..Answer::default()
        })
    })
    .await;
    (raw.id, asked)
}

fn split(range: &Range, splits: Splits) -> RangeReply {
    let middle = format!("{}0", range.lower);
    let part = |lower: String, upper: String| Range {
        lower,
        upper,
        sum: vec![7; 16],
        count: 2,
        ..Range::default()
    };
    let parts = match splits {
        Splits::Forever => vec![
            part(range.lower.clone(), middle.clone()),
            part(middle, range.upper.clone()),
        ],
        Splits::One => vec![part(range.lower.clone(), range.upper.clone())],
    };
    RangeReply {
        kind: Reconciled::Split,
        parts,
        ..RangeReply::default()
    }
}

fn reconciling_node(rounds: usize) -> pointer::Config {
    test_config()
        .reconcile_min_keys(0)
        .max_reconcile_rounds(rounds)
        .build()
        .expect("valid")
}

#[tokio::test]
async fn an_answerer_that_splits_forever_gets_max_reconcile_rounds_asks() {
    let mut nodes = vec![node_with(|| reconciling_node(8)).await];
    let (_, asked) = splitter(&mut nodes[0], Splits::Forever).await;
    until(&mut nodes, "eight range asks", |_| {
        asked.load(Ordering::SeqCst) >= 8
    })
    .await;
    // A get's round trip to the same peer: a ninth range ask, were there
    // one, would have gone out meanwhile.
    let outcome = get(&mut nodes, 0, "elsewhere").await;
    assert!(matches!(outcome, GetOutcome::NotFound), "{outcome:?}");
    assert_eq!(
        asked.load(Ordering::SeqCst),
        8,
        "no more than max_reconcile_rounds"
    );
}

#[tokio::test]
async fn a_split_that_does_not_split_ends_the_reconciliation_as_malformed() {
    let mut nodes = vec![node_with(|| reconciling_node(100)).await];
    let (peer, asked) = splitter(&mut nodes[0], Splits::One).await;
    wait_for(&mut nodes, "the broken reply", |_, e| match e {
        Event::FetchFailed {
            peer: from,
            keys,
            error: OutboundFailure::Malformed(_),
        } if *from == peer && keys.is_empty() => Some(()),
        _ => None,
    })
    .await;
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one ask, then it stops");
}
