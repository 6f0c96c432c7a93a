//! An on-disk [`RecordStore`] on [redb](https://www.redb.org). The layout
//! and the durability guarantee are documented on [`RedbStore`], which is
//! what the crate exports.

use std::borrow::Cow;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use ::redb::{
    Builder, Database, ReadOnlyTable, ReadableDatabase, ReadableTableMetadata, TableDefinition,
    TableHandle,
};

use super::{check_value_size, Error, RecordStore, Result};
use super::{DEFAULT_MAX_RECORDS, DEFAULT_MAX_VALUE_BYTES};
use crate::core::record::Record;
use crate::wire;

mod staged;

use self::staged::{Staged, STAGE_BATCH};

/// The layout version this build writes and reads, kept in the `meta`
/// table. Bump it whenever the tables or the value encoding change.
pub const SCHEMA_VERSION: u64 = 1;

const RECORDS: TableDefinition<&str, &[u8]> = TableDefinition::new("records");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const SCHEMA_VERSION_KEY: &str = "schema_version";

/// The message redb 4 gives a file whose format version is newer than it
/// reads; it has no typed error for that case.
const NEWER_FORMAT_MESSAGE: &str = "Expected file format version <= ";

/// Limits and open-time checks of a [`RedbStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedbStoreConfig {
    /// Most records (values and tombstones) kept at once. Default: 65,536,
    /// as [`MemoryStoreConfig`](super::MemoryStoreConfig).
    pub max_records: usize,
    /// Largest value accepted, in bytes. Default: 61,440 (60 KiB), as
    /// [`MemoryStoreConfig`](super::MemoryStoreConfig).
    pub max_value_bytes: usize,
    /// Verify every page checksum of the file when it is opened. Default:
    /// `true`. This reads the whole file once per open, and is what makes a
    /// file damaged outside redb (bad disk, stray write) fail with
    /// [`OpenError::Corrupted`]; without it redb trusts a cleanly closed
    /// file, and may panic on a damaged one or silently lose records (both
    /// seen when flipping single bytes of a file). After a crash redb checks
    /// the file anyway. Turn it off only for large stores on trusted disks.
    pub check_integrity_on_open: bool,
}

impl Default for RedbStoreConfig {
    fn default() -> Self {
        RedbStoreConfig {
            max_records: DEFAULT_MAX_RECORDS,
            max_value_bytes: DEFAULT_MAX_VALUE_BYTES,
            check_integrity_on_open: true,
        }
    }
}

/// Why [`RedbStore::open`] could not open a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file exists, is not empty and is not a redb database.
    #[error("{path} is not a redb database")]
    NotADatabase {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file is a redb database, but damaged beyond repair.
    #[error("the database at {path} is corrupted: {reason}")]
    Corrupted {
        /// The file that was opened.
        path: PathBuf,
        /// What redb found wrong.
        reason: String,
    },
    /// The file was written by a redb whose file format this build cannot
    /// read: an older one that needs a manual upgrade, or a newer one.
    #[error("the database at {path} has redb file format {found}, which this build cannot read")]
    FileFormat {
        /// The file that was opened.
        path: PathBuf,
        /// The format version found in the file.
        found: u8,
    },
    /// A valid redb database, but not a record store: its tables are not
    /// the ones [`RedbStore`] writes.
    #[error("the database at {path} is not a pointer record store: {reason}")]
    ForeignDatabase {
        /// The file that was opened.
        path: PathBuf,
        /// What does not match.
        reason: String,
    },
    /// A record store of another schema version.
    #[error("the store at {path} has schema version {found}; this build reads {expected}")]
    SchemaVersion {
        /// The file that was opened.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// [`SCHEMA_VERSION`].
        expected: u64,
    },
    /// Another handle, in this process or another, has the file open.
    #[error("the database at {path} is already open elsewhere")]
    Locked {
        /// The file that was opened.
        path: PathBuf,
    },
    /// The file could not be read or written.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file that was opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Any other failure of redb while opening.
    #[error("redb failed to open {path}: {source}")]
    Backend {
        /// The file that was opened.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: ::redb::Error,
    },
}

/// Records in a redb file: durable, bounded, and still there after a
/// restart, so a node that restarts still holds, serves and republishes
/// what it had.
///
/// # Durability and its cost
///
/// [`put`](RecordStore::put), [`put_many`](RecordStore::put_many) and
/// [`remove`](RecordStore::remove) each run one redb write transaction
/// committed with `Durability::Immediate`: when they return `Ok` the change
/// is on disk (redb has called `fsync`) and survives a crash of the process
/// or of the machine. A call that returns an error leaves the store as it
/// was. The price is one `fsync` per call: from about 0.1 ms on a fast SSD
/// to 10 ms on a spinning disk, which bounds single puts to some thousands
/// (or hundreds) per second. Write bulk catch-up with
/// [`put_many`](RecordStore::put_many): one transaction, one `fsync`, all
/// records or none. Removing a key that is not there costs no `fsync`.
///
/// Reads (`get`, `records`) run in read transactions, see a consistent
/// snapshot and never wait for a write.
///
/// [`stage`](RecordStore::stage) (what `Behaviour` does with the records it
/// receives) keeps up to 4,096 records in memory, readable by `get` and
/// `records` like stored ones, and writes them in one transaction when
/// there are that many (not yet durable) or at the next
/// [`flush`](RecordStore::flush) (durable). A redb commit costs about the
/// same for one record as for thousands, so a catch-up of a million
/// records costs a commit per flush interval (or per 4,096 records), some
/// hundreds, rather than a million. A crash before the
/// flush loses staged records, as before; it never corrupts the file.
///
/// # Layout
///
/// One redb file with two tables:
///
/// - `records`: record key → the protobuf `StoreValue` bytes of its record
///   (`wire::encode_store_value`), tombstones included, so a restarted node
///   still refuses a `Mut` older than a delete it saw.
/// - `meta`: `"schema_version"` → [`SCHEMA_VERSION`]. A file with another
///   version is refused with [`OpenError::SchemaVersion`], never misread.
///
/// # Limits and damaged records
///
/// `max_records` and `max_value_bytes` work as in
/// [`MemoryStore`](super::MemoryStore). The check reads the record count
/// redb keeps in the table's root (no scan), inside the write transaction,
/// so the count cannot drift from the file; [`RedbStore::len`] is a copy
/// of it kept in memory.
///
/// A record whose bytes do not decode (damaged, or written by something
/// else) is logged with `tracing` and treated as absent by `get` and
/// `records`, so the network can replace it with a valid record; it still
/// counts towards `max_records` until then. A read that fails in redb is
/// logged and also reads as absent, as `get` cannot return an error.
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    config: RedbStoreConfig,
    len: usize,
    /// Whether a staged commit still waits for a durable one.
    unsynced: bool,
    /// Staged records not written yet.
    staged: Staged,
    /// The records table as of the last commit, kept open between commits:
    /// opening a read transaction and its table for every `get` cost more
    /// than the lookup itself (a third of a catch-up's reads at a million
    /// records). Dropped at every commit that changes the file.
    reader: Mutex<Option<ReadOnlyTable<&'static str, &'static [u8]>>>,
}

impl fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbStore")
            .field("path", &self.path)
            .field("config", &self.config)
            .field("len", &self.len())
            .field("staged", &self.staged.len())
            .finish_non_exhaustive()
    }
}

impl RedbStore {
    /// Opens the store at `path` with the default limits, creating the file
    /// if it does not exist (or is empty).
    pub fn open(path: impl AsRef<Path>) -> std::result::Result<Self, OpenError> {
        Self::open_with_config(path, RedbStoreConfig::default())
    }

    /// Opens the store at `path` with the given limits and checks, creating
    /// the file if it does not exist (or is empty).
    ///
    /// A file that is not a redb database, is damaged, has another redb file
    /// format or another [`SCHEMA_VERSION`], holds another application's
    /// tables, or is open elsewhere gives the matching [`OpenError`].
    pub fn open_with_config(
        path: impl AsRef<Path>,
        config: RedbStoreConfig,
    ) -> std::result::Result<Self, OpenError> {
        let path = path.as_ref().to_path_buf();
        let db = Builder::new()
            .set_check_integrity_on_open(config.check_integrity_on_open)
            .create(&path)
            .map_err(|e| classify(&path, e.into()))?;
        let len = prepare(&db, &path)?;
        Ok(RedbStore {
            db,
            path,
            config,
            len,
            unsynced: false,
            staged: Staged::default(),
            reader: Mutex::new(None),
        })
    }

    /// The file the store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits in force.
    pub fn config(&self) -> &RedbStoreConfig {
        &self.config
    }

    /// Number of records held, tombstones included (staged ones too).
    pub fn len(&self) -> usize {
        self.len + self.new_staged_keys()
    }

    /// How many staged keys the file does not hold: a read per staged
    /// record (at most 4,096). A key whose read fails counts as held.
    fn new_staged_keys(&self) -> usize {
        self.staged
            .records()
            .filter(|r| matches!(self.load(r.key()), Ok(None)))
            .count()
    }

    /// [`RedbStore::len`], remembering for each staged key whether the file
    /// holds it, so that staging near the limit reads each key once, not
    /// every staged key again per record.
    fn exact_len(&mut self) -> usize {
        let Self {
            staged, reader, db, ..
        } = self;
        let new = staged.new_keys(|key| load_from(db, reader, key).map(|bytes| bytes.is_some()));
        self.len + new
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The stored bytes of `key`, read from the snapshot of the last
    /// commit.
    fn load(&self, key: &str) -> std::result::Result<Option<Vec<u8>>, ::redb::Error> {
        load_from(&self.db, &self.reader, key)
    }

    /// Writes the staged records in one transaction (`durable`: with an
    /// `fsync`), and forgets them once written; on error they stay staged.
    /// With nothing staged, a durable call still syncs earlier staged
    /// commits.
    fn write_staged(&mut self, durable: bool) -> Result<()> {
        if self.staged.len() == 0 {
            if durable && self.unsynced {
                let txn = self.db.begin_write().map_err(backend)?;
                txn.commit().map_err(backend)?;
                self.unsynced = false;
            }
            return Ok(());
        }
        let records: Vec<Record> = self.staged.records().cloned().collect();
        self.write_batch(&records, durable)?;
        self.staged.clear();
        Ok(())
    }

    /// Writes `records` in one transaction. Nothing is stored unless the
    /// whole batch fits. `durable` commits with an `fsync`; otherwise the
    /// commit is atomic and visible but waits for the next durable one.
    fn write_batch(&mut self, records: &[Record], durable: bool) -> Result<()> {
        let mut txn = self.db.begin_write().map_err(backend)?;
        if !durable {
            txn.set_durability(::redb::Durability::None)
                .map_err(backend)?;
        }
        let (before, after) = insert_all(&txn, records)?;
        // Replacing keys never needs room, even in a store that holds more
        // than a lowered max_records allows.
        if after > before && after > self.config.max_records {
            txn.abort().map_err(backend)?;
            return Err(Error::MaxRecords {
                limit: self.config.max_records,
            });
        }
        self.commit(txn, after)?;
        // A durable commit also makes every earlier staged one durable.
        self.unsynced = !durable;
        Ok(())
    }

    /// Commits `txn`, after which the store holds `len` records.
    fn commit(&mut self, txn: ::redb::WriteTransaction, len: usize) -> Result<()> {
        // Reads after this see the new snapshot (a failed commit may have
        // reached the file too).
        *self
            .reader
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = None;
        match txn.commit() {
            Ok(()) => {
                self.len = len;
                Ok(())
            }
            Err(error) => {
                // A failed commit may or may not have reached the file; ask
                // it, rather than trust either count.
                if let Ok(len) = read_len(&self.db) {
                    self.len = len;
                }
                Err(backend(error))
            }
        }
    }
}

impl Drop for RedbStore {
    /// A store dropped in an orderly way loses none of its staged records.
    fn drop(&mut self) {
        if let Err(error) = self.flush() {
            tracing::error!(%error, "redb store: final flush failed");
        }
    }
}

impl RecordStore for RedbStore {
    type RecordsIter<'a> = RedbRecords<'a>;

    /// Reads the record of `key`. A backend failure or bytes that do not
    /// decode are logged and read as "no record" (see [`RedbStore`]).
    fn get(&self, key: &str) -> Option<Cow<'_, Record>> {
        if let Some(record) = self.staged.get(key) {
            return Some(Cow::Borrowed(record));
        }
        let bytes = match self.load(key) {
            Ok(bytes) => bytes?,
            Err(error) => {
                tracing::error!(%key, %error, "redb store: read failed");
                return None;
            }
        };
        decode(key, &bytes).map(Cow::Owned)
    }

    /// Stores `record` durably: one transaction, one `fsync`.
    fn put(&mut self, record: Record) -> Result<()> {
        self.put_many(vec![record])
    }

    /// Stores all `records` durably in one transaction with one `fsync`, or
    /// none of them on error. A key that comes twice keeps its last record.
    /// Staged records go in the same transaction, before `records`.
    fn put_many(&mut self, records: Vec<Record>) -> Result<()> {
        for record in &records {
            check_value_size(record, self.config.max_value_bytes)?;
        }
        if records.is_empty() {
            return Ok(());
        }
        if self.staged.len() == 0 {
            return self.write_batch(&records, true);
        }
        let mut all: Vec<Record> = self.staged.records().cloned().collect();
        all.extend(records);
        self.write_batch(&all, true)?;
        self.staged.clear();
        Ok(())
    }

    /// Stages `record` in memory (see [`RedbStore`]): a crash before the
    /// next [`flush`](RecordStore::flush) (or durable write) may lose it,
    /// never corrupt it. Refused, changing nothing, when the value is too
    /// large or the key is new and the store is full.
    fn stage(&mut self, record: Record) -> Result<()> {
        check_value_size(&record, self.config.max_value_bytes)?;
        if self.staged.len() >= STAGE_BATCH {
            self.write_staged(false)?;
        }
        // Far from the limit, even if every staged key were new, nothing
        // is read; near it, the count is made exact.
        let key = record.key();
        let near = self.len + self.staged.len() >= self.config.max_records;
        if near && self.staged.get(key).is_none() {
            let in_file = self.load(key).map_err(backend)?.is_some();
            if !in_file && self.exact_len() >= self.config.max_records {
                return Err(Error::MaxRecords {
                    limit: self.config.max_records,
                });
            }
        }
        self.staged.insert(record);
        Ok(())
    }

    /// Makes every staged record durable: one `fsync`ed commit.
    fn flush(&mut self) -> Result<()> {
        self.write_staged(true)
    }

    /// Removes the record of `key` durably. A missing key costs no `fsync`.
    fn remove(&mut self, key: &str) -> Result<()> {
        self.staged.remove(key);
        let txn = self.db.begin_write().map_err(backend)?;
        let (removed, len) = {
            let mut table = txn.open_table(RECORDS).map_err(backend)?;
            let removed = table.remove(key).map_err(backend)?.is_some();
            (removed, table_len(&table).map_err(backend)?)
        };
        if !removed {
            return txn.abort().map_err(backend);
        }
        self.commit(txn, len)
    }

    /// Streams the records from one read transaction, decoding one at a
    /// time: memory stays flat however many records the file holds.
    fn records(&self) -> Self::RecordsIter<'_> {
        let range = open_range(&self.db)
            .inspect_err(|error| tracing::error!(%error, "redb store: cannot list records"))
            .ok();
        RedbRecords {
            range,
            staged: &self.staged,
            not_in_file: self
                .staged
                .records()
                .filter(|r| matches!(self.load(r.key()), Ok(None)))
                .collect::<Vec<_>>()
                .into_iter(),
        }
    }
}

/// The records of a [`RedbStore`], read lazily from one snapshot.
///
/// A record that does not decode is logged and skipped; a read error is
/// logged and ends the iteration.
pub struct RedbRecords<'a> {
    range: Option<::redb::Range<'static, &'static str, &'static [u8]>>,
    /// Staged records stand in for the file's record of their key.
    staged: &'a Staged,
    /// Then the staged records of keys the file does not hold.
    not_in_file: std::vec::IntoIter<&'a Record>,
}

impl fmt::Debug for RedbRecords<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedbRecords").finish_non_exhaustive()
    }
}

impl<'a> Iterator for RedbRecords<'a> {
    type Item = Cow<'a, Record>;

    fn next(&mut self) -> Option<Self::Item> {
        while let Some(next) = self.range.as_mut().and_then(Iterator::next) {
            match next {
                Ok((key, value)) => {
                    if let Some(record) = self.staged.get(key.value()) {
                        return Some(Cow::Borrowed(record));
                    }
                    if let Some(record) = decode(key.value(), value.value()) {
                        return Some(Cow::Owned(record));
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "redb store: listing records failed");
                    self.range = None;
                }
            }
        }
        self.not_in_file.next().map(Cow::Borrowed)
    }
}

fn open_range(
    db: &Database,
) -> std::result::Result<::redb::Range<'static, &'static str, &'static [u8]>, ::redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RECORDS)?;
    // The range holds the transaction open by itself; `txn` may go.
    Ok(table.range::<&str>(..)?)
}

/// The stored bytes of `key` in `db`, through the read snapshot kept in
/// `reader` (opened when there is none).
fn load_from(
    db: &Database,
    reader: &Mutex<Option<ReadOnlyTable<&'static str, &'static [u8]>>>,
    key: &str,
) -> std::result::Result<Option<Vec<u8>>, ::redb::Error> {
    let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
    let table = match reader.take() {
        Some(table) => table,
        None => db.begin_read()?.open_table(RECORDS)?,
    };
    let bytes = table.get(key)?.map(|guard| guard.value().to_vec());
    *reader = Some(table);
    Ok(bytes)
}

/// Inserts every record; returns the record count before and after.
fn insert_all(txn: &::redb::WriteTransaction, records: &[Record]) -> Result<(usize, usize)> {
    let mut table = txn.open_table(RECORDS).map_err(backend)?;
    let before = table_len(&table).map_err(backend)?;
    for record in records {
        let bytes = wire::encode_store_value(record);
        table
            .insert(record.key(), bytes.as_slice())
            .map_err(backend)?;
    }
    let after = table_len(&table).map_err(backend)?;
    Ok((before, after))
}

/// The number of entries, which redb keeps in the table's root: no scan.
fn table_len(
    table: &impl ReadableTableMetadata,
) -> std::result::Result<usize, ::redb::StorageError> {
    // More records than memory can count cannot be in a file we wrote.
    Ok(usize::try_from(table.len()?).unwrap_or(usize::MAX))
}

fn read_len(db: &Database) -> std::result::Result<usize, ::redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RECORDS)?;
    Ok(table_len(&table)?)
}

/// Decodes stored bytes, logging and dropping what does not decode.
fn decode(key: &str, bytes: &[u8]) -> Option<Record> {
    // No size limit: the bytes are already read from our own file, and a
    // store reopened with a lower max_value_bytes must still read its
    // older, larger records.
    wire::decode_store_value(key, bytes, usize::MAX)
        .inspect_err(|error| tracing::warn!(%key, %error, "redb store: undecodable record"))
        .ok()
}

fn backend(error: impl Into<::redb::Error>) -> Error {
    Error::Backend(Arc::new(error.into()))
}

/// Checks (or, in a new file, writes) the schema and returns the number of
/// records.
fn prepare(db: &Database, path: &Path) -> std::result::Result<usize, OpenError> {
    let fail = |e: ::redb::Error| classify(path, e);
    let txn = db.begin_read().map_err(|e| fail(e.into()))?;
    let tables: Vec<String> = txn
        .list_tables()
        .map_err(|e| fail(e.into()))?
        .map(|t| t.name().to_owned())
        .collect();
    drop(txn);
    if tables.is_empty() {
        initialize(db).map_err(fail)?;
        return Ok(0);
    }
    check_schema(db, path, &tables)?;
    read_len(db).map_err(fail)
}

/// Writes the schema version and the empty records table.
fn initialize(db: &Database) -> std::result::Result<(), ::redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(META)?
        .insert(SCHEMA_VERSION_KEY, SCHEMA_VERSION)?;
    txn.open_table(RECORDS)?;
    txn.commit()?;
    Ok(())
}

fn check_schema(
    db: &Database,
    path: &Path,
    tables: &[String],
) -> std::result::Result<(), OpenError> {
    let foreign = |reason: String| OpenError::ForeignDatabase {
        path: path.to_owned(),
        reason,
    };
    if !tables.iter().any(|t| t == META.name()) {
        return Err(foreign(format!("no `meta` table; tables: {tables:?}")));
    }
    let found = read_schema_version(db).map_err(|e| classify(path, e))?;
    match found {
        None => Err(foreign("no schema version in `meta`".into())),
        Some(SCHEMA_VERSION) => Ok(()),
        Some(found) => Err(OpenError::SchemaVersion {
            path: path.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        }),
    }
}

fn read_schema_version(db: &Database) -> std::result::Result<Option<u64>, ::redb::Error> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    let version = meta.get(SCHEMA_VERSION_KEY)?;
    Ok(version.map(|guard| guard.value()))
}

/// Sorts a redb error met while opening into an [`OpenError`].
fn classify(path: &Path, error: ::redb::Error) -> OpenError {
    let path = path.to_owned();
    match error {
        ::redb::Error::DatabaseAlreadyOpen | ::redb::Error::LockProtocolMismatch => {
            OpenError::Locked { path }
        }
        ::redb::Error::UpgradeRequired(found) => OpenError::FileFormat { path, found },
        ::redb::Error::Corrupted(reason) => corrupted(path, reason),
        // redb reports a file without its magic number as InvalidData.
        ::redb::Error::Io(source) if source.kind() == std::io::ErrorKind::InvalidData => {
            OpenError::NotADatabase { path }
        }
        ::redb::Error::Io(source) => OpenError::Io { path, source },
        ::redb::Error::TableTypeMismatch { .. }
        | ::redb::Error::TableIsMultimap(_)
        | ::redb::Error::TypeDefinitionChanged { .. }
        | ::redb::Error::TableDoesNotExist(_) => OpenError::ForeignDatabase {
            path,
            reason: error.to_string(),
        },
        source => OpenError::Backend { path, source },
    }
}

/// `Corrupted`, unless redb's message says the file format is newer than
/// this redb reads.
fn corrupted(path: PathBuf, reason: String) -> OpenError {
    let newer = reason
        .strip_prefix(NEWER_FORMAT_MESSAGE)
        .and_then(|rest| rest.rsplit(' ').next())
        .and_then(|found| found.parse().ok());
    match newer {
        Some(found) => OpenError::FileFormat { path, found },
        None => OpenError::Corrupted { path, reason },
    }
}

#[cfg(test)]
mod tests;
