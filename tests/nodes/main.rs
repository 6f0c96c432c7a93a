//! The `node` example as users run it: separate processes on 127.0.0.1,
//! driven through standard input and read through `--json` output. The
//! release build of the node is made once, on first use
//! (`tests/process`).
//!
//! `cargo test --all-features --test nodes`; the measurements among them
//! are `#[ignore]`d and say how to run them.

#[path = "../common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "../process/mod.rs"]
mod process;

mod convergence;
mod discovery;
mod flood;
mod metrics;
mod node;
mod relay;
