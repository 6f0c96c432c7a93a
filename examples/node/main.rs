//! `cargo run --example node -- --help`
//!
//! A full pointer node: TCP and QUIC, noise, yamux, identify, ping and mDNS
//! next to `pointer::Behaviour`. Commands come on standard input, one a line; answers
//! and events go to standard output, as text or (`--json`) one JSON object
//! a line; logs go to standard error (`RUST_LOG`). The README has a
//! walk-through and the JSON schema.
//!
//! Modules: `cli` (arguments), `identity` (the key in the data directory),
//! `input` (standard input), `command` (parsing a line), `net` (the swarm),
//! `node` (what commands do), `events` (what swarm events do), `output`
//! (what is printed), `metrics` (`--metrics`: the HTTP endpoint).

mod cli;
mod command;
mod events;
mod follows;
mod identity;
mod input;
mod limits;
mod metrics;
mod net;
mod node;
mod output;
mod punch;
mod redial;
mod relay_quic;
mod relisten;
mod retry;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use libp2p::identity::Keypair;
use libp2p::metrics::Registry;
use pointer::{MemoryStore, MemoryStoreConfig, RecordStore};
use tracing_subscriber::EnvFilter;

use crate::cli::Args;
use crate::node::Node;
use crate::output::{Line, Printer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// File name of the record store inside the data directory.
#[cfg(feature = "redb")]
const RECORDS_FILE: &str = "records.redb";

// Multi-threaded: the swarm's loop runs on this thread, its connections
// (handshakes, stream I/O, signature checks of answers) and the metrics
// server on the workers, so neither waits for the other. Standard input
// has a thread of its own (see `input`).
#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // Standard output carries answers only; logs go to standard error.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    match start(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("node: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Picks the identity and the store, then runs the node.
async fn start(args: Args) -> Result<(), Error> {
    let memory = || {
        MemoryStore::with_config(MemoryStoreConfig {
            max_records: args.max_records,
            max_value_bytes: args.max_value_bytes,
        })
    };
    let Some(dir) = args.data_dir.clone() else {
        let store = memory();
        return run(args, Keypair::generate_ed25519(), store, None).await;
    };
    let keypair = identity::load_or_create(&dir)?;
    let follows = follows::Follows::open(&dir).map_err(|e| {
        format!(
            "cannot open {}: {e}",
            dir.join(follows::FOLLOWING_FILE).display()
        )
    })?;
    #[cfg(feature = "redb")]
    {
        let path = dir.join(RECORDS_FILE);
        let config = pointer::RedbStoreConfig {
            max_records: args.max_records,
            max_value_bytes: args.max_value_bytes,
            ..Default::default()
        };
        let store = pointer::store::RedbStore::open_with_config(&path, config)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        run(args, keypair, store, Some(follows)).await
    }
    #[cfg(not(feature = "redb"))]
    {
        tracing::warn!("built without the redb feature: records are kept in memory");
        let store = memory();
        run(args, keypair, store, Some(follows)).await
    }
}

async fn run<S: RecordStore + 'static>(
    args: Args,
    keypair: Keypair,
    store: S,
    follows: Option<(follows::Follows, Vec<String>)>,
) -> Result<(), Error> {
    let printer = Printer { json: args.json };
    let options = net::Options {
        mdns: !args.no_mdns,
        dht: !args.no_dht,
        relay_server: args.relay_server,
        limits: args.limits(),
    };
    // One registry for Pointer's metrics and libp2p's, with --metrics.
    let mut registry = args.metrics.map(|_| Registry::default());
    let swarm = net::build(
        keypair,
        store,
        (args.config()?, args.validator.validator()),
        options,
        registry.as_mut(),
    )?;
    let mut node = Node::new(swarm, printer, args.validator.clone());
    let most = std::time::Duration::from_secs(args.redial_max_secs);
    node.redial = redial::Redial::new(most);
    node.relisten = relisten::Relisten::new(most);
    let punch_first =
        (args.punch_retry_secs > 0).then(|| std::time::Duration::from_secs(args.punch_retry_secs));
    node.punch = punch::Punch::new(punch_first);
    if let Some((journal, keys)) = follows {
        node.follow_again(journal, keys);
    }
    node.swarm_metrics = registry.as_mut().map(libp2p::metrics::Metrics::new);
    for addr in &args.external_address {
        node.swarm.add_external_address(addr.clone());
    }
    // A relay must announce an address; without one given, its own
    // listen addresses are taken as reachable.
    node.listen_is_external = args.relay_server && args.external_address.is_empty();
    node.print(&Line::Started {
        peer_id: node.peer_id().to_string(),
        validator: args.validator.to_string(),
        data_dir: args.data_dir.as_ref().map(|d| d.display().to_string()),
        records: node.pointer().records().count(),
        mdns: node.mdns_enabled(),
        topic_shards: node.pointer().topic_shards(),
    });
    if let (Some(addr), Some(registry)) = (args.metrics, registry) {
        if cfg!(not(feature = "metrics")) {
            tracing::warn!("built without the metrics feature: only libp2p's metrics are served");
        }
        let bound = metrics::serve(addr, registry).await?;
        node.print(&Line::Metrics {
            address: bound.to_string(),
            url: format!("http://{bound}/metrics"),
        });
    }
    // The node's own ports first, and their addresses, before it listens
    // through a relay or dials (see `Node::await_listen_addrs`).
    let (relayed, direct): (Vec<_>, Vec<_>) =
        args.listen_addrs().into_iter().partition(punch::is_relayed);
    for addr in direct {
        node.listen(addr)?;
    }
    node.await_listen_addrs().await;
    for addr in relayed {
        node.listen(addr)?;
    }
    for addr in &args.bootstrap {
        node.bootstrap(addr.clone())?;
    }
    for addr in &args.dial {
        node.dial(addr.clone(), "--dial");
    }
    node.run(input::lines()).await;
    Ok(())
}
