//! The `node` example as a program: separate processes on 127.0.0.1,
//! driven through standard input, read through `--json` output. Every wait
//! is for an output line, with a timeout; no sleeps.

use std::process::Command;

use crate::process::{connected_to, is, line_of, node_binary, text, updated, Node, LOOPBACK_TCP};
use serde_json::{json, Value};

/// A line of four, A - B - C - D (mDNS off): a put on A reaches D, by
/// fetch when D starts following and by gossip after that; a delete on D
/// reaches A. Records travel more than one hop.
#[test]
fn records_and_deletes_travel_along_a_line_of_four() {
    // D first, so that C dials D, B dials C and A dials B. No DHT: it
    // would connect the ends directly (tests/nodes/discovery.rs), and this
    // test is about records travelling hop by hop.
    let mut line = line_of(&["D", "C", "B", "A"], &["--validator", "open", "--no-dht"]);
    line.reverse();
    let [a, b, c, d] = &mut line[..] else {
        unreachable!()
    };

    a.send("put colour blue");
    a.expect("put", is("put", "colour"));
    // Each node follows the key in turn and catches up from its neighbour:
    // D's copy comes from C, which got it from B, which got it from A.
    for node in [&mut *b, &mut *c, &mut *d] {
        node.send("sub colour");
        node.expect("sub", is("sub", "colour"));
        node.expect("blue by fetch", updated("colour", "blue", "fetch"));
    }

    // Now every node follows it: an update is gossiped hop by hop to D.
    a.send("put colour green");
    for node in [&mut *b, &mut *c, &mut *d] {
        node.expect("green by gossip", updated("colour", "green", "gossip"));
    }

    // A delete on D goes the other way, three hops back to A.
    d.send("del colour");
    d.expect("del", is("del", "colour"));
    for node in [&mut *c, &mut *b, &mut *a] {
        node.expect("the delete", is("deleted", "colour"));
    }
    a.send("get colour");
    let get = a.expect("get", is("get", "colour"));
    assert_eq!(get["status"], "not_found", "{get}");

    // Only a line: A never met C or D.
    a.send("peers");
    let peers = a.expect("peers", |l| l["event"] == "peers");
    assert_eq!(peers["peers"].as_array().unwrap().len(), 1, "{peers}");
    assert_eq!(peers["peers"][0]["peer_id"], b.peer_id.as_str());
}

/// C keeps a data directory. Killed with SIGKILL, it misses two updates;
/// started again on the same directory it has the same PeerId, its old
/// records from disk, follows them again and converges to both updates
/// with no new put: by asking its peer when the connection comes up.
/// Needs the on-disk store (feature `redb`).
#[cfg(feature = "redb")]
#[test]
fn a_restarted_node_keeps_its_identity_and_records_and_catches_up() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Not created yet: the node creates it on first start.
    let data_dir = dir.path().join("c");
    let data = data_dir.to_str().expect("UTF-8 path");
    let mut nodes = line_of(&["A", "B"], &[]);
    let [a, b] = &mut nodes[..] else {
        unreachable!()
    };
    let mut c = Node::start("C", &["--data-dir", data, "--dial", &b.addr]);
    c.expect("connected", connected_to(&b.peer_id));
    assert_eq!(c.started["records"], 0);

    // Under the owned validator A's names become "<A>/name".
    let (k1, k2) = (format!("{}/k1", a.peer_id), format!("{}/k2", a.peer_id));
    for (key, value) in [(&k1, "v1"), (&k2, "w1")] {
        a.send(&format!("put {key} {value}"));
        a.expect("put", is("put", key));
        for node in [&mut *b, &mut c] {
            node.send(&format!("sub {key}"));
            node.expect("the value", updated(key, value, "fetch"));
        }
    }

    // Records received from peers are synced to disk in groups (within
    // the store flush interval); a local write is durable when `put`
    // answers, and makes every record received before it durable too.
    // Without it, SIGKILL right after the fetch could lose the fetched
    // records, and a lost record is a key C no longer follows.
    c.send("put note written before the crash");
    let note = c.expect("put", |l| l["event"] == "put")["key"].clone();

    let c_id = c.peer_id.clone();
    c.kill();
    b.expect("C gone", |l| {
        l["event"] == "disconnected" && l["peer_id"] == c_id.as_str()
    });
    for (key, value) in [(&k1, "v2"), (&k2, "w2")] {
        a.send(&format!("put {key} {value}"));
        b.expect("the update", updated(key, value, "gossip"));
    }

    // No --dial yet: first look at what C kept.
    let mut c = Node::start("C again", &["--data-dir", data]);
    assert_eq!(c.peer_id, c_id, "same identity after a restart");
    assert_eq!(c.started["records"], 3, "{}", c.started);
    c.send("list");
    let list = c.expect("list", |l| l["event"] == "list");
    let held: Vec<Value> = list["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| json!([r["key"], r["value"], r["following"]]))
        .collect();
    let mut kept = vec![
        json!([k1, "v1", true]),
        json!([k2, "w1", true]),
        json!([note, "written before the crash", true]),
    ];
    kept.sort_by_key(|r| r[0].as_str().unwrap().to_owned());
    assert_eq!(held, kept, "old records, followed again: {list}");

    c.send(&format!("dial {}", b.addr));
    c.expect("connected", connected_to(&b.peer_id));
    c.expect("the missed update of k1", updated(&k1, "v2", "fetch"));
    c.expect("the missed update of k2", updated(&k2, "w2", "fetch"));

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let key = std::fs::metadata(data_dir.join("identity.key")).expect("identity.key");
        assert_eq!(key.permissions().mode() & 0o777, 0o600);
    }
}

/// Each bad line gets exactly one error line in answer (the very next
/// line), and the node goes on answering.
#[test]
fn bad_input_gets_an_error_line_each_and_the_node_keeps_answering() {
    let mut n = Node::start("N", &[]);
    let other = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let oversize = "x".repeat(61 * 1024);
    let cases = [
        ("frobnicate", "frobnicate now".to_owned(), "unknown command"),
        ("put", "put lonely-key".to_owned(), "usage: put KEY VALUE"),
        ("put", "put".to_owned(), "usage: put KEY VALUE"),
        ("get", "get".to_owned(), "usage: get KEY"),
        ("del", "del two words".to_owned(), "usage: del KEY"),
        ("put", format!("put {other}/name hi"), "may not write"),
        ("del", format!("del {other}/name"), "may not write"),
        ("put", format!("put big {oversize}"), "exceeds the limit"),
        ("dial", "dial nowhere".to_owned(), "not a multiaddr"),
        ("list", "list all".to_owned(), "takes no arguments"),
    ];
    for (command, line, says) in &cases {
        n.send(line);
        let error = n.expect_next("an error", |l| l["event"] == "error");
        assert_eq!(error["command"], *command, "{error}");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(says), "{line:.40}: {message}");
    }
    // Lines that are no command at all: too long, not UTF-8.
    n.send(&"y".repeat(300 * 1024));
    let error = n.expect_next("an error", |l| l["event"] == "error");
    assert!(error["command"].is_null(), "{error}");
    n.send_raw(b"put k \xff\xfe");
    n.expect_next("an error", |l| l["event"] == "error");

    n.send("put name fine");
    n.expect("put", |l| l["event"] == "put" && l["owned_name"] == "name");
    n.send("get name");
    let get = n.expect("get", |l| l["event"] == "get");
    assert_eq!(
        (&get["status"], &get["value"]),
        (&json!("found"), &json!("fine"))
    );
    n.send("quit");
    let (rest, status) = n.wait_exit();
    assert_eq!(rest.last().map(|l| &l["event"]), Some(&json!("bye")));
    assert!(status.success(), "{status}");
}

/// Every line of `--json` output, for every command and the events of a
/// two-node exchange (over QUIC), is one JSON object; logs go to standard
/// error only. End of input stops a node like `quit`.
#[test]
fn json_output_is_one_object_per_line_and_logs_stay_on_stderr() {
    let quic = "/ip4/127.0.0.1/udp/0/quic-v1";
    let mut x = Node::start("X", &["--validator", "open", "--listen", quic]);
    assert!(x.addr.contains("/quic-v1/p2p/"), "{}", x.addr);
    let mut y = Node::start("Y", &["--listen", quic]);
    y.send(&format!("dial {}", x.addr));
    y.expect("dialing", |l| l["event"] == "dialing");
    y.expect("connected", connected_to(&x.peer_id));
    x.expect("connected", connected_to(&y.peer_id));

    // X (open validator) may write any key, even one named for Y; Y
    // (owned) refuses that forgery when it asks X for the key.
    let forged = format!("{}/forged", y.peer_id);
    x.send(&format!("put {forged} hello"));
    x.expect("put", is("put", &forged));
    y.send("sub forged");
    y.expect("sub", is("sub", &forged));
    let rejected = y.expect("rejected", is("rejected", &forged));
    assert_eq!(rejected["peer_id"], x.peer_id.as_str());
    assert!(rejected["reason"]
        .as_str()
        .unwrap()
        .contains("may not write"));

    // A value of Y's: X gets it, hears its update and its delete.
    let mine = format!("{}/mine", y.peer_id);
    y.send("put mine hi there");
    y.expect("put", is("put", &mine));
    x.send(&format!("get {mine}"));
    let get = x.expect("get", is("get", &mine));
    assert_eq!(get["value"], "hi there", "{get}");
    y.send("put mine bye now");
    x.expect("the update", updated(&mine, "bye now", "gossip"));
    y.send("del mine");
    y.expect("del", is("del", &mine));
    x.expect("the delete", is("deleted", &mine));

    for command in [
        "list",
        "peers",
        "id",
        "addrs",
        "help",
        "unsub forged",
        "nonsense",
    ] {
        for node in [&mut x, &mut y] {
            node.send(command);
            let word = command.split(' ').next().unwrap();
            node.expect(word, |l| l["event"] == word || l["event"] == "error");
        }
    }

    y.send("quit");
    let (_, status) = y.wait_exit();
    assert!(status.success(), "{status}");
    x.expect("Y gone", |l| l["event"] == "disconnected");
    x.close_stdin();
    let (rest, status) = x.wait_exit();
    assert!(status.success(), "{status}");
    assert_eq!(rest.last().map(|l| &l["event"]), Some(&json!("bye")));

    // The harness parsed every line as one JSON object with an "event".
    let mut seen = x.events_seen.clone();
    seen.extend(y.events_seen.iter().cloned());
    let expected = [
        "addrs",
        "bye",
        "connected",
        "del",
        "deleted",
        "dialing",
        "disconnected",
        "error",
        "get",
        "help",
        "id",
        "list",
        "listening",
        "peers",
        "publish_failed",
        "put",
        "rejected",
        "started",
        "sub",
        "unsub",
        "updated",
    ];
    let missing: Vec<&str> = expected
        .into_iter()
        .filter(|e| !seen.contains(*e))
        .collect();
    assert!(missing.is_empty(), "never printed: {missing:?}");
    // Logs (RUST_LOG=info) went to standard error, in plain text.
    assert!(y.stderr().contains("local_peer_id"), "{}", y.stderr());
    assert!(!y.stderr().contains('\x1b'), "no colour codes in a pipe");
}

/// Without `--json` the answers are readable text.
#[test]
fn without_json_the_output_is_readable_text() {
    let mut command = Command::new(node_binary());
    command.args(["--no-mdns", "--listen", LOOPBACK_TCP]);
    let mut n = Node::spawn("H", command, false);
    let banner = n.expect("the banner", |l| text(l).starts_with("node 12D3"));
    let id = text(&banner)["node ".len()..].to_owned();
    n.expect("the address", |l| {
        text(l).starts_with("listening on /ip4/127.0.0.1/tcp/") && text(l).ends_with(&id)
    });
    n.send("put greeting hello world");
    let put = format!("put {id}/greeting = \"hello world\" (your owned key for \"greeting\")");
    n.expect("the put", |l| text(l) == put);
    n.send("get greeting");
    let get = format!("{id}/greeting = \"hello world\"");
    n.expect("the get", |l| text(l) == get);
    n.send("bogus");
    n.expect("an error", |l| {
        text(l) == "error: unknown command \"bogus\"; type help"
    });
    // Keys come from peers too: one holding a terminal escape is shown
    // quoted and escaped, never raw, so it cannot drive the terminal or
    // fake a line of output.
    n.send("sub a\x1b[2Jb");
    let escaped = format!("following \"{id}/a\\u{{1b}}[2Jb\"");
    n.expect("the escaped key", |l| text(l) == escaped);
}

/// `--max-records` and `--max-value-bytes` set the store's limits: past
/// them a `put` gets an error line and nothing changes.
#[test]
fn store_limits_are_flags() {
    let mut n = Node::start(
        "N",
        &["--max-records", "2", "--max-value-bytes", "8", "--no-dht"],
    );
    for name in ["a", "b"] {
        n.send(&format!("put {name} v"));
        n.expect("put", |l| l["event"] == "put");
    }
    n.send("put c v");
    let error = n.expect("an error", |l| l["event"] == "error");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("maximum of 2"),
        "{error}"
    );
    n.send("put a 123456789");
    let error = n.expect("an error", |l| l["event"] == "error");
    assert!(
        error["message"].as_str().unwrap_or_default().contains("8"),
        "{error}"
    );
    let list = n.list();
    assert_eq!(list.len(), 2, "{list:?}");
    assert!(
        list.values().all(|(v, _)| v.as_deref() == Some("v")),
        "{list:?}"
    );
}

/// `--max-connections-per-ip`: with a bound of one, a second node dialing
/// from the same address (127.0.0.1) is turned away, whatever identity it
/// presents, and the first stays connected.
#[test]
fn connections_from_one_ip_address_are_bounded() {
    a_second_node_from_the_same_address_is_turned_away("--max-connections-per-ip");
}

/// `--max-new-connections-per-ip`: with a bound of one per 10 s, a second
/// node dialing from the same address right after the first is refused
/// before its handshake.
#[test]
fn new_connections_from_one_ip_address_are_rate_limited() {
    a_second_node_from_the_same_address_is_turned_away("--max-new-connections-per-ip");
}

/// A node with `flag` set to 1; X and then Y dial it from 127.0.0.1: X
/// connects, Y is turned away, and X is the only peer.
fn a_second_node_from_the_same_address_is_turned_away(flag: &str) {
    let mut t = Node::start("T", &[flag, "1"]);
    let x = Node::start("X", &["--dial", &t.addr]);
    t.expect("X connects", connected_to(&x.peer_id));
    let mut y = Node::start("Y", &["--dial", &t.addr]);
    y.expect("Y turned away", |l| {
        l["event"] == "disconnected"
            || (l["event"] == "error" && l["message"].as_str().is_some_and(|m| m.contains("dial")))
    });
    t.send("peers");
    let peers = t.expect("the peers", |l| l["event"] == "peers");
    let ids: Vec<&str> = peers["peers"]
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["peer_id"].as_str())
        .collect();
    assert_eq!(ids, [x.peer_id.as_str()], "only X is connected");
}

/// `--topic-shards`: two nodes that spread keys over 16 shard topics say
/// so at start, and a key one writes reaches the other by fetch when it
/// follows the key and by gossip after that. An impossible count is
/// refused at start.
#[test]
fn keys_travel_between_nodes_on_shard_topics() {
    let args = ["--validator", "open", "--no-dht", "--topic-shards", "16"];
    let mut a = Node::start("A", &args);
    assert_eq!(a.started["topic_shards"], 16, "{}", a.started);
    let mut b = Node::start("B", &[&args[..], &["--dial", &a.addr]].concat());
    b.expect("connected", connected_to(&a.peer_id));
    a.send("put colour blue");
    a.expect("put", is("put", "colour"));
    b.send("sub colour");
    b.expect("blue by fetch", updated("colour", "blue", "fetch"));
    a.send("put colour green");
    b.expect("green by gossip", updated("colour", "green", "gossip"));

    let too_many = Command::new(node_binary())
        .args(["--no-mdns", "--topic-shards", "5000"])
        .output()
        .expect("run the node");
    assert!(!too_many.status.success());
    let stderr = String::from_utf8_lossy(&too_many.stderr);
    assert!(stderr.contains("topic_shards"), "{stderr}");
}

/// Following many keys at once: `sub` with several keys and `sub-file`
/// print one line for all of them and catch every key up; a key over the
/// size limit in either refuses the whole command and follows nothing.
#[test]
fn many_keys_are_followed_by_one_line_or_one_file() {
    let args = ["--validator", "open", "--no-dht"];
    let mut a = Node::start("A", &args);
    let mut b = Node::start("B", &[&args[..], &["--dial", &a.addr]].concat());
    b.expect("connected", connected_to(&a.peer_id));
    let keys: Vec<String> = (0..6).map(|i| format!("k{i}")).collect();
    for key in &keys {
        a.send(&format!("put {key} v-{key}"));
        a.expect("put", is("put", key));
    }
    let too_long = "x".repeat(600);
    b.send(&format!("sub k0 {too_long}"));
    b.expect("the refusal", |l| {
        l["event"] == "error" && l["command"] == "sub"
    });
    b.send("sub k0 k1 k2");
    let line = b.expect("sub_many", |l| l["event"] == "sub_many");
    assert_eq!(
        (line["keys"].as_u64(), line["new"].as_u64()),
        (Some(3), Some(3))
    );
    let file = std::env::temp_dir().join(format!("pointer-sub-file-{}.txt", std::process::id()));
    std::fs::write(&file, "# the rest\nk2\nk3\n\nk4\nk5\n").expect("write the key file");
    b.send(&format!("sub-file {}", file.display()));
    let line = b.expect("sub_many", |l| l["event"] == "sub_many");
    assert_eq!(
        (line["keys"].as_u64(), line["new"].as_u64()),
        (Some(4), Some(3))
    );
    std::fs::remove_file(&file).ok();
    for key in &keys {
        b.expect(
            "the key by fetch",
            updated(key, &format!("v-{key}"), "fetch"),
        );
    }
    b.send("sub-file /nonexistent/pointer-keys.txt");
    b.expect("the error", |l| {
        l["event"] == "error" && l["command"] == "sub-file"
    });
    b.send("unsub k0 k1 nothing");
    let line = b.expect("unsub_many", |l| l["event"] == "unsub_many");
    assert_eq!(
        (line["keys"].as_u64(), line["were_following"].as_u64()),
        (Some(3), Some(2))
    );
}

/// A delete of a key both nodes hold deleted reaches the other within 2 s
/// (no topic carries it: both left the key's topic on the first delete).
#[test]
fn a_second_delete_reaches_the_other_node_within_two_seconds() {
    let args = ["--validator", "open", "--no-dht"];
    let mut a = Node::start("A", &args);
    let mut b = Node::start("B", &[&args[..], &["--dial", &a.addr]].concat());
    b.expect("connected", connected_to(&a.peer_id));
    a.send("put doc draft");
    a.expect("put", is("put", "doc"));
    b.send("sub doc");
    b.expect("the value", updated("doc", "draft", "fetch"));
    a.send("del doc");
    let first = a.expect("del", is("del", "doc"))["time"].as_i64();
    b.expect("the first delete", |l| {
        l["event"] == "deleted" && l["key"] == "doc" && l["time"].as_i64() == first
    });
    a.send("del doc");
    let second = a.expect("del", is("del", "doc"))["time"].as_i64();
    assert!(second > first);
    let started = std::time::Instant::now();
    b.expect("the second delete", |l| {
        l["event"] == "deleted" && l["key"] == "doc" && l["time"].as_i64() == second
    });
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

/// Follows survive a restart on the data directory, also of keys no
/// record of had arrived yet (the store alone would not bring those
/// back), and an unfollow survives too: after `kill -9` and a restart,
/// the node hears the first write of the key it followed in advance and
/// not the one it unfollowed.
#[cfg(feature = "redb")]
#[test]
fn follows_survive_a_restart_even_of_keys_without_a_record() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("n");
    let data = data.to_str().expect("UTF-8 path");
    let args = ["--validator", "open", "--no-dht"];
    let mut n = Node::start("N", &[&args[..], &["--data-dir", data]].concat());
    n.send("sub later dropped");
    n.expect("sub_many", |l| l["event"] == "sub_many");
    n.send("unsub dropped");
    n.expect("unsub", is("unsub", "dropped"));
    n.kill();

    let mut n = Node::start("N again", &[&args[..], &["--data-dir", data]].concat());
    let mut w = Node::start("W", &[&args[..], &["--dial", &n.addr]].concat());
    w.expect("connected", connected_to(&n.peer_id));
    w.send("put dropped no");
    w.expect("put", is("put", "dropped"));
    w.send("put later yes");
    w.expect("put", is("put", "later"));
    n.expect("the key followed before the restart", |l| {
        l["event"] == "updated" && l["key"] == "later" && l["value"] == "yes"
    });
    let list = n.list();
    assert!(list.contains_key("later"), "{list:?}");
    assert!(
        !list.contains_key("dropped"),
        "an unfollowed key came: {list:?}"
    );
}

/// A node redials the peers it was told to dial when they are lost: B
/// dialed A at start; A is killed and restarted on its data directory and
/// port; B connects to it again with no command, and a write on A reaches
/// B.
#[cfg(feature = "redb")]
#[test]
fn a_lost_peer_given_with_dial_is_dialed_again() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("a");
    let data = data.to_str().expect("UTF-8 path");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let listen = format!("/ip4/127.0.0.1/tcp/{port}");
    let a_args = [
        "--validator",
        "open",
        "--no-dht",
        "--data-dir",
        data,
        "--listen",
        &listen,
    ];
    let mut a = Node::start("A", &a_args);
    let args = ["--validator", "open", "--no-dht"];
    let mut b = Node::start("B", &[&args[..], &["--dial", &a.addr]].concat());
    b.expect("connected", connected_to(&a.peer_id));
    b.send("sub doc");
    b.expect("sub", is("sub", "doc"));
    let a_id = a.peer_id.clone();
    a.kill();
    b.expect("A gone", |l| {
        l["event"] == "disconnected" && l["peer_id"] == a_id.as_str()
    });
    let mut a = Node::start("A again", &a_args);
    assert_eq!(a.peer_id, a_id);
    b.expect("connected again", connected_to(&a.peer_id));
    a.send("put doc back");
    a.expect("put", is("put", "doc"));
    b.expect("the write", |l| {
        l["event"] == "updated" && l["key"] == "doc" && l["value"] == "back"
    });
}
