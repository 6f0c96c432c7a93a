//! Real swarms in one process, on libp2p's memory transport: propagation,
//! deletes, catch-up, rejects, reconciliation, republish, restarts,
//! discovery, metrics, composition, and hostile peers that speak the wire
//! by hand. The shared harness is `tests/common`.
//!
//! `cargo test --all-features --test swarm`; one file per subject, so
//! `cargo test --all-features --test swarm hostile::` runs one of them.

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod batch;
mod catchup;
mod compose;
mod convergence;
mod delete;
mod discovery;
mod durability;
mod fetch_handler;
mod flush;
mod hostile;
mod metrics;
mod propagation;
mod reconcile_wire;
mod reconnect;
mod reject;
mod republish;
mod restart;
mod shards;
