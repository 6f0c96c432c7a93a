//! Partition heal (scenario 2 of `tests/swarm/convergence.rs`): sides {A1, A2} and {B1, B2}, each
//! pair linked, joined only by a bridge X that holds every key. X goes
//! down; both sides write (deletes on one side, later writes on the other,
//! keys touched by one side only, keys nobody touches; the plan is
//! `tests/common/partition.rs`); X comes back on its old store and links to
//! all four. Timed from X's return until all five nodes hold the newest
//! record of every key.
//!
//! Two rows per size, in the same run: real swarms over the memory
//! transport (`tests/common/heal.rs`, the code the convergence test runs)
//! and the deterministic simulator on the same plan (virtual time, 5–50 ms
//! latency per message). Republish is an hour in both, so what is measured
//! is anti-entropy on reconnection alone, not a republish that happened to
//! fire.
//!
//! `cargo bench --all-features --bench heal`; sizes from
//! `POINTER_BENCH_HEAL_K=10,200,1000` (the default).

#[path = "../tests/common/mod.rs"]
mod common;

use common::heal::simulated::simulated_heal;

fn main() {
    let sizes: Vec<usize> = std::env::var("POINTER_BENCH_HEAL_K")
        .unwrap_or_else(|_| "10,200,1000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    println!("| keys | real swarms (memory transport) | simulator (virtual time) | asks in the simulator after the heal |");
    println!("|---:|---:|---:|---:|");
    for k in sizes {
        let real = runtime.block_on(common::heal::healed_partition(k));
        let (simulated, asks) = simulated_heal(k, 7);
        let sim = simulated.map_or_else(
            || "did not converge in 60 s".to_owned(),
            |d| format!("{:.3} s", d.as_secs_f64()),
        );
        println!("| {k} | {:.3} s | {sim} | {asks} |", real.as_secs_f64());
    }
}
