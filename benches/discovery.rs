//! What discovery through libp2p-kad costs: DHT messages per advertised and
//! looked-up key, the cost of starting to follow many keys, and the time a
//! fresh node's `get` takes to find a follower it is not connected to.
//!
//! `cargo bench --bench discovery` (about a minute). In-process swarms on
//! the memory transport, on a sparse random graph (each node links to two
//! earlier ones). Messages are the Kademlia requests the nodes received
//! (kad's `InboundRequest` events), each answered by one response.
//! Environment: `POINTER_DISCOVERY_N=20`, `POINTER_DISCOVERY_K=10000`,
//! `POINTER_DISCOVERY_RATE=500`, `POINTER_DISCOVERY_GETS=50`.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::kad::{self, InboundRequest};
use libp2p::swarm::SwarmEvent;
use libp2p::Swarm;
use libp2p_swarm_test::SwarmExt;
use pointer::discovery::Kad;
use pointer::{Behaviour, Config, Event, GetOutcome, MemoryStore, Open, QueryId};

type Node = Swarm<Behaviour<MemoryStore, Kad>>;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Kademlia requests received, by kind, over all nodes.
#[derive(Default, Clone)]
struct Counts(BTreeMap<&'static str, u64>);

impl Counts {
    fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn since(&self, before: &Counts) -> Counts {
        let mut d = self.clone();
        for (k, v) in d.0.iter_mut() {
            *v -= before.0.get(k).copied().unwrap_or(0);
        }
        d
    }

    fn describe(&self) -> String {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        parts.join(", ")
    }
}

struct Net {
    nodes: Vec<Node>,
    counts: Counts,
    last_kad: Instant,
    finished: BTreeMap<(usize, QueryId), GetOutcome>,
}

impl Net {
    /// Drives every node until `done` holds or `limit` passes; returns
    /// whether `done` held.
    async fn run(&mut self, limit: Duration, mut done: impl FnMut(&Net) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if done(self) {
                return true;
            }
            let next = poll_fn(|cx| {
                for (i, node) in self.nodes.iter_mut().enumerate() {
                    if let Poll::Ready(Some(e)) = node.poll_next_unpin(cx) {
                        return Poll::Ready((i, e));
                    }
                }
                Poll::Pending
            });
            // Quiet spells end the wait too: `done` may be about silence.
            match tokio::time::timeout(Duration::from_millis(50), next).await {
                Ok((i, event)) => self.on_event(i, event),
                Err(_) if tokio::time::Instant::now() >= deadline => return done(self),
                Err(_) => {}
            }
        }
    }

    fn on_event(&mut self, i: usize, event: SwarmEvent<Event>) {
        let SwarmEvent::Behaviour(event) = event else {
            return;
        };
        match event {
            Event::Kad(e) => {
                self.last_kad = Instant::now();
                if let kad::Event::InboundRequest { request } = *e {
                    let kind = match request {
                        InboundRequest::FindNode { .. } => "FIND_NODE",
                        InboundRequest::GetProvider { .. } => "GET_PROVIDERS",
                        InboundRequest::AddProvider { .. } => "ADD_PROVIDER",
                        InboundRequest::GetRecord { .. } => "GET_VALUE",
                        InboundRequest::PutRecord { .. } => "PUT_VALUE",
                    };
                    *self.counts.0.entry(kind).or_default() += 1;
                }
            }
            Event::GetFinished { id, outcome, .. } => {
                self.finished.insert((i, id), outcome);
            }
            _ => {}
        }
    }

    /// Drives until no Kademlia event for `quiet`.
    async fn settle(&mut self, quiet: Duration, limit: Duration) {
        self.last_kad = Instant::now();
        self.run(limit, |net| net.last_kad.elapsed() >= quiet).await;
    }
}

async fn node(rate: u32) -> Node {
    let config = Config::builder()
        .discovery_rate(rate)
        .build()
        .expect("valid config");
    let mut swarm = Swarm::new_ephemeral_tokio(|key| {
        let kad = Kad::new(key.public().to_peer_id());
        Behaviour::with_validator_and_discovery(&key, MemoryStore::new(), config, Open, kad)
            .expect("valid config")
    });
    swarm.listen().with_memory_addr_external().await;
    swarm
}

async fn link(nodes: &mut [Node], a: usize, b: usize) {
    for (from, to) in [(a, b), (b, a)] {
        let peer = *nodes[to].local_peer_id();
        let addrs: Vec<_> = nodes[to].external_addresses().cloned().collect();
        let kad = nodes[from].behaviour_mut().discovery_mut().behaviour_mut();
        for addr in addrs {
            kad.add_address(&peer, addr);
        }
    }
    let (left, right) = nodes.split_at_mut(b.max(a));
    left[a.min(b)].connect(&mut right[0]).await;
}

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n = env("POINTER_DISCOVERY_N", 20);
    let k = env("POINTER_DISCOVERY_K", 10_000);
    let rate = env("POINTER_DISCOVERY_RATE", 500) as u32;
    let gets = env("POINTER_DISCOVERY_GETS", 50);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(node(rate).await);
    }
    for i in 1..n {
        let first = rng.below(i);
        link(&mut nodes, first, i).await;
        if i > 1 {
            let second = (first + 1 + rng.below(i - 1)) % i;
            link(&mut nodes, second, i).await;
        }
    }
    let mut net = Net {
        nodes,
        counts: Counts::default(),
        last_kad: Instant::now(),
        finished: BTreeMap::new(),
    };
    println!("pointer discovery benchmark: {n} nodes, sparse graph (2 links each)");
    net.settle(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    println!("start-up (kad bootstrap): {}", net.counts.describe());

    // One key, followed by a node none of whose neighbours follows it: an
    // advertisement and a lookup.
    let before = net.counts.clone();
    net.nodes[0]
        .behaviour_mut()
        .subscribe("one")
        .expect("key ok");
    net.settle(Duration::from_secs(1), Duration::from_secs(30))
        .await;
    let one = net.counts.since(&before);
    println!(
        "following 1 key: {} messages ({})",
        one.total(),
        one.describe()
    );
    let provide = one.0.get("ADD_PROVIDER").copied().unwrap_or(0)
        + one.0.get("FIND_NODE").copied().unwrap_or(0);
    let lookup = one.0.get("GET_PROVIDERS").copied().unwrap_or(0);
    // At rest kad re-publishes each advertisement every 12 h (its
    // provider_publication_interval); a key with followers connected costs
    // no lookups; one without is looked up again after discovery_interval
    // (5 min), backing off to 64 times that (320 min) while lookups find
    // nobody.
    let per_hour_followed = provide as f64 / 12.0;
    let per_hour_lonely = per_hour_followed + lookup as f64 * 60.0 / 320.0;
    let first_hour_lonely = per_hour_followed + lookup as f64 * 4.0;
    println!(
        "at rest, per followed key and hour: {per_hour_followed:.1} messages with a follower connected; without one {first_hour_lonely:.1} in the first hour, {per_hour_lonely:.1} once backed off (computed from the figures above and the intervals)"
    );

    // Starting to follow K keys on one node.
    let before = net.counts.clone();
    let started = Instant::now();
    for i in 0..k {
        net.nodes[1]
            .behaviour_mut()
            .subscribe(&format!("bulk/{i}"))
            .expect("key ok");
    }
    net.settle(Duration::from_secs(2), Duration::from_secs(3600))
        .await;
    let took = started.elapsed().saturating_sub(Duration::from_secs(2));
    let bulk = net.counts.since(&before);
    println!(
        "following {k} keys at discovery_rate {rate}/s: {:.1} s, {} messages ({:.1} per key: {})",
        took.as_secs_f64(),
        bulk.total(),
        bulk.total() as f64 / k as f64,
        bulk.describe()
    );

    // Fresh gets: a random writer puts a new key, a random other node that
    // has never seen it gets it.
    let mut times = Vec::new();
    let mut found = 0;
    for g in 0..gets {
        let w = rng.below(n);
        let r = (w + 1 + rng.below(n - 1)) % n;
        let key = format!("fresh/{g}");
        net.nodes[w].behaviour_mut().put(&key, "v").expect("put");
        let t = Instant::now();
        let id = net.nodes[r].behaviour_mut().get(&key);
        net.run(Duration::from_secs(30), |net| {
            net.finished.contains_key(&(r, id))
        })
        .await;
        times.push(t.elapsed());
        if matches!(net.finished.get(&(r, id)), Some(GetOutcome::Found(_))) {
            found += 1;
        }
    }
    times.sort();
    println!(
        "fresh get of a key written elsewhere: {found}/{gets} found; p50 {:.1} ms, p99 {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
}
