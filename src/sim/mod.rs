//! A deterministic simulation of many nodes (feature `sim`).
//!
//! Each node is the real [`Coordinator`](crate::coordinator::Coordinator)
//! over a real [`MemoryStore`](crate::MemoryStore); only the network is a
//! model: links that can be cut and restored, gossipsub (a topic per key
//! or shard topics, forwarding only after `Accept`, at most `mesh_degree`
//! peers per hop, duplicate suppression, loss), the fetch protocol with
//! latency, timers in virtual time, crashes that keep the store, and a
//! clock skew per node.
//! Every random choice comes from one seed, so a run replays exactly.
//!
//! [`Scenario::random`] draws a schedule (topology, skews, writes, deletes,
//! reads, forged records, partitions, heals, crashes, restarts) from a
//! seed; [`run`] plays it and checks convergence. Use it to test your own
//! settings:
//!
//! ```
//! use pointer::sim::{run, Scenario, Settings, Shape};
//!
//! let settings = Settings::default();
//! for seed in 0..20 {
//!     let scenario = Scenario::random(seed, &Shape::default());
//!     match run(&scenario, &settings) {
//!         Ok(report) => assert!(report.converged_after <= settings.bound),
//!         Err(failure) => panic!("{failure}"),
//!     }
//! }
//! ```
//!
//! [`Network`] can also be driven step by step for a scenario of your own.

mod check;
mod network;
mod scenario;

pub use check::{run, run_traced, Failure, Report, Settings};
pub use network::{NetParams, Network, NodeSetup, Traffic, EPOCH_MS};
pub use scenario::{links, Forgery, Scenario, Shape, Step, Topology};
