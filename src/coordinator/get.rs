//! A `get`'s rounds: when one is over (every asked peer replied, or
//! `get_grace` passed since a reply delivered the record now held),
//! whether it asks more peers, waits for discovery, or ends with what the
//! node holds.

use super::guard::ms;
use super::{Coordinator, Timer};
use crate::event::{Event, GetOutcome, QueryId};
use crate::store::RecordStore;

impl<S: RecordStore> Coordinator<S> {
    /// A `get` whose round found nothing at all (no value, no tombstone)
    /// asks the peers it has not asked yet, a round at a time, before it
    /// settles: peers that subscribed early and answer `NotExist` (or fail)
    /// cannot capture it while an honest follower that holds the key is
    /// connected. Once a reply delivered the record now held
    /// (`delivered_at`: when), the round waits at most `get_grace` for the
    /// rest: a peer that answers late cannot hold the `get` for
    /// `fetch_timeout`.
    pub(super) fn on_query_reply(
        &mut self,
        id: QueryId,
        answered: bool,
        delivered_at: Option<i64>,
    ) {
        let Some(done) = self.queries.reply(id, answered) else {
            if let Some(now_ms) = delivered_at {
                self.start_grace(id, now_ms);
            }
            return;
        };
        self.end_round(id, done);
    }

    /// The rest of the peers asked for `get` `id` have `get_grace` from
    /// now (a reply delivered the record now held, so there is one).
    fn start_grace(&mut self, id: QueryId, now_ms: i64) {
        let grace = ms(self.config.get_grace);
        if self.queries.settle_by(id, now_ms.saturating_add(grace)) {
            self.arm_grace(grace);
        }
    }

    /// [`Timer::GetGrace`]: rounds whose grace is over end with what is
    /// held.
    pub(super) fn on_get_grace(&mut self, now_ms: i64) {
        self.grace_armed = false;
        let (ended, next) = self.queries.settle_due(now_ms);
        for (id, done) in ended {
            self.end_round(id, done);
        }
        if let Some(at) = next {
            self.arm_grace(at.saturating_sub(now_ms));
        }
    }

    /// Graces all last `get_grace`, so one timer for the earliest serves:
    /// one set later ends later.
    fn arm_grace(&mut self, after_ms: i64) {
        if self.grace_armed {
            return;
        }
        self.grace_armed = true;
        self.set_timer_ms(Timer::GetGrace, after_ms);
    }

    /// A round of `get` `id` is over: ask more peers if it found nothing,
    /// else wait for discovery or finish.
    fn end_round(&mut self, id: QueryId, done: crate::coordinator::query::Finished) {
        if self.replica.get(&done.key).is_none() {
            let more = self.ask_round(&done.key, Some(id), &done.asked);
            if !more.is_empty() {
                return self.queries.resume(id, done, more);
            }
        }
        let Some(done) = self.park_for_discovery(id, done) else {
            return;
        };
        let outcome = self.local_outcome(&done.key, done.answered);
        self.finish_get(id, done.key, outcome);
    }

    pub(super) fn local_outcome(&self, key: &str, answered: bool) -> GetOutcome {
        match self.value_record(key) {
            Some(record) => GetOutcome::Found(record),
            None if answered || self.replica.get(key).is_some() => GetOutcome::NotFound,
            None => GetOutcome::TimedOut,
        }
    }

    pub(super) fn finish_get(&mut self, id: QueryId, key: String, outcome: GetOutcome) {
        // A get follows the key; if the key turned out deleted, leave it
        // again, as a delete does.
        if self.is_tombstoned(&key) {
            self.unsubscribe(&key);
        }
        self.discover_query_done(id, &key);
        self.emit(Event::GetFinished { id, key, outcome });
    }
}
