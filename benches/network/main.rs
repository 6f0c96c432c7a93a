//! Network benchmark of `pointer` against its baselines:
//! `cargo bench --bench network`.
//!
//! Every node is one swarm on 127.0.0.1 TCP (noise, yamux) whose behaviour
//! joins three systems over the same connections:
//!
//! - `pointer`: `Behaviour<MemoryStore>` with the default `OwnedKeys`
//!   validator, its gossipsub on the distinct protocol prefix
//!   `/pointer/meshsub`;
//! - `gossipsub`: baseline A, a plain gossipsub configured like Pointer's
//!   (anonymous envelopes, message id = SHA-256 of the data, the same
//!   heartbeat, duplicate cache and transmit size, `flood_publish` default,
//!   `AllowAllSubscriptionFilter`). It validates manually like Pointer and
//!   accepts every message as soon as it arrives, with no decoding and no
//!   signature check: the difference between the two is Pointer's own work;
//! - `kad`: baseline B, `libp2p-kad` in server mode with a `MemoryStore`,
//!   told the addresses of each node's neighbours.
//!
//! Each swarm runs in its own tokio task (two worker threads by default) and
//! takes commands as closures over a channel; what the benchmark waits for
//! comes back as timestamped observations, stamped by the node task when
//! its swarm emits the event. Every wait is bounded; a scenario that runs
//! out of time is reported as such.
//!
//! Wire traffic is counted below noise and yamux: every TCP stream is
//! wrapped, so "bytes" are the bytes handed to and read from the sockets
//! (encryption and multiplexing overhead included), and "writes" the socket
//! writes (the closest thing to messages that is visible from outside the
//! library). Heap is counted by a global allocator wrapper (live bytes).
//!
//! Sizes come from environment variables (defaults = the sizes the README reports):
//! `POINTER_BENCH_QUICK=1` (small smoke run), `POINTER_BENCH_N=10,50,100`,
//! `POINTER_BENCH_ROUNDS=200`, `POINTER_BENCH_KAD_ROUNDS` (default: ROUNDS),
//! `POINTER_BENCH_K=100,1000,10000`, `POINTER_BENCH_DEGREE=3`,
//! `POINTER_BENCH_VALUE_BYTES=100`, `POINTER_BENCH_WRITE_SECS=5`,
//! `POINTER_BENCH_REPUBLISH_SECS=10`, `POINTER_BENCH_IDLE_INTERVALS=3`,
//! `POINTER_BENCH_IDLE_KEYS=100`, `POINTER_BENCH_IDLE_N=10,50,100`,
//! `POINTER_BENCH_IDLE_DEGREE=6` (every node's neighbours in the idle scenario),
//! `POINTER_BENCH_MEM_K=1000,10000`, `POINTER_BENCH_THREADS=2`,
//! `POINTER_BENCH_SCALE_K=1000,10000,100000` and
//! `POINTER_BENCH_SCALE_SHARDS=0,256` (the many-keys scenario; 0 is a topic per key),
//! `POINTER_BENCH_ONLY=propagation,idle,memory,catchup,scale,throughput`,
//! `POINTER_BENCH_KAD_PHASE_SECS=120` (bound on each kad propagation phase),
//! `POINTER_BENCH_SEED`, `POINTER_BENCH_FETCH_FANOUT`, `POINTER_BENCH_VERIFY_THREADS` (experiments only;
//! default: the library's). The table goes to stdout, the same figures as JSON
//! to `$CARGO_TARGET_DIR/bench-network.json` (default `target/`).

use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{HashMap, HashSet};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::{mpsc, oneshot};
use futures::{AsyncRead, AsyncWrite, StreamExt};
use libp2p::core::{upgrade, Transport};
use libp2p::gossipsub::{
    self, AllowAllSubscriptionFilter, IdentTopic, IdentityTransform, MessageAcceptance,
    MessageAuthenticity, MessageId, ValidationMode,
};
use libp2p::identity::Keypair;
use libp2p::kad::store::RecordStore as _;
use libp2p::kad::{self, GetRecordOk, Mode, PeerRecord, QueryId, QueryResult, Quorum, RecordKey};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use pointer::signing_key;
use pointer::store::RecordStore;
use pointer::{Behaviour, Config, Event, MemoryStore, Op, OwnedKeys, Record};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

mod catchup;
mod harness;
mod idle;
mod net;
mod propagation;
mod scale;
mod store;
mod throughput;

use catchup::*;
use harness::*;
use idle::*;
use net::*;
use propagation::*;
use scale::*;
use store::*;
use throughput::*;

// ---------------------------------------------------------------------------
// Settings

struct Settings {
    ns: Vec<usize>,
    rounds: usize,
    kad_rounds: usize,
    ks: Vec<usize>,
    mem_ks: Vec<usize>,
    scale_ks: Vec<usize>,
    scale_shards: Vec<usize>,
    degree: usize,
    value_bytes: usize,
    write_secs: f64,
    republish: Duration,
    idle_intervals: u32,
    idle_keys: usize,
    idle_ns: Vec<usize>,
    idle_degree: usize,
    threads: usize,
    only: Option<Vec<String>>,
    seed: u64,
    round_timeout: Duration,
    catchup_timeout: Duration,
    kad_phase_limit: Duration,
    setup_timeout: Duration,
    quick: bool,
}

fn env_list(name: &str, default: &[usize]) -> Vec<usize> {
    match std::env::var(name) {
        Ok(v) => v.split(',').filter_map(|s| s.trim().parse().ok()).collect(),
        Err(_) => default.to_vec(),
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Settings {
    fn from_env() -> Settings {
        let quick = std::env::var("POINTER_BENCH_QUICK").is_ok_and(|v| v != "0");
        let (ns, rounds, ks, write, republish, idle_keys, idle_ns) = if quick {
            (vec![5, 10], 20, vec![50, 300], 1.0, 2, 20, vec![8, 16])
        } else {
            (
                vec![10, 50, 100],
                200,
                vec![100, 1_000, 10_000],
                5.0,
                10,
                100,
                vec![10, 50, 100],
            )
        };
        let rounds = env_num("POINTER_BENCH_ROUNDS", rounds);
        Settings {
            ns: env_list("POINTER_BENCH_N", &ns),
            rounds,
            kad_rounds: env_num("POINTER_BENCH_KAD_ROUNDS", rounds),
            ks: env_list("POINTER_BENCH_K", &ks),
            scale_ks: env_list("POINTER_BENCH_SCALE_K", &[1_000, 10_000, 100_000]),
            scale_shards: env_list("POINTER_BENCH_SCALE_SHARDS", &[0, 256]),
            mem_ks: env_list(
                "POINTER_BENCH_MEM_K",
                if quick {
                    &[100, 1_000]
                } else {
                    &[1_000, 10_000]
                },
            ),
            degree: env_num("POINTER_BENCH_DEGREE", 3),
            value_bytes: env_num("POINTER_BENCH_VALUE_BYTES", 100).max(16),
            write_secs: env_num("POINTER_BENCH_WRITE_SECS", write),
            republish: Duration::from_secs(env_num("POINTER_BENCH_REPUBLISH_SECS", republish)),
            idle_intervals: env_num("POINTER_BENCH_IDLE_INTERVALS", 3),
            idle_keys: env_num("POINTER_BENCH_IDLE_KEYS", idle_keys),
            idle_ns: env_list("POINTER_BENCH_IDLE_N", &idle_ns),
            idle_degree: env_num("POINTER_BENCH_IDLE_DEGREE", 6),
            threads: env_num("POINTER_BENCH_THREADS", 2),
            only: std::env::var("POINTER_BENCH_ONLY")
                .ok()
                .map(|v| v.split(',').map(|s| s.trim().to_owned()).collect()),
            seed: env_num("POINTER_BENCH_SEED", 0x5eed_1234_abcd_0001),
            round_timeout: Duration::from_secs(env_num("POINTER_BENCH_ROUND_TIMEOUT_SECS", 10)),
            catchup_timeout: Duration::from_secs(env_num("POINTER_BENCH_CATCHUP_TIMEOUT_SECS", 60)),
            setup_timeout: Duration::from_secs(env_num("POINTER_BENCH_SETUP_TIMEOUT_SECS", 60)),
            kad_phase_limit: Duration::from_secs(env_num("POINTER_BENCH_KAD_PHASE_SECS", 120)),
            quick,
        }
    }

    fn runs(&self, scenario: &str) -> bool {
        self.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|s| s == scenario))
    }

    fn to_json(&self) -> Value {
        json!({
            "n": self.ns, "rounds": self.rounds, "kad_rounds": self.kad_rounds, "k": self.ks,
            "memory_k": self.mem_ks,
            "degree": self.degree, "value_bytes": self.value_bytes, "write_secs": self.write_secs,
            "republish_secs": self.republish.as_secs_f64(), "idle_intervals": self.idle_intervals,
            "idle_keys": self.idle_keys, "idle_n": self.idle_ns, "idle_degree": self.idle_degree, "threads": self.threads,
            "seed": self.seed, "quick": self.quick,
        })
    }
}

/// A small deterministic PRNG (xorshift64*), so a run's topology and
/// writers can be repeated from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn main() {
    let s = Settings::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(s.threads.max(1))
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let load_start = load_average();
    println!(
        "pointer network benchmark; load average at start {load_start}; {} worker threads",
        s.threads
    );
    let mut report = Report {
        rows: Vec::new(),
        json: serde_json::Map::new(),
    };
    let mut rng = Rng(s.seed | 1);
    runtime.block_on(async {
        if s.runs("propagation") {
            for &n in &s.ns {
                propagation(&s, n, &mut rng, &mut report).await;
            }
        }
        if s.runs("idle") {
            for &n in &s.idle_ns {
                idle(&s, n, &mut rng, &mut report).await;
            }
        }
        if s.runs("memory") {
            memory_alone(&s, &mut report).await;
        }
        if s.runs("catchup") {
            for &k in &s.ks {
                catchup(&s, k, &mut rng, &mut report).await;
            }
        }
        if s.runs("scale") {
            for &k in &s.scale_ks {
                for &shards in &s.scale_shards {
                    let shards = u16::try_from(shards).expect("at most 4096 shards");
                    scale(&s, k, shards, &mut report).await;
                }
            }
        }
        if s.runs("throughput") {
            throughput(&s, &mut report).await;
        }
    });
    let load_end = load_average();

    println!();
    println!(
        "load average: {load_start} at start, {load_end} at end; {} cores; {:.0} s",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        started.elapsed().as_secs_f64()
    );
    println!();
    println!("| scenario | system | size | result | notes |");
    println!("|---|---|---|---|---|");
    for row in &report.rows {
        println!("| {} |", row.join(" | "));
    }
    let mut json = report.json;
    json.insert("settings".into(), s.to_json());
    json.insert(
        "load_average".into(),
        json!({ "start": load_start, "end": load_end }),
    );
    json.insert(
        "table".into(),
        Value::Array(
            report
                .rows
                .iter()
                .map(|r| {
                    json!({"scenario": r[0], "system": r[1], "size": r[2], "result": r[3], "notes": r[4]})
                })
                .collect(),
        ),
    );
    let dir = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
    let path = std::path::Path::new(&dir).join("bench-network.json");
    let _ = std::fs::create_dir_all(&dir);
    match std::fs::write(
        &path,
        serde_json::to_string_pretty(&Value::Object(json)).expect("json"),
    ) {
        Ok(()) => println!("\nJSON written to {}", path.display()),
        Err(e) => println!("\ncould not write {}: {e}", path.display()),
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
}
