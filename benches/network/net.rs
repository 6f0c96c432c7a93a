//! A network of benchmark nodes, the statistics and the report, and CPU
//! time accounting.

use super::*;

// ---------------------------------------------------------------------------
// A network of nodes

pub(crate) struct Net {
    pub(crate) nodes: Vec<Node>,
    pub(crate) neighbours: Vec<HashSet<usize>>,
    pub(crate) obs: mpsc::UnboundedReceiver<Obs>,
    pub(crate) obs_tx: mpsc::UnboundedSender<Obs>,
    /// `topic_shards` of the nodes added from now on (0: a topic per key).
    pub(crate) shards: u16,
}

impl Net {
    pub(crate) fn new() -> Net {
        let (obs_tx, obs) = mpsc::unbounded();
        Net {
            nodes: Vec::new(),
            neighbours: Vec::new(),
            obs,
            obs_tx,
            shards: 0,
        }
    }

    pub(crate) async fn add(
        &mut self,
        keypair: Keypair,
        republish: Duration,
        store: impl Into<BenchStore>,
        kad_records: Vec<kad::Record>,
    ) -> usize {
        let idx = self.nodes.len();
        let node = start_node(
            idx,
            keypair,
            (republish, self.shards),
            store.into(),
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
    pub(crate) async fn add_on_own_thread(&mut self, keypair: Keypair) -> usize {
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
                let store = MemoryStore::new().into();
                let republish = Duration::from_secs(3600);
                let node = start_node(idx, keypair, (republish, 0), store, Vec::new(), obs).await;
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
    pub(crate) async fn link(&mut self, a: usize, b: usize) {
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

    /// Closes every connection between `a` and `b`; waits (at most
    /// `timeout`) until both sides see it closed.
    pub(crate) async fn unlink(&mut self, a: usize, b: usize, timeout: Duration) -> bool {
        self.neighbours[a].remove(&b);
        self.neighbours[b].remove(&a);
        let (pa, pb) = (self.nodes[a].peer, self.nodes[b].peer);
        self.nodes[a]
            .call(move |s, _| {
                let _ = s.disconnect_peer_id(pb);
            })
            .await;
        let nodes = &self.nodes;
        poll_until(timeout, || async {
            let a_sees = nodes[a].call(move |s, _| s.is_connected(&pb)).await;
            let b_sees = nodes[b].call(move |s, _| s.is_connected(&pa)).await;
            !a_sees && !b_sees
        })
        .await
    }

    /// Starts kad: every node learns its neighbours' addresses and
    /// bootstraps; waits until every bootstrap has finished, so kad is
    /// measured warm. Its bootstrap dials peers beyond the neighbours:
    /// that is how kad works, and why it runs after the others.
    pub(crate) async fn start_kad(&mut self, timeout: Duration) -> bool {
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
    pub(crate) async fn connect_random(&mut self, rng: &mut Rng, degree: usize, from: usize) {
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

    /// Random graph in which every node has `degree` neighbours (a few may
    /// end one short): nodes in random order each link to random nodes
    /// that still have room, until they have `degree` or none is left.
    /// Per-node costs then compare across N; `connect_random`'s mean
    /// degree grows with N.
    pub(crate) async fn connect_regular(&mut self, rng: &mut Rng, degree: usize) {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.below(i + 1));
        }
        for &i in &order {
            while self.neighbours[i].len() < degree {
                let room: Vec<usize> = (0..n)
                    .filter(|&j| {
                        j != i
                            && !self.neighbours[i].contains(&j)
                            && self.neighbours[j].len() < degree
                    })
                    .collect();
                if room.is_empty() {
                    break;
                }
                let j = room[rng.below(room.len())];
                self.link(i, j).await;
            }
        }
    }

    pub(crate) async fn until_connected(&self, timeout: Duration) -> bool {
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

    pub(crate) fn wire(&self) -> WireSnap {
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
    pub(crate) async fn all_arrived(
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
    pub(crate) async fn quiet(&self, max: Duration) {
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

    pub(crate) async fn next_obs(&mut self, deadline: Instant) -> Option<Obs> {
        tokio::time::timeout_at(deadline.into(), self.obs.next())
            .await
            .ok()
            .flatten()
    }

    /// Throws away observations left over from earlier steps.
    pub(crate) fn drain(&mut self) {
        while self.obs.try_recv().is_ok() {}
    }

    pub(crate) async fn shutdown(self) {
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
pub(crate) async fn settle_heap(max: Duration) -> i64 {
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
pub(crate) async fn poll_until<F, Fut>(timeout: Duration, mut cond: F) -> bool
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
pub(crate) fn owned_records(
    owners: &[Keypair],
    k: usize,
    prefix: &str,
    value_bytes: usize,
) -> Vec<Record> {
    owned_records_at(owners, k, prefix, value_bytes, now_ms())
}

/// [`owned_records`] dated `time` (milliseconds since the epoch).
pub(crate) fn owned_records_at(
    owners: &[Keypair],
    k: usize,
    prefix: &str,
    value_bytes: usize,
    time: i64,
) -> Vec<Record> {
    let owners: Vec<_> = owners
        .iter()
        .map(|kp| (kp.public().to_peer_id(), signing_key(kp).expect("ed25519")))
        .collect();
    (0..k)
        .map(|i| {
            let (peer, signer) = &owners[i % owners.len()];
            let key = OwnedKeys::key(peer, &format!("{prefix}{i}"));
            let value = value_for(i as u64, value_bytes);
            Record::sign(&key, Op::Mut, &value, time, signer)
        })
        .collect()
}

pub(crate) fn value_for(tag: u64, len: usize) -> String {
    let mut v = format!("{tag:016x}");
    v.extend(std::iter::repeat_n('v', len.saturating_sub(16)));
    v
}

pub(crate) fn raw_topic(key: &str) -> IdentTopic {
    IdentTopic::new(format!("/raw/{key}"))
}

// ---------------------------------------------------------------------------
// Statistics and report

#[derive(Debug, Default, Clone)]
pub(crate) struct Latencies {
    pub(crate) ms: Vec<f64>,
    pub(crate) timeouts: usize,
}

impl Latencies {
    /// One round that started at `t0` and was complete at `last`, if ever.
    pub(crate) fn record(&mut self, t0: Instant, last: Option<Instant>) {
        match last {
            Some(last) => self.ms.push((last.max(t0) - t0).as_secs_f64() * 1e3),
            None => self.timeouts += 1,
        }
    }

    pub(crate) fn pct(&self, p: f64) -> Option<f64> {
        if self.ms.is_empty() {
            return None;
        }
        let mut v = self.ms.clone();
        v.sort_by(|a, b| a.total_cmp(b));
        let i = ((p / 100.0) * (v.len() - 1) as f64).round() as usize;
        Some(v[i.min(v.len() - 1)])
    }

    pub(crate) fn to_json(&self) -> Value {
        json!({
            "samples": self.ms.len(),
            "timeouts": self.timeouts,
            "p50_ms": self.pct(50.0),
            "p99_ms": self.pct(99.0),
            "max_ms": self.pct(100.0),
        })
    }

    pub(crate) fn cell(&self) -> String {
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

pub(crate) struct Report {
    pub(crate) rows: Vec<[String; 5]>,
    pub(crate) json: serde_json::Map<String, Value>,
}

impl Report {
    pub(crate) fn row(
        &mut self,
        scenario: &str,
        system: &str,
        size: &str,
        result: String,
        notes: String,
    ) {
        println!("  {scenario} | {system} | {size} | {result} | {notes}");
        self.rows.push([
            scenario.to_owned(),
            system.to_owned(),
            size.to_owned(),
            result,
            notes,
        ]);
    }

    pub(crate) fn section(&mut self, name: &str) -> &mut Vec<Value> {
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

pub(crate) fn per_node(bytes: u64, nodes: usize, updates: usize) -> f64 {
    bytes as f64 / nodes as f64 / updates.max(1) as f64
}

pub(crate) fn kib(b: f64) -> String {
    if b.abs() >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / 1024.0 / 1024.0)
    } else if b.abs() >= 1024.0 {
        format!("{:.1} KiB", b / 1024.0)
    } else {
        format!("{b:.0} B")
    }
}

// ---------------------------------------------------------------------------

/// The CPU time a Linux `schedstat` file reports (its first field, in ns).
pub(crate) fn schedstat(path: &std::path::Path) -> Option<Duration> {
    let stat = std::fs::read_to_string(path).ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// CPU time all threads of this process have used.
pub(crate) fn process_cpu() -> Option<Duration> {
    let mut total = Duration::ZERO;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        // A thread may end between listing and reading: skip it.
        total += schedstat(&task.ok()?.path().join("schedstat")).unwrap_or_default();
    }
    Some(total)
}

/// CPU time of the whole process, threads that have ended included (the
/// verification threads of a burst live a few milliseconds, and
/// [`process_cpu`] sees only live ones), from `/proc/self/stat` in clock
/// ticks of 10 ms (Linux's `USER_HZ` is 100).
pub(crate) fn process_cpu_with_ended() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, utime 14 and stime 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i - 3)?.parse::<u64>().ok();
    Some(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// CPU time the calling thread has used, if known.
pub(crate) fn thread_cpu() -> Option<Duration> {
    schedstat("/proc/thread-self/schedstat".as_ref())
}

/// The start of a timed phase of the propagation scenario.
pub(crate) struct Phase {
    pub(crate) started: Instant,
    pub(crate) wire: WireSnap,
    pub(crate) cpu: Option<Duration>,
}

impl Phase {
    /// Drops stale observations, then notes the clock, the wire and the
    /// process CPU.
    pub(crate) fn start(net: &mut Net) -> Phase {
        net.drain();
        Phase {
            wire: net.wire(),
            cpu: process_cpu(),
            started: Instant::now(),
        }
    }

    /// Seconds, wire traffic and process CPU in µs per node and update
    /// (`n` nodes, `rounds` updates) since the start.
    pub(crate) fn end(&self, net: &Net, n: usize, rounds: usize) -> (f64, WireSnap, Option<f64>) {
        let secs = self.started.elapsed().as_secs_f64();
        let wire = net.wire().since(self.wire);
        let cpu = process_cpu()
            .zip(self.cpu)
            .and_then(|(now, before)| now.checked_sub(before))
            .map(|spent| spent.as_secs_f64() * 1e6 / (n * rounds.max(1)) as f64);
        (secs, wire, cpu)
    }
}

pub(crate) fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}
