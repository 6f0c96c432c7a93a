//! Scenario 2 (and 4a): catch-up of K keys, memory per key, and the
//! memory of one node alone.

use super::*;

// ---------------------------------------------------------------------------
// Scenario 2 (and 4a): catch-up of K keys, and memory per key

pub(crate) async fn catchup(s: &Settings, k: usize, rng: &mut Rng, report: &mut Report) {
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

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

// ---------------------------------------------------------------------------
// Scenario 4a: memory of one node following K keys, measured alone

/// Heap of a `Pointer` that holds and follows `k` records, measured with
/// nothing else running: first the store filled with the records (moved in,
/// so only the store's own overhead and key copies are new), then
/// `Behaviour::new` on it, which follows every held key (subscriptions,
/// gossipsub topic state, Trickle). Without peers: per-peer topic state is
/// in the catch-up rows.
pub(crate) async fn memory_alone(s: &Settings, report: &mut Report) {
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
        let pointer =
            Behaviour::new(&keypair, store, pointer_config(s.republish, 0)).expect("pointer");
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
