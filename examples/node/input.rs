//! Standard input, read on a thread of its own, one line at a time.
//!
//! Not tokio's `stdin()`: its blocking read cannot be cancelled, so `quit`
//! would hang until another line came. A plain thread dies with the process.

use std::io::{self, BufRead, Read};
use std::thread;

use futures::channel::mpsc;
use futures::SinkExt;

/// Longest line read. Values are at most 60 KiB by default; a longer line
/// is refused without being held in memory.
const MAX_LINE_BYTES: usize = 256 * 1024;

/// Lines read ahead of the node. A script that pipes a million `put`s
/// must not have them all read into memory before the node gets to them
/// (with no bound, a writer of 300,000 keys held about 450 B per key more;
/// 2-core VM, 2026-12-06). The thread waits when this many are queued.
const LINES_AHEAD: usize = 256;

/// What the input thread sends: a line, or why a line was dropped.
pub type Input = Result<String, String>;

/// Lines of standard input; the stream ends when the input does.
pub fn lines() -> mpsc::Receiver<Input> {
    let (mut tx, rx) = mpsc::channel(LINES_AHEAD);
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        while let Some(line) = read_line(&mut stdin) {
            // Blocks this thread, not the node, until there is room; an
            // error means the node is gone.
            if futures::executor::block_on(tx.send(line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The next line without its line ending; `None` at the end of input.
fn read_line<R: BufRead>(reader: &mut R) -> Option<Input> {
    let mut buf = Vec::new();
    let limit = MAX_LINE_BYTES as u64 + 1;
    match Read::take(&mut *reader, limit).read_until(b'\n', &mut buf) {
        Ok(0) => return None,
        Ok(_) => {}
        Err(e) => {
            tracing::warn!("standard input failed: {e}");
            return None;
        }
    }
    if buf.last() != Some(&b'\n') && buf.len() > MAX_LINE_BYTES {
        // Drop the rest of the line; an error at the end is the end.
        let _ = reader.skip_until(b'\n');
        return Some(Err(format!("line longer than {MAX_LINE_BYTES} bytes")));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    Some(String::from_utf8(buf).map_err(|_| "line is not UTF-8".to_owned()))
}
