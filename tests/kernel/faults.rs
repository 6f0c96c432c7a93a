//! Faults from the kernel: node processes, each in a network namespace of
//! its own, linked by veth pairs in a line or, on even seeds, a ring (real
//! TCP between real interfaces, no loopback). Partitions take a link down
//! or drop its packets with nftables; crashes are `kill -9`, and the node
//! restarts on its data directory; each node's clock is skewed by
//! libfaketime (up to 40 s either way, the same across its restarts).
//! Writers put and delete on random nodes while faults come and go; after
//! the last heal every node must hold the same record (value, time and
//! author) of every key, the newest acknowledged write or delete, within
//! 10 s: no acknowledged write lost, no deleted value back, nothing nobody
//! wrote. Nobody dials for the nodes: they find each other again
//! themselves (each redials the neighbours it was started with).
//!
//! Needs root, iproute2's `ip`, nftables' `nft` and libfaketime (Debian's
//! `faketime` package); `.ci/run` installs them and runs it as root:
//! `cargo test --all-features --test kernel faults:: -- --ignored --nocapture`.
//! Without them it says it is skipped. `POINTER_FAULT_SEEDS=1,2,3,4,5`
//! (the default) picks the seeds; each prints its own, so a failure
//! replays with that seed alone.

#![cfg(feature = "redb")]

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::process::netns::{can_make_namespaces, has_nft, Namespaces};
use crate::process::{connected_to, env_list, node_binary, Node};
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};

/// Nodes in the line or ring.
const NODES: usize = 6;
/// Keys written.
const KEYS: usize = 4;
/// Fault and write steps per seed.
const STEPS: usize = 24;
/// How long the nodes may take to agree after the last heal.
const AGREE_WITHIN: Duration = Duration::from_secs(10);
/// Every node listens on this port, inside its own namespace.
const PORT: u16 = 4001;
/// Clock skews a node may get, in seconds (within the library's default
/// `max_clock_skew` of 5 minutes, so every write is accepted).
const SKEWS: [i64; 5] = [-40, -15, 0, 15, 40];

/// How a link is cut.
#[derive(Clone, Copy, Debug)]
enum Cut {
    /// Both ends down: connections fail at once.
    Down,
    /// nftables drops every packet on both ends: connections hang.
    Drop,
}

/// The namespaces and links of one run; removed when dropped. Link `i`
/// joins node `i` (10.231.i.1) and node `i + 1` (10.231.i.2), the last
/// link of a ring node `NODES - 1` and node 0.
struct Net {
    spaces: Namespaces,
    links: usize,
}

impl Net {
    fn new(seed: u64, ring: bool) -> Net {
        let mut spaces = Namespaces::new(format!("ptf{}s{seed}", std::process::id()));
        for i in 0..NODES {
            spaces.add(&format!("n{i}"));
        }
        let links = if ring { NODES } else { NODES - 1 };
        let net = Net { spaces, links };
        for i in 0..links {
            let (a, b) = (net.end(i, 'a'), net.end(i, 'b'));
            net.spaces.link(
                (&format!("n{i}"), &a, &format!("10.231.{i}.1/30")),
                (
                    &format!("n{}", (i + 1) % NODES),
                    &b,
                    &format!("10.231.{i}.2/30"),
                ),
            );
        }
        net
    }

    fn end(&self, link: usize, side: char) -> String {
        // Interface names hold at most 15 bytes.
        format!("ptf{}{link}{side}", std::process::id() % 100_000)
    }

    /// The two ends of link `i`: (namespace, interface).
    fn ends(&self, i: usize) -> [(String, String); 2] {
        [
            (format!("n{i}"), self.end(i, 'a')),
            (format!("n{}", (i + 1) % NODES), self.end(i, 'b')),
        ]
    }

    /// Cuts link `i` the way `cut` says, or heals it.
    fn set(&self, i: usize, cut: Cut, healed: bool) {
        for (ns, end) in self.ends(i) {
            match cut {
                Cut::Down => self.spaces.set_link(&ns, &end, healed),
                Cut::Drop if healed => {
                    self.spaces
                        .exec(&ns, "nft", &["delete", "table", "inet", &format!("cut{i}")]);
                }
                Cut::Drop => {
                    let rules = format!(
                        "table inet cut{i} {{
                           chain input {{ type filter hook input priority filter; iifname \"{end}\" drop; }}
                           chain output {{ type filter hook output priority filter; oifname \"{end}\" drop; }}
                         }}"
                    );
                    self.spaces.exec(&ns, "nft", &[&rules]);
                }
            }
        }
    }
}

/// Whether this process can run the suite: root, `ip`, `nft`, libfaketime.
fn can_run() -> bool {
    can_make_namespaces() && has_nft() && libfaketime().is_some()
}

/// libfaketime's library, where Debian and others install it, preloaded
/// into the node directly rather than through the `faketime` wrapper (see
/// [`sweep_faketime_leftovers`]).
fn libfaketime() -> Option<std::path::PathBuf> {
    let name = "faketime/libfaketime.so.1";
    let mut dirs = vec![
        std::path::PathBuf::from("/usr/lib"),
        "/usr/local/lib".into(),
        "/usr/lib64".into(),
    ];
    if let Ok(entries) = std::fs::read_dir("/usr/lib") {
        // Debian's multiarch folders, such as `x86_64-linux-gnu`.
        dirs.extend(entries.flatten().map(|e| e.path()));
    }
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// libfaketime (0.9.10) keeps a semaphore and a shared memory object per
/// process in `/dev/shm`, named by the process id, and a `kill -9` leaves
/// them behind; a later process that gets the same id then fails to start
/// ("sem_open: File exists", seen once the folder held a thousand such
/// leftovers). Those of processes no longer running are removed before
/// each node starts.
fn sweep_faketime_leftovers() {
    let Ok(entries) = std::fs::read_dir("/dev/shm") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let pid = name
            .strip_prefix("sem.faketime_sem_")
            .or_else(|| name.strip_prefix("faketime_shm_"));
        if let Some(pid) = pid {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Node `i`, started in its namespace on its data directory with its
/// clock `skew` seconds off, dialing `dials`.
fn start(net: &Net, dirs: &[std::path::PathBuf], i: usize, skew: i64, dials: &[String]) -> Node {
    sweep_faketime_leftovers();
    let mut command = net.spaces.command(&format!("n{i}"), node_binary());
    command
        .env("LD_PRELOAD", libfaketime().expect("checked by can_run"))
        .env("FAKETIME", format!("{skew:+}s"))
        .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    let listen = format!("/ip4/0.0.0.0/tcp/{PORT}");
    let data = dirs[i].to_str().expect("UTF-8 path");
    command.args(["--json", "--no-mdns", "--no-dht", "--validator", "open"]);
    command.args(["--listen", &listen, "--data-dir", data]);
    for dial in dials {
        command.args(["--dial", dial]);
    }
    Node::start_command(&format!("n{i}"), command)
}

/// The addresses node `i` dials: node `i - 1`, and in a ring the last
/// node dials node 0 too. `peers[j]` is node `j`'s peer id.
fn dials_of(i: usize, ring: bool, peers: &[String]) -> Vec<String> {
    let mut dials = Vec::new();
    if i > 0 {
        dials.push(format!(
            "/ip4/10.231.{}.1/tcp/{PORT}/p2p/{}",
            i - 1,
            peers[i - 1]
        ));
    }
    if ring && i == NODES - 1 {
        dials.push(format!("/ip4/10.231.{i}.2/tcp/{PORT}/p2p/{}", peers[0]));
    }
    dials
}

/// The newest acknowledged write or delete of a key: its time and the
/// values written at that time (`None`: deleted). Two writes on skewed
/// clocks can share a millisecond; the order then picks one, either of
/// which is right as long as every node holds the same.
type Acked = BTreeMap<String, (i64, Vec<Option<String>>)>;

/// A node's record of a key: value (`None`: deleted), time, author.
type Held = BTreeMap<String, (Option<String>, i64, String)>;

/// Writes (`put`, or `del` one time in five) `key` on `node`, and records
/// it in `acked` if the node took it.
fn write(node: &mut Node, key: &str, value: &str, delete: bool, acked: &mut Acked) {
    let (line, answer) = if delete {
        (format!("del {key}"), "del")
    } else {
        (format!("put {key} {value}"), "put")
    };
    node.send(&line);
    let done = node.expect(answer, |l| l["event"] == answer || l["event"] == "error");
    if done["event"] == "error" {
        eprintln!("{}: {line}: {done}", node.name);
        return;
    }
    let time = done["time"].as_i64().expect("time");
    let outcome = (!delete).then(|| value.to_owned());
    let entry = acked.entry(key.to_owned()).or_insert((time, Vec::new()));
    if time > entry.0 {
        *entry = (time, Vec::new());
    }
    if time == entry.0 {
        entry.1.push(outcome);
    }
}

fn run(seed: u64) {
    let ring = seed.is_multiple_of(2);
    let mut rng = SmallRng::seed_from_u64(seed);
    let skews: Vec<i64> = (0..NODES)
        .map(|_| SKEWS[rng.random_range(0..SKEWS.len())])
        .collect();
    eprintln!(
        "fault seed {seed}: a {} of {NODES}, clock skews {skews:?} s",
        if ring { "ring" } else { "line" }
    );
    let net = Net::new(seed, ring);
    let dir = tempfile::tempdir().expect("temp dir");
    let dirs: Vec<_> = (0..NODES)
        .map(|i| dir.path().join(format!("n{i}")))
        .collect();
    let keys: Vec<String> = (0..KEYS).map(|k| format!("k{k}")).collect();
    let mut nodes: Vec<Option<Node>> = Vec::new();
    let mut peers: Vec<String> = Vec::new();
    for (i, skew) in skews.iter().enumerate() {
        let mut node = start(&net, &dirs, i, *skew, &dials_of(i, ring, &peers));
        for j in [i.checked_sub(1), (ring && i == NODES - 1).then_some(0)]
            .into_iter()
            .flatten()
        {
            node.expect("connected", connected_to(&peers[j]));
        }
        node.send(&format!("sub {}", keys.join(" ")));
        node.expect("sub_many", |l| l["event"] == "sub_many");
        peers.push(node.peer_id.clone());
        nodes.push(Some(node));
    }
    let mut acked = Acked::new();
    let mut cuts: Vec<Option<Cut>> = vec![None; net.links];
    for step in 0..STEPS {
        match rng.random_range(0..10) {
            0..=4 => {
                let i = rng.random_range(0..NODES);
                let Some(node) = nodes[i].as_mut() else {
                    continue;
                };
                let key = &keys[rng.random_range(0..KEYS)];
                let delete = rng.random_range(0..5) == 0;
                write(
                    node,
                    key,
                    &format!("s{seed}w{step}n{i}"),
                    delete,
                    &mut acked,
                );
            }
            5..=7 => {
                let link = rng.random_range(0..net.links);
                match cuts[link].take() {
                    Some(cut) => net.set(link, cut, true),
                    None => {
                        let cut = if rng.random_range(0..2) == 0 {
                            Cut::Down
                        } else {
                            Cut::Drop
                        };
                        net.set(link, cut, false);
                        cuts[link] = Some(cut);
                    }
                }
            }
            _ => {
                let i = rng.random_range(0..NODES);
                match nodes[i].take() {
                    Some(mut node) => node.kill(),
                    None => {
                        nodes[i] = Some(start(&net, &dirs, i, skews[i], &dials_of(i, ring, &peers)))
                    }
                }
            }
        }
        // The faults last a while: a partition of a few milliseconds
        // would test nothing. This wait is the schedule, not a guess at
        // when something is done.
        std::thread::sleep(Duration::from_millis(rng.random_range(50..700)));
    }
    // The last heal: every link up, every node running.
    for (link, cut) in cuts.iter().enumerate() {
        if let Some(cut) = cut {
            net.set(link, *cut, true);
        }
    }
    let mut nodes: Vec<Node> = nodes
        .into_iter()
        .enumerate()
        .map(|(i, node)| {
            node.unwrap_or_else(|| start(&net, &dirs, i, skews[i], &dials_of(i, ring, &peers)))
        })
        .collect();
    let healed = Instant::now();
    agree(&mut nodes, &acked, healed, seed);
}

/// Each node's records of the keys written, from its `list`.
fn held(node: &mut Node, acked: &Acked) -> Held {
    node.send("list");
    let list = node.expect("list", |l| l["event"] == "list");
    list["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| {
            let key = r["key"].as_str()?.to_owned();
            acked.contains_key(&key).then(|| {
                let value = r["value"].as_str().map(str::to_owned);
                let time = r["time"].as_i64().unwrap_or_default();
                let author = r["author"].as_str().unwrap_or_default().to_owned();
                (key, (value, time, author))
            })
        })
        .collect()
}

/// Whether `held` is the newest acknowledged write of every key.
fn is_newest(held: &Held, acked: &Acked) -> bool {
    acked.iter().all(|(key, (time, values))| {
        held.get(key)
            .is_some_and(|(value, t, _)| t == time && values.contains(value))
    })
}

/// Waits until every node holds the same record of every key written, the
/// newest acknowledged one, within [`AGREE_WITHIN`] of `healed`.
/// Agreement is a state of all nodes, not one event: each node's `list` is
/// read every 250 ms until it holds.
fn agree(nodes: &mut [Node], acked: &Acked, healed: Instant, seed: u64) {
    loop {
        let views: Vec<Held> = nodes.iter_mut().map(|n| held(n, acked)).collect();
        let newest = views.iter().all(|v| is_newest(v, acked));
        let identical = views.windows(2).all(|w| w[0] == w[1]);
        if newest && identical {
            eprintln!(
                "seed {seed}: {} keys ({} deleted) identical on {} nodes {:?} after the last heal",
                acked.len(),
                views[0].values().filter(|(v, _, _)| v.is_none()).count(),
                nodes.len(),
                healed.elapsed()
            );
            return;
        }
        assert!(
            healed.elapsed() < AGREE_WITHIN,
            "seed {seed}: records still differ {:?} after the last heal;\nwanted {acked:?}\nheld {views:#?}",
            healed.elapsed()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
#[ignore = "needs root, iproute2, nftables and libfaketime; .ci/run runs it"]
fn lines_and_rings_of_nodes_under_kernel_faults_agree_after_the_last_heal() {
    let _alone = crate::alone();
    if !can_run() {
        eprintln!("SKIPPED: needs root, iproute2 (ip), nftables (nft) and libfaketime (faketime)");
        return;
    }
    for seed in env_list("POINTER_FAULT_SEEDS", "1,2,3,4,5") {
        run(seed.parse().expect("POINTER_FAULT_SEEDS: numbers"));
        sweep_faketime_leftovers();
    }
}
