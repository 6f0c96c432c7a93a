//! `Behaviour::with_metrics` on real swarms (memory transport): what one
//! node asks and another answers shows on both sides' registries, with no
//! call in the event loop. Needs the `metrics` feature.

#![cfg(feature = "metrics")]

use std::collections::BTreeMap;

use crate::common::*;
use libp2p::Swarm;
use libp2p_swarm_test::SwarmExt;
use pointer::metrics::{Metrics, Registry};
use pointer::{Behaviour, GetOutcome, MemoryStore, Open};

/// A node whose metrics go into `registry`.
async fn node_in(registry: &mut Registry) -> Node {
    let metrics = Metrics::new(registry);
    let mut swarm = Swarm::new_ephemeral_tokio(move |key| {
        let config = test_config().build().expect("valid config");
        Behaviour::with_validator(&key, MemoryStore::new(), config, Open)
            .expect("valid config")
            .with_metrics(metrics)
    });
    swarm.listen().with_memory_addr_external().await;
    swarm
}

/// Every sample, `name{labels}` to value, as a scraper reads it.
fn scrape(registry: &Registry) -> BTreeMap<String, f64> {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, registry).expect("encodes");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            Some((name.to_owned(), value.parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn a_get_answered_by_a_peer_shows_on_both_registries() {
    let (mut registry_a, mut registry_b) = (Registry::default(), Registry::default());
    let mut nodes = vec![
        node_in(&mut registry_a).await,
        node_in(&mut registry_b).await,
    ];
    nodes[0].behaviour_mut().put("k", "v").expect("put");
    let (a, b) = nodes.split_at_mut(1);
    b[0].connect(&mut a[0]).await;
    assert!(matches!(
        get(&mut nodes, 1, "k").await,
        GetOutcome::Found(_)
    ));

    // The gauges are read when the behaviour is next idle.
    until(&mut nodes, "B's gauges show the key", |_| {
        let b = scrape(&registry_b);
        b["pointer_keys_followed"] == 1.0 && b["pointer_records_held"] == 1.0
    })
    .await;
    let (a, b) = (scrape(&registry_a), scrape(&registry_b));
    assert_eq!(
        a[r#"pointer_records_stored_total{source="local",kind="value"}"#],
        1.0
    );
    assert_eq!(
        b[r#"pointer_records_stored_total{source="fetch",kind="value"}"#],
        1.0
    );
    assert!(b["pointer_asks_sent_total"] >= 1.0);
    assert!(b["pointer_asks_answered_total"] >= 1.0);
    assert!(a["pointer_inbound_asks_total"] >= 1.0);
    assert_eq!(
        b[r#"pointer_get_duration_seconds_count{outcome="found"}"#],
        1.0
    );
    assert_eq!(
        b["pointer_catch_up_duration_seconds_count"], 0.0,
        "a get is no catch-up"
    );
}
