//! The fetch handler against real swarms on the memory transport.
//!
//! The deliverables keep their crate-private visibility, so this test crate
//! compiles the very same files as its own modules (`#[path]`) and borrows
//! the generated protobuf types from the library.

mod common;

#[path = "../src/handler.rs"]
mod handler;
#[path = "../src/protocol.rs"]
mod protocol;
pub use pointer::proto;

use std::{
    collections::{HashMap, VecDeque},
    future::Future,
    pin::pin,
    task::{Context, Poll},
    time::{Duration, Instant},
};

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

use common::{answer_of, entry_for};
use handler::{FetchLimits, Handler, HandlerIn, HandlerOut};
use proto::pointer::{Answer, Operate, Operations, Status};
use protocol::{FetchError, InboundError, PROTOCOL};

/// Upper bound for any test; a hang fails instead of blocking CI.
const TEST_BUDGET: Duration = Duration::from_secs(20);

fn limits() -> FetchLimits {
    FetchLimits {
        max_message_size: 1024,
        timeout: Duration::from_secs(5),
        max_inbound_streams: 4,
        max_outbound_streams: 4,
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
        result: Result<Answer, FetchError>,
    },
    Served {
        keys: Vec<String>,
    },
    InboundFailed {
        error: InboundError,
    },
}

/// A minimal behaviour around [`Handler`]: answers from a map, asks on demand.
struct Fetch {
    limits: FetchLimits,
    mode: Mode,
    store: HashMap<String, Operate>,
    held: Vec<oneshot::Sender<Answer>>,
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
        self.next_id += 1;
        let id = self.next_id;
        let event = HandlerIn::Ask {
            id,
            keys: keys.iter().map(|k| k.to_string()).collect(),
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
    fn on_inbound_ask(&mut self, keys: Vec<String>, reply: oneshot::Sender<Answer>) {
        match self.mode {
            Mode::Answer => {
                let entries = keys.iter().map(|key| entry_for(&self.store, key));
                let _ = reply.send(answer_of(entries));
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
            HandlerOut::InboundAsk { keys, reply } => return self.on_inbound_ask(keys, reply),
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
    async fn answer_to(&mut self, id: u64) -> Result<Answer, FetchError> {
        let wanted =
            |e: &FetchEvent| matches!(e, FetchEvent::Answered { id: got, .. } if *got == id);
        match self.wait(Side::A, wanted).await {
            FetchEvent::Answered { result, .. } => result,
            other => panic!("unexpected event {other:?}"),
        }
    }

    /// The next inbound failure reported by `b`.
    async fn inbound_failure_at_b(&mut self) -> InboundError {
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

fn record(value: &str) -> Operate {
    Operate {
        op: Operations::Mut,
        value: value.to_owned(),
        sign: "c2lnbmF0dXJl".to_owned(),
        time: 1_700_000_000_000,
        author: vec![7; 32],
        round: 0,
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
    pair.fetch_b().store.insert("after".into(), record("fine"));
    let b = pair.b_id();
    let id = pair.fetch_a().ask(b, "after");
    let answer = pair.answer_to(id).await.expect("normal ask after abuse");
    assert_eq!(answer.op, Some(record("fine")));
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn round_trip_ok_and_not_exist() {
    bounded(async {
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("k".into(), record("v"));
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;
        let peer = pair.b_id();

        let found = pair.fetch_a().ask(peer, "k");
        let missing = pair.fetch_a().ask(peer, "missing");

        let answer = pair.answer_to(found).await.expect("answer for k");
        assert_eq!(answer.status, Status::Ok_pb);
        assert_eq!(answer.op, Some(record("v")));
        let answer = pair.answer_to(missing).await.expect("answer for missing");
        assert_eq!(
            answer,
            Answer {
                status: Status::NotExist,
                op: None,
                more: Vec::new(),
            }
        );

        let served = |e: &FetchEvent| matches!(e, FetchEvent::Served { keys } if keys == &["k"]);
        pair.wait(Side::B, served).await;
    })
    .await
}

#[tokio::test]
async fn many_keys_travel_in_one_ask_and_are_answered_in_order() {
    bounded(async {
        let mut b = Fetch::new(limits(), Mode::Answer);
        b.store.insert("one".into(), record("1"));
        b.store.insert("three".into(), record("3"));
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;
        let peer = pair.b_id();

        let id = pair.fetch_a().ask_many(peer, &["one", "two", "three"]);
        let answer = pair.answer_to(id).await.expect("answer");
        assert_eq!(answer.op, Some(record("1")));
        let more: Vec<_> = answer
            .more
            .iter()
            .map(|e| (e.status, e.op.clone()))
            .collect();
        assert_eq!(
            more,
            vec![(Status::NotExist, None), (Status::Ok_pb, Some(record("3")))]
        );
        let all = ["one", "two", "three"];
        let served = |e: &FetchEvent| matches!(e, FetchEvent::Served { keys } if keys == &all);
        pair.wait(Side::B, served).await;
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
            Err(FetchError::Unsupported)
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
            Err(FetchError::ConnectionClosed)
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
        assert!(matches!(pair.answer_to(id).await, Err(FetchError::Timeout)));
        let waited = started.elapsed();
        assert!(waited >= timeout, "timed out early: {waited:?}");
        assert!(waited < timeout * 3, "timed out late: {waited:?}");

        // The holder's handler gives up on the held stream too.
        assert!(matches!(
            pair.inbound_failure_at_b().await,
            InboundError::Timeout
        ));
    })
    .await
}

#[tokio::test]
async fn garbage_is_rejected_and_the_node_keeps_answering() {
    bounded(async {
        let b = Fetch::new(limits(), Mode::Answer);
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;

        // A frame of 4 bytes whose field 1 claims 5 bytes.
        let overrun = [0x04, 0x0a, 0x05, 0xff, 0xfe];
        // Field 1 is not UTF-8.
        let not_utf8 = [0x03, 0x0a, 0x01, 0xff];
        // A length prefix that never ends within 64 bits.
        let bad_varint = [0xff; 11];
        for bytes in [&overrun[..], &not_utf8, &bad_varint] {
            assert!(abuse(&mut pair, bytes, false).await.is_empty());
            let error = pair.inbound_failure_at_b().await;
            assert!(
                matches!(error, InboundError::Malformed(_)),
                "{bytes:?}: {error:?}"
            );
        }
        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn truncated_frame_is_rejected_and_the_node_keeps_answering() {
    bounded(async {
        let b = Fetch::new(limits(), Mode::Answer);
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;

        // 10 bytes announced, 3 sent, then the write side is closed.
        assert!(abuse(&mut pair, &[0x0a, 0x0a, 0x01, b'k'], true)
            .await
            .is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(matches!(error, InboundError::Malformed(_)), "{error:?}");

        // Opened and closed without a byte.
        assert!(abuse(&mut pair, &[], true).await.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(matches!(error, InboundError::ConnectionClosed), "{error:?}");

        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn oversize_prefix_is_rejected_without_reading_the_body() {
    bounded(async {
        let small = FetchLimits {
            max_message_size: 64,
            ..limits()
        };
        let b = Fetch::new(small, Mode::Answer);
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;

        // Announce 65 bytes, send none, keep the stream open: `b` must not wait.
        assert!(abuse(&mut pair, &[65], false).await.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(
            matches!(error, InboundError::TooLarge { limit: 64 }),
            "{error:?}"
        );

        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn streams_beyond_the_inbound_cap_are_refused() {
    bounded(async {
        let capped = FetchLimits {
            max_inbound_streams: 2,
            ..limits()
        };
        let b = Fetch::new(capped, Mode::Answer);
        let mut pair = Pair::new(Some(Fetch::new(limits(), Mode::Answer)), Some(b)).await;
        let mut control = pair.a.behaviour().raw.new_control();
        let peer = pair.b_id();

        // Two silent streams fill `b`'s slots; a third is refused unread.
        let (held, refused) = pair
            .run(async {
                let mut held = Vec::new();
                for _ in 0..2 {
                    held.push(control.open_stream(peer, PROTOCOL).await.expect("open"));
                }
                let mut extra = control.open_stream(peer, PROTOCOL).await.expect("open");
                let _ = extra.write_all(&[0x03, 0x0a, 0x01, b'k']).await;
                (held, read_until_end(&mut extra).await)
            })
            .await;
        assert!(refused.is_empty());
        let error = pair.inbound_failure_at_b().await;
        assert!(
            matches!(error, InboundError::TooManyStreams { limit: 2 }),
            "{error:?}"
        );

        // Closing the silent streams frees the slots for a normal ask.
        drop(held);
        for _ in 0..2 {
            let error = pair.inbound_failure_at_b().await;
            assert!(matches!(error, InboundError::ConnectionClosed), "{error:?}");
        }
        assert_still_answers(&mut pair).await;
    })
    .await
}

#[tokio::test]
async fn asks_beyond_the_outbound_cap_fail_fast() {
    bounded(async {
        let capped = FetchLimits {
            max_outbound_streams: 2,
            ..limits()
        };
        let b = Fetch::new(limits(), Mode::Hold);
        let mut pair = Pair::new(Some(Fetch::new(capped, Mode::Answer)), Some(b)).await;
        let peer = pair.b_id();

        let _held: Vec<u64> = (0..2).map(|_| pair.fetch_a().ask(peer, "k")).collect();
        let extra = pair.fetch_a().ask(peer, "k");
        let result = pair.answer_to(extra).await;
        assert!(
            matches!(result, Err(FetchError::TooManyRequests { limit: 2 })),
            "{result:?}"
        );
    })
    .await
}

#[tokio::test]
async fn hostile_answers_are_errors_not_panics() {
    bounded(async {
        let small = FetchLimits {
            max_message_size: 64,
            ..limits()
        };
        let mut pair = Pair::new(Some(Fetch::new(small, Mode::Answer)), None).await;
        let mut incoming = pair
            .b
            .behaviour()
            .raw
            .new_control()
            .accept(PROTOCOL)
            .expect("accept");
        let peer = pair.b_id();

        // Oversize length prefix, then an `Operate` that overruns its length
        // (this panics quick-protobuf's generated `Answer` reader).
        let overrun = [13, 0x12, 0x01, 0x12, 0x00, 0x09, 0, 0, 0, 0, 0, 0, 0, 0];
        for reply in [&[65u8][..], &overrun] {
            let id = pair.fetch_a().ask(peer, "k");
            pair.run(async {
                let (_, mut stream) = incoming.next().await.expect("inbound raw stream");
                read_until_end(&mut stream).await;
                let _ = stream.write_all(reply).await;
                let _ = stream.close().await;
            })
            .await;
            let result = pair.answer_to(id).await;
            let expected = match reply.len() {
                1 => matches!(result, Err(FetchError::TooLarge { limit: 64 })),
                _ => matches!(result, Err(FetchError::Malformed(_))),
            };
            assert!(expected, "{reply:?}: {result:?}");
        }
    })
    .await
}
