//! A small, explicit harness for several coordinators: explicit links, a
//! clock the test moves by hand, and a queue of deliveries that carries
//! each output to its destination as the shell would (quinn-proto's tests
//! are the model). No sockets, no sleeps, no randomness but the seeds.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use ed25519_dalek::SigningKey;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::topic::Topic;
use crate::core::validator::Validator;
use crate::event::Event;
use crate::store::MemoryStore;
use crate::wire;
use crate::wire::failure::OutboundFailure;
use crate::Config;

/// The hand clock's start, ms since the Unix epoch.
pub(super) const T0: i64 = 1_800_000_000_000;

/// Most deliveries `run_until_idle` makes before it calls the run a loop.
const MAX_STEPS: usize = 100_000;

/// One node: its coordinator and what the shell around it remembers.
pub(super) struct Node {
    pub(super) core: Coordinator<MemoryStore>,
    peer: PeerId,
    /// Topics it joined (gossipsub's subscriptions).
    joined: BTreeSet<Topic>,
    /// Armed timers and their deadlines on the hand clock.
    timers: HashMap<Timer, i64>,
    /// Gossip message ids seen (gossipsub's duplicate cache).
    seen: HashSet<MessageId>,
    /// Gossip waiting for this node's verdict: who sent it, topic, bytes.
    validating: HashMap<MessageId, (usize, Topic, Vec<u8>)>,
    /// Asks this node answers, by the id it was given: the asker, the
    /// asker's id, the keys and the count of ranges asked.
    answering: HashMap<u64, (usize, u64, Vec<String>, usize)>,
    next_answer: u64,
    /// What the node told its user.
    pub(super) events: Vec<Event>,
    /// Its verdicts on gossip: the sender and the acceptance.
    pub(super) verdicts: Vec<(PeerId, MessageAcceptance)>,
    /// Peers it banned.
    pub(super) bans: Vec<PeerId>,
    /// Asks it sent that carried key ranges.
    pub(super) range_asks: usize,
    /// Records it published.
    pub(super) publishes: usize,
}

/// Something in flight to node `to`.
enum Delivery {
    /// A gossip message from `from` (checked on arrival against the link,
    /// the receiver's topics and its duplicate cache).
    Gossip {
        to: usize,
        from: usize,
        topic: Topic,
        data: Vec<u8>,
    },
    /// An input; from a peer over a link (dropped if the link is gone),
    /// or from the shell itself (`from: None`).
    Input {
        to: usize,
        from: Option<usize>,
        input: Input,
    },
}

/// N coordinators, their links, a hand clock and the deliveries in flight.
pub(super) struct Net {
    pub(super) now: i64,
    pub(super) nodes: Vec<Node>,
    links: BTreeSet<(usize, usize)>,
    queue: VecDeque<Delivery>,
}

impl Net {
    /// `n` nodes, node `i` signing with the key of bytes `[i + 1; 32]`,
    /// each with the config and validator `make` gives it.
    pub(super) fn new(n: usize, make: impl Fn(usize) -> (Config, Box<dyn Validator>)) -> Self {
        let mut net = Net {
            now: T0,
            nodes: Vec::new(),
            links: BTreeSet::new(),
            queue: VecDeque::new(),
        };
        for i in 0..n {
            let (config, validator) = make(i);
            net.add(config, validator);
        }
        net
    }

    /// Adds a node, unlinked; returns its index.
    pub(super) fn add(&mut self, config: Config, validator: Box<dyn Validator>) -> usize {
        let i = self.nodes.len();
        let seed = u8::try_from(i + 1).expect("few nodes");
        let signer = SigningKey::from_bytes(&[seed; 32]);
        let core = Coordinator::new(signer, MemoryStore::new(), config, validator, 7);
        let peer = core.local_peer_id();
        self.nodes.push(Node {
            core,
            peer,
            joined: BTreeSet::new(),
            timers: HashMap::new(),
            seen: HashSet::new(),
            validating: HashMap::new(),
            answering: HashMap::new(),
            next_answer: 0,
            events: Vec::new(),
            verdicts: Vec::new(),
            bans: Vec::new(),
            range_asks: 0,
            publishes: 0,
        });
        self.drain(i);
        i
    }

    pub(super) fn peer(&self, i: usize) -> PeerId {
        self.nodes[i].peer
    }

    pub(super) fn core(&self, i: usize) -> &Coordinator<MemoryStore> {
        &self.nodes[i].core
    }

    /// Runs a command on node `i` at the hand clock's time, then executes
    /// what it produced.
    pub(super) fn with<T>(
        &mut self,
        i: usize,
        command: impl FnOnce(&mut Coordinator<MemoryStore>, i64) -> T,
    ) -> T {
        let result = command(&mut self.nodes[i].core, self.now);
        self.drain(i);
        result
    }

    /// Links `a` and `b`: each learns the connection, then the other's
    /// topics (gossipsub's hello).
    pub(super) fn link(&mut self, a: usize, b: usize) {
        assert!(a != b && self.links.insert(ordered(a, b)), "a new link");
        for (me, other) in [(a, b), (b, a)] {
            let peer = self.nodes[other].peer;
            let input = Input::Connected { peer };
            self.send(me, Some(other), input);
        }
        for (me, other) in [(a, b), (b, a)] {
            let peer = self.nodes[other].peer;
            for topic in self.nodes[other].joined.clone() {
                let input = Input::PeerSubscribed { peer, topic };
                self.send(me, Some(other), input);
            }
        }
    }

    /// Cuts the link between `a` and `b`: what is in flight on it is lost,
    /// and each side learns the peer is gone.
    pub(super) fn cut(&mut self, a: usize, b: usize) {
        if !self.links.remove(&ordered(a, b)) {
            return;
        }
        for (me, other) in [(a, b), (b, a)] {
            let peer = self.nodes[other].peer;
            self.nodes[me]
                .core
                .handle(Input::Disconnected { peer }, self.now);
            self.drain(me);
        }
    }

    /// Hands `data` to `to` as gossip `from` forwarded on `topic`, as if
    /// `from` had published it.
    pub(super) fn inject_gossip(&mut self, from: usize, to: usize, topic: Topic, data: Vec<u8>) {
        self.queue.push_back(Delivery::Gossip {
            to,
            from,
            topic,
            data,
        });
    }

    /// Makes one delivery; `false` when none was in flight.
    pub(super) fn step(&mut self) -> bool {
        let Some(delivery) = self.queue.pop_front() else {
            return false;
        };
        match delivery {
            Delivery::Gossip {
                to,
                from,
                topic,
                data,
            } => self.receive_gossip(to, from, topic, data),
            Delivery::Input { to, from, input } => {
                if from.is_none_or(|from| self.is_linked(to, from)) {
                    self.input(to, input);
                }
            }
        }
        true
    }

    /// Makes deliveries until none is in flight; the clock stands still.
    pub(super) fn run_until_idle(&mut self) {
        for _ in 0..MAX_STEPS {
            if !self.step() {
                return;
            }
        }
        panic!("still busy after {MAX_STEPS} deliveries");
    }

    /// Moves the clock forward by `ms`, firing every timer due on the way
    /// at its deadline, each followed by what it set off.
    pub(super) fn advance(&mut self, ms: i64) {
        let until = self.now + ms;
        self.run_until_idle();
        loop {
            let due = self
                .nodes
                .iter()
                .enumerate()
                .flat_map(|(i, n)| n.timers.iter().map(move |(t, at)| (*at, i, *t)))
                .filter(|(at, _, _)| *at <= until)
                .min_by_key(|(at, i, t)| (*at, *i, format!("{t:?}")));
            let Some((at, i, timer)) = due else { break };
            self.nodes[i].timers.remove(&timer);
            self.now = self.now.max(at);
            self.input(i, Input::Timer(timer));
            self.run_until_idle();
        }
        self.now = until;
    }

    /// Queues `input` for node `to`, from a linked peer or (`None`) the
    /// shell.
    fn send(&mut self, to: usize, from: Option<usize>, input: Input) {
        self.queue.push_back(Delivery::Input { to, from, input });
    }

    fn is_linked(&self, a: usize, b: usize) -> bool {
        self.links.contains(&ordered(a, b))
    }

    fn index_of(&self, peer: PeerId) -> Option<usize> {
        self.nodes.iter().position(|n| n.peer == peer)
    }

    fn linked_to(&self, i: usize) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&j| j != i && self.is_linked(i, j))
            .collect()
    }

    fn input(&mut self, i: usize, input: Input) {
        self.nodes[i].core.handle(input, self.now);
        self.drain(i);
    }

    /// Packs the node's asks, then executes each of its outputs.
    fn drain(&mut self, i: usize) {
        self.nodes[i].core.pack_asks();
        while let Some(output) = self.nodes[i].core.poll_output() {
            self.execute(i, output);
        }
    }

    fn execute(&mut self, i: usize, output: Output) {
        match output {
            Output::Join(topic) => self.set_joined(i, topic, true),
            Output::Leave(topic) => self.set_joined(i, topic, false),
            Output::Publish { topic, data, .. } => {
                self.nodes[i].publishes += 1;
                let id = message_id(&topic, &data);
                if self.nodes[i].seen.insert(id) {
                    self.flood(i, None, &topic, &data);
                }
            }
            Output::Verdict {
                message,
                peer,
                acceptance,
            } => {
                self.nodes[i].verdicts.push((peer, acceptance));
                let validating = self.nodes[i].validating.remove(&message);
                if let (MessageAcceptance::Accept, Some((from, topic, data))) =
                    (acceptance, validating)
                {
                    self.flood(i, Some(from), &topic, &data);
                }
            }
            Output::Ask { peer, id, request } => {
                let to = self.index_of(peer).filter(|&to| self.is_linked(i, to));
                let Some(to) = to else {
                    let result = Err(OutboundFailure::ConnectionClosed);
                    let input = Input::Answered { id, result };
                    self.send(i, None, input);
                    return;
                };
                if !request.ranges.is_empty() {
                    self.nodes[i].range_asks += 1;
                }
                let keys = request.keys.iter().map(|k| k.key.clone()).collect();
                let ranges = request.ranges.len();
                let answerer = &mut self.nodes[to];
                answerer.next_answer += 1;
                let answer = answerer.next_answer;
                answerer.answering.insert(answer, (i, id, keys, ranges));
                // As the answerer reads it off a stream.
                let request = wire::from_ask(wire::to_ask(request)).expect("an ask decodes");
                let peer = self.nodes[i].peer;
                let input = Input::Asked {
                    peer,
                    id: answer,
                    request,
                };
                self.send(to, Some(i), input);
            }
            Output::Reply { id, reply } => {
                let Some((asker, ask, keys, ranges)) = self.nodes[i].answering.remove(&id) else {
                    return;
                };
                // As the asker reads it: encoded within its message limit.
                let limit = self.nodes[asker].core.config().max_message_bytes();
                let answer = wire::to_answer(reply, limit);
                let result = wire::from_answer(answer, &keys, ranges)
                    .map_err(|e| OutboundFailure::Malformed(e.to_string()));
                let input = Input::Answered { id: ask, result };
                self.send(asker, Some(i), input);
            }
            Output::SetTimer { timer, after } => {
                let after = i64::try_from(after.as_millis()).unwrap_or(i64::MAX);
                let at = self.now.saturating_add(after);
                self.nodes[i].timers.insert(timer, at);
            }
            Output::Ban { peer, .. } => {
                self.nodes[i].bans.push(peer);
                if let Some(other) = self.index_of(peer) {
                    self.cut(i, other);
                }
            }
            Output::Event(event) => self.nodes[i].events.push(event),
            // No DHT here: discovery is off.
            Output::Provide(_)
            | Output::StopProviding(_)
            | Output::FindProviders(_)
            | Output::Dial(_) => {}
        }
    }

    fn set_joined(&mut self, i: usize, topic: Topic, joined: bool) {
        let changed = if joined {
            self.nodes[i].joined.insert(topic.clone())
        } else {
            self.nodes[i].joined.remove(&topic)
        };
        if !changed {
            return;
        }
        let peer = self.nodes[i].peer;
        for to in self.linked_to(i) {
            let topic = topic.clone();
            let input = if joined {
                Input::PeerSubscribed { peer, topic }
            } else {
                Input::PeerUnsubscribed { peer, topic }
            };
            self.send(to, Some(i), input);
        }
    }

    /// Sends gossip from `i` to every linked peer on the topic but `except`.
    fn flood(&mut self, i: usize, except: Option<usize>, topic: &Topic, data: &[u8]) {
        for to in self.linked_to(i) {
            if Some(to) != except && self.nodes[to].joined.contains(topic) {
                self.queue.push_back(Delivery::Gossip {
                    to,
                    from: i,
                    topic: topic.clone(),
                    data: data.to_vec(),
                });
            }
        }
    }

    fn receive_gossip(&mut self, to: usize, from: usize, topic: Topic, data: Vec<u8>) {
        let id = message_id(&topic, &data);
        if !self.is_linked(to, from)
            || !self.nodes[to].joined.contains(&topic)
            || !self.nodes[to].seen.insert(id.clone())
        {
            return;
        }
        let node = &mut self.nodes[to];
        node.validating
            .insert(id.clone(), (from, topic.clone(), data.clone()));
        let peer = self.nodes[from].peer;
        let input = Input::Gossip {
            peer,
            message: id,
            topic: Some(topic),
            data,
        };
        self.input(to, input);
    }
}

/// The id Pointer's gossipsub gives a message on `topic`.
fn message_id(topic: &Topic, data: &[u8]) -> MessageId {
    MessageId::new(&wire::message_id(&topic.name(), data))
}

fn ordered(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}
