//! A node follows many keys the way a user follows them, through the node
//! program: `cargo bench --all-features --bench follow`.
//!
//! Two node processes on 127.0.0.1 (release builds, default flags but
//! `--no-mdns --validator open --max-records 2000000`, `--no-dht` when
//! `POINTER_FOLLOW_DHT=0`): A puts K keys with 100-byte values; B dials A
//! and follows them all, in one of these ways:
//!
//! - `lines`: one `sub KEY` line per key, as a user pasting a list would;
//! - `bulk`: `sub` lines of 1,000 keys each;
//! - `file`: one `sub-file PATH` naming a file of the K keys.
//!
//! Measured: the catch-up (first follow sent until B holds all K), B's CPU
//! during it, one update A → B after it, both nodes' idle CPU over 20 s
//! starting 30 s after that update (their steady state), resident memory
//! per key (A's growth over its puts, B's from before the follows), and the
//! `Send Queue full` warnings either node logged (gossipsub dropping what
//! it could not queue). `POINTER_FOLLOW_K=10000,50000` (default) sets the
//! sizes, `POINTER_FOLLOW_MODES=lines,bulk,file` the ways,
//! `POINTER_FOLLOW_ARGS` more flags for both nodes (`--topic-shards 256`),
//! `POINTER_NODE_BIN` another build of the node.

#[allow(dead_code)]
#[path = "../tests/process/mod.rs"]
mod process;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use process::{connected_to, env_list, Node};

/// Longest catch-up waited for.
const CATCH_UP: Duration = Duration::from_secs(180);
/// How long after the update idle CPU starts to be measured: the nodes'
/// steady state, past the flushes and asks that follow a large catch-up
/// (nothing prints when they end, so this is a wait, not an event).
const SETTLE: Duration = Duration::from_secs(30);
/// How long idle CPU is measured.
const IDLE: Duration = Duration::from_secs(20);

fn key(i: usize) -> String {
    format!("k/{i:07}")
}

struct Row {
    k: usize,
    mode: String,
    catch_up: Option<Duration>,
    held: usize,
    cpu_b: f64,
    idle_b: f64,
    idle_a: f64,
    update: Option<Duration>,
    bytes_per_key: f64,
    a_bytes_per_key: f64,
    queue_full: usize,
}

fn run(k: usize, mode: &str, dht: bool) -> Row {
    let mut args = vec!["--validator", "open", "--max-records", "2000000"];
    if !dht {
        args.push("--no-dht");
    }
    let extra = std::env::var("POINTER_FOLLOW_ARGS").unwrap_or_default();
    args.extend(extra.split_whitespace());
    let mut a = Node::start("a", &args);
    let a_rss_before = a.resident_bytes().unwrap_or(0);
    let value = "v".repeat(100);
    for i in 0..k {
        a.send(&format!("put {} {value}", key(i)));
    }
    let last = key(k - 1);
    a.watch_within("the last put", CATCH_UP, |l| {
        l["event"] == "put" && l["key"] == last.as_str()
    });
    let a_bytes_per_key =
        a.resident_bytes().unwrap_or(0).saturating_sub(a_rss_before) as f64 / k as f64;
    let mut b = Node::start("b", &args);
    b.send(&format!("dial {}", a.addr));
    b.expect("connected", connected_to(&a.peer_id));
    let rss_before = b.resident_bytes().unwrap_or(0);
    let cpu_before = b.cpu_seconds().unwrap_or(0.0);
    let started = Instant::now();
    follow(&mut b, k, mode);
    let mut held = HashSet::with_capacity(k);
    let mut caught_up = None;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        b.watch_within("every key", CATCH_UP, |l| {
            if l["event"] == "updated" {
                if let Some(key) = l["key"].as_str() {
                    held.insert(key.to_owned());
                }
            }
            held.len() >= k
        })
    }));
    if result.is_ok() {
        caught_up = Some(started.elapsed());
    }
    let cpu_b = b.cpu_seconds().unwrap_or(0.0) - cpu_before;
    let rss_after = b.resident_bytes().unwrap_or(0);
    let update = caught_up.map(|_| {
        let at = Instant::now();
        a.send(&format!("put {} after", key(0)));
        let k0 = key(0);
        b.watch_within("the update", Duration::from_secs(30), |l| {
            l["event"] == "updated" && l["key"] == k0.as_str() && l["value"] == "after"
        });
        at.elapsed()
    });
    std::thread::sleep(SETTLE);
    let (a0, b0) = (
        a.cpu_seconds().unwrap_or(0.0),
        b.cpu_seconds().unwrap_or(0.0),
    );
    std::thread::sleep(IDLE);
    let idle = |now: f64, then: f64| (now - then) / IDLE.as_secs_f64() * 100.0;
    let idle_a = idle(a.cpu_seconds().unwrap_or(0.0), a0);
    let idle_b = idle(b.cpu_seconds().unwrap_or(0.0), b0);
    let queue_full = [&a, &b]
        .iter()
        .map(|n| {
            let stderr = n.stderr();
            let mut lines = stderr.lines().filter(|l| l.contains("Send Queue full"));
            if let Some(first) = lines.next() {
                eprintln!("{}: {}", n.name, &first[..first.len().min(400)]);
            }
            stderr.matches("Send Queue full").count()
        })
        .sum();
    Row {
        k,
        mode: mode.to_owned(),
        catch_up: caught_up,
        held: held.len(),
        cpu_b,
        idle_b,
        idle_a,
        update,
        bytes_per_key: rss_after.saturating_sub(rss_before) as f64 / k as f64,
        a_bytes_per_key,
        queue_full,
    }
}

/// Follows `k` keys on `b` the way `mode` says.
fn follow(b: &mut Node, k: usize, mode: &str) {
    match mode {
        "lines" => {
            for i in 0..k {
                b.send(&format!("sub {}", key(i)));
            }
        }
        "bulk" => {
            for chunk in (0..k).collect::<Vec<_>>().chunks(1000) {
                let keys: Vec<String> = chunk.iter().map(|i| key(*i)).collect();
                b.send(&format!("sub {}", keys.join(" ")));
            }
        }
        "file" => {
            let path = std::env::temp_dir().join(format!("pointer-follow-{k}.txt"));
            let keys: Vec<String> = (0..k).map(key).collect();
            std::fs::write(&path, keys.join("\n")).expect("write the key file");
            b.send(&format!("sub-file {}", path.display()));
        }
        other => panic!("unknown mode {other}: lines, bulk or file"),
    }
}

fn main() {
    let binary = process::node_binary();
    eprintln!("node: {}", binary.display());
    let dht = std::env::var("POINTER_FOLLOW_DHT").map_or(true, |v| v != "0");
    let mut rows = Vec::new();
    for k in env_list("POINTER_FOLLOW_K", "10000,50000") {
        let k: usize = k.parse().expect("POINTER_FOLLOW_K: numbers");
        for mode in env_list("POINTER_FOLLOW_MODES", "lines,bulk,file") {
            let row = run(k, &mode, dht);
            eprintln!("done: {k} {mode}");
            rows.push(row);
        }
    }
    println!(
        "\n| keys | followed by | catch-up | B CPU during | idle CPU after, A / B | one update after | memory per key, A / B | `Send Queue full` |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let catch_up = match r.catch_up {
            Some(d) => format!("{:.2} s", d.as_secs_f64()),
            None => format!("{} of {} in {} s", r.held, r.k, CATCH_UP.as_secs()),
        };
        let update = r.update.map_or("-".to_owned(), |d| {
            format!("{:.0} ms", d.as_secs_f64() * 1000.0)
        });
        println!(
            "| {} | {} | {} | {:.1} s | {:.1} % / {:.1} % | {} | {:.0} B / {:.0} B | {} |",
            r.k,
            r.mode,
            catch_up,
            r.cpu_b,
            r.idle_a,
            r.idle_b,
            update,
            r.a_bytes_per_key,
            r.bytes_per_key,
            r.queue_full
        );
    }
}
