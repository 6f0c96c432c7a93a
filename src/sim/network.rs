//! The model network: nodes running the real [`Coordinator`], links that
//! come and go, a gossipsub model (`gossip.rs`), the fetch protocol with
//! latency, timers and per-node clocks, all driven by one seeded RNG in
//! virtual time.

mod gossip;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::Duration;

use crate::config::Config;
use crate::coordinator::replica::WriteError;
use crate::coordinator::{Coordinator, Input, Output, Timer};
use crate::core::record::{Author, Record};
use crate::core::topic::Topic;
use crate::core::validator::Validator;
use crate::event::Event;
use crate::store::MemoryStore;
use crate::wire;
use crate::wire::exchange::{Entry, Reply, Request, Response};
use crate::wire::failure::OutboundFailure;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::MessageId;
use libp2p::PeerId;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// The unix time, in milliseconds, at which every simulation starts.
pub const EPOCH_MS: i64 = 1_700_000_000_000;

/// How the model network behaves.
#[derive(Debug, Clone)]
pub struct NetParams {
    /// One-way latency of a message, drawn uniformly from this range.
    pub latency: (Duration, Duration),
    /// Probability that one gossip transmission is lost.
    pub gossip_loss: f64,
    /// Most mesh peers a node forwards a gossip message to.
    pub mesh_degree: usize,
    /// How long a node's gossipsub remembers a message id as seen.
    pub duplicate_window: Duration,
}

impl Default for NetParams {
    fn default() -> Self {
        NetParams {
            latency: (Duration::from_millis(5), Duration::from_millis(50)),
            gossip_loss: 0.01,
            mesh_degree: 8,
            duplicate_window: Duration::from_secs(60),
        }
    }
}

/// Counters of what crossed the model network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Gossip transmissions (one per message and link it crossed).
    pub gossip: u64,
    /// `Ask`s sent.
    pub asks: u64,
    /// Records carried in answers.
    pub answered_records: u64,
    /// Keys answered `Current` (no record bytes sent).
    pub answered_current: u64,
}

/// What node `i` is built with: its settings and who may write which key.
pub type NodeSetup = (Config, Box<dyn Validator>);

/// What happens at a moment of virtual time.
#[derive(Debug)]
enum Scheduled {
    Gossip {
        to: usize,
        from: usize,
        link: u64,
        topic: Topic,
        data: Vec<u8>,
    },
    Subscription {
        to: usize,
        from: usize,
        link: u64,
        topic: Topic,
        joined: bool,
    },
    Ask {
        to: usize,
        from: usize,
        link: u64,
        id: u64,
        request: Request,
    },
    Reply {
        to: usize,
        link: u64,
        id: u64,
        keys: Vec<String>,
        ranges: usize,
        reply: Reply,
    },
    Timer {
        node: usize,
        life: u64,
        timer: Timer,
        generation: u64,
    },
}

/// A node of the model network.
struct Node {
    signer: SigningKey,
    peer: PeerId,
    skew_ms: i64,
    core: Option<Coordinator<MemoryStore>>,
    /// The store of a crashed node, kept for its restart.
    disk: Option<MemoryStore>,
    /// Bumped at each crash, so that the dead node's timers do not fire.
    life: u64,
    joined: BTreeSet<Topic>,
    seen: HashMap<MessageId, Duration>,
    /// Gossip messages waiting for the coordinator's verdict.
    validating: HashMap<MessageId, (usize, Topic, Vec<u8>)>,
    timers: HashMap<Timer, u64>,
    /// Inbound asks being answered: reply id → (asker, asker's ask id,
    /// keys, how many ranges).
    answering: HashMap<u64, (usize, u64, Vec<String>, usize)>,
    next_reply: u64,
    events: Vec<Event>,
}

/// N coordinators over a model network, in virtual time; see the
/// [module docs](crate::sim).
pub struct Network {
    params: NetParams,
    config: Box<dyn Fn(usize) -> NodeSetup>,
    nodes: Vec<Node>,
    by_peer: HashMap<PeerId, usize>,
    /// Links that are up, with their generation (bumped at each cut).
    links: BTreeMap<(usize, usize), u64>,
    generation: u64,
    /// Asks in flight: (asker, ask id) → answerer and link generation.
    in_flight: BTreeMap<(usize, u64), (usize, u64)>,
    queue: BinaryHeap<Reverse<(Duration, u64)>>,
    pending: HashMap<u64, Scheduled>,
    seq: u64,
    now: Duration,
    rng: SmallRng,
    traffic: Traffic,
    /// Nodes that handled inputs at the current moment: they pack asks.
    dirty: BTreeSet<usize>,
    trace: bool,
}

impl Network {
    /// One node per signer, node `i` with clock skew `skews_ms[i]`
    /// (milliseconds; missing ones are 0) and built with the settings and
    /// validator `config(i)` gives, no links yet. Every random choice
    /// derives from `seed`.
    pub fn new(
        seed: u64,
        signers: Vec<SigningKey>,
        skews_ms: &[i64],
        params: NetParams,
        config: impl Fn(usize) -> NodeSetup + 'static,
    ) -> Self {
        let rng = SmallRng::seed_from_u64(seed);
        let mut net = Network {
            params,
            config: Box::new(config),
            nodes: Vec::new(),
            by_peer: HashMap::new(),
            links: BTreeMap::new(),
            generation: 0,
            in_flight: BTreeMap::new(),
            queue: BinaryHeap::new(),
            pending: HashMap::new(),
            seq: 0,
            now: Duration::ZERO,
            rng,
            traffic: Traffic::default(),
            dirty: BTreeSet::new(),
            trace: false,
        };
        for (i, signer) in signers.into_iter().enumerate() {
            let skew_ms = skews_ms.get(i).copied().unwrap_or(0);
            let peer = Author::from(&signer)
                .peer_id()
                .unwrap_or_else(PeerId::random);
            net.by_peer.insert(peer, i);
            net.nodes.push(Node {
                signer,
                peer,
                skew_ms,
                core: None,
                disk: Some(MemoryStore::new()),
                life: 0,
                joined: BTreeSet::new(),
                seen: HashMap::new(),
                validating: HashMap::new(),
                timers: HashMap::new(),
                answering: HashMap::new(),
                next_reply: 0,
                events: Vec::new(),
            });
            net.start(i);
        }
        net
    }

    /// Prints every input and output to stderr, for replaying a failure.
    pub fn set_trace(&mut self, on: bool) {
        self.trace = on;
    }

    /// The virtual time since the start.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// How many nodes there are.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether there are no nodes.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// What crossed the network so far.
    pub fn traffic(&self) -> Traffic {
        self.traffic
    }

    /// The peer id of node `i`.
    pub fn peer(&self, i: usize) -> PeerId {
        self.nodes[i].peer
    }

    /// The signing key of node `i`.
    pub fn signer(&self, i: usize) -> &SigningKey {
        &self.nodes[i].signer
    }

    /// Node `i`'s coordinator, unless it is crashed.
    pub fn node(&self, i: usize) -> Option<&Coordinator<MemoryStore>> {
        self.nodes[i].core.as_ref()
    }

    /// Node `i`'s wall clock, in milliseconds since the Unix epoch.
    pub fn clock_ms(&self, i: usize) -> i64 {
        let virtual_ms = i64::try_from(self.now.as_millis()).unwrap_or(i64::MAX);
        EPOCH_MS + virtual_ms + self.nodes[i].skew_ms
    }

    /// Takes the events node `i` emitted so far.
    pub fn take_events(&mut self, i: usize) -> Vec<Event> {
        std::mem::take(&mut self.nodes[i].events)
    }

    /// Whether the link between `a` and `b` is up.
    pub fn is_linked(&self, a: usize, b: usize) -> bool {
        self.links.contains_key(&ordered(a, b))
    }

    /// Runs `command` on node `i`'s coordinator at its clock, then executes
    /// what it decided. `None` if the node is crashed.
    pub fn command<T>(
        &mut self,
        i: usize,
        command: impl FnOnce(&mut Coordinator<MemoryStore>, i64) -> T,
    ) -> Option<T> {
        let now = self.clock_ms(i);
        let result = command(self.nodes[i].core.as_mut()?, now);
        self.dirty.insert(i);
        self.drain(i);
        Some(result)
    }

    /// `put` on node `i`.
    pub fn put(&mut self, i: usize, key: &str, value: &str) -> Option<Result<Record, WriteError>> {
        self.command(i, |c, now| c.put(key, value, now))
    }

    /// Brings the link between `a` and `b` up (if both nodes are up): each
    /// side learns the other's subscriptions, as gossipsub's hello tells.
    pub fn link(&mut self, a: usize, b: usize) {
        let (a, b) = ordered(a, b);
        if a == b || self.links.contains_key(&(a, b)) || !self.is_up(a) || !self.is_up(b) {
            return;
        }
        self.generation += 1;
        let link = self.generation;
        self.links.insert((a, b), link);
        for (me, other) in [(a, b), (b, a)] {
            let peer = self.nodes[other].peer;
            self.input(me, Input::Connected { peer });
            let topics: Vec<Topic> = self.nodes[other].joined.iter().cloned().collect();
            for topic in topics {
                let delay = self.latency();
                self.schedule(
                    delay,
                    Scheduled::Subscription {
                        to: me,
                        from: other,
                        link,
                        topic,
                        joined: true,
                    },
                );
            }
        }
    }

    /// Cuts the link between `a` and `b`: asks in flight over it fail.
    pub fn cut(&mut self, a: usize, b: usize) {
        let (a, b) = ordered(a, b);
        if self.links.remove(&(a, b)).is_none() {
            return;
        }
        for (me, other) in [(a, b), (b, a)] {
            let lost: Vec<u64> = self
                .in_flight
                .iter()
                .filter(|(&(asker, _), &(answerer, _))| asker == me && answerer == other)
                .map(|(&(_, id), _)| id)
                .collect();
            for id in lost {
                self.in_flight.remove(&(me, id));
                let result = Err(OutboundFailure::ConnectionClosed);
                self.input(me, Input::Answered { id, result });
            }
            let peer = self.nodes[other].peer;
            self.input(me, Input::Disconnected { peer });
        }
    }

    /// Crashes node `i`: its links are cut, its state is lost except its
    /// store (what it flushed, which for a memory store is everything).
    pub fn crash(&mut self, i: usize) {
        if !self.is_up(i) {
            return;
        }
        let linked: Vec<usize> = self.neighbours(i);
        for other in linked {
            self.cut(i, other);
        }
        let node = &mut self.nodes[i];
        node.disk = node.core.take().map(Coordinator::into_store);
        node.life += 1;
        node.joined.clear();
        node.seen.clear();
        node.validating.clear();
        node.timers.clear();
        node.answering.clear();
    }

    /// Restarts a crashed node `i` on its store (no links yet).
    pub fn restart(&mut self, i: usize) {
        if !self.is_up(i) {
            self.start(i);
        }
    }

    /// Whether node `i` is running.
    pub fn is_up(&self, i: usize) -> bool {
        self.nodes[i].core.is_some()
    }

    /// The nodes linked to `i`.
    pub fn neighbours(&self, i: usize) -> Vec<usize> {
        self.links
            .keys()
            .filter_map(|&(a, b)| match (a == i, b == i) {
                (true, _) => Some(b),
                (_, true) => Some(a),
                _ => None,
            })
            .collect()
    }

    /// Sends `record`'s gossip payload from node `from` to its neighbours
    /// on the key's topic as if it were published there, without `from`'s
    /// coordinator judging it: how a hostile node injects a record.
    pub fn inject(&mut self, from: usize, record: &Record) {
        let data = wire::encode_operate(record);
        self.flood(from, None, Topic::Key(record.key().to_owned()), data);
    }

    /// Runs the network until virtual time `until`, or until nothing is
    /// left to happen.
    pub fn run_until(&mut self, until: Duration) {
        while let Some(&Reverse((at, _))) = self.queue.peek() {
            if at > until {
                break;
            }
            if at > self.now {
                self.settle();
                self.now = at;
            }
            if let Some(Reverse((_, seq))) = self.queue.pop() {
                if let Some(event) = self.pending.remove(&seq) {
                    self.deliver(event);
                }
            }
        }
        self.settle();
        self.now = self.now.max(until);
    }

    fn start(&mut self, i: usize) {
        let seed = self.rng.random();
        let (config, validator) = (self.config)(i);
        let node = &mut self.nodes[i];
        let store = node.disk.take().unwrap_or_default();
        let core = Coordinator::new(node.signer.clone(), store, config, validator, seed);
        node.core = Some(core);
        self.dirty.insert(i);
        self.drain(i);
    }

    /// The inputs of this moment are handled: every node that handled some
    /// packs its waiting asks.
    fn settle(&mut self) {
        while let Some(i) = self.dirty.pop_first() {
            if let Some(core) = self.nodes[i].core.as_mut() {
                core.pack_asks();
            }
            self.drain(i);
        }
    }

    fn input(&mut self, i: usize, input: Input) {
        let now = self.clock_ms(i);
        let Some(core) = self.nodes[i].core.as_mut() else {
            return;
        };
        if self.trace {
            eprintln!(
                "{:>10.3?} n{i} <- {}",
                self.now,
                brief(&format!("{input:?}"))
            );
        }
        core.handle(input, now);
        self.dirty.insert(i);
        self.drain(i);
    }

    fn drain(&mut self, i: usize) {
        while let Some(output) = self.nodes[i]
            .core
            .as_mut()
            .and_then(Coordinator::poll_output)
        {
            self.execute(i, output);
        }
    }

    fn execute(&mut self, i: usize, output: Output) {
        if self.trace {
            eprintln!(
                "{:>10.3?} n{i} -> {}",
                self.now,
                brief(&format!("{output:?}"))
            );
        }
        match output {
            Output::Join(topic) => self.set_joined(i, topic, true),
            Output::Leave(topic) => self.set_joined(i, topic, false),
            Output::Publish { topic, data, .. } => self.publish(i, topic, data),
            Output::Verdict {
                message,
                acceptance,
                ..
            } => self.on_verdict(i, &message, acceptance),
            Output::Ask { peer, id, request } => self.send_ask(i, peer, id, request),
            Output::Reply { id, reply } => self.send_reply(i, id, reply),
            Output::SetTimer { timer, after } => {
                let node = &mut self.nodes[i];
                let generation = node.timers.entry(timer).or_default();
                *generation += 1;
                let event = Scheduled::Timer {
                    node: i,
                    life: node.life,
                    timer,
                    generation: *generation,
                };
                self.schedule(after, event);
            }
            Output::Ban { peer, .. } => {
                if let Some(&other) = self.by_peer.get(&peer) {
                    self.cut(i, other);
                }
            }
            Output::Event(event) => self.nodes[i].events.push(event),
            // The model has no DHT: its coordinators never enable
            // discovery, so these never come.
            Output::Provide(_)
            | Output::StopProviding(_)
            | Output::FindProviders(_)
            | Output::Dial(_) => {}
        }
    }

    fn send_ask(&mut self, i: usize, peer: PeerId, id: u64, request: Request) {
        let to = self.by_peer.get(&peer).copied();
        let link = to.and_then(|to| self.links.get(&ordered(i, to)).copied());
        let (Some(to), Some(link)) = (to, link) else {
            let result = Err(OutboundFailure::ConnectionClosed);
            return self.input(i, Input::Answered { id, result });
        };
        self.traffic.asks += 1;
        self.in_flight.insert((i, id), (to, link));
        let delay = self.latency();
        self.schedule(
            delay,
            Scheduled::Ask {
                to,
                from: i,
                link,
                id,
                request,
            },
        );
    }

    fn send_reply(&mut self, i: usize, answer: u64, reply: Reply) {
        let Some((to, id, keys, ranges)) = self.nodes[i].answering.remove(&answer) else {
            return;
        };
        let Some(&link) = self.links.get(&ordered(i, to)) else {
            return;
        };
        for entry in &reply.entries {
            match entry {
                Entry::Record(_) => self.traffic.answered_records += 1,
                Entry::Current => self.traffic.answered_current += 1,
                Entry::NotExist => {}
            }
        }
        let delay = self.latency();
        self.schedule(
            delay,
            Scheduled::Reply {
                to,
                link,
                id,
                keys,
                ranges,
                reply,
            },
        );
    }

    fn deliver(&mut self, event: Scheduled) {
        match event {
            Scheduled::Gossip {
                to,
                from,
                link,
                topic,
                data,
            } => {
                if self.link_is(to, from, link) {
                    self.receive_gossip(to, from, topic, data);
                }
            }
            Scheduled::Subscription {
                to,
                from,
                link,
                topic,
                joined,
            } => {
                if self.link_is(to, from, link) && self.recognises(to, &topic) {
                    let peer = self.nodes[from].peer;
                    let input = if joined {
                        Input::PeerSubscribed { peer, topic }
                    } else {
                        Input::PeerUnsubscribed { peer, topic }
                    };
                    self.input(to, input);
                }
            }
            Scheduled::Ask {
                to,
                from,
                link,
                id,
                request,
            } => {
                if self.link_is(to, from, link) {
                    let node = &mut self.nodes[to];
                    node.next_reply += 1;
                    let reply = node.next_reply;
                    let names = request.keys.iter().map(|k| k.key.clone()).collect();
                    node.answering
                        .insert(reply, (from, id, names, request.ranges.len()));
                    let peer = self.nodes[from].peer;
                    // As the answerer reads it off a stream.
                    let Ok(request) = wire::from_ask(wire::to_ask(request)) else {
                        return;
                    };
                    self.input(
                        to,
                        Input::Asked {
                            peer,
                            id: reply,
                            request,
                        },
                    );
                }
            }
            Scheduled::Reply {
                to,
                link,
                id,
                keys,
                ranges,
                reply,
            } => {
                if self
                    .in_flight
                    .get(&(to, id))
                    .is_some_and(|(_, l)| *l == link)
                {
                    self.in_flight.remove(&(to, id));
                    let result = self.through_the_wire(to, reply, &keys, ranges);
                    self.input(to, Input::Answered { id, result });
                }
            }
            Scheduled::Timer {
                node,
                life,
                timer,
                generation,
            } => {
                let current = &self.nodes[node];
                if current.life == life && current.timers.get(&timer) == Some(&generation) {
                    self.input(node, Input::Timer(timer));
                }
            }
        }
    }

    /// The answer as the asker reads it: encoded within the message limit
    /// and decoded again, so that what does not fit is left out as it is
    /// on a real stream.
    fn through_the_wire(
        &self,
        asker: usize,
        reply: Reply,
        keys: &[String],
        ranges: usize,
    ) -> Result<Response, OutboundFailure> {
        let limit = self.nodes[asker]
            .core
            .as_ref()
            .map_or(usize::MAX, |c| c.config().max_message_bytes());
        let answer = wire::to_answer(reply, limit);
        wire::from_answer(answer, keys, ranges)
            .map_err(|e| OutboundFailure::Malformed(e.to_string()))
    }

    fn link_is(&self, a: usize, b: usize, link: u64) -> bool {
        self.links.get(&ordered(a, b)) == Some(&link)
    }

    fn latency(&mut self) -> Duration {
        let (low, high) = self.params.latency;
        if high <= low {
            return low;
        }
        let micros = self.rng.random_range(low.as_micros()..high.as_micros());
        Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX))
    }

    fn schedule(&mut self, after: Duration, event: Scheduled) {
        self.seq += 1;
        let at = self.now.saturating_add(after);
        self.pending.insert(self.seq, event);
        self.queue.push(Reverse((at, self.seq)));
    }
}

/// A trace line, without the bytes of keys and signatures.
fn brief(line: &str) -> String {
    line.chars().take(300).collect()
}

fn ordered(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}
