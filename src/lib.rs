//! A decentralized, eventually consistent key-value store that lives inside
//! any libp2p swarm.
//!
//! [`Pointer`] is a [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour).
//! Every key has its own gossipsub topic (`/pointer/record/<key>`); a write is
//! a signed (Ed25519) [`Record`] published on it; every node keeps the newest
//! valid record per key, republishes it now and then, and answers peers that
//! ask for it over `/pointer/fetch/0.0.1`. A value outlives its publisher:
//! any node that holds it serves it.
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
//! use libp2p::{identify, noise, tcp, yamux};
//! use pointer::{MemoryStore, Pointer, PointerEvent};
//!
//! // Pointer composes with other behaviours like any libp2p behaviour.
//! #[derive(NetworkBehaviour)]
//! struct App {
//!     pointer: Pointer<MemoryStore>,
//!     identify: identify::Behaviour,
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut swarm = libp2p::SwarmBuilder::with_new_identity()
//!     .with_tokio()
//!     .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
//!     .with_behaviour(|key| {
//!         Ok(App {
//!             pointer: Pointer::new(key, MemoryStore::new(), Default::default())?,
//!             identify: identify::Behaviour::new(identify::Config::new(
//!                 "/app/1.0.0".into(),
//!                 key.public(),
//!             )),
//!         })
//!     })?
//!     // Keep idle connections: a peer that shares no topic yet is still
//!     // worth asking when a `get` comes.
//!     .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
//!     .build();
//! swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
//!
//! // Under the default validator, a node writes keys "<its PeerId>/<name>".
//! let key = swarm.behaviour().pointer.owned_key("greeting");
//! swarm.behaviour_mut().pointer.put(&key, "hello")?;
//!
//! while let Some(event) = swarm.next().await {
//!     if let SwarmEvent::Behaviour(AppEvent::Pointer(PointerEvent::RecordUpdated {
//!         record,
//!         source,
//!     })) = event
//!     {
//!         println!("{} = {:?} (from {source:?})", record.key(), record.value());
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//!
//! The pure core has no I/O and no clock: [`record`] (signing),
//! [`order`] (which record wins), [`accept`] (the checks, cheapest first),
//! [`validator`] (who may write), [`store`] (pluggable storage),
//! [`replica`] (the three joined) and [`trickle`] (when to republish). The
//! libp2p shell ([`Pointer`], the fetch [`protocol`] and its connection
//! handler) only moves bytes and timers. [`discovery`] finds a key's
//! followers beyond our connections: pass
//! [`discovery::Kad`] (feature `kad`, on by default) to
//! [`Pointer::with_discovery`]. With the feature `metrics`,
//! `Pointer::with_metrics` records Prometheus metrics (`pointer::metrics`).
//! The wire format is in `docs/spec.md`.

#![warn(missing_docs)]

pub mod accept;
mod author_keys;
mod behaviour;
pub mod config;
pub mod coordinator;
mod decode_error;
pub mod discovery;
mod dispatch;
pub mod event;
pub mod exchange;
mod handler;
#[cfg(feature = "metrics")]
pub mod metrics;
pub mod misbehaviour;
pub mod order;
mod parallel_verify;
mod peer_index;
pub mod protocol;
mod query;
pub mod reconcile;
pub mod record;
pub mod replica;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
mod token_bucket;
pub mod topic;
pub mod trickle;
pub mod validator;
pub mod wire;

/// Rust types generated from `proto/pointer.proto` by pb-rs at build time.
#[allow(
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unused_imports,
    missing_docs,
    clippy::all
)]
pub mod proto {
    /// The `pointer` protobuf package.
    pub mod pointer {
        include!(concat!(env!("OUT_DIR"), "/proto/pointer.rs"));
    }
}

pub use behaviour::{topic, BuildError, Pointer};
pub use config::{Config, ConfigBuilder, ConfigError};
pub use event::{GetOutcome, PointerEvent, QueryId, Source};
pub use misbehaviour::Misbehaviour;
pub use record::{Author, Op, Record};
pub use replica::{Refusal, WriteError};
pub use store::{MemoryStore, MemoryStoreConfig, RecordStore};
#[cfg(feature = "redb")]
pub use store::{RedbStore, RedbStoreConfig};
pub use topic::{Topic, TOPIC_PREFIX};
pub use validator::{AllowList, Open, OwnedKeys, Validator};
