//! The range reconciliation messages of spec §18 (`Ask.ranges`,
//! `Answer.ranges`), to and from the [`reconcile`](crate::core::reconcile) types.
//!
//! A range's open end travels as an empty `upper`: a range that ends at the
//! empty key would hold nothing, so no range needs it. Likewise an empty
//! `resume` means the listing did not stop.

use quick_protobuf::sizeofs::sizeof_len;
use quick_protobuf::MessageWrite;

use super::{from_have, to_have, DecodeError};
use crate::core::reconcile::{Fingerprint, Item, KeyRange, RangeAsk, RangeReply};
use crate::proto::pointer as pb;

fn bad(what: &str) -> DecodeError {
    DecodeError::Protobuf(format!("reconciliation: {what}"))
}

fn to_range(range: &KeyRange, fingerprint: &Fingerprint, items: Option<&[Item]>) -> pb::Range {
    pb::Range {
        lower: range.lower.clone(),
        upper: range.upper.clone().unwrap_or_default(),
        sum: fingerprint.sum.to_be_bytes().to_vec(),
        count: fingerprint.count,
        listed: items.is_some(),
        items: items.unwrap_or_default().iter().map(to_item).collect(),
    }
}

type RangeParts = (KeyRange, Fingerprint, Option<Vec<Item>>);

fn from_range(range: pb::Range) -> Result<RangeParts, DecodeError> {
    let sum =
        <[u8; 16]>::try_from(range.sum.as_slice()).map_err(|_| bad("a fingerprint is 16 bytes"))?;
    let key_range = KeyRange {
        lower: range.lower,
        upper: (!range.upper.is_empty()).then_some(range.upper),
    };
    let fingerprint = Fingerprint {
        sum: u128::from_be_bytes(sum),
        count: range.count,
    };
    let items = match range.listed {
        true => Some(
            range
                .items
                .into_iter()
                .map(from_item)
                .collect::<Result<_, _>>()?,
        ),
        false => None,
    };
    Ok((key_range, fingerprint, items))
}

fn to_item(item: &Item) -> pb::Item {
    pb::Item {
        key: item.key.clone(),
        have: Some(to_have(Some(&item.version))),
    }
}

fn from_item(item: pb::Item) -> Result<Item, DecodeError> {
    let version = item
        .have
        .as_ref()
        .and_then(from_have)
        .ok_or_else(|| bad("an item names the version held"))?;
    Ok(Item {
        key: item.key,
        version,
    })
}

/// The `Ask.ranges` of `asks`.
pub(crate) fn to_ranges(asks: &[RangeAsk]) -> Vec<pb::Range> {
    asks.iter()
        .map(|a| to_range(&a.range, &a.fingerprint, a.items.as_deref()))
        .collect()
}

/// The ranges of an `Ask`, or why one does not decode.
pub(crate) fn from_ranges(ranges: Vec<pb::Range>) -> Result<Vec<RangeAsk>, DecodeError> {
    ranges
        .into_iter()
        .map(|r| {
            let (range, fingerprint, items) = from_range(r)?;
            Ok(RangeAsk {
                range,
                fingerprint,
                items,
            })
        })
        .collect()
}

/// The `RangeReply` message of `reply`.
pub(crate) fn to_reply(reply: &RangeReply) -> pb::RangeReply {
    let listing = |kind, items: &[Item], resume: &Option<String>| pb::RangeReply {
        kind,
        parts: Vec::new(),
        items: items.iter().map(to_item).collect(),
        resume: resume.clone().unwrap_or_default(),
    };
    match reply {
        RangeReply::Equal => pb::RangeReply::default(),
        RangeReply::Split(parts) => pb::RangeReply {
            kind: pb::Reconciled::Split,
            parts: parts.iter().map(|(r, f)| to_range(r, f, None)).collect(),
            ..pb::RangeReply::default()
        },
        RangeReply::Listed { items, resume } => listing(pb::Reconciled::Listed, items, resume),
        RangeReply::Differences { items, resume } => {
            listing(pb::Reconciled::Differences, items, resume)
        }
    }
}

/// The bytes `reply` adds to an `Answer`.
pub(crate) fn reply_cost(reply: &pb::RangeReply) -> usize {
    1 + sizeof_len(reply.get_size())
}

/// The bytes `ask` adds to an `Ask`.
pub fn range_ask_cost(ask: &RangeAsk) -> usize {
    let range = to_range(&ask.range, &ask.fingerprint, ask.items.as_deref());
    1 + sizeof_len(range.get_size())
}

/// The bytes `item` adds to a listing (a bound: the key's length prefix is
/// counted at its largest).
pub fn item_cost(item: &Item) -> usize {
    // Tag and length of the item, of the key, and a full `Have`.
    1 + 3 + 1 + 3 + item.key.len() + 2 + super::MAX_HAVE_COST
}

/// A decoded `RangeReply`, or why it does not decode.
pub(crate) fn from_reply(reply: pb::RangeReply) -> Result<RangeReply, DecodeError> {
    let resume = (!reply.resume.is_empty()).then_some(reply.resume);
    let items =
        || -> Result<Vec<Item>, DecodeError> { reply.items.into_iter().map(from_item).collect() };
    Ok(match reply.kind {
        pb::Reconciled::Equal => RangeReply::Equal,
        pb::Reconciled::Split => RangeReply::Split(
            reply
                .parts
                .into_iter()
                .map(|p| from_range(p).map(|(r, f, _)| (r, f)))
                .collect::<Result<_, _>>()?,
        ),
        pb::Reconciled::Listed => RangeReply::Listed {
            items: items()?,
            resume,
        },
        pb::Reconciled::Differences => RangeReply::Differences {
            items: items()?,
            resume,
        },
    })
}
