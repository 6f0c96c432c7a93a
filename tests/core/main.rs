//! Tests that open no socket: the spec's test vectors, the layer rules of
//! the source tree, the convergence checker and range reconciliation on the
//! deterministic simulator, and a store written outside the crate running
//! the conformance suite.
//!
//! `cargo test --all-features --test core`; one file per subject, so
//! `cargo test --all-features --test core simulation::` runs one of them.

mod layers;
mod reconcile;
mod simulation;
mod store_conformance;
mod vectors;
