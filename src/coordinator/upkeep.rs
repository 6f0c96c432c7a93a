//! What a node does on its own timers: republish (Trickle), anti-entropy
//! for keys gossip cannot reach, tombstone collection, and grouping store
//! flushes.

use rand::RngExt;

use super::guard::ms;
use super::{Coordinator, Output, Publication, Timer};
use crate::coordinator::trickle::Settled;
use crate::store::RecordStore;

impl<S: RecordStore> Coordinator<S> {
    pub(super) fn arm_republish(&mut self) {
        let after = self.trickle.next_delay(self.rng.random::<f64>());
        self.outputs.push_back(Output::SetTimer {
            timer: Timer::Republish,
            after,
        });
    }

    /// Received records are synced to disk in groups: the first one arms
    /// the timer, the timer syncs all that came meanwhile.
    pub(super) fn schedule_flush(&mut self) {
        if self.flush_armed {
            return;
        }
        self.flush_armed = true;
        self.outputs.push_back(Output::SetTimer {
            timer: Timer::Flush,
            after: self.config.store_flush_interval,
        });
    }

    /// Republishes what Trickle says is due, asks about the keys gossip
    /// cannot bring news of, collects old tombstones, and re-arms.
    pub(super) fn on_republish_timer(&mut self, now_ms: i64) {
        let interval = self.config.republish_interval.as_millis().max(1);
        let round = u64::try_from(now_ms).unwrap_or(0) / u64::try_from(interval).unwrap_or(1);
        // Firings follow Trickle's intervals, rounds the clock: two
        // firings can fall in one round. The second would publish the
        // very bytes of the first, which gossipsub refuses, with a warning
        // per record: it only clears Trickle's marks.
        if self.republished_round == Some(round) {
            self.trickle.fire(std::iter::empty());
        } else {
            self.republish(now_ms, round);
            self.republished_round = Some(round);
        }
        self.anti_entropy();
        self.prune_key_topics();
        self.rediscover(now_ms);
        let ttl = i64::try_from(self.config.tombstone_ttl.as_millis()).unwrap_or(i64::MAX);
        if let Err(e) = self.replica.collect_tombstones(now_ms, ttl) {
            tracing::warn!("tombstone collection failed: {e}");
        }
        self.arm_republish();
    }

    /// The records due at this firing of `round`, republished. More due
    /// than `republish_per_second` allows over an interval: a share of
    /// them, a different share each round, so every record still goes
    /// out, less often (range reconciliation repairs the rest in between).
    fn republish(&mut self, now_ms: i64, round: u64) {
        let settled = self.settled_rule();
        let in_round =
            |hash: u128, time: i64| settled.is_none_or(|s| s.due(hash, time, now_ms, round));
        // The count sizes the shares. It leaves out the check that a key
        // is followed, a set lookup per record held (a million of them
        // each firing for a node that follows a million keys): held keys
        // are almost all followed, and one too many only makes the shares
        // a little smaller.
        let mut count: u64 = 0;
        self.replica.values_where(|_, hash, time| {
            count += u64::from(in_round(hash, time));
            false
        });
        let seconds = self.config.republish_interval.as_secs().max(1);
        let budget = u64::from(self.config.republish_per_second).saturating_mul(seconds);
        let stride = count.div_ceil(budget.max(1)).max(1);
        let subscribed = &self.subscribed;
        let candidates = self.replica.values_where(|key, hash, time| {
            // The low bits of the item hash spread keys over the shares;
            // the cheap tests go first.
            let share = (hash as u64).wrapping_add(round) % stride;
            share == 0 && in_round(hash, time) && subscribed.contains(key)
        });
        for key in self.trickle.fire(candidates.iter().map(String::as_str)) {
            if let Some(record) = self.value_record(&key) {
                self.publish_record(&record, round, Publication::Republish);
            }
        }
    }

    /// How settled records are thinned out, for a node that reconciles by
    /// key ranges; `None` (every record due) for one that reconciles key by
    /// key, whose republish is what repairs a lost message fastest.
    fn settled_rule(&mut self) -> Option<Settled> {
        if self.watched() < self.config.reconcile_min_keys {
            return None;
        }
        Some(Settled {
            after_ms: ms(self.config.settled_after),
            every: self.config.settled_republish_every,
        })
    }

    /// Anti-entropy, once an interval, each key asked about with the version
    /// we hold (an equal record costs no record bytes; a peer that holds a
    /// newer one answers it, one that is behind asks us back):
    ///
    /// - every followed key that one connected peer, drawn at random, also
    ///   follows; or, when we watch many keys, everything we hold, by a
    ///   range reconciliation with every connected peer that speaks it
    ///   (spec §18). Gossip can lose a message, and a node that holds nothing
    ///   never republishes, so Trickle alone would never tell its
    ///   neighbours that it lacks a record they all hold;
    /// - the followed keys no connected peer follows, and the keys we
    ///   deleted (we left their topics), asked of up to `fetch_fanout` peers.
    fn anti_entropy(&mut self) {
        let peers: Vec<libp2p::PeerId> = self.connected.iter().copied().collect();
        let Some(&partner) = peers.get(self.rng.random_range(0..peers.len().max(1))) else {
            return;
        };
        // Ranges cost a round trip and about a hundred bytes per peer when
        // nothing differs, so every peer that speaks them is reconciled:
        // a neighbour that missed a record (one that is settled is no
        // longer republished every firing, and one that is behind no
        // longer republishes what would tell us so) is caught up within
        // an interval, not at the luck of a draw.
        for &peer in &peers {
            if peer != partner {
                self.reconcile_with(peer);
            }
        }
        if !self.reconcile_with(partner) {
            let shared: Vec<String> = self
                .subscribed
                .iter()
                .filter(|key| self.followers_of(key).contains(&partner))
                .cloned()
                .collect();
            for key in shared {
                self.ask(partner, &key, None);
            }
        }
        let mut keys = self.lonely_keys();
        keys.extend(self.replica.tombstoned_keys());
        // Sets iterate in no reproducible order; the peers drawn must be.
        keys.sort_unstable();
        for key in keys {
            self.ask_peers(&key, None);
        }
    }
}
