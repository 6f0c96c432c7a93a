//! Behaviours between nodes that need no sockets, driven through the
//! harness of `harness_tests`: propagation, delete, catch-up, reject and
//! range reconciliation.

use libp2p::gossipsub::MessageAcceptance;

use super::harness_tests::Net;
use crate::core::accept::RejectReason;
use crate::core::record::{Op, Record};
use crate::core::topic::Topic;
use crate::core::validator::{Open, OwnedKeys, Validator};
use crate::event::Event;
use crate::store::RecordStore;
use crate::wire;
use crate::Config;

fn open(_: usize) -> (Config, Box<dyn Validator>) {
    (Config::default(), Box::new(Open))
}

/// The record node `i` holds for `key`.
fn held(net: &Net, i: usize, key: &str) -> Option<Record> {
    net.core(i).record(key).map(|r| r.into_owned())
}

/// A line A-B-C, every node following `key`, settled.
fn line(key: &str) -> Net {
    let mut net = Net::new(3, open);
    for i in 0..3 {
        net.with(i, |c, _| c.subscribe(key)).expect("valid key");
    }
    net.link(0, 1);
    net.link(1, 2);
    net.run_until_idle();
    net
}

#[test]
fn a_write_on_one_end_of_a_line_reaches_the_other_end() {
    let mut net = line("lamp");
    let written = net.with(0, |c, now| c.put("lamp", "on", now)).expect("put");
    net.run_until_idle();
    for i in [1, 2] {
        assert_eq!(held(&net, i, "lamp").as_ref(), Some(&written), "node {i}");
        assert_eq!(net.core(i).value("lamp").as_deref(), Some("on"));
    }
    // C is not linked to A: it heard the write through B's forwarding.
    let b = net.peer(1);
    assert!(net.nodes[2].events.iter().any(|e| matches!(
        e,
        Event::RecordUpdated { record, source: crate::event::Source::Gossip { peer } }
            if *record == written && *peer == b
    )));
}

#[test]
fn a_delete_leaves_a_tombstone_everywhere_and_a_later_write_wins_again() {
    let mut net = line("lamp");
    net.with(0, |c, now| c.put("lamp", "on", now)).expect("put");
    net.run_until_idle();
    net.advance(1_000);

    let tombstone = net.with(2, |c, now| c.delete("lamp", now)).expect("delete");
    net.run_until_idle();
    for i in 0..3 {
        let record = held(&net, i, "lamp").expect("a record");
        assert!(record.is_tombstone(), "node {i}: {record:?}");
        assert_eq!(record, tombstone, "node {i}");
        assert_eq!(net.core(i).value("lamp"), None, "node {i}");
    }

    net.advance(1_000);
    let again = net
        .with(0, |c, now| c.put("lamp", "again", now))
        .expect("put");
    net.run_until_idle();
    for i in 0..3 {
        assert_eq!(held(&net, i, "lamp").as_ref(), Some(&again), "node {i}");
        assert!(net.core(i).is_subscribed("lamp"), "node {i} follows again");
    }
}

#[test]
fn a_node_linked_after_the_writes_catches_up_with_the_newest_record() {
    let mut net = Net::new(2, open);
    for i in 0..2 {
        net.with(i, |c, _| c.subscribe("lamp")).expect("valid key");
    }
    net.link(0, 1);
    net.run_until_idle();
    net.with(0, |c, now| c.put("lamp", "first", now))
        .expect("put");
    net.run_until_idle();
    net.advance(1_000);
    let newest = net
        .with(0, |c, now| c.put("lamp", "second", now))
        .expect("put");
    net.run_until_idle();
    assert_eq!(held(&net, 1, "lamp").as_ref(), Some(&newest));

    let c = net.add(Config::default(), Box::new(Open));
    net.with(c, |core, _| core.subscribe("lamp"))
        .expect("valid key");
    net.run_until_idle();
    assert_eq!(held(&net, c, "lamp"), None, "nothing before the link");
    let published: Vec<usize> = net.nodes.iter().map(|n| n.publishes).collect();

    net.link(1, c);
    net.run_until_idle();
    assert_eq!(held(&net, c, "lamp").as_ref(), Some(&newest));
    let b = net.peer(1);
    assert!(net.nodes[c].events.iter().any(|e| matches!(
        e,
        Event::RecordUpdated { source: crate::event::Source::Fetch { peer }, .. } if *peer == b
    )));
    let after: Vec<usize> = net.nodes.iter().map(|n| n.publishes).collect();
    assert_eq!(
        published, after,
        "caught up by the exchange, nothing published"
    );
}

fn owned(_: usize) -> (Config, Box<dyn Validator>) {
    let config = Config::builder()
        .invalid_record_budget(2, std::time::Duration::from_secs(60))
        .build()
        .expect("valid config");
    (config, Box::new(OwnedKeys))
}

/// `forger` signs a record of `key` and A hands it to B as gossip on the
/// key's topic; `tamper` changes its value after signing.
fn forge(net: &mut Net, key: &str, forger: u8, at: i64, tamper: bool) {
    let signer = ed25519_dalek::SigningKey::from_bytes(&[forger; 32]);
    let record = Record::sign(key, Op::Mut, "open", at, &signer);
    let mut data = wire::encode_operate(&record);
    if tamper {
        let at = data
            .windows(4)
            .position(|w| w == b"open")
            .expect("the value");
        data[at + 2] = b'E';
    }
    net.inject_gossip(0, 1, Topic::Key(key.to_owned()), data);
    net.run_until_idle();
}

fn rejections(net: &Net, by: usize, from: libp2p::PeerId) -> Vec<RejectReason> {
    net.nodes[by]
        .events
        .iter()
        .filter_map(|e| match e {
            Event::RecordRejected { peer, reason, .. } if *peer == from => Some(reason.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_record_signed_by_the_wrong_key_is_refused_and_not_stored_but_not_blamed() {
    let mut net = Net::new(2, owned);
    let key = net.core(1).owned_key("door");
    net.with(1, |c, _| c.subscribe(&key)).expect("valid key");
    net.link(0, 1);
    net.run_until_idle();
    // A writes B's key: its own node refuses the write...
    assert!(net.with(0, |c, now| c.put(&key, "open", now)).is_err());
    // ...so it signs the record itself (node 0's key) and gossips it.
    let a = net.peer(0);
    for n in 0..3 {
        let at = net.now + n;
        forge(&mut net, &key, 1, at, false);
        assert_eq!(held(&net, 1, &key), None, "forgery {n} not stored");
        // Not forwarded, but not blamed on A either: a peer may forward
        // in good faith what another validator admits.
        assert_eq!(
            net.nodes[1].verdicts.last(),
            Some(&(a, MessageAcceptance::Ignore)),
            "forgery {n}"
        );
    }
    assert_eq!(rejections(&net, 1, a), vec![RejectReason::Unauthorized; 3]);
    assert!(net.nodes[1].bans.is_empty(), "over budget, yet not banned");

    // The contrast: B's own record with its value changed after signing
    // is blamed, charged, and the third one bans A (a budget of two).
    for n in 0..3 {
        let at = net.now + 10 + n;
        forge(&mut net, &key, 2, at, true);
        assert_eq!(held(&net, 1, &key), None, "tampered {n} not stored");
        assert_eq!(
            net.nodes[1].verdicts.last(),
            Some(&(a, MessageAcceptance::Reject)),
            "tampered {n}"
        );
        assert_eq!(net.nodes[1].bans, if n < 2 { vec![] } else { vec![a] });
    }
    assert!(net.nodes[1]
        .events
        .iter()
        .any(|e| matches!(e, Event::PeerBanned { peer, .. } if *peer == a)));
    // B's own write of its key stands.
    let mine = net.with(1, |c, now| c.put(&key, "shut", now)).expect("put");
    assert_eq!(held(&net, 1, &key), Some(mine));
}

fn ranges(_: usize) -> (Config, Box<dyn Validator>) {
    let config = Config::builder()
        .reconcile_min_keys(4)
        .build()
        .expect("valid config");
    (config, Box::new(Open))
}

/// Two unlinked nodes diverge: A writes `a/00`..`a/29` and stops
/// following them (it still holds and serves them), B writes
/// `b/00`..`b/29`; B follows every key, A the `b/` keys; both write
/// "shared", B later. Then they link. Returns the net settled after the
/// link. No subscription of A names an `a/` key: only a reconciliation
/// of what the two hold brings those to B.
fn diverged(make: fn(usize) -> (Config, Box<dyn Validator>)) -> Net {
    let mut net = Net::new(2, make);
    let names = |p: &'static str| (0..30).map(move |n| format!("{p}/{n:02}"));
    let b_keys: Vec<String> = names("b").chain(["shared".to_owned()]).collect();
    let every: Vec<String> = names("a").chain(b_keys.iter().cloned()).collect();
    net.with(0, |c, _| c.subscribe_many(&b_keys))
        .expect("valid keys");
    net.with(1, |c, _| c.subscribe_many(&every))
        .expect("valid keys");
    for key in names("a") {
        net.with(0, |c, now| c.put(&key, "x", now)).expect("put");
        assert!(net.with(0, |c, _| c.unsubscribe(&key)));
    }
    for key in names("b") {
        net.with(1, |c, now| c.put(&key, "y", now)).expect("put");
    }
    net.with(0, |c, now| c.put("shared", "from a", now))
        .expect("put");
    net.advance(1_000);
    net.with(1, |c, now| c.put("shared", "from b", now))
        .expect("put");
    net.run_until_idle();
    net.link(0, 1);
    net.run_until_idle();
    net
}

fn all_records(net: &Net, i: usize) -> Vec<Record> {
    let mut records: Vec<Record> = net
        .core(i)
        .store()
        .records()
        .map(|r| r.into_owned())
        .collect();
    records.sort_by(|a, b| a.key().cmp(b.key()));
    records
}

#[test]
fn two_diverged_nodes_converge_by_ranges_on_link() {
    let net = diverged(ranges);
    let (a, b) = (all_records(&net, 0), all_records(&net, 1));
    assert_eq!(a.len(), 61);
    assert_eq!(a, b, "the two stores hold the same records");
    assert_eq!(net.core(0).value("shared").as_deref(), Some("from b"));
    assert!(net.nodes[0].range_asks > 0 && net.nodes[1].range_asks > 0);
}

#[test]
fn key_by_key_the_keys_a_writer_stopped_following_stay_apart() {
    // The contrast, below `reconcile_min_keys`: B asks only about keys
    // it learns A follows, so only the `a/` keys stay with A.
    let net = diverged(open);
    assert_eq!(net.core(1).value("shared").as_deref(), Some("from b"));
    assert_eq!(net.core(0).value("shared").as_deref(), Some("from b"));
    assert_eq!(all_records(&net, 0).len(), 61);
    assert_eq!(all_records(&net, 1).len(), 31);
    assert_eq!(net.nodes[0].range_asks + net.nodes[1].range_asks, 0);
}
