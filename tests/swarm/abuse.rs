//! Raw streams on `/pointer/fetch/0.0.1` that send garbage, a
//! truncated frame, or a length prefix beyond the limit are closed by a full
//! `Pointer` node, which keeps serving other peers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::raw_peer::{length_prefix, RawPeer};
use crate::common::*;
use libp2p_swarm_test::SwarmExt;
use pointer::InboundFailure;
use pointer::{Event, GetOutcome, RecordStore};

/// Drives the server until it reports a broken inbound stream.
async fn inbound_failure(nodes: &mut [Node]) -> InboundFailure {
    wait_for(nodes, "the server to report the stream", |_, e| match e {
        Event::InboundFetchFailed { error, .. } => Some(error.clone()),
        _ => None,
    })
    .await
    .1
}

#[tokio::test]
async fn broken_fetch_streams_are_closed_and_the_node_keeps_serving() {
    // Node 0 serves a record; node 1 is an honest peer; the attacker speaks
    // raw streams.
    let mut nodes = full_mesh(2).await;
    nodes[0].behaviour_mut().put("k", "v").expect("put");
    let attacker = RawPeer::connected_to(&mut nodes[0]).await;

    let limit = nodes[0].behaviour().config().max_message_bytes();
    // Past the record limit and the few bytes an Answer frame adds to it.
    let oversize = length_prefix(limit + 64);
    let cases: [(&str, Vec<u8>, bool); 3] = [
        // A field whose declared length runs past its frame.
        ("garbage", vec![3, 0x0a, 0x7f, 0x41], true),
        // A frame announcing 10 bytes that stops after 2.
        ("truncated", vec![10, 0x0a, 0x01], true),
        // A length prefix over the limit, body never sent.
        ("oversize", oversize, false),
    ];
    for (what, bytes, close) in cases {
        let attack = attacker.send_bytes(&bytes, close);
        let (back, error) = tokio::join!(attack, inbound_failure(&mut nodes));
        assert!(back.is_empty(), "{what}: the server answered {back:?}");
        match (what, &error) {
            ("oversize", InboundFailure::TooLarge { limit: l }) => {
                assert!(*l >= limit && *l < limit + 64, "frame limit {l}")
            }
            ("oversize", other) => panic!("oversize: reported {other:?}"),
            (_, InboundFailure::Malformed(_)) => {}
            (_, other) => panic!("{what}: reported {other:?}"),
        }

        // The honest peer is still served on the same node.
        let outcome = get(&mut nodes, 1, "k").await;
        assert!(
            matches!(outcome, GetOutcome::Found(ref r) if r.value() == "v"),
            "{outcome:?}"
        );
        // Forget the copy so the next round asks the server again.
        nodes[1]
            .behaviour_mut()
            .store_mut()
            .remove("k")
            .expect("remove");
        nodes[1].behaviour_mut().unsubscribe("k");
    }
    assert!(nodes[0].is_connected(nodes[1].local_peer_id()));
}

/// Inbound streams are bounded over all connections, not only per
/// connection: two attackers holding stalled streams (they never send
/// their `Ask`) fill the node-wide allowance, and the next stream is
/// refused even though no connection is at its own limit.
#[tokio::test]
async fn stalled_streams_over_several_connections_hit_the_total_bound() {
    let mut server = node_with(|| {
        test_config()
            .max_inbound_fetch_streams_total(3)
            .build()
            .expect("valid config")
    })
    .await;
    let attackers = [
        RawPeer::connected_to(&mut server).await,
        RawPeer::connected_to(&mut server).await,
    ];
    let mut nodes = vec![server];
    let mut held = Vec::new();
    // Two stalled streams on one connection, one on the other: three in all.
    for c in [0, 0, 1] {
        let open = attackers[c].open();
        let (stream, _) = tokio::join!(open, until(&mut nodes, "stream accepted", |_| true));
        held.push(stream);
    }
    // The fourth stream sends nothing; all it can see is the refusal.
    let refused = attackers[1].send_bytes(&[], false);
    let (back, error) = tokio::join!(refused, inbound_failure(&mut nodes));
    assert!(back.is_empty(), "the refused stream was answered: {back:?}");
    assert!(
        matches!(error, InboundFailure::TooManyStreamsInTotal { limit: 3 }),
        "{error:?}"
    );
    drop(held);
}

/// An `Ask` naming one key again and again: each copy made the node read
/// and copy the record once more before the message limit cut the answer.
/// The answer now stops at the first key named twice.
#[tokio::test]
async fn an_ask_naming_a_key_twice_is_answered_up_to_the_repeat() {
    let mut nodes = vec![node().await];
    nodes[0].behaviour_mut().put("a", "1").expect("put");
    nodes[0].behaviour_mut().put("b", "2").expect("put");
    let asker = RawPeer::connected_to(&mut nodes[0]).await;
    tokio::spawn(nodes.pop().expect("the node").loop_on_next());
    let more = ["b", "a", "b"]
        .into_iter()
        .chain(std::iter::repeat_n("a", 250));
    let ask = pointer::internals::proto::pointer::Ask {
        key: "a".into(),
        more: more.map(String::from).collect(),
        ..Default::default()
    };
    let answer = asker.ask(ask).await.expect_answer();
    assert!(answer.op.is_some(), "a is answered");
    assert_eq!(answer.more.len(), 1, "b, then a again: the answer stops");
    assert!(answer.more[0].op.is_some(), "b is answered");
}

/// The answer's bound on what it reads must not cut an honest answer
/// short: 256 records of 100-byte values fit one 64 KiB message, and all
/// of them are answered in one `Answer`.
#[tokio::test]
async fn an_ask_of_records_that_fit_the_message_is_answered_whole() {
    let mut nodes = vec![node().await];
    let keys: Vec<String> = (0..256).map(|i| format!("k/{i:06}")).collect();
    for key in &keys {
        nodes[0]
            .behaviour_mut()
            .put(key, &"v".repeat(100))
            .expect("put");
    }
    let asker = RawPeer::connected_to(&mut nodes[0]).await;
    tokio::spawn(nodes.pop().expect("the node").loop_on_next());
    let ask = pointer::internals::proto::pointer::Ask {
        key: keys[0].clone(),
        more: keys[1..].to_vec(),
        ..Default::default()
    };
    let answer = asker.ask(ask).await.expect_answer();
    assert!(answer.op.is_some());
    assert_eq!(
        answer.more.len(),
        255,
        "every record fits, so every one is sent"
    );
    assert!(answer.more.iter().all(|e| e.op.is_some()));
}

/// The cheapest input that makes a node send the most: an `Ask` of a few
/// bytes for a large record, over and over, eight at a time. What the
/// asker gets is bounded by its account (the cost model: a burst, then
/// the refill rate); its asks wait rather than fail, and another peer's
/// ask is answered at once meanwhile, since accounts are per peer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_asking_for_a_large_record_in_a_loop_is_served_at_its_budget() {
    const BURST: usize = 200_000;
    const PER_SECOND: usize = 100_000;
    const RECORD: usize = 50_000;
    let config = || {
        test_config()
            .peer_work_budget(BURST, PER_SECOND)
            .build()
            .expect("valid config")
    };
    let mut nodes = vec![node_with(config).await];
    nodes[0]
        .behaviour_mut()
        .put("big", &"v".repeat(RECORD))
        .expect("put");
    let hog = Arc::new(RawPeer::connected_to(&mut nodes[0]).await);
    let honest = RawPeer::connected_to(&mut nodes[0]).await;
    tokio::spawn(nodes.pop().expect("the node").loop_on_next());
    let ask = || pointer::internals::proto::pointer::Ask {
        key: "big".into(),
        ..Default::default()
    };

    let received = Arc::new(AtomicUsize::new(0));
    let in_debt = Arc::new(tokio::sync::Notify::new());
    let started = Instant::now();
    let attack = Duration::from_secs(2);
    let workers: Vec<_> = (0..8)
        .map(|_| {
            let (hog, received, in_debt) = (hog.clone(), received.clone(), in_debt.clone());
            tokio::spawn(async move {
                while started.elapsed() < attack {
                    let answer = hog.ask(ask()).await.answer();
                    let bytes = answer.and_then(|a| a.op).map_or(0, |op| op.value.len());
                    if received.fetch_add(bytes, Ordering::Relaxed) + bytes > BURST {
                        in_debt.notify_one();
                    }
                }
            })
        })
        .collect();
    in_debt.notified().await;
    let asked = Instant::now();
    let answer = honest.ask(ask()).await.expect_answer();
    let honest_took = asked.elapsed();
    assert_eq!(answer.op.map(|op| op.value.len()), Some(RECORD));
    for worker in workers {
        worker.await.expect("the hog's worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let got = received.load(Ordering::Relaxed);
    // The burst, the refill over the run, and the answer that overdrew.
    let bound = BURST + (PER_SECOND as f64 * elapsed) as usize + RECORD;
    eprintln!("the hog got {got} bytes in {elapsed:.2} s (bound {bound}); the honest ask took {honest_took:?}");
    assert!(got <= bound, "{got} bytes to the hog, bound {bound}");
    assert!(
        got >= BURST + RECORD,
        "the hog is served past the burst, not refused: {got}"
    );
    assert!(
        honest_took < Duration::from_millis(500),
        "the honest ask took {honest_took:?}"
    );
}
