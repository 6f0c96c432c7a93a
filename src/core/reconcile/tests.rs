use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::core::record::Op;

type Store = BTreeMap<String, Version>;

fn version(time: i64, seed: u8) -> Version {
    Version {
        time,
        op: if seed.is_multiple_of(5) {
            Op::Del
        } else {
            Op::Mut
        },
        signature: [seed; 16],
    }
}

fn index_of(store: &Store) -> Index {
    Index::from_items(store.iter().map(|(k, v)| (k.clone(), *v)))
}

fn cost(item: &Item) -> usize {
    item.key.len() + 30
}

/// Runs a whole reconciliation of `a` (asker) with `b` (answerer); returns
/// the keys each side learnt the other is ahead on, and the rounds taken.
fn reconcile(
    a: &Store,
    b: &Store,
    max_items: usize,
    budget: usize,
) -> (BTreeSet<String>, BTreeSet<String>, usize) {
    let index_a = index_of(a);
    let mut index_b = index_of(b);
    let mut pending = vec![KeyRange::all()];
    let mut b_ahead = BTreeSet::new();
    let mut a_ahead = BTreeSet::new();
    let mut rounds = 0;
    while !pending.is_empty() {
        rounds += 1;
        assert!(rounds < 10_000, "reconciliation does not end");
        let mut next = Vec::new();
        for range in pending.drain(..) {
            let ask = ask_for(&index_a, range, |k| a.get(k).copied());
            let answered = respond(
                &mut index_b,
                &ask,
                |k| b.get(k).copied(),
                max_items,
                budget,
                cost,
            );
            a_ahead.extend(answered.asker_ahead);
            let reply = answered.reply.expect("a reply");
            let learnt = learn(
                &index_a,
                &ask,
                reply,
                |k| a.get(k).copied(),
                max_items,
                every_key,
            )
            .expect("honest reply");
            b_ahead.extend(learnt.peer_ahead);
            a_ahead.extend(learnt.we_ahead);
            next.extend(learnt.again);
        }
        pending = next;
    }
    (a_ahead, b_ahead, rounds)
}

fn expected(a: &Store, b: &Store) -> (BTreeSet<String>, BTreeSet<String>) {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let mut a_ahead = BTreeSet::new();
    let mut b_ahead = BTreeSet::new();
    for key in keys {
        match (a.get(key), b.get(key)) {
            (Some(x), Some(y)) if later(x, y) => a_ahead.insert(key.clone()),
            (Some(x), Some(y)) if later(y, x) => b_ahead.insert(key.clone()),
            (Some(_), None) => a_ahead.insert(key.clone()),
            (None, Some(_)) => b_ahead.insert(key.clone()),
            _ => false,
        };
    }
    (a_ahead, b_ahead)
}

fn stores() -> impl Strategy<Value = (Store, Store)> {
    let entry = (0u16..2000, 0i64..4, 1u8..20);
    (
        prop::collection::vec(entry.clone(), 0..600),
        prop::collection::vec(entry, 0..600),
        any::<bool>(),
    )
        .prop_map(|(a, b, share)| {
            let to_store = |v: Vec<(u16, i64, u8)>| -> Store {
                v.into_iter()
                    .map(|(k, t, s)| (format!("key/{k}"), version(t, s)))
                    .collect()
            };
            let a = to_store(a);
            let mut b = to_store(b);
            if share {
                // Mostly the same records, as two replicas hold.
                for (k, v) in a.iter().step_by(2) {
                    b.insert(k.clone(), *v);
                }
            }
            (a, b)
        })
}

proptest! {
    /// Every key whose records differ is found, on the right side, and no
    /// other: whatever the stores, the listing limits and the budget.
    #[test]
    fn reconciliation_finds_exactly_the_keys_that_differ(
        (a, b) in stores(),
        max_items in 1usize..300,
        budget in 40usize..20_000,
    ) {
        let (a_ahead, b_ahead, _) = reconcile(&a, &b, max_items, budget);
        let (want_a, want_b) = expected(&a, &b);
        prop_assert_eq!(a_ahead, want_a);
        prop_assert_eq!(b_ahead, want_b);
    }
}

#[test]
fn equal_stores_take_one_round_trip_however_large() {
    let store: Store = (0..100_000)
        .map(|i| (format!("k{i}"), version(i, 3)))
        .collect();
    let (a_ahead, b_ahead, rounds) = reconcile(&store, &store, 256, 60_000);
    assert!(a_ahead.is_empty() && b_ahead.is_empty());
    assert_eq!(rounds, 1);
}

#[test]
fn one_changed_key_among_many_takes_a_few_rounds() {
    let a: Store = (0..100_000)
        .map(|i| (format!("k{i}"), version(i, 3)))
        .collect();
    let mut b = a.clone();
    b.insert("k5000".into(), version(9_999_999, 4));
    let (a_ahead, b_ahead, rounds) = reconcile(&a, &b, 256, 60_000);
    assert!(a_ahead.is_empty());
    assert_eq!(b_ahead, BTreeSet::from(["k5000".to_owned()]));
    // log16(100,000 / 32) levels, plus the listing.
    assert!(rounds <= 5, "{rounds} rounds");
}

fn range(lower: &str, upper: Option<&str>) -> KeyRange {
    KeyRange {
        lower: lower.into(),
        upper: upper.map(Into::into),
    }
}

#[test]
fn replies_that_do_not_fit_the_range_are_refused() {
    let index = Index::default();
    let ask = ask_for(&index, range("b", Some("m")), |_| None);
    let f = Fingerprint::default();
    let bad = [
        RangeReply::Split(vec![(range("b", Some("m")), f)]),
        RangeReply::Split(vec![(range("a", Some("c")), f), (range("c", Some("m")), f)]),
        RangeReply::Split(vec![(range("b", Some("c")), f), (range("d", Some("m")), f)]),
        RangeReply::Split(vec![(range("b", Some("c")), f), (range("c", None), f)]),
        RangeReply::Split(vec![(range("b", Some("b")), f), (range("b", Some("m")), f)]),
        RangeReply::Listed {
            items: vec![Item {
                key: "z".into(),
                version: version(1, 1),
            }],
            resume: None,
        },
        RangeReply::Listed {
            items: vec![
                Item {
                    key: "d".into(),
                    version: version(1, 1),
                },
                Item {
                    key: "c".into(),
                    version: version(1, 1),
                },
            ],
            resume: None,
        },
        RangeReply::Listed {
            items: vec![Item {
                key: "d".into(),
                version: version(1, 1),
            }],
            resume: Some("c".into()),
        },
        RangeReply::Listed {
            items: vec![],
            resume: Some("b".into()),
        },
        RangeReply::Listed {
            items: vec![],
            resume: Some("n".into()),
        },
    ];
    for reply in bad {
        assert!(
            learn(&index, &ask, reply.clone(), |_| None, 256, every_key).is_err(),
            "{reply:?}"
        );
    }
    let parts: Vec<(KeyRange, Fingerprint)> = (0..65)
        .map(|i| {
            let lower = if i == 0 {
                "b".to_owned()
            } else {
                format!("c{i:03}")
            };
            let upper = if i == 64 {
                "m".to_owned()
            } else {
                format!("c{:03}", i + 1)
            };
            (range(&lower, Some(&upper)), f)
        })
        .collect();
    assert!(learn(
        &index,
        &ask,
        RangeReply::Split(parts),
        |_| None,
        256,
        every_key
    )
    .is_err());
}
