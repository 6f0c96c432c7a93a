//! puts/s and gets/s of `MemoryStore` and `RedbStore`, printed as a markdown
//! table: `cargo bench --bench store`.
//!
//! 10,000 records with 100-byte values, signed before the clock starts. Each
//! row fills a fresh store through one write path, then reads every key
//! back once. The on-disk stores live in a temporary directory on the disk
//! `TMPDIR` points to; their figures are that disk's `fsync` rate.
//!
//! Single durable puts cost one `fsync` each, so that row stops timing after
//! [`SINGLE_PUT_BUDGET`] (on a slow disk 10,000 of them take minutes); the
//! rest is stored with `put_many`, untimed, so every row reads 10,000 keys.

use std::hint::black_box;
use std::time::{Duration, Instant};

use ed25519_dalek::SigningKey;
use pointer::store::{MemoryStore, RecordStore, RedbStore, RedbStoreConfig};
use pointer::{Op, Record};

const RECORDS: usize = 10_000;
const VALUE_BYTES: usize = 100;
/// Longest time spent timing one-by-one durable puts.
const SINGLE_PUT_BUDGET: Duration = Duration::from_secs(15);

/// One row of the table.
struct Row {
    store: &'static str,
    path: String,
    /// Records written while the clock ran.
    timed_puts: usize,
    puts: Duration,
    gets: Duration,
}

fn main() {
    let records = make_records();
    let dir = tempfile::tempdir().expect("temporary directory");
    let open = |name: &str| RedbStore::open(dir.path().join(name)).expect("open RedbStore");
    let rows = [
        run("MemoryStore", "`put`", MemoryStore::new(), &records, 1),
        run(
            "RedbStore",
            "`put`, 1 commit each",
            open("single"),
            &records,
            1,
        ),
        run(
            "RedbStore",
            "`put_many`, 100 per batch",
            open("b100"),
            &records,
            100,
        ),
        run(
            "RedbStore",
            "`put_many`, 1 batch",
            open("b10k"),
            &records,
            RECORDS,
        ),
    ];
    print_table(&rows);
    print_open_times(&dir.path().join("b10k"));
}

/// How long reopening the 10,000-record file takes, with and without the
/// integrity check `RedbStore` runs by default.
fn print_open_times(path: &std::path::Path) {
    let time_open = |check_integrity_on_open| {
        let config = RedbStoreConfig {
            check_integrity_on_open,
            ..RedbStoreConfig::default()
        };
        let started = Instant::now();
        let store = RedbStore::open_with_config(path, config).expect("reopen");
        let elapsed = started.elapsed();
        assert_eq!(store.len(), RECORDS);
        elapsed
    };
    let checked = time_open(true);
    let trusted = time_open(false);
    println!(
        "\nreopen with {RECORDS} records: {:.1} ms with the integrity check, {:.1} ms without",
        checked.as_secs_f64() * 1e3,
        trusted.as_secs_f64() * 1e3,
    );
}

fn make_records() -> Vec<Record> {
    let signer = SigningKey::from_bytes(&[1; 32]);
    (0..RECORDS)
        .map(|i| {
            let value = format!("{i:0>width$}", width = VALUE_BYTES);
            Record::sign(&format!("bench/key-{i}"), Op::Mut, &value, 1, &signer)
        })
        .collect()
}

/// Fills `store` with `records` in batches of `batch` (1: `put`), then gets
/// every key.
fn run<S: RecordStore>(
    name: &'static str,
    path: &str,
    mut store: S,
    records: &[Record],
    batch: usize,
) -> Row {
    let (timed_puts, puts) = fill(&mut store, records, batch);
    let started = Instant::now();
    for record in records {
        let got = store.get(black_box(record.key())).expect("stored");
        black_box(got);
    }
    let gets = started.elapsed();
    Row {
        store: name,
        path: path.to_owned(),
        timed_puts,
        puts,
        gets,
    }
}

/// Writes every record and returns how many were timed, in how long.
fn fill<S: RecordStore>(store: &mut S, records: &[Record], batch: usize) -> (usize, Duration) {
    let started = Instant::now();
    let mut written = 0;
    for chunk in records.chunks(batch) {
        if batch == 1 && started.elapsed() > SINGLE_PUT_BUDGET {
            break;
        }
        if batch == 1 {
            store.put(chunk[0].clone()).expect("put");
        } else {
            store.put_many(chunk.to_vec()).expect("put_many");
        }
        written += chunk.len();
    }
    let elapsed = started.elapsed();
    store
        .put_many(records[written..].to_vec())
        .expect("put_many the untimed rest");
    (written, elapsed)
}

fn print_table(rows: &[Row]) {
    println!("{RECORDS} records, {VALUE_BYTES}-byte values\n");
    println!("| store | write path | puts/s | gets/s | puts timed |");
    println!("|---|---|---:|---:|---:|");
    for row in rows {
        println!(
            "| {} | {} | {} | {} | {} in {:.2} s |",
            row.store,
            row.path,
            per_second(row.timed_puts, row.puts),
            per_second(RECORDS, row.gets),
            row.timed_puts,
            row.puts.as_secs_f64(),
        );
    }
}

/// Operations per second, rounded to three significant digits and grouped.
fn per_second(count: usize, elapsed: Duration) -> String {
    let rate = count as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE);
    let magnitude = 10f64.powi((rate.log10().floor() as i32 - 2).max(0));
    let rounded = ((rate / magnitude).round() * magnitude) as u64;
    let digits = rounded.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
