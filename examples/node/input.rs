//! Standard input, read on a thread of its own, one line at a time.
//!
//! Not tokio's `stdin()`: its blocking read cannot be cancelled, so `quit`
//! would hang until another line came. A plain thread dies with the process.

use std::io::{self, BufRead, Read};
use std::thread;

use futures::channel::mpsc;

/// Longest line read. Values are at most 60 KiB by default; a longer line
/// is refused without being held in memory.
const MAX_LINE_BYTES: usize = 256 * 1024;

/// What the input thread sends: a line, or why a line was dropped.
pub type Input = Result<String, String>;

/// Lines of standard input; the stream ends when the input does.
pub fn lines() -> mpsc::UnboundedReceiver<Input> {
    let (tx, rx) = mpsc::unbounded();
    thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        while let Some(line) = read_line(&mut stdin) {
            if tx.unbounded_send(line).is_err() {
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
