//! The convergence scenarios of `tests/swarm/convergence.rs` with the `node` example as separate
//! processes on 127.0.0.1 (mDNS off, `--validator open`): a key deleted and
//! written again along a line, and a partition healed by a bridge that was
//! SIGKILLed and restarted on its data directory. Every wait is for output
//! lines, with a timeout; no sleeps.

// Without `redb` (no `--data-dir`) only the line test runs.
#![cfg_attr(not(feature = "redb"), allow(dead_code, unused_imports))]

use std::collections::BTreeMap;
use std::time::Instant;

use crate::common::partition::{plan, Write, A1, A2, B1, B2};
use crate::process::{connected_to, is, line_of, Node};
use serde_json::Value;

const OPEN: [&str; 2] = ["--validator", "open"];

/// The partition scenario keeps the two sides apart but for the bridge:
/// with the DHT on, the sides would find each other through it (the point
/// of discovery, and tested in `discovery_nodes.rs`).
const PARTITIONED: [&str; 3] = ["--validator", "open", "--no-dht"];

/// What a node holds for each key as its output told it: the value (`None`
/// once deleted) and the record's time.
type View = BTreeMap<String, (Option<String>, i64)>;

/// Applies one output line to `view`: a local `put`/`del`, or a record
/// from a peer (`updated`/`deleted`). Other lines change nothing.
fn track(view: &mut View, line: &Value) {
    let value = match line["event"].as_str() {
        Some("put" | "updated") => line["value"].as_str().map(str::to_owned),
        Some("del" | "deleted") => None,
        _ => return,
    };
    let key = line["key"].as_str().expect("key").to_owned();
    let time = line["time"].as_i64().expect("time");
    view.insert(key, (value, time));
}

/// Reads `node`'s output into `view` until it holds `expected` for every
/// key there.
fn until_view(node: &mut Node, view: &mut View, expected: &View, what: &str) {
    let agrees = |view: &View| expected.iter().all(|(k, want)| view.get(k) == Some(want));
    if agrees(view) {
        return;
    }
    node.watch(what, |line| {
        track(view, line);
        agrees(view)
    });
}

/// Sends `put KEY VALUE` and returns its answer.
fn put(node: &mut Node, key: &str, value: &str) -> Value {
    node.send(&format!("put {key} {value}"));
    node.expect("put", is("put", key))
}

/// Sends `del KEY` and returns its answer.
fn del(node: &mut Node, key: &str) -> Value {
    node.send(&format!("del {key}"));
    node.expect("del", is("del", key))
}

/// Asserts that `node`'s `list` holds `key` with `value` (`None`: deleted),
/// followed exactly when it is a value.
fn assert_listed(node: &mut Node, key: &str, value: Option<&str>) {
    let listed = node.list();
    let want = (value.map(str::to_owned), value.is_some());
    assert_eq!(listed.get(key), Some(&want), "{}: {key}", node.name);
}

/// Scenario 1: line A - B - C following `r/1`. A writes v1, deletes it
/// (B and C leave the topic), writes v2: B and C get it and follow the key
/// again, then A's v3 reaches them. A late D, connected to C only, finds
/// v3 with `get`.
#[test]
fn a_deleted_key_written_again_is_followed_again_by_node_processes() {
    const KEY: &str = "r/1";
    // C first, so that B dials C and A dials B.
    let mut line = line_of(&["C", "B", "A"], &OPEN);
    line.reverse();
    let [a, b, c] = &mut line[..] else {
        unreachable!()
    };

    put(a, KEY, "v1");
    for node in [&mut *b, &mut *c] {
        node.send(&format!("sub {KEY}"));
        node.expect("sub", is("sub", KEY));
        node.expect("v1", |l| is("updated", KEY)(l) && l["value"] == "v1");
    }

    let tombstone = del(a, KEY);
    for node in [&mut *b, &mut *c] {
        let deleted = node.expect("the delete", is("deleted", KEY));
        assert_eq!(deleted["time"], tombstone["time"], "{}", node.name);
        assert_listed(node, KEY, None);
    }

    // Nobody follows the key now; the new write must still reach B and C.
    let v2 = put(a, KEY, "v2");
    for node in [&mut *b, &mut *c] {
        let got = node.expect("v2", |l| is("updated", KEY)(l) && l["value"] == "v2");
        assert_eq!(got["time"], v2["time"], "{}", node.name);
        assert_listed(node, KEY, Some("v2"));
    }

    let v3 = put(a, KEY, "v3");
    for node in [&mut *b, &mut *c] {
        let got = node.expect("v3", |l| is("updated", KEY)(l) && l["value"] == "v3");
        assert_eq!(got["time"], v3["time"], "{}", node.name);
    }

    let mut d = Node::start("D", &[&OPEN[..], &["--dial", c.addr.as_str()][..]].concat());
    d.expect("connected", connected_to(&c.peer_id));
    d.send(&format!("get {KEY}"));
    let get = d.expect("get", is("get", KEY));
    assert_eq!(
        (&get["status"], &get["value"], &get["time"]),
        (&"found".into(), &"v3".into(), &v3["time"]),
        "{get}"
    );
}

/// Makes one side's writes (`first`: side A's) through the nodes' input,
/// updating their views, and returns what the side then holds for the
/// keys it wrote.
fn write_side(sides: &mut [Node], views: &mut [View], keys: &[String], first: bool) -> View {
    let mut made = View::new();
    for (i, key) in keys.iter().enumerate() {
        let (a, b) = plan(i);
        let (n, answer) = match if first { a } else { b } {
            None => continue,
            Some(Write::Put(n)) => {
                let side = if first { "a" } else { "b" };
                (n, put(&mut sides[n], key, &format!("{side}{i}")))
            }
            Some(Write::Del(n)) => (n, del(&mut sides[n], key)),
        };
        track(&mut views[n], &answer);
        made.insert(key.clone(), views[n][key].clone());
    }
    made
}

/// Scenario 2 with processes: sides {A1, A2} and {B1, B2}, each pair
/// connected, and a bridge X (with a data directory) connected to all
/// four; all follow k0..k9. X is SIGKILLed; side A writes, side B writes
/// later (a delete on one side and a later write on the other, keys
/// written on one side only, a key nobody touches); X restarts on its
/// directory and dials all four. Every node must end with the newest
/// record of every key, and follow exactly the keys that hold a value.
#[cfg(feature = "redb")]
#[test]
fn a_partition_healed_by_a_restarted_bridge_process_converges() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("x");
    let data = data.to_str().expect("UTF-8 path");
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();

    let mut sides = Vec::new();
    for (first, second) in [("A1", "A2"), ("B1", "B2")] {
        let one = Node::start(first, &PARTITIONED);
        let two = Node::start(
            second,
            &[&PARTITIONED[..], &["--dial", one.addr.as_str()][..]].concat(),
        );
        sides.extend([one, two]);
    }
    for (i, j) in [(A1, A2), (B1, B2)] {
        let (peer_i, peer_j) = (sides[i].peer_id.clone(), sides[j].peer_id.clone());
        sides[i].expect("connected", connected_to(&peer_j));
        sides[j].expect("connected", connected_to(&peer_i));
    }
    let bridge_args = |data: &str, sides: &[Node]| {
        let mut args: Vec<String> = vec!["--data-dir".into(), data.into()];
        args.extend(PARTITIONED.iter().map(|a| a.to_string()));
        for node in sides {
            args.extend(["--dial".to_owned(), node.addr.clone()]);
        }
        args
    };
    let args = bridge_args(data, &sides);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut x = Node::start("X", &args);
    for node in sides.iter_mut() {
        node.expect("X connected", connected_to(&x.peer_id));
        x.expect("connected", connected_to(&node.peer_id));
    }

    // Before the partition: X writes every key, the others follow them and
    // catch up from X.
    let mut initial = View::new();
    for key in &keys {
        track(&mut initial, &put(&mut x, key, "v0"));
    }
    let mut views: Vec<View> = vec![View::new(); 4];
    for (node, view) in sides.iter_mut().zip(views.iter_mut()) {
        for key in &keys {
            node.send(&format!("sub {key}"));
            node.expect("sub", is("sub", key));
        }
        until_view(node, view, &initial, "the initial values");
    }

    // SIGKILL: X's own writes were durable when `put` answered.
    let x_id = x.peer_id.clone();
    x.kill();
    for node in sides.iter_mut() {
        node.expect("X gone", |l| {
            l["event"] == "disconnected" && l["peer_id"] == x_id.as_str()
        });
    }

    // Partitioned: side A writes, and once A1 and A2 agree, side B writes.
    let a_made = write_side(&mut sides, &mut views, &keys, true);
    for i in [A1, A2] {
        until_view(&mut sides[i], &mut views[i], &a_made, "side A's writes");
    }
    let b_made = write_side(&mut sides, &mut views, &keys, false);
    for i in [B1, B2] {
        until_view(&mut sides[i], &mut views[i], &b_made, "side B's writes");
    }
    // The newest record of each key: the greater time wins; on equal time
    // a delete. Signatures are not printed, so no two writes of a key may
    // tie on both.
    let mut expected = initial.clone();
    for made in [&a_made, &b_made] {
        for (key, (value, time)) in made {
            let (held, held_time) = &expected[key];
            let rank = |v: &Option<String>| u8::from(v.is_none());
            assert_ne!(
                (time, rank(value)),
                (held_time, rank(held)),
                "{key}: two writes tie"
            );
            if (time, rank(value)) > (held_time, rank(held)) {
                expected.insert(key.clone(), (value.clone(), *time));
            }
        }
    }

    // X comes back on its directory: same PeerId, its pre-partition
    // records, dialing all four.
    let restarted = Instant::now();
    let args = bridge_args(data, &sides);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut x = Node::start("X again", &args);
    assert_eq!(x.peer_id, x_id, "same identity after the restart");
    assert_eq!(x.started["records"], keys.len(), "{}", x.started);
    let mut x_view = initial.clone();
    until_view(&mut x, &mut x_view, &expected, "X to converge");
    for (node, view) in sides.iter_mut().zip(views.iter_mut()) {
        until_view(node, view, &expected, "every side to converge");
    }
    eprintln!(
        "healed partition of node processes: converged within {:?} of the bridge's restart",
        restarted.elapsed()
    );

    // And as `list` says: the newest records, followed exactly when values.
    for node in sides.iter_mut().chain([&mut x]) {
        let listed = node.list();
        for (key, (value, _)) in &expected {
            assert_eq!(
                listed.get(key),
                Some(&(value.clone(), value.is_some())),
                "{}: {key}",
                node.name
            );
        }
    }
}
