//! Scenario 2 on real swarms: the partition of [`super::partition`] healed
//! by a bridge restarted on its store, timed from the bridge's return. Used
//! by `tests/swarm/convergence.rs` and `benches/heal.rs`.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use pointer::internals::order::precedence;
use pointer::{MemoryStore, Record, RecordStore};

use super::partition::{plan, Write, BRIDGE, SIDES, X};
use super::*;

/// What every node holds for each of `keys`: the record (op, value, time)
/// and whether it follows the key. For failure messages.
pub fn describe<S: RecordStore + 'static>(nodes: &[Node<S>], keys: &[String]) -> String {
    let mut out = String::new();
    for (i, n) in nodes.iter().enumerate() {
        let p = n.behaviour();
        out.push_str(&format!("node {i} ({}):\n", n.local_peer_id()));
        for key in keys {
            let held = match p.record(key) {
                Some(r) if r.is_tombstone() => format!("Del @{}", r.time()),
                Some(r) => format!("Mut {:?} @{}", r.value(), r.time()),
                None => "nothing".to_owned(),
            };
            let following = if p.is_subscribed(key) {
                "following"
            } else {
                "not following"
            };
            let followers = p.peers_following(key).len();
            out.push_str(&format!(
                "  {key}: {held}, {following}, {followers} peers follow\n"
            ));
        }
    }
    out
}

/// Whether every node in `who` holds `record` and follows its key exactly
/// when it is a value (a tombstone holder has left the topic).
pub fn hold<S: RecordStore + 'static>(nodes: &[Node<S>], who: &[usize], record: &Record) -> bool {
    who.iter().all(|&i| {
        let p = nodes[i].behaviour();
        p.record(record.key()).as_deref() == Some(record)
            && p.is_subscribed(record.key()) != record.is_tombstone()
    })
}

/// Makes the writes of one side (`first`: side A's, else side B's) and
/// returns them.
pub fn write_side(nodes: &mut [Node], keys: &[String], first: bool) -> Vec<Record> {
    let mut made = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (a, b) = plan(i);
        let write = if first { a } else { b };
        let record = match write {
            None => continue,
            Some(Write::Put(n)) => {
                let side = if first { "a" } else { "b" };
                nodes[n].behaviour_mut().put(key, &format!("{side}{i}"))
            }
            Some(Write::Del(n)) => nodes[n].behaviour_mut().delete(key),
        };
        made.push(record.expect("write"));
    }
    made
}

/// Drives `nodes` until both nodes of `side` hold each of `records`.
pub async fn until_side_holds(nodes: &mut [Node], side: (usize, usize), records: &[Record]) {
    let keys: Vec<String> = records.iter().map(|r| r.key().to_owned()).collect();
    until_or_report(
        nodes,
        "one side agrees on its own writes",
        |n| records.iter().all(|r| hold(n, &[side.0, side.1], r)),
        |n| describe(n, &keys),
    )
    .await;
}

/// The winner of each key among `records` under the total order.
pub fn newest(records: impl IntoIterator<Item = Record>) -> HashMap<String, Record> {
    let mut winners: HashMap<String, Record> = HashMap::new();
    for record in records {
        match winners.get(record.key()) {
            Some(held) if precedence(held, &record) != Ordering::Less => {}
            _ => {
                winners.insert(record.key().to_owned(), record);
            }
        }
    }
    winners
}

/// Scenario 2 with `count` keys; returns the time from the bridge's first
/// reconnection to convergence.
pub async fn healed_partition(count: usize) -> Duration {
    let keys: Vec<String> = (0..count).map(|i| format!("k{i}")).collect();
    let links: Vec<(usize, usize)> = SIDES.iter().chain(&BRIDGE).copied().collect();
    let mut nodes = linked_with(5, &links, || test_config().build().expect("valid config")).await;
    for node in nodes.iter_mut() {
        for key in &keys {
            node.behaviour_mut().subscribe(key).expect("valid key");
        }
    }
    until_links_follow(&mut nodes, &links, &keys).await;

    // Before the partition: the bridge writes every key, everyone has it.
    let initial: Vec<Record> = keys
        .iter()
        .map(|k| nodes[X].behaviour_mut().put(k, "v0").expect("put"))
        .collect();
    let everyone: Vec<usize> = (0..5).collect();
    until_or_report(
        &mut nodes,
        "every node holds the initial values",
        |n| initial.iter().all(|r| hold(n, &everyone, r)),
        |n| describe(n, &keys),
    )
    .await;

    // The bridge goes away; its store (all it knew) is kept for its restart.
    let x = nodes.pop().expect("the bridge");
    let x_id = *x.local_peer_id();
    let x_store: MemoryStore = x.behaviour().store().clone();
    assert_eq!(x_store.len(), count);
    drop(x);
    until(&mut nodes, "the sides see the bridge gone", |n| {
        n.iter().all(|node| !node.is_connected(&x_id))
    })
    .await;

    // Partitioned: side A writes, then side B writes (later).
    let a_writes = write_side(&mut nodes, &keys, true);
    until_side_holds(
        &mut nodes,
        SIDES[0],
        &newest(a_writes.clone()).into_values().collect::<Vec<_>>(),
    )
    .await;
    let b_writes = write_side(&mut nodes, &keys, false);
    until_side_holds(
        &mut nodes,
        SIDES[1],
        &newest(b_writes.clone()).into_values().collect::<Vec<_>>(),
    )
    .await;
    let expected = newest(initial.into_iter().chain(a_writes).chain(b_writes));
    assert_eq!(expected.len(), count);
    for (i, key) in keys.iter().enumerate() {
        // The plan's outcome, as the order decides it.
        let want_value = match plan(i) {
            (_, Some(Write::Put(_))) | (Some(Write::Put(_)), None) | (None, None) => true,
            (_, Some(Write::Del(_))) | (Some(Write::Del(_)), None) => false,
        };
        assert_eq!(!expected[key].is_tombstone(), want_value, "{key}");
    }

    // The bridge restarts on its old store (a new swarm, so a new PeerId)
    // and connects to all four: every node must converge.
    nodes.push(node_with_store(x_store, test_config().build().expect("valid config")).await);
    let healed = Instant::now();
    for &(i, j) in &BRIDGE {
        link(&mut nodes, i, j).await;
    }
    until_or_report(
        &mut nodes,
        "every node holds the newest record of every key",
        |n| expected.values().all(|r| hold(n, &everyone, r)),
        |n| {
            let mut wrong: Vec<String> = keys
                .iter()
                .filter(|k| !hold(n, &everyone, &expected[*k]))
                .cloned()
                .collect();
            wrong.truncate(20);
            let want: Vec<String> = wrong
                .iter()
                .map(|k| {
                    let r = &expected[k];
                    format!("{k}: {:?} {:?} @{}", r.op(), r.value(), r.time())
                })
                .collect();
            format!(
                "expected:\n  {}\n{}",
                want.join("\n  "),
                describe(n, &wrong)
            )
        },
    )
    .await;
    let took = healed.elapsed();
    eprintln!("healed partition, {count} keys: converged {took:?} after the bridge reconnected");
    took
}

/// The same scenario in the deterministic simulator.
#[cfg(feature = "sim")]
pub mod simulated {
    use std::collections::HashMap;
    use std::time::Duration;

    use ed25519_dalek::SigningKey;
    use pointer::internals::order::precedence;
    use pointer::sim::{NetParams, Network};
    use pointer::{Config, Open, Record};

    use super::super::partition::{plan, Write, BRIDGE, SIDES, X};

    /// The same plan in the simulator, every random choice from `seed`, with
    /// republish an hour and 1% of gossip lost: the virtual time from the bridge's
    /// return to convergence (`None` past 60 s), and the asks sent meanwhile.
    pub fn simulated_heal(k: usize, seed: u64) -> (Option<Duration>, u64) {
        let keys: Vec<String> = (0..k).map(|i| format!("k{i}")).collect();
        let signers = (0..5u8)
            .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
            .collect();
        let config = |_| {
            let config = Config::builder()
                .republish_interval(Duration::from_secs(3600))
                .build()
                .expect("valid config");
            let validator: Box<dyn pointer::Validator> = Box::new(Open);
            (config, validator)
        };
        let mut net = Network::new(seed, signers, &[], NetParams::default(), config);
        for &(a, b) in SIDES.iter().chain(&BRIDGE) {
            net.link(a, b);
        }
        for i in 0..5 {
            for key in &keys {
                net.command(i, |c, _| c.subscribe(key));
            }
        }
        let mut written = Vec::new();
        let step = |net: &mut Network| net.run_until(net.now() + Duration::from_secs(5));
        step(&mut net);
        for key in &keys {
            written.extend(net.put(X, key, "v0").and_then(Result::ok));
        }
        step(&mut net);
        net.crash(X);
        for first in [true, false] {
            for (i, key) in keys.iter().enumerate() {
                let (a, b) = plan(i);
                let made = match if first { a } else { b } {
                    None => continue,
                    Some(Write::Put(n)) => net.put(n, key, &format!("{first}{i}")),
                    Some(Write::Del(n)) => net.command(n, |c, now| c.delete(key, now)),
                };
                written.extend(made.and_then(Result::ok));
            }
            step(&mut net);
        }
        let newest = newest_of(written);
        net.restart(X);
        for &(a, b) in &BRIDGE {
            net.link(a, b);
        }
        let healed = net.now();
        let asks = net.traffic().asks;
        while net.now() - healed < Duration::from_secs(60) {
            if converged(&net, &newest) {
                return (Some(net.now() - healed), net.traffic().asks - asks);
            }
            net.run_until(net.now() + Duration::from_millis(10));
        }
        (None, net.traffic().asks - asks)
    }

    fn newest_of(records: Vec<Record>) -> HashMap<String, Record> {
        let mut winners: HashMap<String, Record> = HashMap::new();
        for record in records {
            let newer = winners
                .get(record.key())
                .is_none_or(|held| precedence(held, &record).is_lt());
            if newer {
                winners.insert(record.key().to_owned(), record);
            }
        }
        winners
    }

    fn converged(net: &Network, newest: &HashMap<String, Record>) -> bool {
        (0..net.len()).all(|i| {
            net.node(i).is_some_and(|c| {
                newest
                    .values()
                    .all(|r| c.record(r.key()).as_deref() == Some(r))
            })
        })
    }
}
