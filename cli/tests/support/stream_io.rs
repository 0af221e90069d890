//! `embedded_io` over a blocking `UnixStream` or `TcpStream`, for `corowire-embedded`'s blocking
//! client talking to `corowire gateway` (`cli/tests/gateway.rs`, `benches/benches/gateway.rs`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// A blocking byte stream that can be switched to non-blocking for a look ahead.
pub(crate) trait Stream: Read + Write {
    /// `set_nonblocking` of the std type.
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()>;
}

impl Stream for UnixStream {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        Self::set_nonblocking(self, on)
    }
}

impl Stream for TcpStream {
    fn set_nonblocking(&self, on: bool) -> std::io::Result<()> {
        Self::set_nonblocking(self, on)
    }
}

/// `embedded_io` over a blocking stream; `read_ready` reads one byte ahead.
pub(crate) struct Io<S: Stream = UnixStream> {
    stream: S,
    ahead: Option<u8>,
    eof: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IoError(std::io::ErrorKind);

impl core::fmt::Display for IoError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl core::error::Error for IoError {}

impl embedded_io::Error for IoError {
    fn kind(&self) -> embedded_io::ErrorKind {
        match self.0 {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => embedded_io::ErrorKind::TimedOut,
            _ => embedded_io::ErrorKind::Other,
        }
    }
}

/// Runs `call` (one `read` or `write`) again while it fails with `Interrupted`: a socket with a
/// receive timeout (`SO_RCVTIMEO`) fails a blocked `recv` with `EINTR` when the process is stopped
/// and continued (signal(7)), which a loaded machine's scheduler or a debugger may do.
pub(crate) fn retrying<T>(mut call: impl FnMut() -> std::io::Result<T>) -> std::io::Result<T> {
    loop {
        match call() {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            got => return got,
        }
    }
}

fn io_error(e: &std::io::Error) -> IoError {
    IoError(e.kind())
}

impl<S: Stream> embedded_io::ErrorType for Io<S> {
    type Error = IoError;
}

impl<S: Stream> embedded_io::Read for Io<S> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, IoError> {
        match (self.ahead.take(), buf.first_mut()) {
            (Some(b), Some(first)) => {
                *first = b;
                Ok(1)
            }
            (ahead, _) => {
                self.ahead = ahead;
                if self.eof {
                    return Ok(0);
                }
                retrying(|| self.stream.read(buf)).map_err(|e| io_error(&e))
            }
        }
    }
}

impl<S: Stream> embedded_io::ReadReady for Io<S> {
    fn read_ready(&mut self) -> Result<bool, IoError> {
        if self.ahead.is_some() || self.eof {
            return Ok(true);
        }
        self.stream.set_nonblocking(true).map_err(|e| io_error(&e))?;
        let mut byte = [0u8];
        let got = retrying(|| self.stream.read(&mut byte));
        self.stream.set_nonblocking(false).map_err(|e| io_error(&e))?;
        match got {
            Ok(0) => self.eof = true,
            Ok(_) => self.ahead = Some(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
            Err(e) => return Err(io_error(&e)),
        }
        Ok(true)
    }
}

impl<S: Stream> embedded_io::Write for Io<S> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, IoError> {
        retrying(|| self.stream.write(buf)).map_err(|e| io_error(&e))
    }

    fn flush(&mut self) -> Result<(), IoError> {
        Ok(())
    }
}

impl<S: Stream> Io<S> {
    /// Wraps a connected stream.
    pub(crate) fn new(stream: S) -> Self {
        Self { stream, ahead: None, eof: false }
    }
}
