//! Network benchmark of `pointer` against its baselines (issue 5):
//! `cargo bench --bench network`.
//!
//! Every node is one swarm on 127.0.0.1 TCP (noise, yamux) whose behaviour
//! joins three systems over the same connections:
//!
//! - `pointer`: `Pointer<MemoryStore>` with the default `OwnedKeys`
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
//! Sizes come from environment variables (defaults = the sizes):
//! `POINTER_BENCH_QUICK=1` (small smoke run), `POINTER_BENCH_N=10,50,100`,
//! `POINTER_BENCH_ROUNDS=200`, `POINTER_BENCH_KAD_ROUNDS` (default: ROUNDS),
//! `POINTER_BENCH_K=100,1000,10000`, `POINTER_BENCH_DEGREE=3`,
//! `POINTER_BENCH_VALUE_BYTES=100`, `POINTER_BENCH_WRITE_SECS=5`,
//! `POINTER_BENCH_REPUBLISH_SECS=10`, `POINTER_BENCH_IDLE_INTERVALS=3`,
//! `POINTER_BENCH_IDLE_KEYS=100`, `POINTER_BENCH_IDLE_N=10,50`,
//! `POINTER_BENCH_MEM_K=1000,10000`, `POINTER_BENCH_THREADS=2`,
//! `POINTER_BENCH_ONLY=propagation,idle,memory,catchup,throughput`,
//! `POINTER_BENCH_KAD_PHASE_SECS=120` (bound on each kad propagation phase),
//! `POINTER_BENCH_SEED`, `POINTER_BENCH_FETCH_FANOUT` (experiments only;
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
use pointer::record::signing_key;
use pointer::store::RecordStore;
use pointer::{Config, MemoryStore, Op, OwnedKeys, Pointer, PointerEvent, Record};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

// ---------------------------------------------------------------------------
// Heap accounting

/// Live heap bytes of the whole process.
static LIVE_HEAP: AtomicI64 = AtomicI64::new(0);

struct CountingAlloc;

// SAFETY: every call is forwarded to the system allocator unchanged; the
// wrapper only adds and subtracts sizes.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(layout.size() as i64, Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE_HEAP.fetch_sub(layout.size() as i64, Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE_HEAP.fetch_add(new_size as i64 - layout.size() as i64, Relaxed);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

fn heap() -> i64 {
    LIVE_HEAP.load(Relaxed)
}

// ---------------------------------------------------------------------------
// Wire accounting: a TCP stream wrapper below noise and yamux

#[derive(Default)]
struct Wire {
    tx: AtomicU64,
    rx: AtomicU64,
    writes: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default)]
struct WireSnap {
    tx: u64,
    rx: u64,
    writes: u64,
}

impl WireSnap {
    fn since(self, before: WireSnap) -> WireSnap {
        WireSnap {
            tx: self.tx - before.tx,
            rx: self.rx - before.rx,
            writes: self.writes - before.writes,
        }
    }
}

struct Counted<S> {
    inner: S,
    wire: Arc<Wire>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            this.wire.rx.fetch_add(*n as u64, Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r {
            if *n > 0 {
                this.wire.tx.fetch_add(*n as u64, Relaxed);
                this.wire.writes.fetch_add(1, Relaxed);
            }
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_close(cx)
    }
}

// ---------------------------------------------------------------------------
// Settings

struct Settings {
    ns: Vec<usize>,
    rounds: usize,
    kad_rounds: usize,
    ks: Vec<usize>,
    mem_ks: Vec<usize>,
    degree: usize,
    value_bytes: usize,
    write_secs: f64,
    republish: Duration,
    idle_intervals: u32,
    idle_keys: usize,
    idle_ns: Vec<usize>,
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
            (vec![5, 10], 20, vec![50, 300], 1.0, 2, 20, vec![5, 10])
        } else {
            (
                vec![10, 50, 100],
                200,
                vec![100, 1_000, 10_000],
                5.0,
                10,
                100,
                vec![10, 50],
            )
        };
        let rounds = env_num("POINTER_BENCH_ROUNDS", rounds);
        Settings {
            ns: env_list("POINTER_BENCH_N", &ns),
            rounds,
            kad_rounds: env_num("POINTER_BENCH_KAD_ROUNDS", rounds),
            ks: env_list("POINTER_BENCH_K", &ks),
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
            "idle_keys": self.idle_keys, "idle_n": self.idle_ns, "threads": self.threads,
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

// ---------------------------------------------------------------------------
// One node

#[derive(NetworkBehaviour)]
struct Bench {
    pointer: Pointer<MemoryStore>,
    gossipsub: gossipsub::Behaviour<IdentityTransform, AllowAllSubscriptionFilter>,
    kad: kad::Behaviour<kad::store::MemoryStore>,
}

/// What a node task reports, stamped when the swarm emitted it.
#[derive(Debug)]
enum Obs {
    Updated {
        node: usize,
        at: Instant,
        key: String,
        tag: u64,
    },
    Raw {
        node: usize,
        at: Instant,
        id: MessageId,
    },
    KadFound {
        node: usize,
        at: Instant,
        key: Vec<u8>,
        tag: u64,
    },
    KadGetFailed {
        node: usize,
        key: Vec<u8>,
    },
    KadPut {
        at: Instant,
        key: Vec<u8>,
        ok: bool,
    },
    KadBootstrapped {
        node: usize,
    },
}

/// A writer that puts as fast as the node task lets it.
struct Writer {
    key: String,
    filler: String,
    started: Instant,
    until: Instant,
    puts: u64,
    errors: u64,
    done: Option<oneshot::Sender<(u64, u64, Duration)>>,
}

/// Per-node state the node task keeps next to its swarm.
struct State {
    idx: usize,
    obs: mpsc::UnboundedSender<Obs>,
    /// Forward `RecordUpdated` as observations (off for the throughput run).
    forward: bool,
    updates: u64,
    last_update: Option<Instant>,
    publish_failed: u64,
    fetch_failed: u64,
    kad_found: HashSet<QueryId>,
    kad_get_keys: HashMap<QueryId, Vec<u8>>,
    writer: Option<Writer>,
}

type Job = Box<dyn FnOnce(&mut Swarm<Bench>, &mut State) + Send>;

struct Node {
    peer: PeerId,
    addr: Multiaddr,
    jobs: mpsc::UnboundedSender<Job>,
    wire: Arc<Wire>,
    task: tokio::task::JoinHandle<()>,
}

impl Node {
    /// Runs `f` on the node's task and returns its result.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Swarm<Bench>, &mut State) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .unbounded_send(Box::new(move |s, st| {
                let _ = tx.send(f(s, st));
            }))
            .expect("node task alive");
        rx.await.expect("node task alive")
    }

    fn wire(&self) -> WireSnap {
        WireSnap {
            tx: self.wire.tx.load(Relaxed),
            rx: self.wire.rx.load(Relaxed),
            writes: self.wire.writes.load(Relaxed),
        }
    }
}

fn gossipsub_config(republish: Duration) -> gossipsub::Config {
    let max_message_bytes = Config::default().max_message_bytes();
    let max_key_bytes = Config::default().limits().max_key_bytes;
    let mut b = gossipsub::ConfigBuilder::default();
    b.validation_mode(ValidationMode::Anonymous)
        .validate_messages()
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
        .max_transmit_size(max_message_bytes + max_key_bytes + 1024)
        .heartbeat_interval(Duration::from_secs(1))
        .duplicate_cache_time(
            (republish / 4).clamp(Duration::from_millis(100), Duration::from_secs(60)),
        );
    b.build().expect("valid gossipsub config")
}

fn pointer_config(republish: Duration) -> Config {
    let mut b = Config::builder()
        .gossipsub_protocol_prefix("/pointer/meshsub")
        .republish_interval(republish);
    // For experiments only: the default is the library's.
    if let Some(fanout) = std::env::var("POINTER_BENCH_FETCH_FANOUT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        b = b.fetch_fanout(fanout);
    }
    b.build().expect("valid config")
}

/// Builds and starts a node; `store` pre-fills Pointer's store (a node
/// restarted on its records follows every key it holds) and `kad_records`
/// the kad store.
async fn start_node(
    idx: usize,
    keypair: Keypair,
    republish: Duration,
    store: MemoryStore,
    kad_records: Vec<kad::Record>,
    obs: mpsc::UnboundedSender<Obs>,
) -> Node {
    let wire = Arc::new(Wire::default());
    let w = wire.clone();
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
        .with_tokio()
        .with_other_transport(
            move |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(tcp::tokio::Transport::new(tcp::Config::default())
                    .map(move |stream, _| Counted {
                        inner: stream,
                        wire: w.clone(),
                    })
                    .upgrade(upgrade::Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            },
        )
        .expect("transport")
        .with_behaviour(|key| {
            let peer = key.public().to_peer_id();
            let mut kad_store = kad::store::MemoryStore::with_config(
                peer,
                kad::store::MemoryStoreConfig {
                    max_records: 1_000_000,
                    ..Default::default()
                },
            );
            for r in kad_records {
                kad_store.put(r).expect("kad store has room");
            }
            let mut kad_config = kad::Config::new(StreamProtocol::new("/ipfs/kad/1.0.0"));
            kad_config.set_query_timeout(Duration::from_secs(30));
            // kad learns its neighbours only when its phase starts (see
            // `Net::start_kad`), so its bootstrap dials do not change the
            // topology the other systems are measured on.
            kad_config.set_periodic_bootstrap_interval(None);
            let mut kad = kad::Behaviour::with_config(peer, kad_store, kad_config);
            kad.set_mode(Some(Mode::Server));
            Ok(Bench {
                pointer: Pointer::new(key, store, pointer_config(republish))?,
                gossipsub: gossipsub::Behaviour::new_with_subscription_filter(
                    MessageAuthenticity::Anonymous,
                    gossipsub_config(republish),
                    AllowAllSubscriptionFilter {},
                )?,
                kad,
            })
        })
        .expect("behaviour")
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().expect("addr"))
        .expect("listen");
    let addr = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    })
    .await
    .expect("node listens");
    let peer = *swarm.local_peer_id();
    let (jobs, rx) = mpsc::unbounded();
    let state = State {
        idx,
        obs,
        forward: true,
        updates: 0,
        last_update: None,
        publish_failed: 0,
        fetch_failed: 0,
        kad_found: HashSet::new(),
        kad_get_keys: HashMap::new(),
        writer: None,
    };
    let task = tokio::spawn(run_node(swarm, rx, state));
    Node {
        peer,
        addr,
        jobs,
        wire,
        task,
    }
}

async fn run_node(mut swarm: Swarm<Bench>, mut jobs: mpsc::UnboundedReceiver<Job>, mut st: State) {
    loop {
        let writing = st.writer.is_some();
        tokio::select! {
            biased;
            job = jobs.next() => match job {
                Some(job) => job(&mut swarm, &mut st),
                None => return,
            },
            event = swarm.select_next_some() => on_event(&mut swarm, &mut st, event),
            // Only when the swarm has nothing ready: one put, then let the
            // scheduler run the connection tasks now and then.
            _ = std::future::ready(()), if writing => {
                write_one(&mut swarm, &mut st);
                if st.writer.as_ref().is_some_and(|w| w.puts % 64 == 0) {
                    tokio::task::yield_now().await;
                }
            }
        }
    }
}

fn write_one(swarm: &mut Swarm<Bench>, st: &mut State) {
    let Some(w) = st.writer.as_mut() else {
        return;
    };
    let now = Instant::now();
    if now >= w.until {
        let w = st.writer.take().expect("writer");
        if let Some(done) = w.done {
            let _ = done.send((w.puts, w.errors, now - w.started));
        }
        return;
    }
    let value = format!("{:016x}{}", w.puts, w.filler);
    match swarm.behaviour_mut().pointer.put(&w.key, &value) {
        Ok(_) => w.puts += 1,
        Err(_) => w.errors += 1,
    }
}

fn tag_of(value: &[u8]) -> u64 {
    std::str::from_utf8(value.get(..16).unwrap_or_default())
        .ok()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .unwrap_or(u64::MAX)
}

fn on_event(swarm: &mut Swarm<Bench>, st: &mut State, event: SwarmEvent<BenchEvent>) {
    let SwarmEvent::Behaviour(event) = event else {
        return;
    };
    let now = Instant::now();
    match event {
        BenchEvent::Pointer(PointerEvent::RecordUpdated { record, .. }) => {
            st.updates += 1;
            st.last_update = Some(now);
            if st.forward {
                let _ = st.obs.unbounded_send(Obs::Updated {
                    node: st.idx,
                    at: now,
                    key: record.key().to_owned(),
                    tag: tag_of(record.value().as_bytes()),
                });
            }
        }
        BenchEvent::Pointer(PointerEvent::PublishFailed { .. }) => st.publish_failed += 1,
        BenchEvent::Pointer(PointerEvent::FetchFailed { .. }) => st.fetch_failed += 1,
        BenchEvent::Pointer(_) => {}
        BenchEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source,
            message_id,
            ..
        }) => {
            swarm
                .behaviour_mut()
                .gossipsub
                .report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Accept,
                );
            let _ = st.obs.unbounded_send(Obs::Raw {
                node: st.idx,
                at: now,
                id: message_id,
            });
        }
        BenchEvent::Gossipsub(_) => {}
        BenchEvent::Kad(kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        }) => match result {
            QueryResult::GetRecord(Ok(GetRecordOk::FoundRecord(PeerRecord { record, .. }))) => {
                if st.kad_found.insert(id) {
                    let _ = st.obs.unbounded_send(Obs::KadFound {
                        node: st.idx,
                        at: now,
                        key: record.key.to_vec(),
                        tag: tag_of(&record.value),
                    });
                }
                if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                    q.finish();
                }
                if step.last {
                    st.kad_found.remove(&id);
                    st.kad_get_keys.remove(&id);
                }
            }
            // The query ended (finished, not found or timed out): report a
            // get that found nothing.
            QueryResult::GetRecord(_) if step.last => {
                let found = st.kad_found.remove(&id);
                let key = st.kad_get_keys.remove(&id);
                if let (false, Some(key)) = (found, key) {
                    let _ = st
                        .obs
                        .unbounded_send(Obs::KadGetFailed { node: st.idx, key });
                }
            }
            QueryResult::Bootstrap(_) if step.last => {
                let _ = st.obs.unbounded_send(Obs::KadBootstrapped { node: st.idx });
            }
            QueryResult::PutRecord(result) => {
                let (key, ok) = match result {
                    Ok(ok) => (ok.key.to_vec(), true),
                    Err(e) => (e.key().to_vec(), false),
                };
                let _ = st.obs.unbounded_send(Obs::KadPut { at: now, key, ok });
            }
            _ => {}
        },
        BenchEvent::Kad(_) => {}
    }
}

fn kad_get(swarm: &mut Swarm<Bench>, st: &mut State, key: Vec<u8>) {
    let id = swarm.behaviour_mut().kad.get_record(RecordKey::new(&key));
    st.kad_get_keys.insert(id, key);
}

/// How often one node may retry a kad get that found nothing, per round.
const KAD_RETRIES: u32 = 3;

// ---------------------------------------------------------------------------
// A network of nodes

struct Net {
    nodes: Vec<Node>,
    neighbours: Vec<HashSet<usize>>,
    obs: mpsc::UnboundedReceiver<Obs>,
    obs_tx: mpsc::UnboundedSender<Obs>,
}

impl Net {
    fn new() -> Net {
        let (obs_tx, obs) = mpsc::unbounded();
        Net {
            nodes: Vec::new(),
            neighbours: Vec::new(),
            obs,
            obs_tx,
        }
    }

    async fn add(
        &mut self,
        keypair: Keypair,
        republish: Duration,
        store: MemoryStore,
        kad_records: Vec<kad::Record>,
    ) -> usize {
        let idx = self.nodes.len();
        let node = start_node(
            idx,
            keypair,
            republish,
            store,
            kad_records,
            self.obs_tx.clone(),
        )
        .await;
        self.nodes.push(node);
        self.neighbours.push(HashSet::new());
        idx
    }

    /// Like [`Net::add`], but the node, its connections included, runs on
    /// a thread of its own (a current-thread runtime), so its work is
    /// measurable as that thread's CPU time ([`thread_cpu`]).
    async fn add_on_own_thread(&mut self, keypair: Keypair) -> usize {
        let idx = self.nodes.len();
        let obs = self.obs_tx.clone();
        let (node_tx, node_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel::<()>();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let store = MemoryStore::new();
                let republish = Duration::from_secs(3600);
                let node = start_node(idx, keypair, republish, store, Vec::new(), obs).await;
                let Node {
                    peer,
                    addr,
                    jobs,
                    wire,
                    task,
                } = node;
                let _ = node_tx.send((peer, addr, jobs, wire));
                let _ = task.await;
                let _ = done_tx.send(());
            });
        });
        let (peer, addr, jobs, wire) = node_rx.await.expect("node thread starts");
        let task = tokio::spawn(async move {
            let _ = done_rx.await;
        });
        self.nodes.push(Node {
            peer,
            addr,
            jobs,
            wire,
            task,
        });
        self.neighbours.push(HashSet::new());
        idx
    }

    /// `a` dials `b`.
    async fn link(&mut self, a: usize, b: usize) {
        if a == b || self.neighbours[a].contains(&b) {
            return;
        }
        self.neighbours[a].insert(b);
        self.neighbours[b].insert(a);
        let ab = self.nodes[b].addr.clone();
        self.nodes[a]
            .call(move |s, _| s.dial(ab).expect("dial"))
            .await;
    }

    /// Starts kad: every node learns its neighbours' addresses and
    /// bootstraps; waits until every bootstrap has finished, so kad is
    /// measured warm. Its bootstrap dials peers beyond the neighbours:
    /// that is how kad works, and why it runs after the others.
    async fn start_kad(&mut self, timeout: Duration) -> bool {
        let addrs: Vec<(PeerId, Multiaddr)> = self
            .nodes
            .iter()
            .map(|n| (n.peer, n.addr.clone()))
            .collect();
        let mut waiting = HashSet::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let neigh: Vec<(PeerId, Multiaddr)> = self.neighbours[i]
                .iter()
                .map(|&j| addrs[j].clone())
                .collect();
            let started = node
                .call(move |sw, _| {
                    let kad = &mut sw.behaviour_mut().kad;
                    for (p, a) in neigh {
                        kad.add_address(&p, a);
                    }
                    kad.bootstrap().is_ok()
                })
                .await;
            if started {
                waiting.insert(i);
            }
        }
        let deadline = Instant::now() + timeout;
        while !waiting.is_empty() {
            match self.next_obs(deadline).await {
                Some(Obs::KadBootstrapped { node }) => {
                    waiting.remove(&node);
                }
                Some(_) => {}
                None => return false,
            }
        }
        true
    }

    /// Random connected topology: node i dials one earlier node (so the
    /// graph is connected), then every node dials `degree - 1` more.
    async fn connect_random(&mut self, rng: &mut Rng, degree: usize, from: usize) {
        let n = self.nodes.len();
        for i in from.max(1)..n {
            let j = rng.below(i);
            self.link(i, j).await;
        }
        for i in from..n {
            for _ in 1..degree {
                let j = rng.below(n);
                self.link(i, j).await;
            }
        }
    }

    async fn until_connected(&self, timeout: Duration) -> bool {
        let ids: Vec<PeerId> = self.nodes.iter().map(|n| n.peer).collect();
        let wanted: Vec<Vec<PeerId>> = self
            .neighbours
            .iter()
            .map(|s| s.iter().map(|&j| ids[j]).collect())
            .collect();
        let (nodes, wanted) = (&self.nodes, &wanted);
        poll_until(timeout, move || async move {
            for (node, want) in nodes.iter().zip(wanted) {
                let want = want.clone();
                let ok = node
                    .call(move |s, _| want.iter().all(|p| s.is_connected(p)))
                    .await;
                if !ok {
                    return false;
                }
            }
            true
        })
        .await
    }

    fn wire(&self) -> WireSnap {
        self.nodes.iter().fold(WireSnap::default(), |acc, n| {
            let w = n.wire();
            WireSnap {
                tx: acc.tx + w.tx,
                rx: acc.rx + w.rx,
                writes: acc.writes + w.writes,
            }
        })
    }

    /// Waits until `count` distinct nodes produced an observation that
    /// `arrival` maps to `(node, time)`; returns the latest time, or `None`
    /// if the deadline passed first.
    async fn all_arrived(
        &mut self,
        deadline: Instant,
        count: usize,
        mut arrival: impl FnMut(&Obs) -> Option<(usize, Instant)>,
    ) -> Option<Instant> {
        let mut seen = HashSet::new();
        let mut last = None;
        while seen.len() < count {
            let obs = self.next_obs(deadline).await?;
            if let Some((node, at)) = arrival(&obs) {
                if seen.insert(node) {
                    last = last.max(Some(at));
                }
            }
        }
        last
    }

    /// Waits until the network sends less than 64 KiB in 200 ms (or
    /// `max` passes): what it was busy with has finished.
    async fn quiet(&self, max: Duration) {
        let deadline = Instant::now() + max;
        let mut last = self.wire();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let now = self.wire();
            if now.since(last).tx < 64 * 1024 {
                return;
            }
            last = now;
        }
    }

    async fn next_obs(&mut self, deadline: Instant) -> Option<Obs> {
        tokio::time::timeout_at(deadline.into(), self.obs.next())
            .await
            .ok()
            .flatten()
    }

    /// Throws away observations left over from earlier steps.
    fn drain(&mut self) {
        while self.obs.try_recv().is_ok() {}
    }

    async fn shutdown(self) {
        // Dropping the job senders ends the node tasks and their swarms;
        // wait for them, so the next scenario starts on a quiet process.
        let tasks: Vec<_> = self
            .nodes
            .into_iter()
            .map(|n| {
                drop(n.jobs);
                n.task
            })
            .collect();
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
        // Connection tasks end once their swarm is gone.
        settle_heap(Duration::from_secs(2)).await;
    }
}

/// Waits until the live heap moves by less than 0.5 % over 100 ms (so
/// buffers of work in flight are gone), at most `max`.
async fn settle_heap(max: Duration) -> i64 {
    let deadline = Instant::now() + max;
    let mut last = heap();
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = heap();
        if (now - last).abs() * 200 < now.max(1) || Instant::now() >= deadline {
            return now;
        }
        last = now;
    }
}

/// Re-checks `cond` every 20 ms until it holds or `timeout` passes.
async fn poll_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `k` signed records with `value_bytes`-byte values, on keys
/// `"<owner>/<prefix><i>"` owned in turn by each of `owners`, all stamped now.
fn owned_records(owners: &[Keypair], k: usize, prefix: &str, value_bytes: usize) -> Vec<Record> {
    let owners: Vec<_> = owners
        .iter()
        .map(|kp| (kp.public().to_peer_id(), signing_key(kp).expect("ed25519")))
        .collect();
    let time = now_ms();
    (0..k)
        .map(|i| {
            let (peer, signer) = &owners[i % owners.len()];
            let key = OwnedKeys::key(peer, &format!("{prefix}{i}"));
            let value = value_for(i as u64, value_bytes);
            Record::sign(&key, Op::Mut, &value, time, signer)
        })
        .collect()
}

fn value_for(tag: u64, len: usize) -> String {
    let mut v = format!("{tag:016x}");
    v.extend(std::iter::repeat_n('v', len.saturating_sub(16)));
    v
}

fn raw_topic(key: &str) -> IdentTopic {
    IdentTopic::new(format!("/raw/{key}"))
}

// ---------------------------------------------------------------------------
// Statistics and report

#[derive(Debug, Default, Clone)]
struct Latencies {
    ms: Vec<f64>,
    timeouts: usize,
}

impl Latencies {
    /// One round that started at `t0` and was complete at `last`, if ever.
    fn record(&mut self, t0: Instant, last: Option<Instant>) {
        match last {
            Some(last) => self.ms.push((last.max(t0) - t0).as_secs_f64() * 1e3),
            None => self.timeouts += 1,
        }
    }

    fn pct(&self, p: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        Some(v[i.min(v.len() - 1)])
    }

    fn to_json(&self) -> Value {
        json!({
            "samples": self.ms.len(),
            "timeouts": self.timeouts,
            "p50_ms": self.pct(50.0),
            "p99_ms": self.pct(99.0),
            "max_ms": self.pct(100.0),
        })
    }

    fn cell(&self) -> String {
        match (self.pct(50.0), self.pct(99.0), self.pct(100.0)) {
            (Some(a), Some(b), Some(c)) => {
                let mut s = format!("p50 {a:.2} / p99 {b:.2} / max {c:.2} ms");
                if self.timeouts > 0 {
                    s.push_str(&format!(" ({} timed out)", self.timeouts));
                }
                s
            }
            _ => format!("TIMED OUT ({} rounds)", self.timeouts),
        }
    }
}

struct Report {
    rows: Vec<[String; 5]>,
    json: serde_json::Map<String, Value>,
}

impl Report {
    fn row(&mut self, scenario: &str, system: &str, size: &str, result: String, notes: String) {
        println!("  {scenario} | {system} | {size} | {result} | {notes}");
        self.rows.push([
            scenario.to_owned(),
            system.to_owned(),
            size.to_owned(),
            result,
            notes,
        ]);
    }

    fn section(&mut self, name: &str) -> &mut Vec<Value> {
        let v = self
            .json
            .entry(name.to_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        match v {
            Value::Array(a) => a,
            _ => unreachable!("sections are arrays"),
        }
    }
}

fn per_node(bytes: u64, nodes: usize, updates: usize) -> f64 {
    bytes as f64 / nodes as f64 / updates.max(1) as f64
}

fn kib(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

// ---------------------------------------------------------------------------
// Scenario 1 (and 4b): propagation, wire cost per update and when idle

async fn propagation(s: &Settings, n: usize, rng: &mut Rng, report: &mut Report) {
    println!("## propagation, N = {n}");
    let mut net = Net::new();
    for _ in 0..n {
        net.add(
            Keypair::generate_ed25519(),
            s.republish,
            MemoryStore::new(),
            Vec::new(),
        )
        .await;
    }
    net.connect_random(rng, s.degree, 0).await;
    let size = format!("N={n}");
    if !net.until_connected(s.setup_timeout).await {
        report.row(
            "propagation",
            "all",
            &size,
            "SETUP TIMED OUT (connect)".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    }
    let degrees: Vec<usize> = net.neighbours.iter().map(HashSet::len).collect();
    // One key per node, owned by it; every node follows every key, on
    // Pointer and on the raw gossipsub.
    let keys: Vec<String> = net
        .nodes
        .iter()
        .map(|node| OwnedKeys::key(&node.peer, "p"))
        .collect();
    for node in &net.nodes {
        let keys = keys.clone();
        node.call(move |sw, _| {
            for k in &keys {
                sw.behaviour_mut().pointer.subscribe(k).expect("key ok");
                sw.behaviour_mut()
                    .gossipsub
                    .subscribe(&raw_topic(k))
                    .expect("subscribe");
            }
        })
        .await;
    }
    let ready = until_meshes(&net, &keys, s.setup_timeout).await;
    if !ready {
        report.row(
            "propagation",
            "all",
            &size,
            "SETUP TIMED OUT (mesh)".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    }
    // Warm-up (not timed): every node writes its key once, on both systems.
    let warm_ok = warm_up(&mut net, &keys, s).await;
    if !warm_ok {
        println!("  warm-up did not reach every node within the timeout");
    }

    let writers: Vec<usize> = (0..s.rounds.max(s.kad_rounds))
        .map(|_| rng.below(n))
        .collect();
    let mut payloads: Vec<Vec<u8>> = Vec::new();

    // Pointer.
    let phase = Phase::start(&mut net);
    let mut pointer_lat = Latencies::default();
    for (round, &w) in writers.iter().take(s.rounds).enumerate() {
        let tag = 1_000_000 + round as u64;
        let key = keys[w].clone();
        let value = value_for(tag, s.value_bytes);
        let k2 = key.clone();
        let (t0, record) = net.nodes[w]
            .call(move |sw, _| {
                let t0 = Instant::now();
                let r = sw.behaviour_mut().pointer.put(&k2, &value);
                (t0, r)
            })
            .await;
        let record = record.expect("put");
        payloads.push(pointer::wire::encode_operate(&record));
        let deadline = Instant::now() + s.round_timeout;
        let last = net
            .all_arrived(deadline, n - 1, |obs| match obs {
                Obs::Updated {
                    node,
                    at,
                    key: k,
                    tag: t,
                } if *node != w && *t == tag && *k == key => Some((*node, *at)),
                _ => None,
            })
            .await;
        pointer_lat.record(t0, last);
    }
    let (pointer_secs, pointer_wire, pointer_cpu) = phase.end(&net, n, s.rounds);

    println!("  pointer done in {pointer_secs:.1} s");
    // Raw gossipsub: the same writers, the same bytes.
    let phase = Phase::start(&mut net);
    let mut raw_lat = Latencies::default();
    for (round, &w) in writers.iter().take(s.rounds).enumerate() {
        let topic = raw_topic(&keys[w]);
        let bytes = payloads[round].clone();
        let (t0, id) = net.nodes[w]
            .call(move |sw, _| {
                let t0 = Instant::now();
                let id = sw.behaviour_mut().gossipsub.publish(topic, bytes);
                (t0, id)
            })
            .await;
        let Ok(id) = id else {
            raw_lat.timeouts += 1;
            continue;
        };
        let deadline = Instant::now() + s.round_timeout;
        let last = net
            .all_arrived(deadline, n - 1, |obs| match obs {
                Obs::Raw { node, at, id: got } if *node != w && *got == id => Some((*node, *at)),
                _ => None,
            })
            .await;
        raw_lat.record(t0, last);
    }
    let (raw_secs, raw_wire, raw_cpu) = phase.end(&net, n, s.rounds);

    // Idle republish traffic (N in idle_ns), before kad adds connections.
    let idle = if s.runs("idle") && s.idle_ns.contains(&n) {
        let per_update = per_node(pointer_wire.tx, n, s.rounds);
        idle_traffic(&mut net, &keys, s, rng, per_update).await
    } else {
        None
    };

    // kad: put_record, then get_record from every other node.
    net.drain();
    println!("  raw gossipsub done in {raw_secs:.1} s");
    let kad_warm = net.start_kad(s.setup_timeout).await;
    println!("  kad bootstrapped: {kad_warm}");
    let w0 = net.wire();
    let t_phase = Instant::now();
    let mut kad_lat = Latencies::default();
    let mut kad_put_ms = Vec::new();
    let mut kad_put_failed = 0usize;
    let mut kad_get_failed = 0usize;
    let mut kad_rounds_run = 0usize;
    for (round, &w) in writers.iter().take(s.kad_rounds).enumerate() {
        // kad dials its way to a full mesh (N=100: 4,950 connections, ~3 GiB
        // of connection buffers in one process), and rounds that time out
        // cost `round_timeout` each: bound the whole phase.
        if t_phase.elapsed() > s.kad_phase_limit {
            println!(
                "  kad phase stopped after {round} rounds ({:?})",
                s.kad_phase_limit
            );
            break;
        }
        kad_rounds_run += 1;
        let tag = 2_000_000 + round as u64;
        let key = format!("{}/kad{round}", keys[w]).into_bytes();
        let value = value_for(tag, s.value_bytes).into_bytes();
        let k2 = key.clone();
        let (t0, put) = net.nodes[w]
            .call(move |sw, _| {
                let t0 = Instant::now();
                let r = sw
                    .behaviour_mut()
                    .kad
                    .put_record(kad::Record::new(k2, value), Quorum::One);
                (t0, r)
            })
            .await;
        if put.is_err() {
            kad_lat.timeouts += 1;
            continue;
        }
        let deadline = Instant::now() + s.round_timeout;
        let mut put_done = false;
        while !put_done {
            match net.next_obs(deadline).await {
                Some(Obs::KadPut { at, key: k, ok }) if k == key => {
                    // A failed quorum still stored the record locally and
                    // wherever it reached: the gets go ahead.
                    kad_put_failed += usize::from(!ok);
                    kad_put_ms.push((at - t0).as_secs_f64() * 1e3);
                    put_done = true;
                }
                Some(_) => {}
                None => break,
            }
        }
        if !put_done {
            kad_lat.timeouts += 1;
            continue;
        }
        for (i, node) in net.nodes.iter().enumerate() {
            if i != w {
                let k = key.clone();
                node.call(move |sw, st| kad_get(sw, st, k)).await;
            }
        }
        let mut seen = HashSet::new();
        let mut retries: HashMap<usize, u32> = HashMap::new();
        let mut last = t0;
        while seen.len() < n - 1 {
            match net.next_obs(deadline).await {
                Some(Obs::KadFound {
                    node,
                    at,
                    key: k,
                    tag: t,
                }) if k == key && node != w => {
                    if t == tag && seen.insert(node) {
                        last = last.max(at);
                    }
                }
                Some(Obs::KadGetFailed { node, key: k }) if k == key => {
                    // Not found: ask again, at most KAD_RETRIES times (a
                    // get that fails at once would otherwise spin).
                    let tries = retries.entry(node).or_insert(0);
                    *tries += 1;
                    kad_get_failed += 1;
                    if *tries <= KAD_RETRIES {
                        net.nodes[node].call(move |sw, st| kad_get(sw, st, k)).await;
                    }
                }
                Some(_) => {}
                None => break,
            }
        }
        if seen.len() == n - 1 {
            kad_lat.ms.push((last - t0).as_secs_f64() * 1e3);
        } else {
            kad_lat.timeouts += 1;
        }
    }
    let kad_secs = t_phase.elapsed().as_secs_f64();
    let kad_wire = net.wire().since(w0);
    let kad_connections: usize = {
        let mut total = 0;
        for node in &net.nodes {
            total += node.call(|sw, _| sw.connected_peers().count()).await;
        }
        total / 2
    };

    let payload = payloads.first().map_or(0, Vec::len);
    let ratio = match (pointer_lat.pct(50.0), raw_lat.pct(50.0)) {
        (Some(p), Some(r)) if r > 0.0 => Some(p / r),
        _ => None,
    };
    let ratio99 = match (pointer_lat.pct(99.0), raw_lat.pct(99.0)) {
        (Some(p), Some(r)) if r > 0.0 => Some(p / r),
        _ => None,
    };
    let wire_note = |w: WireSnap, rounds: usize| {
        format!(
            "sent/node/update {} ({:.1} writes)",
            kib(per_node(w.tx, n, rounds)),
            w.writes as f64 / n as f64 / rounds.max(1) as f64
        )
    };
    let cpu_note = |cpu: Option<f64>| {
        cpu.map_or(String::new(), |us| {
            format!("; process CPU/node/update {us:.0} µs")
        })
    };
    report.row(
        "1 propagation",
        "pointer",
        &size,
        pointer_lat.cell(),
        format!(
            "p50 ratio vs gossipsub {}; p99 ratio {}; {}{}",
            ratio.map_or("-".into(), |r| format!("{r:.2}x")),
            ratio99.map_or("-".into(), |r| format!("{r:.2}x")),
            wire_note(pointer_wire, s.rounds),
            cpu_note(pointer_cpu),
        ),
    );
    report.row(
        "1 propagation",
        "raw gossipsub",
        &size,
        raw_lat.cell(),
        format!("{}{}", wire_note(raw_wire, s.rounds), cpu_note(raw_cpu)),
    );
    let put_p50 = Latencies {
        ms: kad_put_ms.clone(),
        timeouts: 0,
    }
    .pct(50.0);
    report.row(
        "1 propagation",
        "kad put+get",
        &size,
        kad_lat.cell(),
        format!(
            "{kad_rounds_run} rounds; put_record p50 {} ({kad_put_failed} failed quorum); gets not found {kad_get_failed}; {}; connections {}→{}",
            put_p50.map_or("-".into(), |v| format!("{v:.2} ms")),
            wire_note(kad_wire, kad_rounds_run),
            degrees.iter().sum::<usize>() / 2,
            kad_connections
        ),
    );
    report.section("propagation").push(json!({
        "n": n,
        "degree_mean": degrees.iter().sum::<usize>() as f64 / n as f64,
        "degree_max": degrees.iter().max(),
        "payload_bytes": payload,
        "warm_up_complete": warm_ok,
        "pointer": { "latency": pointer_lat.to_json(), "phase_secs": pointer_secs,
            "wire": wire_json(pointer_wire, n, s.rounds),
            "process_cpu_us_per_node_update": pointer_cpu },
        "raw_gossipsub": { "latency": raw_lat.to_json(), "phase_secs": raw_secs,
            "wire": wire_json(raw_wire, n, s.rounds),
            "process_cpu_us_per_node_update": raw_cpu },
        "kad": { "latency": kad_lat.to_json(), "phase_secs": kad_secs,
            "put_latency": Latencies { ms: kad_put_ms, timeouts: 0 }.to_json(),
            "put_failed_quorum": kad_put_failed,
            "rounds_run": kad_rounds_run,
            "gets_not_found": kad_get_failed,
            "wire": wire_json(kad_wire, n, kad_rounds_run),
            "connections_before": degrees.iter().sum::<usize>() / 2,
            "connections_after": kad_connections, "bootstrapped": kad_warm },
        "pointer_over_gossipsub_p50": ratio,
        "pointer_over_gossipsub_p99": ratio99,
        "pointer_p50_below_kad": match (pointer_lat.pct(50.0), kad_lat.pct(50.0)) {
            (Some(p), Some(k)) => Some(p < k), _ => None },
    }));
    if let Some(idle) = idle {
        report.row(
            "4 wire, idle",
            "pointer (quiet)",
            &format!("N={n}, {} keys", s.idle_keys),
            format!(
                "{} sent/node/interval ({:.1} writes)",
                kib(idle.a_bytes),
                idle.a_writes
            ),
            format!(
                "republish interval {:?}, {} intervals; nothing else on the wire",
                s.republish, s.idle_intervals
            ),
        );
        report.row(
            "4 wire, idle",
            "pointer (1 update/s elsewhere)",
            &format!("N={n}, {} keys", s.idle_keys),
            format!("{} sent/node/interval net of the ticker", kib(idle.b_net),),
            format!(
                "{} / key / node / interval; {:.1} writes/node/interval incl. ticker",
                kib(idle.b_net / s.idle_keys.max(1) as f64),
                idle.b_writes
            ),
        );
        report.section("idle").push(idle.json);
    }
    net.shutdown().await;
}

fn wire_json(w: WireSnap, n: usize, updates: usize) -> Value {
    json!({
        "tx_bytes": w.tx, "rx_bytes": w.rx, "tcp_writes": w.writes,
        "tx_bytes_per_node_per_update": per_node(w.tx, n, updates),
        "tcp_writes_per_node_per_update": w.writes as f64 / n as f64 / updates.max(1) as f64,
    })
}

/// Waits until every node knows that each neighbour follows every key, on
/// both systems, and every raw-gossipsub mesh has a peer (Pointer's
/// mesh is not visible; it runs the same code on the same subscriptions).
async fn until_meshes(net: &Net, keys: &[String], timeout: Duration) -> bool {
    let ids: Vec<PeerId> = net.nodes.iter().map(|n| n.peer).collect();
    let (nodes, neighbours, ids) = (&net.nodes, &net.neighbours, &ids);
    poll_until(timeout, move || async move {
        for (i, node) in nodes.iter().enumerate() {
            let neigh: Vec<PeerId> = neighbours[i].iter().map(|&j| ids[j]).collect();
            let keys = keys.to_vec();
            let ok = node
                .call(move |sw, _| {
                    let b = sw.behaviour();
                    // Non-empty: a neighbour that has more than mesh_n_high
                    // peers prunes some, and backoff keeps them out for a
                    // minute, so "every neighbour in the mesh" may never hold.
                    keys.iter().all(|k| {
                        let following = b.pointer.peers_following(k);
                        let hash = raw_topic(k).hash();
                        let raw_following: Vec<PeerId> = b
                            .gossipsub
                            .all_peers()
                            .filter(|(_, t)| t.contains(&&hash))
                            .map(|(p, _)| *p)
                            .collect();
                        neigh
                            .iter()
                            .all(|p| following.contains(p) && raw_following.contains(p))
                            && b.gossipsub.mesh_peers(&hash).next().is_some()
                    })
                })
                .await;
            if !ok {
                return false;
            }
        }
        true
    })
    .await
}

/// Every node writes its key once on Pointer and on the raw gossipsub;
/// waits until every node got every write.
async fn warm_up(net: &mut Net, keys: &[String], s: &Settings) -> bool {
    let n = net.nodes.len();
    net.drain();
    let mut ids = HashSet::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let key = keys[i].clone();
        let value = value_for(i as u64, s.value_bytes);
        let id = node
            .call(move |sw, _| {
                let r = sw.behaviour_mut().pointer.put(&key, &value).expect("put");
                let bytes = pointer::wire::encode_operate(&r);
                sw.behaviour_mut().gossipsub.publish(raw_topic(&key), bytes)
            })
            .await;
        if let Ok(id) = id {
            ids.insert(id);
        }
    }
    // Pointer reports the writer's own put too; gossipsub does not.
    let (want_p, want_r) = (n * n, n * (n - 1));
    let (mut got_p, mut got_r) = (HashSet::new(), HashSet::new());
    let deadline = Instant::now() + s.setup_timeout;
    while got_p.len() < want_p || got_r.len() < want_r {
        match net.next_obs(deadline).await {
            Some(Obs::Updated { node, key, .. }) => {
                got_p.insert((node, key));
            }
            Some(Obs::Raw { node, id, .. }) if ids.contains(&id) => {
                got_r.insert((node, id));
            }
            Some(_) => {}
            None => return false,
        }
    }
    true
}

/// Scenario 4b: idle republish traffic. Every node stops following the
/// propagation keys and follows `idle_keys` keys written by random owners;
/// once every node holds them, counts the bytes of `idle_intervals`
/// republish intervals with nothing else going on.
async fn idle_traffic(
    net: &mut Net,
    old_keys: &[String],
    s: &Settings,
    rng: &mut Rng,
    per_update_bytes: f64,
) -> Option<Idle> {
    let n = net.nodes.len();
    let mut owners: Vec<usize> = (0..s.idle_keys).map(|_| rng.below(n)).collect();
    let mut keys: Vec<String> = owners
        .iter()
        .enumerate()
        .map(|(i, &o)| OwnedKeys::key(&net.nodes[o].peer, &format!("idle{i}")))
        .collect();
    // One more key, written by node 0 during the second window only.
    let tick_key = OwnedKeys::key(&net.nodes[0].peer, "tick");
    owners.insert(0, 0);
    keys.insert(0, tick_key.clone());
    for node in &net.nodes {
        let (old, keys) = (old_keys.to_vec(), keys.clone());
        node.call(move |sw, _| {
            let p = &mut sw.behaviour_mut().pointer;
            for k in &old {
                p.unsubscribe(k);
            }
            for k in &keys {
                p.subscribe(k).expect("key ok");
            }
            // The raw gossipsub leaves its topics too: idle means idle.
            for k in &old {
                sw.behaviour_mut().gossipsub.unsubscribe(&raw_topic(k));
            }
        })
        .await;
    }
    // Subscriptions travel in order on one stream: once every neighbour's
    // last one is known, all are.
    let ids: Vec<PeerId> = net.nodes.iter().map(|n| n.peer).collect();
    let last = keys.last()?.clone();
    let (nodes, neighbours, ids_ref, last_ref) = (&net.nodes, &net.neighbours, &ids, &last);
    let ok = poll_until(s.setup_timeout, move || async move {
        for (i, node) in nodes.iter().enumerate() {
            let neigh: Vec<PeerId> = neighbours[i].iter().map(|&j| ids_ref[j]).collect();
            let last = last_ref.clone();
            let ok = node
                .call(move |sw, _| {
                    let f = sw.behaviour().pointer.peers_following(&last);
                    neigh.iter().all(|p| f.contains(p))
                })
                .await;
            if !ok {
                return false;
            }
        }
        true
    })
    .await;
    if !ok {
        println!("  idle: subscriptions not known in time");
        return None;
    }
    for (i, &o) in owners.iter().enumerate() {
        let key = keys[i].clone();
        let value = value_for(3_000_000 + i as u64, s.value_bytes);
        net.nodes[o]
            .call(move |sw, _| {
                sw.behaviour_mut().pointer.put(&key, &value).expect("put");
            })
            .await;
    }
    let (nodes, all_ref) = (&net.nodes, &keys);
    let ok = poll_until(s.setup_timeout, move || async move {
        for node in nodes {
            let all = all_ref.clone();
            let held = node
                .call(move |sw, _| {
                    all.iter()
                        .all(|k| sw.behaviour().pointer.value(k).is_some())
                })
                .await;
            if !held {
                return false;
            }
        }
        true
    })
    .await;
    if !ok {
        println!("  idle: not every node holds every idle key");
        return None;
    }
    let window = s.republish * s.idle_intervals;
    // A: nothing else happens.
    let w0 = net.wire();
    let t0 = Instant::now();
    tokio::time::sleep(window).await; // the measurement window itself
    let secs_a = t0.elapsed().as_secs_f64();
    let a = net.wire().since(w0);
    // B: the same, while node 0 writes one more key once a second. Any
    // gossip arriving purges gossipsub's duplicate cache of expired ids;
    // without it, a republish of unchanged bytes is refused as `Duplicate`
    // for as long as the node hears nothing (gossipsub 0.50
    // `DuplicateCache::contains` ignores expiry), and Pointer counts
    // `Duplicate` as sent. The ticker's own cost (its updates times the
    // bytes per update measured above) is subtracted.
    let w0 = net.wire();
    let t0 = Instant::now();
    let mut ticks = 0u64;
    while t0.elapsed() < window {
        let (key, value) = (
            tick_key.clone(),
            value_for(4_000_000 + ticks, s.value_bytes),
        );
        net.nodes[0]
            .call(move |sw, _| {
                let _ = sw.behaviour_mut().pointer.put(&key, &value);
            })
            .await;
        ticks += 1;
        tokio::time::sleep(Duration::from_secs(1)).await; // the ticker's pace
    }
    let secs_b = t0.elapsed().as_secs_f64();
    let b = net.wire().since(w0);
    let per_interval = |w: WireSnap, secs: f64| {
        let intervals = secs / s.republish.as_secs_f64();
        (
            w.tx as f64 / n as f64 / intervals,
            w.writes as f64 / n as f64 / intervals,
        )
    };
    let (a_bytes, a_writes) = per_interval(a, secs_a);
    let (b_bytes, b_writes) = per_interval(b, secs_b);
    let tick_bytes = ticks as f64 * per_update_bytes / (secs_b / s.republish.as_secs_f64());
    let b_net = (b_bytes - tick_bytes).max(0.0);
    Some(Idle {
        json: json!({
            "n": n,
            "keys": s.idle_keys,
            "republish_secs": s.republish.as_secs_f64(),
            "quiet": { "window_secs": secs_a, "tx_bytes": a.tx, "tcp_writes": a.writes,
                "tx_bytes_per_node_per_interval": a_bytes,
                "tcp_writes_per_node_per_interval": a_writes },
            "with_ticker": { "window_secs": secs_b, "ticks": ticks, "tx_bytes": b.tx,
                "tcp_writes": b.writes, "tx_bytes_per_node_per_interval": b_bytes,
                "tcp_writes_per_node_per_interval": b_writes,
                "ticker_estimate_bytes_per_node_per_interval": tick_bytes,
                "net_tx_bytes_per_node_per_interval": b_net,
                "net_tx_bytes_per_key_per_node_per_interval": b_net / s.idle_keys.max(1) as f64 },
        }),
        a_bytes,
        a_writes,
        b_net,
        b_writes,
    })
}

struct Idle {
    json: Value,
    a_bytes: f64,
    a_writes: f64,
    b_net: f64,
    b_writes: f64,
}

// ---------------------------------------------------------------------------
// Scenario 2 (and 4a): catch-up of K keys, and memory per key

async fn catchup(s: &Settings, k: usize, rng: &mut Rng, report: &mut Report) {
    println!("## catch-up, K = {k}");
    const NODES: usize = 10;
    let size = format!("K={k}");
    // Ten owners sign K records (K/10 each); every node starts holding all
    // of them, in Pointer's store (so it follows every key, as a node
    // restarted on its store does) and in kad's.
    let keypairs: Vec<Keypair> = (0..NODES).map(|_| Keypair::generate_ed25519()).collect();
    let records = owned_records(&keypairs, k, "c", s.value_bytes);
    let kad_records: Vec<kad::Record> = records
        .iter()
        .map(|r| kad::Record::new(r.key().as_bytes().to_vec(), r.value().as_bytes().to_vec()))
        .collect();
    let mut net = Net::new();
    for kp in keypairs {
        let mut store = MemoryStore::with_config(pointer::MemoryStoreConfig {
            max_records: k.max(65_536),
            ..Default::default()
        });
        for r in &records {
            store.put(r.clone()).expect("store has room");
        }
        net.add(kp, Duration::from_secs(3600), store, kad_records.clone())
            .await;
    }
    net.connect_random(rng, s.degree, 0).await;
    if !net.until_connected(s.setup_timeout).await {
        report.row(
            "2 catch-up",
            "all",
            &size,
            "SETUP TIMED OUT".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    }
    // Let the network settle first: every node learns its neighbours'
    // subscriptions from their hello RPCs and catches up from them (all
    // hold the same records, so nothing changes), which with many keys
    // takes a while and would otherwise overlap the measurement.
    let sample = records[k - 1].key().to_owned();
    let net_degree0 = net.neighbours[0].len();
    let (node0, s2) = (&net.nodes[0], &sample);
    poll_until(s.setup_timeout, move || async move {
        let s2 = s2.clone();
        node0
            .call(move |sw, _| sw.behaviour().pointer.peers_following(&s2).len() >= net_degree0)
            .await
    })
    .await;
    let s2 = sample.clone();
    let known_in_net = net.nodes[0]
        .call(move |sw, _| sw.behaviour().pointer.peers_following(&s2).len())
        .await;
    net.quiet(s.setup_timeout).await;
    net.drain();

    // The fresh node dials `degree` random nodes of the network.
    let heap_before_node = heap();
    let fresh = net
        .add(
            Keypair::generate_ed25519(),
            Duration::from_secs(3600),
            MemoryStore::with_config(pointer::MemoryStoreConfig {
                max_records: k.max(65_536),
                ..Default::default()
            }),
            Vec::new(),
        )
        .await;
    let mut targets = HashSet::new();
    while targets.len() < s.degree.min(NODES) {
        targets.insert(rng.below(NODES));
    }
    for &t in &targets {
        net.link(fresh, t).await;
    }
    if !net.until_connected(s.setup_timeout).await {
        report.row(
            "2 catch-up",
            "all",
            &size,
            "SETUP TIMED OUT (fresh node)".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    }
    // Let the peers' hello RPCs arrive (bounded: with many keys they may
    // never be accepted; that is reported below).
    let (fresh_node, s3) = (&net.nodes[fresh], &sample);
    let want = targets.len();
    let hello_known = poll_until(Duration::from_secs(3), move || async move {
        let s3 = s3.clone();
        fresh_node
            .call(move |sw, _| sw.behaviour().pointer.peers_following(&s3).len() >= want)
            .await
    })
    .await;
    net.drain();

    // Pointer: subscribe to all K, time until all K records are held.
    let heap_before = settle_heap(Duration::from_secs(3)).await;
    let w0 = net.wire();
    let keys: Vec<String> = records.iter().map(|r| r.key().to_owned()).collect();
    let k2 = keys.clone();
    let t0 = net.nodes[fresh]
        .call(move |sw, _| {
            let t0 = Instant::now();
            for key in &k2 {
                sw.behaviour_mut().pointer.subscribe(key).expect("key ok");
            }
            t0
        })
        .await;
    let deadline = t0 + s.catchup_timeout;
    let mut got = HashSet::new();
    let mut last = t0;
    while got.len() < k {
        match net.next_obs(deadline).await {
            Some(Obs::Updated { node, at, key, .. }) if node == fresh => {
                if got.insert(key) {
                    last = at;
                }
            }
            Some(_) => {}
            None => break,
        }
    }
    let pointer_done = got.len() == k;
    let pointer_secs = (last - t0).as_secs_f64();
    let pointer_wire = net.wire().since(w0);
    let heap_after = settle_heap(Duration::from_secs(5)).await;
    let (fetch_failed, followers_known) = {
        let s4 = sample.clone();
        net.nodes[fresh]
            .call(move |sw, st| {
                (
                    st.fetch_failed,
                    sw.behaviour().pointer.peers_following(&s4).len(),
                )
            })
            .await
    };
    // The store alone: the same records in a fresh MemoryStore.
    let held: Vec<Record> = net.nodes[fresh]
        .call(|sw, _| {
            sw.behaviour()
                .pointer
                .records()
                .map(|r| r.into_owned())
                .collect()
        })
        .await;
    let store_bytes = {
        let h0 = heap();
        let mut store = MemoryStore::with_config(pointer::MemoryStoreConfig {
            max_records: k.max(65_536),
            ..Default::default()
        });
        for r in &held {
            store.put(r.clone()).expect("room");
        }
        let b = heap() - h0;
        drop(store);
        b
    };
    drop(held);

    // kad: get_record for the same K keys from the same fresh node.
    net.drain();
    let kad_warm = net.start_kad(s.setup_timeout).await;
    let w0 = net.wire();
    let kk: Vec<Vec<u8>> = keys.iter().map(|k| k.as_bytes().to_vec()).collect();
    let t0 = net.nodes[fresh]
        .call(move |sw, st| {
            let t0 = Instant::now();
            for key in kk {
                kad_get(sw, st, key);
            }
            t0
        })
        .await;
    let deadline = t0 + s.catchup_timeout;
    let mut kad_got = HashSet::new();
    let mut kad_failed = 0usize;
    let mut last = t0;
    while kad_got.len() < k {
        match net.next_obs(deadline).await {
            Some(Obs::KadFound { node, at, key, .. }) if node == fresh => {
                if kad_got.insert(key) {
                    last = at;
                }
            }
            Some(Obs::KadGetFailed { node, key }) if node == fresh => {
                kad_failed += 1;
                net.nodes[fresh]
                    .call(move |sw, st| kad_get(sw, st, key))
                    .await;
            }
            Some(_) => {}
            None => break,
        }
    }
    let kad_done = kad_got.len() == k;
    let kad_secs = (last - t0).as_secs_f64();
    let kad_wire = net.wire().since(w0);

    let per_key = (heap_after - heap_before) as f64 / k as f64;
    let cell = |done: bool, secs: f64, got: usize| {
        if done {
            format!("{:.3} s ({:.0} keys/s)", secs, k as f64 / secs.max(1e-9))
        } else {
            format!("TIMED OUT after {:?}: {got}/{k} keys", s.catchup_timeout)
        }
    };
    report.row(
        "2 catch-up",
        "pointer",
        &size,
        cell(pointer_done, pointer_secs, got.len()),
        format!(
            "fresh node wire sent+recv {}; fetch failures {fetch_failed}; followers known at the fresh node {followers_known}/{want} (hello {}), in the network {known_in_net}/{net_degree0}",
            kib((pointer_wire.tx + pointer_wire.rx) as f64 / 2.0),
            if hello_known { "ok" } else { "not seen" },
        ),
    );
    report.row(
        "2 catch-up",
        "kad get_record",
        &size,
        cell(kad_done, kad_secs, kad_got.len()),
        format!(
            "wire sent+recv {}; failed gets retried {kad_failed}",
            kib((kad_wire.tx + kad_wire.rx) as f64 / 2.0)
        ),
    );
    report.row(
        "4 memory, joining node",
        "pointer",
        &format!("{k} keys"),
        format!("{} / key", kib(per_key)),
        format!(
            "heap Δ of the join {}; store alone {} / key; rest {} / key (subscriptions, gossipsub topic state here and at {} peers); value {} B; node itself before subscribing {}",
            kib((heap_after - heap_before) as f64),
            kib(store_bytes as f64 / k as f64),
            kib(per_key - store_bytes as f64 / k as f64),
            targets.len(),
            s.value_bytes,
            kib((heap_before - heap_before_node) as f64),
        ),
    );
    report.section("catchup").push(json!({
        "k": k,
        "nodes": NODES,
        "fresh_node_links": targets.len(),
        "pointer": { "complete": pointer_done, "secs": pointer_secs, "records": got.len(),
            "wire_bytes": pointer_wire.tx + pointer_wire.rx, "fetch_failures": fetch_failed,
            "followers_known_at_fresh_node": followers_known, "hello_seen": hello_known,
            "followers_known_in_network_node0": known_in_net, "node0_degree": net_degree0 },
        "kad": { "complete": kad_done, "secs": kad_secs, "records": kad_got.len(),
            "failed_gets_retried": kad_failed, "wire_bytes": kad_wire.tx + kad_wire.rx,
            "bootstrapped": kad_warm },
        "pointer_faster_than_kad": pointer_done && (!kad_done || pointer_secs < kad_secs),
    }));
    report.section("memory").push(json!({
        "keys": k,
        "heap_delta_bytes": heap_after - heap_before,
        "per_key_bytes": per_key,
        "store_per_key_bytes": store_bytes as f64 / k as f64,
        "rest_per_key_bytes": per_key - store_bytes as f64 / k as f64,
        "value_bytes": s.value_bytes,
        "per_key_beyond_value_bytes": per_key - s.value_bytes as f64,
        "fresh_node_links": targets.len(),
        "node_before_subscribing_bytes": heap_before - heap_before_node,
    }));
    net.shutdown().await;
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------
// Scenario 4a: memory of one node following K keys, measured alone

/// Heap of a `Pointer` that holds and follows `k` records, measured with
/// nothing else running: first the store filled with the records (moved in,
/// so only the store's own overhead and key copies are new), then
/// `Pointer::new` on it, which follows every held key (subscriptions,
/// gossipsub topic state, Trickle). Without peers: per-peer topic state is
/// in the catch-up rows.
async fn memory_alone(s: &Settings, report: &mut Report) {
    println!("## memory");
    let mut points = Vec::new();
    for &k in &s.mem_ks {
        let keypair = Keypair::generate_ed25519();
        let records = owned_records(std::slice::from_ref(&keypair), k, "m", s.value_bytes);
        // What the records themselves own on the heap (key and value
        // strings), measured by copying them.
        let h = heap();
        let copy = records.clone();
        let record_bytes = heap() - h - (copy.capacity() * std::mem::size_of::<Record>()) as i64;
        drop(copy);
        let base = settle_heap(Duration::from_secs(2)).await;
        let mut store = MemoryStore::with_config(pointer::MemoryStoreConfig {
            max_records: k.max(65_536),
            ..Default::default()
        });
        for r in records {
            store.put(r).expect("room");
        }
        let with_store = heap();
        let pointer = Pointer::new(&keypair, store, pointer_config(s.republish)).expect("pointer");
        let with_pointer = heap();
        // The records were allocated before `base`: add what they own.
        let record_per_key = record_bytes as f64 / k as f64;
        let store_per_key = (with_store - base) as f64 / k as f64 + record_per_key;
        let follow_per_key = (with_pointer - with_store) as f64 / k as f64;
        drop(pointer);
        points.push((k, with_pointer - base + record_bytes));
        report.row(
            "4 memory, one node alone",
            "pointer",
            &format!("{k} keys"),
            format!("{} / key", kib(store_per_key + follow_per_key)),
            format!(
                "store {} / key (of which the record's own key+value strings {}); following (subscribed set, gossipsub topic, Trickle) {} / key; beyond the {} B value: {} / key",
                kib(store_per_key),
                kib(record_per_key),
                kib(follow_per_key),
                s.value_bytes,
                kib(store_per_key + follow_per_key - s.value_bytes as f64)
            ),
        );
        report.section("memory_alone").push(json!({
            "keys": k,
            "store_bytes": with_store - base + record_bytes,
            "follow_bytes": with_pointer - with_store,
            "per_key_bytes": store_per_key + follow_per_key,
            "store_per_key_bytes": store_per_key,
            "record_strings_per_key_bytes": record_per_key,
            "follow_per_key_bytes": follow_per_key,
            "value_bytes": s.value_bytes,
            "per_key_beyond_value_bytes": store_per_key + follow_per_key - s.value_bytes as f64,
        }));
    }
    if let [(k1, b1), .., (k2, b2)] = points[..] {
        if k2 > k1 {
            let inc = (b2 - b1) as f64 / (k2 - k1) as f64;
            report.row(
                "4 memory, one node alone",
                "pointer",
                &format!("{k1}→{k2} keys"),
                format!("{} / key increment", kib(inc)),
                String::new(),
            );
            report
                .json
                .insert("memory_increment_per_key_bytes".into(), json!(inc));
        }
    }
}

// ---------------------------------------------------------------------------
// Scenario 3: throughput of one writer

async fn throughput(s: &Settings, report: &mut Report) {
    println!("## throughput");
    let mut net = Net::new();
    // Writer and receiver each on a thread of their own: on this 2-core
    // machine, one core each, and the receiver's CPU time is its own.
    let w = net.add_on_own_thread(Keypair::generate_ed25519()).await;
    let r = net.add_on_own_thread(Keypair::generate_ed25519()).await;
    net.link(w, r).await;
    let key = OwnedKeys::key(&net.nodes[w].peer, "tp");
    if !net.until_connected(s.setup_timeout).await {
        report.row(
            "3 throughput",
            "pointer",
            "1 writer",
            "SETUP TIMED OUT".into(),
            String::new(),
        );
        return;
    }
    for i in [w, r] {
        let key = key.clone();
        net.nodes[i]
            .call(move |sw, st| {
                st.forward = false;
                sw.behaviour_mut().pointer.subscribe(&key).expect("key ok")
            })
            .await;
    }
    let (pw, pr) = (net.nodes[w].peer, net.nodes[r].peer);
    let (a, b, k2) = (&net.nodes[w], &net.nodes[r], &key);
    let ok = poll_until(s.setup_timeout, move || {
        let (ka, kb) = (k2.clone(), k2.clone());
        async move {
            a.call(move |sw, _| sw.behaviour().pointer.peers_following(&ka).contains(&pr))
                .await
                && b.call(move |sw, _| sw.behaviour().pointer.peers_following(&kb).contains(&pw))
                    .await
        }
    })
    .await;
    if !ok {
        report.row(
            "3 throughput",
            "pointer",
            "1 writer",
            "SETUP TIMED OUT".into(),
            String::new(),
        );
        return;
    }
    let (before, cpu_before) = net.nodes[r].call(|_, st| (st.updates, thread_cpu())).await;
    let (tx, rx) = oneshot::channel();
    let filler: String = std::iter::repeat_n('t', s.value_bytes.saturating_sub(16)).collect();
    let secs = s.write_secs;
    let k3 = key.clone();
    let t0 = net.nodes[w]
        .call(move |_, st| {
            let now = Instant::now();
            st.writer = Some(Writer {
                key: k3,
                filler,
                started: now,
                until: now + Duration::from_secs_f64(secs),
                puts: 0,
                errors: 0,
                done: Some(tx),
            });
            now
        })
        .await;
    let (puts, errors, elapsed) =
        tokio::time::timeout(Duration::from_secs_f64(secs) + s.setup_timeout, rx)
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or((0, 0, Duration::ZERO));
    // The receiver drains what is still queued: wait until its count stops
    // moving for half a second (bounded).
    let mut last_count = u64::MAX;
    let drain_deadline = Instant::now() + s.setup_timeout;
    let (mut count, mut last_at) = (0, None);
    while Instant::now() < drain_deadline {
        let (c, at) = net.nodes[r]
            .call(|_, st| (st.updates, st.last_update))
            .await;
        (count, last_at) = (c, at);
        if c == last_count {
            break;
        }
        last_count = c;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let applied = count - before;
    let recv_secs = last_at.map_or(0.0, |at| (at - t0).as_secs_f64());
    // The drain loop above waited half a second past the last update; the
    // receiver idles then, so its CPU time is the work of the updates.
    let cpu_after = net.nodes[r].call(|_, _| thread_cpu()).await;
    let recv_cpu = cpu_before
        .zip(cpu_after)
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64());
    let per_core = recv_cpu.map(|cpu| applied as f64 / cpu.max(1e-9));
    let publish_failed = net.nodes[w].call(|_, st| st.publish_failed).await;
    let writer_rate = puts as f64 / elapsed.as_secs_f64().max(1e-9);
    let recv_rate = applied as f64 / recv_secs.max(1e-9);
    let published = puts.saturating_sub(publish_failed);
    report.row(
        "3 throughput",
        "pointer writer",
        "1 key, 2 nodes",
        format!("{writer_rate:.0} puts/s"),
        format!(
            "{puts} puts in {:.2} s; PublishFailed {publish_failed} (so {published} published); put errors {errors}",
            elapsed.as_secs_f64()
        ),
    );
    report.row(
        "3 throughput",
        "pointer receiver",
        "1 key, 2 nodes",
        format!("{recv_rate:.0} updates/s applied"),
        format!(
            "{applied} applied (signature verified) in {recv_secs:.2} s from the first put to the last applied; {:.1}% of published; receiver thread CPU {}",
            100.0 * applied as f64 / published.max(1) as f64,
            match (recv_cpu, per_core) {
                (Some(cpu), Some(rate)) => format!(
                    "{cpu:.2} s = {rate:.0} updates per CPU-second ({:.1} µs each)",
                    1e6 / rate.max(1e-9)
                ),
                _ => "unknown".into(),
            }
        ),
    );
    report.section("throughput").push(json!({
        "write_secs": elapsed.as_secs_f64(), "puts": puts, "put_errors": errors,
        "publish_failed": publish_failed, "writer_puts_per_sec": writer_rate,
        "receiver_applied": applied, "receiver_secs": recv_secs,
        "receiver_applied_per_sec": recv_rate,
        "receiver_cpu_secs": recv_cpu, "receiver_applied_per_cpu_sec": per_core,
        "nodes_on_own_threads": true,
    }));
    net.shutdown().await;
}

// ---------------------------------------------------------------------------

/// The CPU time a Linux `schedstat` file reports (its first field, in ns).
fn schedstat(path: &std::path::Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time all threads of this process have used.
fn process_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        // A thread may end between listing and reading: skip it.
        total += schedstat(&task.ok()?.path().join("schedstat")).unwrap_or_default();
    }
    Some(total)
}

/// CPU time the calling thread has used, if known.
fn thread_cpu() -> Option<Duration> {
    schedstat("/proc/thread-self/schedstat".as_ref())
}

/// The start of a timed phase of the propagation scenario.
struct Phase {
    started: Instant,
    wire: WireSnap,
    cpu: Option<Duration>,
}

impl Phase {
    /// Drops stale observations, then notes the clock, the wire and the
    /// process CPU.
    fn start(net: &mut Net) -> Phase {
        net.drain();
        Phase {
            wire: net.wire(),
            cpu: process_cpu(),
            started: Instant::now(),
        }
    }

    /// Seconds, wire traffic and process CPU in µs per node and update
    /// (`n` nodes, `rounds` updates) since the start.
    fn end(&self, net: &Net, n: usize, rounds: usize) -> (f64, WireSnap, Option<f64>) {
        let secs = self.started.elapsed().as_secs_f64();
        let wire = net.wire().since(self.wire);
        let cpu = process_cpu()
            .zip(self.cpu)
            .and_then(|(now, before)| now.checked_sub(before))
            .map(|spent| spent.as_secs_f64() * 1e6 / (n * rounds.max(1)) as f64);
        (secs, wire, cpu)
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
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
        if s.runs("memory") {
            memory_alone(&s, &mut report).await;
        }
        if s.runs("catchup") {
            for &k in &s.ks {
                catchup(&s, k, &mut rng, &mut report).await;
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
