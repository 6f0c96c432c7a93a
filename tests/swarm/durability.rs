//! Crash safety of `RedbStore`: a child process writes as fast as it can and
//! reports each write once `put` / `put_many` has returned; the parent kills
//! it with SIGKILL at a random moment, reopens the file and checks that every
//! reported write is there, exactly, and nothing half-written is.
//!
//! SIGKILL proves that nothing acknowledged is lost when the *process* dies
//! (the kernel still holds what was written). Surviving power loss rests on
//! the `fsync` redb makes before each commit returns, which a test cannot
//! pull the plug on.
#![cfg(all(unix, feature = "redb"))]

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pointer::store::{RecordStore, RedbStore};
use pointer::{Op, Record};

const DB_ENV: &str = "POINTER_DURABILITY_DB";
const FIRST_STEP_ENV: &str = "POINTER_DURABILITY_FIRST_STEP";
/// Set to "stage" for the child to stage its writes and flush now and then.
const MODE_ENV: &str = "POINTER_DURABILITY_MODE";
/// In stage mode, the child flushes after every this many steps.
const FLUSH_EVERY: u64 = 50;
const ROUNDS: u64 = 8;
/// Each round's steps start here, so times keep rising across rounds and
/// every write of a round is newer than what the file already holds.
const STEPS_PER_ROUND: u64 = 1_000_000;
const KEYS: u64 = 1_009;
const BATCH: u64 = 20;
/// Bounds the wait for the child's first write (start-up and file open).
const FIRST_WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Bounds the wait for the child to die and its last lines to drain.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

type State = BTreeMap<String, Record>;

/// The records written by step `n`: every tenth step a batch, otherwise one
/// record; keys repeat, so values are replaced and deleted (tombstones).
fn step(n: u64) -> Vec<Record> {
    if n % 10 == 9 {
        (0..BATCH)
            .map(|j| record((n * 31 + j) % KEYS, n, Op::Mut))
            .collect()
    } else {
        let op = if n % 3 == 2 { Op::Del } else { Op::Mut };
        vec![record(n % KEYS, n, op)]
    }
}

fn record(key: u64, n: u64, op: Op) -> Record {
    let value = match op {
        Op::Mut => format!("v{n}-{}", "x".repeat((n % 80) as usize)),
        Op::Del => String::new(),
    };
    let time = i64::try_from(n).expect("step fits i64");
    Record::sign(
        &format!("k{key}"),
        op,
        &value,
        time,
        &SigningKey::from_bytes(&[9; 32]),
    )
}

/// The child: writes steps from `FIRST_STEP_ENV` on into the store at
/// `DB_ENV` until killed, printing `wrote <step> <key> <op> <value>` for each
/// record once its write returned.
#[test]
#[ignore = "child process of sigkill_never_loses_an_acknowledged_write"]
fn durability_child() {
    let path =
        std::env::var(DB_ENV).expect("run only by sigkill_never_loses_an_acknowledged_write");
    let first: u64 = std::env::var(FIRST_STEP_ENV)
        .expect("first step")
        .parse()
        .expect("a number");
    let staged = std::env::var(MODE_ENV).is_ok_and(|m| m == "stage");
    let mut store = RedbStore::open(&path).expect("open");
    let mut out = std::io::stdout().lock();
    for n in first..first + STEPS_PER_ROUND {
        let records = step(n);
        if staged {
            for r in &records {
                store.stage(r.clone()).expect("stage");
            }
            if (n + 1) % FLUSH_EVERY == 0 {
                store.flush().expect("flush");
                writeln!(out, "flushed {n}").expect("stdout");
            }
        } else if records.len() == 1 {
            store.put(records[0].clone()).expect("put");
        } else {
            store.put_many(records.clone()).expect("put_many");
        }
        for r in &records {
            writeln!(out, "wrote {n} {} {:?} {}", r.key(), r.op(), r.value()).expect("stdout");
        }
        out.flush().expect("flush");
    }
    panic!("ran out of steps before being killed");
}

#[test]
fn sigkill_never_loses_an_acknowledged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("crash.redb");
    let mut state = State::new();
    for round in 0..ROUNDS {
        let first = round * STEPS_PER_ROUND;
        let acked = run_child_and_kill(&path, first);
        assert!(acked > first, "round {round}: no write acknowledged");
        eprintln!("round {round}: {} steps acknowledged", acked - first);
        state = check_store(&path, state, first, acked);
    }
}

/// Staged writes (what `Pointer` does with records from the network) are
/// durable once `flush` returned: after SIGKILL the store holds every step
/// up to the last flush, then possibly some staged steps after it, in
/// order, and nothing else.
#[test]
fn sigkill_keeps_every_flushed_staged_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("staged.redb");
    let mut state = State::new();
    for round in 0..ROUNDS / 2 {
        let first = round * STEPS_PER_ROUND;
        let (flushed, written) = run_staging_child_and_kill(&path, first);
        eprintln!("round {round}: flushed through {flushed:?}, staged {written} steps");
        state = check_staged_store(&path, state, first, flushed, written);
    }
}

/// Like [`run_child_and_kill`] in stage mode: returns one past the last
/// flushed step (`first` if none) and one past the last staged step.
fn run_staging_child_and_kill(path: &Path, first: u64) -> (u64, u64) {
    let mut child = spawn(path, first, true);
    let lines = read_lines(child.stdout.take().expect("piped stdout"));
    // Wait for a first flush, so that every round checks one.
    let deadline = Instant::now() + FIRST_WRITE_TIMEOUT;
    let mut flushed = first;
    let mut written = first;
    while flushed == first {
        let Some(line) = recv_until(&lines, deadline) else {
            panic!("the child ended before its first flush");
        };
        note(&line, &mut flushed, &mut written);
    }
    thread::sleep(Duration::from_millis(rand::random_range(10..400)));
    kill(&mut child);
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while let Some(line) = recv_until(&lines, deadline) {
        note(&line, &mut flushed, &mut written);
    }
    (flushed, written)
}

fn note(line: &str, flushed: &mut u64, written: &mut u64) {
    if let Some(n) = line.strip_prefix("flushed ") {
        *flushed = n.trim().parse::<u64>().expect("a step") + 1;
    } else if let Some(n) = parse_step(line) {
        *written = n + 1;
    }
}

/// The store must equal `before` plus steps `first..x` for one `x` between
/// the flushed and the last staged step (a step may be half-staged when
/// killed: any prefix of its records is fine, as each is its own commit).
fn check_staged_store(path: &Path, before: State, first: u64, flushed: u64, written: u64) -> State {
    let (_, held) = reopen(path);
    let mut state = apply(before, first..flushed);
    if held == state {
        return held;
    }
    for n in flushed..=written {
        for record in step(n) {
            state.insert(record.key().to_owned(), record);
            if held == state {
                return held;
            }
        }
    }
    panic!(
        "after flushing through {flushed} and staging to {written}, the store holds another state"
    );
}

/// Runs the child for a random while, kills it, and returns one past the
/// last step it acknowledged.
fn run_child_and_kill(path: &Path, first: u64) -> u64 {
    let mut child = spawn_child(path, first);
    let stdout = child.stdout.take().expect("piped stdout");
    let lines = read_lines(stdout);
    let first_line = lines.recv_timeout(FIRST_WRITE_TIMEOUT);
    if first_line.is_err() {
        kill(&mut child);
        panic!("the child wrote nothing within {FIRST_WRITE_TIMEOUT:?}");
    }
    thread::sleep(Duration::from_millis(rand::random_range(10..400)));
    kill(&mut child);
    let mut last = first_line.ok().and_then(|l| parse_step(&l));
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    while let Some(line) = recv_until(&lines, deadline) {
        last = parse_step(&line).or(last);
    }
    last.expect("at least one acknowledged step") + 1
}

fn spawn_child(path: &Path, first: u64) -> Child {
    spawn(path, first, false)
}

fn spawn(path: &Path, first: u64, staged: bool) -> Child {
    let exe = std::env::current_exe().expect("test binary");
    // The child test's full name in this binary: this module's path
    // without the crate's name.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    Command::new(exe)
        .args([
            &format!("{module}::durability_child"),
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, path)
        .env(FIRST_STEP_ENV, first.to_string())
        .env(MODE_ENV, if staged { "stage" } else { "put" })
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child")
}

/// Forwards complete `wrote` lines; a line cut short by the kill has no
/// newline and is dropped, as its write was not acknowledged.
fn read_lines(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let ours = line.starts_with("wrote ") || line.starts_with("flushed ");
            if line.ends_with('\n') && ours && tx.send(line.clone()).is_err() {
                return;
            }
            line.clear();
        }
    });
    rx
}

fn recv_until(lines: &mpsc::Receiver<String>, deadline: Instant) -> Option<String> {
    let left = deadline.checked_duration_since(Instant::now())?;
    match lines.recv_timeout(left) {
        Ok(line) => Some(line),
        Err(mpsc::RecvTimeoutError::Disconnected) => None,
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("child output did not end in time"),
    }
}

fn kill(child: &mut Child) {
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap child");
    assert_eq!(
        status.signal(),
        Some(9),
        "child ended otherwise: {status:?}"
    );
}

/// Checks that a line says what `step` says the child wrote, and returns
/// its step.
fn parse_step(line: &str) -> Option<u64> {
    let mut parts = line.trim_end_matches('\n').splitn(5, ' ').skip(1);
    let n: u64 = parts.next()?.parse().ok()?;
    let (key, op, value) = (parts.next()?, parts.next()?, parts.next().unwrap_or(""));
    let written = step(n);
    assert!(
        written
            .iter()
            .any(|r| r.key() == key && format!("{:?}", r.op()) == op && r.value() == value),
        "line {line:?} does not match step {n}"
    );
    Some(n)
}

/// Reopens the store and checks it holds `before` plus steps
/// `first..acked`, plus at most the whole of step `acked` (committed but
/// killed before it could say so). Returns what it holds.
fn check_store(path: &Path, before: State, first: u64, acked: u64) -> State {
    let (store, held) = reopen(path);
    assert_eq!(held.len(), store.len(), "record count matches the records");
    let acknowledged = apply(before, first..acked);
    let with_next = apply(acknowledged.clone(), acked..acked + 1);
    assert!(
        held == acknowledged || held == with_next,
        "after steps {first}..{acked}: {} records held, {} acknowledged, {} missing or different",
        held.len(),
        acknowledged.len(),
        acknowledged
            .iter()
            .filter(|(k, r)| held.get(*k) != Some(*r))
            .count(),
    );
    held
}

/// Reopens the store after the kill and reads every record it holds.
fn reopen(path: &Path) -> (RedbStore, State) {
    let store = RedbStore::open(path).expect("the database opens cleanly after SIGKILL");
    let held = store
        .records()
        .map(Cow::into_owned)
        .map(|r| (r.key().to_owned(), r))
        .collect();
    (store, held)
}

fn apply(mut state: State, steps: std::ops::Range<u64>) -> State {
    for record in steps.flat_map(step) {
        state.insert(record.key().to_owned(), record);
    }
    state
}
