//! Scenario 4b: idle republish traffic per node, on graphs where every node
//! has the same number of neighbours, so that the figures for different N
//! differ only by N.
//!
//! A node's idle cost is proportional to its degree: it republishes to its
//! mesh neighbours and reconciles with one of them per firing, and
//! gossipsub's heartbeat gossip goes to a share of its other peers. On the
//! propagation graph (each node dials `degree` random others) the mean
//! degree itself grows with N: about 4.4 at N=10, where many dials land on
//! an existing link, and 6 at N=50. The earlier rows of this scenario
//! measured that growth, not one in N.

use super::*;

/// Writes the calibration ticker makes before the windows, to learn what
/// one update costs on this graph.
const CALIBRATION_UPDATES: u64 = 10;

pub(crate) async fn idle(s: &Settings, n: usize, rng: &mut Rng, report: &mut Report) {
    println!("## idle, N = {n}");
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
    net.connect_regular(rng, s.idle_degree).await;
    let size = format!("N={n}, {} keys", s.idle_keys);
    if !net.until_connected(s.setup_timeout).await {
        report.row(
            "4 wire, idle",
            "pointer",
            &size,
            "SETUP TIMED OUT (connect)".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    }
    let degrees: Vec<usize> = net.neighbours.iter().map(HashSet::len).collect();
    let (dmin, dmax) = (
        degrees.iter().copied().min().unwrap_or(0),
        degrees.iter().copied().max().unwrap_or(0),
    );
    let dmean = degrees.iter().sum::<usize>() as f64 / n.max(1) as f64;
    let Some(idle) = idle_traffic(&mut net, s, rng).await else {
        report.row(
            "4 wire, idle",
            "pointer",
            &size,
            "SETUP TIMED OUT".into(),
            String::new(),
        );
        net.shutdown().await;
        return;
    };
    let graph = format!("degree {dmean:.1} (min {dmin}, max {dmax})");
    report.row(
        "4 wire, idle",
        "pointer (quiet)",
        &size,
        format!(
            "{} / key / node / interval ({:.1} writes/node/interval)",
            kib(idle.a_bytes / s.idle_keys.max(1) as f64),
            idle.a_writes
        ),
        format!(
            "{graph}; republish interval {:?}, {} intervals; nothing else on the wire",
            s.republish, s.idle_intervals
        ),
    );
    report.row(
        "4 wire, idle",
        "pointer (1 update/s elsewhere)",
        &size,
        format!(
            "{} / key / node / interval net of the ticker",
            kib(idle.b_net / s.idle_keys.max(1) as f64)
        ),
        format!(
            "{graph}; one update costs {} per node; {:.1} writes/node/interval incl. ticker",
            kib(idle.per_update),
            idle.b_writes
        ),
    );
    let mut json = idle.json;
    json["degree"] = json!({ "mean": dmean, "min": dmin, "max": dmax });
    report.section("idle").push(json);
    net.shutdown().await;
}

/// Node 0 writes `key` `CALIBRATION_UPDATES` times, each once every other
/// node has the previous one; returns the bytes sent per node and update.
async fn calibrate(net: &mut Net, key: &str, s: &Settings) -> Option<f64> {
    let n = net.nodes.len();
    net.drain();
    let w0 = net.wire();
    for i in 0..CALIBRATION_UPDATES {
        let tag = 5_000_000 + i;
        let (k, value) = (key.to_owned(), value_for(tag, s.value_bytes));
        net.nodes[0]
            .call(move |sw, _| sw.behaviour_mut().pointer.put(&k, &value).map(|_| ()))
            .await
            .ok()?;
        let deadline = Instant::now() + s.round_timeout;
        let want = key.to_owned();
        net.all_arrived(deadline, n - 1, |obs| match obs {
            Obs::Updated {
                node,
                at,
                key: k,
                tag: t,
            } if *node != 0 && *t == tag && *k == want => Some((*node, *at)),
            _ => None,
        })
        .await?;
    }
    Some(per_node(
        net.wire().since(w0).tx,
        n,
        CALIBRATION_UPDATES as usize,
    ))
}

/// Every node follows `idle_keys` keys written by random owners; once every
/// node holds them, counts the bytes of `idle_intervals` republish
/// intervals with nothing else going on, then as many with one update a
/// second on another key.
pub(crate) async fn idle_traffic(net: &mut Net, s: &Settings, rng: &mut Rng) -> Option<Idle> {
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
        let keys = keys.clone();
        node.call(move |sw, _| {
            for k in &keys {
                sw.behaviour_mut().pointer.subscribe(k).expect("key ok");
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
    let per_update_bytes = calibrate(net, &tick_key, s).await?;
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
            "bytes_per_node_per_update": per_update_bytes,
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
        per_update: per_update_bytes,
    })
}

pub(crate) struct Idle {
    pub(crate) json: Value,
    pub(crate) a_bytes: f64,
    pub(crate) a_writes: f64,
    pub(crate) b_net: f64,
    pub(crate) b_writes: f64,
    pub(crate) per_update: f64,
}
