//! The fetch handler against real swarms on the memory transport: a test
//! behaviour drives the library's own `Handler` (reached through the
//! doc-hidden `internals`, feature `test-utils`) over real streams, with
//! limits set small enough to hit.

use pointer::internals::proto;
use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use ed25519_dalek::SigningKey;
use futures::{channel::oneshot, AsyncReadExt as _, AsyncWriteExt as _, StreamExt as _};
use libp2p::{
    core::{transport::PortUse, Endpoint},
    swarm::{
        behaviour::toggle::Toggle, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour,
        NotifyHandler, SwarmEvent, THandler, THandlerInEvent, THandlerOutEvent, ToSwarm,
    },
    Multiaddr, PeerId, Stream, Swarm,
};
use libp2p_swarm_test::SwarmExt as _;

use pointer::internals::exchange::{AskKey, Entry, Reply, Request, Version};
use pointer::internals::handler::{FetchLimits, Handler, HandlerIn, HandlerOut};
use pointer::internals::protocol::{Answered, InboundFailure, OutboundFailure, PROTOCOL};
use pointer::internals::record::{Op, Record};

mod limits_and_hostile_input;

/// Upper bound for any test; a hang fails instead of blocking CI.
const TEST_BUDGET: Duration = Duration::from_secs(20);

fn limits() -> FetchLimits {
    FetchLimits {
        max_message_size: 1024,
        timeout: Duration::from_secs(5),
        max_inbound_streams: 4,
        peer_inbound: Default::default(),
        inbound_total: Default::default(),
        max_inbound_total: 16,
        max_outbound_streams: 4,
        verify_threads: 2,
        verify_threads_lent: Default::default(),
    }
}

// ---------------------------------------------------------------- behaviour

/// How the test behaviour treats inbound asks.
#[derive(Clone, Copy)]
enum Mode {
    /// Answer from the store.
    Answer,
    /// Keep the reply sender and never answer.
    Hold,
    /// Drop the reply sender.
    Decline,
}

#[derive(Debug)]
enum FetchEvent {
    Answered {
        id: u64,
        result: Result<Answered, OutboundFailure>,
    },
    Served {
        keys: Vec<String>,
    },
    InboundFailed {
        error: InboundFailure,
    },
}

/// A minimal behaviour around [`Handler`]: answers from a map, asks on demand.
struct Fetch {
    limits: FetchLimits,
    mode: Mode,
    store: HashMap<String, Record>,
    held: Vec<oneshot::Sender<Reply>>,
    next_id: u64,
    actions: VecDeque<ToSwarm<FetchEvent, HandlerIn>>,
}

impl Fetch {
    fn new(limits: FetchLimits, mode: Mode) -> Self {
        Self {
            limits,
            mode,
            store: HashMap::new(),
            held: Vec::new(),
            next_id: 0,
            actions: VecDeque::new(),
        }
    }

    fn ask(&mut self, peer_id: PeerId, key: &str) -> u64 {
        self.ask_many(peer_id, &[key])
    }

    fn ask_many(&mut self, peer_id: PeerId, keys: &[&str]) -> u64 {
        let keys = keys
            .iter()
            .map(|k| AskKey {
                key: k.to_string(),
                have: None,
            })
            .collect();
        self.ask_keys(peer_id, keys)
    }

    fn ask_keys(&mut self, peer_id: PeerId, keys: Vec<AskKey>) -> u64 {
        self.next_id += 1;
        let id = self.next_id;
        let event = HandlerIn::Ask {
            id,
            request: Request::keys(keys),
        };
        let handler = NotifyHandler::Any;
        self.actions.push_back(ToSwarm::NotifyHandler {
            peer_id,
            handler,
            event,
        });
        id
    }

    /// Answers every asked key, in order.
    fn on_inbound_ask(&mut self, request: Request, reply: oneshot::Sender<Reply>) {
        let asked = request.keys;
        let keys = asked.iter().map(|k| k.key.clone()).collect();
        match self.mode {
            Mode::Answer => {
                let entries = asked
                    .iter()
                    .map(|k| Entry::answer(self.store.get(&k.key), k.have.as_ref()))
                    .collect();
                let _ = reply.send(Reply {
                    entries,
                    ranges: Vec::new(),
                });
            }
            Mode::Hold => self.held.push(reply),
            Mode::Decline => drop(reply),
        }
        self.actions
            .push_back(ToSwarm::GenerateEvent(FetchEvent::Served { keys }));
    }
}

impl NetworkBehaviour for Fetch {
    type ConnectionHandler = Handler;
    type ToSwarm = FetchEvent;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(self.limits.clone()))
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler::new(self.limits.clone()))
    }

    fn on_swarm_event(&mut self, _: FromSwarm) {}

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        let event = match event {
            HandlerOut::InboundAsk { request, reply } => {
                return self.on_inbound_ask(request, reply)
            }
            HandlerOut::Answered { id, result } => FetchEvent::Answered { id, result },
            HandlerOut::InboundFailed { error } => FetchEvent::InboundFailed { error },
        };
        self.actions.push_back(ToSwarm::GenerateEvent(event));
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<FetchEvent, THandlerInEvent<Self>>> {
        match self.actions.pop_front() {
            Some(action) => Poll::Ready(action),
            None => Poll::Pending,
        }
    }
}

/// A node: the fetch behaviour (or none, for a peer without the protocol)
/// and raw streams for playing a misbehaving peer.
#[derive(NetworkBehaviour)]
struct Node {
    fetch: Toggle<Fetch>,
    raw: libp2p_stream::Behaviour,
}

fn node(fetch: Option<Fetch>) -> Swarm<Node> {
    Swarm::new_ephemeral_tokio(|_| Node {
        fetch: fetch.into(),
        raw: libp2p_stream::Behaviour::new(),
    })
}

// ------------------------------------------------------------------ harness

/// Two connected nodes; `a` dialled `b`. Events are logged per node until a
/// test picks them, so none is lost while another future is being driven.
struct Pair {
    a: Swarm<Node>,
    b: Swarm<Node>,
    a_log: Vec<FetchEvent>,
    b_log: Vec<FetchEvent>,
}

#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

impl Pair {
    /// `b` with a default answering node connected to it: the shape of
    /// most tests, which vary only `b`'s limits or store.
    async fn to(b: Fetch) -> Self {
        Self::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await
    }

    async fn new(a: Option<Fetch>, b: Option<Fetch>) -> Self {
        let (mut a, mut b) = (node(a), node(b));
        b.listen().with_memory_addr_external().await;
        a.connect(&mut b).await;
        Self {
            a,
            b,
            a_log: Vec::new(),
            b_log: Vec::new(),
        }
    }

    fn b_id(&self) -> PeerId {
        *self.b.local_peer_id()
    }

    fn fetch_a(&mut self) -> &mut Fetch {
        self.a
            .behaviour_mut()
            .fetch
            .as_mut()
            .expect("node a runs fetch")
    }

    fn fetch_b(&mut self) -> &mut Fetch {
        self.b
            .behaviour_mut()
            .fetch
            .as_mut()
            .expect("node b runs fetch")
    }

    /// Drives both swarms until `work` finishes.
    async fn run<T>(&mut self, work: impl Future<Output = T>) -> T {
        let mut work = pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                event = self.a.select_next_some() => log_event(&mut self.a_log, event),
                event = self.b.select_next_some() => log_event(&mut self.b_log, event),
            }
        }
    }

    /// Drives both swarms until `side` emits an event matching `wanted`.
    async fn wait(&mut self, side: Side, wanted: impl Fn(&FetchEvent) -> bool) -> FetchEvent {
        loop {
            let log = match side {
                Side::A => &mut self.a_log,
                Side::B => &mut self.b_log,
            };
            if let Some(i) = log.iter().position(&wanted) {
                return log.remove(i);
            }
            tokio::select! {
                event = self.a.select_next_some() => log_event(&mut self.a_log, event),
                event = self.b.select_next_some() => log_event(&mut self.b_log, event),
            }
        }
    }

    /// The result of ask `id` made by `a`.
    async fn answer_to(&mut self, id: u64) -> Result<Answered, OutboundFailure> {
        let wanted =
            |e: &FetchEvent| matches!(e, FetchEvent::Answered { id: got, .. } if *got == id);
        match self.wait(Side::A, wanted).await {
            FetchEvent::Answered { result, .. } => result,
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// The next inbound failure reported by `b`.
    async fn inbound_failure_at_b(&mut self) -> InboundFailure {
        let wanted = |e: &FetchEvent| matches!(e, FetchEvent::InboundFailed { .. });
        match self.wait(Side::B, wanted).await {
            FetchEvent::InboundFailed { error } => error,
            other => panic!("unexpected event {other:?}"),
        }
    }
}

fn log_event(log: &mut Vec<FetchEvent>, event: SwarmEvent<NodeEvent>) {
    match event {
        SwarmEvent::Behaviour(NodeEvent::Fetch(event)) => log.push(event),
        SwarmEvent::ConnectionClosed { cause, .. } => panic!("connection closed: {cause:?}"),
        _ => {}
    }
}

/// Fails the test instead of hanging when `test` does not finish in time.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(TEST_BUDGET, test)
        .await
        .expect("test exceeded its time budget")
}

/// A signed write of `value` to `key`.
fn record(key: &str, value: &str) -> Record {
    record_at(key, value, 1_700_000_000_000)
}

/// A signed write of `value` to `key` at `time`.
fn record_at(key: &str, value: &str, time: i64) -> Record {
    let signer = SigningKey::from_bytes(&[7; 32]);
    Record::sign(key, Op::Mut, value, time, &signer)
}

/// What an asker reads when every entry decodes.
fn decoded(entries: impl IntoIterator<Item = Entry>) -> Answered {
    Answered {
        entries: entries.into_iter().map(Ok).collect(),
        ranges: Vec::new(),
    }
}

/// Opens a raw fetch stream from `a` to `b`, writes `bytes`, optionally
/// closes the write side, and returns whatever `b` sends back before the
/// stream ends (an error reading counts as the end).
async fn abuse(pair: &mut Pair, bytes: &[u8], close: bool) -> Vec<u8> {
    let mut control = pair.a.behaviour().raw.new_control();
    let peer = pair.b_id();
    pair.run(async move {
        let mut stream = control
            .open_stream(peer, PROTOCOL)
            .await
            .expect("open raw stream");
        // `b` may already have reset the stream; what matters is what it sends.
        let _ = stream.write_all(bytes).await;
        if close {
            let _ = stream.close().await;
        }
        read_until_end(&mut stream).await
    })
    .await
}

async fn read_until_end(stream: &mut Stream) -> Vec<u8> {
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received).await;
    received
}

/// `b` still answers a normal ask on the same connection.
async fn assert_still_answers(pair: &mut Pair) {
    pair.fetch_b()
        .store
        .insert("after".into(), record("after", "fine"));
    let b = pair.b_id();
    let id = pair.fetch_a().ask(b, "after");
    let answer = pair.answer_to(id).await.expect("normal ask after abuse");
    assert_eq!(answer, decoded([Entry::Record(record("after", "fine"))]));
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn round_trip_ok_and_not_exist() {
    bounded(async {
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("k".into(), record("k", "v"));
        let mut pair = Pair::to(b).await;
        let peer = pair.b_id();

        let found = pair.fetch_a().ask(peer, "k");
        let missing = pair.fetch_a().ask(peer, "missing");

        let answer = pair.answer_to(found).await.expect("answer for k");
        assert_eq!(answer, decoded([Entry::Record(record("k", "v"))]));
        let answer = pair.answer_to(missing).await.expect("answer for missing");
        assert_eq!(answer, decoded([Entry::NotExist]));

        let served = |e: &FetchEvent| matches!(e, FetchEvent::Served { keys } if keys == &["k"]);
        pair.wait(Side::B, served).await;
    })
    .await
}

#[tokio::test]
async fn many_keys_travel_in_one_ask_and_are_answered_in_order() {
    bounded(async {
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("one".into(), record("one", "1"));
        b.store.insert("three".into(), record("three", "3"));
        let mut pair = Pair::to(b).await;
        let peer = pair.b_id();

        let id = pair.fetch_a().ask_many(peer, &["one", "two", "three"]);
        let answer = pair.answer_to(id).await.expect("answer");
        assert_eq!(
            answer,
            decoded([
                Entry::Record(record("one", "1")),
                Entry::NotExist,
                Entry::Record(record("three", "3")),
            ])
        );
        let all = ["one", "two", "three"];
        let served = |e: &FetchEvent| matches!(e, FetchEvent::Served { keys } if keys == &all);
        pair.wait(Side::B, served).await;
    })
    .await
}

/// The handler checks an answer's signatures on the connection's task, so
/// the records reach the behaviour with the outcome of `verify_strict`
/// already made: the honest one valid, the forged one not.
#[tokio::test]
async fn an_answers_records_arrive_with_their_signatures_checked() {
    bounded(async {
        let honest = record("honest", "v");
        let mut signature = *record("forged", "v").signature().as_bytes();
        signature[9] ^= 1;
        let forged = Record::from_parts(
            "forged".into(),
            Op::Mut,
            "v".into(),
            honest.time(),
            *honest.author(),
            pointer::internals::record::Signature::from_bytes(signature),
        );
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("honest".into(), honest.clone());
        b.store.insert("forged".into(), forged.clone());
        assert_eq!((honest.checked(), forged.checked()), (None, None));
        let mut pair = Pair::to(b).await;
        let peer = pair.b_id();

        let id = pair.fetch_a().ask_many(peer, &["honest", "forged"]);
        let answer = pair.answer_to(id).await.expect("answer");
        assert_eq!(
            answer,
            decoded([Entry::Record(honest), Entry::Record(forged)])
        );
        let checked: Vec<Option<bool>> = answer
            .entries
            .iter()
            .map(|entry| match entry {
                Ok(Entry::Record(record)) => record.checked(),
                other => panic!("expected a record, got {other:?}"),
            })
            .collect();
        assert_eq!(checked, [Some(true), Some(false)]);
    })
    .await
}

#[tokio::test]
async fn peer_without_protocol_is_unsupported() {
    bounded(async {
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), None).await;
        let peer = pair.b_id();
        let id = pair.fetch_a().ask(peer, "k");
        assert!(matches!(
            pair.answer_to(id).await,
            Err(OutboundFailure::UnsupportedProtocols)
        ));
    })
    .await
}

#[tokio::test]
async fn declined_ask_reads_as_closed() {
    bounded(async {
        let a = Fetch::new(limits(), Mode::Answer);
        let mut pair = Pair::new(Some(a), Some(Fetch::new(limits(), Mode::Decline))).await;
        let peer = pair.b_id();
        let id = pair.fetch_a().ask(peer, "k");
        assert!(matches!(
            pair.answer_to(id).await,
            Err(OutboundFailure::ConnectionClosed)
        ));
    })
    .await
}

#[tokio::test]
async fn silent_peer_times_out_on_both_sides() {
    bounded(async {
        let timeout = Duration::from_millis(400);
        let quick = FetchLimits {
            timeout,
            ..limits()
        };
        let a = Fetch::new(quick.clone(), Mode::Answer);
        let mut pair = Pair::new(Some(a), Some(Fetch::new(quick, Mode::Hold))).await;
        let peer = pair.b_id();

        let started = Instant::now();
        let id = pair.fetch_a().ask(peer, "k");
        assert!(matches!(
            pair.answer_to(id).await,
            Err(OutboundFailure::Timeout)
        ));
        let waited = started.elapsed();
        assert!(waited >= timeout, "timed out early: {waited:?}");
        assert!(waited < timeout * 3, "timed out late: {waited:?}");

        // The holder's handler gives up on the held stream too.
        assert!(matches!(
            pair.inbound_failure_at_b().await,
            InboundFailure::Timeout
        ));
    })
    .await
}

/// The asker names the version it holds of each key; the answerer sends a
/// record only when it is newer, `Current` otherwise, and the full record
/// to a key asked without a version.
#[tokio::test]
async fn versions_travel_and_a_current_record_is_not_sent_again() {
    bounded(async {
        let old = record("new", "old");
        let new = record_at("new", "newer", old.time() + 1);
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("same".into(), record("same", "v"));
        b.store.insert("new".into(), new.clone());
        let mut pair = Pair::to(b).await;
        let peer = pair.b_id();

        let have = |key: &str, held: &Record| AskKey {
            key: key.into(),
            have: Some(Version::of(held)),
        };
        let keys = vec![
            have("same", &record("same", "v")),
            have("new", &old),
            have("missing", &old),
            AskKey {
                key: "same".into(),
                have: None,
            },
        ];
        let id = pair.fetch_a().ask_keys(peer, keys);
        let answer = pair.answer_to(id).await.expect("answer");
        assert_eq!(
            answer,
            decoded([
                Entry::Current,
                Entry::Record(new),
                Entry::NotExist,
                Entry::Record(record("same", "v")),
            ])
        );
    })
    .await
}
