//! A signed record: the unit every node stores, gossips and answers with.
//!
//! A [`Record`] is one signed write to one key. Its signature covers a fixed,
//! canonical byte string ([`Record::signed_bytes`]), never the protobuf
//! encoding, so any implementation can recompute it byte for byte. The key
//! and the author are inside the signature: a record cannot be replayed onto
//! another key, nor claimed by another author.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use libp2p::{identity, PeerId};

/// Domain separation tag that starts every signed byte string.
pub const SIGNING_DOMAIN: &[u8] = b"pointer/record/v1\0";

/// What a record does to its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Op {
    /// Set the key to the record's value.
    Mut,
    /// Delete the key network-wide. The record is kept as a tombstone.
    Del,
}

impl Op {
    /// The byte that stands for this operation in the signed bytes.
    pub fn as_byte(self) -> u8 {
        match self {
            Op::Mut => 0,
            Op::Del => 1,
        }
    }
}

/// The Ed25519 public key that signed a record.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Author([u8; 32]);

impl Author {
    /// Wraps the 32 bytes of an Ed25519 public key. They are checked when a
    /// signature is verified, not here.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Author(bytes)
    }

    /// The raw 32 bytes of the public key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The libp2p [`PeerId`] of this key, or `None` if the bytes are not a
    /// valid Ed25519 point.
    pub fn peer_id(&self) -> Option<PeerId> {
        let key = identity::ed25519::PublicKey::try_from_bytes(&self.0).ok()?;
        Some(PeerId::from_public_key(&identity::PublicKey::from(key)))
    }
}

impl fmt::Debug for Author {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer_id() {
            Some(peer) => write!(f, "Author({peer})"),
            None => write!(f, "Author(invalid:{})", hex(&self.0)),
        }
    }
}

impl From<&SigningKey> for Author {
    fn from(key: &SigningKey) -> Self {
        Author(key.verifying_key().to_bytes())
    }
}

/// A 64-byte Ed25519 signature.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Wraps 64 raw signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The raw 64 bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex(&self.0[..8]))
    }
}

/// One signed write to one key.
///
/// A `Record` built by [`Record::sign`] is valid. One built by
/// [`Record::from_parts`] or decoded from the wire is *unverified* until
/// [`Record::verify`] says otherwise; `Behaviour` verifies every record it did
/// not sign itself before storing it.
///
/// A record remembers the outcome of its first check, and its clones carry
/// it: its fields cannot change once it is built, so the outcome cannot
/// either. A check made on one thread (an answer's records are checked on
/// their connection's task as they are decoded) is not made again where the
/// record is judged.
#[derive(Clone, PartialEq, Eq)]
pub struct Record {
    key: String,
    op: Op,
    value: String,
    time: i64,
    author: Author,
    signature: Signature,
    checked: Checked,
}

/// The remembered outcome of a record's signature check, if it was made.
/// Not part of what a record is: two records with the same fields are equal
/// whether or not either was checked.
#[derive(Default)]
struct Checked(AtomicU8);

impl Checked {
    const VALID: u8 = 1;
    const INVALID: u8 = 2;

    fn get(&self) -> Option<bool> {
        match self.0.load(Ordering::Relaxed) {
            Self::VALID => Some(true),
            Self::INVALID => Some(false),
            _ => None,
        }
    }

    fn set(&self, valid: bool) {
        let outcome = if valid { Self::VALID } else { Self::INVALID };
        self.0.store(outcome, Ordering::Relaxed);
    }
}

impl Clone for Checked {
    fn clone(&self) -> Self {
        Checked(AtomicU8::new(self.0.load(Ordering::Relaxed)))
    }
}

impl PartialEq for Checked {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for Checked {}

impl Record {
    /// Signs a write of `value` to `key` at `time` (milliseconds since the
    /// Unix epoch). A `Del` carries no value: pass `""`.
    pub fn sign(key: &str, op: Op, value: &str, time: i64, signer: &SigningKey) -> Record {
        let author = Author::from(signer);
        let bytes = signed_bytes(key, &author, op, value, time);
        let signature = Signature(signer.sign(&bytes).to_bytes());
        Record::from_parts(
            key.to_owned(),
            op,
            value.to_owned(),
            time,
            author,
            signature,
        )
    }

    /// Assembles a record from its parts without checking the signature.
    pub fn from_parts(
        key: String,
        op: Op,
        value: String,
        time: i64,
        author: Author,
        signature: Signature,
    ) -> Record {
        Record {
            key,
            op,
            value,
            time,
            author,
            signature,
            checked: Checked::default(),
        }
    }

    /// The key this record writes.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Whether it sets or deletes the key.
    pub fn op(&self) -> Op {
        self.op
    }

    /// The value; empty for a `Del`.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Milliseconds since the Unix epoch, as the author stamped it.
    pub fn time(&self) -> i64 {
        self.time
    }

    /// The public key that signed the record.
    pub fn author(&self) -> &Author {
        &self.author
    }

    /// The Ed25519 signature over [`Record::signed_bytes`].
    pub fn signature(&self) -> &Signature {
        &self.signature
    }

    /// Whether this record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.op == Op::Del
    }

    /// The exact bytes the signature covers (see `docs/spec.md`).
    pub fn signed_bytes(&self) -> Vec<u8> {
        signed_bytes(&self.key, &self.author, self.op, &self.value, self.time)
    }

    /// Checks the signature with Ed25519 `verify_strict`, which refuses
    /// small-order keys and non-canonical signatures, so one record has
    /// exactly one valid encoding of its signature. The outcome is
    /// remembered: checking the record (or a clone) again costs nothing.
    pub fn verify(&self) -> bool {
        if let Some(valid) = self.checked.get() {
            return valid;
        }
        let valid = self.verify_afresh();
        self.checked.set(valid);
        valid
    }

    /// [`Record::verify`] without the remembered outcome, neither read nor
    /// written: for checks that must not trust the code that remembered it
    /// (the simulator's audit of what nodes stored).
    pub(crate) fn verify_afresh(&self) -> bool {
        match VerifyingKey::from_bytes(&self.author.0) {
            Ok(key) => self.verify_strict_with(&key),
            Err(_) => false,
        }
    }

    /// The outcome of this record's signature check ([`Record::verify`]),
    /// if one was made: on this record, on the record it was cloned from,
    /// or, for a record fetched from a peer, on its connection's task as
    /// the answer was decoded.
    pub fn checked(&self) -> Option<bool> {
        self.checked.get()
    }

    /// [`Record::verify`] with the author's key already decompressed. A
    /// `key` that is not [`Record::author`]'s decides nothing: the record
    /// is checked with its own, so no clone can inherit a wrong outcome.
    pub(crate) fn verify_with(&self, key: &VerifyingKey) -> bool {
        if let Some(valid) = self.checked.get() {
            return valid;
        }
        if key.as_bytes() != &self.author.0 {
            return self.verify();
        }
        let valid = self.verify_strict_with(key);
        self.checked.set(valid);
        valid
    }

    fn verify_strict_with(&self, key: &VerifyingKey) -> bool {
        let signature = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify_strict(&self.signed_bytes(), &signature).is_ok()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("key", &self.key)
            .field("op", &self.op)
            .field("value", &self.value)
            .field("time", &self.time)
            .field("author", &self.author)
            .field("signature", &self.signature)
            .finish()
    }
}

/// The canonical signed bytes: domain tag, then key, author, op, value and
/// time. Variable-length parts carry a u32 big-endian length prefix so that
/// no two different records share one byte string.
fn signed_bytes(key: &str, author: &Author, op: Op, value: &str, time: i64) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(SIGNING_DOMAIN.len() + 4 + key.len() + 32 + 1 + 4 + value.len() + 8);
    out.extend_from_slice(SIGNING_DOMAIN);
    push_prefixed(&mut out, key.as_bytes());
    out.extend_from_slice(&author.0);
    out.push(op.as_byte());
    push_prefixed(&mut out, value.as_bytes());
    out.extend_from_slice(&time.to_be_bytes());
    out
}

fn push_prefixed(out: &mut Vec<u8>, part: &[u8]) {
    // Keys and values are bounded far below 4 GiB by the limits; a longer
    // part could not be signed canonically, so saturate rather than wrap.
    let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(part);
}

/// Turns a libp2p identity into the Ed25519 signing key `Behaviour` signs with.
///
/// Returns `None` for a non-Ed25519 keypair: records are always Ed25519.
pub fn signing_key(keypair: &identity::Keypair) -> Option<SigningKey> {
    let ed = keypair.clone().try_into_ed25519().ok()?;
    let bytes = ed.to_bytes();
    let secret: [u8; 32] = bytes[..32].try_into().ok()?;
    Some(SigningKey::from_bytes(&secret))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    #[test]
    fn signed_record_verifies() {
        let r = Record::sign("k", Op::Mut, "v", 1, &key(1));
        assert!(r.verify());
    }

    /// `r` with one field changed by `change`, as a record never checked:
    /// a struct update from `r` would carry `r`'s remembered outcome.
    fn changed(r: &Record, change: impl FnOnce(&mut Record)) -> Record {
        let mut variant = Record {
            checked: Checked::default(),
            ..r.clone()
        };
        change(&mut variant);
        variant
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let r = Record::sign("k", Op::Mut, "v", 1, &key(1));
        assert!(r.verify());
        let other = key(2);
        let variants = [
            changed(&r, |v| v.key = "k2".into()),
            changed(&r, |v| v.op = Op::Del),
            changed(&r, |v| v.value = "w".into()),
            changed(&r, |v| v.time = 2),
            changed(&r, |v| v.author = Author::from(&other)),
        ];
        for v in variants {
            assert!(!v.verify(), "{v:?} must not verify");
        }
    }

    #[test]
    fn length_prefixes_keep_key_and_value_apart() {
        // Without prefixes ("ab", "c") and ("a", "bc") could share bytes.
        let a = Record::sign("ab", Op::Mut, "c", 1, &key(1));
        let b = Record::sign("a", Op::Mut, "bc", 1, &key(1));
        assert_ne!(a.signed_bytes(), b.signed_bytes());
    }

    #[test]
    fn garbage_author_does_not_verify_or_panic() {
        let r = Record::sign("k", Op::Mut, "v", 1, &key(1));
        let bad = changed(&r, |v| v.author = Author([0xff; 32]));
        assert!(!bad.verify());
    }

    /// The outcome of a check travels with the record and its clones, and
    /// is the very outcome `verify_strict` gives; two records with the same
    /// fields stay equal whether or not either was checked.
    #[test]
    fn a_record_remembers_its_check_and_equality_ignores_it() {
        let good = Record::sign("k", Op::Mut, "v", 1, &key(1));
        let mut sig = *good.signature().as_bytes();
        sig[0] ^= 1;
        let bad = Record::from_parts(
            "k".into(),
            Op::Mut,
            "v".into(),
            1,
            good.author,
            Signature(sig),
        );
        let garbage = Record::from_parts(
            "k".into(),
            Op::Mut,
            "v".into(),
            1,
            Author([0xff; 32]),
            good.signature,
        );
        let unchecked = good.clone();
        assert_eq!(good.checked(), None);
        Record::verify_each(&[&good, &bad, &garbage], 1);
        let outcomes = [&good, &bad, &garbage].map(Record::checked);
        assert_eq!(outcomes, [Some(true), Some(false), Some(false)]);
        assert_eq!(good.clone().checked(), Some(true));
        assert_eq!(unchecked.checked(), None);
        assert_eq!(good, unchecked);
        assert!(good.verify() && !bad.verify() && !garbage.verify());
        assert_eq!(unchecked.verify(), good.verify());
        // A key that is not the author's decides nothing: the record is
        // checked with its own.
        let stranger = key(2).verifying_key();
        assert!(changed(&good, |_| {}).verify_with(&stranger));
        let checked = changed(&bad, |_| {});
        assert!(!checked.verify_with(&key(1).verifying_key()));
        assert_eq!(checked.checked(), Some(false));
    }

    #[test]
    fn signing_key_matches_the_libp2p_identity() {
        let kp = identity::Keypair::generate_ed25519();
        let sk = signing_key(&kp).expect("ed25519");
        let author = Author::from(&sk);
        assert_eq!(author.peer_id(), Some(kp.public().to_peer_id()));
    }
}
