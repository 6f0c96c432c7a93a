//! Many keys in one `Ask`, many records in one `Answer`.
//!
//! A node that follows thousands of keys at once would otherwise open a
//! stream per key and peer: each one a stream negotiation, a timer and a
//! task wake-up on both sides, which cost far more than the record it
//! carries. The extension is invisible to peers that know only the original
//! schema: the first key travels in `Ask.key` and its answer in
//! `Answer.status`/`Answer.op`, as before; further keys go in `Ask.more` and
//! their answers in `Answer.more`, in the same order. An answerer gives as
//! many as fit the message limit; the asker asks again for the rest.

use quick_protobuf::sizeofs::sizeof_len;
use quick_protobuf::MessageWrite as _;

use crate::proto::pointer::{Answer, Entry, Status};
use crate::record::Record;
use crate::wire;

/// Bytes `key` adds to an `Ask`: its field tag, length and the key itself.
pub(crate) fn ask_cost(key: &str) -> usize {
    1 + sizeof_len(key.len())
}

/// What a node answers for one key: the stored record (value or
/// tombstone), or that it holds nothing.
pub(crate) fn entry(record: Option<&Record>) -> Entry {
    match record {
        Some(record) => Entry {
            status: Status::Ok_pb,
            op: Some(wire::to_operate(record)),
        },
        None => Entry {
            status: Status::NotExist,
            op: None,
        },
    }
}

/// The `Answer` to the keys whose entries `entries` yields, in order: the
/// first always (a single record always fits the limit), the following ones
/// while the answer stays within `max_bytes` and `max_entries`. The asker
/// asks again for those left out.
pub(crate) fn answer(
    mut entries: impl Iterator<Item = Entry>,
    max_bytes: usize,
    max_entries: usize,
) -> Answer {
    let Some(first) = entries.next() else {
        return Answer::default();
    };
    let mut answer = Answer {
        status: first.status,
        op: first.op,
        more: Vec::new(),
    };
    let mut size = answer.get_size();
    for entry in entries.take(max_entries.saturating_sub(1)) {
        let cost = 1 + sizeof_len(entry.get_size());
        if size + cost > max_bytes {
            break;
        }
        size += cost;
        answer.more.push(entry);
    }
    answer
}

/// An answer to `asked` keys, split into one entry per answered key, in
/// the order they were asked. Fewer entries than keys is fine (the rest did
/// not fit); more is a broken answer.
pub(crate) fn entries(answer: Answer, asked: usize) -> Result<Vec<Entry>, TooManyEntries> {
    let count = 1 + answer.more.len();
    if count > asked {
        return Err(TooManyEntries { count, asked });
    }
    let mut entries = Vec::with_capacity(count);
    entries.push(Entry {
        status: answer.status,
        op: answer.op,
    });
    entries.extend(answer.more);
    Ok(entries)
}

/// An `Answer` with more entries than its `Ask` had keys.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("answer has {count} entries for {asked} keys asked")]
pub(crate) struct TooManyEntries {
    count: usize,
    asked: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Op, Record};
    use ed25519_dalek::SigningKey;

    fn record(key: &str, value: &str) -> Record {
        Record::sign(key, Op::Mut, value, 1, &SigningKey::from_bytes(&[7; 32]))
    }

    fn keys(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("key-{i}")).collect()
    }

    #[test]
    fn ask_cost_is_what_the_key_adds_to_the_encoding() {
        let mut all = keys(3);
        all.push("k".repeat(300));
        let total: usize = all.iter().map(|k| ask_cost(k)).sum();
        let ask = crate::proto::pointer::Ask {
            key: all[0].clone(),
            more: all[1..].to_vec(),
        };
        assert_eq!(ask.get_size(), total);
    }

    #[test]
    fn answer_keeps_order_and_stops_at_the_entry_limit() {
        let records: Vec<Record> = (0..5).map(|i| record(&format!("k{i}"), "v")).collect();
        let all = || records.iter().map(|r| entry(Some(r)));
        let full = answer(all(), 1 << 20, 10);
        let got = entries(full, 5).expect("not more than asked");
        assert_eq!(got.len(), 5);
        for (entry, record) in got.iter().zip(&records) {
            assert_eq!(entry.op.as_ref(), Some(&wire::to_operate(record)));
        }
        let capped = answer(all(), 1 << 20, 2);
        assert_eq!(entries(capped, 5).expect("fewer is fine").len(), 2);
    }

    #[test]
    fn answer_stays_within_the_byte_limit_but_always_has_the_first_entry() {
        let big = record("big", &"x".repeat(1000));
        let small = record("small", "v");
        let one = answer([entry(Some(&big))].into_iter(), 10, 256);
        assert_eq!(one.op, Some(wire::to_operate(&big)), "first entry always");
        let limit = answer([entry(Some(&small))].into_iter(), 1 << 20, 1).get_size() + 40;
        let mixed = [
            entry(Some(&small)),
            entry(None),
            entry(Some(&big)),
            entry(None),
        ];
        let cut = answer(mixed.into_iter(), limit, 256);
        assert!(cut.get_size() <= limit);
        assert_eq!(cut.more.len(), 1, "the big record does not fit; stop there");
        assert_eq!(cut.more[0].status, Status::NotExist);
    }

    #[test]
    fn more_entries_than_keys_is_an_error() {
        let answer = answer((0..3).map(|_| entry(None)), 1 << 20, 256);
        assert_eq!(
            entries(answer, 2),
            Err(TooManyEntries { count: 3, asked: 2 })
        );
    }
}
