//! Scenario 3: throughput of one writer.

use super::*;

// ---------------------------------------------------------------------------
// Scenario 3: throughput of one writer

pub(crate) async fn throughput(s: &Settings, report: &mut Report) {
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
