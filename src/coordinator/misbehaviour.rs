//! What a peer must not do, and what it costs: a budget of invalid records
//! per peer, and bans.
//!
//! A record with a bad signature costs us a signature check (about 33 µs)
//! and proves nothing but malice or a broken peer: an honest node checks
//! every record before it forwards it. So does a malformed one, or one
//! dated more than twice our clock skew ahead. Each spends one unit of the sender's
//! budget, which refills steadily; a peer that runs it dry is disconnected
//! and refused for `ban_duration`. What honest peers send in the normal
//! course costs nothing: stale and duplicate records, a record our
//! validator refuses on a key theirs lets the author write (validators may
//! differ between nodes), a record over our size limits (limits may
//! differ too).

use std::collections::HashMap;

use libp2p::PeerId;

use crate::coordinator::token_bucket::TokenBucket;
use crate::core::accept::RejectReason;
use crate::wire::DecodeError;

/// Why a peer was disconnected and refused for a while
/// ([`Event::PeerBanned`](crate::Event::PeerBanned)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Misbehaviour {
    /// It sent more invalid records than its budget allows; `last` is why
    /// the last one was refused.
    #[error("{count} invalid records within the budget's window, the last: {last}")]
    InvalidRecords {
        /// Invalid records counted against it.
        count: u64,
        /// Why the last one was refused.
        last: RejectReason,
    },
    /// It subscribed to more topics than `max_topics_per_peer`.
    #[error("subscribed to more than {limit} topics")]
    TooManyTopics {
        /// The limit.
        limit: usize,
    },
    /// All peers' subscriptions passed `max_subscription_bytes`, and it
    /// held the most for keys this node does not watch (or, when no peer
    /// holds any such, the most in all).
    #[error("its subscriptions pushed the total over {limit} bytes")]
    SubscriptionBytes {
        /// The limit.
        limit: usize,
    },
}

/// The error a banned peer's connection is denied with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the peer is banned for misbehaving")]
pub struct Banned;

/// Whether refusing a record for `reason` shows the sender misbehaved
/// (see the module docs for what does not).
///
/// A record dated ahead of our clock by more than the skew we allow may
/// have been forwarded in good faith by a peer whose clock runs ahead of
/// ours, or who allows more skew: only one dated more than twice our skew
/// ahead is blamed on the sender (an honest peer with our setting would
/// have to be a whole skew ahead of us to pass it on).
pub fn blames_sender(reason: &RejectReason) -> bool {
    match reason {
        RejectReason::Malformed(DecodeError::TooLarge { .. }) => false,
        RejectReason::FromTheFuture {
            time,
            now,
            max_skew_ms,
        } => time.saturating_sub(*now) > max_skew_ms.saturating_mul(2),
        RejectReason::Malformed(_) | RejectReason::BadSignature | RejectReason::WrongShard => true,
        RejectReason::KeyTooLong { .. }
        | RejectReason::ValueTooLarge { .. }
        | RejectReason::Unauthorized
        | RejectReason::ForeignTopic => false,
    }
}

/// One peer's budget, and how many invalid records it sent so far.
#[derive(Debug, Clone, Copy)]
struct Budget {
    bucket: TokenBucket,
    spent: u64,
}

/// The budgets of connected peers and the bans in force.
#[derive(Debug)]
pub(crate) struct Penalties {
    burst: u32,
    window_ms: i64,
    ban_ms: i64,
    max_bans: usize,
    budgets: HashMap<PeerId, Budget>,
    /// Banned peers and when their ban ends (ms since the epoch).
    bans: HashMap<PeerId, i64>,
}

impl Penalties {
    pub fn new(burst: u32, window_ms: i64, ban_ms: i64, max_bans: usize) -> Self {
        Penalties {
            burst,
            window_ms: window_ms.max(1),
            ban_ms,
            max_bans,
            budgets: HashMap::new(),
            bans: HashMap::new(),
        }
    }

    /// Charges `peer` one invalid record; `Some(count)` when that ran its
    /// budget dry (the caller bans it).
    pub fn charge(&mut self, peer: PeerId, now_ms: i64) -> Option<u64> {
        let (burst, window_ms) = (self.burst, self.window_ms);
        let budget = self.budgets.entry(peer).or_insert_with(|| Budget {
            bucket: TokenBucket::new(burst, window_ms),
            spent: 0,
        });
        budget.spent += 1;
        (!budget.bucket.take(now_ms)).then_some(budget.spent)
    }

    /// Bans `peer` from `now_ms` for the ban duration. The ban list is
    /// bounded: when full, the ban that ends soonest makes room.
    pub fn ban(&mut self, peer: PeerId, now_ms: i64) -> i64 {
        self.bans.retain(|_, until| *until > now_ms);
        if self.bans.len() >= self.max_bans {
            let soonest = self.bans.iter().min_by_key(|(_, until)| **until);
            if let Some((&p, _)) = soonest {
                self.bans.remove(&p);
            }
        }
        let until = now_ms.saturating_add(self.ban_ms);
        if self.max_bans > 0 {
            self.bans.insert(peer, until);
        }
        self.budgets.remove(&peer);
        until
    }

    /// Whether `peer` is banned at `now_ms`.
    pub fn is_banned(&self, peer: &PeerId, now_ms: i64) -> bool {
        self.bans.get(peer).is_some_and(|until| *until > now_ms)
    }

    /// `peer` disconnected: its budget goes (a ban stays).
    pub fn peer_gone(&mut self, peer: &PeerId) {
        self.budgets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_within_the_budget_is_forgiven_and_refills() {
        let peer = PeerId::random();
        let mut p = Penalties::new(3, 1_000, 60_000, 10);
        assert_eq!(p.charge(peer, 0), None);
        assert_eq!(p.charge(peer, 0), None);
        assert_eq!(p.charge(peer, 0), None);
        assert_eq!(p.charge(peer, 0), Some(4), "the fourth at once runs it dry");
        // A third of the window refills one unit.
        let mut p = Penalties::new(3, 900, 60_000, 10);
        for _ in 0..3 {
            p.charge(peer, 0);
        }
        assert_eq!(p.charge(peer, 300), None);
        assert_eq!(p.charge(peer, 300), Some(5));
    }

    #[test]
    fn bans_expire_and_stay_bounded() {
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        let mut p = Penalties::new(1, 1_000, 100, 2);
        assert_eq!(p.ban(a, 0), 100);
        p.ban(b, 10);
        assert!(p.is_banned(&a, 99) && !p.is_banned(&a, 100));
        p.ban(c, 20);
        assert!(!p.is_banned(&a, 20), "the soonest ban made room");
        assert!(p.is_banned(&b, 20) && p.is_banned(&c, 20));
    }

    #[test]
    fn only_proof_of_malice_blames_the_sender() {
        assert!(blames_sender(&RejectReason::BadSignature));
        assert!(!blames_sender(&RejectReason::Unauthorized));
        assert!(!blames_sender(&RejectReason::Malformed(
            DecodeError::TooLarge { len: 2, limit: 1 }
        )));
        assert!(blames_sender(&RejectReason::Malformed(
            DecodeError::DelWithValue
        )));
    }

    /// A record just past our skew may come from an honest forwarder whose
    /// clock runs ahead; one past twice our skew may not.
    #[test]
    fn only_records_far_in_the_future_blame_the_forwarder() {
        let ahead = |by: i64| RejectReason::FromTheFuture {
            time: 1_000 + by,
            now: 1_000,
            max_skew_ms: 300,
        };
        assert!(!blames_sender(&ahead(301)));
        assert!(!blames_sender(&ahead(600)));
        assert!(blames_sender(&ahead(601)));
        assert!(blames_sender(&RejectReason::FromTheFuture {
            time: i64::MAX,
            now: i64::MIN,
            max_skew_ms: 0,
        }));
    }
}
