//! Many keys in one `Ask` (spec §13, batch extension), against raw peers
//! that speak `/pointer/fetch/0.0.1` by hand: a node that follows many keys
//! at once asks for them in a few full `Ask`s, copes with a peer that
//! answers one key per `Ask` (as the original schema does), refuses an
//! answer with more entries than keys, and answers a batch within its own
//! limits; and two real nodes with different message limits still catch up
//! from each other.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::common::raw_peer::{RawPeer, Reply};
use crate::common::*;
use ed25519_dalek::SigningKey;
use libp2p::PeerId;
use libp2p_swarm_test::SwarmExt;
use pointer::internals::proto::pointer::{Answer, Ask, Entry, Operate, Status};
use pointer::internals::wire;
use pointer::OutboundFailure;
use pointer::{Event, GetOutcome, Op, Record};

/// How the raw peer answers an `Ask`.
#[derive(Clone, Copy, PartialEq)]
enum Answers {
    /// Every asked key, in order.
    All,
    /// The first key only, as a peer that knows only the original schema.
    FirstOnly,
    /// One entry more than there were keys.
    TooMany,
    /// Drops the stream unanswered when the `Ask` has more keys than
    /// this, as a peer with a smaller frame limit does.
    DropOver(usize),
}

/// The keys of every `Ask` the raw peer received, in arrival order.
type Asks = Arc<Mutex<Vec<Vec<String>>>>;

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    i64::try_from(since.expect("clock after 1970").as_millis()).expect("ms fit")
}

fn operates(keys: &[String]) -> HashMap<String, Operate> {
    let signer = SigningKey::from_bytes(&[9; 32]);
    keys.iter()
        .map(|k| {
            let record = Record::sign(k, Op::Mut, &format!("value of {k}"), now_ms(), &signer);
            (k.clone(), wire::to_operate(&record))
        })
        .collect()
}

/// The raw peer's reply to `ask`, the way `mode` says; logs its keys.
fn reply(ask: Ask, records: &HashMap<String, Operate>, mode: Answers, asks: &Asks) -> Reply {
    let keys: Vec<String> = std::iter::once(ask.key).chain(ask.more).collect();
    asks.lock().expect("not poisoned").push(keys.clone());
    if matches!(mode, Answers::DropOver(n) if keys.len() > n) {
        return Reply::Drop;
    }
    let answered: Vec<&String> = match mode {
        Answers::All | Answers::DropOver(_) => keys.iter().collect(),
        Answers::FirstOnly => keys.iter().take(1).collect(),
        Answers::TooMany => std::iter::once(&keys[0]).chain(&keys).collect(),
    };
    Reply::Answer(answer_of(
        answered.into_iter().map(|k| entry_for(records, k)),
    ))
}

/// A raw peer holding a record for each of `keys`, connected to `node`,
/// serving fetch streams in the background. Returns its id and its log.
///
/// The node under test must ask it one stream at a time
/// ([`asking_one_at_a_time`]): see [`RawPeer::serving`].
async fn raw_peer(node: &mut Node, keys: &[String], mode: Answers) -> (PeerId, Asks) {
    let records = operates(keys);
    let asks = Asks::default();
    let log = asks.clone();
    let peer = RawPeer::serving(node, move |ask| reply(ask, &records, mode, &asks)).await;
    (peer.id, log)
}

/// The node under test: at most one `Ask` in flight per peer.
fn asking_one_at_a_time() -> pointer::ConfigBuilder {
    test_config().max_outbound_fetch_streams(1)
}

fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("key-{i}")).collect()
}

/// Node follows every key, then runs until it holds them all.
async fn follow_all_and_catch_up(node: Node, keys: &[String]) -> Node {
    let mut nodes = vec![node];
    for key in keys {
        nodes[0].behaviour_mut().subscribe(key).expect("valid key");
    }
    until(&mut nodes, "every key is caught up", |n| {
        keys.iter().all(|k| n[0].behaviour().value(k).is_some())
    })
    .await;
    nodes.pop().expect("one node")
}

fn logged(asks: &Asks) -> Vec<Vec<String>> {
    asks.lock().expect("not poisoned").clone()
}

/// A node with `config` follows `keys`, which a raw peer answering as
/// `mode` holds, until it holds them all. Returns the keys of every `Ask`
/// the peer received.
async fn catch_up_from_raw_peer(
    keys: &[String],
    config: impl FnOnce() -> pointer::Config + Send,
    mode: Answers,
) -> Vec<Vec<String>> {
    let mut node = node_with(config).await;
    let (_, asks) = raw_peer(&mut node, keys, mode).await;
    follow_all_and_catch_up(node, keys).await;
    logged(&asks)
}

#[tokio::test]
async fn following_many_keys_asks_for_them_in_a_few_full_asks() {
    let keys = keys(600);
    let asks = catch_up_from_raw_peer(
        &keys,
        || asking_one_at_a_time().build().expect("valid config"),
        Answers::All,
    )
    .await;
    let sizes: Vec<usize> = asks.iter().map(Vec::len).collect();
    // 600 keys at 256 per Ask (the default): three streams, not 600.
    assert_eq!(sizes, vec![256, 256, 88], "keys per Ask");
    assert_eq!(asks.concat(), keys, "each key asked once, in order");
}

#[tokio::test]
async fn a_get_goes_ahead_of_a_bulk_catch_up() {
    let keys = keys(601);
    let (bulk, wanted) = keys.split_at(600);
    let mut nodes = vec![node_with(|| asking_one_at_a_time().build().expect("valid config")).await];
    let (_, asks) = raw_peer(&mut nodes[0], &keys, Answers::All).await;
    for key in bulk {
        nodes[0].behaviour_mut().subscribe(key).expect("valid key");
    }
    let outcome = get(&mut nodes, 0, &wanted[0]).await;
    assert!(matches!(outcome, GetOutcome::Found(_)), "{outcome:?}");
    let first = logged(&asks).first().cloned().expect("an ask");
    assert_eq!(first[0], wanted[0], "the get's key leads the first Ask");
    assert_eq!(first[1..], bulk[..255], "then the catch-ups, in order");
}

#[tokio::test]
async fn max_keys_per_ask_bounds_every_ask() {
    let keys = keys(50);
    let config = || {
        asking_one_at_a_time()
            .max_keys_per_ask(8)
            .build()
            .expect("valid config")
    };
    let asks = catch_up_from_raw_peer(&keys, config, Answers::All).await;
    let sizes: Vec<usize> = asks.iter().map(Vec::len).collect();
    assert_eq!(sizes, vec![8, 8, 8, 8, 8, 8, 2]);
}

#[tokio::test]
async fn a_peer_that_answers_one_key_per_ask_is_asked_again_for_the_rest() {
    let keys = keys(40);
    let config = || asking_one_at_a_time().build().expect("valid config");
    let asks = catch_up_from_raw_peer(&keys, config, Answers::FirstOnly).await;
    // Every Ask starts with the oldest key still missing; after the first
    // came back with one answer, the batches shrink to what the peer
    // answers instead of repeating all that is missing each time.
    let mut answered = 0;
    for (i, ask) in asks.iter().enumerate() {
        assert_eq!(ask[0], keys[answered], "ask {i}");
        answered += 1;
    }
    assert_eq!(answered, 40, "one Ask per key");
    let sent: usize = asks.iter().map(Vec::len).sum();
    assert!(sent <= 40 + 2 * 40, "{sent} keys sent for 40");
}

#[tokio::test]
async fn an_answer_over_our_message_limit_is_asked_again_in_smaller_batches() {
    // The raw peer answers every asked key whatever the size, as a peer
    // with a larger `max_message_bytes` would: 20 records of ~650 bytes do
    // not fit our 4 KiB frames.
    let keys: Vec<String> = (0..20)
        .map(|i| format!("{i:03}{}", "k".repeat(400)))
        .collect();
    let config = || {
        asking_one_at_a_time()
            .max_message_bytes(4096)
            .max_value_bytes(1024)
            .build()
            .expect("valid config")
    };
    let asks = catch_up_from_raw_peer(&keys, config, Answers::All).await;
    let sizes: Vec<usize> = asks.iter().map(Vec::len).collect();
    assert!(sizes.len() > 2 && sizes[1] == 1, "asks of {sizes:?} keys");
}

#[tokio::test]
async fn an_ask_the_peer_drops_is_asked_again_in_smaller_batches() {
    let keys = keys(20);
    let config = || asking_one_at_a_time().build().expect("valid config");
    let asks = catch_up_from_raw_peer(&keys, config, Answers::DropOver(4)).await;
    let sizes: Vec<usize> = asks.iter().map(Vec::len).collect();
    assert_eq!(sizes[..2], [20, 1], "asks of {sizes:?} keys");
    assert!(sizes.iter().skip(1).all(|&n| n <= 4 * 2), "{sizes:?}");
}

#[tokio::test]
async fn an_answer_with_more_entries_than_keys_is_refused_whole() {
    let keys = keys(3);
    let mut nodes = vec![node_with(|| asking_one_at_a_time().build().expect("valid config")).await];
    let (peer, _) = raw_peer(&mut nodes[0], &keys, Answers::TooMany).await;
    for key in &keys {
        nodes[0].behaviour_mut().subscribe(key).expect("valid key");
    }
    let failed = wait_for(&mut nodes, "the broken answer", |_, e| match e {
        Event::FetchFailed {
            peer: from,
            keys,
            error: OutboundFailure::Malformed(_),
        } if *from == peer => Some(keys.clone()),
        _ => None,
    })
    .await
    .1;
    assert_eq!(failed, keys);
    for key in &keys {
        assert_eq!(
            nodes[0].behaviour().record(key),
            None,
            "{key}: nothing stored"
        );
    }
}

/// Sends one `Ask` for `keys` to the node `asker` is connected to.
async fn ask_raw(asker: &RawPeer, keys: &[String]) -> Answer {
    let ask = Ask {
        key: keys[0].clone(),
        more: keys[1..].to_vec(),
        have: Vec::new(),
        ranges: Vec::new(),
    };
    asker.ask(ask).await.expect_answer()
}

/// A served node holding `keys` (values of `value_len` bytes), running on
/// its own, and a raw asker connected to it.
async fn served(
    config: impl FnOnce() -> pointer::Config + Send,
    keys: &[String],
    value_len: usize,
) -> RawPeer {
    let mut server = node_with(config).await;
    for key in keys {
        let value = format!("{key}:{}", "x".repeat(value_len));
        server.behaviour_mut().put(key, &value).expect("put");
    }
    let asker = RawPeer::connected_to(&mut server).await;
    tokio::spawn(server.loop_on_next());
    asker
}

#[tokio::test]
async fn a_node_answers_a_batch_in_order_up_to_its_key_limit() {
    let keys = keys(20);
    let asker = served(
        || {
            test_config()
                .max_keys_per_ask(5)
                .build()
                .expect("valid config")
        },
        &keys[..10],
        10,
    )
    .await;
    let answer = ask_raw(&asker, &keys[5..15]).await;
    // Keys 5..15 asked; 5..10 held, 10..15 not: five entries at most.
    let entries: Vec<Entry> = std::iter::once(Entry {
        status: answer.status,
        op: answer.op,
    })
    .chain(answer.more)
    .collect();
    assert_eq!(entries.len(), 5, "capped at max_keys_per_ask");
    assert!(entries.iter().all(|e| e.status == Status::Ok_pb));
    for (entry, key) in entries.iter().zip(&keys[5..]) {
        let op = entry.op.clone().expect("a record");
        let record = wire::from_operate(key, op).expect("well-formed");
        assert!(
            record.verify(),
            "{key}: the record of the key asked, in order"
        );
    }
}

#[tokio::test]
async fn a_node_answers_a_batch_within_its_message_limit() {
    let keys = keys(10);
    let limit = 2048;
    let config = move || {
        test_config()
            .max_message_bytes(limit)
            .max_value_bytes(1024)
            .build()
            .expect("valid config")
    };
    let asker = served(config, &keys, 500).await;
    let answer = ask_raw(&asker, &keys).await;
    let size = quick_protobuf::MessageWrite::get_size(&answer);
    // Records of ~650 bytes each: the answer stops before the limit
    // (plus the 16 bytes an Answer may add around one record).
    assert!(size <= limit + 16, "answer of {size} bytes");
    assert_eq!(1 + answer.more.len(), 3, "as many as fit");
}

#[tokio::test]
async fn peers_with_different_message_limits_still_catch_up_both_ways() {
    // Node 0 reads frames of at most 4 KiB; node 1 has the default 64 KiB.
    // Node 1's answers to a batch overflow node 0's frames, and node 1's
    // batched asks (long keys) overflow them too; both ways must recover.
    let small = || {
        test_config()
            .max_message_bytes(4096)
            .max_value_bytes(1024)
            .build()
            .expect("valid config")
    };
    let mut nodes = vec![node_with(small).await, node().await];
    let long = |side: usize, i: usize| format!("{side}-{i:02}-{}", "k".repeat(120));
    let keys: [Vec<String>; 2] = [0, 1].map(|side| (0..40).map(|i| long(side, i)).collect());
    for (side, node) in nodes.iter_mut().enumerate() {
        for key in &keys[side] {
            let value = format!("{key}:{}", "v".repeat(500));
            node.behaviour_mut().put(key, &value).expect("put");
        }
    }
    for (side, node) in nodes.iter_mut().enumerate() {
        for key in &keys[1 - side] {
            node.behaviour_mut().subscribe(key).expect("valid key");
        }
    }
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    until(&mut nodes, "both nodes hold every key", |n| {
        (0..2).all(|side| {
            keys[1 - side]
                .iter()
                .all(|k| n[side].behaviour().value(k).is_some())
        })
    })
    .await;
}
