//! `cargo run --example presence`
//!
//! A presence service, the shape to copy into an application: each node
//! keeps its status under its own key, `"<its PeerId>/presence"` (the
//! default `OwnedKeys` validator lets only it write there), follows the
//! presence key of every peer it connects to, and keeps a roster from the
//! events. Going offline deletes the key, which wipes it on every node.
//!
//! Three nodes run here in one process on 127.0.0.1, composed with
//! `identify` in one `#[derive(NetworkBehaviour)]` as an application would.
//! The example waits until every roster lists everyone, takes one node
//! offline, waits until the others see it leave, and exits. Every step
//! waits on events, with a deadline.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use pointer::{MemoryStore, OwnedKeys};

type Error = Box<dyn std::error::Error>;

/// The longest any one step may take.
const PATIENCE: Duration = Duration::from_secs(10);

/// The application's behaviour: Pointer beside the user's own protocols.
#[derive(NetworkBehaviour)]
struct App {
    pointer: pointer::Behaviour<MemoryStore>,
    identify: identify::Behaviour,
}

/// One node: its swarm and who it sees online, by peer.
struct Member {
    swarm: Swarm<App>,
    online: BTreeMap<PeerId, String>,
}

impl Member {
    fn id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }

    /// Says `status` under our presence key.
    fn announce(&mut self, status: &str) -> Result<(), Error> {
        let pointer = &mut self.swarm.behaviour_mut().pointer;
        let key = pointer.owned_key("presence");
        pointer.put(&key, status)?;
        Ok(())
    }

    /// Keeps the roster from one event: a connected peer's presence key
    /// is followed; its records say who is online.
    fn on_event(&mut self, event: SwarmEvent<AppEvent>) {
        match event {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                let key = OwnedKeys::key(&peer_id, "presence");
                let _ = self.swarm.behaviour_mut().pointer.subscribe(&key);
            }
            SwarmEvent::Behaviour(AppEvent::Pointer(pointer::Event::RecordUpdated {
                record,
                ..
            })) => {
                if let Some(peer) = presence_of(record.key()) {
                    self.online.insert(peer, record.value().to_owned());
                }
            }
            SwarmEvent::Behaviour(AppEvent::Pointer(pointer::Event::RecordDeleted {
                record,
                ..
            })) => {
                if let Some(peer) = presence_of(record.key()) {
                    self.online.remove(&peer);
                }
            }
            _ => {}
        }
    }
}

/// The peer whose presence `key` is, if it is a presence key.
fn presence_of(key: &str) -> Option<PeerId> {
    let peer = key.strip_suffix("/presence")?;
    peer.parse().ok()
}

async fn member() -> Result<(Member, Multiaddr), Error> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            Ok(App {
                pointer: pointer::Behaviour::new(key, MemoryStore::new(), Default::default())?,
                identify: identify::Behaviour::new(identify::Config::new(
                    "/presence/1.0.0".into(),
                    key.public(),
                )),
            })
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    Ok((
        Member {
            swarm,
            online: BTreeMap::new(),
        },
        addr,
    ))
}

/// Drives every member until `done` holds of them, or fails after
/// [`PATIENCE`].
async fn until(
    members: &mut [Member],
    what: &str,
    done: impl Fn(&[Member]) -> bool,
) -> Result<(), Error> {
    let drive = poll_fn(|cx| loop {
        if done(members) {
            return Poll::Ready(());
        }
        let mut progressed = false;
        for m in members.iter_mut() {
            if let Poll::Ready(Some(event)) = m.swarm.poll_next_unpin(cx) {
                m.on_event(event);
                progressed = true;
            }
        }
        if !progressed {
            return Poll::Pending;
        }
    });
    tokio::time::timeout(PATIENCE, drive)
        .await
        .map_err(|_| format!("timed out waiting until {what}").into())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let mut members = Vec::new();
    let mut addrs = Vec::new();
    for _ in 0..3 {
        let (m, addr) = member().await?;
        members.push(m);
        addrs.push(addr);
    }
    // Each node dials the ones before it: a full mesh of three. A node
    // follows the presence of the peers it connects to.
    for i in 1..members.len() {
        for addr in &addrs[..i] {
            members[i].swarm.dial(addr.clone())?;
        }
    }
    for (i, m) in members.iter_mut().enumerate() {
        m.announce(&format!("online since step {i}"))?;
    }
    let everyone: Vec<PeerId> = members.iter().map(Member::id).collect();
    until(&mut members, "every roster lists everyone else", |ms| {
        ms.iter().all(|m| {
            everyone
                .iter()
                .all(|p| *p == m.id() || m.online.contains_key(p))
        })
    })
    .await?;
    for m in &members {
        let others: Vec<String> = (m.online.iter())
            .filter(|(p, _)| **p != m.id())
            .map(|(p, status)| format!("{p} ({status})"))
            .collect();
        println!("{} sees online: {}", m.id(), others.join(", "));
    }

    // Node 2 goes offline: it deletes its presence before it leaves.
    let leaving = members[2].id();
    let key = OwnedKeys::key(&leaving, "presence");
    members[2].swarm.behaviour_mut().pointer.delete(&key)?;
    until(&mut members[..], "the others see node 2 leave", |ms| {
        ms[..2].iter().all(|m| !m.online.contains_key(&leaving))
    })
    .await?;
    println!("{leaving} went offline; the others saw it leave");
    Ok(())
}
