//! Scenario 5 (many keys): one node follows many keys. Node A holds K
//! records; a fresh node B follows all K and dials A. Measured: B's
//! catch-up, the heap both nodes hold per key afterwards, the latency of
//! one update once both follow K keys, the CPU the two use at rest, and a
//! reconnect: the two are cut apart, A changes one key, and they dial
//! again (the time until B holds the change, and the bytes the reconnect
//! costs until the network is quiet).
//!
//! Each K runs with a topic per key (the seed's wire) and with the keys
//! sharded over `POINTER_BENCH_SCALE_SHARDS` topics (default 0,256; 0 is a
//! topic per key).
//!
//! `POINTER_BENCH_ONLY=scale POINTER_BENCH_SCALE_K=1000,10000,100000
//! cargo bench --all-features --bench network`; `POINTER_BENCH_SCALE_IDLE_SECS`
//! sets the idle window (default 10 s), `POINTER_BENCH_SCALE_STORE` the
//! store both nodes use (`memory`, the default, or `redb`: a file each in a
//! temporary directory), `POINTER_BENCH_SCALE_AGE_SECS` how long ago A's
//! records were written (default 3,600: an established data set, whose
//! records are settled, spec §11; 0 dates them now), and
//! `POINTER_BENCH_SCALE_PEERS` how many followers share the keys in the
//! end (default 1, only B; each further one follows every key and dials
//! the nodes before it, and the heap per key and node is read again over
//! all of them).

use super::*;

/// Updates timed once both nodes follow all K keys.
const UPDATES: usize = 20;
/// The window over which the two nodes' CPU at rest is read, in seconds
/// (`POINTER_BENCH_SCALE_IDLE_SECS`; a window longer than the republish
/// interval of 60 s includes a republish firing).
fn idle_window() -> Duration {
    Duration::from_secs(env_num("POINTER_BENCH_SCALE_IDLE_SECS", 10))
}

/// The store the nodes run on: `memory` or `redb`.
fn store_kind() -> String {
    std::env::var("POINTER_BENCH_SCALE_STORE").unwrap_or_else(|_| "memory".into())
}

/// A's records, in chunks, so that an on-disk store commits a chunk per
/// transaction rather than a record.
fn filled_store(kind: &str, k: usize, records: Vec<Record>) -> BenchStore {
    let mut store = BenchStore::empty(kind, k.max(65_536));
    let mut records = records.into_iter().peekable();
    while records.peek().is_some() {
        let chunk: Vec<Record> = records.by_ref().take(10_000).collect();
        store.put_many(chunk).expect("store has room");
    }
    store
}

pub(crate) async fn scale(s: &Settings, k: usize, shards: u16, report: &mut Report) {
    println!("## scale, K = {k}, shards {shards}");
    let topics = match shards {
        0 => "a topic per key".to_owned(),
        n => format!("{n} shards"),
    };
    let kind = store_kind();
    let age_ms = 1000 * env_num::<i64>("POINTER_BENCH_SCALE_AGE_SECS", 3600);
    let size = format!("K={k}, 2 nodes, {topics}, {kind} store, records {age_ms} ms old");
    // The library's republish interval, not the shorter one the idle
    // scenario uses: this is a node as a user runs it.
    let republish = Config::builder()
        .build()
        .expect("the defaults are valid")
        .republish_interval();
    let owner = Keypair::generate_ed25519();
    let written = now_ms() - age_ms;
    let records = owned_records_at(std::slice::from_ref(&owner), k, "s", s.value_bytes, written);
    let keys: Vec<String> = records.iter().map(|r| r.key().to_owned()).collect();
    let heap_empty = settle_heap(Duration::from_secs(2)).await;
    let mut net = Net::new();
    net.shards = shards;
    let store = filled_store(&kind, k, records);
    // A follows every key it holds, as a node restarted on its store does.
    let a = net.add(owner, republish, store, Vec::new()).await;
    net.quiet(s.setup_timeout).await;
    let heap_a = settle_heap(Duration::from_secs(3)).await;
    let b = net
        .add(
            Keypair::generate_ed25519(),
            republish,
            BenchStore::empty(&kind, k.max(65_536)),
            Vec::new(),
        )
        .await;
    net.drain();
    let w0 = net.wire();
    let cpu0 = process_cpu_with_ended();
    let keys_b = keys.clone();
    let t0 = net.nodes[b]
        .call(move |sw, _| {
            let t0 = Instant::now();
            for key in &keys_b {
                sw.behaviour_mut().pointer.subscribe(key).expect("key ok");
            }
            t0
        })
        .await;
    net.link(b, a).await;
    let (held, last) = until_held(&mut net, b, k, t0 + s.catchup_timeout).await;
    let Some(caught_up) = last.filter(|_| held == k) else {
        report.row(
            "5 scale",
            "pointer",
            &size,
            format!(
                "CATCH-UP TIMED OUT: {held} of {k} keys after {:.0?}",
                s.catchup_timeout
            ),
            String::new(),
        );
        net.shutdown().await;
        return;
    };
    let catchup_secs = (caught_up - t0).as_secs_f64();
    let catchup_wire = net.wire().since(w0);
    let catchup_cpu = process_cpu_with_ended()
        .zip(cpu0)
        .and_then(|(now, before)| now.checked_sub(before))
        .map(|d| d.as_secs_f64());
    net.quiet(s.setup_timeout).await;
    let heap_both = settle_heap(Duration::from_secs(3)).await;
    let latency = update_latency(&mut net, a, b, &keys[0], s).await;
    // At rest: nothing written, both following K keys.
    net.quiet(s.setup_timeout).await;
    let cpu1 = process_cpu();
    let window = idle_window();
    tokio::time::sleep(window).await; // the window itself
    let idle_core = cpu_since(cpu1).map(|c| c / window.as_secs_f64() / 2.0);
    let (reconnect_secs, reconnect_wire) = reconnect(&mut net, a, b, &keys[1], s).await;
    let shared = more_peers(&mut net, &keys, &kind, republish, s).await;
    let heap_shared = match shared {
        Some(_) => Some(settle_heap(Duration::from_secs(3)).await),
        None => None,
    };

    let value = s.value_bytes as f64;
    let per_key_a = (heap_a - heap_empty) as f64 / k as f64;
    let per_key_both = (heap_both - heap_empty) as f64 / k as f64 / 2.0;
    let per_key_shared = shared
        .zip(heap_shared)
        .map(|(nodes, heap)| (nodes, (heap - heap_empty) as f64 / k as f64 / nodes as f64));
    report.row(
        "5 scale",
        "pointer",
        &size,
        format!(
            "catch-up {catchup_secs:.2} s; update {}; idle {}",
            latency.cell(),
            idle_core.map_or("?".into(), |c| format!(
                "{:.1} % of a core per node",
                c * 100.0
            ))
        ),
        format!(
            "heap per key and node: {} (A alone {}{}; value {value} B); catch-up wire {}, CPU {}; reconnect {}, wire {}",
            kib(per_key_both),
            kib(per_key_a),
            per_key_shared.map_or(String::new(), |(nodes, per)| format!(
                "; {} over {nodes} nodes sharing",
                kib(per)
            )),
            kib((catchup_wire.tx + catchup_wire.rx) as f64 / 2.0),
            catchup_cpu.map_or("?".into(), |c| format!("{c:.2} s")),
            reconnect_secs.map_or("TIMED OUT".into(), |t| format!("{t:.2} s")),
            kib(reconnect_wire as f64 / 2.0),
        ),
    );
    report.section("scale").push(json!({
        "k": k,
        "shards": shards,
        "catchup_secs": catchup_secs,
        "catchup_cpu_secs": catchup_cpu,
        "catchup_wire_bytes": catchup_wire.tx + catchup_wire.rx,
        "heap_per_key_alone": per_key_a,
        "heap_per_key_per_node_shared": per_key_both,
        "store": kind,
        "record_age_ms": age_ms,
        "heap_per_key_per_node_more_peers": per_key_shared.map(|(nodes, per)| json!({"nodes": nodes, "per_key": per})),
        "update_latency": latency.to_json(),
        "idle_core_per_node": idle_core,
        "reconnect_secs": reconnect_secs,
        "reconnect_wire_bytes": reconnect_wire,
    }));
    net.shutdown().await;
}

/// Waits until `node` reported `k` distinct keys updated, or `deadline`;
/// returns how many it reported and when the last arrived.
async fn until_held(
    net: &mut Net,
    node: usize,
    k: usize,
    deadline: Instant,
) -> (usize, Option<Instant>) {
    let mut got = HashSet::new();
    let mut last = None;
    while got.len() < k {
        let Some(obs) = net.next_obs(deadline).await else {
            break;
        };
        if let Obs::Updated {
            node: n, at, key, ..
        } = obs
        {
            if n == node && got.insert(key) {
                last = Some(at);
            }
        }
    }
    (got.len(), last)
}

/// `UPDATES` writes of `key` at `a`, each timed until `b` has it.
async fn update_latency(net: &mut Net, a: usize, b: usize, key: &str, s: &Settings) -> Latencies {
    let mut lat = Latencies::default();
    for i in 0..UPDATES {
        net.drain();
        let tag = 7_000_000 + i as u64;
        let (k, value) = (key.to_owned(), value_for(tag, s.value_bytes));
        let t0 = net.nodes[a]
            .call(move |sw, _| {
                let t0 = Instant::now();
                let _ = sw.behaviour_mut().pointer.put(&k, &value);
                t0
            })
            .await;
        let want = key.to_owned();
        let deadline = Instant::now() + s.round_timeout;
        let last = net
            .all_arrived(deadline, 1, |obs| match obs {
                Obs::Updated {
                    node,
                    at,
                    key: k,
                    tag: t,
                } if *node == b && *t == tag && *k == want => Some((*node, *at)),
                _ => None,
            })
            .await;
        lat.record(t0, last);
    }
    lat
}

/// Cuts `a` and `b` apart, writes `key` at `a`, and links them again:
/// the seconds until `b` holds the write, and the bytes both sent from the
/// dial until the network is quiet again.
async fn reconnect(
    net: &mut Net,
    a: usize,
    b: usize,
    key: &str,
    s: &Settings,
) -> (Option<f64>, u64) {
    if !net.unlink(a, b, s.setup_timeout).await {
        return (None, 0);
    }
    net.drain();
    let tag = 8_000_000;
    let (k, value) = (key.to_owned(), value_for(tag, s.value_bytes));
    net.nodes[a]
        .call(move |sw, _| {
            let _ = sw.behaviour_mut().pointer.put(&k, &value);
        })
        .await;
    net.quiet(s.setup_timeout).await;
    let w0 = net.wire();
    let t0 = Instant::now();
    net.link(b, a).await;
    let want = key.to_owned();
    let deadline = Instant::now() + s.catchup_timeout;
    let last = net
        .all_arrived(deadline, 1, |obs| match obs {
            Obs::Updated {
                node,
                at,
                key: k,
                tag: t,
            } if *node == b && *t == tag && *k == want => Some((*node, *at)),
            _ => None,
        })
        .await;
    let secs = last.map(|at| (at - t0).as_secs_f64());
    net.quiet(s.setup_timeout).await;
    let wire = net.wire().since(w0);
    (secs, wire.tx + wire.rx)
}

/// Adds followers until `POINTER_BENCH_SCALE_PEERS` share the keys with
/// A, each following every key and dialing the nodes before it, and waits
/// until each holds them all. Returns how many nodes then hold the keys,
/// or `None` when no follower was added or one did not catch up.
async fn more_peers(
    net: &mut Net,
    keys: &[String],
    kind: &str,
    republish: Duration,
    s: &Settings,
) -> Option<usize> {
    let peers = env_num::<usize>("POINTER_BENCH_SCALE_PEERS", 1);
    if peers <= 1 {
        return None;
    }
    for _ in 1..peers {
        let store = BenchStore::empty(kind, keys.len().max(65_536));
        let node = net
            .add(Keypair::generate_ed25519(), republish, store, Vec::new())
            .await;
        net.drain();
        let ks = keys.to_vec();
        let t0 = net.nodes[node]
            .call(move |sw, _| {
                for key in &ks {
                    sw.behaviour_mut().pointer.subscribe(key).expect("key ok");
                }
                Instant::now()
            })
            .await;
        for other in 0..node {
            net.link(node, other).await;
        }
        let (held, _) = until_held(net, node, keys.len(), t0 + s.catchup_timeout).await;
        println!("  follower {node} caught up {held} of {} keys", keys.len());
        if held < keys.len() {
            return None;
        }
        net.quiet(s.setup_timeout).await;
    }
    Some(net.nodes.len())
}

/// Process CPU seconds since `before`.
fn cpu_since(before: Option<Duration>) -> Option<f64> {
    process_cpu()
        .zip(before)
        .and_then(|(now, before)| now.checked_sub(before))
        .map(|d| d.as_secs_f64())
}
