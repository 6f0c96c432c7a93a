//! `--metrics`: two node processes on 127.0.0.1 serve Pointer's metrics
//! and libp2p's at `/metrics`; after a put, a catch-up, a gossiped update,
//! a rejected record, a `get` and a delete, each shows what it did. Read
//! over a raw TCP socket, as a scraper would. Needs the `metrics` feature.

#![cfg(feature = "metrics")]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use crate::process::{connected_to, is, node_binary, text, updated, Node, LOOPBACK_TCP, PATIENCE};

/// One HTTP exchange over a fresh connection: `request` as sent, then the
/// status code and the body (the server closes after its answer).
fn http(address: &str, request: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).expect("connect to the metrics server");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.write_all(request).expect("send the request");
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).expect("read the answer");
    let answer = String::from_utf8(answer).expect("UTF-8 answer");
    let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("a status line: {head}"));
    (code, body.to_owned())
}

/// Every sample of `/metrics`, `name{labels}` to value.
struct Samples(BTreeMap<String, f64>);

impl Samples {
    fn scrape(address: &str) -> Samples {
        let (code, body) = http(
            address,
            b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(code, 200, "{body}");
        assert!(
            body.ends_with("# EOF\n"),
            "a whole OpenMetrics text: {body}"
        );
        let samples = body
            .lines()
            .filter(|line| !line.starts_with('#'))
            .map(|line| {
                let (name, value) = line.rsplit_once(' ').expect("name value");
                let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
                (name.to_owned(), value)
            })
            .collect();
        Samples(samples)
    }

    /// The sample named exactly `name` (labels included).
    fn get(&self, name: &str) -> f64 {
        match self.0.get(name) {
            Some(value) => *value,
            None => panic!("no {name} in {:#?}", self.0),
        }
    }

    /// The sum of the samples whose name starts with `prefix`.
    fn sum(&self, prefix: &str) -> f64 {
        self.0
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, value)| value)
            .sum()
    }
}

/// Scrapes until `done` holds. The gauges and the flush histogram change
/// without an output line to wait for (gauges are read at most once a
/// second, records are flushed 100 ms after they arrive), so this polls,
/// and fails after [`PATIENCE`].
fn scrape_until(address: &str, what: &str, done: impl Fn(&Samples) -> bool) -> Samples {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let samples = Samples::scrape(address);
        if done(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "{address}: not {what} within {PATIENCE:?}: {:#?}",
            samples.0
        );
        thread::sleep(Duration::from_millis(50));
    }
}

fn metrics_address(node: &mut Node) -> String {
    let line = node.expect("the metrics address", |l| l["event"] == "metrics");
    let address = line["address"].as_str().expect("address").to_owned();
    assert_eq!(line["url"], format!("http://{address}/metrics"), "{line}");
    assert!(address.starts_with("127.0.0.1:"), "{line}");
    address
}

#[test]
fn nodes_serve_what_they_did_as_metrics() {
    // A writes any key (open validator); B only lets a key's owner write
    // it, so it refuses what A writes under B's name.
    let metrics = ["--metrics", "127.0.0.1:0"];
    let mut a = Node::start("A", &[&["--validator", "open"][..], &metrics].concat());
    let mut b = Node::start("B", &[&metrics[..], &["--dial", &a.addr]].concat());
    a.expect("connected", connected_to(&b.peer_id));
    b.expect("connected", connected_to(&a.peer_id));
    let (a_metrics, b_metrics) = (metrics_address(&mut a), metrics_address(&mut b));

    // A put on A.
    let greeting = format!("{}/greeting", a.peer_id);
    a.send(&format!("put {greeting} hello"));
    a.expect("put", is("put", &greeting));
    // A catch-up: B follows a key A holds and B does not.
    b.send(&format!("sub {greeting}"));
    b.expect("sub", is("sub", &greeting));
    b.expect("the catch-up", updated(&greeting, "hello", "fetch"));
    // An update B hears by gossip.
    a.send(&format!("put {greeting} hello again"));
    b.expect("the update", updated(&greeting, "hello again", "gossip"));
    // A rejected record: B asks A for a key of B's that A wrote.
    let forged = format!("{}/forged", b.peer_id);
    a.send(&format!("put {forged} not yours"));
    a.expect("put", is("put", &forged));
    b.send("sub forged");
    b.expect("sub", is("sub", &forged));
    b.expect("the rejection", is("rejected", &forged));
    // A get of a key B does not follow: asked of A.
    let other = format!("{}/other", a.peer_id);
    a.send(&format!("put {other} 42"));
    a.expect("put", is("put", &other));
    b.send(&format!("get {other}"));
    let get = b.expect("get", is("get", &other));
    assert_eq!(get["status"], "found", "{get}");
    // A delete: a tombstone on both.
    a.send(&format!("del {greeting}"));
    a.expect("del", is("del", &greeting));
    b.expect("the delete", is("deleted", &greeting));

    // B follows forged and other (the delete left greeting), holds other
    // and greeting's tombstone, and has flushed what it received.
    let b_now = scrape_until(&b_metrics, "B's gauges and flushes", |s| {
        s.get("pointer_keys_followed") == 2.0
            && s.get("pointer_records_held") == 1.0
            && s.get("pointer_tombstones_held") == 1.0
            && s.get("pointer_store_flush_duration_seconds_count") >= 1.0
    });
    let stored = |source: &str, kind: &str| {
        b_now.get(&format!(
            r#"pointer_records_stored_total{{source="{source}",kind="{kind}"}}"#
        ))
    };
    assert_eq!(stored("local", "value"), 0.0, "B wrote nothing");
    assert!(stored("fetch", "value") >= 2.0, "the catch-up and the get");
    assert!(stored("gossip", "value") >= 1.0, "the update");
    let tombstones = stored("gossip", "tombstone") + stored("fetch", "tombstone");
    assert_eq!(tombstones, 1.0, "the delete");
    assert!(b_now.get(r#"pointer_records_rejected_total{reason="unauthorized"}"#) >= 1.0);
    assert_eq!(
        b_now.get(r#"pointer_records_rejected_total{reason="bad_signature"}"#),
        0.0
    );
    assert!(b_now.get(r#"pointer_gossip_verdicts_total{verdict="accepted"}"#) >= 1.0);
    assert_eq!(
        b_now.get(r#"pointer_gossip_verdicts_total{verdict="rejected"}"#),
        0.0
    );
    let sent = b_now.get("pointer_asks_sent_total");
    let answered = b_now.get("pointer_asks_answered_total");
    let failed = b_now.sum("pointer_asks_failed_total");
    assert!(answered >= 2.0, "the catch-up, the rejected key, the get");
    assert!(
        answered + failed <= sent,
        "{sent} sent, {answered} answered, {failed} failed"
    );
    // One catch-up ended in a record (forged's ended in a rejection).
    assert_eq!(b_now.get("pointer_catch_up_duration_seconds_count"), 1.0);
    let catch_up = b_now.get("pointer_catch_up_duration_seconds_sum");
    assert!(
        catch_up > 0.0 && catch_up < PATIENCE.as_secs_f64(),
        "{catch_up} s"
    );
    assert_eq!(
        b_now.get(r#"pointer_get_duration_seconds_count{outcome="found"}"#),
        1.0
    );
    assert!(b_now.get(r#"pointer_get_duration_seconds_sum{outcome="found"}"#) > 0.0);
    // libp2p-metrics' share: the swarm, identify, the transport.
    assert!(b_now.sum("libp2p_swarm_connections_established_total") >= 1.0);
    assert!(b_now.sum("libp2p_identify_") > 0.0);
    assert!(b_now.sum("libp2p_bandwidth_bytes_total") > 0.0);

    // A put four times and deleted once, and answered B's asks.
    let a_now = scrape_until(&a_metrics, "A's gauges", |s| {
        s.get("pointer_keys_followed") == 2.0
            && s.get("pointer_records_held") == 2.0
            && s.get("pointer_tombstones_held") == 1.0
    });
    let a_stored = |kind: &str| {
        a_now.get(&format!(
            r#"pointer_records_stored_total{{source="local",kind="{kind}"}}"#
        ))
    };
    assert_eq!(a_stored("value"), 4.0, "four puts");
    assert_eq!(a_stored("tombstone"), 1.0, "one delete");
    assert!(a_now.get("pointer_inbound_asks_total") >= 2.0);
    assert_eq!(a_now.sum("pointer_records_rejected_total"), 0.0);
    assert_eq!(a_now.get("pointer_catch_up_duration_seconds_count"), 0.0);
}

/// Anything but `GET /metrics` (or `HEAD`) gets a plain HTTP error, and
/// the server keeps serving. The address is printed in text output too.
#[test]
fn the_metrics_server_answers_bad_requests_with_errors() {
    let mut command = Command::new(node_binary());
    command.args([
        "--no-mdns",
        "--listen",
        LOOPBACK_TCP,
        "--metrics",
        "127.0.0.1:0",
    ]);
    let mut node = Node::spawn("M", command, false);
    let line = node.expect("the metrics address", |l| {
        text(l).starts_with("metrics on ")
    });
    let url = &text(&line)["metrics on ".len()..];
    let address = url
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("an URL: {url}"))
        .to_owned();

    let too_long = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "x".repeat(9000));
    for (request, expected) in [
        (&b"GET /nope HTTP/1.1\r\n\r\n"[..], 404),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"garbage\r\n\r\n", 400),
        (b"GET /metrics SPDY/3\r\n\r\n", 400),
        (too_long.as_bytes(), 431),
        (b"HEAD /metrics HTTP/1.1\r\n\r\n", 200),
        (b"GET /metrics?x=1 HTTP/1.0\n\n", 200),
    ] {
        let (code, body) = http(&address, request);
        let shown = String::from_utf8_lossy(&request[..request.len().min(40)]).into_owned();
        assert_eq!(code, expected, "{shown:?}");
        if request.starts_with(b"HEAD") {
            assert!(body.is_empty(), "no body for HEAD");
        }
    }
    // A client that connects and says nothing does not block the others.
    let _idle = TcpStream::connect(&address).expect("connect");
    let samples = Samples::scrape(&address);
    assert_eq!(samples.get("pointer_keys_followed"), 0.0);
}

/// Sixteen clients that connect and say nothing hold every slot of the
/// metrics server: a seventeenth is closed at once rather than queued,
/// the node still answers commands meanwhile (the server is not on the
/// swarm's thread), and once the sixteen leave a scrape is served again.
#[test]
fn silent_metrics_clients_hold_sixteen_slots_and_never_the_node() {
    let mut node = Node::start("M", &["--metrics", "127.0.0.1:0"]);
    let address = metrics_address(&mut node);
    let silent: Vec<TcpStream> = (0..16)
        .map(|_| TcpStream::connect(&address).expect("connect"))
        .collect();
    // Each is served by its own task; a scrape now finds no slot. The
    // accept loop may not have taken all sixteen yet, so the server is
    // asked until one is turned away: closed with no answer.
    let deadline = Instant::now() + PATIENCE;
    while answer_to_a_scrape(&address).is_some() {
        assert!(Instant::now() < deadline, "a client past 16 was served");
    }
    let key = format!("{}/nobody", node.peer_id);
    let started = Instant::now();
    node.send(&format!("get {key}"));
    node.expect("the get", is("get", &key));
    eprintln!(
        "a get while the metrics slots are full: {:?}",
        started.elapsed()
    );
    // Their slots come free as the server sees them close.
    drop(silent);
    let deadline = Instant::now() + PATIENCE;
    let answer = loop {
        if let Some(answer) = answer_to_a_scrape(&address) {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape served after the clients left"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The whole answer to a scrape, or `None` when the server closed the
/// connection without one.
fn answer_to_a_scrape(address: &str) -> Option<String> {
    let mut stream = TcpStream::connect(address).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    // The request may meet a closed socket; only the answer counts.
    let _ = stream.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    (!answer.is_empty()).then(|| String::from_utf8_lossy(&answer).into_owned())
}
