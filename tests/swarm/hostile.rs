//! A hostile peer, speaking raw gossipsub (`common::rogue`) or raw fetch
//! streams (`common::raw_peer`) over the wire, can neither silence a key,
//! hold a user's read, nor make a node hold more than its limits.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::raw_peer::{RawPeer, Reply};
use crate::common::rogue::{topic_of, Rogue};
use crate::common::*;
use pointer::internals::wire;
use pointer::signing_key;
use pointer::RejectReason;
use pointer::{Config, Event, GetOutcome, Misbehaviour, Op, Record, Source};

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

/// A target following `keys`, an honest writer linked to it following the
/// same keys, and a rogue connected to the target that has seen its
/// subscriptions.
async fn arena(keys: &[&str]) -> (Vec<Node>, Rogue) {
    arena_with(keys, || test_config().build().expect("valid config")).await
}

/// [`arena`] with `config` for both honest nodes.
async fn arena_with(keys: &[&str], config: fn() -> Config) -> (Vec<Node>, Rogue) {
    let mut nodes = full_mesh_with(2, config).await;
    for node in nodes.iter_mut() {
        for key in keys {
            node.behaviour_mut().subscribe(key).expect("valid key");
        }
    }
    for key in keys {
        until_following(&mut nodes, &[0, 1], key).await;
    }
    let rogue = Rogue::connected_to(&mut nodes[0]).await;
    let target = *nodes[0].local_peer_id();
    until(
        &mut nodes,
        "the rogue sees the target's subscriptions",
        |_| rogue.topics_of(&target) >= keys.len(),
    )
    .await;
    (nodes, rogue)
}

/// Duplicate-cache poisoning: the rogue sends record R's exact bytes on
/// another key's topic before R is published on its own. The target
/// refuses them there, and must still take R by gossip when the honest
/// writer publishes it on its own topic: the message id binds the topic.
#[tokio::test]
async fn a_record_copied_onto_another_topic_does_not_shadow_it_on_its_own() {
    let (mut nodes, rogue) = arena(&["k1", "k2"]).await;
    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let record = Record::sign("k1", Op::Mut, "v", now_ms(), &signer);
    rogue.publish(topic_of("k2"), wire::encode_operate(&record));
    wait_for(&mut nodes, "the target to refuse the copy on k2", |i, e| {
        matches!(e, Event::RecordRejected { key, .. } if i == 0 && key == "k2").then_some(())
    })
    .await;

    nodes[1]
        .behaviour_mut()
        .insert(record.clone())
        .expect("the writer takes it");
    let (_, source) = wait_for(&mut nodes, "the target to take R on k1", |i, e| match e {
        Event::RecordUpdated { record: r, source } if i == 0 && *r == record => Some(*source),
        _ => None,
    })
    .await;
    assert!(matches!(source, Source::Gossip { .. }), "{source:?}");
}

/// A record for `key` signed by the rogue with a corrupted signature; the
/// value makes each one distinct, so gossipsub does not drop them as
/// duplicates before Pointer checks them.
fn forged(rogue: &Rogue, key: &str, i: usize) -> Record {
    forged_at(rogue, key, i, now_ms())
}

/// [`forged`], dated `time`.
fn forged_at(rogue: &Rogue, key: &str, i: usize, time: i64) -> Record {
    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let good = Record::sign(key, Op::Mut, &format!("x{i}"), time, &signer);
    let mut sig = *good.signature().as_bytes();
    sig[0] ^= 1;
    Record::from_parts(
        key.to_owned(),
        Op::Mut,
        good.value().to_owned(),
        good.time(),
        *good.author(),
        pointer::Signature::from_bytes(sig),
    )
}

/// Drives `nodes` until the target bans the rogue; returns why.
async fn until_banned(nodes: &mut [Node], rogue: &Rogue) -> Misbehaviour {
    let peer = rogue.peer;
    wait_for(nodes, "the target to ban the rogue", |i, e| match e {
        Event::PeerBanned {
            peer: p, reason, ..
        } if i == 0 && *p == peer => Some(reason.clone()),
        _ => None,
    })
    .await
    .1
}

/// An invalid-record flood: 10,000 records with bad signatures. The rogue
/// is disconnected within 2 s and cannot connect again; meanwhile the
/// honest peer's `get`s for keys only the target holds are all answered.
#[tokio::test]
async fn a_peer_flooding_bad_signatures_is_banned_and_honest_gets_are_answered() {
    let (mut nodes, rogue) = arena(&["k"]).await;
    let keys: Vec<String> = (0..50).map(|i| format!("g{i}")).collect();
    for key in &keys {
        nodes[0].behaviour_mut().put(key, "v").expect("put");
    }
    // Forged beforehand, so that the clock starts with the flood itself.
    let flood: Vec<Vec<u8>> = (0..10_000)
        .map(|i| wire::encode_operate(&forged(&rogue, "k", i)))
        .collect();
    let started = Instant::now();
    for bytes in flood {
        rogue.publish(topic_of("k"), bytes);
    }
    // The honest peer's gets go out once the flood reaches the target; the
    // ban may come at any point among them.
    let rogue_peer = rogue.peer;
    let (_, first) = wait_for(&mut nodes, "the flood to arrive", |i, e| match e {
        Event::RecordRejected { peer, .. } if i == 0 && *peer == rogue_peer => {
            Some(started.elapsed())
        }
        _ => None,
    })
    .await;
    let mut banned = None;
    let mut latencies = Vec::new();
    for key in &keys {
        let asked = Instant::now();
        let id = nodes[1].behaviour_mut().get(key);
        let outcome = loop {
            let (_, event) = wait_for(&mut nodes, "the honest get", |i, e| match e {
                Event::GetFinished {
                    id: got, outcome, ..
                } if i == 1 && *got == id => Some(Ok(outcome.clone())),
                Event::PeerBanned { peer, reason, .. } if i == 0 && *peer == rogue_peer => {
                    Some(Err(reason.clone()))
                }
                _ => None,
            })
            .await;
            match event {
                Ok(outcome) => break outcome,
                Err(reason) => banned = Some((reason, started.elapsed(), latencies.len())),
            }
        };
        assert!(
            matches!(outcome, pointer::GetOutcome::Found(_)),
            "{key}: {outcome:?}"
        );
        latencies.push(asked.elapsed());
    }
    let (reason, took, gets_before) = match banned {
        Some(seen) => seen,
        None => {
            let reason = until_banned(&mut nodes, &rogue).await;
            (reason, started.elapsed(), latencies.len())
        }
    };
    assert!(
        matches!(reason, Misbehaviour::InvalidRecords { .. }),
        "{reason:?}"
    );
    assert!(took < Duration::from_secs(2), "banned after {took:?}");
    until(&mut nodes, "the rogue is disconnected", |n| {
        !n[0].is_connected(&rogue.peer)
    })
    .await;
    latencies.sort();
    eprintln!(
        "first forged record refused after {first:?}, banned after {took:?} ({gets_before} of the gets done by then); honest get p50 {:?} p99 {:?}",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100]
    );

    // Its next connection is refused by the target.
    let addr = nodes[0]
        .external_addresses()
        .next()
        .expect("an address")
        .clone();
    rogue.dial(addr);
    let refused = async {
        loop {
            if let (0, libp2p::swarm::SwarmEvent::IncomingConnectionError { error, .. }) =
                next_event(&mut nodes).await
            {
                return error.to_string();
            }
        }
    };
    let error = tokio::time::timeout(PATIENCE, refused)
        .await
        .expect("the target refuses the rogue's new connection");
    assert!(!nodes[0].is_connected(&rogue.peer), "{error}");
}

/// A subscription flood: topics that are not record topics, or whose key is
/// over `max_key_bytes`, are not kept at all; past `max_topics_per_peer`
/// record topics the rogue is banned, and the target forgets them.
#[tokio::test]
async fn a_peer_subscribing_to_too_many_topics_is_banned() {
    fn config() -> Config {
        test_config()
            .max_topics_per_peer(40)
            .max_key_bytes(64)
            .build()
            .expect("valid config")
    }
    let (mut nodes, rogue) = arena_with(&["k"], config).await;
    let long = "x".repeat(65);
    for i in 0..50 {
        rogue.subscribe(format!("not-a-record-topic/{i}"));
        rogue.subscribe(topic_of(&format!("{long}{i}")));
    }
    // 39 record topics besides "k": within the limit.
    for i in 0..39 {
        rogue.subscribe(topic_of(&format!("s{i}")));
    }
    let peer = rogue.peer;
    let long_key = format!("{long}0");
    until(
        &mut nodes,
        "the target knows the rogue's record topics",
        |n| n[0].behaviour().peers_following("s38").contains(&peer),
    )
    .await;
    assert!(nodes[0].is_connected(&peer), "not banned within the limit");
    assert!(nodes[0].behaviour().peers_following(&long_key).is_empty());

    rogue.subscribe(topic_of("s39"));
    rogue.subscribe(topic_of("s40"));
    let reason = until_banned(&mut nodes, &rogue).await;
    assert_eq!(reason, Misbehaviour::TooManyTopics { limit: 40 });
    assert!(nodes[0].behaviour().peers_following("s0").is_empty());
}

/// The total of all peers' subscriptions is bounded in bytes too: the
/// peer holding the most is banned when it is exceeded.
#[tokio::test]
async fn subscriptions_past_the_byte_bound_ban_the_heaviest_peer() {
    fn config() -> Config {
        // Room for some 20 short topics in all (each costs 4 × key + 256).
        test_config()
            .max_subscription_bytes(20 * 268)
            .build()
            .expect("valid config")
    }
    let (mut nodes, rogue) = arena_with(&["k"], config).await;
    for i in 0..30 {
        rogue.subscribe(topic_of(&format!("s{i:02}")));
    }
    let reason = until_banned(&mut nodes, &rogue).await;
    assert!(
        matches!(reason, Misbehaviour::SubscriptionBytes { .. }),
        "{reason:?}"
    );
    assert!(
        nodes[0]
            .behaviour()
            .peers_following("k")
            .contains(nodes[1].local_peer_id()),
        "the honest peer keeps its place"
    );
}

/// Sybils each lighter than an honest heavy follower: the honest peer
/// follows 15 of the target's keys, two rogues subscribe to 4 topics each
/// that the target does not follow, and together they pass the bound (20
/// topics). The heaviest peer is the honest one, and it used to be the one
/// banned, again whenever it came back. Now the peer banned is the one
/// holding the most for keys the target does not watch: a rogue.
#[tokio::test]
async fn sybils_past_the_byte_bound_never_get_a_heavy_honest_follower_banned() {
    fn config() -> Config {
        test_config()
            .max_subscription_bytes(20 * 268)
            .build()
            .expect("valid config")
    }
    let keys: Vec<String> = (0..15).map(|i| format!("k{i:02}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (mut nodes, first) = arena_with(&keys, config).await;
    let second = Rogue::connected_to(&mut nodes[0]).await;
    for (rogue, name) in [(&first, "a"), (&second, "b")] {
        for i in 0..4 {
            rogue.subscribe(topic_of(&format!("{name}{i:02}")));
        }
    }
    let rogues = [first.peer, second.peer];
    let (banned, reason) = wait_for(&mut nodes, "a ban", |i, e| match e {
        Event::PeerBanned { peer, reason, .. } if i == 0 => Some((*peer, reason.clone())),
        _ => None,
    })
    .await
    .1;
    assert!(rogues.contains(&banned), "banned {banned}, not a rogue");
    assert!(
        matches!(reason, Misbehaviour::SubscriptionBytes { .. }),
        "{reason:?}"
    );
    let honest = *nodes[1].local_peer_id();
    assert!(nodes[0].is_connected(&honest), "the honest follower stays");
    assert!(nodes[0]
        .behaviour()
        .peers_following("k00")
        .contains(&honest));
}

/// A stale delete replayed: a validly signed `Del` older than
/// `tombstone_ttl`, for a key the target follows but holds nothing of, is
/// dropped (every honest holder would have collected it), and the target
/// keeps following the key. A stale record is no misbehaviour: no ban.
#[tokio::test]
async fn an_expired_delete_does_not_end_a_fresh_follower() {
    let (mut nodes, rogue) = arena(&["d"]).await;
    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let day = 24 * 60 * 60 * 1000;
    let old = Record::sign("d", Op::Del, "", now_ms() - day - 60_000, &signer);
    rogue.publish(topic_of("d"), wire::encode_operate(&old));
    // A fresh write from the same peer arrives after it, on the same topic.
    let fresh = Record::sign("d", Op::Mut, "v", now_ms(), &signer);
    rogue.publish(topic_of("d"), wire::encode_operate(&fresh));
    wait_for(
        &mut nodes,
        "the target to take the fresh write",
        |i, e| match e {
            Event::RecordDeleted { record, .. } if i == 0 => {
                panic!("the stale delete was taken: {record:?}")
            }
            Event::RecordUpdated { record, .. } if i == 0 => (*record == fresh).then_some(()),
            _ => None,
        },
    )
    .await;
    assert!(nodes[0].behaviour().is_subscribed("d"));
    assert!(nodes[0].is_connected(&rogue.peer));
}

/// Capture of `get`s: the rogue follows every key and answers every `Ask`
/// with `NotExist`. Even a node that asks one peer at a time for catch-ups
/// (`fetch_fanout(1)`) must find every key an honest follower holds: a
/// `get` asks every connected follower.
#[tokio::test]
async fn a_peer_answering_not_exist_cannot_capture_a_get() {
    fn one_at_a_time() -> Config {
        test_config().fetch_fanout(1).build().expect("valid config")
    }
    let mut nodes = full_mesh_with(2, one_at_a_time).await;
    let keys: Vec<String> = (0..12).map(|i| format!("c{i}")).collect();
    for key in &keys {
        nodes[1].behaviour_mut().put(key, "honest").expect("put");
    }
    let rogue = Rogue::connected_to(&mut nodes[0]).await;
    for key in &keys {
        rogue.subscribe(topic_of(key));
    }
    every_get_finds(&mut nodes, &rogue, &keys, "honest").await;
}

/// Capture with stale data: the rogue follows every key and answers with
/// the honest writer's *previous* record (validly signed, just old). Every
/// `get` must still end with the newest record, which the honest follower
/// holds.
#[tokio::test]
async fn a_peer_answering_stale_records_cannot_capture_a_get() {
    fn one_at_a_time() -> Config {
        test_config().fetch_fanout(1).build().expect("valid config")
    }
    let mut nodes = full_mesh_with(2, one_at_a_time).await;
    let rogue = Rogue::connected_to(&mut nodes[0]).await;
    let keys: Vec<String> = (0..12).map(|i| format!("s{i}")).collect();
    for key in &keys {
        let old = nodes[1].behaviour_mut().put(key, "old").expect("put");
        rogue.serve(&old);
        nodes[1].behaviour_mut().put(key, "new").expect("put");
        rogue.subscribe(topic_of(key));
    }
    every_get_finds(&mut nodes, &rogue, &keys, "new").await;
}

/// Once node 0 knows that both the honest node 1 and the rogue follow every
/// one of `keys`, a `get` of each on node 0 must end with `value`, and the
/// rogue must have been asked (or the attack was not exercised).
async fn every_get_finds(nodes: &mut [Node], rogue: &Rogue, keys: &[String], value: &str) {
    let (honest, peer) = (*nodes[1].local_peer_id(), rogue.peer);
    until(nodes, "the asker knows both follow every key", |n| {
        keys.iter().all(|k| {
            let following = n[0].behaviour().peers_following(k);
            following.contains(&honest) && following.contains(&peer)
        })
    })
    .await;
    for key in keys {
        match get(nodes, 0, key).await {
            pointer::GetOutcome::Found(record) => assert_eq!(record.value(), value, "{key}"),
            other => panic!("{key}: {other:?}"),
        }
    }
    assert!(
        rogue.asks_answered() > 0,
        "the rogue was never asked: the attack was not exercised"
    );
}

/// The target holds a large record of `k`, and the rogue has heard it
/// (what it hears after that is the target's reaction to the attack).
async fn holding_a_large_record() -> (Vec<Node>, Rogue, Record) {
    let (mut nodes, rogue) = arena(&["k"]).await;
    // On the key's topic, the rogue hears whatever the target sends its
    // mesh there.
    rogue.subscribe(topic_of("k"));
    until(&mut nodes, "the target asks its new follower", |_| {
        rogue.asks_answered() >= 1
    })
    .await;
    let old = nodes[0].behaviour_mut().put("k", "old").expect("put");
    let large = "x".repeat(60_000);
    nodes[0].behaviour_mut().put("k", &large).expect("put");
    until(&mut nodes, "the rogue hears the large record", |_| {
        rogue.heard().1 >= large.len()
    })
    .await;
    (nodes, rogue, old)
}

/// A stale forgery: records dated before the one the target holds, with
/// broken signatures, each under a new gossip message id (the unsigned
/// round). The target reacted to an older record before checking it, by
/// pushing its own 60 KB record to the mesh: hundreds of times the bytes
/// the rogue sent. Now an older record's signature is checked before any
/// reaction, so each forgery is refused as a bad signature and charged,
/// the rogue is banned, and nothing is sent back.
#[tokio::test]
async fn stale_forgeries_are_charged_and_never_answered() {
    let (mut nodes, rogue, old) = holding_a_large_record().await;
    let heard = rogue.heard();
    for round in 0..30 {
        let stale = forged_at(&rogue, "k", 0, old.time() - 1);
        rogue.publish(topic_of("k"), wire::encode_republish(&stale, round));
    }
    let reason = until_banned(&mut nodes, &rogue).await;
    assert!(
        matches!(
            reason,
            Misbehaviour::InvalidRecords {
                last: pointer::RejectReason::BadSignature,
                ..
            }
        ),
        "{reason:?}"
    );
    assert_eq!(rogue.heard(), heard, "the target sent the rogue nothing");
}

/// A replayed stale record: the target's own earlier write, validly
/// signed, sent again and again under new message ids. The sender shows it
/// is behind, so the target asks it back with its version (a few dozen
/// bytes, one ask in flight per key and peer), and publishes nothing: the
/// reaction goes to the peer that caused it, never its 60 KB record to the
/// whole mesh. Replaying a record is no misbehaviour, so no ban.
#[tokio::test]
async fn a_replayed_stale_record_costs_a_small_ask_to_its_sender_only() {
    let (mut nodes, rogue, old) = holding_a_large_record().await;
    let heard = rogue.heard();
    let asks_before = rogue.asks_answered();
    let replays = 20;
    for round in 0..replays {
        rogue.publish(topic_of("k"), wire::encode_republish(&old, round));
    }
    // A forgery last: once it is refused, every replay before it (same
    // sender, same topic, in order) has been judged.
    let sentinel = forged_at(&rogue, "k", 1, old.time() - 1);
    rogue.publish(topic_of("k"), wire::encode_republish(&sentinel, 0));
    let rogue_peer = rogue.peer;
    wait_for(&mut nodes, "the sentinel's refusal", |i, e| match e {
        Event::RecordRejected { peer, .. } if i == 0 && *peer == rogue_peer => Some(()),
        _ => None,
    })
    .await;
    until(&mut nodes, "the target asks the rogue back", |_| {
        rogue.asks_answered() > asks_before
    })
    .await;
    // A get round trip between the honest nodes: anything the replays
    // made the target publish has gone out by its end.
    let outcome = get(&mut nodes, 1, "absent").await;
    assert!(
        matches!(outcome, pointer::GetOutcome::NotFound),
        "{outcome:?}"
    );
    assert_eq!(rogue.heard(), heard, "no record was pushed to the mesh");
    let asks = rogue.asks_answered() - asks_before;
    assert!(
        asks <= replays as usize,
        "{asks} asks for {replays} replays"
    );
    assert!(
        nodes[0].is_connected(&rogue.peer),
        "replaying is not banned"
    );
}

/// A peer that takes a `get`'s ask and never answers cannot hold the `get`
/// for `fetch_timeout`: once an honest peer has answered with the record,
/// the `get` waits `get_grace` for the rest and ends with what it holds.
#[tokio::test]
async fn a_silent_peer_holds_a_get_for_the_grace_not_the_fetch_timeout() {
    let fetch_timeout = Duration::from_secs(10);
    let config = || {
        test_config()
            .fetch_timeout(fetch_timeout)
            .get_grace(Duration::from_millis(200))
            .build()
            .expect("valid config")
    };
    let mut nodes = vec![node_with(config).await, node_with(config).await];
    // The holder stops following the key but keeps serving it; with no
    // follower in sight the getter asks every peer it is connected to
    // (up to `fetch_fanout`): the holder and the silent peer.
    nodes[1].behaviour_mut().put("k", "v").expect("put");
    nodes[1].behaviour_mut().unsubscribe("k");
    link(&mut nodes, 0, 1).await;
    let _silent = RawPeer::serving(&mut nodes[0], |_| Reply::Hold).await;

    let started = Instant::now();
    let outcome = get(&mut nodes, 0, "k").await;
    let took = started.elapsed();
    assert!(
        matches!(outcome, GetOutcome::Found(ref r) if r.value() == "v"),
        "{outcome:?}"
    );
    assert!(took < fetch_timeout / 5, "the get took {took:?}");
}

/// A validly signed record the target's validator refuses (the rogue
/// writes under the target's name), replayed under fresh gossip message
/// ids: the target checks and reports it once, then drops the replays
/// unchecked; a validator's refusal is never charged, so nobody is banned.
#[tokio::test]
async fn a_replayed_unauthorized_record_is_checked_and_reported_once() {
    let config = || test_config().build().expect("valid config");
    let mut nodes = vec![
        node_with_validator(config, pointer::OwnedKeys).await,
        node_with_validator(config, pointer::OwnedKeys).await,
    ];
    link(&mut nodes, 0, 1).await;
    let key = nodes[0].behaviour().owned_key("k");
    for node in nodes.iter_mut() {
        node.behaviour_mut().subscribe(&key).expect("valid key");
    }
    until_following(&mut nodes, &[0, 1], &key).await;
    let rogue = Rogue::connected_to(&mut nodes[0]).await;
    let target = *nodes[0].local_peer_id();
    until(&mut nodes, "the rogue sees the target's key", |_| {
        rogue.topics_of(&target) >= 1
    })
    .await;

    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let not_yours = Record::sign(&key, Op::Mut, "not yours", now_ms(), &signer);
    let replays = 50;
    for round in 0..replays {
        rogue.publish(topic_of(&key), wire::encode_republish(&not_yours, round));
    }
    // A forgery last: once it is refused, every replay before it (same
    // sender, same topic, in order) has been judged.
    let sentinel = forged_at(&rogue, &key, 1, now_ms());
    rogue.publish(topic_of(&key), wire::encode_republish(&sentinel, 0));
    let rogue_peer = rogue.peer;
    let mut unauthorized = 0;
    wait_for(&mut nodes, "the sentinel's refusal", |i, e| match e {
        Event::RecordRejected { peer, reason, .. } if i == 0 && *peer == rogue_peer => {
            if *reason == RejectReason::Unauthorized {
                unauthorized += 1;
                return None;
            }
            Some(())
        }
        _ => None,
    })
    .await;
    assert_eq!(
        unauthorized, 1,
        "{replays} replays reported {unauthorized} times"
    );
    assert!(
        nodes[0].behaviour().record(&key).is_none(),
        "nothing stored"
    );
    assert!(
        nodes[0].is_connected(&rogue.peer),
        "a refusal is not charged"
    );
}

/// Resurrection by replay: once a delete's tombstone is collected
/// (`tombstone_ttl` after it), a peer that kept the write the delete
/// replaced plants it again on a node that follows the key once more.
/// The node remembers collected deletes (`collected_delete_memory`) and
/// refuses the replay; a fresh write after it is taken as usual. With the
/// memory off the replay comes back to life, which is what the bound
/// stops. Returns whether the replayed write was taken.
async fn replay_after_collection(memory: usize) -> bool {
    // One config per case: `arena_with` takes a plain function.
    fn remembering() -> Config {
        collecting().build().expect("valid config")
    }
    fn forgetting() -> Config {
        collecting()
            .collected_delete_memory(0)
            .build()
            .expect("valid config")
    }
    fn collecting() -> pointer::ConfigBuilder {
        test_config()
            .tombstone_ttl(Duration::from_millis(500))
            .republish_interval(Duration::from_millis(200))
    }
    let config = if memory > 0 { remembering } else { forgetting };
    let (mut nodes, rogue) = arena_with(&["r"], config).await;
    let signer = signing_key(&rogue.keypair).expect("ed25519");
    let t0 = now_ms();
    let write = Record::sign("r", Op::Mut, "old", t0, &signer);
    let delete = Record::sign("r", Op::Del, "", t0 + 1, &signer);
    for record in [&write, &delete] {
        rogue.publish(topic_of("r"), wire::encode_operate(record));
    }
    until(&mut nodes, "the delete is taken", |nodes| {
        nodes[0]
            .behaviour()
            .record("r")
            .is_some_and(|r| r.is_tombstone())
    })
    .await;
    until(&mut nodes, "the tombstone is collected", |nodes| {
        nodes[0].behaviour().record("r").is_none()
    })
    .await;
    // The user follows the key again; the rogue replays the old write,
    // then a fresh one.
    // (The rogue counts subscriptions seen, never unsubscriptions.)
    let target = *nodes[0].local_peer_id();
    let seen = rogue.subscriptions_of(&target, &topic_of("r"));
    nodes[0].behaviour_mut().subscribe("r").expect("valid key");
    until(&mut nodes, "the rogue sees the target follow again", |_| {
        rogue.subscriptions_of(&target, &topic_of("r")) > seen
    })
    .await;
    rogue.publish(topic_of("r"), wire::encode_republish(&write, 7));
    let fresh = Record::sign("r", Op::Mut, "fresh", now_ms(), &signer);
    rogue.publish(topic_of("r"), wire::encode_operate(&fresh));
    let mut replay_taken = false;
    wait_for(&mut nodes, "the fresh write", |i, e| match e {
        Event::RecordUpdated { record, .. } if i == 0 && *record == write => {
            replay_taken = true;
            None
        }
        Event::RecordUpdated { record, .. } if i == 0 => (*record == fresh).then_some(()),
        _ => None,
    })
    .await;
    assert!(nodes[0].is_connected(&rogue.peer), "a replay is no ban");
    replay_taken
}

#[tokio::test]
async fn a_write_replayed_after_its_delete_was_collected_stays_dead() {
    assert!(
        replay_after_collection(0).await,
        "control: without the memory the replay comes back"
    );
    assert!(
        !replay_after_collection(65_536).await,
        "the replay was taken"
    );
}
