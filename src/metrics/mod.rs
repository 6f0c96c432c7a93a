//! Prometheus metrics of a [`Behaviour`](crate::Behaviour) (feature `metrics`),
//! in the style of `libp2p-metrics`: build a [`Metrics`] on a
//! [`prometheus_client`] [`Registry`], hand it to the behaviour, serve the
//! registry.
//!
//! ```
//! use libp2p::identity::Keypair;
//! use pointer::metrics::{Metrics, Registry};
//! use pointer::MemoryStore;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut registry = Registry::default();
//! let keypair = Keypair::generate_ed25519();
//! let pointer = pointer::Behaviour::new(&keypair, MemoryStore::new(), Default::default())?
//!     .with_metrics(Metrics::new(&mut registry));
//! // Serve `registry` with prometheus_client::encoding::text::encode; the
//! // same registry can hold libp2p-metrics' swarm metrics.
//! # drop(pointer);
//! # Ok(())
//! # }
//! ```
//!
//! # Why the behaviour records, not your event loop
//!
//! libp2p-metrics has you call `metrics.record(&event)` for every event.
//! Most of what is worth watching here never reaches an event: gossipsub
//! verdicts, asks and their answers, store flushes, the time a `get` or a
//! catch-up waited. So [`Behaviour::with_metrics`](crate::Behaviour::with_metrics)
//! is the one hook: the behaviour records everything, events included, and
//! there is nothing to forget in the event loop and nothing counted twice.
//! The sans-IO [`coordinator`](crate::coordinator) knows nothing of
//! metrics: the behaviour reads the outputs it executes, the inputs it
//! hands over, and the clock, as it does for everything else.
//!
//! # What is measured
//!
//! Names as exported (the `pointer_` prefix comes from the sub-registry;
//! counters end in `_total`). Every label value is created at zero up
//! front, so a series exists before its first event.
//!
//! | metric | kind | labels | what |
//! |---|---|---|---|
//! | `pointer_records_stored_total` | counter | `source` (`local`, `gossip`, `fetch`), `kind` (`value`, `tombstone`) | records stored: local writes, and newer records from peers |
//! | `pointer_records_rejected_total` | counter | `reason` (`malformed`, `key_too_long`, `value_too_large`, `from_the_future`, `bad_signature`, `unauthorized`, `foreign_topic`, `wrong_shard`) | records from peers that broke a rule ([`Event::RecordRejected`]) |
//! | `pointer_gossip_verdicts_total` | counter | `verdict` (`accepted`, `ignored`, `rejected`) | verdicts reported to gossipsub: forwarded; stale, duplicate or over our limits; invalid |
//! | `pointer_asks_sent_total` | counter | | `Ask`s sent (each may carry many keys and ranges) |
//! | `pointer_asks_answered_total` | counter | | `Ask`s that got an `Answer` |
//! | `pointer_asks_failed_total` | counter | `error` (`timeout`, `unsupported`, `connection_closed`, `malformed`, `too_large`, `too_many_requests`, `io`) | `Ask`s that failed; sent = answered + failed + in flight |
//! | `pointer_inbound_asks_total` | counter | | peers' `Ask`s received |
//! | `pointer_inbound_asks_failed_total` | counter | `error` (`timeout`, `connection_closed`, `malformed`, `too_large`, `too_many_streams`, `too_many_streams_in_total`, `io`) | peers' `Ask` streams broken off |
//! | `pointer_keys_followed` | gauge | | keys followed |
//! | `pointer_records_held` | gauge | | records held that carry a value |
//! | `pointer_tombstones_held` | gauge | | tombstones held (the store's `max_records` counts both) |
//! | `pointer_get_duration_seconds` | histogram | `outcome` (`found`, `not_found`, `timed_out`) | from [`Behaviour::get`](crate::Behaviour::get) to its [`Event::GetFinished`] |
//! | `pointer_catch_up_duration_seconds` | histogram | | catch-up: from [`Behaviour::subscribe`](crate::Behaviour::subscribe) of a key newly followed, of which nothing is held, to the first record of it stored from a peer |
//! | `pointer_store_flush_duration_seconds` | histogram | | each [`RecordStore::flush`](crate::RecordStore::flush) of received records (the flush timer, and on drop) |
//!
//! Definitions and bounds:
//! - A catch-up that brings no record (no peer holds the key, or every
//!   record was rejected) is not observed. At most 4,096 catch-ups are
//!   timed at once; when that many wait, those older than a minute make
//!   room, and a new one finds no room is not timed. Keys followed by
//!   `get`, `put` or a restart are not catch-ups in this sense.
//! - The gauges are read from the coordinator when something changed, at
//!   most once a second (the count is cheap but not free on a store of a
//!   million keys), so they may lag a change by up to a second.
//! - Latency buckets run from 1 ms to 33 s (doubling); flush buckets from
//!   0.1 ms to 3.3 s.

mod probe;
#[cfg(test)]
mod tests;

use std::time::Duration;

use libp2p::gossipsub::MessageAcceptance;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Unit;

use crate::core::accept::RejectReason;
use crate::event::{Event, GetOutcome, Source};
use crate::wire::exchange::Response;
use crate::wire::failure::{InboundFailure, OutboundFailure};

pub(crate) use self::probe::Probe;

/// The registry to build [`Metrics`] on, re-exported so that you need not
/// name the `prometheus-client` version (0.25, the one libp2p-metrics
/// 0.18 uses: one registry holds both).
pub use prometheus_client::registry::Registry;

/// Pointer's metrics; see the [module docs](self) for the list.
///
/// Build it with [`Metrics::new`] and give it to
/// [`Behaviour::with_metrics`](crate::Behaviour::with_metrics).
#[derive(Debug)]
pub struct Metrics {
    records_stored: Family<StoredLabels, Counter>,
    records_rejected: Family<ReasonLabels, Counter>,
    gossip_verdicts: Family<VerdictLabels, Counter>,
    asks_sent: Counter,
    asks_answered: Counter,
    asks_failed: Family<ErrorLabels, Counter>,
    inbound_asks: Counter,
    inbound_asks_failed: Family<ErrorLabels, Counter>,
    keys_followed: Gauge,
    records_held: Gauge,
    tombstones_held: Gauge,
    get_duration: Family<OutcomeLabels, Histogram, fn() -> Histogram>,
    catch_up_duration: Histogram,
    store_flush_duration: Histogram,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoredLabels {
    source: &'static str,
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    verdict: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    error: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

const SOURCES: [&str; 3] = ["local", "gossip", "fetch"];
const KINDS: [&str; 2] = ["value", "tombstone"];
const REASONS: [&str; 8] = [
    "malformed",
    "key_too_long",
    "value_too_large",
    "from_the_future",
    "bad_signature",
    "unauthorized",
    "foreign_topic",
    "wrong_shard",
];
const VERDICTS: [&str; 3] = ["accepted", "ignored", "rejected"];
const FETCH_ERRORS: [&str; 7] = [
    "timeout",
    "unsupported",
    "connection_closed",
    "malformed",
    "too_large",
    "too_many_requests",
    "io",
];
const INBOUND_ERRORS: [&str; 7] = [
    "timeout",
    "connection_closed",
    "malformed",
    "too_large",
    "too_many_streams",
    "too_many_streams_in_total",
    "io",
];
const OUTCOMES: [&str; 3] = ["found", "not_found", "timed_out"];

/// Network waits: 1 ms to 33 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Store flushes (an `fsync` on disk, nothing in memory): 0.1 ms to 3.3 s.
fn flush_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

impl Metrics {
    /// Pointer's metrics, registered in `registry` under the prefix
    /// `pointer`.
    pub fn new(registry: &mut Registry) -> Self {
        let registry = registry.sub_registry_with_prefix("pointer");
        let metrics = Metrics {
            records_stored: Family::default(),
            records_rejected: Family::default(),
            gossip_verdicts: Family::default(),
            asks_sent: Counter::default(),
            asks_answered: Counter::default(),
            asks_failed: Family::default(),
            inbound_asks: Counter::default(),
            inbound_asks_failed: Family::default(),
            keys_followed: Gauge::default(),
            records_held: Gauge::default(),
            tombstones_held: Gauge::default(),
            get_duration: Family::new_with_constructor(latency_histogram),
            catch_up_duration: latency_histogram(),
            store_flush_duration: flush_histogram(),
        };
        metrics.create_series();
        let m = &metrics;
        registry.register(
            "records_stored",
            "Records stored, by where they came from and whether a value or a tombstone",
            m.records_stored.clone(),
        );
        registry.register(
            "records_rejected",
            "Records from peers refused for breaking a rule, by reason",
            m.records_rejected.clone(),
        );
        registry.register(
            "gossip_verdicts",
            "Verdicts on gossip messages reported to gossipsub",
            m.gossip_verdicts.clone(),
        );
        registry.register("asks_sent", "Asks sent to peers", m.asks_sent.clone());
        registry.register(
            "asks_answered",
            "Asks sent that got an answer",
            m.asks_answered.clone(),
        );
        registry.register(
            "asks_failed",
            "Asks sent that failed, by error",
            m.asks_failed.clone(),
        );
        registry.register(
            "inbound_asks",
            "Asks received from peers",
            m.inbound_asks.clone(),
        );
        registry.register(
            "inbound_asks_failed",
            "Ask streams from peers broken off, by error",
            m.inbound_asks_failed.clone(),
        );
        registry.register("keys_followed", "Keys followed", m.keys_followed.clone());
        registry.register(
            "records_held",
            "Records held that carry a value",
            m.records_held.clone(),
        );
        registry.register(
            "tombstones_held",
            "Tombstones held",
            m.tombstones_held.clone(),
        );
        registry.register_with_unit(
            "get_duration",
            "Time from a get to its answer, by outcome",
            Unit::Seconds,
            m.get_duration.clone(),
        );
        registry.register_with_unit(
            "catch_up_duration",
            "Time from following a key of which nothing is held to its first record from a peer",
            Unit::Seconds,
            m.catch_up_duration.clone(),
        );
        registry.register_with_unit(
            "store_flush_duration",
            "Time of each store flush of received records",
            Unit::Seconds,
            m.store_flush_duration.clone(),
        );
        metrics
    }

    /// Every known label value at zero, so that dashboards and alerts see a
    /// series before its first event.
    fn create_series(&self) {
        for source in SOURCES {
            for kind in KINDS {
                self.records_stored
                    .get_or_create_owned(&StoredLabels { source, kind });
            }
        }
        for reason in REASONS {
            self.records_rejected
                .get_or_create_owned(&ReasonLabels { reason });
        }
        for verdict in VERDICTS {
            self.gossip_verdicts
                .get_or_create_owned(&VerdictLabels { verdict });
        }
        for error in FETCH_ERRORS {
            self.asks_failed.get_or_create_owned(&ErrorLabels { error });
        }
        for error in INBOUND_ERRORS {
            self.inbound_asks_failed
                .get_or_create_owned(&ErrorLabels { error });
        }
        for outcome in OUTCOMES {
            self.get_duration
                .get_or_create_owned(&OutcomeLabels { outcome });
        }
    }

    /// Counts what an event shows by itself: records stored, rejected.
    pub(crate) fn record_event(&self, event: &Event) {
        match event {
            Event::RecordUpdated { source, .. } => self.stored(*source, "value"),
            Event::RecordDeleted { source, .. } => self.stored(*source, "tombstone"),
            Event::RecordRejected { reason, .. } => {
                let reason = reason_label(reason);
                self.records_rejected
                    .get_or_create(&ReasonLabels { reason })
                    .inc();
            }
            _ => {}
        }
    }

    fn stored(&self, source: Source, kind: &'static str) {
        let source = match source {
            Source::Local => "local",
            Source::Gossip { .. } => "gossip",
            Source::Fetch { .. } => "fetch",
        };
        self.records_stored
            .get_or_create(&StoredLabels { source, kind })
            .inc();
    }

    pub(crate) fn record_verdict(&self, acceptance: &MessageAcceptance) {
        let verdict = match acceptance {
            MessageAcceptance::Accept => "accepted",
            MessageAcceptance::Ignore => "ignored",
            MessageAcceptance::Reject => "rejected",
        };
        self.gossip_verdicts
            .get_or_create(&VerdictLabels { verdict })
            .inc();
    }

    pub(crate) fn record_ask_sent(&self) {
        self.asks_sent.inc();
    }

    pub(crate) fn record_ask_result(&self, result: &Result<Response, OutboundFailure>) {
        match result {
            Ok(_) => {
                self.asks_answered.inc();
            }
            Err(error) => {
                let error = fetch_error_label(error);
                self.asks_failed.get_or_create(&ErrorLabels { error }).inc();
            }
        }
    }

    pub(crate) fn record_inbound_ask(&self) {
        self.inbound_asks.inc();
    }

    pub(crate) fn record_inbound_failure(&self, error: &InboundFailure) {
        let error = inbound_error_label(error);
        self.inbound_asks_failed
            .get_or_create(&ErrorLabels { error })
            .inc();
    }

    pub(crate) fn set_held(&self, keys_followed: usize, records: usize, tombstones: usize) {
        self.keys_followed.set(gauge_value(keys_followed));
        self.records_held.set(gauge_value(records));
        self.tombstones_held.set(gauge_value(tombstones));
    }

    pub(crate) fn observe_get(&self, outcome: &GetOutcome, took: Duration) {
        let outcome = match outcome {
            GetOutcome::Found(_) => "found",
            GetOutcome::NotFound => "not_found",
            GetOutcome::TimedOut => "timed_out",
        };
        self.get_duration
            .get_or_create(&OutcomeLabels { outcome })
            .observe(took.as_secs_f64());
    }

    pub(crate) fn observe_catch_up(&self, took: Duration) {
        self.catch_up_duration.observe(took.as_secs_f64());
    }

    pub(crate) fn observe_flush(&self, took: Duration) {
        self.store_flush_duration.observe(took.as_secs_f64());
    }
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// A label for each reason; a new reason fails to compile here until it
/// has one (and gets a place in [`REASONS`]).
fn reason_label(reason: &RejectReason) -> &'static str {
    match reason {
        RejectReason::Malformed(_) => "malformed",
        RejectReason::KeyTooLong { .. } => "key_too_long",
        RejectReason::ValueTooLarge { .. } => "value_too_large",
        RejectReason::FromTheFuture { .. } => "from_the_future",
        RejectReason::BadSignature => "bad_signature",
        RejectReason::Unauthorized => "unauthorized",
        RejectReason::ForeignTopic => "foreign_topic",
        RejectReason::WrongShard => "wrong_shard",
    }
}

fn fetch_error_label(error: &OutboundFailure) -> &'static str {
    match error {
        OutboundFailure::Timeout => "timeout",
        OutboundFailure::UnsupportedProtocols => "unsupported",
        OutboundFailure::ConnectionClosed => "connection_closed",
        OutboundFailure::Malformed(_) => "malformed",
        OutboundFailure::TooLarge { .. } => "too_large",
        OutboundFailure::TooManyRequests { .. } => "too_many_requests",
        OutboundFailure::Io(_) => "io",
    }
}

fn inbound_error_label(error: &InboundFailure) -> &'static str {
    match error {
        InboundFailure::Timeout => "timeout",
        InboundFailure::ConnectionClosed => "connection_closed",
        InboundFailure::Malformed(_) => "malformed",
        InboundFailure::TooLarge { .. } => "too_large",
        InboundFailure::TooManyStreams { .. } => "too_many_streams",
        InboundFailure::TooManyStreamsInTotal { .. } => "too_many_streams_in_total",
        InboundFailure::Io(_) => "io",
    }
}
