//! Finding followers beyond our connections: which keys to advertise in
//! the DHT, when to look a key's followers up, whom of those found to dial,
//! and how a `get` waits for them.
//!
//! The coordinator only decides; a [`Discovery`](crate::discovery::Discovery)
//! in the shell (libp2p-kad provider records by default) carries it out.
//! Every DHT operation draws on one token bucket of
//! [`discovery_rate`](crate::ConfigBuilder::discovery_rate) per second, so
//! following many keys at once is spread out rather than sent as a burst;
//! a user's `get` goes first and is never held back.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libp2p::PeerId;

use super::guard::ms;
use super::{Coordinator, Output, Timer};
use crate::event::QueryId;
use crate::query::Finished;
use crate::store::RecordStore;
use crate::token_bucket::TokenBucket;

/// How often queued DHT work is looked at while any waits.
const TICK_MS: i64 = 1000;

/// Lookups a `get` makes before it settles on what it holds: a key written
/// a moment ago elsewhere may not be advertised yet when the first runs.
const GET_LOOKUPS: u32 = 3;

/// Background lookups of a key that keeps finding nobody back off to
/// `discovery_interval` times this at most (5 min becomes 5 h 20 min).
const MAX_BACKOFF: i64 = 64;

/// The wait before the next background lookup of a key after `misses`
/// lookups in a row that found nobody (one found nothing new: the first
/// counts as a miss only once it ends empty).
fn backoff(interval: i64, misses: u32) -> i64 {
    let factor = 1i64 << misses.saturating_sub(1).min(6);
    interval.saturating_mul(factor.min(MAX_BACKOFF))
}

/// The discovery state of one node.
#[derive(Debug, Default)]
pub(crate) struct Discover {
    active: bool,
    /// `discovery_rate` operations per second.
    bucket: TokenBucket,
    provide: VecDeque<String>,
    lookup: VecDeque<String>,
    queued: BTreeSet<(bool, String)>,
    /// Keys with a lookup running, and when it started.
    running: BTreeMap<String, i64>,
    /// When each followed key was last looked up, and how many lookups in
    /// a row found nobody.
    looked_up: BTreeMap<String, (i64, u32)>,
    /// `get`s that want a lookup's result before they finish, and their
    /// deadlines.
    discovering: BTreeMap<QueryId, i64>,
    /// Those of them whose asks are over, waiting for followers a lookup
    /// found: what their rounds learnt.
    parked: BTreeMap<QueryId, Finished>,
    /// Keys a `get` waits on: lookups made for it, and when the next is
    /// due after one found nobody.
    get_lookups: BTreeMap<String, (u32, Option<i64>)>,
    /// Keys whose found followers were dialed: when, and how many.
    dialed: BTreeMap<String, (i64, usize)>,
    tick_armed: bool,
}

impl<S: RecordStore> Coordinator<S> {
    /// Turns discovery on: from now on followed keys are advertised and
    /// looked up. The shell calls it when a DHT is attached.
    pub fn enable_discovery(&mut self) {
        if self.discover.active {
            return;
        }
        self.discover.active = true;
        self.discover.bucket = TokenBucket::new(self.config.discovery_rate, 1000);
        let keys: Vec<String> = self.subscribed.iter().cloned().collect();
        for key in keys {
            self.queue_dht(true, &key);
        }
    }

    /// Whether followed keys are advertised and looked up.
    pub fn discovery_enabled(&self) -> bool {
        self.discover.active
    }

    /// We follow `key` from now on: advertise it, and look its followers
    /// up if none is connected.
    pub(super) fn discover_joined(&mut self, key: &str) {
        if !self.discover.active {
            return;
        }
        self.queue_dht(true, key);
        // Only a peer on the key's own topic surely follows it: a peer on
        // its shard may follow other keys there and not be connected to
        // any follower, so with shards the lookup still runs.
        if self.followers.of(key).is_empty() {
            self.queue_dht(false, key);
        }
    }

    /// We stopped following `key`.
    pub(super) fn discover_left(&mut self, key: &str) {
        if !self.discover.active {
            return;
        }
        self.discover.queued.remove(&(true, key.to_owned()));
        self.discover.queued.remove(&(false, key.to_owned()));
        self.discover.looked_up.remove(key);
        self.outputs
            .push_back(Output::StopProviding(key.to_owned()));
    }

    /// A `get` of `key` with no connected follower: look the key up now,
    /// and let the query wait for what the lookup finds.
    pub(super) fn discover_for_get(&mut self, id: QueryId, key: &str, now_ms: i64) {
        if !self.discover.active || self.has_followers(key) {
            return;
        }
        let deadline = now_ms.saturating_add(ms(self.config.fetch_timeout));
        self.discover.discovering.insert(id, deadline);
        self.discover
            .get_lookups
            .entry(key.to_owned())
            .or_insert((1, None));
        self.start_lookup(key, now_ms);
        self.arm_discover_tick(TICK_MS);
    }

    /// Whether a finished round of `get` `id` waits for discovery instead
    /// of finishing; if so it is parked with what it learnt so far.
    pub(super) fn park_for_discovery(&mut self, id: QueryId, done: Finished) -> Option<Finished> {
        if !self.discover.discovering.contains_key(&id) {
            return Some(done);
        }
        let retry_due = |(_, due): &(u32, Option<i64>)| due.is_some();
        let pending = self.discover.running.contains_key(&done.key)
            || self.discover.dialed.contains_key(&done.key)
            || self
                .discover
                .get_lookups
                .get(&done.key)
                .is_some_and(retry_due);
        // Something held (a peer answered) ends the get as without discovery.
        if !pending || self.replica.get(&done.key).is_some() {
            return Some(done);
        }
        self.discover.parked.insert(id, done);
        // Its deadline is checked at the ticks.
        self.arm_discover_tick(TICK_MS);
        None
    }

    /// A `get` finished: it no longer waits for discovery.
    pub(super) fn discover_query_done(&mut self, id: QueryId, key: &str) {
        self.discover.discovering.remove(&id);
        self.discover.parked.remove(&id);
        if self.parked_on(key).is_empty() {
            self.discover.get_lookups.remove(key);
        }
    }

    /// A peer subscribed to `key`: parked `get`s of the key ask it.
    pub(super) fn discover_follower(&mut self, peer: PeerId, key: &str) {
        let ids = self.parked_on(key);
        self.discover.dialed.remove(key);
        for id in ids {
            let Some(parked) = self.discover.parked.remove(&id) else {
                continue;
            };
            if self.ask(peer, key, Some(id)) {
                self.queries.resume(id, parked, vec![peer]);
            } else {
                self.discover.parked.insert(id, parked);
            }
        }
    }

    /// A lookup of `key` found `peers`: dial up to `discovery_dials` of
    /// them, fewer when followers are connected already.
    pub(super) fn on_providers(&mut self, key: &str, peers: Vec<PeerId>, now_ms: i64) {
        if !self.discover.active || !self.subscribed.contains(key) {
            return;
        }
        if let Some((_, misses)) = self.discover.looked_up.get_mut(key) {
            *misses = 0;
        }
        // A lookup reports in steps: what earlier steps dialed counts too.
        self.forget_old_dials(now_ms);
        // Connected followers leave at least one dial: peers that merely
        // subscribed to the key (Sybils, say) must not keep a lookup from
        // reaching the followers it found.
        let dials = self.config.discovery_dials;
        let connected = self.followers_of(key).len().min(dials.saturating_sub(1));
        let dialing = self.discover.dialed.get(key).map_or(0, |(_, n)| *n);
        let room = dials.saturating_sub(connected + dialing);
        let mut fresh: Vec<PeerId> = peers
            .into_iter()
            .filter(|p| *p != self.local_peer && !self.connected.contains(p))
            .filter(|p| !self.is_banned(p, now_ms))
            .collect();
        fresh.sort_unstable();
        fresh.dedup();
        rand::seq::SliceRandom::shuffle(fresh.as_mut_slice(), &mut self.rng);
        for peer in fresh.into_iter().take(room) {
            let entry = self
                .discover
                .dialed
                .entry(key.to_owned())
                .or_insert((now_ms, 0));
            entry.1 += 1;
            self.outputs.push_back(Output::Dial(peer));
        }
    }

    /// A lookup of `key` is over. `get`s parked on it that have no
    /// follower connected by now end with what is held.
    pub(super) fn on_lookup_done(&mut self, key: &str, now_ms: i64) {
        // A lookup that found nobody (its providers would have reset the
        // count) backs the next background one off.
        if let Some((_, misses)) = self.discover.looked_up.get_mut(key) {
            *misses = misses.saturating_add(1);
        }
        self.lookup_over(key, now_ms);
    }

    /// A lookup of `key` could not start: it found nobody, but says
    /// nothing of the key. It is not a miss, and the key is looked up
    /// again at the next republish firing rather than after
    /// `discovery_interval` (each such try costs nothing while the DHT
    /// stays empty).
    pub(super) fn on_lookup_skipped(&mut self, key: &str, now_ms: i64) {
        self.discover.looked_up.remove(key);
        self.lookup_over(key, now_ms);
    }

    fn lookup_over(&mut self, key: &str, now_ms: i64) {
        self.discover.running.remove(key);
        // Followers that were dialed may still connect: the parked gets
        // wait for them until their deadline (see `on_discover_tick`).
        self.forget_old_dials(now_ms);
        if self.discover.dialed.contains_key(key) {
            return;
        }
        // A `get` looks again, a tick later, before it settles.
        if let Some((made, due)) = self.discover.get_lookups.get_mut(key) {
            if *made < GET_LOOKUPS {
                *made += 1;
                *due = Some(now_ms.saturating_add(TICK_MS));
                self.arm_discover_tick(TICK_MS);
                return;
            }
        }
        self.discover.get_lookups.remove(key);
        let ids = self.parked_on(key);
        self.finish_parked(ids);
    }

    fn start_lookup(&mut self, key: &str, now_ms: i64) {
        self.forget_old_dials(now_ms);
        if self.discover.running.contains_key(key) {
            return;
        }
        self.discover.running.insert(key.to_owned(), now_ms);
        let misses = self.discover.looked_up.get(key).map_or(0, |(_, m)| *m);
        self.discover
            .looked_up
            .insert(key.to_owned(), (now_ms, misses));
        self.outputs
            .push_back(Output::FindProviders(key.to_owned()));
    }

    /// Dials and lookups older than `fetch_timeout` are taken as over: a
    /// `get` waits no longer, and a DHT that never reports a lookup's end
    /// does not block the key's next lookup.
    fn forget_old_dials(&mut self, now_ms: i64) {
        let wait = ms(self.config.fetch_timeout);
        let fresh = |at: i64| now_ms.saturating_sub(at) < wait;
        self.discover.dialed.retain(|_, (at, _)| fresh(*at));
        self.discover.running.retain(|_, at| fresh(*at));
    }

    /// The discovery tick: refill the bucket, start what waits, end the
    /// parked `get`s whose time is up.
    pub(super) fn on_discover_tick(&mut self, now_ms: i64) {
        self.discover.tick_armed = false;
        while self.discover.bucket.has(now_ms) {
            let Some((provide, key)) = self.next_dht_job() else {
                break;
            };
            self.discover.bucket.take(now_ms);
            if provide {
                self.outputs.push_back(Output::Provide(key));
            } else {
                self.start_lookup(&key, now_ms);
            }
        }
        let due: Vec<String> = self
            .discover
            .get_lookups
            .iter_mut()
            .filter(|(_, (_, due))| due.is_some_and(|at| at <= now_ms))
            .map(|(key, (_, due))| {
                *due = None;
                key.clone()
            })
            .collect();
        for key in due {
            self.start_lookup(&key, now_ms);
        }
        let due: Vec<QueryId> = self
            .discover
            .parked
            .keys()
            .filter(|id| {
                self.discover
                    .discovering
                    .get(id)
                    .is_some_and(|deadline| *deadline <= now_ms)
            })
            .copied()
            .collect();
        self.finish_parked(due);
        self.forget_old_dials(now_ms);
        self.discover
            .discovering
            .retain(|_, deadline| *deadline > now_ms);
        let waiting = !self.discover.queued.is_empty()
            || !self.discover.parked.is_empty()
            || self
                .discover
                .get_lookups
                .values()
                .any(|(_, due)| due.is_some());
        if waiting {
            self.arm_discover_tick(TICK_MS);
        }
    }

    /// At each republish firing: followed keys with no connected follower,
    /// not looked up for `discovery_interval`, are looked up again (a
    /// follower may have come up elsewhere since).
    pub(super) fn rediscover(&mut self, now_ms: i64) {
        if !self.discover.active {
            return;
        }
        let interval = ms(self.config.discovery_interval);
        let lonely: Vec<String> = self
            .subscribed
            .iter()
            .filter(|k| self.followers.of(k).is_empty())
            .filter(|k| {
                self.discover.looked_up.get(*k).is_none_or(|(at, misses)| {
                    now_ms.saturating_sub(*at) >= backoff(interval, *misses)
                })
            })
            .cloned()
            .collect();
        for key in lonely {
            self.queue_dht(false, &key);
        }
    }

    fn queue_dht(&mut self, provide: bool, key: &str) {
        if !self.discover.queued.insert((provide, key.to_owned())) {
            return;
        }
        let queue = if provide {
            &mut self.discover.provide
        } else {
            &mut self.discover.lookup
        };
        queue.push_back(key.to_owned());
        self.arm_discover_tick(0);
    }

    /// Lookups go before provides: a node that follows a key and has no
    /// follower of it is worse off than one not yet found by others.
    fn next_dht_job(&mut self) -> Option<(bool, String)> {
        for provide in [false, true] {
            loop {
                let queue = if provide {
                    &mut self.discover.provide
                } else {
                    &mut self.discover.lookup
                };
                let Some(key) = queue.pop_front() else { break };
                // Keys unfollowed meanwhile were taken out of `queued`.
                if self.discover.queued.remove(&(provide, key.clone())) {
                    return Some((provide, key));
                }
            }
        }
        None
    }

    fn arm_discover_tick(&mut self, after_ms: i64) {
        if self.discover.tick_armed {
            return;
        }
        self.discover.tick_armed = true;
        self.set_timer_ms(Timer::Discover, after_ms);
    }

    /// The parked `get`s of `key`.
    fn parked_on(&self, key: &str) -> Vec<QueryId> {
        let parked = self.discover.parked.iter();
        parked
            .filter(|(_, p)| p.key == key)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Ends parked `get`s `ids` with what is held.
    fn finish_parked(&mut self, ids: Vec<QueryId>) {
        for id in ids {
            if let Some(done) = self.discover.parked.remove(&id) {
                let outcome = self.local_outcome(&done.key, done.answered);
                self.finish_get(id, done.key, outcome);
            }
        }
    }
}
