//! Decompressed public keys of the authors seen lately.
//!
//! Checking a signature starts by decompressing the author's 32-byte key
//! into a curve point (3 µs of the 35 µs a check costs here). A node hears
//! the same few authors again and again (one writer per owned key), so the
//! points are kept, up to a bound; when the bound is reached the cache
//! starts over, which costs one decompression per author and keeps the
//! bound without bookkeeping per hit.

use std::collections::HashMap;

use ed25519_dalek::VerifyingKey;

use crate::core::record::{Author, Record};

/// A bounded cache of authors' decompressed keys.
#[derive(Debug)]
pub(crate) struct AuthorKeys {
    keys: HashMap<Author, VerifyingKey>,
    capacity: usize,
}

impl AuthorKeys {
    /// A cache of at most `capacity` keys; `0` keeps none.
    pub(crate) fn new(capacity: usize) -> Self {
        AuthorKeys {
            keys: HashMap::new(),
            capacity,
        }
    }

    /// Whether `record`'s signature checks out, exactly as
    /// [`Record::verify`] decides, reusing the author's key if it is known.
    /// Bytes that are not a valid key are never cached. A record checked
    /// before answers from its own memory, with no key looked up.
    pub(crate) fn verify(&mut self, record: &Record) -> bool {
        if let Some(valid) = record.checked() {
            return valid;
        }
        let author = record.author();
        if let Some(key) = self.keys.get(author) {
            return record.verify_with(key);
        }
        let Ok(key) = VerifyingKey::from_bytes(author.as_bytes()) else {
            return record.verify();
        };
        let valid = record.verify_with(&key);
        if self.capacity > 0 {
            if self.keys.len() >= self.capacity {
                self.keys.clear();
            }
            self.keys.insert(*author, key);
        }
        valid
    }

    /// How many keys are cached.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::record::{Op, Signature};
    use ed25519_dalek::SigningKey;

    fn signed(seed: u8, time: i64) -> Record {
        Record::sign(
            "k",
            Op::Mut,
            "v",
            time,
            &SigningKey::from_bytes(&[seed; 32]),
        )
    }

    fn tampered(record: &Record) -> Record {
        let mut sig = *record.signature().as_bytes();
        sig[0] ^= 1;
        Record::from_parts(
            record.key().to_owned(),
            record.op(),
            record.value().to_owned(),
            record.time(),
            *record.author(),
            Signature::from_bytes(sig),
        )
    }

    #[test]
    fn cached_and_uncached_checks_agree() {
        let mut cache = AuthorKeys::new(8);
        for record in [signed(1, 1), signed(1, 2), tampered(&signed(1, 3))] {
            assert_eq!(cache.verify(&record), record.verify_afresh());
        }
        assert_eq!(cache.len(), 1, "one author, one key");
        // Bytes that do not decompress to a curve point.
        let not_a_point = (0..=u8::MAX)
            .map(|b| [b; 32])
            .find(|bytes| VerifyingKey::from_bytes(bytes).is_err())
            .expect("some repeated byte is not a point");
        let bad_author = Record::from_parts(
            "k".into(),
            Op::Mut,
            "v".into(),
            1,
            Author::from_bytes(not_a_point),
            *signed(1, 1).signature(),
        );
        assert!(!cache.verify(&bad_author));
        assert_eq!(cache.len(), 1, "invalid key bytes are not cached");
    }

    #[test]
    fn the_cache_never_holds_more_than_its_capacity() {
        let mut cache = AuthorKeys::new(3);
        for seed in 1..=10 {
            assert!(cache.verify(&signed(seed, 1)));
            assert!(cache.len() <= 3);
        }
        let mut none = AuthorKeys::new(0);
        assert!(none.verify(&signed(1, 1)));
        assert_eq!(none.len(), 0);
    }
}
