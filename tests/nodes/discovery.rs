//! Finding a key's followers through the DHT, with node processes on
//! 127.0.0.1 and default flags (the DHT on) plus the `--dial`s that build
//! each topology. Every wait is for an output line; no sleeps.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::process::{connected_to, is, line_of, updated, Node};

/// How long a `get` may take to find a follower beyond our neighbours.
const FIND_WITHIN: Duration = Duration::from_secs(5);

/// How long an update may take to reach a follower by gossip once the two
/// are meshed.
const GOSSIP_WITHIN: Duration = Duration::from_secs(2);

/// Sends `get key` on `node` and returns the answer and how long it took.
fn timed_get(node: &mut Node, key: &str) -> (serde_json::Value, Duration) {
    let started = Instant::now();
    node.send(&format!("get {key}"));
    let answer = node.expect("get", is("get", key));
    (answer, started.elapsed())
}

/// Puts `name` = `value` on `node` and returns the full key it wrote
/// (`<peer id>/name` under the default validator).
fn put(node: &mut Node, name: &str, value: &str) -> String {
    node.send(&format!("put {name} {value}"));
    node.expect("put", |l| l["event"] == "put")["key"]
        .as_str()
        .expect("key")
        .to_owned()
}

/// A node alone, the DHT on: a `get` of a key nobody holds ends once its
/// lookups have found nobody (about two seconds: three, a second apart),
/// not after `fetch_timeout` (10 s) waiting for a routing table to fill.
#[test]
fn a_lone_node_get_of_an_unknown_key_ends_in_seconds() {
    let mut node = Node::start("alone", &[]);
    let key = format!("{}/nothing", node.peer_id);
    let (answer, took) = timed_get(&mut node, &key);
    assert_eq!(answer["status"], "not_found", "{answer}");
    assert!(took < Duration::from_secs(4), "get took {took:?}");
    eprintln!("a lone node's get of an unknown key: {took:?}");
}

/// A line A - B - C - D, each dialing the one before; only A and D care
/// about the key. D's `get` finds A through the DHT, and an update on A then
/// reaches D by gossip.
#[test]
fn a_get_at_the_end_of_a_line_finds_the_follower_at_the_other_end() {
    let mut line = line_of(&["A", "B", "C", "D"], &[]);
    let [a, _b, _c, d] = &mut line[..] else {
        unreachable!()
    };
    let key = put(a, "q/1", "first");

    let (answer, took) = timed_get(d, &key);
    assert_eq!(answer["status"], "found", "{answer}");
    assert_eq!(answer["value"], "first", "{answer}");
    assert!(took < FIND_WITHIN, "get took {took:?}");
    eprintln!("line of four: D's get found A's value in {took:?}");

    // D follows the key now, and is connected to A: gossip carries on.
    d.expect("connected to A", connected_to(&a.peer_id));
    let took = gossiped_once_meshed(a, d, &key, "q/1");
    assert!(took < GOSSIP_WITHIN, "{took:?}");
}

/// Once `reader` is connected to `writer` and follows `key` (`name` on
/// the writer), how long the writer's next update takes to reach it by
/// gossip. The first update after the connection may still come by fetch
/// (the reader's catch-up can win the race with the exchange of
/// subscriptions), so the one timed is the write after it arrived.
fn gossiped_once_meshed(writer: &mut Node, reader: &mut Node, key: &str, name: &str) -> Duration {
    writer.send(&format!("put {name} second"));
    reader.expect("second, by either path", |l| {
        l["event"] == "updated" && l["key"] == key && l["value"] == "second"
    });
    let started = Instant::now();
    writer.send(&format!("put {name} third"));
    reader.expect("third by gossip", updated(key, "third", "gossip"));
    started.elapsed()
}

/// A deterministic random graph: node `i` dials two distinct earlier nodes
/// (node 1 dials node 0). Returns each node's dials.
fn sparse_graph(n: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut state = seed | 1;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    (0..n)
        .map(|i| match i {
            0 => vec![],
            1 => vec![0],
            _ => {
                let first = next(i);
                let mut second = next(i - 1);
                if second >= first {
                    second += 1;
                }
                vec![first, second]
            }
        })
        .collect()
}

/// Hops from `from` to every node over the graph's links.
fn hops(dials: &[Vec<usize>], from: usize) -> Vec<usize> {
    let n = dials.len();
    let mut links = vec![Vec::new(); n];
    for (i, targets) in dials.iter().enumerate() {
        for &t in targets {
            links[i].push(t);
            links[t].push(i);
        }
    }
    let mut dist = vec![usize::MAX; n];
    dist[from] = 0;
    let mut queue = VecDeque::from([from]);
    while let Some(i) = queue.pop_front() {
        for &j in &links[i] {
            if dist[j] == usize::MAX {
                dist[j] = dist[i] + 1;
                queue.push_back(j);
            }
        }
    }
    dist
}

/// Thirty node processes on a sparse random graph (each dials two others);
/// two followers of a key at least three hops apart. A `get` on one finds
/// the other's value within 5 s; afterwards an update on one reaches the
/// other by gossip within 2 s.
#[test]
fn thirty_nodes_on_a_sparse_graph_find_a_follower_three_hops_away() {
    const N: usize = 30;
    let dials = sparse_graph(N, 0x5eed_0011);
    let mut nodes = start_graph(&dials);
    // The writer is the last node; the reader the first one at least three
    // hops from it (the graph is connected: every node dials an earlier one).
    let writer = N - 1;
    let dist = hops(&dials, writer);
    let reader = (0..N)
        .filter(|i| dist[*i] >= 3 && dist[*i] != usize::MAX)
        .max_by_key(|i| dist[*i])
        .expect("a node three hops from the writer");
    eprintln!("writer n{writer}, reader n{reader}, {} hops", dist[reader]);
    // Wait until the writer's links are up before it writes.
    for &t in &dials[writer] {
        let peer = nodes[t].peer_id.clone();
        nodes[writer].expect("connected", connected_to(&peer));
    }

    let key = put(&mut nodes[writer], "far/1", "first");
    let (answer, took) = timed_get(&mut nodes[reader], &key);
    assert_eq!(answer["status"], "found", "{answer}");
    assert_eq!(answer["value"], "first", "{answer}");
    assert!(took < FIND_WITHIN, "get took {took:?}");
    eprintln!(
        "30 nodes: a get {} hops away found the value in {took:?}",
        dist[reader]
    );

    // The reader follows the key now; once the two are meshed, gossip.
    let writer_id = nodes[writer].peer_id.clone();
    nodes[reader].expect("connected to the writer", connected_to(&writer_id));
    let [w, r] = nodes
        .get_disjoint_mut([writer, reader])
        .expect("two distinct nodes");
    let took = gossiped_once_meshed(w, r, &key, "far/1");
    assert!(took < GOSSIP_WITHIN, "update took {took:?}");
    eprintln!("30 nodes: the update arrived by gossip in {took:?}");
}

/// Starts `N` nodes on [`sparse_graph`] and returns them.
fn start_graph(dials: &[Vec<usize>]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::with_capacity(dials.len());
    for (i, targets) in dials.iter().enumerate() {
        let mut args: Vec<String> = Vec::new();
        for &t in targets {
            args.extend(["--dial".to_owned(), nodes[t].addr.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        nodes.push(Node::start(&format!("n{i}"), &args));
    }
    nodes
}

/// The report's figure: 50 gets, each by a node that never saw the key,
/// of a key a random other node just wrote, in the 30-node graph.
/// `cargo test --release --all-features --test nodes discovery:: -- --ignored --nocapture`
#[test]
#[ignore = "a measurement: 30 processes, 50 gets; run with --ignored --nocapture"]
fn time_to_a_first_value_over_fifty_fresh_gets() {
    const N: usize = 30;
    let dials = sparse_graph(N, 0x5eed_0022);
    let mut nodes = start_graph(&dials);
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move |below: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % below as u64) as usize
    };
    let mut times = Vec::new();
    for g in 0..50 {
        let writer = next(N);
        let reader = (writer + 1 + next(N - 1)) % N;
        let key = put(&mut nodes[writer], &format!("fresh/{g}"), &format!("v{g}"));
        let (answer, took) = timed_get(&mut nodes[reader], &key);
        assert_eq!(answer["status"], "found", "{answer}");
        times.push(took);
    }
    times.sort();
    let at = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    eprintln!(
        "30 processes, 50 fresh gets: p50 {:?}, p99 {:?}, max {:?}",
        at(0.5),
        at(0.99),
        times[times.len() - 1]
    );
}
