//! A `get`'s rounds, driven input by input with a hand-held clock.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::validator::Open;
use crate::event::{Event, GetOutcome};
use crate::store::MemoryStore;
use crate::wire::exchange::{Entry, Response};
use crate::Config;

const T0: i64 = 1_800_000_000_000;

fn node(seed: u8) -> Coordinator<MemoryStore> {
    let config = Config::builder()
        .fetch_timeout(Duration::from_secs(10))
        .get_grace(Duration::from_millis(500))
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[seed; 32]);
    Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7)
}

fn drain(c: &mut Coordinator<MemoryStore>) -> Vec<Output> {
    c.pack_asks();
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn finished(outputs: &[Output]) -> Option<&GetOutcome> {
    outputs.iter().find_map(|o| match o {
        Output::Event(Event::GetFinished { outcome, .. }) => Some(outcome),
        _ => None,
    })
}

fn grace_set(outputs: &[Output]) -> bool {
    outputs.iter().any(|o| {
        matches!(
            o,
            Output::SetTimer {
                timer: Timer::GetGrace,
                ..
            }
        )
    })
}

fn answer(entry: Entry) -> Result<Response, crate::wire::failure::OutboundFailure> {
    Ok(Response {
        entries: vec![Ok(entry)],
        ranges: Vec::new(),
    })
}

/// A node holding an old record of `k` (not followed) asks three peers.
/// A fast `NotExist` does not start the grace (the record was held
/// before: the answer delivered nothing); the peer that delivers the
/// newer record does, and the `get` ends `get_grace` later with it, the
/// third peer still silent.
#[test]
fn only_a_delivered_record_starts_a_gets_grace() {
    let newer = node(2).put("k", "new", T0 + 5).expect("put");
    let mut c = node(1);
    c.put("k", "old", T0).expect("put");
    c.unsubscribe("k");
    let peers = [PeerId::random(), PeerId::random(), PeerId::random()];
    for peer in peers {
        c.handle(Input::Connected { peer }, T0);
    }
    drain(&mut c);
    c.get("k", T0 + 10);
    let asks: Vec<(PeerId, u64)> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Ask { peer, id, .. } => Some((peer, id)),
            _ => None,
        })
        .collect();
    assert_eq!(asks.len(), 3, "every connected peer is asked");

    c.handle(
        Input::Answered {
            id: asks[0].1,
            result: answer(Entry::NotExist),
        },
        T0 + 20,
    );
    let out = drain(&mut c);
    assert!(!grace_set(&out), "a NotExist starts no grace");
    assert!(finished(&out).is_none());

    let delivered = answer(Entry::Record(newer.clone()));
    c.handle(
        Input::Answered {
            id: asks[1].1,
            result: delivered,
        },
        T0 + 30,
    );
    let out = drain(&mut c);
    assert!(grace_set(&out), "the delivered record starts the grace");
    assert!(finished(&out).is_none(), "the third peer has its grace");

    c.handle(Input::Timer(Timer::GetGrace), T0 + 530);
    let out = drain(&mut c);
    assert_eq!(finished(&out), Some(&GetOutcome::Found(newer)));
}
