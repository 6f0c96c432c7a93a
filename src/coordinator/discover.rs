//! Finding followers beyond our connections: what to advertise in the DHT,
//! when to look followers up, whom of those found to dial, and how a `get`
//! waits for them.
//!
//! The coordinator only decides; a [`Discovery`](crate::behaviour::discovery::Discovery)
//! in the shell (libp2p-kad provider records by default) carries it out.
//! Every background DHT operation draws on one token bucket of
//! [`discovery_rate`](crate::ConfigBuilder::discovery_rate) per second, so
//! following many keys at once is spread out rather than sent as a burst;
//! a user's `get` goes first and is never held back.
//!
//! What is advertised and looked up is a *rendezvous*, a record [`Topic`]:
//! a node on a topic per key uses each followed key's own topic; a node on
//! shard topics uses the shards, one advertisement and at most one
//! background lookup per shard however many keys it follows (spec §12,
//! "Finding followers through a DHT").

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use libp2p::PeerId;

use super::guard::ms;
use super::{Coordinator, Output, Timer};
use crate::coordinator::query::Finished;
use crate::coordinator::token_bucket::TokenBucket;
use crate::core::topic::{shard_index, Topic};
use crate::event::QueryId;
use crate::store::RecordStore;

/// How often queued DHT work is looked at while any waits.
const TICK_MS: i64 = 1000;

/// Lookups a `get` makes before it settles on what it holds: a key written
/// a moment ago elsewhere may not be advertised yet when the first runs.
const GET_LOOKUPS: u32 = 3;

/// Background lookups of a rendezvous that keeps finding nobody back off
/// to `discovery_interval` times this at most (5 min becomes 5 h 20 min).
const MAX_BACKOFF: i64 = 64;

/// The wait before the next background lookup of a rendezvous after
/// `misses` lookups in a row that found nobody (one found nothing new: the
/// first counts as a miss only once it ends empty).
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
    provide: VecDeque<Topic>,
    lookup: VecDeque<Topic>,
    queued: BTreeSet<(bool, Topic)>,
    /// Rendezvous with a lookup running, and when it started.
    running: BTreeMap<Topic, i64>,
    /// When each rendezvous was last looked up, and how many lookups in a
    /// row found nobody.
    looked_up: BTreeMap<Topic, (i64, u32)>,
    /// `get`s that want a lookup's result before they finish, and their
    /// deadlines.
    discovering: BTreeMap<QueryId, i64>,
    /// Those of them whose asks are over, waiting for followers a lookup
    /// found: what their rounds learnt.
    parked: BTreeMap<QueryId, Finished>,
    /// Keys a `get` waits on: lookups made for it, and when the next is
    /// due after one found nobody.
    get_lookups: BTreeMap<String, (u32, Option<i64>)>,
    /// Rendezvous whose found peers were dialed: when, and how many.
    dialed: BTreeMap<Topic, (i64, usize)>,
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
            let at = self.rendezvous(&key);
            self.queue_dht(true, at);
        }
    }

    /// Whether followed keys are advertised and looked up.
    pub fn discovery_enabled(&self) -> bool {
        self.discover.active
    }

    /// Where followed `key` is advertised and looked up in the background:
    /// its own topic, or its shard once we are on shard topics.
    fn rendezvous(&self, key: &str) -> Topic {
        match self.shards() {
            0 => Topic::Key(key.to_owned()),
            count => Topic::shard_of(key, count),
        }
    }

    /// Where the sharded followers of `key` advertise it, if peers may be
    /// on shards of the count we recognise.
    fn shard_rendezvous(&self, key: &str) -> Option<Topic> {
        match self.config.shard_topic_count() {
            0 => None,
            count => Some(Topic::shard_of(key, count)),
        }
    }

    /// Every rendezvous a follower of `key` may be found at: what a `get`
    /// looks up.
    fn all_rendezvous(&self, key: &str) -> Vec<Topic> {
        let mut all = vec![Topic::Key(key.to_owned())];
        all.extend(self.shard_rendezvous(key));
        all
    }

    /// We follow `key` from now on: advertise it, and look its followers
    /// up if none is connected. On shards the key's shard is advertised
    /// when its first key is followed, and looked up while no peer is on it.
    pub(super) fn discover_joined(&mut self, key: &str) {
        if !self.discover.active {
            return;
        }
        let at = self.rendezvous(key);
        let Topic::Shard { index, .. } = at else {
            self.queue_dht(true, at.clone());
            if self.followers.of(key).is_empty() {
                self.queue_dht(false, at);
            }
            return;
        };
        if self
            .shard_keys
            .get(&index)
            .is_some_and(|keys| keys.len() == 1)
        {
            self.queue_dht(true, at.clone());
        }
        // Keys followed in bulk land in a few shards: the first key of a
        // shard looks it up; once looked up, a shard is looked up again
        // at republish firings (`rediscover`), however many keys join it.
        let lonely = self.shard_peers.of(&index.to_string()).is_empty();
        if lonely && !self.discover.looked_up.contains_key(&at) {
            self.queue_dht(false, at);
        }
    }

    /// We stopped following `key`: its advertisement ends, or, on shards,
    /// its shard's with the last key followed there.
    pub(super) fn discover_left(&mut self, key: &str) {
        if !self.discover.active {
            return;
        }
        let at = self.rendezvous(key);
        if let Topic::Shard { index, .. } = at {
            if self.shard_keys.contains_key(&index) {
                return;
            }
        }
        self.forget_rendezvous(at);
    }

    /// A node that just moved to shard topics advertises its shards
    /// instead of its keys: one provider record per shard, however many
    /// keys. Its key advertisements end here (kad's copies on other nodes
    /// expire by themselves).
    pub(super) fn discover_sharded(&mut self) {
        if !self.discover.active {
            return;
        }
        let keys: Vec<String> = self.subscribed.iter().cloned().collect();
        for key in keys {
            self.forget_rendezvous(Topic::Key(key));
        }
        let count = self.shards();
        let indices: Vec<u16> = self.shard_keys.keys().copied().collect();
        for index in indices {
            let shard = Topic::Shard { count, index };
            self.queue_dht(true, shard.clone());
            if self.shard_peers.of(&index.to_string()).is_empty() {
                self.queue_dht(false, shard);
            }
        }
    }

    /// Stops advertising `at` and drops what waits for it.
    fn forget_rendezvous(&mut self, at: Topic) {
        self.discover.queued.remove(&(true, at.clone()));
        self.discover.queued.remove(&(false, at.clone()));
        self.discover.looked_up.remove(&at);
        self.outputs.push_back(Output::StopProviding(at));
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
        self.start_get_lookups(key, now_ms);
        self.arm_discover_tick(TICK_MS);
    }

    fn start_get_lookups(&mut self, key: &str, now_ms: i64) {
        for at in self.all_rendezvous(key) {
            self.start_lookup(at, now_ms);
        }
    }

    /// Whether a lookup made for a `get` of `key`, or a dial it caused, is
    /// still under way.
    fn get_lookup_pending(&self, key: &str) -> bool {
        self.all_rendezvous(key).iter().any(|at| {
            self.discover.running.contains_key(at) || self.discover.dialed.contains_key(at)
        })
    }

    /// Whether a finished round of `get` `id` waits for discovery instead
    /// of finishing; if so it is parked with what it learnt so far.
    pub(super) fn park_for_discovery(&mut self, id: QueryId, done: Finished) -> Option<Finished> {
        if !self.discover.discovering.contains_key(&id) {
            return Some(done);
        }
        let retry_due = |(_, due): &(u32, Option<i64>)| due.is_some();
        let pending = self.get_lookup_pending(&done.key)
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
            // The key's own lookup schedule matters only to a node that
            // looks keys up in the background: one on a topic per key
            // that follows it.
            if self.shards() != 0 || !self.subscribed.contains(key) {
                self.discover.looked_up.remove(&Topic::Key(key.to_owned()));
            }
        }
    }

    /// A peer follows `key` now (on its topic or its shard): parked `get`s
    /// of the key ask it. Only dials made for the key's own topic end
    /// here: a peer found on the key's shard may follow other keys of it,
    /// and the other peers dialed there may still be the ones to ask.
    pub(super) fn discover_follower(&mut self, peer: PeerId, key: &str) {
        let ids = self.parked_on(key);
        self.discover.dialed.remove(&Topic::Key(key.to_owned()));
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

    /// A lookup of `at` found `peers`: dial up to `discovery_dials` of
    /// them, fewer when peers on it are connected already.
    pub(super) fn on_providers(&mut self, at: Topic, peers: Vec<PeerId>, now_ms: i64) {
        if !self.discover.active || !self.wants(&at) {
            return;
        }
        // A DHT reports this node among the providers of what it
        // advertises: that is finding nobody, and backs off as such.
        let found_others = peers.iter().any(|p| *p != self.local_peer);
        if let Some((_, misses)) = self.discover.looked_up.get_mut(&at) {
            if found_others {
                *misses = 0;
            }
        }
        // A lookup reports in steps: what earlier steps dialed counts too.
        self.forget_old_dials(now_ms);
        // Connected peers leave at least one dial: peers that merely
        // subscribed to the topic (Sybils, say) must not keep a lookup from
        // reaching the followers it found.
        let dials = self.config.discovery_dials;
        let connected = self.connected_on(&at).min(dials.saturating_sub(1));
        let dialing = self.discover.dialed.get(&at).map_or(0, |(_, n)| *n);
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
                .entry(at.clone())
                .or_insert((now_ms, 0));
            entry.1 += 1;
            self.outputs.push_back(Output::Dial(peer));
        }
    }

    /// Whether the peers found at `at` are of use to us: it is the topic
    /// of a key we follow or a `get` waits on, or the shard of one.
    fn wants(&self, at: &Topic) -> bool {
        match at {
            Topic::Key(key) => {
                self.subscribed.contains(key) || self.discover.get_lookups.contains_key(key)
            }
            Topic::Shard { count, index } => {
                let in_shard = |key: &String| shard_index(key, *count) == *index;
                if *count == self.shards() {
                    self.shard_keys.contains_key(index)
                        || self.discover.get_lookups.keys().any(in_shard)
                } else {
                    self.subscribed.iter().any(in_shard)
                        || self.discover.get_lookups.keys().any(in_shard)
                }
            }
        }
    }

    /// Connected peers that follow a key at `at`, or are on its shard.
    fn connected_on(&self, at: &Topic) -> usize {
        match at {
            Topic::Key(key) => self.followers_of(key).len(),
            Topic::Shard { index, .. } => self.shard_peers.of(&index.to_string()).len(),
        }
    }

    /// A lookup of `at` is over. `get`s parked on it that have no follower
    /// connected by now end with what is held.
    pub(super) fn on_lookup_done(&mut self, at: Topic, now_ms: i64) {
        // A lookup that found nobody (its providers would have reset the
        // count) backs the next background one off.
        if let Some((_, misses)) = self.discover.looked_up.get_mut(&at) {
            *misses = misses.saturating_add(1);
        }
        self.lookup_over(at, now_ms);
    }

    /// A lookup of `at` could not start: it found nobody, but says nothing
    /// of the rendezvous. It is not a miss, and it is looked up again at
    /// the next republish firing rather than after `discovery_interval`
    /// (each such try costs nothing while the DHT stays empty).
    pub(super) fn on_lookup_skipped(&mut self, at: Topic, now_ms: i64) {
        self.discover.looked_up.remove(&at);
        self.lookup_over(at, now_ms);
    }

    fn lookup_over(&mut self, at: Topic, now_ms: i64) {
        self.discover.running.remove(&at);
        // Followers that were dialed may still connect: the parked gets
        // wait for them until their deadline (see `on_discover_tick`).
        self.forget_old_dials(now_ms);
        self.then_look_up_shard(&at, now_ms);
        let keys: Vec<String> = self
            .discover
            .get_lookups
            .keys()
            .filter(|key| self.all_rendezvous(key).contains(&at))
            .cloned()
            .collect();
        for key in keys {
            self.get_lookup_over(&key, now_ms);
        }
    }

    /// A node on a topic per key whose lookup of a key dialed nobody looks
    /// the key's shard up next: followers on shard topics advertise their
    /// shards, not their keys.
    fn then_look_up_shard(&mut self, at: &Topic, now_ms: i64) {
        let Topic::Key(key) = at else { return };
        if self.shards() != 0
            || !self.subscribed.contains(key)
            || !self.followers.of(key).is_empty()
            || self.discover.dialed.contains_key(at)
        {
            return;
        }
        let Some(shard) = self.shard_rendezvous(key) else {
            return;
        };
        if self.lookup_due(&shard, now_ms) {
            self.queue_dht(false, shard);
        }
    }

    /// The lookups made for a `get` of `key` are over: look again, a tick
    /// later, or end the `get`s parked on it.
    fn get_lookup_over(&mut self, key: &str, now_ms: i64) {
        if self.get_lookup_pending(key) {
            return;
        }
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

    fn start_lookup(&mut self, at: Topic, now_ms: i64) {
        self.forget_old_dials(now_ms);
        if self.discover.running.contains_key(&at) {
            return;
        }
        self.discover.running.insert(at.clone(), now_ms);
        let misses = self.discover.looked_up.get(&at).map_or(0, |(_, m)| *m);
        self.discover.looked_up.insert(at.clone(), (now_ms, misses));
        self.outputs.push_back(Output::FindProviders(at));
    }

    /// Dials and lookups older than `fetch_timeout` are taken as over: a
    /// `get` waits no longer, and a DHT that never reports a lookup's end
    /// does not block the next lookup.
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
            let Some((provide, at)) = self.next_dht_job() else {
                break;
            };
            self.discover.bucket.take(now_ms);
            if provide {
                self.outputs.push_back(Output::Provide(at));
            } else {
                self.start_lookup(at, now_ms);
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
            self.start_get_lookups(&key, now_ms);
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

    /// At each republish firing: followed keys (on shards: shards) with
    /// nobody connected on them, not looked up for `discovery_interval`
    /// (longer after lookups that found nobody), are looked up again (a
    /// follower may have come up elsewhere since).
    pub(super) fn rediscover(&mut self, now_ms: i64) {
        if !self.discover.active {
            return;
        }
        let lonely: Vec<Topic> = match self.shards() {
            0 => self
                .subscribed
                .iter()
                .filter(|k| self.followers.of(k).is_empty())
                .map(|k| Topic::Key(k.clone()))
                .collect(),
            count => self
                .shard_keys
                .keys()
                .filter(|index| self.shard_peers.of(&index.to_string()).is_empty())
                .map(|&index| Topic::Shard { count, index })
                .collect(),
        };
        for at in lonely {
            if self.lookup_due(&at, now_ms) {
                self.queue_dht(false, at);
            }
        }
    }

    /// Whether a background lookup of `at` is due: none has been made, or
    /// the last is older than the backoff its misses earned.
    fn lookup_due(&self, at: &Topic, now_ms: i64) -> bool {
        let interval = ms(self.config.discovery_interval);
        self.discover
            .looked_up
            .get(at)
            .is_none_or(|(last, misses)| now_ms.saturating_sub(*last) >= backoff(interval, *misses))
    }

    fn queue_dht(&mut self, provide: bool, at: Topic) {
        if !self.discover.queued.insert((provide, at.clone())) {
            return;
        }
        let queue = if provide {
            &mut self.discover.provide
        } else {
            &mut self.discover.lookup
        };
        queue.push_back(at);
        self.arm_discover_tick(0);
    }

    /// Lookups go before provides: a node that follows a key and has no
    /// follower of it is worse off than one not yet found by others.
    fn next_dht_job(&mut self) -> Option<(bool, Topic)> {
        for provide in [false, true] {
            loop {
                let queue = if provide {
                    &mut self.discover.provide
                } else {
                    &mut self.discover.lookup
                };
                let Some(at) = queue.pop_front() else { break };
                // Rendezvous given up meanwhile were taken out of `queued`.
                if self.discover.queued.remove(&(provide, at.clone())) {
                    return Some((provide, at));
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
