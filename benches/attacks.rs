//! What a hostile peer costs the `node` program, each attack next to a
//! control run on the same node: the node as a separate process (release
//! build, default flags but `--no-mdns`), a raw gossipsub peer
//! (`tests/common/rogue.rs`) dialing it over TCP on 127.0.0.1.
//!
//! `cargo bench --all-features --bench attacks` prints one table. Set
//! `POINTER_NODE_BIN` to another build of the node (an older commit's
//! `target/release/examples/node`) to measure that one the same way.
//!
//! Per attack: what the attacker sent (messages and bytes), the node's CPU
//! beyond the control run (the same peer connected and idle for as long),
//! the bytes the attacker heard back, what the node printed about it,
//! whether the node banned it, and the p99 of an honest peer's `get`s of
//! keys only the node holds (each a fetch from it), in the control run
//! and during the attack.

#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../tests/process/mod.rs"]
mod process;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::rogue::{topic_of, Rogue};
use pointer::internals::wire;
use pointer::{signing_key, Author, Signature};
use pointer::{Op, Record};
use process::{connected_to, is, Node};
use serde_json::Value;

/// The value size of the sentinel record: past `max_value_bytes`
/// (61,440), so it is refused at once, for a reason no attack record
/// shows, and charged to nobody.
const SENTINEL_VALUE: usize = 62_000;

/// How long each attack (and each control) runs.
const RUN: Duration = Duration::from_secs(10);

/// Records a value as large as the node allows by default, so that a
/// reaction that sends it shows.
const LARGE: usize = 60_000;

fn now_ms() -> i64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH).expect("clock");
    i64::try_from(since.as_millis()).expect("ms fit i64")
}

/// Keys the target holds for the honest peer's `get`s, each fetched from
/// the target once (a second `get` would be answered from the honest
/// peer's own copy).
const PROBES: usize = 300;

/// Time between two of the honest peer's `get`s: about 100 in a run.
const PROBE_EVERY: Duration = Duration::from_millis(100);

/// One row of the table.
struct Row {
    attack: &'static str,
    sent: (usize, usize),
    extra_cpu_ms: f64,
    heard: (usize, usize),
    rejected_lines: usize,
    banned: bool,
    /// p99 of the honest peer's `get`s from the target, in the control
    /// run and during the attack.
    get_p99: (Duration, Duration),
}

/// The node under attack, the rogue, and an honest peer that keeps
/// fetching keys from the node (its `get`s, on a thread of its own).
struct Arena {
    node: Node,
    rogue: Rogue,
    honest: Option<Node>,
    probes: Vec<String>,
    next_probe: usize,
    /// The node's CPU and the honest `get`s' p99 over an idle control run
    /// of [`RUN`].
    control: (f64, Duration),
}

/// A node with `args` holding [`PROBES`] keys, an honest peer connected
/// to it, and a rogue connected to it and subscribed to `key`'s topic;
/// then the control run.
async fn arena(args: &[&str], key: &str) -> Arena {
    let mut node = Node::start("target", args);
    let mut probes = Vec::with_capacity(PROBES);
    for i in 0..PROBES {
        node.send(&format!("put p{i} probe"));
        let put = node.expect("put", |l| l["event"] == "put");
        probes.push(put["key"].as_str().expect("key").to_owned());
    }
    let honest = Node::start(
        "honest",
        &["--validator", "open", "--no-dht", "--dial", &node.addr],
    );
    node.expect("the honest peer connects", connected_to(&honest.peer_id));
    let rogue = Rogue::dialing(node.addr.parse().expect("a multiaddr"));
    node.expect("the rogue connects", |l| l["event"] == "connected");
    rogue.subscribe(topic_of(key));
    let mut arena = Arena {
        node,
        rogue,
        honest: Some(honest),
        probes,
        next_probe: 0,
        control: (0.0, Duration::ZERO),
    };
    let before = arena.node.cpu_seconds().expect("/proc is readable");
    let probing = arena.probe();
    tokio::time::sleep(RUN).await;
    let get_p99 = arena.end_probe(probing);
    let cpu = arena.node.cpu_seconds().expect("/proc is readable") - before;
    arena.control = (cpu, get_p99);
    arena
}

/// The honest peer's `get`s while they run: a stop flag and the thread.
type Probing = (Arc<AtomicBool>, thread::JoinHandle<(Node, Vec<Duration>)>);

impl Arena {
    /// Starts the honest peer's `get`s of fresh probe keys, one every
    /// [`PROBE_EVERY`], each timed from the command to its answer.
    fn probe(&mut self) -> Probing {
        let mut honest = self.honest.take().expect("one probe at a time");
        let keys: Vec<String> = self.probes[self.next_probe..].to_vec();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let worker = thread::spawn(move || {
            let mut took = Vec::new();
            for key in keys {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let started = Instant::now();
                honest.send(&format!("get {key}"));
                honest.expect("the get", is("get", &key));
                took.push(started.elapsed());
                thread::sleep(PROBE_EVERY);
            }
            (honest, took)
        });
        (stop, worker)
    }

    /// Stops the `get`s; their p99.
    fn end_probe(&mut self, (stop, worker): Probing) -> Duration {
        stop.store(true, Ordering::Relaxed);
        let (honest, mut took) = worker.join().expect("the probe thread");
        self.honest = Some(honest);
        self.next_probe += took.len();
        took.sort();
        let at = ((took.len().max(1) - 1) as f64 * 0.99).round() as usize;
        took.get(at).copied().unwrap_or_default()
    }
}

/// One attack: `label`, on `key`'s topic at `per_second`.
struct Attack<'a> {
    label: &'static str,
    key: &'a str,
    per_second: u32,
}

/// Publishes what `next` makes on the attacked topic for [`RUN`], then
/// `sentinel`; measures the node until every record was judged.
async fn attack(
    arena: &mut Arena,
    how: Attack<'_>,
    mut next: impl FnMut(u64) -> Vec<u8>,
    sentinel: Vec<u8>,
) -> Row {
    let Attack {
        label,
        key,
        per_second,
    } = how;
    let heard = arena.rogue.heard();
    let before = arena.node.cpu_seconds().expect("/proc is readable");
    let probing = arena.probe();
    let (node, rogue) = (&mut arena.node, &arena.rogue);
    let started = Instant::now();
    let mut sent = (0, 0);
    let pause = Duration::from_secs(1) / per_second;
    let mut round = 0;
    while started.elapsed() < RUN && rogue.is_connected() {
        let data = next(round);
        sent = (sent.0 + 1, sent.1 + data.len());
        rogue.publish(topic_of(key), data);
        round += 1;
        tokio::time::sleep(pause).await;
    }
    // Every record sent has been judged once the node refuses the
    // sentinel (a value over the size limit), or once it has cut the
    // rogue off (a ban).
    if rogue.is_connected() {
        rogue.publish(topic_of(key), sentinel);
    }
    let rogue_id = rogue.peer.to_string();
    let mut rejected = 0;
    loop {
        let line: Value = node.expect("the sentinel's refusal or a ban", |l| {
            l["event"] == "rejected" || (l["event"] == "disconnected" && l["peer_id"] == rogue_id)
        });
        let reason = line["reason"].as_str().unwrap_or_default();
        if line["event"] == "disconnected" || reason.starts_with("value of") {
            break;
        }
        rejected += 1;
    }
    let cpu = node.cpu_seconds().expect("/proc is readable") - before;
    let after = rogue.heard();
    let banned = !rogue.is_connected();
    let get_p99 = arena.end_probe(probing);
    let (control_cpu, control_get) = arena.control;
    Row {
        attack: label,
        sent,
        extra_cpu_ms: (cpu - control_cpu) * 1000.0,
        heard: (after.0 - heard.0, after.1 - heard.1),
        rejected_lines: rejected,
        banned,
        get_p99: (control_get, get_p99),
    }
}

/// A record of `value` dated `time` on `key` under a random author, with a
/// junk signature.
fn forgery(key: &str, value: &str, time: i64, i: u64) -> Record {
    let author = Author::from_bytes(rand_bytes(i));
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(&rand_bytes(i + 1));
    Record::from_parts(
        key.to_owned(),
        Op::Mut,
        value.to_owned(),
        time,
        author,
        Signature::from_bytes(sig),
    )
}

/// The record that closes an attack: see [`SENTINEL_VALUE`].
fn sentinel(key: &str, time: i64) -> Record {
    forgery(key, &"y".repeat(SENTINEL_VALUE), time, u64::MAX / 3)
}

fn rand_bytes(seed: u64) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for b in out.iter_mut() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *b = state as u8;
    }
    out
}

/// The target holds a 60 KB record; the rogue sends forgeries dated
/// before it (junk signatures, a new round each) at 10 a second.
async fn stale_forgery() -> Row {
    let mut arena = arena(&["--validator", "open"], "big").await;
    let large = "x".repeat(LARGE);
    arena.node.send(&format!("put big {large}"));
    let put = arena.node.expect("put", |l| l["event"] == "put");
    let time = put["time"].as_i64().expect("time");
    // The put reaches the rogue (it follows the key): not the attack's.
    let deadline = Instant::now() + Duration::from_secs(5);
    while arena.rogue.heard().1 < LARGE && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let how = Attack {
        label: "stale forgery, 10/s",
        key: "big",
        per_second: 10,
    };
    let forged = |round| wire::encode_republish(&forgery("big", "x", time - 1, round), round);
    let sentinel = wire::encode_republish(&sentinel("big", time), 0);
    attack(&mut arena, how, forged, sentinel).await
}

/// The rogue signs a record for the target's own key (the default
/// validator refuses it) and replays it under a new round each time, one
/// every 5 ms (about 160 a second, with the timer's slack).
async fn unauthorized_replay() -> Row {
    let mut arena = arena(&[], "mine").await;
    arena.node.send("put mine v");
    let put = arena.node.expect("put", |l| l["event"] == "put");
    let key = put["key"].as_str().expect("key").to_owned();
    arena.rogue.subscribe(topic_of(&key));
    // Let the subscription reach the target before the replays start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let signer = signing_key(&arena.rogue.keypair).expect("ed25519");
    let not_yours = Record::sign(&key, Op::Mut, "not yours", now_ms(), &signer);
    let how = Attack {
        label: "unauthorized replay, every 5 ms",
        key: &key,
        per_second: 200,
    };
    let replay = |round| wire::encode_republish(&not_yours, round);
    let sentinel = wire::encode_republish(&sentinel(&key, now_ms()), 0);
    attack(&mut arena, how, replay, sentinel).await
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let binary = process::node_binary();
    eprintln!("node: {}", binary.display());
    let rows = vec![stale_forgery().await, unauthorized_replay().await];
    println!(
        "\n| attack ({} s each) | attacker sent | node CPU over control | attacker heard back | amplification (bytes) | `rejected` lines | banned | honest `get` p99, control / attack |",
        RUN.as_secs()
    );
    println!("|---|---:|---:|---:|---:|---:|---|---:|");
    for row in rows {
        let amplification = row.heard.1 as f64 / row.sent.1.max(1) as f64;
        println!(
            "| {} | {} msgs, {} B | {:+.0} ms | {} msgs, {} B | {:.2}x | {} | {} | {:.1} / {:.1} ms |",
            row.attack,
            row.sent.0,
            row.sent.1,
            row.extra_cpu_ms,
            row.heard.0,
            row.heard.1,
            amplification,
            row.rejected_lines,
            if row.banned { "yes" } else { "no" },
            row.get_p99.0.as_secs_f64() * 1000.0,
            row.get_p99.1.as_secs_f64() * 1000.0,
        );
    }
}
