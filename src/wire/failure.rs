//! Why one fetch exchange failed, on either side.
//!
//! The shell's stream I/O (`protocol`) names these; the
//! coordinator, the events and the metrics only read them, so they sit
//! here, below all of them, beside the fetch messages.

use std::{io, sync::Arc};

/// Why an `Ask` we sent to a peer got no usable `Answer`.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum OutboundFailure {
    /// No answer within the fetch timeout (stream negotiation included).
    #[error("the peer did not answer in time")]
    Timeout,
    /// The peer does not speak `/pointer/fetch/0.0.1`.
    #[error("the peer does not support /pointer/fetch/0.0.1")]
    UnsupportedProtocols,
    /// The stream or the connection closed before an answer arrived. A peer
    /// that declines to answer closes the stream, so this is also "no answer".
    #[error("the stream closed before an answer arrived")]
    ConnectionClosed,
    /// The answer was not a well-formed protobuf `Answer`.
    #[error("malformed answer: {0}")]
    Malformed(String),
    /// The ask or the answer is larger than the message size limit.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured maximum message size, in bytes.
        limit: usize,
    },
    /// This connection already has the maximum number of asks in flight; the
    /// ask was not sent (asks are never queued beyond the limit).
    #[error("more than {limit} asks in flight on this connection")]
    TooManyRequests {
        /// The configured maximum of outbound asks per connection.
        limit: usize,
    },
    /// An I/O error on the stream.
    #[error("i/o error on the fetch stream: {0}")]
    Io(Arc<io::Error>),
}

/// Why serving a peer's `Ask` failed. The stream is closed in every case.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum InboundFailure {
    /// The exchange did not finish within the fetch timeout.
    #[error("the exchange did not finish in time")]
    Timeout,
    /// The peer closed the stream before sending a whole `Ask`.
    #[error("the stream closed before an ask arrived")]
    ConnectionClosed,
    /// The peer sent bytes that are not a well-formed `Ask` frame, or ended
    /// the stream in the middle of a frame.
    #[error("malformed ask: {0}")]
    Malformed(String),
    /// The peer announced a message (or we would have sent an answer) larger
    /// than the message size limit.
    #[error("message exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The configured maximum message size, in bytes.
        limit: usize,
    },
    /// The peer opened more concurrent fetch streams than allowed for one
    /// peer (over all its connections); the extra stream was dropped
    /// unread.
    #[error("more than {limit} concurrent inbound fetch streams")]
    TooManyStreams {
        /// The configured maximum of inbound streams per peer.
        limit: usize,
    },
    /// The node already serves `max_inbound_fetch_streams_total` streams
    /// over all its connections (a peer with many connections, or many
    /// peers at once); the extra stream was dropped unread.
    #[error("more than {limit} concurrent inbound fetch streams in total")]
    TooManyStreamsInTotal {
        /// The configured maximum over all connections.
        limit: usize,
    },
    /// An I/O error on the stream.
    #[error("i/o error on the fetch stream: {0}")]
    Io(Arc<io::Error>),
}
