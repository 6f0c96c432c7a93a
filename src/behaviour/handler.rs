//! The per-connection handler of `/pointer/fetch/0.0.1`.
//!
//! One `Ask` and one `Answer` per stream (an `Ask` may carry many keys). Both directions run as futures in
//! bounded sets with a timeout (`futures_bounded`, as identify and
//! request-response do), so a peer can neither pile up streams nor hold one
//! open forever. Inbound asks are passed to the behaviour, which answers
//! synchronously from its store through a oneshot channel.

use std::{
    collections::VecDeque,
    convert::Infallible,
    future::Future,
    pin::pin,
    sync::atomic::{AtomicUsize, Ordering},
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures::{
    channel::{mpsc, oneshot},
    future::{self, Either},
    SinkExt as _, StreamExt as _,
};
use futures_bounded::{FuturesMap, FuturesSet, PushError};
use libp2p::{
    core::upgrade::ReadyUpgrade,
    swarm::{
        handler::{
            ConnectionEvent, DialUpgradeError, FullyNegotiatedInbound, FullyNegotiatedOutbound,
        },
        ConnectionHandler, ConnectionHandlerEvent, StreamUpgradeError, SubstreamProtocol,
    },
    Stream, StreamProtocol,
};

// Siblings through `super`, so that a test crate that compiles this file
// and `protocol.rs` as modules of its own finds them too.
use super::protocol::{self, Answered, InboundFailure, OutboundFailure, PROTOCOL};
use crate::core::record::Record;
use crate::wire::exchange::{Entry, Reply, Request};

/// Limits of the fetch protocol on one connection.
#[derive(Debug, Clone)]
pub struct FetchLimits {
    /// Largest encoded `Ask` or `Answer`, in bytes (the length prefix excluded).
    pub max_message_size: usize,
    /// Time for a whole exchange, stream negotiation included.
    pub timeout: Duration,
    /// Concurrent inbound fetch streams of the peer, over all its
    /// connections; extra streams are dropped unread.
    pub max_inbound_streams: usize,
    /// Inbound streams of this peer being served, shared by the handlers
    /// of its connections: more connections give a peer no more streams.
    pub peer_inbound: Arc<AtomicUsize>,
    /// Inbound streams being served by every handler of the node, shared.
    pub inbound_total: Arc<AtomicUsize>,
    /// The most inbound streams served at once over all connections.
    pub max_inbound_total: usize,
    /// Concurrent outbound asks; extra asks fail with
    /// [`OutboundFailure::TooManyRequests`] instead of queueing.
    pub max_outbound_streams: usize,
    /// Threads the signature checks of one answer are spread over: the
    /// connection's task, and up to `verify_threads - 1` more borrowed from
    /// `verify_threads_lent`, which every handler of the node shares, so
    /// that answers arriving on many connections at once start no more
    /// than that many threads in all.
    pub verify_threads: usize,
    /// Threads lent to signature checks right now, over all connections.
    pub verify_threads_lent: Arc<AtomicUsize>,
}

/// A command from the behaviour.
#[derive(Debug)]
pub enum HandlerIn {
    /// Send the remote one `Ask` for `request`. The result comes back as
    /// [`HandlerOut::Answered`] with the same `id`, which must be unique
    /// among this connection's asks in flight.
    Ask {
        /// Names the ask in its [`HandlerOut::Answered`].
        id: u64,
        /// The keys and ranges to ask for.
        request: Request,
    },
    /// Nothing for this handler: the event makes the connection's task
    /// poll every handler on it, gossipsub's among them (see the
    /// behaviour's `spare_links`).
    Wake,
}

/// An event for the behaviour.
#[derive(Debug)]
pub enum HandlerOut {
    /// The remote sent `request`. Send the answer on `reply`; dropping
    /// `reply` closes the stream without an answer.
    InboundAsk {
        /// What the remote asks for.
        request: Request,
        /// Where the answer goes.
        reply: oneshot::Sender<Reply>,
    },
    /// The outcome of [`HandlerIn::Ask`] `id`.
    Answered {
        /// The `id` of the ask.
        id: u64,
        /// The answer, or why there is none.
        result: Result<Answered, OutboundFailure>,
    },
    /// Serving an inbound stream failed; the stream is closed.
    InboundFailed {
        /// What went wrong.
        error: InboundFailure,
    },
}

/// An ask that still needs a negotiated stream.
#[derive(Debug)]
pub struct OutboundAsk {
    id: u64,
    request: Request,
    /// The whole exchange must end by then, negotiation included.
    deadline: Instant,
}

/// A decoded inbound `Ask` travelling from its stream future to `poll`.
type InboundAsk = (Request, oneshot::Sender<Reply>);

/// The fetch [`ConnectionHandler`]: bounded, timed ask/answer streams.
pub struct Handler {
    limits: FetchLimits,
    /// Asks from the behaviour not yet turned into stream requests.
    pending: VecDeque<OutboundAsk>,
    /// Outbound streams requested from the swarm and not yet negotiated.
    negotiating: usize,
    /// Outbound exchanges by ask id.
    outbound: FuturesMap<u64, Result<Answered, OutboundFailure>>,
    /// Inbound exchanges; the cap is `max_inbound_streams`.
    inbound: FuturesSet<Result<(), InboundFailure>>,
    /// Inbound futures cannot emit events, so they hand decoded asks to
    /// `poll` here. Each future sends once on its own clone of the sender,
    /// and every sender has a guaranteed slot, so a send never waits.
    asks_tx: mpsc::Sender<InboundAsk>,
    asks_rx: mpsc::Receiver<InboundAsk>,
    /// Events ready for the behaviour.
    events: VecDeque<HandlerOut>,
}

impl Handler {
    /// A handler for one connection, enforcing `limits`.
    pub fn new(limits: FetchLimits) -> Self {
        let timeout = limits.timeout;
        let delay = move || futures_bounded::Delay::futures_timer(timeout);
        let (asks_tx, asks_rx) = mpsc::channel(0);
        Self {
            pending: VecDeque::new(),
            negotiating: 0,
            outbound: FuturesMap::new(delay, limits.max_outbound_streams),
            inbound: FuturesSet::new(delay, limits.max_inbound_streams),
            asks_tx,
            asks_rx,
            events: VecDeque::new(),
            limits,
        }
    }

    /// Asks queued, negotiating or running.
    fn outbound_in_flight(&self) -> usize {
        self.pending.len() + self.negotiating + self.outbound.len()
    }

    fn on_ask(&mut self, id: u64, request: Request) {
        let limit = self.limits.max_outbound_streams;
        if self.outbound_in_flight() >= limit {
            let result = Err(OutboundFailure::TooManyRequests { limit });
            self.events.push_back(HandlerOut::Answered { id, result });
            return;
        }
        let deadline = Instant::now() + self.limits.timeout;
        self.pending.push_back(OutboundAsk {
            id,
            request,
            deadline,
        });
    }

    fn on_inbound_stream(&mut self, stream: Stream) {
        // Dropping the stream resets it. Counts are taken, not read then
        // added to: the peer's other connections run on other threads.
        let limit = self.limits.max_inbound_total;
        let Some(total) = Slot::try_take(&self.limits.inbound_total, limit) else {
            let error = InboundFailure::TooManyStreamsInTotal { limit };
            self.events.push_back(HandlerOut::InboundFailed { error });
            return;
        };
        let limit = self.limits.max_inbound_streams;
        let Some(peer) = Slot::try_take(&self.limits.peer_inbound, limit) else {
            let error = InboundFailure::TooManyStreams { limit };
            self.events.push_back(HandlerOut::InboundFailed { error });
            return;
        };
        let slot = (total, peer);
        let exchange = serve(stream, self.limits.max_message_size, self.asks_tx.clone());
        let exchange = async move {
            let _slot = slot;
            exchange.await
        };
        if self.inbound.try_push(exchange).is_err() {
            // The rejected future owns the stream and is dropped here, which
            // resets the stream: the only refusal a stream protocol has.
            let limit = self.limits.max_inbound_streams;
            let error = InboundFailure::TooManyStreams { limit };
            self.events.push_back(HandlerOut::InboundFailed { error });
        }
    }

    fn on_outbound_stream(&mut self, stream: Stream, ask: OutboundAsk) {
        self.negotiating = self.negotiating.saturating_sub(1);
        let exchange = protocol::ask(stream, ask.request, self.limits.max_message_size);
        let threads = self.limits.verify_threads;
        let lent = self.limits.verify_threads_lent.clone();
        let exchange = async move {
            let answered = exchange.await?;
            check_signatures(&answered, threads, &lent);
            Ok(answered)
        };
        match self
            .outbound
            .try_push(ask.id, within(ask.deadline, exchange))
        {
            Ok(()) => {}
            // Unreachable while `on_ask` counts negotiating streams, but a
            // lost ask would leave the behaviour waiting, so report it.
            Err(PushError::BeyondCapacity(_)) => {
                let limit = self.limits.max_outbound_streams;
                let result = Err(OutboundFailure::TooManyRequests { limit });
                self.events
                    .push_back(HandlerOut::Answered { id: ask.id, result });
            }
            Err(PushError::Replaced(_)) => {
                tracing::warn!(id = ask.id, "duplicate fetch ask id; older ask dropped");
            }
        }
    }

    fn on_dial_upgrade_error(&mut self, ask: OutboundAsk, error: StreamUpgradeError<Infallible>) {
        self.negotiating = self.negotiating.saturating_sub(1);
        let error = match error {
            StreamUpgradeError::Timeout => OutboundFailure::Timeout,
            StreamUpgradeError::NegotiationFailed => OutboundFailure::UnsupportedProtocols,
            StreamUpgradeError::Io(e) => OutboundFailure::Io(Arc::new(e)),
            StreamUpgradeError::Apply(e) => libp2p::core::util::unreachable(e),
        };
        let result = Err(error);
        self.events
            .push_back(HandlerOut::Answered { id: ask.id, result });
    }

    fn stream_request(
        &self,
        ask: OutboundAsk,
    ) -> SubstreamProtocol<ReadyUpgrade<StreamProtocol>, OutboundAsk> {
        let timeout = ask.deadline.saturating_duration_since(Instant::now());
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ask).with_timeout(timeout)
    }

    /// The next failed inbound exchange; successful ones need no event.
    fn poll_inbound(&mut self, cx: &mut Context<'_>) -> Poll<InboundFailure> {
        loop {
            match self.inbound.poll_unpin(cx) {
                Poll::Ready(Ok(Ok(()))) => continue,
                Poll::Ready(Ok(Err(error))) => return Poll::Ready(error),
                Poll::Ready(Err(_)) => return Poll::Ready(InboundFailure::Timeout),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// Checks the signatures of an answer's records here, on the connection's
/// task, as the answer is decoded, with as many of `threads - 1` more
/// threads as `lent` still has: each record remembers its outcome
/// ([`Record::checked`]), so the behaviour's loop judges and stores one
/// answer while the next is being checked. The task is busy for as long as
/// one answer's checks take (256 records, the default most per answer,
/// take about 4 ms on two threads).
fn check_signatures(answered: &Answered, threads: usize, lent: &AtomicUsize) {
    let records: Vec<&Record> = answered
        .entries
        .iter()
        .filter_map(|entry| match entry {
            Ok(Entry::Record(record)) => Some(record),
            _ => None,
        })
        .collect();
    let extra = Lent::borrow(lent, threads.saturating_sub(1));
    Record::verify_each(&records, 1 + extra.0);
}

/// Threads borrowed from the node's shared count, given back when dropped.
struct Lent<'a>(usize, &'a AtomicUsize);

impl<'a> Lent<'a> {
    /// As many of `wanted` threads as keep the count lent within `wanted`:
    /// each handler asks for the same `verify_threads - 1`.
    fn borrow(lent: &'a AtomicUsize, wanted: usize) -> Lent<'a> {
        let mut granted = 0;
        let _ = lent.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
            granted = wanted.saturating_sub(now);
            (granted > 0).then_some(now + granted)
        });
        Lent(granted, lent)
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        self.1.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// One inbound stream counted in a total (the node's, or its peer's), for
/// as long as its exchange lives: finished, failed, timed out or dropped
/// with its connection, the count goes down.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot of `count`, unless `limit` are taken already.
    fn try_take(count: &Arc<AtomicUsize>, limit: usize) -> Option<Slot> {
        let add = |n: usize| (n < limit).then_some(n + 1);
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, add)
            .ok()?;
        Some(Slot(Arc::clone(count)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one inbound stream: read the ask, let the behaviour answer, write.
async fn serve(
    stream: Stream,
    max_message_size: usize,
    mut asks: mpsc::Sender<InboundAsk>,
) -> Result<(), InboundFailure> {
    let (request, responder) = protocol::read_ask(stream, max_message_size).await?;
    let (reply, answer) = oneshot::channel();
    if asks.send((request, reply)).await.is_err() {
        // Only the handler holds the receiver: it is gone, and so is the
        // connection this stream belongs to.
        return Ok(());
    }
    match answer.await {
        Ok(answer) => protocol::write_answer(responder, answer).await,
        Err(oneshot::Canceled) => protocol::decline(responder).await,
    }
}

/// Fails `exchange` with [`OutboundFailure::Timeout`] at `deadline`, so negotiation
/// and exchange share one budget. The outbound set's own timeout (the full
/// budget, started later) is only a backstop.
async fn within<T>(
    deadline: Instant,
    exchange: impl Future<Output = Result<T, OutboundFailure>>,
) -> Result<T, OutboundFailure> {
    let timer = futures_timer::Delay::new(deadline.saturating_duration_since(Instant::now()));
    match future::select(pin!(exchange), timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => Err(OutboundFailure::Timeout),
    }
}

impl ConnectionHandler for Handler {
    type FromBehaviour = HandlerIn;
    type ToBehaviour = HandlerOut;
    type InboundProtocol = ReadyUpgrade<StreamProtocol>;
    type OutboundProtocol = ReadyUpgrade<StreamProtocol>;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = OutboundAsk;

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(ReadyUpgrade::new(PROTOCOL), ()).with_timeout(self.limits.timeout)
    }

    fn connection_keep_alive(&self) -> bool {
        self.outbound_in_flight() > 0 || !self.inbound.is_empty()
    }

    fn on_behaviour_event(&mut self, event: HandlerIn) {
        match event {
            HandlerIn::Ask { id, request } => self.on_ask(id, request),
            HandlerIn::Wake => {}
        }
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, OutboundAsk, HandlerOut>> {
        if let Some(event) = self.events.pop_front() {
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        if let Some(ask) = self.pending.pop_front() {
            self.negotiating += 1;
            let protocol = self.stream_request(ask);
            return Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { protocol });
        }
        if let Poll::Ready(Some((request, reply))) = self.asks_rx.poll_next_unpin(cx) {
            let event = HandlerOut::InboundAsk { request, reply };
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        if let Poll::Ready((id, result)) = self.outbound.poll_unpin(cx) {
            let result = result.unwrap_or(Err(OutboundFailure::Timeout));
            let event = HandlerOut::Answered { id, result };
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        if let Poll::Ready(error) = self.poll_inbound(cx) {
            let event = HandlerOut::InboundFailed { error };
            return Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(event));
        }
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        event: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol, (), OutboundAsk>,
    ) {
        match event {
            ConnectionEvent::FullyNegotiatedInbound(FullyNegotiatedInbound {
                protocol: stream,
                ..
            }) => self.on_inbound_stream(stream),
            ConnectionEvent::FullyNegotiatedOutbound(FullyNegotiatedOutbound {
                protocol: stream,
                info,
            }) => self.on_outbound_stream(stream, info),
            ConnectionEvent::DialUpgradeError(DialUpgradeError { info, error }) => {
                self.on_dial_upgrade_error(info, error)
            }
            // `ListenUpgradeError` carries `Infallible`; the rest is not ours.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::task::noop_waker_ref;

    use super::*;
    use crate::wire::exchange::AskKey;

    fn limits(max_outbound_streams: usize) -> FetchLimits {
        FetchLimits {
            max_message_size: 1024,
            timeout: Duration::from_secs(5),
            max_inbound_streams: 4,
            peer_inbound: Arc::default(),
            inbound_total: Arc::default(),
            max_inbound_total: 16,
            max_outbound_streams,
            verify_threads: 1,
            verify_threads_lent: Arc::default(),
        }
    }

    fn poll(
        handler: &mut Handler,
    ) -> Poll<ConnectionHandlerEvent<ReadyUpgrade<StreamProtocol>, OutboundAsk, HandlerOut>> {
        handler.poll(&mut Context::from_waker(noop_waker_ref()))
    }

    /// However many connections check answers at once, they borrow no
    /// more threads in all than one answer may use, and give them back.
    #[test]
    fn connections_together_borrow_at_most_the_threads_lent() {
        let lent = AtomicUsize::new(0);
        let first = Lent::borrow(&lent, 3);
        let second = Lent::borrow(&lent, 3);
        assert_eq!((first.0, second.0), (3, 0));
        drop(first);
        let one = Lent::borrow(&lent, 1);
        assert_eq!(Lent::borrow(&lent, 3).0, 2, "what is left");
        drop((one, second));
        assert_eq!(lent.load(Ordering::Relaxed), 0, "every thread given back");
    }

    #[test]
    fn keep_alive_follows_asks_in_flight() {
        let mut handler = Handler::new(limits(4));
        assert!(!handler.connection_keep_alive());
        handler.on_behaviour_event(HandlerIn::Ask {
            id: 1,
            request: Request::keys(vec![AskKey {
                key: "k".into(),
                have: None,
            }]),
        });
        assert!(handler.connection_keep_alive(), "queued ask");
        let requested = poll(&mut handler);
        assert!(matches!(
            requested,
            Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { .. })
        ));
        assert!(handler.connection_keep_alive(), "negotiating ask");
        assert!(poll(&mut handler).is_pending());
    }

    #[test]
    fn ask_beyond_the_cap_fails_without_a_stream_request() {
        let mut handler = Handler::new(limits(1));
        handler.on_behaviour_event(HandlerIn::Ask {
            id: 1,
            request: Request::keys(vec![AskKey {
                key: "a".into(),
                have: None,
            }]),
        });
        handler.on_behaviour_event(HandlerIn::Ask {
            id: 2,
            request: Request::keys(vec![AskKey {
                key: "b".into(),
                have: None,
            }]),
        });
        let refused = poll(&mut handler);
        assert!(matches!(
            refused,
            Poll::Ready(ConnectionHandlerEvent::NotifyBehaviour(
                HandlerOut::Answered {
                    id: 2,
                    result: Err(OutboundFailure::TooManyRequests { limit: 1 }),
                }
            ))
        ));
        let requested = poll(&mut handler);
        assert!(matches!(
            requested,
            Poll::Ready(ConnectionHandlerEvent::OutboundSubstreamRequest { .. })
        ));
        assert!(poll(&mut handler).is_pending());
    }
}
