//! The keys a node with `--data-dir` follows, kept across restarts.
//!
//! The library follows again, at start, every key its store holds a value
//! of; a key followed before any record of it arrived would be forgotten.
//! So the node journals its follows in `<data-dir>/following`: a line
//! `+KEY` per follow and `-KEY` per unfollow, appended as commands come
//! (a million-key `sub-file` appends once per key, not a rewrite per key),
//! and rewritten compactly at start. Keys have no whitespace, so a line is
//! unambiguous.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

/// The journal's file name inside the data directory.
pub const FOLLOWING_FILE: &str = "following";

/// An open journal.
pub struct Follows {
    path: PathBuf,
    out: BufWriter<File>,
}

impl Follows {
    /// Opens the journal in `dir`, returns it with the keys it lists as
    /// followed, and rewrites it to hold just those.
    pub fn open(dir: &Path) -> io::Result<(Follows, Vec<String>)> {
        let path = dir.join(FOLLOWING_FILE);
        let keys = match fs::read_to_string(&path) {
            Ok(text) => replay(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeSet::new(),
            Err(e) => return Err(e),
        };
        // Compact through a temporary file, so a crash leaves one whole.
        let fresh = dir.join(format!("{FOLLOWING_FILE}.new"));
        {
            let mut out = BufWriter::new(File::create(&fresh)?);
            for key in &keys {
                writeln!(out, "+{key}")?;
            }
            out.into_inner()?.sync_all()?;
        }
        fs::rename(&fresh, &path)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        let follows = Follows {
            path,
            out: BufWriter::new(file),
        };
        Ok((follows, keys.into_iter().collect()))
    }

    /// Records that `keys` are followed (`true`) or no longer (`false`).
    pub fn record<'a>(
        &mut self,
        following: bool,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<()> {
        let sign = if following { '+' } else { '-' };
        for key in keys {
            writeln!(self.out, "{sign}{key}")?;
        }
        self.out.flush()
    }

    /// Where the journal is, for error messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The keys followed after the journal's lines, in order.
fn replay(text: &str) -> BTreeSet<String> {
    let mut keys = BTreeSet::new();
    for line in text.lines() {
        match line.split_at_checked(1) {
            Some(("+", key)) if !key.is_empty() => {
                keys.insert(key.to_owned());
            }
            Some(("-", key)) => {
                keys.remove(key);
            }
            // A line cut short by a crash, or one this version does not
            // know: skipped.
            _ => {}
        }
    }
    keys
}
