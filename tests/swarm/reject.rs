//! Records that break a rule are rejected with their reason
//! and nothing is stored; a stale record is ignored. A rogue peer speaking
//! raw gossipsub sends them, so the whole network path is exercised.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::common::*;
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::gossipsub::{self, MessageAuthenticity, MessageId, ValidationMode};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};
use libp2p_swarm_test::SwarmExt;
use pointer::internals::wire;
use pointer::DecodeError;
use pointer::RejectReason;
use pointer::{signing_key, Signature};
use pointer::{topic, Config, Event, Op, OwnedKeys, Record, Source, WriteError};
use sha2::{Digest, Sha256};

const MAX_VALUE: usize = 100;

struct Arena {
    target: Node,
    rogue: Swarm<gossipsub::Behaviour>,
    signer: SigningKey,
    rogue_peer: PeerId,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64
}

fn rogue_gossipsub() -> gossipsub::Behaviour {
    let config = gossipsub::ConfigBuilder::default()
        .validation_mode(ValidationMode::Anonymous)
        .message_id_fn(|m: &gossipsub::Message| MessageId::new(&Sha256::digest(&m.data)))
        .build()
        .expect("valid config");
    gossipsub::Behaviour::new(MessageAuthenticity::Anonymous, config).expect("valid behaviour")
}

impl Arena {
    /// A target with the default `OwnedKeys` validator, following `names`
    /// under the rogue's own keys, and a connected rogue that knows it.
    async fn new(names: &[&str]) -> Arena {
        let mut target = node_with_validator(
            || {
                Config::builder()
                    .max_value_bytes(MAX_VALUE)
                    .republish_interval(Duration::from_secs(3600))
                    .build()
                    .expect("valid config")
            },
            OwnedKeys,
        )
        .await;
        let mut signer = None;
        let mut rogue = Swarm::new_ephemeral_tokio(|key| {
            signer = signing_key(&key);
            rogue_gossipsub()
        });
        let rogue_peer = *rogue.local_peer_id();
        rogue.connect(&mut target).await;
        let mut arena = Arena {
            target,
            rogue,
            signer: signer.expect("ed25519 identity"),
            rogue_peer,
        };
        let keys: Vec<String> = names.iter().map(|n| arena.key(n)).collect();
        for key in keys.iter().chain([&arena.foreign_key()]) {
            arena
                .target
                .behaviour_mut()
                .subscribe(key)
                .expect("valid key");
        }
        arena.until_rogue_sees_subscriptions(keys.len() + 1).await;
        arena
    }

    fn key(&self, name: &str) -> String {
        OwnedKeys::key(&self.rogue_peer, name)
    }

    /// A key the rogue does not own.
    fn foreign_key(&self) -> String {
        OwnedKeys::key(self.target.local_peer_id(), "mine")
    }

    async fn until_rogue_sees_subscriptions(&mut self, count: usize) {
        let target = *self.target.local_peer_id();
        tokio::time::timeout(PATIENCE, async {
            loop {
                let known = self
                    .rogue
                    .behaviour()
                    .all_peers()
                    .find(|(p, _)| **p == target)
                    .map_or(0, |(_, topics)| topics.len());
                if known >= count {
                    return;
                }
                tokio::select! {
                    _ = self.rogue.select_next_some() => {}
                    _ = self.target.select_next_some() => {}
                }
            }
        })
        .await
        .expect("the rogue learns the target's subscriptions");
    }

    fn sign(&self, key: &str, value: &str, time: i64) -> Record {
        Record::sign(key, Op::Mut, value, time, &self.signer)
    }

    fn send_bytes(&mut self, key: &str, bytes: Vec<u8>) {
        self.rogue
            .behaviour_mut()
            .publish(topic(key), bytes)
            .expect("the target follows the topic");
    }

    fn send(&mut self, topic_key: &str, record: &Record) {
        self.send_bytes(topic_key, wire::encode_operate(record));
    }

    /// Drives both swarms until the target emits an event `pick` accepts.
    async fn target_event<T>(&mut self, mut pick: impl FnMut(&Event) -> Option<T>) -> T {
        tokio::time::timeout(PATIENCE, async {
            loop {
                tokio::select! {
                    _ = self.rogue.select_next_some() => {}
                    event = self.target.select_next_some() => {
                        if let SwarmEvent::Behaviour(e) = event {
                            if let Some(found) = pick(&e) {
                                return found;
                            }
                        }
                    }
                }
            }
        })
        .await
        .expect("the target reacts")
    }

    /// The next rejection, and that it came from the rogue. Panics on any
    /// record stored meanwhile.
    async fn rejection(&mut self) -> (String, RejectReason) {
        let rogue = self.rogue_peer;
        self.target_event(|e| match e {
            Event::RecordRejected { peer, key, reason } => {
                assert_eq!(*peer, rogue);
                Some((key.clone(), reason.clone()))
            }
            Event::RecordUpdated { record, .. } | Event::RecordDeleted { record, .. } => {
                panic!("nothing may be stored, got {record:?}")
            }
            _ => None,
        })
        .await
    }

    fn stored(&self, key: &str) -> Option<Record> {
        self.target.behaviour().record(key).map(|r| r.into_owned())
    }
}

#[tokio::test]
async fn bad_signature_is_rejected() {
    let mut arena = Arena::new(&["a"]).await;
    let key = arena.key("a");
    let good = arena.sign(&key, "v", now_ms());
    let mut sig = *good.signature().as_bytes();
    sig[0] ^= 1;
    let forged = Record::from_parts(
        key.clone(),
        Op::Mut,
        "v".into(),
        good.time(),
        *good.author(),
        Signature::from_bytes(sig),
    );
    arena.send(&key, &forged);
    assert_eq!(
        arena.rejection().await,
        (key.clone(), RejectReason::BadSignature)
    );
    assert_eq!(arena.stored(&key), None);
}

#[tokio::test]
async fn record_replayed_onto_another_key_is_rejected() {
    let mut arena = Arena::new(&["a", "b"]).await;
    let (a, b) = (arena.key("a"), arena.key("b"));
    let for_a = arena.sign(&a, "v", now_ms());
    arena.send(&b, &for_a);
    assert_eq!(
        arena.rejection().await,
        (b.clone(), RejectReason::BadSignature)
    );
    assert_eq!(arena.stored(&b), None);
}

#[tokio::test]
async fn author_the_validator_refuses_is_rejected() {
    let mut arena = Arena::new(&[]).await;
    let key = arena.foreign_key();
    let record = arena.sign(&key, "v", now_ms());
    arena.send(&key, &record);
    assert_eq!(
        arena.rejection().await,
        (key.clone(), RejectReason::Unauthorized)
    );
    assert_eq!(arena.stored(&key), None);
}

#[tokio::test]
async fn time_beyond_the_allowed_skew_is_rejected() {
    let mut arena = Arena::new(&["a"]).await;
    let key = arena.key("a");
    let record = arena.sign(&key, "v", now_ms() + 10 * 60 * 1000);
    arena.send(&key, &record);
    let (_, reason) = arena.rejection().await;
    assert!(
        matches!(reason, RejectReason::FromTheFuture { .. }),
        "{reason:?}"
    );
    assert_eq!(arena.stored(&key), None);
}

#[tokio::test]
async fn oversize_value_is_rejected() {
    let mut arena = Arena::new(&["a"]).await;
    let key = arena.key("a");
    let record = arena.sign(&key, &"x".repeat(MAX_VALUE + 1), now_ms());
    arena.send(&key, &record);
    let expected = RejectReason::ValueTooLarge {
        len: MAX_VALUE + 1,
        limit: MAX_VALUE,
    };
    assert_eq!(arena.rejection().await, (key.clone(), expected));
    assert_eq!(arena.stored(&key), None);
}

#[tokio::test]
async fn garbage_bytes_are_rejected_as_malformed() {
    let mut arena = Arena::new(&["a"]).await;
    let key = arena.key("a");
    arena.send_bytes(&key, vec![0xff, 0xff, 0xff]);
    let (_, reason) = arena.rejection().await;
    assert!(
        matches!(reason, RejectReason::Malformed(DecodeError::Protobuf(_))),
        "{reason:?}"
    );
}

#[tokio::test]
async fn stale_record_is_ignored_and_changes_nothing() {
    let mut arena = Arena::new(&["a"]).await;
    let key = arena.key("a");
    let now = now_ms();
    let newer = arena.sign(&key, "new", now);
    arena.send(&key, &newer);
    let stored = arena
        .target_event(|e| match e {
            Event::RecordUpdated {
                record,
                source: Source::Gossip { .. },
            } => Some(record.clone()),
            _ => None,
        })
        .await;
    assert_eq!(stored, newer);

    let older = arena.sign(&key, "old", now - 1_000);
    arena.send(&key, &older);
    // Gossip from one peer on one topic arrives in order: once the marker
    // after it is rejected, the stale record has been judged, silently.
    arena.send_bytes(&key, vec![0xff]);
    let (_, reason) = arena.rejection().await;
    assert!(matches!(reason, RejectReason::Malformed(_)));
    assert_eq!(arena.stored(&key), Some(newer));
}

#[tokio::test]
async fn local_writes_that_break_a_rule_are_typed_errors_and_store_nothing() {
    let mut target = node_with_validator(
        || {
            Config::builder()
                .max_key_bytes(64)
                .max_value_bytes(MAX_VALUE)
                .build()
                .expect("valid config")
        },
        OwnedKeys,
    )
    .await;
    let pointer = target.behaviour_mut();
    let mine = pointer.owned_key("k");

    let err = pointer.put(&mine, &"x".repeat(MAX_VALUE + 1)).unwrap_err();
    assert!(
        matches!(err, WriteError::Invalid(RejectReason::ValueTooLarge { .. })),
        "{err:?}"
    );
    let long_key = pointer.owned_key(&"n".repeat(64));
    let err = pointer.put(&long_key, "v").unwrap_err();
    assert!(
        matches!(err, WriteError::Invalid(RejectReason::KeyTooLong { .. })),
        "{err:?}"
    );
    let theirs = OwnedKeys::key(&PeerId::random(), "k");
    let err = pointer.put(&theirs, "v").unwrap_err();
    assert!(
        matches!(err, WriteError::Invalid(RejectReason::Unauthorized)),
        "{err:?}"
    );
    assert!(pointer.records().next().is_none(), "nothing was stored");
    assert!(!pointer.is_subscribed(&mine) && !pointer.is_subscribed(&theirs));
}

/// A write can only be too large for the message limit when the value limit
/// allows more than the message holds; such a configuration is refused when
/// it is built, with a typed error, so no node runs with it.
#[test]
fn a_value_limit_the_message_limit_cannot_hold_is_refused_at_build() {
    let err = Config::builder()
        .max_message_bytes(200)
        .build()
        .expect_err("a 60 KiB value cannot fit 200 bytes");
    assert!(
        matches!(
            err,
            pointer::ConfigError::ValueDoesNotFit {
                max_message_bytes: 200,
                ..
            }
        ),
        "{err:?}"
    );
}
