//! `cargo run --example demo`
//!
//! Four nodes on 127.0.0.1 share one key space. Node n0 writes, updates and
//! deletes a key; then n0 shuts down and a fifth node, n4, joins late and
//! fetches a value n0 wrote from the nodes that are left.
//!
//! Every step waits on swarm events and node state, never on sleeps; each
//! wait gives up after a few seconds and exits non-zero. Set `RUST_LOG`
//! (e.g. `RUST_LOG=pointer=debug`) to see what happens underneath.

use std::future::poll_fn;
use std::process::exit;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};
use pointer::{Config, GetOutcome, MemoryStore, Record, Source};
use tracing_subscriber::EnvFilter;

type Error = Box<dyn std::error::Error>;

/// The longest any one step may take before the demo gives up.
const PATIENCE: Duration = Duration::from_secs(10);

/// A swarm, the address it listens on and the name it is printed as.
struct Node {
    name: String,
    addr: Multiaddr,
    swarm: Swarm<pointer::Behaviour<MemoryStore>>,
}

impl Node {
    fn pointer(&self) -> &pointer::Behaviour<MemoryStore> {
        self.swarm.behaviour()
    }

    fn pointer_mut(&mut self) -> &mut pointer::Behaviour<MemoryStore> {
        self.swarm.behaviour_mut()
    }

    fn id(&self) -> PeerId {
        *self.swarm.local_peer_id()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(EnvFilter::from_default_env())
            .init();
    }
    let mut nodes = Vec::new();
    for i in 0..4 {
        nodes.push(start_node(format!("n{i}")).await?);
    }
    connect_full_mesh(&mut nodes).await?;

    // Under the default `OwnedKeys` validator a key is "<owner PeerId>/<name>"
    // and only its owner may write it; everyone may follow and serve it.
    let colour = nodes[0].pointer().owned_key("colour");
    let shape = nodes[0].pointer().owned_key("shape");
    follow(&mut nodes, &[&colour, &shape]).await;
    println!("4 nodes on 127.0.0.1/tcp, full mesh, all following n0's keys");
    println!("  colour = \"{colour}\"");
    show_authorization(&mut nodes, &colour);

    put_everywhere(&mut nodes, &colour, "blue", "put").await?;
    put_everywhere(&mut nodes, &colour, "green", "update").await?;
    delete_everywhere(&mut nodes, &colour).await?;
    // A key that is still set, for the late joiner to fetch.
    put_everywhere(&mut nodes, &shape, "circle", "put").await?;

    let writer = stop_writer(&mut nodes).await;
    late_join(&mut nodes, &shape, writer).await?;
    Ok(())
}

/// A node with a fresh Ed25519 identity, listening on a free local port.
async fn start_node(name: String) -> Result<Node, Error> {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_behaviour(|key| {
            // Default config: OwnedKeys, republish every 60 s (so nothing
            // below can have been delivered by a republish).
            Ok(pointer::Behaviour::new(
                key,
                MemoryStore::new(),
                Config::default(),
            )?)
        })?
        .build();
    swarm.listen_on("/ip4/127.0.0.1/tcp/0".parse()?)?;
    // Port 0: the real address is only known once the swarm reports it.
    let wait = async {
        loop {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                return address;
            }
        }
    };
    let addr = tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| fail(&format!("{name} listens")));
    Ok(Node { name, addr, swarm })
}

/// Every node dials every later one, then we wait until all links are up.
async fn connect_full_mesh(nodes: &mut [Node]) -> Result<(), Error> {
    for i in 0..nodes.len() {
        for j in (i + 1)..nodes.len() {
            let addr = nodes[j].addr.clone();
            nodes[i].swarm.dial(addr)?;
        }
    }
    let others = nodes.len() - 1;
    until(nodes, "all nodes are connected", |n| {
        n.iter()
            .all(|x| x.swarm.connected_peers().count() == others)
    })
    .await;
    Ok(())
}

/// Subscribes every node to `keys` and waits until each knows that all the
/// others follow them too: only then does a publish reach everyone.
async fn follow(nodes: &mut [Node], keys: &[&str]) {
    for node in nodes.iter_mut() {
        for key in keys {
            node.pointer_mut()
                .subscribe(key)
                .expect("key within limits");
        }
    }
    let ids: Vec<PeerId> = nodes.iter().map(Node::id).collect();
    until(nodes, "every node follows the keys", |n| {
        n.iter().all(|node| {
            keys.iter().all(|key| {
                let following = node.pointer().peers_following(key);
                ids.iter()
                    .all(|id| *id == node.id() || following.contains(id))
            })
        })
    })
    .await;
}

/// n1 may follow n0's key but not write it.
fn show_authorization(nodes: &mut [Node], key: &str) {
    match nodes[1].pointer_mut().put(key, "red") {
        Err(e) => println!("put colour=red on n1 → refused locally: {e}"),
        Ok(_) => fail_now("n1 was allowed to write n0's key"),
    }
}

/// n0 writes `key = value`; waits until every other node holds it.
async fn put_everywhere(
    nodes: &mut [Node],
    key: &str,
    value: &str,
    verb: &str,
) -> Result<(), Error> {
    let start = Instant::now();
    nodes[0].pointer_mut().put(key, value)?;
    until(nodes, &format!("{value} reaches every node"), |n| {
        n.iter()
            .all(|x| x.pointer().value(key).as_deref() == Some(value))
    })
    .await;
    println!(
        "{verb} {}={value} on n0 → all {} peers in {:.1?}",
        name_of(key),
        nodes.len() - 1,
        start.elapsed()
    );
    Ok(())
}

/// n0 deletes `key`; waits until no node has a value and all left its topic.
async fn delete_everywhere(nodes: &mut [Node], key: &str) -> Result<(), Error> {
    let start = Instant::now();
    nodes[0].pointer_mut().delete(key)?;
    until(nodes, "the delete reaches every node", |n| {
        n.iter()
            .all(|x| x.pointer().value(key).is_none() && !x.pointer().is_subscribed(key))
    })
    .await;
    println!(
        "delete {} on n0 → None on all {} peers, all left its topic, in {:.1?}",
        name_of(key),
        nodes.len() - 1,
        start.elapsed()
    );
    Ok(())
}

/// Shuts n0 down and waits until the others see it gone. Returns its id.
async fn stop_writer(nodes: &mut Vec<Node>) -> PeerId {
    let writer = nodes.remove(0);
    let id = writer.id();
    drop(writer);
    until(nodes, "the others see n0 gone", |n| {
        n.iter().all(|x| !x.swarm.is_connected(&id))
    })
    .await;
    println!("n0 (the writer) shut down; n1..n3 are on their own");
    id
}

/// A new node dials one survivor and asks for `key` with `get`: the value
/// arrives by Ask/Answer from a node that is not its writer.
async fn late_join(nodes: &mut Vec<Node>, key: &str, writer: PeerId) -> Result<(), Error> {
    let mut late = start_node("n4".to_owned()).await?;
    let (survivor, survivor_id) = (nodes[0].name.clone(), nodes[0].id());
    late.swarm.dial(nodes[0].addr.clone())?;
    nodes.push(late);
    let late_at = nodes.len() - 1;
    until(nodes, "n4 connects", |n| {
        n[late_at].swarm.is_connected(&survivor_id)
    })
    .await;

    let start = Instant::now();
    let (record, source) = get(nodes, late_at, key).await;
    let elapsed = start.elapsed();
    if record.author().peer_id() != Some(writer) {
        fail_now("the record n4 got is not signed by n0");
    }
    let via = match source {
        Some(Source::Fetch { peer }) => format!("fetched (Ask/Answer) from {}", name(nodes, peer)),
        Some(Source::Gossip { peer }) => format!("gossiped by {}", name(nodes, peer)),
        other => format!("{other:?}"),
    };
    let (name, value) = (name_of(key), record.value());
    println!("n4 joins late, dials {survivor}, get({name}) → Found \"{value}\" in {elapsed:.1?}");
    println!("  {via}; still signed by n0, which is gone");
    Ok(())
}

/// Runs `get(key)` on node `at` and returns the record found, with the
/// source of the `RecordUpdated` that stored it (it comes just before
/// `GetFinished`, which does not say where the record came from).
async fn get(nodes: &mut [Node], at: usize, key: &str) -> (Record, Option<Source>) {
    let query = nodes[at].pointer_mut().get(key);
    let mut source = None;
    let outcome = drive(nodes, "n4's get finishes", |_, event| match event {
        Some((i, pointer::Event::RecordUpdated { source: s, .. })) if i == at => {
            source = Some(s);
            None
        }
        Some((i, pointer::Event::GetFinished { id, outcome, .. })) if i == at && id == query => {
            Some(outcome)
        }
        _ => None,
    })
    .await;
    match outcome {
        GetOutcome::Found(record) => (record, source),
        other => fail_now(&format!("n4's get returned {other:?}")),
    }
}

/// The printed name of `peer` among `nodes`.
fn name(nodes: &[Node], peer: PeerId) -> String {
    nodes
        .iter()
        .find(|n| n.id() == peer)
        .map_or_else(|| peer.to_string(), |n| n.name.clone())
}

/// "colour" for "<PeerId>/colour".
fn name_of(key: &str) -> &str {
    key.rsplit('/').next().unwrap_or(key)
}

/// Drives every swarm until `done` holds of the nodes.
async fn until(nodes: &mut [Node], what: &str, mut done: impl FnMut(&[Node]) -> bool) {
    drive(nodes, what, |n, _| done(n).then_some(())).await
}

/// Polls every swarm, all in this one task, until `check` returns `Some`.
/// `check` sees each behaviour event as it comes, then (with `None`) the
/// state once every swarm is idle. State only changes inside these polls,
/// so checking after each round misses nothing and needs no timer.
async fn drive<T>(
    nodes: &mut [Node],
    what: &str,
    mut check: impl FnMut(&[Node], Option<(usize, pointer::Event)>) -> Option<T>,
) -> T {
    let wait = poll_fn(|cx| {
        for i in 0..nodes.len() {
            while let Poll::Ready(Some(event)) = nodes[i].swarm.poll_next_unpin(cx) {
                if let SwarmEvent::Behaviour(event) = event {
                    if let Some(found) = check(nodes, Some((i, event))) {
                        return Poll::Ready(found);
                    }
                }
            }
        }
        match check(nodes, None) {
            Some(found) => Poll::Ready(found),
            None => Poll::Pending,
        }
    });
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| fail(what))
}

fn fail(what: &str) -> ! {
    fail_now(&format!(
        "timed out after {PATIENCE:?} waiting until {what}"
    ))
}

fn fail_now(message: &str) -> ! {
    eprintln!("demo failed: {message}");
    exit(1)
}
