//! Range reconciliation (spec §18) against hostile peers over real
//! streams: what a peer's ranges can make a node compute is bounded, a
//! bad `Ask` is refused without harm, and an answerer that splits forever
//! or breaks the rules cannot keep a node asking.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::common::raw_peer::{Outcome, RawPeer, Reply};
use crate::common::*;
use libp2p::PeerId;
use libp2p_swarm_test::SwarmExt;
use pointer::internals::proto::pointer::{Answer, Ask, Range, RangeReply, Reconciled, Status};
use pointer::OutboundFailure;
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

/// How a raw answerer replies to a node's reconciliation asks. Ranges the
/// node listed (it holds few records there) are answered with an empty
/// listing, except by [`Splits::Listed`].
#[derive(Clone, Copy)]
enum Splits {
    /// Into two valid parts with made-up fingerprints, forever.
    Forever,
    /// Into 64 valid parts with made-up fingerprints, forever: each split
    /// of a range adds 63 more to wait.
    Wide,
    /// Into one part: not a split.
    One,
    /// Splits a range the node listed (empty here), which every answerer
    /// compares instead.
    Listed,
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
    if range.listed && !matches!(splits, Splits::Listed) {
        return RangeReply {
            kind: Reconciled::Listed,
            ..RangeReply::default()
        };
    }
    let part = |lower: String, upper: String| Range {
        lower,
        upper,
        sum: vec![7; 16],
        count: 2,
        ..Range::default()
    };
    // Cut points after the lower end and before every key the node holds
    // ("k..."), so the last part keeps all of them and can be split again.
    let cuts = match splits {
        Splits::Forever | Splits::Listed => 1,
        Splits::Wide => 63,
        Splits::One => 0,
    };
    let mut lowers = vec![range.lower.clone()];
    lowers.extend((1..=cuts).map(|n| format!("{}{}", range.lower, "0".repeat(n))));
    let uppers = lowers.iter().skip(1).cloned().chain([range.upper.clone()]);
    RangeReply {
        kind: Reconciled::Split,
        parts: lowers
            .iter()
            .cloned()
            .zip(uppers)
            .map(|(l, u)| part(l, u))
            .collect(),
        ..RangeReply::default()
    }
}

/// A node that reconciles by ranges whatever it holds, holding `keys`
/// records ("k000", ...).
async fn reconciling_node(keys: usize, config: pointer::ConfigBuilder) -> Node {
    let config = config.reconcile_min_keys(0).build().expect("valid");
    let mut node = node_with(|| config).await;
    for i in 0..keys {
        node.behaviour_mut()
            .put(&format!("k{i:03}"), "v")
            .expect("put");
    }
    node
}

/// Drives `nodes` through a get's round trip to the raw peer: a further
/// range ask, were there one, would have gone out meanwhile. The raw peer
/// may drop the get's stream if it arrives while a range ask's is handed
/// over (see [`RawPeer::serving`]); that failure ends the round trip too.
async fn after_a_round_trip(nodes: &mut [Node]) {
    let outcome = get(nodes, 0, "elsewhere").await;
    assert!(
        matches!(outcome, GetOutcome::NotFound | GetOutcome::TimedOut),
        "{outcome:?}"
    );
}

/// How many range asks a node holding 100 records under `config` sends a
/// raw peer replying `splits`: counted once it sent `at_least` and a round
/// trip to the peer went by.
async fn range_asks(config: pointer::ConfigBuilder, splits: Splits, at_least: usize) -> usize {
    let mut nodes = vec![reconciling_node(100, config).await];
    let (_, asked) = splitter(&mut nodes[0], splits).await;
    until(&mut nodes, "the range asks", |_| {
        asked.load(Ordering::SeqCst) >= at_least
    })
    .await;
    after_a_round_trip(&mut nodes).await;
    asked.load(Ordering::SeqCst)
}

#[tokio::test]
async fn an_answerer_that_splits_forever_gets_max_reconcile_rounds_asks() {
    let config = test_config().max_reconcile_rounds(8);
    let asks = range_asks(config, Splits::Forever, 8).await;
    assert_eq!(asks, 8, "no more than max_reconcile_rounds");
}

/// Splits of 64 parts, each of which the node must ask about again: the
/// ranges waiting grow by 63 a split. Asked breadth first with no bound,
/// a session held hundreds of MiB of them; now ranges are asked depth
/// first and a session with more than `max_reconcile_pending` waiting
/// ends.
#[tokio::test]
async fn an_answerer_whose_splits_pile_up_is_cut_off_at_max_reconcile_pending() {
    let config = test_config()
        .max_reconcile_rounds(1000)
        .max_reconcile_pending(100);
    let asks = range_asks(config, Splits::Wide, 1).await;
    // 64 parts, then 16 asked and 63 more for the one split among them:
    // past 100 waiting by the third ask.
    assert!(asks <= 3, "{asks} range asks");
}

/// A node holding `keys` records meets a raw peer replying `splits`: the
/// reply is malformed, so the reconciliation ends after that one ask.
async fn one_malformed_split(keys: usize, splits: Splits) {
    let config = test_config().max_reconcile_rounds(100);
    let mut nodes = vec![reconciling_node(keys, config).await];
    let (peer, asked) = splitter(&mut nodes[0], splits).await;
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

/// A range the node holds at most one record in goes out as a listing of
/// it, which every answerer compares rather than splits. A peer that
/// splits it instead ends the reconciliation: splits of an empty range
/// could go on for ever.
#[tokio::test]
async fn a_split_of_a_listed_range_ends_the_reconciliation_as_malformed() {
    one_malformed_split(0, Splits::Listed).await;
}

#[tokio::test]
async fn a_split_that_does_not_split_ends_the_reconciliation_as_malformed() {
    one_malformed_split(100, Splits::One).await;
}

/// A `MemoryStore` that counts its reads.
struct CountingStore {
    inner: pointer::MemoryStore,
    reads: Arc<AtomicUsize>,
}

impl pointer::RecordStore for CountingStore {
    type RecordsIter<'a> = <pointer::MemoryStore as pointer::RecordStore>::RecordsIter<'a>;

    fn get(&self, key: &str) -> Option<std::borrow::Cow<'_, pointer::Record>> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get(key)
    }

    fn put(&mut self, record: pointer::Record) -> pointer::store::Result<()> {
        self.inner.put(record)
    }

    fn remove(&mut self, key: &str) -> pointer::store::Result<()> {
        self.inner.remove(key)
    }

    fn records(&self) -> Self::RecordsIter<'_> {
        self.inner.records()
    }
}

/// Store reads a node holding 3,000 records makes while it reconciles once
/// with a raw peer that replies `kind` (with no item) to every range.
async fn reads_while_reconciling(kind: Reconciled) -> usize {
    let reads = Arc::new(AtomicUsize::new(0));
    let store = CountingStore {
        inner: pointer::MemoryStore::new(),
        reads: reads.clone(),
    };
    let config = test_config().reconcile_min_keys(0).build().expect("valid");
    let mut nodes = vec![node_with_store(store, config).await];
    for i in 0..3_000 {
        let key = format!("k{i:04}");
        nodes[0].behaviour_mut().put(&key, "v").expect("put");
    }
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = asked.clone();
    reads.store(0, Ordering::SeqCst);
    RawPeer::serving(&mut nodes[0], move |ask| {
        counter.fetch_add(usize::from(!ask.ranges.is_empty()), Ordering::SeqCst);
        let reply = RangeReply {
            kind,
            ..RangeReply::default()
        };
        Reply::Answer(Answer {
            status: Status::NotExist,
            ranges: vec![reply; ask.ranges.len()],
            ..Answer::default()
        })
    })
    .await;
    until(&mut nodes, "a range ask", |_| {
        asked.load(Ordering::SeqCst) >= 1
    })
    .await;
    let outcome = get(&mut nodes, 0, "elsewhere").await;
    assert!(matches!(outcome, GetOutcome::NotFound), "{outcome:?}");
    reads.load(Ordering::SeqCst)
}

/// A reply listing nothing over the whole key space made the node compare
/// every record it held against it, a store read each (at 150,000 keys,
/// 74-82 ms of CPU per reconnect for a reply of a few bytes). The node now
/// compares only the keys it would tell the peer of, those the peer
/// follows or watches: none here, so the reply costs what an honest
/// `Equal` does.
#[tokio::test]
async fn an_empty_listing_costs_the_node_no_more_reads_than_an_equal_reply() {
    let equal = reads_while_reconciling(Reconciled::Equal).await;
    let listed = reads_while_reconciling(Reconciled::Listed).await;
    eprintln!("store reads: {equal} after an Equal reply, {listed} after an empty listing");
    assert!(listed <= equal + 8, "{listed} reads against {equal}");
}
