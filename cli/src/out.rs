//! stdout and stderr with C stdio's buffering, so that even the two streams merged
//! (`2>&1`) come out in the same order as from the C tools.
//!
//! - stdout on a terminal is line-buffered; otherwise it is fully buffered and written in whole
//!   blocks of its `st_blksize` (as glibc does), and at exit;
//! - stderr is unbuffered;
//! - errors (a closed pipe) are ignored: the C tools would die of `SIGPIPE`, we go on and exit
//!   with the same status.

use core::cell::RefCell;
use std::io::{IsTerminal, Write};

struct Stdout {
    /// `None` when stdout is a terminal (line-buffered by std), else the block size.
    block: Option<usize>,
    buf: Vec<u8>,
}

thread_local! {
    static STDOUT: RefCell<Stdout> = RefCell::new(Stdout::new());
}

impl Stdout {
    fn new() -> Self {
        let block = if std::io::stdout().is_terminal() {
            None
        } else {
            use std::os::unix::fs::MetadataExt;
            let size = std::fs::metadata("/proc/self/fd/1").map_or(4096, |m| m.blksize());
            Some(usize::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096))
        };
        Self { block, buf: Vec::new() }
    }

    fn write(&mut self, bytes: &[u8]) {
        let Some(block) = self.block else {
            let _ = std::io::stdout().lock().write_all(bytes);
            return;
        };
        self.buf.extend_from_slice(bytes);
        let whole = self.buf.len() / block * block;
        if whole > 0 {
            write_raw(&self.buf[..whole]);
            self.buf.drain(..whole);
        }
    }

    fn flush(&mut self) {
        if !self.buf.is_empty() {
            write_raw(&self.buf);
            self.buf.clear();
        }
        let _ = std::io::stdout().lock().flush();
    }
}

/// Writes through std's (line-buffered) stdout and pushes it out at once.
fn write_raw(bytes: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

/// Writes bytes to stdout.
pub(crate) fn stdout(bytes: &[u8]) {
    STDOUT.with(|s| s.borrow_mut().write(bytes));
}

/// Writes a string to stdout.
pub(crate) fn print(s: &str) {
    stdout(s.as_bytes());
}

/// Writes bytes to stderr (unbuffered, like C's `stderr`).
pub(crate) fn stderr(bytes: &[u8]) {
    let _ = std::io::stderr().lock().write_all(bytes);
}

/// Writes a string to stderr.
pub(crate) fn eprint(s: &str) {
    stderr(s.as_bytes());
}

/// Flushes stdout (`fflush(stdout)`; also done at exit).
pub(crate) fn flush() {
    STDOUT.with(|s| s.borrow_mut().flush());
}
