//! What one `Ask`/`Answer` exchange carries, as the coordinator sees it.
//!
//! The protobuf messages of `/pointer/fetch/0.0.1` live in `wire`
//! and `protocol`; the coordinator and the behaviour only
//! handle these types. An asker names each key with the [`Version`] it holds
//! (if any); the answerer sends its record only when it is newer than that
//! version, and otherwise says [`Entry::Current`], so two nodes that hold the
//! same records reconcile them without sending any record bytes.

use std::cmp::Ordering;

use crate::core::decode_error::DecodeError;
use crate::core::reconcile::{RangeAsk, RangeReply};
use crate::core::record::Record;

// `Version` is part of the order on records; the fetch messages carry it.
pub use crate::core::order::{Version, VERSION_SIGNATURE_BYTES};

/// One key of an `Ask`: the key, and the version the asker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AskKey {
    /// The key asked for.
    pub key: String,
    /// What the asker holds for it, if anything; the answerer sends its
    /// record only if it is newer.
    pub have: Option<Version>,
}

/// One key's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The answerer's record: a value or a tombstone.
    Record(Record),
    /// The answerer holds nothing for the key.
    NotExist,
    /// The answerer holds nothing newer than the asker's version.
    Current,
}

impl Entry {
    /// What a node holding `record` answers to an asker that holds `have`.
    pub fn answer(record: Option<&Record>, have: Option<&Version>) -> Entry {
        match (record, have) {
            (None, _) => Entry::NotExist,
            (Some(record), Some(have)) if have.compare(record) != Ordering::Greater => {
                Entry::Current
            }
            (Some(record), _) => Entry::Record(record.clone()),
        }
    }
}

/// What one `Ask` carries: keys, key ranges to reconcile (spec §18), or
/// both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    /// The keys asked for, in order, with our versions.
    pub keys: Vec<AskKey>,
    /// The ranges to reconcile, in order, with our fingerprints.
    pub ranges: Vec<RangeAsk>,
}

impl Request {
    /// An `Ask` for these keys only.
    pub fn keys(keys: Vec<AskKey>) -> Self {
        Request {
            keys,
            ranges: Vec::new(),
        }
    }
}

/// What the answerer sends back: an entry per key, a reply per range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// One entry per key asked, in order (the shell sends as many as fit).
    pub entries: Vec<Entry>,
    /// One reply per range asked, in order (as many as fit).
    pub ranges: Vec<RangeReply>,
}

/// What the asker reads from an `Answer`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    /// One entry per key answered, in the order asked, each decoded or why
    /// it did not decode; possibly fewer than asked.
    pub entries: Vec<Result<Entry, DecodeError>>,
    /// One reply per range answered, in the order asked; possibly fewer.
    /// None for ranges asked means the peer does not reconcile ranges.
    pub ranges: Vec<RangeReply>,
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::core::order;
    use crate::core::record::Op;

    fn record(op: Op, time: i64, seed: u8) -> Record {
        let value = if op == Op::Mut { "v" } else { "" };
        Record::sign("k", op, value, time, &SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn versions_order_as_their_records_do() {
        let records: Vec<Record> = [
            (Op::Mut, 5, 1),
            (Op::Mut, 5, 2),
            (Op::Del, 5, 3),
            (Op::Mut, 6, 1),
            (Op::Mut, 4, 9),
        ]
        .into_iter()
        .map(|(op, t, s)| record(op, t, s))
        .collect();
        for a in &records {
            for b in &records {
                assert_eq!(
                    Version::of(b).compare(a),
                    order::precedence(a, b),
                    "{a:?} vs {b:?}"
                );
            }
        }
    }

    #[test]
    fn the_record_is_sent_only_when_newer_than_the_askers() {
        let old = record(Op::Mut, 1, 1);
        let new = record(Op::Mut, 2, 1);
        assert_eq!(
            Entry::answer(None, Some(&Version::of(&old))),
            Entry::NotExist
        );
        assert_eq!(Entry::answer(Some(&new), None), Entry::Record(new.clone()));
        assert_eq!(
            Entry::answer(Some(&new), Some(&Version::of(&old))),
            Entry::Record(new.clone())
        );
        assert_eq!(
            Entry::answer(Some(&new), Some(&Version::of(&new))),
            Entry::Current
        );
        assert_eq!(
            Entry::answer(Some(&old), Some(&Version::of(&new))),
            Entry::Current
        );
    }
}
