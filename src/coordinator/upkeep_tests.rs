//! Republish firings, driven input by input.

use std::collections::BTreeSet;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::{Coordinator, Input, Output, Publication, Timer};
use crate::store::MemoryStore;
use crate::validator::Open;
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
