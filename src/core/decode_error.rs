//! Why bytes could not be turned into a record; re-exported at the crate
//! root and as [`wire::DecodeError`](crate::wire::DecodeError). It sits in
//! the lowest layer because the record's own checks return it too.

/// Why bytes could not be turned into a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes are not a valid protobuf message of the expected type.
    #[error("not a valid protobuf message: {0}")]
    Protobuf(String),
    /// The message is larger than the configured limit.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the message in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// `author` is not 32 bytes.
    #[error("author must be a 32-byte Ed25519 public key, got {0} bytes")]
    AuthorLength(usize),
    /// `sign` is not padded standard base64 of 64 bytes.
    #[error("signature must be standard base64 of 64 bytes")]
    SignatureEncoding,
    /// A `Del` carried a value.
    #[error("a Del record must not carry a value")]
    DelWithValue,
    /// `op` holds a number that is neither `Mut` (0) nor `Del` (1).
    #[error("unknown operation {0}")]
    UnknownOp(i32),
    /// A record on a shard topic did not name its key (`Operate.key`).
    #[error("a record on a shard topic must name its key")]
    MissingKey,
}
