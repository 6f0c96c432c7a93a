//! Range reconciliation (spec §18) against hostile peers over real
//! streams: what a peer's ranges can make a node compute is bounded, a
//! bad `Ask` is refused without harm, and an answerer that splits forever
//! or breaks the rules cannot keep a node asking.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use asynchronous_codec::Framed;
use common::*;
use futures::{SinkExt as _, StreamExt as _};
use libp2p::{PeerId, Swarm};
use libp2p_swarm_test::SwarmExt;
use pointer::proto::pointer::{Answer, Ask, Range, RangeReply, Reconciled, Status};
use pointer::protocol::{OutboundFailure, PROTOCOL};
use pointer::{Event, GetOutcome};
use quick_protobuf_codec::Codec;

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

/// A node holding 100 keys, and a raw peer's stream control to it.
async fn served(config: pointer::Config) -> (libp2p_stream::Control, PeerId) {
    let mut server = node_with(|| config).await;
    for i in 0..100 {
        server
            .behaviour_mut()
            .put(&format!("k{i:03}"), "v")
            .expect("put");
    }
    let mut asker = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    asker.connect(&mut server).await;
    let control = asker.behaviour().new_control();
    let id = *server.local_peer_id();
    tokio::spawn(asker.loop_on_next());
    tokio::spawn(server.loop_on_next());
    (control, id)
}

/// Sends one `Ask`; the `Answer`, or `None` if the stream ended without one.
async fn send(control: &mut libp2p_stream::Control, to: PeerId, ask: Ask) -> Option<Answer> {
    let stream = control.open_stream(to, PROTOCOL).await.expect("opens");
    let mut framed = Framed::new(stream, Codec::<Ask, Answer>::new(1 << 20));
    framed.send(ask).await.expect("ask sent");
    framed.close().await.expect("half-close");
    framed.next().await.and_then(Result::ok)
}

#[tokio::test]
async fn a_peer_gets_at_most_max_reconcile_ranges_replies() {
    let config = test_config()
        .max_reconcile_ranges(4)
        .build()
        .expect("valid");
    let (mut control, server) = served(config).await;
    let answer = send(&mut control, server, ranges_ask(vec![whole(7); 50]))
        .await
        .expect("an answer");
    assert_eq!(answer.ranges.len(), 4, "capped at max_reconcile_ranges");
    // The whole key space, 100 items: cut into 16 parts.
    assert!(answer.ranges.iter().all(|r| r.kind == Reconciled::Split));
    assert_eq!(answer.ranges[0].parts.len(), 16);
    let total: u64 = answer.ranges[0].parts.iter().map(|p| p.count).sum();
    assert_eq!(total, 100, "the parts count every record held");
}

#[tokio::test]
async fn reversed_or_broken_ranges_are_answered_or_refused_without_harm() {
    let (mut control, server) = served(test_config().build().expect("valid")).await;
    // A range whose end comes before its start holds nothing.
    let reversed = Range {
        lower: "z".into(),
        upper: "a".into(),
        ..whole(0)
    };
    let answer = send(&mut control, server, ranges_ask(vec![reversed]))
        .await
        .expect("an answer");
    assert_eq!(answer.ranges.len(), 1);
    assert_eq!(answer.ranges[0].kind, Reconciled::Listed);
    assert!(answer.ranges[0].items.is_empty());
    // A fingerprint of 3 bytes: the stream is closed without an answer.
    let broken = Range {
        sum: vec![1, 2, 3],
        ..whole(1)
    };
    assert_eq!(
        send(&mut control, server, ranges_ask(vec![broken])).await,
        None
    );
    // And the node still serves.
    let plain = Ask {
        key: "k001".into(),
        ..Ask::default()
    };
    let answer = send(&mut control, server, plain).await.expect("an answer");
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

/// A raw peer that answers every `Ask` of the node it dials: key asks
/// with `NotExist`, range asks by `splits`. Returns the peer, and how many
/// range asks it answered.
async fn splitter(node: &mut Node, splits: Splits) -> (PeerId, Arc<AtomicUsize>) {
    let mut raw = Swarm::new_ephemeral_tokio(|_| libp2p_stream::Behaviour::new());
    let mut incoming = raw
        .behaviour()
        .new_control()
        .accept(PROTOCOL)
        .expect("not accepted yet");
    let peer = *raw.local_peer_id();
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            let mut framed = Framed::new(stream, Codec::<Answer, Ask>::new(1 << 20));
            let Some(Ok(ask)) = framed.next().await else {
                continue;
            };
            if !ask.ranges.is_empty() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let ranges = ask.ranges.iter().map(|r| split(r, splits)).collect();
            let answer = Answer {
                status: Status::NotExist,
                ranges,
                ..Answer::default()
            };
            let _ = framed.send(answer).await;
            let _ = framed.close().await;
        }
    });
    raw.connect(node).await;
    tokio::spawn(raw.loop_on_next());
    (peer, asked)
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
