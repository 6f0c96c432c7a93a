//! The cost model in the coordinator, driven input by input with a
//! hand-held clock: what a peer's asks make us send is bounded by its
//! account, and a peer in debt is served later, not refused.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::validator::Open;
use crate::store::MemoryStore;
use crate::wire::exchange::{AskKey, Entry, Request};
use crate::Config;

const T0: i64 = 1_800_000_000_000;
const BURST: usize = 20_000;
const PER_SECOND: usize = 10_000;

/// A node holding `big`, a record of about 5 KB.
fn node() -> Coordinator<MemoryStore> {
    let config = Config::builder()
        .peer_work_budget(BURST, PER_SECOND)
        .work_earned_per_byte(2)
        .fetch_timeout(Duration::from_secs(10))
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[3; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7);
    c.put("big", &"v".repeat(5_000), T0).expect("put");
    drain(&mut c);
    c
}

fn drain(c: &mut Coordinator<MemoryStore>) -> Vec<Output> {
    c.pack_asks();
    std::iter::from_fn(|| c.poll_output()).collect()
}

/// `peer` asks for `big` as exchange `id` at `now`.
fn asked(c: &mut Coordinator<MemoryStore>, peer: PeerId, id: u64, now: i64) {
    let request = ask_big();
    c.handle(Input::Asked { peer, id, request }, now);
}

fn ask_big() -> Request {
    Request::keys(vec![AskKey {
        key: "big".into(),
        have: None,
    }])
}

/// Record bytes in the replies among `outputs`, and the ids replied to.
fn replied(outputs: &[Output]) -> (usize, Vec<u64>) {
    let mut bytes = 0;
    let mut ids = Vec::new();
    for output in outputs {
        if let Output::Reply { id, reply } = output {
            ids.push(*id);
            for entry in &reply.entries {
                if let Entry::Record(r) = entry {
                    bytes += r.value().len();
                }
            }
        }
    }
    (bytes, ids)
}

fn throttle_after(outputs: &[Output]) -> Option<Duration> {
    outputs.iter().find_map(|o| match o {
        Output::SetTimer {
            timer: Timer::Throttle,
            after,
        } => Some(*after),
        _ => None,
    })
}

#[test]
fn asks_past_the_burst_wait_for_the_refill_then_are_answered_in_order() {
    let mut c = node();
    let peer = PeerId::random();
    c.handle(Input::Connected { peer }, T0);
    drain(&mut c);
    let mut answered = Vec::new();
    let mut waited = None;
    for id in 0..10 {
        asked(&mut c, peer, id, T0);
        let out = drain(&mut c);
        let (bytes, ids) = replied(&out);
        if ids.is_empty() {
            waited = waited.or(throttle_after(&out));
        }
        assert!(bytes == 0 || bytes == 5_000);
        answered.extend(ids);
    }
    // 20,000 bytes of burst: four answers of 5 KB and change empty it.
    assert_eq!(answered, vec![0, 1, 2, 3], "the rest wait");
    let wait = waited.expect("the throttle timer is armed");
    assert!(
        wait <= Duration::from_secs(1),
        "debt is one answer: {wait:?}"
    );
    // The timer fires when one more answer is paid for: the next ask, and
    // only it, goes out.
    let fired_at = T0 + i64::try_from(wait.as_millis()).expect("small");
    c.handle(Input::Timer(Timer::Throttle), fired_at);
    let out = drain(&mut c);
    assert_eq!(replied(&out).1, vec![4]);
    // Five seconds pay for all the rest, in the order they came.
    c.handle(Input::Timer(Timer::Throttle), T0 + 5_000);
    let mut ids = replied(&drain(&mut c)).1;
    for _ in 0..10 {
        c.handle(Input::Timer(Timer::Throttle), T0 + 6_000);
        ids.extend(replied(&drain(&mut c)).1);
    }
    assert_eq!(ids, vec![5, 6, 7, 8, 9]);
}

#[test]
fn what_one_peer_gets_is_bounded_by_burst_plus_refill_and_others_are_served() {
    let mut c = node();
    let (hog, honest) = (PeerId::random(), PeerId::random());
    for peer in [hog, honest] {
        c.handle(Input::Connected { peer }, T0);
    }
    drain(&mut c);
    // The hog asks every 10 ms for 10 s, its 32 streams always busy.
    let mut sent = 0;
    let mut id = 0;
    for step in 0..1_000 {
        let now = T0 + step * 10;
        c.handle(Input::Timer(Timer::Throttle), now);
        if id < 32 + sent / 5_000 {
            asked(&mut c, hog, id as u64, now);
            id += 1;
        }
        sent += replied(&drain(&mut c)).0;
    }
    let bound = BURST + 10 * PER_SECOND + 5_000 * 2;
    assert!(sent <= bound, "{sent} bytes sent to the hog, bound {bound}");
    assert!(
        sent >= 10 * PER_SECOND,
        "the hog is served at the refill rate: {sent}"
    );
    // Another peer's ask is answered at once: accounts are per peer.
    asked(&mut c, honest, 99_999, T0 + 10_000);
    assert_eq!(replied(&drain(&mut c)).1, vec![99_999]);
}

#[test]
fn a_departing_peer_gets_its_waiting_asks_closed_and_keeps_its_debt() {
    let mut c = node();
    let peer = PeerId::random();
    c.handle(Input::Connected { peer }, T0);
    for id in 0..8 {
        asked(&mut c, peer, id, T0);
    }
    let (_, ids) = replied(&drain(&mut c));
    assert_eq!(ids.len(), 4);
    c.handle(Input::Disconnected { peer }, T0);
    let out = drain(&mut c);
    let (bytes, ids) = replied(&out);
    assert_eq!(
        (bytes, ids),
        (0, vec![4, 5, 6, 7]),
        "empty answers close them"
    );
    // Back at once, it is still in debt.
    c.handle(Input::Connected { peer }, T0 + 10);
    asked(&mut c, peer, 8, T0 + 10);
    assert!(replied(&drain(&mut c)).1.is_empty());
}

#[test]
fn an_ask_that_waits_past_the_fetch_timeout_gets_an_empty_answer() {
    let config = Config::builder()
        .peer_work_budget(1_000, 1)
        .build()
        .expect("valid config");
    let signer = SigningKey::from_bytes(&[3; 32]);
    let mut c = Coordinator::new(signer, MemoryStore::new(), config, Box::new(Open), 7);
    c.put("big", &"v".repeat(5_000), T0).expect("put");
    let peer = PeerId::random();
    c.handle(Input::Connected { peer }, T0);
    asked(&mut c, peer, 1, T0);
    asked(&mut c, peer, 2, T0);
    let out = drain(&mut c);
    assert_eq!(replied(&out).1, vec![1]);
    let after = throttle_after(&out).expect("armed");
    assert_eq!(after, Duration::from_secs(10), "armed for the expiry");
    c.handle(Input::Timer(Timer::Throttle), T0 + 10_000);
    let (bytes, ids) = replied(&drain(&mut c));
    assert_eq!((bytes, ids), (0, vec![2]));
}
