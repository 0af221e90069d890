//! The error of the Unix transports, and how the driver classifies it.

use core::fmt;

use corowire::conn::HandleError;
use corowire::transport::{BufferTooSmall, ErrorKind};
use nix::errno::Errno;

use crate::ring::ShmError;

/// Why a transport operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// Nothing listens on the service's socket (`ECONNREFUSED`, or `ENOENT` for filesystem
    /// sockets): the daemon is not running, or the service is not loaded.
    NoDaemon(Errno),
    /// The setup handshake failed: the server refused (negative errno), sent a malformed
    /// response, or chose a transport this client does not implement.
    Handshake(HandleError),
    /// The deadline passed first.
    Timeout,
    /// The server is gone: EOF or hang-up on the setup socket, or a dropped `ref_count`.
    Disconnected,
    /// The server asked clients to back off (flow control), or the request ring is full.
    TryAgain,
    /// A frame was larger than the buffer it was to be read into; it was left unread.
    BufferTooSmall(BufferTooSmall),
    /// A ring is malformed or corrupt.
    Ring(ShmError),
    /// A system call failed.
    Io(Errno),
    /// The server or the files its setup response named failed a check (root or the
    /// client's own user, a `qb-*` directory of theirs, no symbolic link): the client
    /// refused to map or ever remove them.
    Untrusted(super::Untrusted),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDaemon(_) => f.write_str("no daemon listens on the service socket"),
            Self::Handshake(_) => f.write_str("connection setup failed"),
            Self::Timeout => f.write_str("timed out"),
            Self::Disconnected => f.write_str("the daemon closed the connection"),
            Self::TryAgain => f.write_str("the daemon asked to try again later (flow control)"),
            Self::BufferTooSmall(e) => e.fmt(f),
            Self::Ring(e) => e.fmt(f),
            Self::Io(_) => f.write_str("system call failed"),
            Self::Untrusted(e) => e.fmt(f),
        }
    }
}

/// As [`crate::Error`]: [`TransportError::BufferTooSmall`], [`TransportError::Ring`] and
/// [`TransportError::Untrusted`] are transparent; the other variants with a cause give it as the `source()`.
impl core::error::Error for TransportError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NoDaemon(e) | Self::Io(e) => Some(e),
            Self::Handshake(e) => Some(e),
            Self::Untrusted(e) => e.source(),
            Self::BufferTooSmall(e) => e.source(),
            Self::Ring(e) => e.source(),
            _ => None,
        }
    }
}

impl corowire::transport::TransportError for TransportError {
    fn kind(&self) -> ErrorKind {
        match self {
            Self::Timeout => ErrorKind::Timeout,
            Self::Disconnected => ErrorKind::Disconnected,
            Self::TryAgain => ErrorKind::TryAgain,
            _ => ErrorKind::Other,
        }
    }
}

impl From<ShmError> for TransportError {
    fn from(e: ShmError) -> Self {
        match e {
            ShmError::Full { .. } => Self::TryAgain,
            ShmError::Io(e) => Self::Io(e),
            // The same error as on sockets: it is not the ring's fault.
            ShmError::BufferTooSmall { len, available } => {
                Self::BufferTooSmall(BufferTooSmall { needed: len, available })
            }
            e => Self::Ring(e),
        }
    }
}

/// The error of a failed `send`/`recv` on a connected socket: a peer that is gone is
/// [`TransportError::Disconnected`].
pub(crate) fn disconnected(e: Errno) -> TransportError {
    match e {
        Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN => TransportError::Disconnected,
        e => TransportError::Io(e),
    }
}
