//! What a remote peer may make us hold or spend: invalid records charged
//! to its budget, subscriptions within their limits, and the ban that
//! follows either (see [`crate::coordinator::misbehaviour`]).

use std::time::Duration;

use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;

use super::{Coordinator, Output};
use crate::coordinator::misbehaviour::{blames_sender, Misbehaviour};
use crate::core::accept::RejectReason;
use crate::event::Event;
use crate::store::RecordStore;

/// A duration in whole milliseconds, saturating.
pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<S: RecordStore> Coordinator<S> {
    /// A record from `peer` broke a rule: the user hears of it, and one
    /// that proves the sender broken or hostile is charged to its budget.
    /// gossipsub is told `Reject` for those, `Ignore` for a record an
    /// honest peer may forward (one our validator or limits refuse).
    pub(super) fn reject(
        &mut self,
        peer: PeerId,
        key: String,
        reason: RejectReason,
        now_ms: i64,
    ) -> MessageAcceptance {
        let blamed = blames_sender(&reason);
        let spent = blamed
            .then(|| self.penalties.charge(peer, now_ms))
            .flatten();
        self.emit(Event::RecordRejected {
            peer,
            key,
            reason: reason.clone(),
        });
        if let Some(count) = spent {
            let last = reason;
            self.punish(peer, Misbehaviour::InvalidRecords { count, last }, now_ms);
        }
        if blamed {
            MessageAcceptance::Reject
        } else {
            MessageAcceptance::Ignore
        }
    }

    /// Whether `peer` is banned at `now_ms`: its connections are refused,
    /// and what it still sends (in flight when the ban began) is dropped
    /// unread.
    pub fn is_banned(&self, peer: &PeerId, now_ms: i64) -> bool {
        self.penalties.is_banned(peer, now_ms)
    }

    /// Checks the subscription limits after `peer` subscribed to a topic.
    pub(super) fn check_subscriptions(&mut self, peer: PeerId, now_ms: i64) {
        let limit = self.config.max_topics_per_peer;
        if self.followers.count_of(&peer) > limit {
            self.punish(peer, Misbehaviour::TooManyTopics { limit }, now_ms);
        }
        // Past the bound for all peers, the peer banned is the one holding
        // the most for keys we do not watch: what it makes us hold for
        // nothing we use. A heavy follower of our own keys is the peer we
        // share the most with, and Sybils each lighter than it must not get
        // it banned; among peers holding only keys we watch, the heaviest.
        let limit = self.config.max_subscription_bytes;
        while self.followers.bytes() > limit {
            let Some(costliest) = self.followers.heaviest_by(|key| !self.watches(key)) else {
                break;
            };
            self.punish(costliest, Misbehaviour::SubscriptionBytes { limit }, now_ms);
        }
    }

    /// Bans `peer`: forgets what it made us hold at once (its connections
    /// close as the shell executes the ban), and tells the user.
    pub(super) fn punish(&mut self, peer: PeerId, reason: Misbehaviour, now_ms: i64) {
        let until_ms = self.penalties.ban(peer, now_ms);
        self.on_disconnected(peer, now_ms);
        self.outputs.push_back(Output::Ban { peer, until_ms });
        self.emit(Event::PeerBanned {
            peer,
            reason,
            until_ms,
        });
    }
}
