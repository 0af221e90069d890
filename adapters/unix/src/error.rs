//! The error type of the blocking clients.

use core::fmt;

use corowire::conn::{HandleError, SubmitError};
use corowire::{CsError, SetupError};
use nix::errno::Errno;

use crate::ring::ShmError;
use crate::transport::TransportError;

/// Why connecting to a service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// No daemon listens on the service's socket (`ECONNREFUSED`, `ENOENT`): corosync is not
    /// running, runs in another network namespace, or does not provide the service (e.g. no
    /// votequorum without `quorum.provider: corosync_votequorum`).
    NoDaemon(Errno),
    /// The daemon refused the connection: `EACCES` (not root and no `uidgid` entry),
    /// `ENOSYS` (service not loaded), `EAGAIN` (not ready yet), ….
    Refused(SetupError),
    /// The handshake went wrong otherwise: a malformed response, or a transport this client
    /// does not implement (only shared memory is).
    Handshake(HandleError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDaemon(e) => write!(f, "no corosync daemon is listening ({e})"),
            Self::Refused(e) => e.fmt(f),
            Self::Handshake(e) => write!(f, "handshake failed: {e}"),
        }
    }
}

/// An error of a [`Cmap`](crate::cmap::Cmap) or [`Votequorum`](crate::votequorum::Votequorum)
/// call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The daemon (or the client-side checks libcmap also makes) answered with this
    /// `cs_error_t`.
    Cs(CsError),
    /// Connecting to `service` failed.
    Connect {
        /// The libqb service name.
        service: &'static str,
        /// Why.
        reason: ConnectError,
    },
    /// The call's timeout passed before the reply came. A reply that comes later is discarded.
    Timeout,
    /// The daemon closed the connection (or died); the handle is unusable.
    Disconnected,
    /// The daemon sent something that breaks the protocol; the handle is unusable.
    Protocol(HandleError),
    /// A shared-memory ring is malformed or corrupt; the handle is unusable.
    Ring(ShmError),
    /// A system call failed.
    Io(Errno),
}

impl Error {
    /// The `cs_error_t` libcmap / libvotequorum would report for this error.
    pub fn cs_error(&self) -> CsError {
        match self {
            Self::Cs(e) => *e,
            Self::Connect { reason: ConnectError::NoDaemon(_), .. } => CsError::Library,
            Self::Connect { reason: ConnectError::Refused(e), .. } => e.cs_error(),
            Self::Connect { reason: ConnectError::Handshake(e), .. } | Self::Protocol(e) => e.cs_error(),
            // libqb reports ETIMEDOUT, which qb_to_cs_error maps to CS_ERR_TRY_AGAIN.
            Self::Timeout => CsError::TryAgain,
            Self::Disconnected => CsError::Library,
            Self::Ring(ShmError::Full { .. }) => CsError::TryAgain,
            Self::Ring(ShmError::TooLarge { .. }) => CsError::TooBig,
            Self::Ring(ShmError::Io(e)) | Self::Io(e) => CsError::from_errno(*e as i32),
            Self::Ring(_) => CsError::MessageError,
        }
    }

    pub(crate) fn from_transport(service: &'static str, e: TransportError) -> Self {
        match e {
            TransportError::NoDaemon(errno) => {
                Self::Connect { service, reason: ConnectError::NoDaemon(errno) }
            }
            TransportError::Handshake(HandleError::Setup(s)) => {
                Self::Connect { service, reason: ConnectError::Refused(s) }
            }
            TransportError::Handshake(h) => Self::Connect { service, reason: ConnectError::Handshake(h) },
            e => e.into(),
        }
    }
}

impl From<TransportError> for Error {
    fn from(e: TransportError) -> Self {
        match e {
            TransportError::NoDaemon(errno) => Self::Io(errno),
            TransportError::Handshake(h) => Self::Protocol(h),
            TransportError::Timeout => Self::Timeout,
            TransportError::Disconnected => Self::Disconnected,
            TransportError::TryAgain => Self::Cs(CsError::TryAgain),
            TransportError::Ring(r) => Self::Ring(r),
            TransportError::Io(e) => Self::Io(e),
        }
    }
}

impl From<SubmitError> for Error {
    fn from(e: SubmitError) -> Self {
        match e {
            SubmitError::Closed => Self::Disconnected,
            e => Self::Cs(e.cs_error()),
        }
    }
}

impl From<CsError> for Error {
    fn from(e: CsError) -> Self {
        Self::Cs(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cs(e) => write!(f, "corosync returned {e}"),
            Self::Connect { service, reason } => {
                write!(f, "cannot connect to corosync service {service}: {reason}")
            }
            Self::Timeout => f.write_str("timed out waiting for corosync's reply"),
            Self::Disconnected => f.write_str("the connection to corosync was lost"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Ring(e) => e.fmt(f),
            Self::Io(e) => write!(f, "system call failed: {e}"),
        }
    }
}

impl core::error::Error for Error {}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
