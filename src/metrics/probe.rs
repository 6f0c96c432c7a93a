//! What the behaviour shows its [`Metrics`]: the outputs it executes, the
//! inputs it hands the coordinator, and the times between them. The
//! behaviour calls these hooks whether metrics are on or not; without
//! [`Behaviour::with_metrics`](crate::Behaviour::with_metrics) they do
//! nothing, and without the `metrics` feature they are the empty ones of
//! `behaviour/probe.rs`.

use std::collections::HashMap;
use std::task::Context;
use std::time::{Duration, Instant};

use futures::FutureExt;
use futures_timer::Delay;

use super::Metrics;
use crate::coordinator::{Coordinator, Input, Output, Timer};
use crate::event::{Event, QueryId, Source};
use crate::store::RecordStore;
use crate::wire::failure::InboundFailure;

/// Catch-ups timed at once; following more keys at once times the first.
pub(super) const MAX_CATCH_UPS: usize = 4096;

/// A catch-up with no record after this long gives way to newer ones when
/// the table is full: no peer held the key, or its record was refused.
const CATCH_UP_STALE: Duration = Duration::from_secs(60);

/// The gauges are read at most this often.
pub(super) const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// The behaviour's hooks into [`Metrics`]; inert until [`Probe::enable`].
#[derive(Default)]
pub(crate) struct Probe {
    // Boxed: a behaviour without metrics carries one pointer.
    active: Option<Box<Active>>,
}

struct Active {
    metrics: Metrics,
    /// When each `get` in flight was issued.
    gets: HashMap<QueryId, Instant>,
    /// When each timed catch-up began, by key.
    catch_ups: HashMap<String, Instant>,
    /// Something changed since the gauges were last read.
    dirty: bool,
    last_read: Option<Instant>,
    /// Wakes `poll` to read the gauges of a change that came too soon
    /// after the last reading.
    wake: Option<Delay>,
}

impl Probe {
    pub(crate) fn enable(&mut self, metrics: Metrics) {
        self.active = Some(Box::new(Active {
            metrics,
            gets: HashMap::new(),
            catch_ups: HashMap::new(),
            dirty: true,
            last_read: None,
            wake: None,
        }));
    }

    /// An output about to be executed.
    pub(crate) fn output(&mut self, output: &Output) {
        let Some(active) = &mut self.active else {
            return;
        };
        active.dirty = true;
        match output {
            Output::Verdict { acceptance, .. } => active.metrics.record_verdict(acceptance),
            Output::Ask { .. } => active.metrics.record_ask_sent(),
            Output::Event(event) => active.event(event),
            _ => {}
        }
    }

    /// An input about to be handed to the coordinator.
    pub(crate) fn input(&mut self, input: &Input) {
        let Some(active) = &mut self.active else {
            return;
        };
        match input {
            Input::Answered { result, .. } => active.metrics.record_ask_result(result),
            Input::Asked { .. } => active.metrics.record_inbound_ask(),
            _ => {}
        }
    }

    /// A peer's `Ask` stream was broken off.
    pub(crate) fn inbound_failed(&mut self, error: &InboundFailure) {
        if let Some(active) = &self.active {
            active.metrics.record_inbound_failure(error);
        }
    }

    /// `get` `id` was issued; its answer may already be among the outputs
    /// not yet executed.
    pub(crate) fn get_started(&mut self, id: QueryId) {
        if let Some(active) = &mut self.active {
            active.gets.insert(id, Instant::now());
        }
    }

    /// `key` is newly followed through `subscribe`. `holds_nothing` is
    /// asked only when metrics are on (it reads the store).
    pub(crate) fn subscribed(&mut self, key: &str, holds_nothing: impl FnOnce() -> bool) {
        let Some(active) = &mut self.active else {
            return;
        };
        if !holds_nothing() {
            return;
        }
        let now = Instant::now();
        let pending = &mut active.catch_ups;
        if pending.len() >= MAX_CATCH_UPS {
            pending.retain(|_, started| now.duration_since(*started) < CATCH_UP_STALE);
        }
        if pending.len() < MAX_CATCH_UPS {
            pending.insert(key.to_owned(), now);
        }
    }

    /// `key` is no longer followed: a record of it is no catch-up.
    pub(crate) fn unsubscribed(&mut self, key: &str) {
        if let Some(active) = &mut self.active {
            active.catch_ups.remove(key);
        }
    }

    /// Runs `fire`, the coordinator's handling of `timer`, timing it if it
    /// is the store flush (all the flush timer does).
    pub(crate) fn timer(&mut self, timer: Timer, fire: impl FnOnce()) {
        match &self.active {
            Some(active) if timer == Timer::Flush => active.time_flush(fire),
            _ => fire(),
        }
    }

    /// Runs `flush`, a store flush, timing it.
    pub(crate) fn flush(&mut self, flush: impl FnOnce()) {
        match &self.active {
            Some(active) => active.time_flush(flush),
            None => flush(),
        }
    }

    /// The store was changed behind the coordinator's back.
    pub(crate) fn changed(&mut self) {
        if let Some(active) = &mut self.active {
            active.dirty = true;
        }
    }

    /// Sets the gauges from what `core` counts if something changed and
    /// the last reading is at least [`GAUGE_INTERVAL`] old; otherwise arms
    /// a wake-up for when it will be. Call it when `poll` has nothing else
    /// to do.
    pub(crate) fn poll_gauges<S: RecordStore>(
        &mut self,
        cx: &mut Context<'_>,
        core: &mut Coordinator<S>,
    ) {
        let Some(active) = &mut self.active else {
            return;
        };
        if !active.dirty {
            return;
        }
        let now = Instant::now();
        if let Some(due) = active.last_read.map(|at| at + GAUGE_INTERVAL) {
            if now < due {
                let wake = active.wake.get_or_insert_with(|| Delay::new(due - now));
                if wake.poll_unpin(cx).is_pending() {
                    return;
                }
            }
        }
        active.wake = None;
        active.dirty = false;
        active.last_read = Some(now);
        let (records, tombstones) = core.held();
        active
            .metrics
            .set_held(core.followed_count(), records, tombstones);
    }

    #[cfg(test)]
    pub(super) fn metrics(&self) -> Option<&Metrics> {
        self.active.as_ref().map(|a| &a.metrics)
    }

    #[cfg(test)]
    pub(super) fn timed_catch_ups(&self) -> usize {
        self.active.as_ref().map_or(0, |a| a.catch_ups.len())
    }

    /// Makes the last gauge reading, and every timed catch-up, look `by`
    /// older, so tests need not wait.
    #[cfg(test)]
    pub(super) fn backdate(&mut self, by: Duration) {
        if let Some(active) = &mut self.active {
            let back = |at: &mut Instant| *at = at.checked_sub(by).unwrap_or(*at);
            active.last_read.as_mut().map(back);
            active.catch_ups.values_mut().for_each(back);
            active.wake = None;
        }
    }
}

impl Active {
    fn event(&mut self, event: &Event) {
        self.metrics.record_event(event);
        match event {
            Event::RecordUpdated { record, source } | Event::RecordDeleted { record, source } => {
                // A local write ends the wait too, but is no catch-up.
                let started = self.catch_ups.remove(record.key());
                if let (Some(started), false) = (started, *source == Source::Local) {
                    self.metrics.observe_catch_up(started.elapsed());
                }
            }
            Event::GetFinished { id, outcome, .. } => {
                if let Some(started) = self.gets.remove(id) {
                    self.metrics.observe_get(outcome, started.elapsed());
                }
            }
            _ => {}
        }
    }

    fn time_flush(&self, flush: impl FnOnce()) {
        let started = Instant::now();
        flush();
        self.metrics.observe_flush(started.elapsed());
    }
}
