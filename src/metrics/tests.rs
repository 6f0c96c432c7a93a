//! The metrics move as the behaviour's hooks see things happen. Values are
//! read back the way a scraper reads them: from the registry's text.

use std::collections::BTreeMap;
use std::task::Context;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use futures::task::noop_waker_ref;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::probe::{GAUGE_INTERVAL, MAX_CATCH_UPS};
use super::{Metrics, Probe, Registry};
use crate::config::Config;
use crate::coordinator::{Coordinator, Input, Output, Timer};
use crate::core::accept::RejectReason;
use crate::core::record::{Op, Record};
use crate::event::{Event, GetOutcome, QueryId, Source};
use crate::store::MemoryStore;
use crate::wire::exchange::{Request, Response};
use crate::wire::failure::{InboundFailure, OutboundFailure};

/// A probe with metrics on, and the registry they are in.
fn probe() -> (Probe, Registry) {
    let mut registry = Registry::default();
    let mut probe = Probe::default();
    probe.enable(Metrics::new(&mut registry));
    (probe, registry)
}

/// Every sample in the registry, `name{labels}` to value, as exported.
fn scrape(registry: &Registry) -> BTreeMap<String, f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

fn value(registry: &Registry, sample: &str) -> f64 {
    let samples = scrape(registry);
    *samples
        .get(sample)
        .unwrap_or_else(|| panic!("no sample {sample} in {samples:#?}"))
}

fn record(key: &str, op: Op) -> Record {
    Record::sign(key, op, "v", 1_000, &SigningKey::from_bytes(&[3; 32]))
}

fn updated(key: &str, source: Source) -> Output {
    Output::Event(Event::RecordUpdated {
        record: record(key, Op::Mut),
        source,
    })
}

fn gossip() -> Source {
    Source::Gossip {
        peer: PeerId::random(),
    }
}

#[test]
fn every_series_is_registered_under_pointer_at_zero() {
    let (_, registry) = probe();
    let samples = scrape(&registry);
    for sample in [
        r#"pointer_records_stored_total{source="local",kind="value"}"#,
        r#"pointer_records_stored_total{source="fetch",kind="tombstone"}"#,
        r#"pointer_records_rejected_total{reason="unauthorized"}"#,
        r#"pointer_records_rejected_total{reason="wrong_shard"}"#,
        r#"pointer_gossip_verdicts_total{verdict="ignored"}"#,
        "pointer_asks_sent_total",
        "pointer_asks_answered_total",
        r#"pointer_asks_failed_total{error="too_many_requests"}"#,
        "pointer_inbound_asks_total",
        r#"pointer_inbound_asks_failed_total{error="too_many_streams_in_total"}"#,
        "pointer_keys_followed",
        "pointer_records_held",
        "pointer_tombstones_held",
        r#"pointer_get_duration_seconds_count{outcome="timed_out"}"#,
        "pointer_catch_up_duration_seconds_count",
        "pointer_store_flush_duration_seconds_count",
    ] {
        assert_eq!(samples.get(sample), Some(&0.0), "{sample} in {samples:#?}");
    }
}

#[test]
fn without_enable_the_probe_records_nothing() {
    let mut probe = Probe::default();
    probe.output(&updated("k", Source::Local));
    probe.get_started(QueryId(1));
    probe.subscribed("k", || panic!("the store is not read without metrics"));
    let mut flushed = false;
    probe.timer(Timer::Flush, || flushed = true);
    assert!(flushed, "the timer still fires");
    assert!(probe.metrics().is_none());
}

#[test]
fn stored_records_count_by_source_and_kind() {
    let (mut probe, registry) = probe();
    probe.output(&updated("a", Source::Local));
    probe.output(&updated("b", gossip()));
    probe.output(&updated("c", gossip()));
    probe.output(&Output::Event(Event::RecordDeleted {
        record: record("d", Op::Del),
        source: Source::Fetch {
            peer: PeerId::random(),
        },
    }));
    let stored = |labels: &str| {
        value(
            &registry,
            &format!("pointer_records_stored_total{{{labels}}}"),
        )
    };
    assert_eq!(stored(r#"source="local",kind="value""#), 1.0);
    assert_eq!(stored(r#"source="gossip",kind="value""#), 2.0);
    assert_eq!(stored(r#"source="fetch",kind="tombstone""#), 1.0);
    assert_eq!(stored(r#"source="fetch",kind="value""#), 0.0);
}

#[test]
fn rejections_count_by_reason() {
    let (mut probe, registry) = probe();
    for reason in [
        RejectReason::Unauthorized,
        RejectReason::Unauthorized,
        RejectReason::FromTheFuture {
            time: 2,
            now: 1,
            max_skew_ms: 0,
        },
    ] {
        probe.output(&Output::Event(Event::RecordRejected {
            peer: PeerId::random(),
            key: "k".into(),
            reason,
        }));
    }
    let rejected = |r: &str| {
        value(
            &registry,
            &format!(r#"pointer_records_rejected_total{{reason="{r}"}}"#),
        )
    };
    assert_eq!(rejected("unauthorized"), 2.0);
    assert_eq!(rejected("from_the_future"), 1.0);
    assert_eq!(rejected("bad_signature"), 0.0);
}

#[test]
fn verdicts_and_asks_count_both_ways() {
    let (mut probe, registry) = probe();
    let peer = PeerId::random();
    for acceptance in [
        MessageAcceptance::Accept,
        MessageAcceptance::Accept,
        MessageAcceptance::Ignore,
        MessageAcceptance::Reject,
    ] {
        probe.output(&Output::Verdict {
            message: MessageId::new(b"m"),
            peer,
            acceptance,
        });
    }
    for id in 0..3 {
        probe.output(&Output::Ask {
            peer,
            id,
            request: Request::default(),
        });
    }
    probe.input(&Input::Answered {
        id: 0,
        result: Ok(Response::default()),
    });
    probe.input(&Input::Answered {
        id: 1,
        result: Err(OutboundFailure::Timeout),
    });
    probe.input(&Input::Asked {
        peer,
        id: 7,
        request: Request::default(),
    });
    probe.inbound_failed(&InboundFailure::Malformed("x".into()));

    let v = |s: &str| value(&registry, s);
    assert_eq!(
        v(r#"pointer_gossip_verdicts_total{verdict="accepted"}"#),
        2.0
    );
    assert_eq!(
        v(r#"pointer_gossip_verdicts_total{verdict="ignored"}"#),
        1.0
    );
    assert_eq!(
        v(r#"pointer_gossip_verdicts_total{verdict="rejected"}"#),
        1.0
    );
    assert_eq!(v("pointer_asks_sent_total"), 3.0);
    assert_eq!(v("pointer_asks_answered_total"), 1.0);
    assert_eq!(v(r#"pointer_asks_failed_total{error="timeout"}"#), 1.0);
    assert_eq!(v("pointer_inbound_asks_total"), 1.0);
    assert_eq!(
        v(r#"pointer_inbound_asks_failed_total{error="malformed"}"#),
        1.0
    );
}

#[test]
fn a_get_is_timed_to_its_answer_by_outcome() {
    let (mut probe, registry) = probe();
    probe.get_started(QueryId(1));
    let finished = |id, outcome| {
        Output::Event(Event::GetFinished {
            id: QueryId(id),
            key: "k".into(),
            outcome,
        })
    };
    probe.output(&finished(1, GetOutcome::NotFound));
    // Started before metrics were on, or answered twice: not timed.
    probe.output(&finished(2, GetOutcome::NotFound));
    probe.output(&finished(1, GetOutcome::NotFound));
    let count = |o: &str| {
        value(
            &registry,
            &format!(r#"pointer_get_duration_seconds_count{{outcome="{o}"}}"#),
        )
    };
    assert_eq!(count("not_found"), 1.0);
    assert_eq!(count("found"), 0.0);
}

#[test]
fn a_catch_up_ends_at_the_first_record_from_a_peer() {
    let (mut probe, registry) = probe();
    let count = |r: &Registry| value(r, "pointer_catch_up_duration_seconds_count");

    probe.subscribed("new", || true);
    probe.subscribed("held", || false);
    probe.subscribed("mine", || true);
    probe.subscribed("left", || true);
    assert_eq!(
        probe.timed_catch_ups(),
        3,
        "a key already held is no catch-up"
    );

    probe.output(&updated("new", gossip()));
    probe.output(&updated("new", gossip()));
    assert_eq!(count(&registry), 1.0, "the first record only");

    probe.output(&updated("mine", Source::Local));
    probe.unsubscribed("left");
    probe.output(&updated("left", gossip()));
    assert_eq!(
        count(&registry),
        1.0,
        "a local write or a key left is no catch-up"
    );
    assert_eq!(probe.timed_catch_ups(), 0);
}

#[test]
fn catch_ups_timed_at_once_are_bounded_and_stale_ones_give_way() {
    let (mut probe, _registry) = probe();
    for i in 0..MAX_CATCH_UPS + 10 {
        probe.subscribed(&format!("k{i}"), || true);
    }
    assert_eq!(probe.timed_catch_ups(), MAX_CATCH_UPS);
    probe.backdate(Duration::from_secs(120));
    probe.subscribed("fresh", || true);
    assert_eq!(probe.timed_catch_ups(), 1, "only the fresh one is left");
}

#[test]
fn the_flush_timer_is_timed_and_other_timers_are_not() {
    let (mut probe, registry) = probe();
    let mut fired = 0;
    probe.timer(Timer::Flush, || fired += 1);
    probe.timer(Timer::Republish, || fired += 1);
    probe.flush(|| fired += 1);
    assert_eq!(fired, 3);
    assert_eq!(
        value(&registry, "pointer_store_flush_duration_seconds_count"),
        2.0
    );
}

#[test]
fn gauges_follow_the_coordinator_at_most_once_an_interval() {
    let (mut probe, registry) = probe();
    let signer = SigningKey::from_bytes(&[5; 32]);
    let config = Config::builder().build().expect("valid");
    let owned: Box<dyn crate::Validator> = Box::new(crate::OwnedKeys);
    let mut core = Coordinator::new(signer, MemoryStore::new(), config, owned, 1);
    let mut cx = Context::from_waker(noop_waker_ref());
    let gauges = |r: &Registry| {
        [
            "pointer_keys_followed",
            "pointer_records_held",
            "pointer_tombstones_held",
        ]
        .map(|g| value(r, g))
    };

    let a = core.owned_key("a");
    let b = core.owned_key("b");
    core.put(&a, "1", 1_000).expect("put");
    core.put(&b, "2", 1_000).expect("put");
    core.subscribe("elsewhere").expect("valid key");
    probe.poll_gauges(&mut cx, &mut core);
    assert_eq!(gauges(&registry), [3.0, 2.0, 0.0], "first reading at once");

    core.delete(&b, 2_000).expect("delete");
    probe.output(&Output::SetTimer {
        timer: Timer::Flush,
        after: Duration::ZERO,
    });
    probe.poll_gauges(&mut cx, &mut core);
    assert_eq!(
        gauges(&registry),
        [3.0, 2.0, 0.0],
        "too soon: a wake-up is armed"
    );

    probe.backdate(GAUGE_INTERVAL);
    probe.poll_gauges(&mut cx, &mut core);
    // The delete left the key: followed a, elsewhere; held a; tombstone b.
    assert_eq!(gauges(&registry), [2.0, 1.0, 1.0]);
}
