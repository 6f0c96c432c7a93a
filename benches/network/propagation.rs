//! Scenario 1: propagation and wire cost per update.

use super::*;

// ---------------------------------------------------------------------------
// Scenario 1: propagation and wire cost per update

pub(crate) async fn propagation(s: &Settings, n: usize, rng: &mut Rng, report: &mut Report) {
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
        payloads.push(pointer::internals::wire::encode_operate(&record));
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
    net.shutdown().await;
}

pub(crate) fn wire_json(w: WireSnap, n: usize, updates: usize) -> Value {
    json!({
        "tx_bytes": w.tx, "rx_bytes": w.rx, "tcp_writes": w.writes,
        "tx_bytes_per_node_per_update": per_node(w.tx, n, updates),
        "tcp_writes_per_node_per_update": w.writes as f64 / n as f64 / updates.max(1) as f64,
    })
}

/// Waits until every node knows that each neighbour follows every key, on
/// both systems, and every raw-gossipsub mesh has a peer (Pointer's
/// mesh is not visible; it runs the same code on the same subscriptions).
pub(crate) async fn until_meshes(net: &Net, keys: &[String], timeout: Duration) -> bool {
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
pub(crate) async fn warm_up(net: &mut Net, keys: &[String], s: &Settings) -> bool {
    let n = net.nodes.len();
    net.drain();
    let mut ids = HashSet::new();
    for (i, node) in net.nodes.iter().enumerate() {
        let key = keys[i].clone();
        let value = value_for(i as u64, s.value_bytes);
        let id = node
            .call(move |sw, _| {
                let r = sw.behaviour_mut().pointer.put(&key, &value).expect("put");
                let bytes = pointer::internals::wire::encode_operate(&r);
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
