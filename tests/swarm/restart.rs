//! A node restarted on its store, with the same identity, comes back with
//! its records: it follows their keys again, serves them to a new peer
//! through `Ask`, and still refuses a stale `Mut` for a key it deleted.
//! (The on-disk store runs the same scenario.)

use crate::common::*;
use libp2p::core::{transport::MemoryTransport, upgrade::Version, Transport};
use libp2p::identity::Keypair;
use libp2p::{noise, tcp, yamux};
use libp2p_swarm_test::SwarmExt;
use pointer::{Behaviour, Config, GetOutcome, MemoryStore, RecordStore, Refusal};

/// A swarm with a given identity (libp2p-swarm-test only makes fresh ones),
/// on the memory transport, listening.
async fn node_as<S: RecordStore + Send + 'static>(keypair: &Keypair, store: S) -> Node<S> {
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair.clone())
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .expect("tcp")
        .with_other_transport(|key| {
            MemoryTransport::default()
                .upgrade(Version::V1)
                .authenticate(noise::Config::new(key).expect("noise"))
                .multiplex(yamux::Config::default())
        })
        .expect("memory transport")
        .with_behaviour(|key| Behaviour::new(key, store, Config::default()).expect("config"))
        .expect("behaviour")
        .build();
    swarm.listen().with_memory_addr_external().await;
    swarm
}

/// How a test gets at the storage of the node that restarts.
pub struct Stores<S> {
    /// Opens the restarting node's storage; the same storage every call.
    pub open: Box<dyn FnMut() -> S>,
    /// Called with the store just before the node shuts down.
    pub on_shutdown: Box<dyn FnMut(&S)>,
    /// A fresh, empty store for the newcomer.
    pub fresh: Box<dyn FnMut() -> S>,
}

/// Runs the restart scenario on the storage `stores` gives access to.
pub async fn restart_scenario<S: RecordStore + Send + 'static>(mut stores: Stores<S>) {
    let keypair = Keypair::generate_ed25519();
    let mut first = node_as(&keypair, (stores.open)()).await;
    let kept_key = first.behaviour().owned_key("kept");
    let kept = first.behaviour_mut().put(&kept_key, "v").expect("put");
    let gone_key = first.behaviour().owned_key("gone");
    let stale = first.behaviour_mut().put(&gone_key, "old").expect("put");
    first.behaviour_mut().delete(&gone_key).expect("delete");
    (stores.on_shutdown)(first.behaviour().store());
    drop(first);

    let restarted = node_as(&keypair, (stores.open)()).await;
    let pointer = restarted.behaviour();
    assert_eq!(*restarted.local_peer_id(), keypair.public().to_peer_id());
    assert_eq!(pointer.record(kept.key()).as_deref(), Some(&kept));
    assert!(
        pointer.is_subscribed(kept.key()),
        "follows its values again"
    );
    assert!(
        !pointer.is_subscribed(&gone_key),
        "deleted keys stay unfollowed"
    );

    let newcomer = node_as(&Keypair::generate_ed25519(), (stores.fresh)()).await;
    let mut nodes = [restarted, newcomer];
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    let outcome = get(&mut nodes, 1, kept.key()).await;
    assert_eq!(outcome, GetOutcome::Found(kept));

    let refused = nodes[0].behaviour_mut().insert(stale);
    assert!(matches!(refused, Err(Refusal::Older)), "{refused:?}");
}

#[tokio::test]
async fn restarted_on_a_kept_memory_store_it_picks_up_where_it_left_off() {
    // A MemoryStore outlives a restart only if the application keeps it.
    let kept = std::rc::Rc::new(std::cell::RefCell::new(MemoryStore::new()));
    let (reader, writer) = (kept.clone(), kept);
    restart_scenario(Stores {
        open: Box::new(move || reader.borrow().clone()),
        on_shutdown: Box::new(move |store: &MemoryStore| *writer.borrow_mut() = store.clone()),
        fresh: Box::new(MemoryStore::new),
    })
    .await;
}

#[cfg(feature = "redb")]
#[tokio::test]
async fn restarted_on_its_database_it_picks_up_where_it_left_off() {
    use pointer::RedbStore;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("records.redb");
    let fresh_dir = dir.path().to_owned();
    let mut fresh_count = 0;
    restart_scenario(Stores {
        open: Box::new(move || RedbStore::open(&path).expect("opens")),
        on_shutdown: Box::new(|_: &RedbStore| {}),
        fresh: Box::new(move || {
            fresh_count += 1;
            RedbStore::open(fresh_dir.join(format!("fresh-{fresh_count}.redb"))).expect("opens")
        }),
    })
    .await;
}
