//! The convergence checker: thousands of random schedules on the
//! deterministic simulator (`pointer::sim`), each the real coordinator on
//! every node. A failing seed is printed with the command that replays it.
//!
//! `POINTER_SIM_SCHEDULES=N` changes how many schedules run (default
//! 1,000); `POINTER_SIM_SEED=S cargo test --all-features --test core simulation::
//! replay -- --nocapture` replays one.

#![cfg(feature = "sim")]

use std::time::Duration;

use pointer::sim::{run, NetParams, Network, Report, Scenario, Settings, Shape, Topology};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

fn replay_hint(seed: u64) -> String {
    format!("replay: POINTER_SIM_SEED={seed} cargo test --all-features --test core simulation::replay -- --nocapture")
}

/// Runs seeds `from..to` on all cores; returns the reports and failures.
fn run_seeds(
    seeds: std::ops::Range<u64>,
    shape: &Shape,
    settings: &Settings,
) -> (Vec<Report>, Vec<String>) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let results: Vec<(Vec<Report>, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let seeds = seeds.clone();
                scope.spawn(move || {
                    let mut reports = Vec::new();
                    let mut failures = Vec::new();
                    for seed in seeds.filter(|s| s % threads == t) {
                        match run(&Scenario::random(seed, shape), settings) {
                            Ok(report) => reports.push(report),
                            Err(failure) => {
                                failures.push(format!("{failure}\n  {}", replay_hint(seed)))
                            }
                        }
                    }
                    (reports, failures)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("no panic"))
            .collect()
    });
    let mut reports = Vec::new();
    let mut failures = Vec::new();
    for (r, f) in results {
        reports.extend(r);
        failures.extend(f);
    }
    (reports, failures)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[test]
fn random_schedules_converge_within_the_bound() {
    let count = env("POINTER_SIM_SCHEDULES").unwrap_or(1000);
    let settings = Settings::default();
    let (reports, failures) = run_seeds(0..count, &Shape::default(), &settings);
    let mut times: Vec<Duration> = reports.iter().map(|r| r.converged_after).collect();
    times.sort();
    if !times.is_empty() {
        eprintln!(
            "{} schedules converged; after the last step: p50 {:?}, p99 {:?}, max {:?}",
            times.len(),
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            times[times.len() - 1]
        );
    }
    assert!(
        failures.is_empty(),
        "{} of {count} schedules failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Seeds the random runs once failed, kept because the default count of
/// schedules does not reach them. 15758: a line segment where the one peer
/// drawn for anti-entropy kept missing the neighbour that lacked a write.
/// 15801: the same, with records settled at once (`settled_after` 0), so
/// the node behind no longer republished what would have shown it.
#[test]
fn seeds_that_once_failed_converge() {
    let settings = Settings::default();
    for seed in [15758, 15801] {
        let scenario = Scenario::random(seed, &Shape::default());
        if let Err(failure) = run(&scenario, &settings) {
            panic!("{failure}\n{}", replay_hint(seed));
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    let settings = Settings::default();
    for seed in [1, 2, 3] {
        let scenario = Scenario::random(seed, &Shape::default());
        let first = run(&scenario, &settings).map(|r| (r.converged_after, r.traffic));
        let second = run(&scenario, &settings).map(|r| (r.converged_after, r.traffic));
        assert_eq!(format!("{first:?}"), format!("{second:?}"), "seed {seed}");
    }
}

#[test]
fn replay() {
    let seed = env("POINTER_SIM_SEED").unwrap_or(0);
    let scenario = Scenario::random(seed, &Shape::default());
    eprintln!("{}", scenario.describe());
    let trace = std::env::var_os("POINTER_SIM_TRACE").is_some();
    match pointer::sim::run_traced(&scenario, &Settings::default(), trace) {
        Ok(report) => eprintln!("{report:?}"),
        Err(failure) => panic!("{failure}"),
    }
}

/// 1,000 nodes on a sparse random graph, all following one key: a write at
/// one node, a delete and a write again at others. Reports the simulated
/// time to converge and the traffic. Slow in debug builds:
/// `cargo test --release --all-features --test core simulation::thousand -- --ignored --nocapture`.
#[test]
#[ignore]
fn thousand_nodes_converge() {
    use rand::SeedableRng;
    let n = env("POINTER_SIM_NODES").unwrap_or(1000) as usize;
    let seed = env("POINTER_SIM_SEED").unwrap_or(7);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
    let signers: Vec<_> = (0..n)
        .map(|i| {
            let mut secret = [7u8; 32];
            secret[..8].copy_from_slice(&(i as u64).to_le_bytes());
            ed25519_dalek::SigningKey::from_bytes(&secret)
        })
        .collect();
    let links = pointer::sim::links(Topology::Sparse, n, &mut rng);
    let settings = Settings::default();
    let mut net = Network::new(seed, signers, &[], NetParams::default(), move |_| {
        let config = pointer::Config::builder()
            .republish_interval(settings.republish_interval)
            .build()
            .expect("valid config");
        let validator: Box<dyn pointer::Validator> = Box::new(pointer::Open);
        (config, validator)
    });
    for &(a, b) in &links {
        net.link(a, b);
    }
    for i in 0..n {
        net.command(i, |c, _| c.subscribe("k"));
    }
    net.run_until(Duration::from_secs(2));
    for (node, value) in [(0, Some("a")), (n / 2, None), (n - 1, Some("b"))] {
        let start = net.now();
        let before = net.traffic();
        let written = match value {
            Some(v) => net.command(node, |c, now| c.put("k", v, now)),
            None => net.command(node, |c, now| c.delete("k", now)),
        }
        .expect("up")
        .expect("written");
        let mut at = start;
        while (0..n).any(|i| {
            net.node(i)
                .and_then(|c| c.record("k").map(|r| r.into_owned()))
                != Some(written.clone())
        }) {
            at += Duration::from_millis(50);
            if at - start > Duration::from_secs(120) {
                let stale: Vec<usize> = (0..n)
                    .filter(|&i| {
                        net.node(i)
                            .and_then(|c| c.record("k").map(|r| r.into_owned()))
                            != Some(written.clone())
                    })
                    .collect();
                let first = stale[0];
                let c = net.node(first).expect("up");
                panic!(
                    "not converged: {} stale, e.g. node {first} holds {:?}, subscribed {}, neighbours {:?}",
                    stale.len(),
                    c.record("k"),
                    c.is_subscribed("k"),
                    net.neighbours(first)
                        .into_iter()
                        .map(|m| (m, net.node(m).map(|x| (x.record("k").map(|r| r.op()), x.is_subscribed("k")))))
                        .collect::<Vec<_>>()
                );
            }
            net.run_until(at);
        }
        let traffic = net.traffic();
        eprintln!(
            "{n} nodes, {} links: {:?} by node {node} everywhere after {:?} simulated; {} gossip transmissions, {} asks",
            links.len(),
            written.op(),
            at - start,
            traffic.gossip - before.gossip,
            traffic.asks - before.asks
        );
    }
}
