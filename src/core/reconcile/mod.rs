//! Range-based set reconciliation of two stores (spec §18), the pure part:
//! fingerprints of key ranges, what an answerer replies to a range, and
//! what an asker learns from the reply.
//!
//! Two nodes that hold the same records compare them in one round trip: the
//! asker sends the fingerprint of everything it holds (a sum of item hashes
//! and a count, [`Fingerprint`]), the answerer finds its own equal and says
//! so. Where they differ, the answerer cuts the range into parts with its
//! fingerprints, and the asker sends back the parts that differ from its
//! own; a range small enough is listed item by item instead (a key and the
//! [`Version`] held), so each side learns exactly which keys differ. The
//! records themselves then travel as ordinary per-key asks, which run them
//! through every check of §7 and only for keys the asker watches. The cost
//! is a few round trips per level of a 16-way tree plus the keys that
//! differ, instead of a version per key.

mod index;

pub use index::{item_hash, Index};

use crate::core::order::Version;

/// A range this small (in records held) is listed item by item rather than
/// cut into parts.
pub const LEAF_ITEMS: usize = 32;

/// How many parts an answerer cuts a differing range into.
pub const SPLIT_PARTS: usize = 16;

/// Parts a split may have at most: a reply with more is malformed.
pub const MAX_SPLIT_PARTS: usize = 64;

/// The keys from `lower` (included) to `upper` (excluded; `None` runs to
/// the end), in the byte order of their UTF-8.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct KeyRange {
    /// The first key of the range, included.
    pub lower: String,
    /// The key that ends the range, excluded; `None` for no end.
    pub upper: Option<String>,
}

impl KeyRange {
    /// Every key.
    pub fn all() -> Self {
        KeyRange::default()
    }

    /// Whether `key` lies in the range.
    pub fn contains(&self, key: &str) -> bool {
        key >= self.lower.as_str() && self.upper.as_deref().is_none_or(|u| key < u)
    }

    /// The rest of the range from `from` on.
    fn from(&self, from: String) -> KeyRange {
        KeyRange {
            lower: from,
            upper: self.upper.clone(),
        }
    }

    /// The range up to `to`, or the whole range for `None`.
    fn until(&self, to: Option<&String>) -> KeyRange {
        KeyRange {
            lower: self.lower.clone(),
            upper: to.cloned().or_else(|| self.upper.clone()),
        }
    }
}

/// What a node holds in a range: the wrapping sum of its items' hashes
/// ([`item_hash`]) and their number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Fingerprint {
    /// The wrapping sum of the item hashes.
    pub sum: u128,
    /// How many items.
    pub count: u64,
}

impl Fingerprint {
    /// The fingerprint of the union of two disjoint ranges.
    pub fn add(&self, other: &Fingerprint) -> Fingerprint {
        Fingerprint {
            sum: self.sum.wrapping_add(other.sum),
            count: self.count.saturating_add(other.count),
        }
    }
}

/// One key held, as a range listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The key.
    pub key: String,
    /// The version of the record held for it.
    pub version: Version,
}

/// One range of a reconciliation ask: the asker's fingerprint of it, and,
/// when it holds few records there, the list of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeAsk {
    /// The range.
    pub range: KeyRange,
    /// The asker's fingerprint of it.
    pub fingerprint: Fingerprint,
    /// Every item the asker holds in the range, in key order, if it listed
    /// them (at most [`LEAF_ITEMS`] when it builds the ask).
    pub items: Option<Vec<Item>>,
}

/// The answer to one [`RangeAsk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeReply {
    /// The answerer holds the same as the asker in the range.
    Equal,
    /// The range cut into consecutive parts, each with the answerer's
    /// fingerprint: the asker asks again about those that differ.
    Split(Vec<(KeyRange, Fingerprint)>),
    /// Every item the answerer holds in the range, in key order. `resume`:
    /// the listing stopped before this key (the reply was full); the rest
    /// of the range is still to compare.
    Listed {
        /// The items.
        items: Vec<Item>,
        /// Where the listing stopped, if it did.
        resume: Option<String>,
    },
    /// The answer to an asker that listed its items: the answerer's items
    /// that are newer than the asker's or that the asker lacks, in key
    /// order (the answerer asks the asker about those where the asker is
    /// ahead). `resume` as for [`RangeReply::Listed`].
    Differences {
        /// The items.
        items: Vec<Item>,
        /// Where the comparison stopped, if it did.
        resume: Option<String>,
    },
}

/// What the answerer's side of one range comes to.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Answered {
    /// The reply.
    pub reply: Option<RangeReply>,
    /// Keys the asker listed with a newer version than ours, or that we
    /// lack: we ask the asker about those we watch.
    pub asker_ahead: Vec<String>,
}

/// The answerer's reply to `ask` from `index`, whose versions `version_of`
/// reads. A listing holds at most `max_items` items and `budget` bytes by
/// `cost`.
pub fn respond(
    index: &mut Index,
    ask: &RangeAsk,
    version_of: impl Fn(&str) -> Option<Version>,
    max_items: usize,
    budget: usize,
    cost: impl Fn(&Item) -> usize,
) -> Answered {
    let ours = index.fingerprint(&ask.range);
    if ours == ask.fingerprint {
        return Answered {
            reply: Some(RangeReply::Equal),
            asker_ahead: Vec::new(),
        };
    }
    let listing = Listing {
        max_items: max_items.max(1),
        budget,
        cost: &cost,
    };
    match &ask.items {
        Some(theirs) if is_listing_of(theirs, &ask.range, max_items) => {
            listing.diff(index, &ask.range, theirs, &version_of)
        }
        _ if ours.count as usize <= LEAF_ITEMS => Answered {
            reply: Some(listing.all(index, &ask.range, &version_of)),
            asker_ahead: Vec::new(),
        },
        _ => Answered {
            reply: Some(RangeReply::Split(index.split(&ask.range, SPLIT_PARTS))),
            asker_ahead: Vec::new(),
        },
    }
}

/// Whether `items` are in strictly increasing key order, inside `range`,
/// and at most `max` of them.
fn is_listing_of(items: &[Item], range: &KeyRange, max: usize) -> bool {
    items.len() <= max
        && items.iter().all(|i| range.contains(&i.key))
        && items.windows(2).all(|w| w[0].key < w[1].key)
}

struct Listing<'a, C> {
    max_items: usize,
    budget: usize,
    cost: &'a C,
}

impl<C: Fn(&Item) -> usize> Listing<'_, C> {
    /// Every item we hold in `range`, as many as fit.
    fn all(
        &self,
        index: &Index,
        range: &KeyRange,
        version_of: &impl Fn(&str) -> Option<Version>,
    ) -> RangeReply {
        let mut items = Vec::new();
        let mut spent = 0;
        let mut resume = None;
        for key in index.keys(range, LEAF_ITEMS + 1) {
            let Some(version) = version_of(&key) else {
                continue;
            };
            let item = Item { key, version };
            spent += (self.cost)(&item);
            if items.len() >= self.max_items || (spent > self.budget && !items.is_empty()) {
                resume = Some(item.key);
                break;
            }
            items.push(item);
        }
        RangeReply::Listed { items, resume }
    }

    /// Our items in `range` newer than the asker's listing or missing from
    /// it, and the asker's keys that are ahead of ours.
    fn diff(
        &self,
        index: &Index,
        range: &KeyRange,
        theirs: &[Item],
        version_of: &impl Fn(&str) -> Option<Version>,
    ) -> Answered {
        // Our keys are read a page at a time; the page's end bounds what is
        // compared now, the rest of the range is left to the next ask.
        let page = self.max_items.saturating_mul(2);
        let mut ours = index.keys(range, page + 1);
        let mut resume = (ours.len() > page).then(|| ours.pop()).flatten();
        let mut items = Vec::new();
        let mut spent = 0;
        let mut mine = ours.into_iter().peekable();
        let mut their = theirs.iter().peekable();
        let mut asker_ahead = Vec::new();
        loop {
            let before_resume = |k: &str| resume.as_deref().is_none_or(|r| k < r);
            let (key, theirs) = match (mine.peek(), their.peek()) {
                (None, None) => break,
                (Some(m), Some(t)) if *m == t.key => (mine.next(), their.next()),
                (Some(m), Some(t)) if **m < *t.key => (mine.next(), None),
                (Some(_), None) => (mine.next(), None),
                (_, Some(_)) => (None, their.next()),
            };
            let held = key.as_deref().and_then(version_of);
            match (key, held, theirs) {
                (_, None, Some(t)) if before_resume(&t.key) => asker_ahead.push(t.key.clone()),
                (Some(key), Some(version), t) => {
                    let newer = t.is_none_or(|t| later(&version, &t.version));
                    let behind = t.is_some_and(|t| later(&t.version, &version));
                    if behind {
                        asker_ahead.push(key);
                        continue;
                    }
                    if !newer {
                        continue;
                    }
                    let item = Item { key, version };
                    spent += (self.cost)(&item);
                    if items.len() >= self.max_items || (spent > self.budget && !items.is_empty()) {
                        resume = Some(item.key);
                        break;
                    }
                    items.push(item);
                }
                _ => {}
            }
        }
        // What the asker listed past where we stopped is compared again
        // when it asks for the rest.
        let resume_at = resume.clone();
        asker_ahead.retain(|k| resume_at.as_deref().is_none_or(|r| k.as_str() < r));
        Answered {
            reply: Some(RangeReply::Differences { items, resume }),
            asker_ahead,
        }
    }
}

/// Whether version `a` wins over `b` in the precedence order.
fn later(a: &Version, b: &Version) -> bool {
    crate::core::order::precedence_of(
        (a.time, a.op, &a.signature[..]),
        (b.time, b.op, &b.signature[..]),
    ) == std::cmp::Ordering::Greater
}

/// What an asker learns from one reply.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Learnt {
    /// Ranges still to compare: ask about them again.
    pub again: Vec<KeyRange>,
    /// Keys for which the answerer holds a newer record, or one we lack.
    pub peer_ahead: Vec<String>,
    /// Keys for which we hold a newer record, or one the answerer lacks
    /// (only from [`RangeReply::Listed`]: the answerer of
    /// [`RangeReply::Differences`] found those itself).
    pub we_ahead: Vec<String>,
}

/// Why a reply cannot be right for the range asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reconciliation reply does not fit the range asked: {0}")]
pub struct BadReply(&'static str);

/// Every key `index` holds in `range`: the widest choice of candidates for
/// [`learn`].
pub fn every_key(index: &Index, range: &KeyRange) -> Vec<String> {
    index.keys(range, usize::MAX)
}

/// What the asker learns from `reply` to `ask`, given its own `index` and
/// versions. A listing holds at most `max_items` items.
///
/// A complete listing ([`RangeReply::Listed`]) is compared against the
/// keys `candidates` names in the listed range ([`every_key`] for all we
/// hold): the caller names only the keys it would act on, so that a peer
/// listing nothing over a wide range does not make us read every record
/// we hold there.
pub fn learn(
    index: &Index,
    ask: &RangeAsk,
    reply: RangeReply,
    version_of: impl Fn(&str) -> Option<Version>,
    max_items: usize,
    candidates: impl FnOnce(&Index, &KeyRange) -> Vec<String>,
) -> Result<Learnt, BadReply> {
    let mut learnt = Learnt::default();
    let all = matches!(reply, RangeReply::Listed { .. });
    match reply {
        RangeReply::Equal => {}
        RangeReply::Split(_) if ask.items.as_ref().is_some_and(|items| items.len() <= 1) => {
            // We listed the one item we hold there, or none: any answerer
            // takes a listing that short ([`respond`] splits a listing only
            // when it holds more items than the answerer lists). Splitting
            // it instead could go on for ever over a range where we hold
            // nothing.
            return Err(BadReply("a listing of at most one item is not split"));
        }
        RangeReply::Split(parts) => {
            check_tiling(&ask.range, &parts)?;
            learnt.again = parts
                .into_iter()
                .filter(|(part, theirs)| index.fingerprint(part) != *theirs)
                .map(|(part, _)| part)
                .collect();
        }
        RangeReply::Listed { items, resume } | RangeReply::Differences { items, resume } => {
            if let Some(resume) = &resume {
                if !ask.range.contains(resume) || *resume <= ask.range.lower {
                    return Err(BadReply("listing resumes outside the range"));
                }
            }
            let listed = ask.range.until(resume.as_ref());
            if !is_listing_of(&items, &listed, max_items) {
                return Err(BadReply("listing out of order or outside the range"));
            }
            for item in &items {
                let ours = version_of(&item.key);
                if ours.is_none_or(|o| later(&item.version, &o)) {
                    learnt.peer_ahead.push(item.key.clone());
                }
            }
            if all {
                let ours = candidates(index, &listed);
                learnt.we_ahead = ours_ahead(ours, &items, &version_of);
            }
            learnt.again.extend(resume.map(|r| ask.range.from(r)));
        }
    }
    Ok(learnt)
}

/// Those of our keys `ours` that `theirs` (all the peer holds there) lacks
/// or holds an older record of.
fn ours_ahead(
    ours: Vec<String>,
    theirs: &[Item],
    version_of: &impl Fn(&str) -> Option<Version>,
) -> Vec<String> {
    let theirs: std::collections::HashMap<&str, &Version> = theirs
        .iter()
        .map(|i| (i.key.as_str(), &i.version))
        .collect();
    ours.into_iter()
        .filter(|key| {
            let Some(ours) = version_of(key) else {
                return false;
            };
            theirs.get(key.as_str()).is_none_or(|t| later(&ours, t))
        })
        .collect()
}

/// A split must cut exactly the range asked, into at least two and at most
/// [`MAX_SPLIT_PARTS`] non-empty consecutive parts: otherwise a peer could
/// keep an asker splitting forever.
fn check_tiling(range: &KeyRange, parts: &[(KeyRange, Fingerprint)]) -> Result<(), BadReply> {
    if parts.len() < 2 || parts.len() > MAX_SPLIT_PARTS {
        return Err(BadReply("a split has 2 to 64 parts"));
    }
    let first = &parts[0].0;
    let last = &parts[parts.len() - 1].0;
    if first.lower != range.lower || last.upper != range.upper {
        return Err(BadReply("a split must cover the range asked"));
    }
    for pair in parts.windows(2) {
        let (a, b) = (&pair[0].0, &pair[1].0);
        if a.upper.as_deref() != Some(b.lower.as_str()) || b.lower <= a.lower {
            return Err(BadReply("split parts must be consecutive and non-empty"));
        }
    }
    Ok(())
}

/// The ask for `range` from `index`: our fingerprint, and our items when
/// we hold at most [`LEAF_ITEMS`] there.
pub fn ask_for(
    index: &Index,
    range: KeyRange,
    version_of: impl Fn(&str) -> Option<Version>,
) -> RangeAsk {
    let fingerprint = index.fingerprint(&range);
    let items = (fingerprint.count as usize <= LEAF_ITEMS).then(|| {
        index
            .keys(&range, LEAF_ITEMS)
            .into_iter()
            .filter_map(|key| version_of(&key).map(|version| Item { key, version }))
            .collect()
    });
    RangeAsk {
        range,
        fingerprint,
        items,
    }
}

#[cfg(test)]
mod tests;
