//! Shared harness for the integration tests: real swarms on the memory
//! transport (libp2p-swarm-test), driven together until a condition holds.

#![allow(dead_code)]

pub mod heal;
pub mod partition;
pub mod raw_peer;
pub mod rogue;

use std::collections::HashMap;
use std::future::poll_fn;
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use libp2p::swarm::SwarmEvent;
use libp2p::Swarm;
use libp2p_swarm_test::SwarmExt;
use pointer::internals::proto::pointer::{Answer, Entry, Operate, Status};
use pointer::{Behaviour, Config, Event, MemoryStore, Open, RecordStore, Validator};

pub type Node<S = MemoryStore> = Swarm<Behaviour<S>>;

/// How long any one wait may take before the test fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Settings for tests: a republish interval long enough that tests never
/// rely on it unless they set it themselves, and short fetch timeouts.
/// The nodes below take the `Open` validator (any author, any key) unless
/// a test gives another.
pub fn test_config() -> pointer::ConfigBuilder {
    Config::builder()
        .republish_interval(Duration::from_secs(3600))
        .fetch_timeout(Duration::from_secs(5))
}

/// A node with `config` and the `Open` validator, listening on a memory
/// address.
pub async fn node_with(config: impl FnOnce() -> Config + Send) -> Node {
    node_with_validator(config, Open).await
}

/// A node with `config` and `validator`, listening on a memory address.
pub async fn node_with_validator(
    config: impl FnOnce() -> Config + Send,
    validator: impl Validator,
) -> Node {
    let mut swarm = Swarm::new_ephemeral_tokio(|key| {
        Behaviour::with_validator(&key, MemoryStore::new(), config(), validator)
            .expect("valid config")
    });
    swarm.listen().with_memory_addr_external().await;
    swarm
}

/// A node with `store`, `config` and the `Open` validator, listening on a
/// memory address.
pub async fn node_with_store<S: RecordStore + Send + 'static>(store: S, config: Config) -> Node<S> {
    let mut swarm = Swarm::new_ephemeral_tokio(|key| {
        Behaviour::with_validator(&key, store, config, Open).expect("valid config")
    });
    swarm.listen().with_memory_addr_external().await;
    swarm
}

/// A node with [`test_config`].
pub async fn node() -> Node {
    node_with(|| test_config().build().expect("valid config")).await
}

/// `n` nodes, every pair connected.
pub async fn full_mesh(n: usize) -> Vec<Node> {
    full_mesh_with(n, || test_config().build().expect("valid config")).await
}

/// `n` nodes with `config`, every pair connected.
pub async fn full_mesh_with(n: usize, config: impl Fn() -> Config + Send + Copy) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(node_with(config).await);
    }
    for i in 0..n {
        for j in (i + 1)..n {
            let (left, right) = nodes.split_at_mut(j);
            left[i].connect(&mut right[0]).await;
        }
    }
    nodes
}

/// `n` nodes, every pair connected, all following `key` and knowing that
/// the others do.
pub async fn following_mesh(n: usize, key: &str) -> Vec<Node> {
    following_mesh_with(n, key, || test_config().build().expect("valid config")).await
}

/// [`following_mesh`] with `config`.
pub async fn following_mesh_with(
    n: usize,
    key: &str,
    config: impl Fn() -> Config + Send + Copy,
) -> Vec<Node> {
    let mut nodes = full_mesh_with(n, config).await;
    for node in nodes.iter_mut() {
        node.behaviour_mut().subscribe(key).expect("valid key");
    }
    let all: Vec<usize> = (0..n).collect();
    until_following(&mut nodes, &all, key).await;
    nodes
}

/// Test settings with a short republish interval.
pub fn republishing_every(interval: Duration) -> Config {
    test_config()
        .republish_interval(interval)
        .build()
        .expect("valid config")
}

/// The next event of any of `nodes`, with the index of its node.
pub async fn next_event<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
) -> (usize, SwarmEvent<Event>) {
    poll_fn(|cx| {
        for (i, node) in nodes.iter_mut().enumerate() {
            if let Poll::Ready(Some(event)) = node.poll_next_unpin(cx) {
                return Poll::Ready((i, event));
            }
        }
        Poll::Pending
    })
    .await
}

/// Drives all `nodes` until `done` holds of them. The condition is checked
/// after every event, and every few milliseconds too, because some state
/// (a peer's subscription, a stale record ignored) changes without an event.
/// Fails the test after [`PATIENCE`].
pub async fn until<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    what: &str,
    done: impl FnMut(&[Node<S>]) -> bool,
) {
    if !drive_until(nodes, done).await {
        panic!("timed out waiting until {what}");
    }
}

/// Drives `nodes` until `done` holds; `false` if it did not within
/// [`PATIENCE`].
async fn drive_until<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    mut done: impl FnMut(&[Node<S>]) -> bool,
) -> bool {
    let wait = async {
        let mut recheck = tokio::time::interval(Duration::from_millis(10));
        while !done(nodes) {
            tokio::select! {
                _ = next_event(nodes) => {}
                _ = recheck.tick() => {}
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait).await.is_ok()
}

/// Drives all `nodes` until one emits a behaviour event that `pick` maps to
/// `Some`, and returns it with the node's index.
pub async fn wait_for<T, S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    what: &str,
    mut pick: impl FnMut(usize, &Event) -> Option<T>,
) -> (usize, T) {
    let wait = async {
        loop {
            if let (i, SwarmEvent::Behaviour(event)) = next_event(nodes).await {
                if let Some(found) = pick(i, &event) {
                    return (i, found);
                }
            }
        }
    };
    tokio::time::timeout(PATIENCE, wait)
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {what}"))
}

/// Runs a `get` of `key` on node `i` and drives `nodes` until it finishes.
pub async fn get<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    i: usize,
    key: &str,
) -> pointer::GetOutcome {
    let id = nodes[i].behaviour_mut().get(key);
    wait_for(nodes, "the get to finish", |j, e| match e {
        Event::GetFinished {
            id: got, outcome, ..
        } if j == i && *got == id => Some(outcome.clone()),
        _ => None,
    })
    .await
    .1
}

/// Drives `nodes` until every node in `who` sees every other node in `who`
/// following `key` (their gossipsub subscriptions have arrived).
pub async fn until_following<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    who: &[usize],
    key: &str,
) {
    let ids: Vec<_> = nodes.iter().map(|n| *n.local_peer_id()).collect();
    until(nodes, "subscriptions are known", |nodes| {
        who.iter().all(|&i| {
            let following = nodes[i].behaviour().peers_following(key);
            who.iter()
                .filter(|&&j| j != i)
                .all(|&j| following.contains(&ids[j]))
        })
    })
    .await;
}

/// The value every node holds for `key`.
pub fn values<S: RecordStore + 'static>(nodes: &[Node<S>], key: &str) -> Vec<Option<String>> {
    nodes.iter().map(|n| n.behaviour().value(key)).collect()
}

/// What a peer holding `records` answers for `key` (raw fetch peers).
pub fn entry_for(records: &HashMap<String, Operate>, key: &str) -> Entry {
    match records.get(key) {
        Some(op) => Entry {
            status: Status::Ok_pb,
            op: Some(op.clone()),
        },
        None => Entry {
            status: Status::NotExist,
            op: None,
        },
    }
}

/// The `Answer` carrying `entries` in order: the first in `status`/`op`,
/// the rest in `more`.
pub fn answer_of(mut entries: impl Iterator<Item = Entry>) -> Answer {
    let first = entries.next().expect("an answer has a first entry");
    Answer {
        status: first.status,
        op: first.op,
        more: entries.collect(),
        ranges: Vec::new(),
    }
}

/// `nodes[i]` and `nodes[j]`, both mutably (`i != j`).
pub fn pair_mut<S: RecordStore + 'static>(
    nodes: &mut [Node<S>],
    i: usize,
    j: usize,
) -> (&mut Node<S>, &mut Node<S>) {
    assert_ne!(i, j, "a node is not its own peer");
    if i < j {
        let (left, right) = nodes.split_at_mut(j);
        (&mut left[i], &mut right[0])
    } else {
        let (left, right) = nodes.split_at_mut(i);
        (&mut right[0], &mut left[j])
    }
}

/// Connects `nodes[i]` (dialing) to `nodes[j]` and waits until both see it.
pub async fn link<S: RecordStore + Send + 'static>(nodes: &mut [Node<S>], i: usize, j: usize) {
    let (dialer, listener) = pair_mut(nodes, i, j);
    dialer.connect(listener).await;
}

/// `n` nodes with `config`, connected exactly along `links` (pairs of
/// indices, the first dials): lines, bridges, any topology but a mesh.
pub async fn linked_with(
    n: usize,
    links: &[(usize, usize)],
    config: impl Fn() -> Config + Send + Copy,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for _ in 0..n {
        nodes.push(node_with(config).await);
    }
    for &(i, j) in links {
        link(&mut nodes, i, j).await;
    }
    nodes
}

/// The links of a line of `n` nodes: 0 - 1 - ... - n-1.
pub fn line_links(n: usize) -> Vec<(usize, usize)> {
    (1..n).map(|j| (j - 1, j)).collect()
}

/// Drives `nodes` until, across every link, each end sees the other
/// following every one of `keys` (their subscriptions have arrived).
pub async fn until_links_follow<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    links: &[(usize, usize)],
    keys: &[impl AsRef<str>],
) {
    let ids: Vec<_> = nodes.iter().map(|n| *n.local_peer_id()).collect();
    until(
        nodes,
        "neighbours know each other follow the keys",
        |nodes| {
            links.iter().all(|&(i, j)| {
                keys.iter().all(|key| {
                    let key = key.as_ref();
                    nodes[i].behaviour().peers_following(key).contains(&ids[j])
                        && nodes[j].behaviour().peers_following(key).contains(&ids[i])
                })
            })
        },
    )
    .await;
}

/// [`until`], and on timeout the panic message also carries `report` of
/// the nodes as they are then (what differs from what was awaited).
pub async fn until_or_report<S: RecordStore + Send + 'static>(
    nodes: &mut [Node<S>],
    what: &str,
    done: impl FnMut(&[Node<S>]) -> bool,
    report: impl Fn(&[Node<S>]) -> String,
) {
    if !drive_until(nodes, done).await {
        panic!("timed out waiting until {what}:\n{}", report(nodes));
    }
}
