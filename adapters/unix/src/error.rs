//! The error type of the blocking clients.

use core::fmt;

use corowire::cmap::ValueType;
use corowire::conn::{HandleError, SubmitError};
use corowire::driver::Error as DriverError;
use corowire::transport::BufferTooSmall;
use corowire::{CsError, DispatchMode, EncodeError, SetupError};
use nix::errno::Errno;

use crate::ring::ShmError;
use crate::transport::TransportError;

/// Why connecting to a service failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectError {
    /// No server listens on the service's libqb socket (`ECONNREFUSED`, `ENOENT`): corosync
    /// is not running, runs in another network namespace, or does not provide the service
    /// (e.g. no votequorum without `quorum.provider: corosync_votequorum`); or the client
    /// looked for corosync's names while a `corowire serve --name-prefix P` serves `P-…`
    /// ([`NAME_PREFIX_ENV`](crate::NAME_PREFIX_ENV)).
    NoDaemon(Errno),
    /// The daemon refused the connection: `EACCES` (not root and no `uidgid` entry),
    /// `ENOSYS` (service not loaded), `EAGAIN` (not ready yet), ….
    Refused(SetupError),
    /// The handshake went wrong otherwise: a malformed response, or a transport this client
    /// does not implement (POSIX or SysV message queues, which corosync never picks).
    Handshake(HandleError),
    /// The connection failed otherwise: a system call (e.g. `ENAMETOOLONG` for a service
    /// name too long for a socket address), the call's timeout, the server hanging up, or a
    /// malformed ring.
    Transport(TransportError),
}

/// [`ConnectError::Refused`] and [`ConnectError::Transport`] are transparent (their
/// `Display` and `source()` are the inner error's); the others say what failed and give the
/// cause as the `source()`.
impl core::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::NoDaemon(e) => Some(e),
            Self::Refused(e) => e.source(),
            Self::Handshake(e) => Some(e),
            Self::Transport(e) => e.source(),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDaemon(_) => write!(
                f,
                "no server listens on its libqb socket (is corosync running? for `corowire serve \
                 --name-prefix P` set {}=P)",
                crate::NAME_PREFIX_ENV
            ),
            Self::Refused(e) => e.fmt(f),
            Self::Handshake(_) => f.write_str("the handshake failed"),
            Self::Transport(e) => e.fmt(f),
        }
    }
}

/// A key operation of [`Cmap`](crate::cmap::Cmap), named in [`Error::Key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyOp {
    /// `get`, the typed getters, `get_type`, `get_many`, `dump` (`cmap_get`).
    Get,
    /// `set` and the typed setters (`cmap_set`).
    Set,
    /// `delete` (`cmap_delete`).
    Delete,
    /// `inc` (`cmap_inc`).
    Inc,
    /// `dec` (`cmap_dec`).
    Dec,
}

impl fmt::Display for KeyOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Delete => "delete",
            Self::Inc => "inc",
            Self::Dec => "dec",
        })
    }
}

/// A check the client made itself: corosync was not asked (nothing was sent), or its answer
/// was fine but not what the call needs. Each has the `cs_error_t` libcmap or libvotequorum
/// returns for the same case ([`CheckError::cs_error`]).
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
    /// A key name that cannot be sent: 256 bytes or longer (`CS_ERR_NAME_TOO_LONG`, as
    /// libcmap), or with a NUL byte (`CS_ERR_INVALID_PARAM`).
    KeyName {
        /// The key, lossily if it is not UTF-8.
        key: String,
        /// What is wrong with it.
        error: EncodeError,
    },
    /// A quorum device name that is empty or too long (libvotequorum's
    /// `CS_ERR_INVALID_PARAM`).
    QdeviceName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        error: EncodeError,
    },
    /// [`DispatchMode::OneNonBlocking`](crate::DispatchMode::OneNonBlocking) found no
    /// pending event (`CS_ERR_TRY_AGAIN`, as `cmap_dispatch`).
    NothingPending,
    /// The handle was finalized by a callback's [`Control::finalize`](crate::Control::finalize)
    /// (`CS_ERR_BAD_HANDLE`, as libcmap after `cmap_finalize`).
    Finalized,
    /// The request ring is full, or the daemon asked clients to back off (flow control);
    /// nothing was sent (`CS_ERR_TRY_AGAIN`). `Options::retry_try_again` retries it.
    Busy,
    /// The connection refused a request before sending it (an unknown track handle, too
    /// many tracks, ...).
    Refused(SubmitError),
    /// A dispatch ended because an event could not be read (malformed, or larger than the
    /// event buffer), with the `cs_error_t` libcmap's dispatch returns for it.
    Dispatch(CsError),
    /// [`Cmap::get`](crate::cmap::Cmap::get) asked for the value `attempts` times with the
    /// length corosync reported, and each time it had changed size again
    /// (`CS_ERR_TRY_AGAIN`; the client gave up, the daemon did not refuse).
    ValueKeptChanging {
        /// The key.
        key: String,
        /// GETs sent.
        attempts: usize,
    },
}

impl CheckError {
    /// The `cs_error_t` libcmap / libvotequorum returns for the same check.
    pub fn cs_error(&self) -> CsError {
        match self {
            Self::WrongType { .. } | Self::QdeviceName { .. } => CsError::InvalidParam,
            Self::TooBig { .. } => CsError::TooBig,
            Self::KeyName { error, .. } => SubmitError::Encode(*error).cs_error(),
            Self::NothingPending | Self::Busy | Self::ValueKeptChanging { .. } => CsError::TryAgain,
            Self::Finalized => CsError::BadHandle,
            Self::Refused(e) => e.cs_error(),
            Self::Dispatch(e) => *e,
        }
    }
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WrongType { key, expected, actual } => {
                write!(f, "{key} holds a value of type {actual}, not {expected} (checked by the client)")
            }
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
            Self::KeyName { key, .. } => {
                write!(f, "invalid key {key:?} (checked by the client, not sent)")
            }
            Self::QdeviceName { name, .. } => {
                write!(f, "invalid quorum device name {name:?} (checked by the client, not sent)")
            }
            Self::NothingPending => f.write_str("no event is pending (non-blocking dispatch)"),
            Self::Finalized => f.write_str("the handle was finalized (by Control::finalize)"),
            Self::Busy => f.write_str(
                "the daemon's request ring is full or it asked clients to back off (flow control); \
                 not sent, try again",
            ),
            Self::Refused(_) => f.write_str("the client refused the request (not sent)"),
            Self::Dispatch(_) => f.write_str("the dispatch could not read an event"),
            Self::ValueKeptChanging { key, attempts } => write!(
                f,
                "the value of {key} changed size each of the {attempts} times it was fetched \
                 (the client gave up; try again)"
            ),
        }
    }
}

/// The variants with a cause (a bad name, a refused request, a dispatch's `cs_error_t`) say
/// what failed and give the cause as the `source()`.
impl core::error::Error for CheckError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::KeyName { error, .. } | Self::QdeviceName { error, .. } => Some(error),
            Self::Refused(e) => Some(e),
            Self::Dispatch(e) => Some(e),
            _ => None,
        }
    }
}

/// An error of a [`Cmap`](crate::cmap::Cmap) or [`Votequorum`](crate::votequorum::Votequorum)
/// call.
///
/// What the daemon answered is [`Error::Cs`], or [`Error::Key`] for a CMAP key operation;
/// what the client found itself is [`Error::Check`]; the rest are connection failures.
/// [`Error::cs_error`] gives the `cs_error_t` libcmap / libvotequorum would return in every
/// case, and [`Error::answered`] the code the daemon answered, key or not.
///
/// As the Rust API guidelines ask, each part of a chain is printed once: a variant that only
/// wraps another error ([`Error::Check`], [`Error::Ring`]) is transparent (its `Display` and
/// `source()` are the inner error's); a variant with context ([`Error::Key`],
/// [`Error::Connect`], ...) displays the context only and gives the cause as the `source()`.
/// So `{}` prints the outermost part; [`Error::report`] (or anyhow's `{:#}`) the whole chain:
/// `{}` of a GET of a missing key says `the daemon refused to get a.b`, `report()` adds
/// `: does not exist (CS_ERR_NOT_EXIST, 12)`.
///
/// corowire-tokio re-exports this type for its async clients: what is said here of a call
/// holds for both crates, except where a variant names one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The daemon answered a call that names no key with this `cs_error_t` (the `source()`).
    Cs(CsError),
    /// The daemon answered the key operation `op` on `key` with `error` (e.g.
    /// `CS_ERR_NOT_EXIST` for a missing key). Match it with
    /// `Error::Key { error: CsError::NotExist, .. }` or through [`Error::answered`].
    Key {
        /// The operation.
        op: KeyOp,
        /// The key.
        key: String,
        /// The daemon's answer (the `source()`).
        error: CsError,
    },
    /// A check the client made itself ([`CheckError`]); nothing was sent, or the answer did
    /// not fit the call.
    Check(CheckError),
    /// Connecting to `service` failed.
    Connect {
        /// The libqb service name that was used (the service's standard one, or
        /// `Options::service_name`, or the one `COROWIRE_NAME_PREFIX` gave).
        service: String,
        /// Why (the `source()`).
        reason: ConnectError,
    },
    /// The call's timeout passed before the reply came. A reply that comes later is
    /// discarded, but the request may still have been applied: a SET that timed out while
    /// the daemon was stopped (`SIGSTOP`) is stored once it runs again. Read the key back
    /// before retrying an operation that is not idempotent (`inc`, `dec`). Nothing tells
    /// the client that such a late SET happened: a reader that must know re-reads after a
    /// timeout (no resync marker comes, the connection never broke).
    ///
    /// With [`Options::reconnect`](crate::Options::reconnect), a call made while the daemon
    /// is away waits for the new connection within the same timeout, so `Timeout` may also
    /// mean that there is no daemon; corowire-tokio's `is_connected()` and its streams'
    /// `Tracked::Disconnected` item tell the two apart. With no timeout
    /// (`Options::timeout: None`) such a call waits until the daemon is back.
    Timeout,
    /// Blocking clients only (corowire-tokio's streams have no time limit: wrap their
    /// `next()` in `tokio::time::timeout`): no event came within
    /// [`Cmap::dispatch_timeout`](crate::cmap::Cmap::dispatch_timeout)'s (or
    /// [`Votequorum::dispatch_timeout`](crate::votequorum::Votequorum::dispatch_timeout)'s)
    /// time limit.
    EventTimeout,
    /// The daemon closed the connection (or died) before this call was answered; it may or
    /// may not have been applied. Without [`Options::reconnect`](crate::Options::reconnect)
    /// the connection is gone for good: every later call fails the same way (and
    /// corowire-tokio's streams end after their `Tracked::Disconnected` item). With it, the
    /// handle connects again: a blocking client's next call reconnects; corowire-tokio's
    /// connection thread reconnects in the background, with backoff, and later calls wait
    /// for it (see [`Error::Timeout`]).
    Disconnected,
    /// Not a failure: the resync marker of a handle connected with
    /// [`Options::reconnect`](crate::Options::reconnect). The daemon went away and the handle
    /// connected again and re-created its tracking (the CMAP tracks under the same
    /// `TrackHandle`s, the votequorum `track_start` with the same context and flags);
    /// notifications of the time in between are lost, so re-read what you track. `dispatch`
    /// and `next_event` report it once after each reconnect, as tokio's broadcast reports
    /// `Lagged`; call them again to go on. Its `cs_error` is `CS_ERR_LIBRARY`, what
    /// libcmap reports on the loss.
    Resync,
    /// The daemon sent something that breaks the protocol (the `source()`); the handle is
    /// unusable.
    Protocol(HandleError),
    /// A well-formed reply that does not fit the request: a reply of another kind, a value
    /// type this client does not know, an item after the end of an iteration.
    UnexpectedReply {
        /// What did not match.
        what: &'static str,
    },
    /// A reply or event from the daemon was larger than the connection's buffer for it (on
    /// either transport): it was left unread and the handle is unusable. Events need a
    /// `max_msg_size` of at least `corowire::cmap::NOTIFICATION_MAX_LEN` (see
    /// [`Options::max_msg_size`](crate::Options::max_msg_size)).
    MessageTooLarge(BufferTooSmall),
    /// A shared-memory ring is malformed or corrupt; the handle is unusable.
    Ring(ShmError),
    /// A system call failed (the `source()`).
    Io(Errno),
}

impl Error {
    /// The whole chain, this error's `Display` and each `source()`'s, joined with `": "`;
    /// e.g. `the daemon refused to get a.b: does not exist (CS_ERR_NOT_EXIST, 12)`. `{}` prints
    /// only the first part.
    pub fn report(&self) -> impl fmt::Display + '_ {
        report(self)
    }

    /// The `cs_error_t` libcmap / libvotequorum would report for this error.
    pub fn cs_error(&self) -> CsError {
        match self {
            Self::Cs(e) | Self::Key { error: e, .. } => *e,
            Self::Check(e) => e.cs_error(),
            Self::Connect { reason: ConnectError::NoDaemon(_), .. } => CsError::Library,
            Self::Connect { reason: ConnectError::Refused(e), .. } => e.cs_error(),
            Self::Connect { reason: ConnectError::Handshake(e), .. } | Self::Protocol(e) => e.cs_error(),
            // libqb reports ETIMEDOUT, which qb_to_cs_error maps to CS_ERR_TRY_AGAIN.
            Self::Timeout | Self::EventTimeout => CsError::TryAgain,
            Self::Disconnected | Self::Resync => CsError::Library,
            Self::Ring(ShmError::Full { .. }) => CsError::TryAgain,
            Self::MessageTooLarge(_) | Self::Ring(ShmError::BufferTooSmall { .. }) => CsError::TooBig,
            Self::Ring(ShmError::TooLarge { .. }) => CsError::TooBig,
            Self::Ring(ShmError::Io(e)) | Self::Io(e) => CsError::from_errno(*e as i32),
            Self::Ring(_) | Self::UnexpectedReply { .. } => CsError::MessageError,
            Self::Connect { reason: ConnectError::Transport(e), .. } => Self::from(e.clone()).cs_error(),
        }
    }

    /// The `cs_error_t` the daemon answered ([`Error::Cs`] or [`Error::Key`]); `None` for
    /// the client's checks and connection failures.
    pub fn answered(&self) -> Option<CsError> {
        match self {
            Self::Cs(e) | Self::Key { error: e, .. } => Some(*e),
            _ => None,
        }
    }

    /// Names `key` and `op` in the daemon's answer to a key operation, and `key` in a
    /// client-side size check that did not know it.
    pub(crate) fn for_key(self, op: KeyOp, key: &str) -> Self {
        match self {
            Self::Cs(error) => Self::Key { op, key: key.to_owned(), error },
            Self::Check(CheckError::TooBig { key: None, len, max }) => {
                Self::Check(CheckError::TooBig { key: Some(key.to_owned()), len, max })
            }
            e => e,
        }
    }

    /// The error a dispatch ended with: its `cs_error_t` is the client's own finding.
    pub(crate) fn from_dispatch(e: DriverError<TransportError>, mode: DispatchMode) -> Self {
        match e {
            DriverError::Cs(CsError::BadHandle) => CheckError::Finalized.into(),
            DriverError::Cs(CsError::TryAgain) if mode == DispatchMode::OneNonBlocking => {
                CheckError::NothingPending.into()
            }
            DriverError::Cs(e) => CheckError::Dispatch(e).into(),
            DriverError::Timeout => Self::EventTimeout,
            e => e.into(),
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
            e => Self::Connect { service, reason: ConnectError::Transport(e) },
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
            TransportError::TryAgain => Self::Check(CheckError::Busy),
            TransportError::BufferTooSmall(b) => Self::MessageTooLarge(b),
            TransportError::Ring(r) => Self::Ring(r),
            TransportError::Io(e) => Self::Io(e),
            // Only a connection attempt finds it, and that gives `Error::Connect`.
            TransportError::Untrusted(_) => Self::Io(Errno::EACCES),
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
            _ => Self::Check(CheckError::Dispatch(CsError::Library)),
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
            SubmitError::Finalized => Self::Check(CheckError::Finalized),
            e => Self::Check(CheckError::Refused(e)),
        }
    }
}

/// A failed system call, e.g. of [`sys::sock::poll_readable`](crate::sys::sock::poll_readable),
/// is [`Error::Io`].
impl From<Errno> for Error {
    fn from(e: Errno) -> Self {
        Self::Io(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cs(_) => f.write_str("the daemon refused the call"),
            Self::Key { op, key, .. } => write!(f, "the daemon refused to {op} {key}"),
            Self::Check(e) => e.fmt(f),
            Self::Connect { service, .. } => write!(f, "cannot connect to the libqb service `{service}`"),
            Self::Timeout => f.write_str("timed out waiting for the daemon's reply"),
            Self::EventTimeout => f.write_str("no event came within the dispatch's time limit"),
            Self::Disconnected => f.write_str("the connection to the daemon was lost"),
            Self::Resync => f.write_str(
                "reconnected to the daemon after losing it: tracking was re-created, notifications \
                 in between may be lost",
            ),
            Self::Protocol(_) => f.write_str("protocol error"),
            Self::UnexpectedReply { what } => {
                write!(f, "protocol error: the daemon's reply did not match the request ({what})")
            }
            Self::MessageTooLarge(b) => write!(
                f,
                "a {}-byte message from the daemon does not fit the connection's {}-byte buffer \
                 (raise Options::max_msg_size)",
                b.needed, b.available
            ),
            Self::Ring(e) => e.fmt(f),
            Self::Io(_) => f.write_str("system call failed"),
        }
    }
}

/// [`Error::Check`] and [`Error::Ring`] are transparent; the other variants with a cause give
/// it here (see [`Error`]).
impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Cs(e) | Self::Key { error: e, .. } => Some(e),
            Self::Check(e) => e.source(),
            Self::Connect { reason, .. } => Some(reason),
            Self::Protocol(e) => Some(e),
            Self::Ring(e) => e.source(),
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// `e`'s chain (its `Display`, then each `source()`'s) joined with `": "`, for
/// [`Error::report`] and the server's messages about the crate's other errors.
pub(crate) fn report(e: &dyn core::error::Error) -> impl fmt::Display + '_ {
    Report(e)
}

/// [`report`]'s text.
struct Report<'a>(&'a dyn core::error::Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(e) = cause {
            write!(f, ": {e}")?;
            cause = e.source();
        }
        Ok(())
    }
}

/// A reply of another kind than the request's.
pub(crate) const OTHER_KIND: Error = Error::UnexpectedReply { what: "a reply of another kind" };

/// A reply whose value (or item) has a type this client does not know, or a length that does
/// not fit its type.
pub(crate) const BAD_VALUE: Error = Error::UnexpectedReply {
    what: "a value type this client does not know, or a length that does not fit it",
};

/// `Result` with [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;
