//! A hostile peer speaking raw gossipsub, with none of Pointer's checks: it
//! subscribes to whatever topics it names and publishes whatever bytes it
//! likes; on the fetch protocol it answers every key of every `Ask` with
//! `NotExist` or a stale record it was handed, as a peer out to capture
//! catch-ups would. It runs on a thread of its own, so tests drive their
//! Pointer nodes with the usual helpers while it acts; what it knows of the target's subscriptions, and how many asks it
//! answered, are shared, so a wait can look at them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use asynchronous_codec::Framed;
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{PeerId, Stream, Swarm};
use libp2p_swarm_test::SwarmExt;
use pointer::internals::proto::pointer::{Answer, Ask, Entry, Operate};
use pointer::FETCH_PROTOCOL as PROTOCOL;
use quick_protobuf_codec::Codec;

use super::{answer_of, entry_for, Node};

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Raw {
    gossipsub: gossipsub::Behaviour,
    stream: libp2p_stream::Behaviour,
}

/// What the test asks the rogue to do.
enum Command {
    Subscribe(String),
    Publish(String, Vec<u8>),
    Dial(libp2p::Multiaddr),
}

/// A handle on the rogue's task.
pub struct Rogue {
    pub peer: PeerId,
    /// The identity it signs with, when it signs at all.
    pub keypair: libp2p::identity::Keypair,
    commands: mpsc::UnboundedSender<Command>,
    topics: Subscriptions,
    /// Publishes that gossipsub refused (no peer on the topic, duplicate).
    pub refused: Arc<Mutex<usize>>,
    /// `Ask`s it answered (all with `NotExist`).
    pub asks: Arc<Mutex<usize>>,
    /// Connections open now.
    connections: Arc<Mutex<i64>>,
    stale: Stale,
    /// Gossip messages it received, and their bytes.
    heard: Heard,
}

/// Gossip messages a rogue received, and their payload bytes.
type Heard = Arc<Mutex<(usize, usize)>>;

/// Subscriptions a rogue saw, by peer and topic.
type Subscriptions = Arc<Mutex<HashMap<(PeerId, String), usize>>>;

/// What the rogue's thread shares with its handle.
struct Shared {
    seen: Subscriptions,
    failed: Arc<Mutex<usize>>,
    links: Arc<Mutex<i64>>,
    answered: Arc<Mutex<usize>>,
    records: Stale,
    heard: Heard,
}

/// The rogue's loop: swarm events and the test's commands, until the
/// handle is dropped.
async fn drive(mut swarm: Swarm<Raw>, mut rx: mpsc::UnboundedReceiver<Command>, shared: Shared) {
    let mut incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(PROTOCOL)
        .expect("first to accept the protocol");
    let (answered, records) = (shared.answered, shared.records);
    tokio::spawn(async move {
        while let Some((_, stream)) = incoming.next().await {
            tokio::spawn(deny(stream, answered.clone(), records.clone()));
        }
    });
    let (seen, failed, links) = (shared.seen, shared.failed, shared.links);
    let heard = shared.heard;
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(RawEvent::Gossipsub(gossipsub::Event::Message { message, .. })) => {
                    let mut heard = heard.lock().expect("lock");
                    heard.0 += 1;
                    heard.1 += message.data.len();
                }
                SwarmEvent::Behaviour(RawEvent::Gossipsub(gossipsub::Event::Subscribed { peer_id, topic })) => {
                    let key = (peer_id, topic.into_string());
                    *seen.lock().expect("lock").entry(key).or_insert(0) += 1;
                }
                SwarmEvent::ConnectionEstablished { .. } => *links.lock().expect("lock") += 1,
                SwarmEvent::ConnectionClosed { .. } => *links.lock().expect("lock") -= 1,
                _ => {}
            },
            command = rx.next() => match command {
                None => return,
                Some(Command::Subscribe(topic)) => {
                    let _ = swarm.behaviour_mut().gossipsub.subscribe(&IdentTopic::new(topic));
                }
                Some(Command::Dial(addr)) => {
                    let _ = swarm.dial(addr);
                }
                Some(Command::Publish(topic, data)) => {
                    if swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(topic), data).is_err() {
                        *failed.lock().expect("lock") += 1;
                    }
                }
            },
        }
    }
}

/// Records the rogue answers with, by key (stale ones, in the tests).
type Stale = Arc<Mutex<HashMap<String, Operate>>>;

/// Answers one fetch stream: the stale record it was given for a key, and
/// `NotExist` for every other key asked.
async fn deny(stream: Stream, asks: Arc<Mutex<usize>>, stale: Stale) {
    let mut framed = Framed::new(stream, Codec::<Answer, Ask>::new(1 << 20));
    let Some(Ok(ask)) = framed.next().await else {
        return;
    };
    let keys: Vec<String> = std::iter::once(ask.key).chain(ask.more).collect();
    let entries: Vec<Entry> = {
        let stale = stale.lock().expect("lock");
        keys.iter().map(|k| entry_for(&stale, k)).collect()
    };
    let _ = framed.send(answer_of(entries.into_iter())).await;
    let _ = framed.close().await;
    *asks.lock().expect("lock") += 1;
}

fn raw() -> Raw {
    Raw {
        gossipsub: raw_gossipsub(),
        stream: libp2p_stream::Behaviour::new(),
    }
}

fn raw_gossipsub() -> gossipsub::Behaviour {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| {
            MessageId::new(&pointer::internals::wire::message_id(
                m.topic.as_str(),
                &m.data,
            ))
        })
        .max_transmit_size(16 * 1024 * 1024)
        .max_control_message_size(16 * 1024 * 1024)
        .build()
        .expect("valid config");
    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).expect("valid behaviour")
}

impl Rogue {
    /// A rogue connected to `target`, already running.
    pub async fn connected_to(target: &mut Node) -> Rogue {
        let addr = target
            .external_addresses()
            .next()
            .expect("the target listens")
            .clone();
        let rogue = Rogue::run(
            move || {
                let mut swarm: Swarm<Raw> = Swarm::new_ephemeral_tokio(|_| raw());
                swarm.dial(addr).expect("dial");
                swarm
            },
            libp2p::identity::Keypair::generate_ed25519(),
        );
        loop {
            if let SwarmEvent::ConnectionEstablished { peer_id, .. } =
                target.select_next_some().await
            {
                if peer_id == rogue.peer {
                    return rogue;
                }
            }
        }
    }

    /// A rogue on TCP that dials `addr` (a node in another process).
    pub fn dialing(addr: libp2p::Multiaddr) -> Rogue {
        let keypair = libp2p::identity::Keypair::generate_ed25519();
        let identity = keypair.clone();
        Rogue::run(
            move || {
                let mut swarm = libp2p::SwarmBuilder::with_existing_identity(identity)
                    .with_tokio()
                    .with_tcp(
                        libp2p::tcp::Config::default(),
                        libp2p::noise::Config::new,
                        libp2p::yamux::Config::default,
                    )
                    .expect("tcp transport")
                    .with_behaviour(|_| raw())
                    .expect("behaviour")
                    .build();
                swarm.dial(addr).expect("dial");
                swarm
            },
            keypair,
        )
    }

    /// Runs the swarm `make` builds on a thread of its own, as a peer on
    /// another machine would: what it spends sending is not taken from
    /// the nodes under test, which share the test's thread. It takes
    /// commands, answers fetch streams with `NotExist`, and counts what it
    /// hears. It stops when the handle is dropped.
    fn run(
        make: impl FnOnce() -> Swarm<Raw> + Send + 'static,
        keypair: libp2p::identity::Keypair,
    ) -> Rogue {
        let asks = Arc::new(Mutex::new(0));
        let stale = Stale::default();
        let (answered, records) = (asks.clone(), stale.clone());
        let (commands, rx) = mpsc::unbounded();
        let topics = Arc::new(Mutex::new(HashMap::new()));
        let refused = Arc::new(Mutex::new(0));
        let (seen, failed) = (topics.clone(), refused.clone());
        let connections = Arc::new(Mutex::new(0));
        let links = connections.clone();
        let heard = Heard::default();
        let heard_shared = heard.clone();
        let (started, peer) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for the rogue");
            runtime.block_on(async move {
                let swarm = make();
                let _ = started.send(*swarm.local_peer_id());
                let shared = Shared {
                    seen,
                    failed,
                    links,
                    answered,
                    records,
                    heard: heard_shared,
                };
                drive(swarm, rx, shared).await;
            });
        });
        let peer = peer.recv().expect("the rogue's thread starts");
        Rogue {
            peer,
            keypair,
            commands,
            topics,
            refused,
            asks,
            connections,
            stale,
            heard,
        }
    }

    /// Subscribes to `topic` (any string, not only a record topic).
    pub fn subscribe(&self, topic: impl Into<String>) {
        let _ = self
            .commands
            .unbounded_send(Command::Subscribe(topic.into()));
    }

    /// Publishes `data` on `topic` as it is.
    pub fn publish(&self, topic: impl Into<String>, data: Vec<u8>) {
        let _ = self
            .commands
            .unbounded_send(Command::Publish(topic.into(), data));
    }

    /// Dials `addr` again (after the target closed on it).
    pub fn dial(&self, addr: libp2p::Multiaddr) {
        let _ = self.commands.unbounded_send(Command::Dial(addr));
    }

    /// From now on answers asks for `record`'s key with `record` (an old
    /// one, to serve stale data).
    pub fn serve(&self, record: &pointer::Record) {
        let op = pointer::internals::wire::to_operate(record);
        self.stale
            .lock()
            .expect("lock")
            .insert(record.key().to_owned(), op);
    }

    /// Whether it has a connection open.
    pub fn is_connected(&self) -> bool {
        *self.connections.lock().expect("lock") > 0
    }

    /// How many gossip messages it received, and their payload bytes.
    pub fn heard(&self) -> (usize, usize) {
        *self.heard.lock().expect("lock")
    }

    /// How many `Ask`s it answered.
    pub fn asks_answered(&self) -> usize {
        *self.asks.lock().expect("lock")
    }

    /// How many subscriptions of `peer` the rogue has heard.
    pub fn topics_of(&self, peer: &PeerId) -> usize {
        let seen = self.topics.lock().expect("lock");
        seen.iter()
            .filter(|((p, _), _)| p == peer)
            .map(|(_, n)| n)
            .sum()
    }

    /// How many times `peer` was seen subscribing to `topic`.
    pub fn subscriptions_of(&self, peer: &PeerId, topic: &str) -> usize {
        let seen = self.topics.lock().expect("lock");
        seen.get(&(*peer, topic.to_owned())).copied().unwrap_or(0)
    }
}

/// The topic string of `key`.
pub fn topic_of(key: &str) -> String {
    format!("/pointer/record/{key}")
}
