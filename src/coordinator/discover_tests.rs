//! The discovery decisions, driven input by input with a hand-held clock.

use std::time::Duration;

use ed25519_dalek::SigningKey;
use libp2p::PeerId;

use super::{Coordinator, Input, Output, Timer};
use crate::core::topic::Topic;
use crate::core::validator::Open;
use crate::event::{Event, GetOutcome};
use crate::store::MemoryStore;
use crate::wire::exchange::{Entry, Response};
use crate::Config;

const T0: i64 = 1_800_000_000_000;

fn node(seed: u8, config: crate::ConfigBuilder) -> Coordinator<MemoryStore> {
    let config = config.build().expect("valid config");
    let mut c = Coordinator::new(
        SigningKey::from_bytes(&[seed; 32]),
        MemoryStore::new(),
        config,
        Box::new(Open),
        u64::from(seed),
    );
    c.enable_discovery();
    drain(&mut c);
    c
}

fn key_topic(key: &str) -> Topic {
    Topic::Key(key.to_owned())
}

fn drain(c: &mut Coordinator<MemoryStore>) -> Vec<Output> {
    c.pack_asks();
    std::iter::from_fn(|| c.poll_output()).collect()
}

fn count(outputs: &[Output], which: impl Fn(&Output) -> bool) -> usize {
    outputs.iter().filter(|o| which(o)).count()
}

fn is_provide(o: &Output) -> bool {
    matches!(o, Output::Provide(_))
}

fn is_find(o: &Output) -> bool {
    matches!(o, Output::FindProviders(_))
}

fn is_find_of(key: &str) -> impl Fn(&Output) -> bool + '_ {
    move |o| matches!(o, Output::FindProviders(Topic::Key(k)) if k == key)
}

/// The shard `key` belongs to among the default auto-shard count.
fn shard_topic(key: &str) -> Topic {
    let (_, count) = Config::builder()
        .build()
        .expect("config")
        .auto_topic_shards();
    Topic::shard_of(key, count)
}

/// Ends the lookups a `get` of `key` made: its topic's and its shard's.
fn end_get_lookups(c: &mut Coordinator<MemoryStore>, key: &str, now: i64) {
    for topic in [key_topic(key), shard_topic(key)] {
        c.handle(Input::LookupDone { topic }, now);
    }
}

fn finished(outputs: &[Output]) -> Option<&GetOutcome> {
    outputs.iter().find_map(|o| match o {
        Output::Event(Event::GetFinished { outcome, .. }) => Some(outcome),
        _ => None,
    })
}

#[test]
fn discovery_is_off_until_enabled() {
    let config = Config::builder().build().expect("config");
    let mut c = Coordinator::new(
        SigningKey::from_bytes(&[1; 32]),
        MemoryStore::new(),
        config,
        Box::new(Open),
        1,
    );
    c.subscribe("k").expect("key ok");
    c.handle(Input::Timer(Timer::Discover), T0);
    let out = drain(&mut c);
    assert_eq!(count(&out, |o| is_provide(o) || is_find(o)), 0);
}

#[test]
fn a_followed_key_is_advertised_and_looked_up_when_no_follower_is_connected() {
    let mut c = node(1, Config::builder());
    c.subscribe("k").expect("key ok");
    let out = drain(&mut c);
    assert!(out.iter().any(|o| matches!(
        o,
        Output::SetTimer {
            timer: Timer::Discover,
            after: Duration::ZERO
        }
    )));
    c.handle(Input::Timer(Timer::Discover), T0);
    let out = drain(&mut c);
    assert_eq!(
        count(
            &out,
            |o| matches!(o, Output::Provide(t) if *t == key_topic("k"))
        ),
        1
    );
    assert_eq!(
        count(
            &out,
            |o| matches!(o, Output::FindProviders(t) if *t == key_topic("k"))
        ),
        1
    );
    // Leaving the key withdraws the advertisement.
    c.unsubscribe("k");
    let out = drain(&mut c);
    assert_eq!(
        count(
            &out,
            |o| matches!(o, Output::StopProviding(t) if *t == key_topic("k"))
        ),
        1
    );
}

#[test]
fn dht_work_is_held_to_discovery_rate_per_second() {
    let mut c = node(1, Config::builder().discovery_rate(5));
    for i in 0..20 {
        c.subscribe(&format!("k{i}")).expect("key ok");
    }
    drain(&mut c);
    c.handle(Input::Timer(Timer::Discover), T0);
    let first = drain(&mut c);
    assert_eq!(count(&first, |o| is_provide(o) || is_find(o)), 5);
    // Lookups go first: a key with no follower is worse off.
    assert_eq!(count(&first, is_find), 5);
    c.handle(Input::Timer(Timer::Discover), T0 + 1000);
    let second = drain(&mut c);
    assert_eq!(count(&second, |o| is_provide(o) || is_find(o)), 5);
    // 40 operations in all at 5 a second: eight seconds' worth.
    let mut total = 10;
    for s in 2..20 {
        c.handle(Input::Timer(Timer::Discover), T0 + s * 1000);
        total += count(&drain(&mut c), |o| is_provide(o) || is_find(o));
    }
    assert_eq!(total, 40);
}

#[test]
fn a_lookup_dials_at_most_discovery_dials_peers_and_never_connected_ones() {
    let mut c = node(1, Config::builder().discovery_dials(2));
    let connected = PeerId::random();
    c.handle(Input::Connected { peer: connected }, T0);
    c.subscribe("k").expect("key ok");
    drain(&mut c);
    let mut found: Vec<PeerId> = (0..10).map(|_| PeerId::random()).collect();
    found.push(connected);
    found.push(c.local_peer_id());
    c.handle(
        Input::Providers {
            topic: key_topic("k"),
            peers: found,
        },
        T0,
    );
    let dials: Vec<PeerId> = drain(&mut c)
        .into_iter()
        .filter_map(|o| match o {
            Output::Dial(p) => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(dials.len(), 2, "{dials:?}");
    assert!(!dials.contains(&connected));
    assert!(!dials.contains(&c.local_peer_id()));
}

/// Peers on the key's topic fill every dial slot but one: three Sybils
/// subscribed to a key cannot keep a lookup from dialing a follower it
/// found.
#[test]
fn connected_followers_never_take_a_lookups_last_dial() {
    let mut c = node(1, Config::builder().discovery_dials(3));
    c.subscribe("k").expect("key ok");
    for _ in 0..3 {
        let sybil = PeerId::random();
        c.handle(Input::Connected { peer: sybil }, T0);
        let topic = crate::core::topic::Topic::Key("k".into());
        c.handle(Input::PeerSubscribed { peer: sybil, topic }, T0);
    }
    drain(&mut c);
    let found = (0..5).map(|_| PeerId::random()).collect();
    c.handle(
        Input::Providers {
            topic: key_topic("k"),
            peers: found,
        },
        T0,
    );
    let dials = count(&drain(&mut c), |o| matches!(o, Output::Dial(_)));
    assert_eq!(dials, 1);
}

#[test]
fn a_lookup_reporting_in_steps_dials_discovery_dials_peers_in_all() {
    let mut c = node(1, Config::builder().discovery_dials(3));
    c.subscribe("k").expect("key ok");
    drain(&mut c);
    let mut dials = 0;
    for step in 0..4 {
        let peers = (0..2).map(|_| PeerId::random()).collect();
        c.handle(
            Input::Providers {
                topic: key_topic("k"),
                peers,
            },
            T0 + step,
        );
        dials += count(&drain(&mut c), |o| matches!(o, Output::Dial(_)));
    }
    assert_eq!(dials, 3);
}

#[test]
fn a_get_parked_after_its_asks_still_ends_at_its_deadline() {
    let timeout = Duration::from_secs(3);
    let mut c = node(1, Config::builder().fetch_timeout(timeout));
    let neighbour = PeerId::random();
    c.handle(Input::Connected { peer: neighbour }, T0);
    drain(&mut c);
    c.get("k", T0);
    let ask = drain(&mut c).into_iter().find_map(|o| match o {
        Output::Ask { id, .. } => Some(id),
        _ => None,
    });
    // The first tick finds nothing parked yet.
    c.handle(Input::Timer(Timer::Discover), T0 + 1_000);
    drain(&mut c);
    c.handle(
        Input::Providers {
            topic: key_topic("k"),
            peers: vec![PeerId::random()],
        },
        T0 + 1_100,
    );
    c.handle(
        Input::LookupDone {
            topic: key_topic("k"),
        },
        T0 + 1_200,
    );
    // The neighbour knows nothing: the get parks, waiting for the dial.
    let id = ask.expect("the neighbour is asked");
    c.handle(
        Input::Answered {
            id,
            result: Ok(Response {
                entries: vec![Ok(Entry::NotExist)],
                ranges: Vec::new(),
            }),
        },
        T0 + 1_300,
    );
    let out = drain(&mut c);
    assert!(finished(&out).is_none());
    assert!(
        out.iter().any(|o| matches!(
            o,
            Output::SetTimer {
                timer: Timer::Discover,
                ..
            }
        )),
        "parking arms the tick that ends it"
    );
    c.handle(Input::Timer(Timer::Discover), T0 + 3_000);
    assert!(finished(&drain(&mut c)).is_some());
}

#[test]
fn a_get_waits_for_its_lookup_and_asks_the_follower_that_connects() {
    let mut writer = node(2, Config::builder());
    let record = writer.put("k", "v", T0).expect("put");
    let mut c = node(1, Config::builder());
    c.get("k", T0);
    let out = drain(&mut c);
    assert_eq!(
        count(&out, is_find),
        2,
        "a get looks up the key's topic and its shard at once"
    );
    assert!(finished(&out).is_none(), "nobody connected, yet it waits");

    let far = PeerId::random();
    c.handle(
        Input::Providers {
            topic: key_topic("k"),
            peers: vec![far],
        },
        T0 + 50,
    );
    end_get_lookups(&mut c, "k", T0 + 60);
    let out = drain(&mut c);
    assert!(out
        .iter()
        .any(|o| matches!(o, Output::Dial(p) if *p == far)));
    assert!(finished(&out).is_none(), "the dialed follower may connect");

    c.handle(Input::Connected { peer: far }, T0 + 80);
    c.handle(
        Input::PeerSubscribed {
            peer: far,
            topic: crate::core::topic::Topic::Key("k".into()),
        },
        T0 + 80,
    );
    let ask = drain(&mut c).into_iter().find_map(|o| match o {
        Output::Ask { peer, id, request } if peer == far => Some((id, request.keys)),
        _ => None,
    });
    let (id, keys) = ask.expect("the follower is asked");
    assert_eq!(keys[0].key, "k");
    let result = Ok(Response {
        entries: vec![Ok(Entry::Record(record.clone()))],
        ranges: Vec::new(),
    });
    c.handle(Input::Answered { id, result }, T0 + 90);
    let out = drain(&mut c);
    assert_eq!(finished(&out), Some(&GetOutcome::Found(record)));
}

#[test]
fn a_get_whose_lookups_find_nobody_ends_after_its_third() {
    let mut c = node(1, Config::builder());
    c.get("k", T0);
    assert_eq!(count(&drain(&mut c), is_find), 2);
    // A key written a moment ago elsewhere may not be advertised yet: the
    // get looks again a tick later, twice, before it settles.
    for attempt in 1..=3 {
        let now = T0 + attempt * 2000;
        c.handle(
            Input::LookupDone {
                topic: key_topic("k"),
            },
            now - 1000,
        );
        assert!(
            finished(&drain(&mut c)).is_none(),
            "the shard's lookup still runs"
        );
        c.handle(
            Input::LookupDone {
                topic: shard_topic("k"),
            },
            now - 1000,
        );
        let out = drain(&mut c);
        if attempt == 3 {
            assert_eq!(finished(&out), Some(&GetOutcome::NotFound));
            break;
        }
        assert!(finished(&out).is_none(), "lookup {attempt} of 3");
        c.handle(Input::Timer(Timer::Discover), now);
        assert_eq!(count(&drain(&mut c), is_find), 2, "lookup {}", attempt + 1);
    }
}

#[test]
fn a_get_waits_for_dialed_followers_no_longer_than_fetch_timeout() {
    let timeout = Duration::from_secs(3);
    let mut c = node(1, Config::builder().fetch_timeout(timeout));
    c.get("k", T0);
    c.handle(
        Input::Providers {
            topic: key_topic("k"),
            peers: vec![PeerId::random()],
        },
        T0 + 10,
    );
    end_get_lookups(&mut c, "k", T0 + 20);
    drain(&mut c);
    c.handle(Input::Timer(Timer::Discover), T0 + 2_000);
    assert!(finished(&drain(&mut c)).is_none(), "within fetch_timeout");
    c.handle(Input::Timer(Timer::Discover), T0 + 3_000);
    assert!(finished(&drain(&mut c)).is_some(), "at fetch_timeout");
}

/// How each lookup of [`relookups`] ends.
#[derive(Clone, Copy, PartialEq)]
enum Ends {
    Found,
    FindingNobody,
    /// Finding only ourselves, as kad reports our own advertisement.
    FindingOnlyUs,
    /// Not started: the DHT knew no peer.
    Skipped,
}

/// The seconds (after T0) at which a key with no connected follower is
/// looked up again over `until` seconds, each lookup ending as `ends`.
fn relookups(ends: Ends, until: i64) -> Vec<i64> {
    let config = Config::builder()
        .discovery_interval(Duration::from_secs(60))
        .republish_interval(Duration::from_secs(10));
    let mut c = node(1, config);
    c.subscribe("k").expect("key ok");
    let mut lookups = Vec::new();
    for s in (0..=until).step_by(10) {
        let now = T0 + s * 1000;
        c.handle(Input::Timer(Timer::Republish), now);
        c.handle(Input::Timer(Timer::Discover), now);
        if count(&drain(&mut c), is_find_of("k")) > 0 {
            lookups.push(s);
            if ends == Ends::Found || ends == Ends::FindingOnlyUs {
                let peers = if ends == Ends::Found {
                    vec![PeerId::random()]
                } else {
                    vec![c.local_peer_id()]
                };
                c.handle(
                    Input::Providers {
                        topic: key_topic("k"),
                        peers,
                    },
                    now,
                );
            }
            let topic = key_topic("k");
            let over = match ends {
                Ends::Skipped => Input::LookupSkipped { topic },
                _ => Input::LookupDone { topic },
            };
            c.handle(over, now);
            drain(&mut c);
        }
    }
    lookups
}

#[test]
fn a_lonely_key_is_looked_up_again_every_discovery_interval_while_followers_exist() {
    assert_eq!(relookups(Ends::Found, 200), vec![0, 60, 120, 180]);
}

#[test]
fn lookups_that_find_nobody_back_off() {
    // 60 s, then 120 s, then 240 s between lookups.
    assert_eq!(relookups(Ends::FindingNobody, 500), vec![0, 60, 180, 420]);
    // A DHT lists our own advertisement among the providers: that is
    // finding nobody too.
    assert_eq!(relookups(Ends::FindingOnlyUs, 500), vec![0, 60, 180, 420]);
}

/// A lookup the DHT could not start (no peer known yet) says nothing of
/// the key: no back-off, and the next republish firing tries again, so
/// the key is looked up soon after the DHT's first peer arrives.
#[test]
fn lookups_that_could_not_start_are_tried_at_each_republish_firing() {
    assert_eq!(relookups(Ends::Skipped, 40), vec![0, 10, 20, 30, 40]);
}

#[test]
fn a_get_of_a_held_unfollowed_key_with_nobody_to_ask_still_finishes() {
    let mut c = node(1, Config::builder());
    c.put("k", "v", T0).expect("put");
    c.unsubscribe("k");
    drain(&mut c);
    c.get("k", T0 + 10);
    let out = drain(&mut c);
    assert!(
        matches!(finished(&out), Some(GetOutcome::Found(r)) if r.value() == "v"),
        "the get ends with what is held"
    );
}
