//! Runs the `node` example as child processes and talks to them through
//! standard input and their `--json` output.

use std::collections::{BTreeSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

pub mod netns;

/// How long any one expected line may take. Generous: CI runs the tests of
/// this file in parallel, each with several debug-built nodes.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Every node listens here unless a test says otherwise.
pub const LOOPBACK_TCP: &str = "/ip4/127.0.0.1/tcp/0";

/// The node binary, built once per test run with this crate's features
/// and profile. Asks cargo where it put it, so CARGO_TARGET_DIR, a shared
/// target directory or a `--target` build all work.
///
/// `POINTER_NODE_BIN` names another build to run instead (the attack
/// bench runs an older commit's node this way, for its "before" column).
pub fn node_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| match std::env::var_os("POINTER_NODE_BIN") {
        Some(path) => PathBuf::from(path),
        None => build_node(),
    })
}

fn build_node() -> PathBuf {
    let mut cargo = Command::new(env!("CARGO"));
    // Without what cargo set for this test: build scripts that watch such
    // a variable (ring watches CARGO_MANIFEST_DIR) would otherwise rebuild
    // their crate and everything above it whenever the node was last
    // built from a shell, as `.ci/run` does.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_by_cargo = [
            "CARGO_PKG_",
            "CARGO_MANIFEST_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || ["CARGO_PRIMARY_PACKAGE", "CARGO_TARGET_TMPDIR", "OUT_DIR"].contains(&&*name);
        if set_by_cargo {
            cargo.env_remove(&*name);
        }
    }
    cargo.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--example",
        "node",
        "--message-format=json",
    ]);
    // The node needs kad (its DHT); redb and metrics only when the tests
    // have them.
    let mut features = vec!["kad"];
    if cfg!(feature = "redb") {
        features.push("redb");
    }
    if cfg!(feature = "metrics") {
        features.push("metrics");
    }
    cargo.args(["--no-default-features", "--features", &features.join(",")]);
    // Always the release build, as the README runs it: a debug build of
    // the libp2p stack costs about 20 times the CPU (30 nodes on a sparse
    // graph: 19.5 CPU seconds against 1.0, measured on 2026-12-07 on a
    // 2-core machine), so on two cores debug nodes measure the machine,
    // not the node.
    cargo.arg("--release");
    let output = cargo.output().expect("run cargo build");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo build --example node failed:\n{}{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "node")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo reported the node executable")
}

/// One running node. Killed (SIGKILL) when dropped, also when a test
/// panics; on a panic its output and logs are printed to help the reader.
pub struct Node {
    pub name: String,
    pub peer_id: String,
    /// The first address it printed, with `/p2p/<peer id>`: what others dial.
    pub addr: String,
    /// `started` as printed.
    pub started: Value,
    /// The `event` of every line read so far.
    pub events_seen: BTreeSet<String>,
    /// `false` for a node started without `--json`: lines are then given
    /// to `expect` as JSON strings, unparsed.
    json: bool,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Lines read but not yet matched by an `expect`, in order.
    pending: VecDeque<Value>,
    transcript: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Node {
    /// Starts a node with `--json --no-mdns`, listening on loopback TCP
    /// unless `args` has a `--listen`, and waits for its first address.
    pub fn start(name: &str, args: &[&str]) -> Node {
        let mut command = Command::new(node_binary());
        command.args(["--json", "--no-mdns"]).args(args);
        if !args.contains(&"--listen") {
            command.args(["--listen", LOOPBACK_TCP]);
        }
        Node::start_command(name, command)
    }

    /// Spawns `command`, a program that prints `--json` lines as the node
    /// does (`started` with `peer_id` first, then `listening` with an
    /// `address`), and waits for its first address. For a program other
    /// than the node, such as a benchmark's baseline.
    pub fn start_command(name: &str, command: Command) -> Node {
        let mut node = Node::spawn(name, command, true);
        node.started = node.expect("started", |l| l["event"] == "started");
        node.peer_id = node.started["peer_id"].as_str().unwrap().to_owned();
        let listening = node.expect("a listen address", |l| l["event"] == "listening");
        node.addr = listening["address"].as_str().unwrap().to_owned();
        node
    }

    /// Spawns `command` with piped standard streams and reader threads.
    /// `json`: whether it was given `--json`.
    pub fn spawn(name: &str, mut command: Command, json: bool) -> Node {
        let mut child = command
            // `NODE_LOG` (a `RUST_LOG` filter) turns on more of the
            // nodes' logs when a test is being looked into.
            .env(
                "RUST_LOG",
                std::env::var("NODE_LOG").unwrap_or_else(|_| "info".to_owned()),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut buf = [0; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Node {
            name: name.to_owned(),
            peer_id: String::new(),
            addr: String::new(),
            started: Value::Null,
            events_seen: BTreeSet::new(),
            json,
            stdin: child.stdin.take(),
            child,
            lines,
            pending: VecDeque::new(),
            transcript: Vec::new(),
            stderr,
        }
    }

    /// The node's resident memory, from `/proc` (Linux), in bytes. Only the
    /// flood test reads it.
    #[allow(dead_code)]
    pub fn resident_bytes(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// CPU time the node has used so far (user and system), from `/proc`
    /// (Linux).
    #[allow(dead_code)]
    pub fn cpu_seconds(&self) -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).ok()?;
        // Fields after the command name, which is in parentheses and may
        // hold spaces: state is the 3rd field, utime the 14th, stime 15th.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 =
            fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        // Linux reports in USER_HZ, 100 on every architecture it runs on.
        Some(ticks as f64 / 100.0)
    }

    /// Writes one line to the node's standard input.
    pub fn send(&mut self, line: &str) {
        self.send_raw(line.as_bytes());
    }

    /// Writes `bytes` and a newline, UTF-8 or not.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        let shown = shorten(&String::from_utf8_lossy(bytes));
        self.transcript.push(format!("> {shown}"));
        let stdin = self.stdin.as_mut().expect("stdin is open");
        stdin.write_all(bytes).expect("write to the node");
        stdin.write_all(b"\n").expect("write to the node");
        stdin.flush().expect("flush to the node");
    }

    /// Closes standard input: the node's end of input.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The first line, read now or earlier and not yet taken, for which
    /// `matches` holds. Panics after [`PATIENCE`].
    pub fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        if let Some(at) = self.pending.iter().position(&matches) {
            return self.pending.remove(at).unwrap();
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let line = self.next_line(deadline, what);
            if matches(&line) {
                return line;
            }
            self.pending.push_back(line);
        }
    }

    /// The very next line, which must satisfy `matches` (nothing else may
    /// come first). For answers on a node with no network traffic.
    pub fn expect_next(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        let line = match self.pending.pop_front() {
            Some(line) => line,
            None => self.next_line(Instant::now() + PATIENCE, what),
        };
        assert!(matches(&line), "{}: expected {what}, got {line}", self.name);
        line
    }

    /// The next line from the node, parsed: every line must be one JSON
    /// object with an `"event"` string.
    fn next_line(&mut self, deadline: Instant, what: &str) -> Value {
        let wait = deadline.saturating_duration_since(Instant::now());
        let raw = match self.lines.recv_timeout(wait) {
            Ok(raw) => raw,
            Err(RecvTimeoutError::Timeout) => {
                panic!("{}: no {what} in time", self.name)
            }
            Err(RecvTimeoutError::Disconnected) => {
                panic!("{}: output ended while waiting for {what}", self.name)
            }
        };
        self.parse(raw)
    }

    /// Every line of `--json` output must be one JSON object with an
    /// `"event"` string.
    fn parse(&mut self, raw: String) -> Value {
        self.transcript.push(shorten(&raw));
        if !self.json {
            return Value::String(raw);
        }
        let line: Value = serde_json::from_str(&raw)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {raw}", self.name));
        let event = line["event"].as_str();
        let event = event.unwrap_or_else(|| panic!("{}: no event: {raw}", self.name));
        self.events_seen.insert(event.to_owned());
        line
    }

    /// The lines left until the node exits on its own, and its exit
    /// status. Its output ends when the process does, so no polling.
    pub fn wait_exit(&mut self) -> (Vec<Value>, ExitStatus) {
        let mut rest: Vec<Value> = self.pending.drain(..).collect();
        let deadline = Instant::now() + PATIENCE;
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(raw) => {
                    let line = self.parse(raw);
                    rest.push(line);
                }
                Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => panic!("{} did not exit", self.name),
            }
        }
        (rest, self.child.wait().expect("wait for the node"))
    }

    /// SIGKILL: no chance to flush or say goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What the node logged on standard error so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!("---- {} ({}) stdout:", self.name, self.peer_id);
            for line in &self.transcript {
                eprintln!("{line}");
            }
            let stderr = self.stderr();
            // `NODE_LOG_DIR` keeps each failed test's node logs whole.
            if let Some(dir) = std::env::var_os("NODE_LOG_DIR") {
                let path = Path::new(&dir).join(format!("{}.log", self.name));
                let _ = std::fs::write(path, &stderr);
            }
            eprintln!("---- {} stderr (tail):", self.name);
            let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn shorten(line: &str) -> String {
    if line.len() <= 300 {
        return line.to_owned();
    }
    let cut = (0..=300).rev().find(|&i| line.is_char_boundary(i)).unwrap();
    format!("{}… ({} bytes)", &line[..cut], line.len())
}

/// The comma-separated list in environment variable `name`, or in
/// `default` when it is unset: the benches' sizes and modes.
#[allow(dead_code)]
pub fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_owned())
        .split(',')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `event == name` and `key == key`.
pub fn is(event: &str, key: &str) -> impl Fn(&Value) -> bool {
    let (event, key) = (event.to_owned(), key.to_owned());
    move |l| l["event"] == event.as_str() && l["key"] == key.as_str()
}

/// A record line for `key` with `value` that came from `source`.
pub fn updated(key: &str, value: &str, source: &str) -> impl Fn(&Value) -> bool {
    let (key, value, source) = (key.to_owned(), value.to_owned(), source.to_owned());
    move |l| {
        l["event"] == "updated"
            && l["key"] == key.as_str()
            && l["value"] == value.as_str()
            && l["source"] == source.as_str()
    }
}

/// The text of a line of a node started without `--json`.
pub fn text(line: &Value) -> &str {
    line.as_str().unwrap_or_default()
}

/// `connected` to `peer`.
pub fn connected_to(peer: &str) -> impl Fn(&Value) -> bool {
    let peer = peer.to_owned();
    move |l| l["event"] == "connected" && l["peer_id"] == peer.as_str()
}

#[allow(dead_code)]
impl Node {
    /// The remote address of each connection to `peer`, oldest first, as
    /// `peers` lists them.
    pub fn connections_to(&mut self, peer: &str) -> Vec<String> {
        self.send("peers");
        let peers = self.expect("peers", |l| l["event"] == "peers");
        peers["peers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["peer_id"] == peer)
            .flat_map(|p| p["connections"].as_array().cloned().unwrap_or_default())
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect()
    }

    /// Waits up to `within` for a connection to `peer` whose remote
    /// address `matches` accepts: how long it took, and that address.
    /// `peers` is a state, not an event: asked every 100 ms.
    pub fn connection_within(
        &mut self,
        peer: &str,
        within: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Option<(Duration, String)> {
        let started = Instant::now();
        while started.elapsed() < within {
            let found = self.connections_to(peer).into_iter().find(|a| matches(a));
            if let Some(addr) = found {
                return Some((started.elapsed(), addr));
            }
            thread::sleep(Duration::from_millis(100));
        }
        None
    }

    /// Hands `done` every line not yet taken, then every new line, each
    /// taken, until `done` returns `true`. For following a node's state
    /// through its events (every line counts, not only the first match).
    /// Panics after [`PATIENCE`].
    pub fn watch(&mut self, what: &str, done: impl FnMut(&Value) -> bool) {
        self.watch_within(what, PATIENCE, done);
    }

    /// [`Self::watch`] with a deadline of `within` rather than
    /// [`PATIENCE`], for benchmarks whose runs take longer.
    pub fn watch_within(&mut self, what: &str, within: Duration, done: impl FnMut(&Value) -> bool) {
        let deadline = Instant::now() + within;
        if !self.watch_until(deadline, done) {
            panic!("{}: no {what} in time", self.name);
        }
    }

    /// [`Self::watch`] until `deadline`: `false` when it passed first,
    /// rather than a panic, for benchmarks that count what did not arrive
    /// and go on. Panics only when the node's output ends.
    pub fn watch_until(&mut self, deadline: Instant, mut done: impl FnMut(&Value) -> bool) -> bool {
        while let Some(line) = self.pending.pop_front() {
            if done(&line) {
                return true;
            }
        }
        loop {
            let wait = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(wait) {
                Ok(raw) => {
                    let line = self.parse(raw);
                    if done(&line) {
                        return true;
                    }
                }
                Err(RecvTimeoutError::Timeout) => return false,
                Err(RecvTimeoutError::Disconnected) => {
                    panic!("{}: output ended while watching", self.name)
                }
            }
        }
    }

    /// Sends `list` and returns its `records` by key: `(value, following)`,
    /// the value `None` for a deleted key.
    pub fn list(&mut self) -> std::collections::BTreeMap<String, (Option<String>, bool)> {
        self.send("list");
        let list = self.expect("list", |l| l["event"] == "list");
        list["records"]
            .as_array()
            .expect("records")
            .iter()
            .map(|r| {
                let key = r["key"].as_str().expect("key").to_owned();
                let value = r["value"].as_str().map(str::to_owned);
                (key, (value, r["following"] == true))
            })
            .collect()
    }
}

/// Starts nodes named `names` in a line, each dialing the one started
/// before it (so the first name is dialed by the second), with `args`, and
/// waits until every link is up on both ends.
#[allow(dead_code)]
pub fn line_of(names: &[&str], args: &[&str]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    for name in names {
        let mut node_args = args.to_vec();
        let dial = nodes.last().map(|prev| prev.addr.clone());
        if let Some(addr) = &dial {
            node_args.extend(["--dial", addr]);
        }
        nodes.push(Node::start(name, &node_args));
    }
    for i in 1..nodes.len() {
        let (left, right) = nodes.split_at_mut(i);
        let (prev, next) = (&mut left[i - 1], &mut right[0]);
        prev.expect("connected", connected_to(&next.peer_id));
        next.expect("connected", connected_to(&prev.peer_id));
    }
    nodes
}
