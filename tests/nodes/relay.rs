//! Two node processes that know only a relay's address exchange records
//! over a circuit (libp2p circuit relay v2), as two laptops behind home
//! routers would through a public relay. Loopback only; no sleeps.

use crate::process::{connected_to, is, updated, Node, LOOPBACK_TCP, PATIENCE};

#[test]
fn two_nodes_behind_a_relay_exchange_records_over_a_circuit() {
    let mut relay = Node::start("R", &["--relay-server", "--validator", "open"]);
    let circuit = format!("{}/p2p-circuit", relay.addr);

    // A is reachable through the relay (and on its own loopback port,
    // which B is not told about).
    let mut a = listening_through(&circuit);
    let relayed = a.expect("A listens through the relay", |l| {
        l["event"] == "listening"
            && l["address"]
                .as_str()
                .is_some_and(|s| s.contains("/p2p-circuit"))
    });
    assert!(
        relayed["address"]
            .as_str()
            .is_some_and(|s| s.starts_with(&circuit)),
        "A's relayed address is the relay's: {relayed}"
    );
    relay.expect("A reserved a circuit", connected_to(&a.peer_id));

    // B knows the relay's address and A's peer id, nothing else; it dials
    // A through the relay.
    let through = format!("{circuit}/p2p/{}", a.peer_id);
    let mut b = Node::start("B", &["--dial", &through, "--validator", "open"]);
    let link = b.expect("connected to A", connected_to(&a.peer_id));
    assert!(
        link["address"]
            .as_str()
            .is_some_and(|a| a.contains("/p2p-circuit")),
        "B reached A through the relay: {link}"
    );
    a.expect("connected to B", connected_to(&b.peer_id));

    a.send("put lamp on");
    a.expect("put", is("put", "lamp"));
    b.send("get lamp");
    let got = b.expect("get", is("get", "lamp"));
    assert_eq!(got["status"], "found", "{got}");
    assert_eq!(got["value"], "on", "{got}");

    // Both follow the key now: an update goes by gossip over the circuit.
    a.send("put lamp off");
    b.expect("off by gossip", updated("lamp", "off", "gossip"));
}

/// A node listening on loopback and through the relay at `circuit`.
fn listening_through(circuit: &str) -> Node {
    Node::start(
        "A",
        &[
            "--listen",
            LOOPBACK_TCP,
            "--listen",
            circuit,
            "--validator",
            "open",
        ],
    )
}

#[test]
fn a_node_listening_through_a_relay_over_tcp_reaches_it_over_quic_too() {
    let mut relay = Node::start(
        "R",
        &[
            "--relay-server",
            "--validator",
            "open",
            "--listen",
            LOOPBACK_TCP,
            "--listen",
            "/ip4/127.0.0.1/udp/0/quic-v1",
        ],
    );
    let tcp = if relay.addr.contains("/tcp/") {
        relay.addr.clone()
    } else {
        let line = relay.expect("R's TCP address", |l| {
            l["event"] == "listening" && l["address"].as_str().is_some_and(|a| a.contains("/tcp/"))
        });
        line["address"].as_str().unwrap_or_default().to_owned()
    };
    let circuit = format!("{tcp}/p2p-circuit");
    let mut a = listening_through(&circuit);
    relay.expect("A reserved a circuit", connected_to(&a.peer_id));
    // Once the relay has identified itself, A dials its QUIC address, so
    // that the relay observes A's UDP address for DCUtR.
    a.connection_within(&relay.peer_id, PATIENCE, |l| l.contains("/quic-v1"));
    let links = a.connections_to(&relay.peer_id);
    assert!(
        links.iter().any(|l| l.contains("/quic-v1")) && links.iter().any(|l| l.contains("/tcp/")),
        "A holds a TCP and a QUIC connection to the relay: {links:?}"
    );
}
