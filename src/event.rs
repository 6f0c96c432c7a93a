//! What a [`Behaviour`](crate::Behaviour) tells its swarm.

use libp2p::gossipsub::PublishError;
use libp2p::PeerId;

use crate::core::accept::RejectReason;
use crate::core::record::Record;
use crate::store;
use crate::wire::failure::{InboundFailure, OutboundFailure};

/// Identifies one [`Behaviour::get`](crate::Behaviour::get).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub(crate) u64);

/// Where a record came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Written by this node.
    Local,
    /// Gossiped on the key's topic; `peer` forwarded it to us.
    Gossip {
        /// The peer that forwarded the message.
        peer: PeerId,
    },
    /// Returned by `peer` in answer to our `Ask`.
    Fetch {
        /// The peer that answered.
        peer: PeerId,
    },
}

/// How a `get` ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetOutcome {
    /// The newest valid value known once every asked peer answered.
    Found(Record),
    /// Peers answered and none holds a value, the key is deleted, or no
    /// peer was connected to ask.
    NotFound,
    /// Every asked peer failed or timed out, and nothing is held locally.
    TimedOut,
}

/// Events emitted by [`Behaviour`](crate::Behaviour).
#[derive(Debug)]
pub enum Event {
    /// A key got a new value.
    RecordUpdated {
        /// The stored record.
        record: Record,
        /// Where it came from.
        source: Source,
    },
    /// A key was deleted; the tombstone is stored and the topic left.
    RecordDeleted {
        /// The tombstone.
        record: Record,
        /// Where it came from.
        source: Source,
    },
    /// A `get` finished.
    GetFinished {
        /// The query, as returned by `get`.
        id: QueryId,
        /// The key asked for.
        key: String,
        /// What was found.
        outcome: GetOutcome,
    },
    /// A peer sent a record that breaks a rule. Nothing was stored; a
    /// gossiped one was reported to gossipsub as invalid.
    RecordRejected {
        /// The peer that sent it.
        peer: PeerId,
        /// The key it was sent for.
        key: String,
        /// What was wrong.
        reason: RejectReason,
    },
    /// A valid, newer record could not be stored (store full or failing).
    StoreFailed {
        /// The record's key.
        key: String,
        /// The store's error.
        error: store::Error,
    },
    /// A local put or delete was stored but could not be published. It is
    /// still served to peers that ask; a value is also retried at the next
    /// republish, and peers that still follow a deleted key learn the
    /// tombstone when they ask about it.
    PublishFailed {
        /// The record's key.
        key: String,
        /// gossipsub's error.
        error: PublishError,
    },
    /// An `Ask` we sent failed. Nothing was learnt for its keys from this
    /// peer; their catch-ups and `get`s count the peer as not answering.
    FetchFailed {
        /// The peer we asked.
        peer: PeerId,
        /// The keys the `Ask` carried (several when a catch-up packed them
        /// into one; see [`ConfigBuilder::max_keys_per_ask`]).
        ///
        /// [`ConfigBuilder::max_keys_per_ask`]: crate::ConfigBuilder::max_keys_per_ask
        keys: Vec<String>,
        /// What went wrong.
        error: OutboundFailure,
    },
    /// A peer misbehaved: it is disconnected, and its connections are
    /// refused until `until_ms` (ms since the Unix epoch, our clock).
    PeerBanned {
        /// The peer.
        peer: PeerId,
        /// What it did.
        reason: crate::coordinator::misbehaviour::Misbehaviour,
        /// When the ban ends.
        until_ms: i64,
    },
    /// A peer's `Ask` stream was broken off (malformed, oversize, too many
    /// streams, timeout).
    InboundFetchFailed {
        /// The peer.
        peer: PeerId,
        /// What went wrong.
        error: InboundFailure,
    },
    /// An event of the Kademlia behaviour inside
    /// [`discovery::Kad`](crate::behaviour::discovery::Kad) that is not about
    /// Pointer's own lookups: routing updates, inbound requests, the
    /// results of your own queries.
    #[cfg(feature = "kad")]
    Kad(Box<libp2p::kad::Event>),
}
