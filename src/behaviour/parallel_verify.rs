//! Signature checks of a burst, spread over threads: the shell's part of
//! checking an answer (the check itself is the core's [`Record::verify`]).
//!
//! A fresh node catching up receives answers of up to `max_keys_per_ask`
//! records at once, and the Ed25519 check of each (about 33 µs) is most of
//! what a record costs. The checks of one answer are independent, so the
//! handler runs them on `threads` scoped threads before the answer reaches
//! the coordinator; each decides with [`Record::verify`]'s own
//! `verify_strict`, record by record (no batch verification: it can accept
//! signatures `verify_strict` refuses), so the outcome is exactly the
//! sequential one, and the coordinator uses it (each record remembers it).

use crate::core::author_keys::AuthorKeys;
use crate::core::record::Record;

/// Below this many records a burst is checked on the calling thread: a
/// thread costs more to start than a few checks.
pub(crate) const MIN_PARALLEL: usize = 16;

/// Checks each of `records` on up to `threads` threads; each remembers its
/// outcome ([`Record::checked`]).
pub(crate) fn verify_all(records: &[&Record], threads: usize) {
    let threads = threads
        .max(1)
        .min(records.len().div_ceil(MIN_PARALLEL).max(1));
    if threads == 1 {
        return check(records);
    }
    let chunk = records.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let parts: Vec<_> = records
            .chunks(chunk)
            .map(|part| scope.spawn(move || check(part)))
            .collect();
        for part in parts {
            // A check does not panic; should one, the records it did not
            // reach stay unchecked and are checked when they are judged,
            // rather than the panic taking the node down.
            let _ = part.join();
        }
    })
}

/// Sequential checks, sharing decompressed keys of repeated authors.
fn check(records: &[&Record]) {
    let mut keys = AuthorKeys::new(64);
    for record in records {
        keys.verify(record);
    }
}

// Here rather than in `record.rs`, so that the record's layer starts no
// threads.
impl Record {
    /// Checks each of `records` as [`Record::verify`] does, spread over up
    /// to `threads` threads (a lot of fewer than 16 records on the calling
    /// thread), decompressing each author's key once per thread; each
    /// record remembers its outcome ([`Record::checked`]). The outcomes are
    /// those of the checks one by one: no batch verification, which can
    /// accept signatures `verify_strict` refuses. The behaviour does this
    /// for every answer; who drives a
    /// [`Coordinator`](crate::coordinator::Coordinator) directly can do the
    /// same before handing it an answer.
    pub fn verify_each(records: &[&Record], threads: usize) {
        verify_all(records, threads);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Op, Signature};
    use ed25519_dalek::SigningKey;

    #[test]
    fn decides_as_the_sequential_check_on_any_number_of_threads() {
        let signers: Vec<SigningKey> = (0..3u8)
            .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
            .collect();
        let records: Vec<Record> = (0..100)
            .map(|i| {
                let good =
                    Record::sign(&format!("k{i}"), Op::Mut, "v", i, &signers[i as usize % 3]);
                let mut sig = *good.signature().as_bytes();
                if i % 7 == 0 {
                    sig[5] ^= 1;
                }
                unchecked(&good, Signature::from_bytes(sig))
            })
            .collect();
        let expected: Vec<bool> = records
            .iter()
            .map(|r| unchecked(r, *r.signature()).verify())
            .collect();
        assert_eq!(expected.iter().filter(|ok| !**ok).count(), 15);
        for threads in [1, 2, 3, 8, 1000] {
            let fresh: Vec<Record> = records
                .iter()
                .map(|r| unchecked(r, *r.signature()))
                .collect();
            let refs: Vec<&Record> = fresh.iter().collect();
            verify_all(&refs, threads);
            // Each record remembers its own outcome, whichever thread made it.
            let remembered: Vec<Option<bool>> = fresh.iter().map(Record::checked).collect();
            let expected_memo: Vec<Option<bool>> = expected.iter().copied().map(Some).collect();
            assert_eq!(remembered, expected_memo, "{threads} threads");
        }
        verify_all(&[], 4);
    }

    /// `record`'s fields with `signature`, never checked.
    fn unchecked(record: &Record, signature: Signature) -> Record {
        Record::from_parts(
            record.key().to_owned(),
            record.op(),
            record.value().to_owned(),
            record.time(),
            *record.author(),
            signature,
        )
    }
}
