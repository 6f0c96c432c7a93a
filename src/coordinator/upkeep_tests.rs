//! Republish firings, driven input by input.

use std::collections::BTreeSet;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::{Coordinator, Input, Output, Publication, Timer};
use crate::core::validator::Open;
use crate::store::MemoryStore;
use crate::Config;

const T0: i64 = 1_800_000_000_000;

/// More records due than `republish_per_second` allows over an interval:
/// each firing republishes about its share, and a few firings in a row
/// republish every record.
#[test]
fn a_firing_republishes_its_budget_and_the_shares_cover_every_record() {
    let config = Config::builder()
        .republish_interval(Duration::from_secs(10))
        .republish_per_second(2)
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[9; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7);
    let keys: Vec<String> = (0..200).map(|i| format!("k{i}")).collect();
    for key in &keys {
        c.put(key, "v", T0).expect("put");
    }
    std::iter::from_fn(|| c.poll_output()).for_each(drop);
    let mut seen = BTreeSet::new();
    let mut firings = Vec::new();
    for firing in 0..40 {
        // One firing per interval.
        c.handle(Input::Timer(Timer::Republish), T0 + 10_000 * (firing + 1));
        let republished: Vec<String> = std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                Output::Publish {
                    key,
                    why: Publication::Republish,
                    ..
                } => Some(key),
                _ => None,
            })
            .collect();
        firings.push(republished.len());
        seen.extend(republished);
    }
    // 200 due, a budget of 20 a firing: a tenth of them each time.
    let most = firings.iter().max().copied().unwrap_or(0);
    assert!(most <= 40, "a firing republished {most}: {firings:?}");
    assert!(firings.iter().all(|n| *n > 0), "{firings:?}");
    assert_eq!(
        seen.len(),
        keys.len(),
        "every record went out at some firing"
    );
}

/// Trickle's firings and the clock's rounds are not aligned: a second
/// firing in the round of the first republishes nothing (its bytes would
/// be the first's, which gossipsub refuses with a warning each); the
/// next round's firing republishes again.
#[test]
fn a_second_firing_in_one_round_republishes_nothing() {
    let config = Config::builder()
        .republish_interval(Duration::from_secs(10))
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[9; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7);
    c.put("k", "v", T0).expect("put");
    std::iter::from_fn(|| c.poll_output()).for_each(drop);
    let mut republished_at = |now: i64| {
        c.handle(Input::Timer(Timer::Republish), now);
        std::iter::from_fn(|| c.poll_output())
            .filter(|o| {
                matches!(
                    o,
                    Output::Publish {
                        why: Publication::Republish,
                        ..
                    }
                )
            })
            .count()
    };
    // T0 is a multiple of 10 s: T0 + 1 s and T0 + 8 s share a round.
    assert_eq!(republished_at(T0 + 1_000), 1);
    assert_eq!(republished_at(T0 + 8_000), 0);
    assert_eq!(republished_at(T0 + 14_000), 1, "the next round");
}
