//! A decentralized, eventually consistent key-value store that lives inside
//! any libp2p swarm.
//!
//! [`Behaviour`] is a [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour).
//! Every key has its own gossipsub topic (`/pointer/record/<key>`); a write is
//! a signed (Ed25519) [`Record`] published on it; every node keeps the newest
//! valid record per key, republishes it now and then, and answers peers that
//! ask for it over `/pointer/fetch/0.0.1`. A value outlives its publisher:
//! any node that holds it serves it.
//!
//! Adding it to a swarm you already have takes five lines: the field, its
//! construction, and the events you care about (marked below).
//!
//! ```no_run
//! use std::time::Duration;
//!
//! use futures::StreamExt;
//! use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
//! use libp2p::{identify, noise, tcp, yamux};
//! use pointer::MemoryStore;
//!
//! #[derive(NetworkBehaviour)]
//! struct App {
//!     identify: identify::Behaviour,
//!     pointer: pointer::Behaviour<MemoryStore>, // 1
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut swarm = libp2p::SwarmBuilder::with_new_identity()
//!     .with_tokio()
//!     .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
//!     .with_behaviour(|key| {
//!         Ok(App {
//!             identify: identify::Behaviour::new(identify::Config::new(
//!                 "/app/1.0.0".into(),
//!                 key.public(),
//!             )),
//!             pointer: pointer::Behaviour::new(key, MemoryStore::new(), Default::default())?, // 2
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
//! swarm.behaviour_mut().pointer.put(&key, "hello")?; // 3
//!
//! while let Some(event) = swarm.next().await {
//!     if let SwarmEvent::Behaviour(AppEvent::Pointer(pointer::Event::RecordUpdated { // 4
//!         record,
//!         source,
//!     })) = event
//!     {
//!         println!("{} = {:?} (from {source:?})", record.key(), record.value()); // 5
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # How a record flows
//!
//! A [`put`](Behaviour::put) signs a [`Record`] (key, value, time, author,
//! signature over all of them), stores it, follows the key and publishes
//! it on the key's topic. Every node that receives it runs the same checks,
//! cheapest first: size and shape ([`Limits`]), time not too far ahead of
//! its clock, newer than what it holds (greater time wins, then a delete
//! over a value, then the greater signature), the signature, and the
//! [`Validator`]; a refusal says why with a [`RejectReason`]. A record that passes is stored and gossipsub forwards
//! it; a stale one is ignored (not forwarded), an invalid one rejected
//! (the sender pays, and is banned past a budget). A
//! [`delete`](Behaviour::delete) is a signed tombstone that travels the
//! same way and beats every older value; a later write beats it.
//!
//! Nodes that were away catch up: a node that starts following a key, or
//! meets a peer, asks over the fetch protocol with the version it holds
//! and gets only what is newer; two replicas of many keys compare
//! fingerprints of key ranges instead of a version per key. Each node
//! republishes what it holds now and then, quiet when its neighbours did
//! it already. After the last write, every node that follows a key holds
//! the same newest record; `docs/spec.md` gives the rules and the bound.
//!
//! # Who may write: validators
//!
//! [`OwnedKeys`] (the default) lets only the peer named in a key
//! `"<PeerId>/<name>"` write it; [`AllowList`] lets a fixed set of authors
//! write any key; [`Open`] lets any valid signature write any key; any
//! `Fn(&str, &Author) -> bool` is a [`Validator`] too. The validator is
//! given to the constructor ([`Behaviour::with_validator`]), as gossipsub
//! takes its subscription filter, so [`Config`] stays plain data: `Clone`,
//! `Debug`, and refused by [`ConfigBuilder::build`] when a value cannot
//! work. Every node of a network must run the same validator, or they will
//! disagree about which records exist.
//!
//! # Stores and durability
//!
//! Records live in a [`RecordStore`], shaped like libp2p-kad's. [`MemoryStore`]
//! keeps them in memory; `RedbStore` (feature `redb`, on by default) keeps
//! them in a file: a local write returns once it is on disk, records from
//! the network are staged and made durable in groups
//! ([`ConfigBuilder::store_flush_interval`]). A node restarted on its store
//! follows again every key it holds and catches up from its peers. Writing
//! a store of your own? The `test-utils` feature publishes
//! `store::conformance`, the checks the built-in stores pass.
//!
//! # Composing with your own gossipsub or kad
//!
//! The gossipsub inside [`Behaviour`] is its own. If your swarm runs a
//! gossipsub of its own too, give one of them another protocol id
//! ([`ConfigBuilder::gossipsub_protocol_prefix`]), or the two will fight
//! over the same streams. To find followers beyond your connections,
//! construct with [`Behaviour::with_discovery`] and [`discovery::Kad`]
//! (feature `kad`): a DHT of its own, or yours handed in with
//! `Kad::from_behaviour`; [`Behaviour::discovery_mut`] reaches it, and
//! its events that are not Pointer's come as [`Event::Kad`].
//!
//! # Events and queries
//!
//! Every change of a key you follow comes as [`Event::RecordUpdated`] or
//! [`Event::RecordDeleted`], with its [`Source`] (this node, gossip from a
//! peer, or an answer from a peer). A [`get`](Behaviour::get) returns a
//! [`QueryId`] at once and ends in exactly one [`Event::GetFinished`] with
//! that id: `Found` when a value is held (at once, when the key is followed
//! and held), `NotFound` when peers answered and none holds one, `TimedOut`
//! when every ask failed; it waits at most the fetch timeout per round of
//! asks. Peers that misbehave show as [`Event::RecordRejected`] and
//! [`Event::PeerBanned`]; fetches that fail as [`Event::FetchFailed`]
//! ([`OutboundFailure`]) and [`Event::InboundFetchFailed`]
//! ([`InboundFailure`]), as request-response names them.
//!
//! # Layout
//!
//! The types are at the crate root. The modules are the places a user
//! reaches into: [`store`] (the [`RecordStore`] trait, its errors and the
//! built-in stores), [`discovery`] (finding a key's followers beyond our
//! connections), `metrics` (feature `metrics`: Prometheus metrics, turned
//! on with `Behaviour::with_metrics`), `sim` (feature `sim`: the
//! deterministic simulator) and `coordinator` (feature `coordinator`: the
//! sans-IO core that makes every decision, for driving it yourself). The
//! libp2p shell, [`Behaviour`], only moves bytes and timers. The wire
//! format is in `docs/spec.md`.

#![warn(missing_docs)]

// The layers, lowest first; each names only itself and the layers below
// it (`tests/core/layers.rs` checks): the record and its rules, the wire, the
// stores, the sans-IO coordinator, metrics, the libp2p shell, the simulator,
// and the test utilities (`testing/`, mounted at `store::conformance`).
// `config` and `event` belong with the coordinator.
//
// Users reach the types at the crate root; the modules public here are
// the ones a user reaches into: the stores, discovery, metrics (feature
// `metrics`), the simulator (feature `sim`) and the sans-IO coordinator
// (feature `coordinator`).
mod behaviour;
mod config;
#[cfg(feature = "coordinator")]
pub mod coordinator;
// Private, a few of the coordinator's accessors serve no one: they are
// for those who drive it themselves.
#[cfg(not(feature = "coordinator"))]
#[allow(dead_code)]
mod coordinator;
// A few of the core's functions serve only the crate's own tests.
#[cfg_attr(not(feature = "test-utils"), allow(dead_code, unused_imports))]
mod core;
mod event;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(feature = "sim")]
pub mod sim;
pub mod store;
mod wire;

pub use crate::behaviour::discovery;

/// Rust types generated from `proto/pointer.proto` by pb-rs at build time.
/// The wire format is specified in `docs/spec.md`; tests that speak it by
/// hand reach these types through the `test-utils` feature.
#[allow(
    non_camel_case_types,
    non_snake_case,
    dead_code,
    unused_imports,
    missing_docs,
    clippy::all
)]
mod proto {
    /// The `pointer` protobuf package.
    pub mod pointer {
        include!(concat!(env!("OUT_DIR"), "/proto/pointer.rs"));

        /// pb-rs 0.10 takes `Ok` for the prelude's and names the variant
        /// `Ok_pb`, but its `Default` and writers still say `Status::Ok`.
        /// This constant is the name they mean, so the generated code is
        /// used as pb-rs writes it; the wire is unchanged.
        impl Status {
            /// The proto value `Status.Ok` (0), the variant `Ok_pb`.
            #[allow(non_upper_case_globals)]
            pub const Ok: Status = Status::Ok_pb;
        }

        #[cfg(test)]
        mod tests {
            use super::*;
            use quick_protobuf::{BytesReader, MessageRead, MessageWrite, Writer};

            #[test]
            fn status_ok_is_the_proto_value_zero() {
                assert_eq!(Status::Ok, Status::Ok_pb);
                assert_eq!(Status::Ok as i32, 0);
                assert_eq!(Status::default(), Status::Ok);
                assert_eq!(Status::from(0), Status::Ok);
                assert_eq!(Status::from(1), Status::NotExist);
            }

            #[test]
            fn status_ok_is_omitted_on_the_wire_and_read_back() {
                let encode = |answer: &Answer| {
                    let mut bytes = Vec::new();
                    answer
                        .write_message(&mut Writer::new(&mut bytes))
                        .expect("writes");
                    bytes
                };
                let ok = Answer {
                    status: Status::Ok,
                    ..Answer::default()
                };
                // proto3: the default value is not written.
                assert_eq!(encode(&ok), Vec::<u8>::new());
                let not_exist = Answer {
                    status: Status::NotExist,
                    ..Answer::default()
                };
                let bytes = encode(&not_exist);
                assert_eq!(bytes, vec![0x08, 0x01]);
                let read = Answer::from_reader(&mut BytesReader::from_bytes(&bytes), &bytes)
                    .expect("reads");
                assert_eq!(read, not_exist);
                let read =
                    Answer::from_reader(&mut BytesReader::from_bytes(&[0x08, 0x00]), &[0x08, 0x00])
                        .expect("reads");
                assert_eq!(read.status, Status::Ok);
            }
        }
    }
}

pub use crate::behaviour::protocol::PROTOCOL as FETCH_PROTOCOL;
pub use crate::behaviour::{topic, Behaviour, BuildError};
pub use crate::config::{
    Config, ConfigBuilder, ConfigError, MAX_DURATION, MAX_GOSSIP_RPC_BYTES, MAX_MESSAGE_BYTES,
    MAX_RECONCILE_RANGES, MAX_TOPIC_SHARDS, MAX_VERIFY_THREADS, OPERATE_OVERHEAD,
};
pub use crate::coordinator::misbehaviour::Misbehaviour;
pub use crate::coordinator::replica::{Refusal, WriteError};
pub use crate::core::accept::{KeyRefused, Limits, RejectReason};
pub use crate::core::decode_error::DecodeError;
pub use crate::core::record::{signing_key, Author, Op, Record, Signature};
pub use crate::core::topic::{Topic, TOPIC_PREFIX};
pub use crate::core::validator::{AllowList, Open, OwnedKeys, Validator};
pub use crate::event::{Event, GetOutcome, QueryId, Source};
pub use crate::wire::failure::{InboundFailure, OutboundFailure};
pub use store::{MemoryStore, MemoryStoreConfig, RecordStore};
#[cfg(feature = "redb")]
pub use store::{RedbStore, RedbStoreConfig};

/// [`Behaviour`] under the name the design card gives it: `Pointer`
/// reads well in a `#[derive(NetworkBehaviour)]` struct beside other
/// protocols' behaviours.
pub type Pointer<S = MemoryStore, D = discovery::NoDiscovery> = Behaviour<S, D>;

/// [`Event`] under the name the design card gives it.
pub type PointerEvent = Event;

/// The crate's internals, for its own tests and benchmarks (feature
/// `test-utils`): the wire encoding, the generated protobuf types, the
/// record checks and order, and the fetch protocol's connection handler.
/// Not a stable API.
#[cfg(feature = "test-utils")]
#[doc(hidden)]
pub mod internals {
    pub use crate::behaviour::{handler, protocol};
    pub use crate::coordinator::replica;
    pub use crate::core::{accept, order, reconcile, record, topic};
    pub use crate::wire::exchange;

    /// The protobuf conversions and the gossip payloads.
    pub mod wire {
        pub use crate::wire::*;
    }

    /// The generated protobuf types.
    pub mod proto {
        /// The `pointer` protobuf package.
        pub mod pointer {
            pub use crate::proto::pointer::*;
        }
    }
}
