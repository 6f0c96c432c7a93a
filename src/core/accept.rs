//! The accept decision for one incoming record: the same path for gossip,
//! fetch answers and local writes (DESIGN §3), cheapest checks first.
//!
//! 1. size limits (decoding already refused malformed bytes);
//! 2. time no further than `max_clock_skew` ahead of the local clock;
//! 3. precedence against the stored record: only a newer record goes on;
//! 4. the Ed25519 signature, then the [`Validator`];
//!
//! so an identical or stale record costs [`judge`] a comparison, not a
//! signature check. (A [`Replica`](crate::coordinator::replica::Replica) then checks an
//! `Older` record before reporting it, since the node reacts to one: spec
//! §7.)

use std::cmp::Ordering;

pub use crate::core::decode_error::DecodeError;
use crate::core::order::precedence;
use crate::core::record::Record;
use crate::core::validator::Validator;

/// Size and time limits every record must meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes of UTF-8.
    pub max_key_bytes: usize,
    /// Longest value, in bytes of UTF-8.
    pub max_value_bytes: usize,
    /// How far, in milliseconds, a record's time may be ahead of ours.
    pub max_clock_skew_ms: i64,
}

impl Limits {
    /// Checks a key and a value against the length limits, as every node
    /// does to a record it receives: a key no node would accept can be
    /// refused before it is followed or asked for.
    pub fn check(&self, key: &str, value: &str) -> Result<(), RejectReason> {
        check_sizes(key, value, self)
    }
}

/// Why a record was refused. Carried by `Event::RecordRejected` and by
/// the errors of local writes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The bytes did not decode to a record.
    #[error("malformed record: {0}")]
    Malformed(#[from] DecodeError),
    /// The key is longer than `max_key_bytes`.
    #[error("key of {len} bytes exceeds the limit of {limit} bytes")]
    KeyTooLong {
        /// Length of the key in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The value is longer than `max_value_bytes`.
    #[error("value of {len} bytes exceeds the limit of {limit} bytes")]
    ValueTooLarge {
        /// Length of the value in bytes.
        len: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The record is dated too far in the future.
    #[error("record time {time} ms is more than {max_skew_ms} ms ahead of local time {now} ms")]
    FromTheFuture {
        /// The record's time.
        time: i64,
        /// Local time when it was checked.
        now: i64,
        /// The allowed skew.
        max_skew_ms: i64,
    },
    /// The signature does not verify for this key, author and content.
    #[error("signature does not verify")]
    BadSignature,
    /// The validator does not let this author write this key.
    #[error("author may not write this key")]
    Unauthorized,
    /// The gossip topic is not a pointer record topic.
    #[error("message on a topic that is not /pointer/record/<key>")]
    ForeignTopic,
    /// A record on a shard topic whose key hashes to another shard.
    #[error("record of a key that belongs to another shard than its topic")]
    WrongShard,
}

/// A key [`Behaviour::subscribe_many`](crate::Behaviour::subscribe_many)
/// refused, and why; no key of the call was followed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("key {key:?} refused: {reason}")]
pub struct KeyRefused {
    /// The key.
    pub key: String,
    /// Why (a size limit).
    pub reason: RejectReason,
}

/// The outcome of [`judge`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Newer than what is stored (or nothing is stored), and valid: store it.
    Newer,
    /// The very record already stored.
    Same,
    /// Loses to the stored record.
    Older,
    /// Breaks a rule: never stored, and the sender is to blame.
    Invalid(RejectReason),
}

/// Decides what to do with `incoming`, given the `stored` record of its key.
pub fn judge(
    incoming: &Record,
    stored: Option<&Record>,
    now_ms: i64,
    limits: &Limits,
    validator: &dyn Validator,
) -> Verdict {
    judge_with(incoming, stored, now_ms, limits, validator, Record::verify)
}

/// [`judge`] with the signature check supplied by the caller (a replica
/// checks with its cache of authors' keys); `verify` must decide exactly as
/// [`Record::verify`] does, and is called only when the record would win.
pub fn judge_with(
    incoming: &Record,
    stored: Option<&Record>,
    now_ms: i64,
    limits: &Limits,
    validator: &dyn Validator,
    verify: impl FnOnce(&Record) -> bool,
) -> Verdict {
    if let Err(reason) = check_shape(incoming, now_ms, limits) {
        return Verdict::Invalid(reason);
    }
    match stored.map(|s| precedence(incoming, s)) {
        Some(Ordering::Equal) => return Verdict::Same,
        Some(Ordering::Less) => return Verdict::Older,
        Some(Ordering::Greater) | None => {}
    }
    if !verify(incoming) {
        return Verdict::Invalid(RejectReason::BadSignature);
    }
    if !validator.may_write(incoming.key(), incoming.author()) {
        return Verdict::Invalid(RejectReason::Unauthorized);
    }
    Verdict::Newer
}

/// The checks that need neither the store nor cryptography.
pub fn check_shape(record: &Record, now_ms: i64, limits: &Limits) -> Result<(), RejectReason> {
    check_sizes(record.key(), record.value(), limits)?;
    if record.time() > now_ms.saturating_add(limits.max_clock_skew_ms) {
        return Err(RejectReason::FromTheFuture {
            time: record.time(),
            now: now_ms,
            max_skew_ms: limits.max_clock_skew_ms,
        });
    }
    Ok(())
}

/// Key and value length limits.
pub fn check_sizes(key: &str, value: &str, limits: &Limits) -> Result<(), RejectReason> {
    if key.len() > limits.max_key_bytes {
        return Err(RejectReason::KeyTooLong {
            len: key.len(),
            limit: limits.max_key_bytes,
        });
    }
    if value.len() > limits.max_value_bytes {
        return Err(RejectReason::ValueTooLarge {
            len: value.len(),
            limit: limits.max_value_bytes,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Op, Signature};
    use crate::core::validator::{Open, OwnedKeys};
    use ed25519_dalek::SigningKey;

    const NOW: i64 = 1_000_000;
    const LIMITS: Limits = Limits {
        max_key_bytes: 16,
        max_value_bytes: 8,
        max_clock_skew_ms: 1_000,
    };

    fn signer() -> SigningKey {
        SigningKey::from_bytes(&[9; 32])
    }

    fn rec(key: &str, value: &str, time: i64) -> Record {
        Record::sign(key, Op::Mut, value, time, &signer())
    }

    fn judge_open(r: &Record, stored: Option<&Record>) -> Verdict {
        judge(r, stored, NOW, &LIMITS, &Open)
    }

    #[test]
    fn valid_new_record_is_newer() {
        assert_eq!(judge_open(&rec("k", "v", NOW), None), Verdict::Newer);
    }

    #[test]
    fn stale_and_equal_records_are_told_apart() {
        let old = rec("k", "a", NOW - 10);
        let new = rec("k", "b", NOW);
        assert_eq!(judge_open(&old, Some(&new)), Verdict::Older);
        assert_eq!(judge_open(&new, Some(&new.clone())), Verdict::Same);
        assert_eq!(judge_open(&new, Some(&old)), Verdict::Newer);
    }

    #[test]
    fn stale_record_is_refused_before_its_signature_is_checked() {
        let new = rec("k", "b", NOW);
        let forged = Record::from_parts(
            "k".into(),
            Op::Mut,
            "a".into(),
            NOW - 10,
            *new.author(),
            Signature::from_bytes([0; 64]),
        );
        // A bad signature on a stale record is still just stale: no crypto spent.
        assert_eq!(judge_open(&forged, Some(&new)), Verdict::Older);
        assert_eq!(
            judge_open(&forged, None),
            Verdict::Invalid(RejectReason::BadSignature)
        );
    }

    #[test]
    fn record_replayed_onto_another_key_is_refused() {
        let r = rec("k", "v", NOW);
        let replay = Record::from_parts(
            "other".into(),
            r.op(),
            r.value().into(),
            r.time(),
            *r.author(),
            *r.signature(),
        );
        assert_eq!(
            judge_open(&replay, None),
            Verdict::Invalid(RejectReason::BadSignature)
        );
    }

    #[test]
    fn time_beyond_the_skew_is_refused_and_within_it_accepted() {
        assert_eq!(
            judge_open(&rec("k", "v", NOW + 1_000), None),
            Verdict::Newer
        );
        assert!(matches!(
            judge_open(&rec("k", "v", NOW + 1_001), None),
            Verdict::Invalid(RejectReason::FromTheFuture { .. })
        ));
    }

    #[test]
    fn size_limits_are_enforced_at_the_boundary() {
        assert_eq!(
            judge_open(&rec(&"k".repeat(16), "12345678", NOW), None),
            Verdict::Newer
        );
        assert_eq!(
            judge_open(&rec(&"k".repeat(17), "v", NOW), None),
            Verdict::Invalid(RejectReason::KeyTooLong { len: 17, limit: 16 })
        );
        assert_eq!(
            judge_open(&rec("k", "123456789", NOW), None),
            Verdict::Invalid(RejectReason::ValueTooLarge { len: 9, limit: 8 })
        );
    }

    #[test]
    fn validator_refusal_is_unauthorized() {
        let r = rec("somebody-else/x", "v", NOW);
        assert_eq!(
            judge(&r, None, NOW, &LIMITS, &OwnedKeys),
            Verdict::Invalid(RejectReason::Unauthorized)
        );
    }
}
