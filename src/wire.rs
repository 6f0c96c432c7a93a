//! Conversion between [`Record`]s and their protobuf messages.
//!
//! The gossip payload and the fetch answer carry an `Operate`; stores keep a
//! `StoreValue`. Neither message carries the key: gossip takes it from the
//! topic, a fetch answer from the `Ask`, a store from its own index. Decoding
//! checks shapes only (lengths, base64, op/value agreement); the signature,
//! time and authorization are checked by the accept path.
//!
//! The `Ask`/`Answer` of the fetch protocol are converted here too, to and
//! from the [`exchange`](crate::wire::exchange) types the coordinator handles.
//! Many keys travel in one `Ask` and many records in one `Answer`, invisibly
//! to peers that know only the original schema: the first key travels in
//! `Ask.key` and its answer in `Answer.status`/`Answer.op`, as before;
//! further keys go in `Ask.more` and their answers in `Answer.more`, in the
//! same order. An answerer gives as many as fit the message limit; the asker
//! asks again for the rest.

use base64::{engine::general_purpose::STANDARD, Engine};
use quick_protobuf::sizeofs::sizeof_len;
use quick_protobuf::{BytesReader, MessageRead, MessageWrite, Writer};

use crate::core::record::{Author, Op, Record, Signature};
use crate::proto::pointer as pb;
use crate::wire::exchange::{
    AskKey, Entry, Reply, Request, Response, Version, VERSION_SIGNATURE_BYTES,
};

mod ranges;

pub mod exchange;
pub mod failure;

pub use ranges::{item_cost, range_ask_cost};

pub use crate::core::decode_error::DecodeError;

/// The gossipsub message id of `data` published on `topic` (spec §2):
/// SHA-256 over the topic's length in bytes (4 bytes, big-endian), the
/// topic and the data. Binding the topic means a record's bytes copied onto
/// another topic get another id, so they cannot shadow the record on its own
/// topic in gossipsub's duplicate cache.
pub fn message_id(topic: &str, data: &[u8]) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let len = u32::try_from(topic.len()).unwrap_or(u32::MAX);
    let mut hash = Sha256::new();
    hash.update(len.to_be_bytes());
    hash.update(topic.as_bytes());
    hash.update(data);
    hash.finalize().into()
}

/// Protobuf tag of `Operate.op` (field 1, varint).
const OPERATE_OP_TAG: u32 = 1 << 3;
/// Protobuf tag of `StoreValue.op` (field 6, varint).
#[cfg_attr(not(feature = "redb"), allow(dead_code))]
const STORE_VALUE_OP_TAG: u32 = 6 << 3;

/// The `Operate` message of a record.
pub fn to_operate(record: &Record) -> pb::Operate {
    pb::Operate {
        op: to_pb_op(record.op()),
        value: record.value().to_owned(),
        sign: STANDARD.encode(record.signature().as_bytes()),
        time: record.time(),
        author: record.author().as_bytes().to_vec(),
        round: 0,
        key: String::new(),
    }
}

/// The gossip payload of a republish in round `round`. gossipsub refuses
/// to publish bytes still in its duplicate cache (and, in 0.50, forgets
/// expired ids only when new ones arrive), so a republish of unchanged
/// bytes could be swallowed forever in a quiet network. The unsigned round
/// number gives each round its own message id, while nodes republishing
/// the same record in the same round still send identical bytes.
pub fn encode_republish(record: &Record, round: u64) -> Vec<u8> {
    encode(&pb::Operate {
        round,
        ..to_operate(record)
    })
}

/// A record from an `Operate` message and the key it was sent for.
pub fn from_operate(key: &str, msg: pb::Operate) -> Result<Record, DecodeError> {
    record_from_fields(key, msg.op, msg.value, &msg.sign, msg.time, &msg.author)
}

/// The protobuf encoding of a record's `Operate`: the gossip payload.
pub fn encode_operate(record: &Record) -> Vec<u8> {
    encode(&to_operate(record))
}

/// The gossip payload of `record` on its shard topic (spec §17): the
/// `Operate` names its key, since the topic does not; `round` as in
/// [`encode_republish`] (0 for a write).
pub fn encode_shard_operate(record: &Record, round: u64) -> Vec<u8> {
    encode(&pb::Operate {
        round,
        key: record.key().to_owned(),
        ..to_operate(record)
    })
}

/// Decodes a shard topic's gossip payload, whose key is `Operate.key`,
/// refusing anything over `limit` bytes before parsing it.
pub fn decode_shard_operate(bytes: &[u8], limit: usize) -> Result<Record, DecodeError> {
    let mut msg: pb::Operate = decode(bytes, limit)?;
    check_op_field(bytes, OPERATE_OP_TAG)?;
    let key = std::mem::take(&mut msg.key);
    if key.is_empty() {
        return Err(DecodeError::MissingKey);
    }
    from_operate(&key, msg)
}

/// Decodes a gossip payload for `key`, refusing anything over `limit` bytes
/// before parsing it.
pub fn decode_operate(key: &str, bytes: &[u8], limit: usize) -> Result<Record, DecodeError> {
    let msg: pb::Operate = decode(bytes, limit)?;
    check_op_field(bytes, OPERATE_OP_TAG)?;
    from_operate(key, msg)
}

/// The protobuf encoding of a record's `StoreValue`: what a store keeps.
#[cfg_attr(not(feature = "redb"), allow(dead_code))]
pub fn encode_store_value(record: &Record) -> Vec<u8> {
    encode(&pb::StoreValue {
        value: record.value().to_owned(),
        sign: STANDARD.encode(record.signature().as_bytes()),
        time: record.time(),
        author: record.author().as_bytes().to_vec(),
        op: to_pb_op(record.op()),
    })
}

/// Decodes a `StoreValue` kept under `key`.
#[cfg_attr(not(feature = "redb"), allow(dead_code))]
pub fn decode_store_value(key: &str, bytes: &[u8], limit: usize) -> Result<Record, DecodeError> {
    let msg: pb::StoreValue = decode(bytes, limit)?;
    check_op_field(bytes, STORE_VALUE_OP_TAG)?;
    record_from_fields(key, msg.op, msg.value, &msg.sign, msg.time, &msg.author)
}

fn record_from_fields(
    key: &str,
    op: pb::Operations,
    value: String,
    sign: &str,
    time: i64,
    author: &[u8],
) -> Result<Record, DecodeError> {
    let op = from_pb_op(op);
    // proto3 cannot tell an absent string from an empty one, so a Del's
    // "absent" value is the empty string; anything else is malformed.
    if op == Op::Del && !value.is_empty() {
        return Err(DecodeError::DelWithValue);
    }
    let author: [u8; 32] = author
        .try_into()
        .map_err(|_| DecodeError::AuthorLength(author.len()))?;
    let signature = decode_signature(sign)?;
    Ok(Record::from_parts(
        key.to_owned(),
        op,
        value,
        time,
        Author::from_bytes(author),
        signature,
    ))
}

/// The generated reader maps an unknown enum number to the default (`Mut`),
/// which would give one signed record a second encoding and message id.
/// Scan the raw fields (already parsed once, so well formed) for `op`.
fn check_op_field(bytes: &[u8], op_tag: u32) -> Result<(), DecodeError> {
    let mut reader = BytesReader::from_bytes(bytes);
    let malformed = |e: quick_protobuf::Error| DecodeError::Protobuf(e.to_string());
    while !reader.is_eof() {
        let tag = reader.next_tag(bytes).map_err(malformed)?;
        if tag == op_tag {
            let op = reader.read_enum::<i32>(bytes).map_err(malformed)?;
            if op != 0 && op != 1 {
                return Err(DecodeError::UnknownOp(op));
            }
        } else {
            reader.read_unknown(bytes, tag).map_err(malformed)?;
        }
    }
    Ok(())
}

fn decode_signature(sign: &str) -> Result<Signature, DecodeError> {
    // 64 bytes are 88 base64 characters; refuse longer input before decoding.
    if sign.len() != 88 {
        return Err(DecodeError::SignatureEncoding);
    }
    let bytes = STANDARD
        .decode(sign)
        .map_err(|_| DecodeError::SignatureEncoding)?;
    let bytes: [u8; 64] = bytes
        .try_into()
        .map_err(|_| DecodeError::SignatureEncoding)?;
    Ok(Signature::from_bytes(bytes))
}

/// Most bytes one `Have` adds to an `Ask`: its tag and length, time (10),
/// op (2) and the signature prefix (2 + 16).
const MAX_HAVE_COST: usize = 2 + 11 + 2 + 2 + VERSION_SIGNATURE_BYTES;

/// Most bytes `key` adds to an `Ask`: its tag, length and bytes, and its
/// version.
pub fn ask_cost(key: &str) -> usize {
    1 + sizeof_len(key.len()) + MAX_HAVE_COST
}

/// Fewest bytes `record` adds to an `Answer` as one entry: its value, the
/// signature's 88 characters and the 32-byte author, without framing. A
/// lower bound: an answerer that stops reading records once these pass the
/// message limit never leaves out an entry the limit would have let
/// through ([`to_answer`] cuts the answer exactly).
pub(crate) fn entry_min_cost(record: &Record) -> usize {
    record.value().len() + 88 + 32
}

/// The `Ask` for `keys`: the first in `key`, as the original schema has it,
/// the rest in `more`, their versions in `have` (left out when the asker
/// holds none, so a plain ask is byte for byte the original).
pub(crate) fn to_ask(request: Request) -> pb::Ask {
    let ranges = ranges::to_ranges(&request.ranges);
    let keys = request.keys;
    let any_version = keys.iter().any(|k| k.have.is_some());
    let have = if any_version {
        keys.iter().map(|k| to_have(k.have.as_ref())).collect()
    } else {
        Vec::new()
    };
    let mut keys = keys.into_iter().map(|k| k.key);
    let key = keys.next().unwrap_or_default();
    pb::Ask {
        key,
        more: keys.collect(),
        have,
        ranges,
    }
}

/// The keys an `Ask` asks for, in the order they are to be answered, with
/// the asker's versions. `have` must hold one version per key; otherwise it
/// is ignored and every record is answered in full, which costs bytes but
/// is never wrong. An `Ask` with ranges and an empty `key` asks for no key.
pub(crate) fn from_ask(ask: pb::Ask) -> Result<Request, DecodeError> {
    let ranges = ranges::from_ranges(ask.ranges)?;
    let only_ranges = !ranges.is_empty() && ask.key.is_empty() && ask.more.is_empty();
    if only_ranges {
        return Ok(Request {
            keys: Vec::new(),
            ranges,
        });
    }
    let count = 1 + ask.more.len();
    let mut have: Vec<Option<Version>> = if ask.have.len() == count {
        ask.have.iter().map(from_have).collect()
    } else {
        vec![None; count]
    };
    have.reverse();
    let keys = std::iter::once(ask.key)
        .chain(ask.more)
        .map(|key| AskKey {
            key,
            have: have.pop().flatten(),
        })
        .collect();
    Ok(Request { keys, ranges })
}

pub(crate) fn to_have(version: Option<&Version>) -> pb::Have {
    match version {
        Some(v) => pb::Have {
            time: v.time,
            op: to_pb_op(v.op),
            sign: v.signature.to_vec(),
        },
        None => pb::Have::default(),
    }
}

/// A `Have` with a signature prefix of the wrong length counts as none.
pub(crate) fn from_have(have: &pb::Have) -> Option<Version> {
    let signature = <[u8; VERSION_SIGNATURE_BYTES]>::try_from(have.sign.as_slice()).ok()?;
    Some(Version {
        time: have.time,
        op: from_pb_op(have.op),
        signature,
    })
}

/// The `Answer` of `reply`, in order: the first entry always (a single
/// record always fits the limit), the following ones while the answer stays
/// within `max_bytes`; then the range replies, the first always, the others
/// while they fit. The asker asks again for what was left out.
pub(crate) fn to_answer(reply: Reply, max_bytes: usize) -> pb::Answer {
    let mut answer = pb::Answer::default();
    let mut entries = reply.entries.into_iter().map(|e| to_entry(&e));
    if let Some(first) = entries.next() {
        answer.status = first.status;
        answer.op = first.op;
    }
    let mut size = answer.get_size();
    for entry in entries {
        let cost = 1 + sizeof_len(entry.get_size());
        if size + cost > max_bytes {
            break;
        }
        size += cost;
        answer.more.push(entry);
    }
    for range in reply.ranges.iter().map(ranges::to_reply) {
        let cost = ranges::reply_cost(&range);
        if size + cost > max_bytes && !answer.ranges.is_empty() {
            break;
        }
        size += cost;
        answer.ranges.push(range);
    }
    answer
}

fn to_entry(entry: &Entry) -> pb::Entry {
    match entry {
        Entry::Record(record) => pb::Entry {
            status: pb::Status::Ok_pb,
            op: Some(to_operate(record)),
        },
        Entry::NotExist => pb::Entry {
            status: pb::Status::NotExist,
            op: None,
        },
        Entry::Current => pb::Entry {
            status: pb::Status::Current,
            op: None,
        },
    }
}

/// An answer to `keys` and `ranges` ranges: one entry per answered key in
/// the order asked, each decoded or why it did not decode, and the range
/// replies. Fewer entries (or replies) than asked is fine (the rest did not
/// fit); more is a broken answer, and so is a range reply that does not
/// decode. An answer to ranges alone carries no entry to read (its `status`
/// is the proto3 default).
pub(crate) fn from_answer(
    mut answer: pb::Answer,
    keys: &[String],
    ranges: usize,
) -> Result<Response, BrokenAnswer> {
    let replies = std::mem::take(&mut answer.ranges);
    if replies.len() > ranges {
        return Err(BrokenAnswer::TooManyRanges);
    }
    let ranges = replies
        .into_iter()
        .map(ranges::from_reply)
        .collect::<Result<Vec<_>, _>>()
        .map_err(BrokenAnswer::Range)?;
    let entries = match keys.is_empty() {
        true => Vec::new(),
        false => answer_entries(answer, keys)?,
    };
    Ok(Response { entries, ranges })
}

fn answer_entries(
    answer: pb::Answer,
    keys: &[String],
) -> Result<Vec<Result<Entry, DecodeError>>, BrokenAnswer> {
    let count = 1 + answer.more.len();
    if count > keys.len() {
        return Err(BrokenAnswer::TooManyEntries {
            count,
            asked: keys.len(),
        });
    }
    let first = pb::Entry {
        status: answer.status,
        op: answer.op,
    };
    let entries = std::iter::once(first).chain(answer.more);
    Ok(keys
        .iter()
        .zip(entries)
        .map(|(key, e)| from_entry(key, e))
        .collect())
}

fn from_entry(key: &str, entry: pb::Entry) -> Result<Entry, DecodeError> {
    match (entry.status, entry.op) {
        (pb::Status::NotExist, _) => Ok(Entry::NotExist),
        (pb::Status::Current, _) => Ok(Entry::Current),
        (pb::Status::Ok_pb, Some(op)) => from_operate(key, op).map(Entry::Record),
        (pb::Status::Ok_pb, None) => {
            Err(DecodeError::Protobuf("Ok answer without a record".into()))
        }
    }
}

/// An `Answer` that cannot be read as the answer to its `Ask`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BrokenAnswer {
    /// More entries than its `Ask` had keys.
    #[error("answer has {count} entries for {asked} keys asked")]
    TooManyEntries { count: usize, asked: usize },
    /// More range replies than its `Ask` had ranges.
    #[error("answer has more range replies than ranges asked")]
    TooManyRanges,
    /// A range reply that does not decode.
    #[error("{0}")]
    Range(DecodeError),
}

pub(crate) fn to_pb_op(op: Op) -> pb::Operations {
    match op {
        Op::Mut => pb::Operations::Mut,
        Op::Del => pb::Operations::Del,
    }
}

fn from_pb_op(op: pb::Operations) -> Op {
    match op {
        pb::Operations::Mut => Op::Mut,
        pb::Operations::Del => Op::Del,
    }
}

fn encode<M: MessageWrite>(msg: &M) -> Vec<u8> {
    let mut out = Vec::with_capacity(msg.get_size());
    let mut writer = Writer::new(&mut out);
    // Writing into a Vec cannot fail: it grows as needed.
    if msg.write_message(&mut writer).is_err() {
        out.clear();
    }
    out
}

fn decode<'a, M: MessageRead<'a>>(bytes: &'a [u8], limit: usize) -> Result<M, DecodeError> {
    if bytes.len() > limit {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let mut reader = BytesReader::from_bytes(bytes);
    M::from_reader(&mut reader, bytes).map_err(|e| DecodeError::Protobuf(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::reconcile::{Fingerprint, Item, KeyRange, RangeAsk, RangeReply};
    use ed25519_dalek::SigningKey;

    fn record(op: Op, value: &str) -> Record {
        Record::sign("k", op, value, 42, &SigningKey::from_bytes(&[7; 32]))
    }

    #[test]
    fn operate_round_trips() {
        for r in [record(Op::Mut, "hello"), record(Op::Del, "")] {
            let bytes = encode_operate(&r);
            assert_eq!(decode_operate("k", &bytes, 1024), Ok(r.clone()));
        }
    }

    #[test]
    fn store_value_round_trips_tombstones_too() {
        for r in [record(Op::Mut, "hello"), record(Op::Del, "")] {
            let bytes = encode_store_value(&r);
            assert_eq!(decode_store_value("k", &bytes, 1024), Ok(r.clone()));
        }
    }

    #[test]
    fn oversize_input_is_refused_before_parsing() {
        let bytes = encode_operate(&record(Op::Mut, "hello"));
        let err = decode_operate("k", &bytes, bytes.len() - 1).unwrap_err();
        assert!(matches!(err, DecodeError::TooLarge { .. }));
    }

    #[test]
    fn garbage_is_a_typed_error() {
        let err = decode_operate("k", &[0xff, 0xff, 0xff, 0xff], 1024).unwrap_err();
        assert!(matches!(err, DecodeError::Protobuf(_)));
    }

    #[test]
    fn bad_fields_are_typed_errors() {
        let good = to_operate(&record(Op::Mut, "v"));
        let short_author = pb::Operate {
            author: vec![1; 31],
            ..good.clone()
        };
        assert_eq!(
            from_operate("k", short_author),
            Err(DecodeError::AuthorLength(31))
        );
        let bad_sign = pb::Operate {
            sign: "!".repeat(88),
            ..good.clone()
        };
        assert_eq!(
            from_operate("k", bad_sign),
            Err(DecodeError::SignatureEncoding)
        );
        let del_value = pb::Operate {
            op: pb::Operations::Del,
            ..good
        };
        assert_eq!(from_operate("k", del_value), Err(DecodeError::DelWithValue));
    }

    #[test]
    fn unknown_op_numbers_are_refused_not_read_as_mut() {
        let mut bytes = encode_operate(&record(Op::Mut, "v"));
        // Mut is the default and not written; prepend op = 2 (tag 0x08).
        bytes.splice(0..0, [0x08, 0x02]);
        assert_eq!(
            decode_operate("k", &bytes, 1024),
            Err(DecodeError::UnknownOp(2))
        );
        let mut stored = encode_store_value(&record(Op::Mut, "v"));
        stored.extend([0x30, 0x07]);
        assert_eq!(
            decode_store_value("k", &stored, 1024),
            Err(DecodeError::UnknownOp(7))
        );
    }

    #[test]
    fn republish_rounds_change_the_bytes_not_the_record() {
        let r = record(Op::Mut, "v");
        let (one, two) = (encode_republish(&r, 1), encode_republish(&r, 2));
        assert_ne!(one, two);
        assert_eq!(encode_republish(&r, 0), encode_operate(&r));
        assert_eq!(decode_operate("k", &one, 1024), Ok(r.clone()));
        assert_eq!(decode_operate("k", &two, 1024), Ok(r));
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("key-{i}")).collect()
    }

    fn ask_keys(keys: &[String], have: Option<Version>) -> Vec<AskKey> {
        keys.iter()
            .map(|key| AskKey {
                key: key.clone(),
                have,
            })
            .collect()
    }

    #[test]
    fn ask_cost_bounds_what_the_key_adds_to_the_encoding() {
        let mut all = keys(3);
        all.push("k".repeat(300));
        let total: usize = all.iter().map(|k| ask_cost(k)).sum();
        let have = Version::of(&Record::sign(
            "k",
            Op::Del,
            "",
            i64::MAX,
            &SigningKey::from_bytes(&[1; 32]),
        ));
        let ask = to_ask(Request::keys(ask_keys(&all, Some(have))));
        assert!(ask.get_size() <= total, "{} > {total}", ask.get_size());
        assert!(ask.get_size() + 4 * 10 > total, "a tight bound");
    }

    #[test]
    fn asks_round_trip_and_a_plain_ask_is_the_original_schema() {
        let all = keys(3);
        let plain = to_ask(Request::keys(ask_keys(&all, None)));
        assert!(plain.have.is_empty());
        assert_eq!(from_ask(plain), Ok(Request::keys(ask_keys(&all, None))));
        let mut mixed = ask_keys(&all, None);
        mixed[1].have = Some(Version::of(&record(Op::Mut, "v")));
        let request = Request::keys(mixed);
        assert_eq!(from_ask(to_ask(request.clone())), Ok(request.clone()));
        let mut broken = to_ask(request);
        broken.have.pop();
        assert_eq!(
            from_ask(broken),
            Ok(Request::keys(ask_keys(&all, None))),
            "misaligned versions are ignored"
        );
    }

    #[test]
    fn answer_keeps_order_and_decodes_each_entry() {
        let records: Vec<Record> = (0..3)
            .map(|i| {
                Record::sign(
                    &format!("k{i}"),
                    Op::Mut,
                    "v",
                    1,
                    &SigningKey::from_bytes(&[7; 32]),
                )
            })
            .collect();
        let names: Vec<String> = records.iter().map(|r| r.key().to_owned()).collect();
        let mut entries: Vec<Entry> = records.iter().cloned().map(Entry::Record).collect();
        entries.push(Entry::NotExist);
        entries.push(Entry::Current);
        let mut asked = names.clone();
        asked.extend(["x".to_owned(), "y".to_owned()]);
        let answer = to_answer(reply(entries.clone()), 1 << 20);
        let got: Vec<Entry> = from_answer(answer, &asked, 0)
            .expect("not more than asked")
            .entries
            .into_iter()
            .map(|e| e.expect("decodes"))
            .collect();
        assert_eq!(got, entries);
    }

    #[test]
    fn answer_stays_within_the_byte_limit_but_always_has_the_first_entry() {
        let big = record(Op::Mut, &"x".repeat(1000));
        let small = record(Op::Mut, "v");
        let one = to_answer(reply(vec![Entry::Record(big.clone())]), 10);
        assert_eq!(one.op, Some(to_operate(&big)), "first entry always");
        let limit = to_answer(reply(vec![Entry::Record(small.clone())]), 1 << 20).get_size() + 40;
        let mixed = vec![
            Entry::Record(small),
            Entry::NotExist,
            Entry::Record(big),
            Entry::NotExist,
        ];
        let cut = to_answer(reply(mixed), limit);
        assert!(cut.get_size() <= limit);
        assert_eq!(cut.more.len(), 1, "the big record does not fit; stop there");
        assert_eq!(cut.more[0].status, pb::Status::NotExist);
    }

    #[test]
    fn more_entries_than_keys_is_an_error_and_a_bare_ok_is_malformed() {
        let answer = to_answer(reply(vec![Entry::NotExist; 3]), 1 << 20);
        assert_eq!(
            from_answer(answer, &keys(2), 0),
            Err(BrokenAnswer::TooManyEntries { count: 3, asked: 2 })
        );
        let bare = pb::Answer::default();
        let got = from_answer(bare, &keys(1), 0).expect("one entry");
        assert!(matches!(got.entries[0], Err(DecodeError::Protobuf(_))));
    }

    fn reply(entries: Vec<Entry>) -> Reply {
        Reply {
            entries,
            ranges: Vec::new(),
        }
    }

    fn range_ask(items: Option<Vec<Item>>) -> RangeAsk {
        RangeAsk {
            range: KeyRange {
                lower: "a".into(),
                upper: None,
            },
            fingerprint: Fingerprint {
                sum: u128::MAX - 7,
                count: 12,
            },
            items,
        }
    }

    #[test]
    fn reconciliation_asks_and_replies_round_trip() {
        let version = Version::of(&record(Op::Mut, "v"));
        let item = Item {
            key: "b".into(),
            version,
        };
        let request = Request {
            keys: Vec::new(),
            ranges: vec![range_ask(None), range_ask(Some(vec![item.clone()]))],
        };
        let ask = to_ask(request.clone());
        assert!(ask.key.is_empty() && ask.more.is_empty());
        assert_eq!(from_ask(ask), Ok(request));
        let asked = range_ask(None);
        let replies = vec![
            RangeReply::Equal,
            RangeReply::Split(vec![
                (
                    KeyRange {
                        lower: "a".into(),
                        upper: Some("c".into()),
                    },
                    asked.fingerprint,
                ),
                (
                    KeyRange {
                        lower: "c".into(),
                        upper: None,
                    },
                    Fingerprint::default(),
                ),
            ]),
            RangeReply::Listed {
                items: vec![item.clone()],
                resume: None,
            },
            RangeReply::Differences {
                items: vec![item],
                resume: Some("q".into()),
            },
        ];
        let answer = to_answer(
            Reply {
                entries: Vec::new(),
                ranges: replies.clone(),
            },
            1 << 20,
        );
        let got = from_answer(answer, &[], 4).expect("decodes");
        assert_eq!(got.ranges, replies);
        assert!(got.entries.is_empty());
        let answer = to_answer(
            Reply {
                entries: Vec::new(),
                ranges: replies,
            },
            1 << 20,
        );
        assert_eq!(
            from_answer(answer, &[], 3),
            Err(BrokenAnswer::TooManyRanges)
        );
    }

    #[test]
    fn a_range_reply_that_does_not_decode_breaks_the_answer() {
        let mut answer = pb::Answer::default();
        answer.ranges.push(pb::RangeReply {
            kind: pb::Reconciled::Listed,
            items: vec![pb::Item {
                key: "k".into(),
                have: None,
            }],
            ..pb::RangeReply::default()
        });
        assert!(matches!(
            from_answer(answer, &[], 1),
            Err(BrokenAnswer::Range(_))
        ));
        let mut ask = to_ask(Request {
            keys: Vec::new(),
            ranges: vec![range_ask(None)],
        });
        ask.ranges[0].sum.pop();
        assert!(from_ask(ask).is_err(), "a fingerprint is 16 bytes");
    }

    #[test]
    fn range_ask_cost_is_the_encoded_size() {
        let item = Item {
            key: "k".repeat(40),
            version: Version::of(&record(Op::Mut, "v")),
        };
        let ask = range_ask(Some(vec![item.clone(), item]));
        let one = to_ask(Request {
            keys: Vec::new(),
            ranges: vec![ask.clone()],
        });
        assert_eq!(one.get_size(), range_ask_cost(&ask));
    }

    #[test]
    fn signature_is_padded_standard_base64() {
        let op = to_operate(&record(Op::Mut, "v"));
        assert_eq!(op.sign.len(), 88);
        assert!(op.sign.ends_with("=="));
    }
}
