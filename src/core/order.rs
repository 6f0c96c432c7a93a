//! The total order on records of one key: which record wins.
//!
//! Every node applies the same order, so all nodes converge to the same
//! record whatever order the network delivers writes in:
//!
//! 1. the greater `time` wins;
//! 2. on equal time, `Del` beats `Mut` (a delete is never lost to a tie);
//! 3. then the greater signature bytes win (deterministic, and not
//!    choosable by an author without grinding signatures).

use std::cmp::Ordering;

use crate::core::record::{Op, Record};

/// Compares two records of the same key by precedence: `Greater` means `a`
/// wins over `b`. `Equal` only for records with the same time, op and
/// signature, which are the same write.
pub fn precedence(a: &Record, b: &Record) -> Ordering {
    precedence_of(
        (a.time(), a.op(), a.signature().as_bytes()),
        (b.time(), b.op(), b.signature().as_bytes()),
    )
}

/// [`precedence`] on the parts that decide it: time, operation and
/// signature bytes (or a prefix of them, as a
/// [`Version`](crate::wire::exchange::Version) keeps).
pub fn precedence_of(a: (i64, Op, &[u8]), b: (i64, Op, &[u8])) -> Ordering {
    a.0.cmp(&b.0)
        .then_with(|| op_rank(a.1).cmp(&op_rank(b.1)))
        .then_with(|| a.2.cmp(b.2))
}

/// Whether `candidate` should replace `stored`.
pub fn supersedes(candidate: &Record, stored: &Record) -> bool {
    precedence(candidate, stored) == Ordering::Greater
}

fn op_rank(op: Op) -> u8 {
    match op {
        Op::Mut => 0,
        Op::Del => 1,
    }
}

/// Bytes of the signature a [`Version`] keeps: enough that two different
/// writes of one key collide only if an author grinds 2^64 signatures.
pub const VERSION_SIGNATURE_BYTES: usize = 16;

/// A compact stand-in for a record in the precedence order: its time, its
/// operation and a prefix of its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Version {
    /// The record's time, in milliseconds since the Unix epoch.
    pub time: i64,
    /// Whether the record is a value or a tombstone.
    pub op: Op,
    /// The first bytes of the record's signature.
    pub signature: [u8; VERSION_SIGNATURE_BYTES],
}

impl Version {
    /// The version of `record`.
    pub fn of(record: &Record) -> Self {
        let mut signature = [0; VERSION_SIGNATURE_BYTES];
        signature.copy_from_slice(&record.signature().as_bytes()[..VERSION_SIGNATURE_BYTES]);
        Version {
            time: record.time(),
            op: record.op(),
            signature,
        }
    }

    /// How `record` compares with this version in the precedence order
    /// ([`precedence`]): `Greater` means `record` wins. `Equal` means
    /// the same write, or two writes a prefix cannot tell apart.
    pub fn compare(&self, record: &Record) -> Ordering {
        precedence_of(
            (
                record.time(),
                record.op(),
                &record.signature().as_bytes()[..VERSION_SIGNATURE_BYTES],
            ),
            (self.time, self.op, &self.signature[..]),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn rec(op: Op, value: &str, time: i64, seed: u8) -> Record {
        Record::sign("k", op, value, time, &SigningKey::from_bytes(&[seed; 32]))
    }

    #[test]
    fn later_time_wins() {
        assert!(supersedes(
            &rec(Op::Mut, "b", 2, 1),
            &rec(Op::Mut, "a", 1, 1)
        ));
        assert!(!supersedes(
            &rec(Op::Mut, "a", 1, 1),
            &rec(Op::Mut, "b", 2, 1)
        ));
    }

    #[test]
    fn delete_beats_mut_at_equal_time() {
        let del = rec(Op::Del, "", 5, 1);
        let mutation = rec(Op::Mut, "a", 5, 2);
        assert!(supersedes(&del, &mutation));
        assert!(!supersedes(&mutation, &del));
    }

    #[test]
    fn signature_breaks_remaining_ties_one_way() {
        let a = rec(Op::Mut, "a", 5, 1);
        let b = rec(Op::Mut, "b", 5, 2);
        assert_ne!(supersedes(&a, &b), supersedes(&b, &a));
    }

    #[test]
    fn a_record_does_not_supersede_itself() {
        let a = rec(Op::Mut, "a", 5, 1);
        assert_eq!(precedence(&a, &a.clone()), Ordering::Equal);
        assert!(!supersedes(&a, &a));
    }
}
