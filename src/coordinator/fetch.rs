//! Asking peers and answering them: whom to ask, how keys are packed into
//! `Ask`s, what an answer teaches us, and how `get`s end.

use std::cmp::Ordering;
use std::collections::HashMap;

use libp2p::PeerId;
use rand::seq::SliceRandom;

use super::{Coordinator, Output};
use crate::coordinator::cost;
use crate::event::{Event, QueryId, Source};
use crate::store::RecordStore;
use crate::wire::exchange::{AskKey, Entry, Reply, Request, Response, Version};
use crate::wire::failure::OutboundFailure;
use crate::wire::{self, DecodeError};

/// One key to ask one peer about: a catch-up, or part of a `get`.
#[derive(Debug)]
pub(crate) struct Wanted {
    key: String,
    query: Option<QueryId>,
}

/// Where a catch-up ask for one key to one peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CatchUp {
    /// Queued: it goes out with the version we hold when it is sent, so a
    /// second ask for it adds nothing.
    Waiting,
    /// Sent with the version we held then.
    Sent,
    /// Sent, and since then something made us want to ask again (the peer
    /// showed a newer version while the ask was out, so its answer may be
    /// older than what it now holds): asked again once it is answered.
    Again,
}

/// The catch-up asks to each peer, by peer and then by key, so a lookup
/// hashes the key alone and needs no owned copy of it. A catch-up of a
/// million keys holds a million of these at once; keyed by `(PeerId,
/// String)` each entry carried a copy of the peer id, and every lookup
/// allocated.
#[derive(Debug, Default)]
pub(crate) struct CatchUps(HashMap<PeerId, HashMap<String, CatchUp>>);

impl CatchUps {
    fn get_mut(&mut self, peer: &PeerId, key: &str) -> Option<&mut CatchUp> {
        self.0.get_mut(peer)?.get_mut(key)
    }

    fn insert(&mut self, peer: PeerId, key: &str, state: CatchUp) {
        self.0
            .entry(peer)
            .or_default()
            .insert(key.to_owned(), state);
    }

    fn remove(&mut self, peer: &PeerId, key: &str) -> Option<CatchUp> {
        let keys = self.0.get_mut(peer)?;
        let state = keys.remove(key);
        if keys.is_empty() {
            self.0.remove(peer);
        }
        state
    }
}

/// One `Ask` in flight: the keys it carries, in the order they were asked.
#[derive(Debug)]
pub(crate) struct Fetch {
    peer: PeerId,
    wanted: Vec<Wanted>,
    /// The version sent for each key, in order.
    sent: Vec<Option<Version>>,
}

impl<S: RecordStore> Coordinator<S> {
    /// Asks up to `fetch_fanout` peers for `key`, drawn at random among the
    /// connected peers known to follow it, or among all connected peers when
    /// none is known. Returns how many were asked.
    pub(super) fn ask_peers(&mut self, key: &str, query: Option<super::QueryId>) -> usize {
        self.ask_round(key, query, &[]).len()
    }

    /// [`Self::ask_peers`] among the peers not in `asked`; returns whom it
    /// asked.
    pub(super) fn ask_round(
        &mut self,
        key: &str,
        query: Option<QueryId>,
        asked: &[PeerId],
    ) -> Vec<PeerId> {
        let targets = self.ask_targets(key, asked, query.is_some());
        targets
            .into_iter()
            .filter(|peer| self.ask(*peer, key, query))
            .collect()
    }

    /// Whom to ask about `key`, leaving out `asked`: a catch-up asks up to
    /// `fetch_fanout` random followers; a `get` (`for_get`) asks every
    /// connected follower, so that one that answers `NotExist` or a stale
    /// record cannot capture a user's read while an honest follower is
    /// connected. With no follower known, `fetch_fanout` random connected
    /// peers.
    fn ask_targets(&mut self, key: &str, asked: &[PeerId], for_get: bool) -> Vec<PeerId> {
        let fresh = |peer: &PeerId| !asked.contains(peer);
        let mut targets: Vec<PeerId> = self
            .followers_of(key)
            .into_iter()
            .filter(|peer| self.connected.contains(peer) && fresh(peer))
            .collect();
        let followers = !targets.is_empty();
        if !followers {
            // `connected` is ordered, so the draw below replays from a seed.
            targets = self.connected.iter().copied().filter(fresh).collect();
        }
        targets.shuffle(&mut self.rng);
        if !(for_get && followers) {
            targets.truncate(self.config.fetch_fanout);
        }
        targets
    }

    /// Queues one key to ask `peer` about; it goes out with the next `Ask`
    /// to that peer ([`Coordinator::pack_asks`]). A `get`'s key goes ahead
    /// of waiting catch-ups, so a user's read is not stuck behind a bulk
    /// catch-up. Catch-ups (no query) are not repeated while one to the
    /// same peer for the same key waits; one already in flight is asked
    /// again when it is answered.
    pub(super) fn ask(&mut self, peer: PeerId, key: &str, query: Option<QueryId>) -> bool {
        if !self.connected.contains(&peer) {
            return false;
        }
        if query.is_none() {
            match self.catching_up.get_mut(&peer, key) {
                None => self.catching_up.insert(peer, key, CatchUp::Waiting),
                Some(state) => {
                    if *state == CatchUp::Sent {
                        *state = CatchUp::Again;
                    }
                    return false;
                }
            }
        }
        let wanted = Wanted {
            key: key.to_owned(),
            query,
        };
        match query {
            Some(_) => self.dispatch.push_front(peer, wanted),
            None => self.dispatch.push(peer, wanted),
        }
        true
    }

    /// Packs the keys waiting for each peer into `Ask`s, each key with the
    /// version we hold as it goes out.
    pub(super) fn send_waiting(&mut self) {
        let max_keys = self.config.max_keys_per_ask;
        let budget = self.config.max_message_bytes;
        let cost = |wanted: &Wanted| wire::ask_cost(&wanted.key);
        while let Some((peer, wanted)) = self.dispatch.next_batch(max_keys, budget, cost) {
            let id = self.next_id();
            let keys: Vec<AskKey> = wanted
                .iter()
                .map(|w| AskKey {
                    key: w.key.clone(),
                    have: self.version(&w.key),
                })
                .collect();
            let sent = keys.iter().map(|k| k.have).collect();
            for w in wanted.iter().filter(|w| w.query.is_none()) {
                if let Some(state) = self.catching_up.get_mut(&peer, &w.key) {
                    if *state == CatchUp::Waiting {
                        *state = CatchUp::Sent;
                    }
                }
            }
            self.fetches.insert(id, Fetch { peer, wanted, sent });
            let request = Request::keys(keys);
            self.outputs.push_back(Output::Ask { peer, id, request });
        }
    }

    pub(super) fn on_answered(
        &mut self,
        id: u64,
        result: Result<Response, OutboundFailure>,
        now_ms: i64,
    ) {
        if self.reconciling(id) {
            return self.on_ranges_answered(id, result, now_ms);
        }
        let Some(mut fetch) = self.fetches.remove(&id) else {
            return;
        };
        let result = result.map(|response| response.entries);
        let peer = fetch.peer;
        let asked = fetch.wanted.len();
        let entries = match result {
            Ok(entries) if entries.len() > asked => Err(OutboundFailure::Malformed(format!(
                "answer has {} entries for {asked} keys asked",
                entries.len()
            ))),
            other => other,
        };
        let entries = match entries {
            Ok(entries) => entries,
            // A peer with a larger message limit than ours packed more
            // than we read, or one with a smaller limit (or a glitch)
            // dropped the stream: as an answer that left every key out, so
            // they are asked again, a key at a time to begin with. A single
            // key that fails this way fails for good.
            Err(OutboundFailure::TooLarge { .. } | OutboundFailure::ConnectionClosed)
                if asked > 1 && self.connected.contains(&peer) =>
            {
                Vec::new()
            }
            Err(error) => {
                self.dispatch.finished(peer);
                return self.fail(peer, fetch.wanted, error);
            }
        };
        // Keys past the answered ones did not fit the answer: ask again,
        // in batches sized by what this peer answers.
        let unanswered = fetch.wanted.split_off(entries.len());
        fetch.sent.truncate(entries.len());
        if self.connected.contains(&peer) {
            self.dispatch.answered(peer, asked, entries.len());
            self.dispatch.requeue(peer, unanswered);
        } else {
            self.fail(peer, unanswered, OutboundFailure::ConnectionClosed);
        }
        self.dispatch.finished(peer);
        for ((wanted, sent), entry) in fetch.wanted.into_iter().zip(fetch.sent).zip(entries) {
            self.on_entry(peer, wanted, sent, entry, now_ms);
        }
    }

    /// The peer's answer for one key.
    ///
    /// If our record changed while the ask was in flight (or the peer sent
    /// an older one), the peer may lack what we now hold, and a probe for
    /// it was not sent while this ask was out: ask it again, with our
    /// version, so that it asks us back if it is behind.
    fn on_entry(
        &mut self,
        peer: PeerId,
        wanted: Wanted,
        sent: Option<Version>,
        entry: Result<Entry, DecodeError>,
        now_ms: i64,
    ) {
        let again = wanted.query.is_none()
            && self.catching_up.remove(&peer, &wanted.key) == Some(CatchUp::Again);
        let mut theirs = None;
        match entry {
            Ok(Entry::Record(record)) => {
                theirs = Some(Version::of(&record));
                self.absorb(record, peer, Source::Fetch { peer }, now_ms);
            }
            Ok(Entry::NotExist | Entry::Current) => {}
            Err(e) => {
                self.reject(peer, wanted.key.clone(), e.into(), now_ms);
            }
        }
        let ours = self.version(&wanted.key);
        if again || (ours.is_some() && ours != sent && ours != theirs) {
            self.ask(peer, &wanted.key, None);
        }
        if let Some(query) = wanted.query {
            // Only a peer that sent the very record we now hold starts a
            // `get`'s grace: a `NotExist` or a stale record does not, so a
            // fast hostile peer cannot end the `get` on what we held before.
            let delivered = theirs.is_some() && ours == theirs;
            self.on_query_reply(query, true, delivered.then_some(now_ms));
        }
    }

    /// Nothing was learnt from `peer` for these keys.
    pub(super) fn fail(&mut self, peer: PeerId, wanted: Vec<Wanted>, error: OutboundFailure) {
        if wanted.is_empty() {
            return;
        }
        let mut keys = Vec::with_capacity(wanted.len());
        let mut queries = Vec::new();
        for Wanted { key, query } in wanted {
            match query {
                None => {
                    self.catching_up.remove(&peer, &key);
                }
                Some(query) => queries.push(query),
            }
            keys.push(key);
        }
        self.emit(Event::FetchFailed { peer, keys, error });
        for query in queries {
            self.on_query_reply(query, false, None);
        }
    }

    /// Answers a peer's `Ask` from the store, in order, at most
    /// `max_keys_per_ask` keys (the shell sends as many as fit one message).
    /// An asker that names a version newer than ours shows that we are
    /// behind: if we watch the key we ask it back at once. An asker that
    /// names a version but does not follow the key's topic watches it from
    /// outside; we remember it, to tell it of our next change.
    ///
    /// The answer stops at the first key named twice (an honest asker never
    /// does, and each copy would cost us the record again) and once its
    /// records' bytes surely pass the message limit (the shell could not
    /// send more; the asker asks again for the rest), so an `Ask` makes us
    /// read and copy at most a message's worth of records and one more.
    ///
    /// The answer and the asks back are charged to the peer (the cost
    /// model, [`crate::coordinator::cost`]).
    pub(super) fn answer_ask(&mut self, peer: PeerId, id: u64, request: Request, now_ms: i64) {
        let Request { mut keys, ranges } = request;
        keys.truncate(self.config.max_keys_per_ask);
        let mut entries = Vec::with_capacity(keys.len());
        let mut seen = std::collections::HashSet::with_capacity(keys.len());
        let mut spent = 0;
        for AskKey { key, have } in keys {
            if spent > self.config.max_message_bytes || !seen.insert(key.clone()) {
                break;
            }
            let record = self.replica.get(&key).map(std::borrow::Cow::into_owned);
            spent += record.as_ref().map_or(0, wire::entry_min_cost);
            entries.push(Entry::answer(record.as_ref(), have.as_ref()));
            let Some(have) = have else { continue };
            let ahead = record
                .as_ref()
                .is_none_or(|r| have.compare(r) == Ordering::Less);
            if ahead && self.watches(&key) {
                self.ask_back(peer, &key, now_ms);
            }
            // Only keys we watch ourselves are worth telling of, and a
            // peer may watch no more keys than it may follow.
            let room = self.watchers.count_of(&peer) < self.config.max_topics_per_peer;
            if room && self.watches(&key) && !self.followers_of(&key).contains(&peer) {
                self.watchers.add(peer, &key);
            }
        }
        let ranges = self.reply_ranges(peer, ranges, now_ms);
        let reply = Reply { entries, ranges };
        self.charge(peer, cost::reply_cost(&reply), now_ms);
        self.outputs.push_back(Output::Reply { id, reply });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A catch-up of a million keys fills the map; once they are answered
    /// the peer's map goes with them, rather than keeping its capacity (a
    /// hundred bytes per key caught up) for as long as the node runs.
    #[test]
    fn a_peer_whose_catch_ups_are_over_keeps_no_map() {
        let peer = PeerId::random();
        let other = PeerId::random();
        let mut catch_ups = CatchUps::default();
        catch_ups.insert(peer, "a", CatchUp::Waiting);
        catch_ups.insert(peer, "b", CatchUp::Sent);
        catch_ups.insert(other, "a", CatchUp::Waiting);
        assert_eq!(catch_ups.get_mut(&peer, "b"), Some(&mut CatchUp::Sent));
        assert_eq!(catch_ups.remove(&peer, "a"), Some(CatchUp::Waiting));
        assert_eq!(catch_ups.remove(&peer, "a"), None);
        assert!(catch_ups.0.contains_key(&peer));
        assert_eq!(catch_ups.remove(&peer, "b"), Some(CatchUp::Sent));
        assert!(!catch_ups.0.contains_key(&peer));
        assert_eq!(catch_ups.get_mut(&other, "a"), Some(&mut CatchUp::Waiting));
    }
}
