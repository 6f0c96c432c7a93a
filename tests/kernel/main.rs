//! Faults from the kernel, with node processes in network namespaces:
//! partitions by link down and nftables, `kill -9`, clock skew by
//! libfaketime, and home routers that masquerade with nftables. They need
//! root, iproute2, nftables and faketime; without them each test says
//! `SKIPPED` and returns. All are `#[ignore]`d; `.ci/run` runs them:
//!
//! `cargo test --all-features --test kernel -- --ignored --nocapture`

#[allow(dead_code)]
#[path = "../process/mod.rs"]
mod process;

mod faults;
mod nat;

/// The tests that hold this run one at a time: each starts and cuts
/// several node processes on a two-core machine and bounds how fast they
/// agree or punch through. The one that mostly waits (for a relay's
/// circuit limit) runs beside them.
pub static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`ONE_AT_A_TIME`] for a test; a test that failed while holding it
/// does not stop the next.
pub fn alone() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}
