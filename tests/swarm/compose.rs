//! `pointer::Behaviour` composes with `#[derive(NetworkBehaviour)]` next
//! to identify and ping, and next to a user's own gossipsub when Pointer's
//! gossipsub protocol id is configured apart.

use std::time::Duration;

use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAuthenticity};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, Swarm};
use libp2p_swarm_test::SwarmExt;
use pointer::FETCH_PROTOCOL as PROTOCOL;
use pointer::{Behaviour, Config, Event, GetOutcome, MemoryStore};

const PATIENCE: Duration = Duration::from_secs(30);

#[derive(NetworkBehaviour)]
struct WithIdentify {
    pointer: Behaviour<MemoryStore>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

/// Drives both swarms until `pick` maps an event of `a` to `Some`.
async fn until_a<B, T>(
    a: &mut Swarm<B>,
    b: &mut Swarm<B>,
    mut pick: impl FnMut(SwarmEvent<B::ToSwarm>) -> Option<T>,
) -> T
where
    B: NetworkBehaviour + Send,
    B::ToSwarm: std::fmt::Debug,
{
    tokio::time::timeout(PATIENCE, async {
        loop {
            tokio::select! {
                event = a.select_next_some() => if let Some(t) = pick(event) { return t },
                _ = b.select_next_some() => {}
            }
        }
    })
    .await
    .expect("the awaited event")
}

fn with_identify() -> Swarm<WithIdentify> {
    Swarm::new_ephemeral_tokio(|key| WithIdentify {
        pointer: Behaviour::new(&key, MemoryStore::new(), Config::default()).expect("config"),
        identify: identify::Behaviour::new(identify::Config::new("/app/1".into(), key.public())),
        ping: ping::Behaviour::default(),
    })
}

#[tokio::test]
async fn works_next_to_identify_and_ping() {
    let (mut a, mut b) = (with_identify(), with_identify());
    a.listen().with_memory_addr_external().await;
    b.connect(&mut a).await;

    let key = a.behaviour().pointer.owned_key("name");
    a.behaviour_mut().pointer.put(&key, "alice").expect("put");

    // identify advertises the fetch protocol of the composed handler.
    let protocols = until_a(&mut b, &mut a, |e| match e {
        SwarmEvent::Behaviour(WithIdentifyEvent::Identify(identify::Event::Received {
            info,
            ..
        })) => Some(info.protocols),
        _ => None,
    })
    .await;
    assert!(protocols.contains(&PROTOCOL), "{protocols:?}");

    let id = b.behaviour_mut().pointer.get(&key);
    let outcome = until_a(&mut b, &mut a, |e| match e {
        SwarmEvent::Behaviour(WithIdentifyEvent::Pointer(Event::GetFinished {
            id: got,
            outcome,
            ..
        })) if got == id => Some(outcome),
        _ => None,
    })
    .await;
    assert!(
        matches!(outcome, GetOutcome::Found(ref r) if r.value() == "alice"),
        "{outcome:?}"
    );
}

#[derive(NetworkBehaviour)]
struct WithOwnGossip {
    pointer: Behaviour<MemoryStore>,
    gossipsub: gossipsub::Behaviour,
}

fn with_own_gossip() -> Swarm<WithOwnGossip> {
    Swarm::new_ephemeral_tokio(|key| {
        let config = Config::builder()
            .gossipsub_protocol_prefix("/pointer/meshsub")
            .build()
            .expect("valid config");
        WithOwnGossip {
            pointer: Behaviour::new(&key, MemoryStore::new(), config).expect("config"),
            gossipsub: gossipsub::Behaviour::new(
                MessageAuthenticity::Signed(key.clone()),
                gossipsub::Config::default(),
            )
            .expect("config"),
        }
    })
}

#[tokio::test]
async fn works_next_to_the_users_own_gossipsub() {
    let (mut a, mut b) = (with_own_gossip(), with_own_gossip());
    a.listen().with_memory_addr_external().await;
    b.connect(&mut a).await;
    let chat = IdentTopic::new("chat");
    for s in [&mut a, &mut b] {
        s.behaviour_mut()
            .gossipsub
            .subscribe(&chat)
            .expect("subscribe");
    }
    let key = b.behaviour().pointer.owned_key("status");
    a.behaviour_mut()
        .pointer
        .subscribe(&key)
        .expect("valid key");

    // Wait until b's own gossipsub knows a follows "chat".
    let a_id = *a.local_peer_id();
    tokio::time::timeout(PATIENCE, async {
        while !b
            .behaviour()
            .gossipsub
            .all_peers()
            .any(|(p, t)| *p == a_id && t.contains(&&chat.hash()))
        {
            tokio::select! {
                _ = a.select_next_some() => {}
                _ = b.select_next_some() => {}
            }
        }
    })
    .await
    .expect("subscriptions arrive");

    b.behaviour_mut()
        .gossipsub
        .publish(chat.clone(), b"hi".to_vec())
        .expect("publish");
    b.behaviour_mut().pointer.put(&key, "online").expect("put");

    let (mut chat_seen, mut record_seen) = (false, false);
    while !(chat_seen && record_seen) {
        until_a(&mut a, &mut b, |e| match e {
            SwarmEvent::Behaviour(WithOwnGossipEvent::Gossipsub(gossipsub::Event::Message {
                message,
                ..
            })) => {
                assert_eq!(message.data, b"hi");
                chat_seen = true;
                Some(())
            }
            SwarmEvent::Behaviour(WithOwnGossipEvent::Pointer(Event::RecordUpdated {
                record,
                ..
            })) => {
                assert_eq!(record.value(), "online");
                record_seen = true;
                Some(())
            }
            _ => None,
        })
        .await;
    }
    // The user's gossipsub never saw Pointer's topics: the two stayed apart.
    assert!(b
        .behaviour()
        .gossipsub
        .all_peers()
        .all(|(_, topics)| topics.iter().all(|t| !t.as_str().starts_with("/pointer/"))));
}

/// The design card's names, `Pointer` and `PointerEvent`, name the same
/// types as `Behaviour` and `Event`.
#[tokio::test]
async fn the_design_card_names_work() {
    #[derive(NetworkBehaviour)]
    struct Old {
        pointer: pointer::Pointer<MemoryStore>,
    }
    let mut a = Swarm::new_ephemeral_tokio(|key| Old {
        pointer: pointer::Pointer::new(&key, MemoryStore::new(), Config::default())
            .expect("config"),
    });
    let key = a.behaviour().pointer.owned_key("name");
    a.behaviour_mut().pointer.put(&key, "v").expect("put");
    let query = a.behaviour_mut().pointer.get(&key);
    // The put's own RecordUpdated comes first; the get's answer follows.
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            let event: pointer::PointerEvent = match a.select_next_some().await {
                SwarmEvent::Behaviour(OldEvent::Pointer(e)) => e,
                _ => continue,
            };
            if let pointer::PointerEvent::GetFinished { id, outcome, .. } = event {
                assert_eq!(id, query);
                return outcome;
            }
        }
    })
    .await
    .expect("the get finishes");
    assert!(matches!(outcome, GetOutcome::Found(_)), "{outcome:?}");
}
