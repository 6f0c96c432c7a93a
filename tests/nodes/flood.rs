//! A subscription flood against the `node` program in its own process,
//! so its resident memory can be read: a raw gossipsub peer
//! (`common::rogue`) subscribes to 1,000,000 topics with 400-byte names.
//! The node must grow by at most `max_subscription_bytes` (32 MiB by
//! default), ban the peer, and still answer an honest peer's `get`.
//!
//! Slow (a million subscription RPCs), so ignored:
//! `cargo test --release --all-features --test nodes flood:: -- --ignored --nocapture`.

use std::time::{Duration, Instant};

use crate::common::rogue::{topic_of, Rogue};
use crate::process::{connected_to, is, Node};

const FLOOD: usize = 1_000_000;
const BOUND: u64 = 32 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a million subscriptions; run with --ignored --nocapture"]
async fn a_million_subscriptions_grow_a_node_by_at_most_its_bound() {
    let mut target = Node::start("target", &["--validator", "open"]);
    target.send("put f/1 v");
    target.expect("put", is("put", "f/1"));
    let base = target.resident_bytes().expect("/proc is readable");

    let rogue = Rogue::dialing(target.addr.parse().expect("a multiaddr"));
    target.expect("the rogue connects", |l| l["event"] == "connected");
    let name = "x".repeat(400);
    let started = Instant::now();
    let mut peak = base;
    for i in 0..FLOOD {
        rogue.subscribe(topic_of(&format!("{name}{i}")));
        if i % 10_000 == 0 {
            peak = peak.max(target.resident_bytes().unwrap_or(0));
            // Let the rogue's task send what was queued so far.
            tokio::task::yield_now().await;
        }
    }
    // The rogue keeps sending what it queued; watch memory until the
    // target has cut it off.
    let deadline = Instant::now() + Duration::from_secs(300);
    while rogue.is_connected() && Instant::now() < deadline {
        peak = peak.max(target.resident_bytes().unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!rogue.is_connected(), "the flooding peer was never cut off");
    let cut_off = started.elapsed();
    peak = peak.max(target.resident_bytes().unwrap_or(0));
    let grown = peak.saturating_sub(base);
    eprintln!(
        "resident {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB); rogue cut off after {cut_off:?}",
        mib(base),
        mib(peak),
        mib(grown)
    );
    assert!(grown <= BOUND, "grew by {:.1} MiB", mib(grown));

    // An honest peer still gets its answer.
    let mut honest = Node::start("honest", &["--validator", "open", "--dial", &target.addr]);
    honest.expect("connected", connected_to(&target.peer_id));
    honest.send("get f/1");
    let get = honest.expect("get", is("get", "f/1"));
    assert_eq!(get["status"], "found", "{get}");
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
