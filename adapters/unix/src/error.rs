//! The error type of the blocking clients.

use core::fmt;

use corowire::cmap::ValueType;
use corowire::conn::{HandleError, SubmitError};
use corowire::driver::Error as DriverError;
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
    /// does not implement (POSIX or SysV message queues, which corosync never picks).
    Handshake(HandleError),
}

impl core::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NoDaemon(e) => Some(e),
            Self::Refused(e) => Some(e),
            Self::Handshake(e) => Some(e),
        }
    }
}

/// A check the client made itself: corosync was not asked, or its answer was fine but not
/// what the call needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CheckError {
    /// A typed getter found a value of another type (libcmap's `CS_ERR_INVALID_PARAM`).
    WrongType {
        /// The key.
        key: String,
        /// The type the getter reads.
        expected: ValueType,
        /// The type of the value corosync has.
        actual: ValueType,
    },
    /// A request or value larger than the negotiated maximum message size allows (libcmap's
    /// `CS_ERR_TOO_BIG`); nothing was sent for it.
    TooBig {
        /// The key, where the call has one.
        key: Option<String>,
        /// Bytes needed: the encoded request, or the value.
        len: usize,
        /// Bytes allowed.
        max: usize,
    },
}

impl CheckError {
    /// The `cs_error_t` libcmap returns for the same check.
    pub fn cs_error(&self) -> CsError {
        match self {
            Self::WrongType { .. } => CsError::InvalidParam,
            Self::TooBig { .. } => CsError::TooBig,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongType { key, expected, actual } => write!(
                f,
                "{key} holds a value of type {}, not {} (checked by the client)",
                actual.cmapctl_name(),
                expected.cmapctl_name()
            ),
            Self::TooBig { key, len, max } => {
                f.write_str("request")?;
                if let Some(key) = key {
                    write!(f, " for {key}")?;
                }
                write!(
                    f,
                    " needs {len} bytes, more than the {max} the connection's message size allows \
                     (checked by the client, not sent)"
                )
            }
        }
    }
}

impl core::error::Error for CheckError {}

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
    /// The daemon answered with this `cs_error_t` (or the request failed a client-side check
    /// libcmap also makes, such as a key name's length, with the code libcmap returns).
    Cs(CsError),
    /// A check the client made itself ([`CheckError`]).
    Check(CheckError),
    /// Connecting to `service` failed.
    Connect {
        /// The libqb service name that was used (the service's standard one, or
        /// `Options::service_name`).
        service: String,
        /// Why.
        reason: ConnectError,
    },
    /// The call's timeout (or a dispatch's time limit) passed first. A reply that comes later
    /// is discarded.
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
            Self::Check(e) => e.cs_error(),
            Self::Connect { reason: ConnectError::NoDaemon(_), .. } => CsError::Library,
            Self::Connect { reason: ConnectError::Refused(e), .. } => e.cs_error(),
            Self::Connect { reason: ConnectError::Handshake(e), .. } | Self::Protocol(e) => e.cs_error(),
            // libqb reports ETIMEDOUT, which qb_to_cs_error maps to CS_ERR_TRY_AGAIN.
            Self::Timeout => CsError::TryAgain,
            Self::Disconnected => CsError::Library,
            Self::Ring(ShmError::Full { .. }) => CsError::TryAgain,
            Self::Ring(ShmError::BufferTooSmall { .. }) => CsError::TooBig,
            Self::Ring(ShmError::TooLarge { .. }) => CsError::TooBig,
            Self::Ring(ShmError::Io(e)) | Self::Io(e) => CsError::from_errno(*e as i32),
            Self::Ring(_) => CsError::MessageError,
        }
    }

    /// Names `key` in a client-side size check that did not know it.
    pub(crate) fn for_key(self, key: &str) -> Self {
        match self {
            Self::Check(CheckError::TooBig { key: None, len, max }) => {
                Self::Check(CheckError::TooBig { key: Some(key.to_owned()), len, max })
            }
            e => e,
        }
    }

    /// The error of a connection attempt to the libqb service `service`.
    pub(crate) fn from_transport(service: &str, e: TransportError) -> Self {
        let service = service.to_owned();
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
            TransportError::BufferTooSmall(b) => {
                Self::Ring(ShmError::BufferTooSmall { len: b.needed, available: b.available })
            }
            TransportError::Ring(r) => Self::Ring(r),
            TransportError::Io(e) => Self::Io(e),
        }
    }
}

impl From<DriverError<TransportError>> for Error {
    fn from(e: DriverError<TransportError>) -> Self {
        match e {
            DriverError::Cs(e) => Self::Cs(e),
            DriverError::TooBig { len, max } => Self::Check(CheckError::TooBig { key: None, len, max }),
            DriverError::Submit(e) => e.into(),
            DriverError::Timeout => Self::Timeout,
            DriverError::Disconnected => Self::Disconnected,
            DriverError::Protocol(e) => Self::Protocol(e),
            DriverError::Transport(e) => e.into(),
            // A kind of driver error this version does not know: what libcmap reports for
            // an error of its own.
            _ => Self::Cs(CsError::Library),
        }
    }
}

impl From<CheckError> for Error {
    fn from(e: CheckError) -> Self {
        Self::Check(e)
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
            Self::Check(e) => e.fmt(f),
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

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Cs(e) => Some(e),
            Self::Check(e) => Some(e),
            Self::Connect { reason, .. } => Some(reason),
            Self::Protocol(e) => Some(e),
            Self::Ring(e) => Some(e),
            Self::Io(e) => Some(e),
            Self::Timeout | Self::Disconnected => None,
        }
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
