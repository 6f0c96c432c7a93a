//! How long a write takes to reach every node of a sparse network of node
//! processes, and what it costs them, against plain rust-libp2p gossipsub
//! on the same graph: `cargo bench --all-features --bench propagation_nodes`.
//!
//! For each N, three systems run one after the other on 127.0.0.1 TCP:
//!
//! - `pointer default`: N node programs (release build, as `follow`
//!   builds it) with their default flags plus `--json --no-mdns` (runs on
//!   one machine must not find each other), `--listen
//!   /ip4/127.0.0.1/tcp/0`, `--validator open` (every node writes the same
//!   keys) and `--max-connections-per-ip 1024 --max-new-connections-per-ip
//!   1024` (every node shares 127.0.0.1; the per-IP bounds are for a host
//!   on the Internet and would refuse neighbours here);
//! - `pointer --no-dht`: the same and `--no-dht`, so the DHT's part in the
//!   write path shows;
//! - `raw gossipsub`: this binary run again as a tiny node
//!   (`POINTER_RAW_NODE=1`): TCP, noise and yamux as the node program
//!   builds them, gossipsub with its default configuration (1 s
//!   heartbeat, as Pointer's) and signed messages (`ValidationMode::Strict`),
//!   nothing else. Commands on standard input: `dial ADDR`, `sub TOPIC...`,
//!   `pub TOPIC DATA`, `peers`.
//!
//! The graph: node i dials up to 3 of the nodes before it, chosen by a
//! seeded RNG, so it is sparse and connected. The same graph and the same
//! writers serve the three systems. Every node follows the same K keys
//! (the raw nodes join the same topic names, `/pointer/record/<key>`).
//! Then, for each key, a probe write from a random node must reach every
//! other node (retried with a new value until one does): the meshes carry
//! every key. A settle of [`SETTLE`] after that lets gossipsub's heartbeats
//! graft the meshes to their size; nothing prints when a mesh is full, so
//! this one wait is a sleep. Then the run waits until the network is quiet
//! (all nodes together under [`QUIET_PER_NODE`] of CPU per node over
//! [`QUIET_WINDOW`], at most [`QUIET_LIMIT`]) and until the connections
//! the DHT dialed have closed (`dht_connection_linger`), counting the
//! links every [`LINKS_POLL`] until they are the graph dialed, at most
//! [`LINKS_LIMIT`] (`quiet after` in the table, both waits together):
//! with the DHT, every node advertises and looks up every key it follows,
//! and kad's queries connect it to most others, which on 2 cores keeps the
//! machine busy for some 20 s at N=30. A write measured in that storm
//! measures the storm. The idle CPU over [`IDLE`] is measured next.
//!
//! Then W writes, one at a time, each from a random node to key `w % K`
//! with a fresh 100-byte value: its latency runs from writing the `put`
//! (`pub`) line to the writer's standard input until the last other node
//! has printed the update (`updated` / `message`). CPU per write is the
//! CPU time of all N processes over the write phase (from `/proc`) divided
//! by W; `above idle` takes the idle rate times the phase's length off
//! it. `links` is the connections open at the end (half the sum of every
//! node's `peers`): the DHT can add links to the dialed graph.
//!
//! Env knobs: `POINTER_PROP_N` (network sizes, default `10,30`),
//! `POINTER_PROP_WRITES` (W, default 200), `POINTER_PROP_KEYS` (K, default
//! 10), `POINTER_PROP_SEED` (the graph's and writers' seed, default from
//! the clock; printed), `POINTER_PROP_SYSTEMS` (any of
//! `pointer,pointer-no-dht,raw`, default all), `POINTER_NODE_BIN` (another
//! build of the node), `NODE_LOG` (the nodes' `RUST_LOG`, default `info`).

#[allow(dead_code)]
#[path = "../tests/process/mod.rs"]
mod process;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::Value;

use process::{connected_to, env_list, Node};

/// Set in the environment of this binary re-run as a raw gossipsub node.
const RAW_NODE_ENV: &str = "POINTER_RAW_NODE";
/// Neighbours each node dials among the nodes before it.
const DIALS: usize = 3;
/// Longest a write may take to reach everyone before it counts as missed.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);
/// How long one readiness probe may take before another is sent.
const PROBE_DEADLINE: Duration = Duration::from_secs(5);
/// Probes per key before the run is given up.
const PROBE_ATTEMPTS: usize = 12;
/// Heartbeats after every key reached everyone, for meshes to fill.
const SETTLE: Duration = Duration::from_secs(3);
/// Window over which idle CPU is measured: longer than ping's 15 s
/// interval, so periodic work is in it once.
const IDLE: Duration = Duration::from_secs(16);
/// CPU per node and second under which the network counts as quiet.
const QUIET_PER_NODE: f64 = 0.005;
/// Window over which quiet is measured.
const QUIET_WINDOW: Duration = Duration::from_secs(2);
/// Longest wait for quiet; the run goes on after it, with a warning.
const QUIET_LIMIT: Duration = Duration::from_secs(180);
/// Bytes of each written value.
const VALUE_BYTES: usize = 100;
/// Longest wait, from the start of the wait for quiet, for the links to
/// come back to the graph dialed.
const LINKS_LIMIT: Duration = Duration::from_secs(90);
/// How often the links are counted while waiting for them.
const LINKS_POLL: Duration = Duration::from_secs(2);

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}: a number, not {v:?}")),
        Err(_) => default,
    }
}

fn key(i: usize) -> String {
    format!("k/{i:02}")
}

fn topic(key: &str) -> String {
    format!("/pointer/record/{key}")
}

/// A value of [`VALUE_BYTES`] bytes that names its write.
fn value(label: &str) -> String {
    format!(
        "{label}-{}",
        "x".repeat(VALUE_BYTES.saturating_sub(label.len() + 1))
    )
}

#[derive(Clone, Copy, PartialEq)]
enum System {
    Pointer,
    PointerNoDht,
    Raw,
}

impl System {
    fn parse(name: &str) -> System {
        match name {
            "pointer" => System::Pointer,
            "pointer-no-dht" => System::PointerNoDht,
            "raw" => System::Raw,
            other => panic!("POINTER_PROP_SYSTEMS: {other}? pointer, pointer-no-dht or raw"),
        }
    }

    fn label(self) -> &'static str {
        match self {
            System::Pointer => "pointer default",
            System::PointerNoDht => "pointer --no-dht",
            System::Raw => "raw gossipsub",
        }
    }

    fn start(self, name: &str) -> Node {
        let mut args = vec![
            "--validator",
            "open",
            "--max-connections-per-ip",
            "1024",
            "--max-new-connections-per-ip",
            "1024",
        ];
        match self {
            System::Pointer => Node::start(name, &args),
            System::PointerNoDht => {
                args.push("--no-dht");
                Node::start(name, &args)
            }
            System::Raw => {
                let exe = std::env::current_exe().expect("this benchmark's own path");
                let mut command = Command::new(exe);
                command.env(RAW_NODE_ENV, "1");
                Node::start_command(name, command)
            }
        }
    }

    fn follow(self, node: &mut Node, keys: &[String]) {
        match self {
            System::Raw => {
                let topics: Vec<String> = keys.iter().map(|k| topic(k)).collect();
                node.send(&format!("sub {}", topics.join(" ")));
            }
            _ => node.send(&format!("sub {}", keys.join(" "))),
        }
    }

    fn write(self, node: &mut Node, key: &str, value: &str) {
        match self {
            System::Raw => node.send(&format!("pub {} {value}", topic(key))),
            _ => node.send(&format!("put {key} {value}")),
        }
    }

    /// The line a node prints when the write of `value` to `key` reached it.
    fn delivered(self, key: &str, value: &str) -> impl Fn(&Value) -> bool {
        let (system, topic, key, value) = (self, topic(key), key.to_owned(), value.to_owned());
        move |l: &Value| match system {
            System::Raw => {
                l["event"] == "message"
                    && l["topic"] == topic.as_str()
                    && l["data"] == value.as_str()
            }
            _ => {
                l["event"] == "updated" && l["key"] == key.as_str() && l["value"] == value.as_str()
            }
        }
    }
}

/// Node i's neighbours among 0..i: up to [`DIALS`] of them, distinct.
fn graph(n: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    (0..n)
        .map(|i| {
            let mut dials = rand::seq::index::sample(rng, i.max(1), DIALS.min(i)).into_vec();
            dials.sort_unstable();
            dials
        })
        .collect()
}

/// What one system did at one size.
struct Row {
    n: usize,
    system: System,
    /// Every write that reached everyone, sorted.
    latencies: Vec<Duration>,
    /// Deliveries that did not come within [`WRITE_DEADLINE`].
    missed: usize,
    /// CPU seconds of all nodes over the write phase, per write.
    cpu_per_write: f64,
    /// CPU seconds per second of all nodes while idle.
    idle_rate: f64,
    /// The write phase's length.
    phase: Duration,
    /// How long the network took to quiet down after the settle.
    quiet_after: Duration,
    writes: usize,
    links: usize,
}

/// The workload of one size, the same for every system.
struct Plan {
    n: usize,
    keys: Vec<String>,
    dials: Vec<Vec<usize>>,
    /// Writer of each probe (one list per key, one writer per attempt).
    probers: Vec<Vec<usize>>,
    /// Writer of each measured write.
    writers: Vec<usize>,
}

fn run(plan: &Plan, system: System) -> Row {
    let n = plan.n;
    eprintln!("{} nodes: {}", n, system.label());
    let mut nodes: Vec<Node> = (0..n).map(|i| system.start(&format!("n{i:02}"))).collect();
    for (i, dials) in plan.dials.iter().enumerate() {
        for &j in dials {
            let addr = nodes[j].addr.clone();
            nodes[i].send(&format!("dial {addr}"));
        }
    }
    for (i, dials) in plan.dials.iter().enumerate() {
        for &j in dials {
            let (pi, pj) = (nodes[i].peer_id.clone(), nodes[j].peer_id.clone());
            nodes[i].expect("connected", connected_to(&pj));
            nodes[j].expect("connected", connected_to(&pi));
        }
    }
    for node in nodes.iter_mut() {
        system.follow(node, &plan.keys);
    }
    for (k, key) in plan.keys.iter().enumerate() {
        let reached = plan.probers[k].iter().enumerate().any(|(attempt, &w)| {
            let v = value(&format!("probe{k}.{attempt}"));
            system.write(&mut nodes[w], key, &v);
            let deadline = Instant::now() + PROBE_DEADLINE;
            let matcher = system.delivered(key, &v);
            // Every node is watched even after one missed, so no stale
            // line of this probe is left for the next.
            let got: Vec<bool> = (0..n)
                .filter(|&i| i != w)
                .map(|i| nodes[i].watch_until(deadline, &matcher))
                .collect();
            got.into_iter().all(|got| got)
        });
        assert!(
            reached,
            "{} at {n}: no probe of {key} reached every node in {PROBE_ATTEMPTS} tries",
            system.label()
        );
    }
    std::thread::sleep(SETTLE);
    let cpu = |nodes: &[Node]| -> f64 { nodes.iter().filter_map(Node::cpu_seconds).sum() };
    let quiet_from = Instant::now();
    loop {
        let from = cpu(&nodes);
        std::thread::sleep(QUIET_WINDOW);
        let rate = (cpu(&nodes) - from) / QUIET_WINDOW.as_secs_f64();
        if rate < QUIET_PER_NODE * n as f64 {
            break;
        }
        if quiet_from.elapsed() > QUIET_LIMIT {
            eprintln!(
                "{} at {n}: still {:.0} ms/s of CPU after {} s; measuring anyway",
                system.label(),
                rate * 1000.0,
                QUIET_LIMIT.as_secs()
            );
            break;
        }
    }
    // Connections kad dialed for its start-up walks close once they have
    // lingered (`dht_connection_linger`, 30 s): the steady state to
    // measure is the graph the users dialed, so the run waits for it.
    let dialed: usize = plan.dials.iter().map(Vec::len).sum();
    while links(&mut nodes) > dialed && quiet_from.elapsed() < LINKS_LIMIT {
        std::thread::sleep(LINKS_POLL);
    }
    let quiet_after = quiet_from.elapsed();
    let idle_from = cpu(&nodes);
    std::thread::sleep(IDLE);
    let idle_rate = (cpu(&nodes) - idle_from) / IDLE.as_secs_f64();

    let cpu_from = cpu(&nodes);
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(plan.writers.len());
    let mut missed = 0;
    for (w, &writer) in plan.writers.iter().enumerate() {
        let key = &plan.keys[w % plan.keys.len()];
        let v = value(&format!("w{w}"));
        let matcher = system.delivered(key, &v);
        let sent = Instant::now();
        system.write(&mut nodes[writer], key, &v);
        let deadline = sent + WRITE_DEADLINE;
        let mut all = true;
        for (i, node) in nodes.iter_mut().enumerate() {
            if i != writer && !node.watch_until(deadline, &matcher) {
                missed += 1;
                all = false;
            }
        }
        if all {
            latencies.push(sent.elapsed());
        }
    }
    let phase = started.elapsed();
    let cpu_per_write = (cpu(&nodes) - cpu_from) / plan.writers.len() as f64;

    let links = links(&mut nodes);
    latencies.sort_unstable();
    Row {
        n,
        system,
        latencies,
        missed,
        cpu_per_write,
        idle_rate,
        phase,
        quiet_after,
        writes: plan.writers.len(),
        links,
    }
}

/// The connections open among `nodes`: half the sum of their `peers`.
fn links(nodes: &mut [Node]) -> usize {
    let mut degrees = 0;
    for node in nodes.iter_mut() {
        node.send("peers");
        let peers = node.expect("peers", |l| l["event"] == "peers");
        degrees += peers["peers"].as_array().map_or(0, Vec::len);
    }
    degrees / 2
}

/// The nearest-rank percentile `q` of sorted `samples`, in ms.
fn percentile(samples: &[Duration], q: f64) -> Option<f64> {
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len().max(1));
    samples.get(rank - 1).map(|d| d.as_secs_f64() * 1000.0)
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.1}"))
}

fn main() {
    if std::env::var_os(RAW_NODE_ENV).is_some() {
        raw::run();
        return;
    }
    let seed = std::env::var("POINTER_PROP_SEED").map_or_else(
        |_| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
        },
        |v| {
            v.trim()
                .parse()
                .unwrap_or_else(|_| panic!("POINTER_PROP_SEED: a number, not {v:?}"))
        },
    );
    let writes = env_number("POINTER_PROP_WRITES", 200) as usize;
    let k = env_number("POINTER_PROP_KEYS", 10) as usize;
    assert!(
        writes > 0 && k > 0,
        "POINTER_PROP_WRITES and POINTER_PROP_KEYS: at least 1"
    );
    let systems: Vec<System> = env_list("POINTER_PROP_SYSTEMS", "pointer,pointer-no-dht,raw")
        .iter()
        .map(|s| System::parse(s))
        .collect();
    let sizes: Vec<usize> = env_list("POINTER_PROP_N", "10,30")
        .iter()
        .map(|s| {
            s.parse()
                .ok()
                .filter(|&n: &usize| n >= 2)
                .unwrap_or_else(|| panic!("POINTER_PROP_N: sizes of at least 2, not {s:?}"))
        })
        .collect();
    if systems.iter().any(|s| *s != System::Raw) {
        eprintln!("node: {}", process::node_binary().display());
    }
    println!(
        "seed {seed} (POINTER_PROP_SEED), {writes} writes, {k} keys, {VALUE_BYTES}-byte values"
    );

    let mut rows = Vec::new();
    for &n in &sizes {
        // One stream per size, so a size's graph does not depend on which
        // sizes ran before it.
        let mut rng = StdRng::seed_from_u64(seed ^ (n as u64).rotate_left(32));
        let plan = Plan {
            n,
            keys: (0..k).map(key).collect(),
            dials: graph(n, &mut rng),
            probers: (0..k)
                .map(|_| {
                    (0..PROBE_ATTEMPTS)
                        .map(|_| rng.random_range(0..n))
                        .collect()
                })
                .collect(),
            writers: (0..writes).map(|_| rng.random_range(0..n)).collect(),
        };
        let edges: usize = plan.dials.iter().map(Vec::len).sum();
        println!("N={n}: {edges} dialed links");
        for &system in &systems {
            rows.push(run(&plan, system));
        }
    }

    println!(
        "\n| N | system | p50 ms | p90 ms | p99 ms | max ms | missed | CPU ms / write, all nodes | above idle | idle CPU ms/s | links | quiet after s | p50 / raw p50 |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in &rows {
        let raw_p50 = rows
            .iter()
            .find(|r| r.n == row.n && r.system == System::Raw)
            .and_then(|r| percentile(&r.latencies, 0.5));
        let p50 = percentile(&row.latencies, 0.5);
        let ratio = match (p50, raw_p50) {
            (Some(p), Some(r)) if r > 0.0 => format!("{:.2}", p / r),
            _ => "-".to_owned(),
        };
        let above_idle =
            row.cpu_per_write - row.idle_rate * row.phase.as_secs_f64() / row.writes as f64;
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {:.0} | {} |",
            row.n,
            row.system.label(),
            ms(p50),
            ms(percentile(&row.latencies, 0.9)),
            ms(percentile(&row.latencies, 0.99)),
            ms(row.latencies.last().map(|d| d.as_secs_f64() * 1000.0)),
            row.missed,
            row.cpu_per_write * 1000.0,
            above_idle * 1000.0,
            row.idle_rate * 1000.0,
            row.links,
            row.quiet_after.as_secs_f64(),
            ratio,
        );
    }
}

/// The baseline: a gossipsub node and nothing else, driven like the node
/// program (lines in, JSON lines out).
mod raw {
    use std::io::BufRead;
    use std::time::Duration;

    use futures::StreamExt;
    use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
    use libp2p::swarm::SwarmEvent;
    use libp2p::{noise, tcp, yamux, Multiaddr, Swarm, SwarmBuilder};
    use serde_json::json;
    use tokio::sync::mpsc;

    fn print(line: serde_json::Value) {
        // Standard output is line-buffered: each line goes out whole.
        println!("{line}");
    }

    fn error(command: &str, message: impl std::fmt::Display) {
        print(json!({"event": "error", "command": command, "message": message.to_string()}));
    }

    /// Runs until standard input ends, on a multi-threaded runtime as the
    /// node program does.
    pub fn run() {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
            .block_on(node());
    }

    fn swarm() -> Swarm<gossipsub::Behaviour> {
        SwarmBuilder::with_new_identity()
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .expect("the TCP transport")
            .with_behaviour(
                |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(gossipsub::Behaviour::new(
                        MessageAuthenticity::Signed(key.clone()),
                        gossipsub::Config::default(),
                    )?)
                },
            )
            .expect("gossipsub")
            // As the node program: a link that is the only path between
            // two halves must not close for being idle.
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(u64::MAX)))
            .build()
    }

    async fn node() {
        let mut swarm = swarm();
        let me = *swarm.local_peer_id();
        print(json!({"event": "started", "peer_id": me.to_string()}));
        let listen: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("a multiaddr");
        swarm.listen_on(listen).expect("listen on 127.0.0.1");
        // Standard input on a thread of its own, as the node program reads
        // it: a blocking read must not hold a runtime worker.
        let (tx, mut lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        loop {
            tokio::select! {
                line = lines.recv() => match line {
                    Some(line) => command(&mut swarm, &line),
                    None => break,
                },
                event = swarm.select_next_some() => on_event(&me, event),
            }
        }
    }

    fn command(swarm: &mut Swarm<gossipsub::Behaviour>, line: &str) {
        let mut words = line.splitn(2, ' ');
        let (verb, rest) = (
            words.next().unwrap_or_default(),
            words.next().unwrap_or_default(),
        );
        match verb {
            "dial" => match rest.trim().parse::<Multiaddr>() {
                Ok(addr) => {
                    if let Err(e) = swarm.dial(addr) {
                        error("dial", e);
                    }
                }
                Err(e) => error("dial", e),
            },
            "sub" => {
                for topic in rest.split_whitespace() {
                    if let Err(e) = swarm.behaviour_mut().subscribe(&IdentTopic::new(topic)) {
                        error("sub", e);
                    }
                }
            }
            "pub" => {
                let mut parts = rest.splitn(2, ' ');
                match (parts.next(), parts.next()) {
                    (Some(topic), Some(data)) if !topic.is_empty() => {
                        let published = swarm
                            .behaviour_mut()
                            .publish(IdentTopic::new(topic), data.as_bytes().to_vec());
                        if let Err(e) = published {
                            error("pub", e);
                        }
                    }
                    _ => error("pub", "usage: pub TOPIC DATA"),
                }
            }
            "peers" => {
                let peers: Vec<_> = swarm
                    .connected_peers()
                    .map(|p| json!({"peer_id": p.to_string()}))
                    .collect();
                print(json!({"event": "peers", "peers": peers}));
            }
            other => error(other, "unknown command: dial, sub, pub or peers"),
        }
    }

    fn on_event(me: &libp2p::PeerId, event: SwarmEvent<gossipsub::Event>) {
        match event {
            SwarmEvent::NewListenAddr { address, .. } => {
                print(json!({"event": "listening", "address": format!("{address}/p2p/{me}")}));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                endpoint,
                num_established,
                ..
            } if num_established.get() == 1 => {
                print(json!({
                    "event": "connected",
                    "peer_id": peer_id.to_string(),
                    "address": endpoint.get_remote_address().to_string(),
                }));
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                num_established: 0,
                ..
            } => print(json!({"event": "disconnected", "peer_id": peer_id.to_string()})),
            SwarmEvent::OutgoingConnectionError { error: e, .. } => error("dial", e),
            SwarmEvent::Behaviour(gossipsub::Event::Message {
                propagation_source,
                message,
                ..
            }) => print(json!({
                "event": "message",
                "topic": message.topic.as_str(),
                "data": String::from_utf8_lossy(&message.data),
                "from": propagation_source.to_string(),
            })),
            _ => {}
        }
    }
}
