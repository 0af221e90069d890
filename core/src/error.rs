//! Error types: corosync's `cs_error_t`, libqb's setup errno, and the codec errors.

use core::fmt;

/// The `cs_error_t` status codes of corosync (`corotypes.h`), without `CS_OK`.
///
/// A service reply carries a raw `cs_error_t` in its header; [`CsError::check`] turns it into
/// `Result<(), CsError>`. The conversion is lossless: numbers that corosync does not define are
/// kept in [`CsError::Unknown`], so `CsError::check(x)` followed by [`CsError::to_raw`] gives `x`
/// back for every `x` except 1 (`CS_OK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CsError {
    /// 2 `CS_ERR_LIBRARY`: a library-side failure, e.g. the connection was lost.
    Library,
    /// 3 `CS_ERR_VERSION`.
    Version,
    /// 4 `CS_ERR_INIT`.
    Init,
    /// 5 `CS_ERR_TIMEOUT`.
    Timeout,
    /// 6 `CS_ERR_TRY_AGAIN`: temporarily unavailable; try the call again.
    TryAgain,
    /// 7 `CS_ERR_INVALID_PARAM`: a parameter was invalid (also corosync's generic reject).
    InvalidParam,
    /// 8 `CS_ERR_NO_MEMORY`.
    NoMemory,
    /// 9 `CS_ERR_BAD_HANDLE`: an unknown, stale or finalized handle.
    BadHandle,
    /// 10 `CS_ERR_BUSY`.
    Busy,
    /// 11 `CS_ERR_ACCESS`: permission denied (e.g. a read-only key).
    Access,
    /// 12 `CS_ERR_NOT_EXIST`: no such key, node or object.
    NotExist,
    /// 13 `CS_ERR_NAME_TOO_LONG`: a name is too long or not valid.
    NameTooLong,
    /// 14 `CS_ERR_EXIST`: it exists already.
    Exist,
    /// 15 `CS_ERR_NO_SPACE`.
    NoSpace,
    /// 16 `CS_ERR_INTERRUPT`.
    Interrupt,
    /// 17 `CS_ERR_NAME_NOT_FOUND`.
    NameNotFound,
    /// 18 `CS_ERR_NO_RESOURCES`.
    NoResources,
    /// 19 `CS_ERR_NOT_SUPPORTED`.
    NotSupported,
    /// 20 `CS_ERR_BAD_OPERATION`.
    BadOperation,
    /// 21 `CS_ERR_FAILED_OPERATION`.
    FailedOperation,
    /// 22 `CS_ERR_MESSAGE_ERROR`.
    MessageError,
    /// 23 `CS_ERR_QUEUE_FULL`.
    QueueFull,
    /// 24 `CS_ERR_QUEUE_NOT_AVAILABLE`.
    QueueNotAvailable,
    /// 25 `CS_ERR_BAD_FLAGS`.
    BadFlags,
    /// 26 `CS_ERR_TOO_BIG`.
    TooBig,
    /// 27 `CS_ERR_NO_SECTIONS`: no more items (end of an iteration).
    NoSections,
    /// 28 `CS_ERR_CONTEXT_NOT_FOUND`.
    ContextNotFound,
    /// 30 `CS_ERR_TOO_MANY_GROUPS`.
    TooManyGroups,
    /// 100 `CS_ERR_SECURITY`.
    Security,
    /// A number that corosync does not define (kept so that the conversion is lossless).
    Unknown(i32),
}

/// `(raw value, error, C name, meaning)` for every defined code; one table drives all conversions.
const TABLE: [(i32, CsError, &str, &str); 29] = [
    (2, CsError::Library, "CS_ERR_LIBRARY", "library error (connection lost or refused)"),
    (3, CsError::Version, "CS_ERR_VERSION", "version mismatch"),
    (4, CsError::Init, "CS_ERR_INIT", "initialisation failed"),
    (5, CsError::Timeout, "CS_ERR_TIMEOUT", "timed out"),
    (6, CsError::TryAgain, "CS_ERR_TRY_AGAIN", "temporarily unavailable, try again"),
    (7, CsError::InvalidParam, "CS_ERR_INVALID_PARAM", "invalid parameter"),
    (8, CsError::NoMemory, "CS_ERR_NO_MEMORY", "out of memory"),
    (9, CsError::BadHandle, "CS_ERR_BAD_HANDLE", "bad or finalized handle"),
    (10, CsError::Busy, "CS_ERR_BUSY", "busy"),
    (11, CsError::Access, "CS_ERR_ACCESS", "access denied"),
    (12, CsError::NotExist, "CS_ERR_NOT_EXIST", "does not exist"),
    (13, CsError::NameTooLong, "CS_ERR_NAME_TOO_LONG", "name too long or invalid"),
    (14, CsError::Exist, "CS_ERR_EXIST", "already exists"),
    (15, CsError::NoSpace, "CS_ERR_NO_SPACE", "no space"),
    (16, CsError::Interrupt, "CS_ERR_INTERRUPT", "interrupted"),
    (17, CsError::NameNotFound, "CS_ERR_NAME_NOT_FOUND", "name not found"),
    (18, CsError::NoResources, "CS_ERR_NO_RESOURCES", "no resources"),
    (19, CsError::NotSupported, "CS_ERR_NOT_SUPPORTED", "not supported"),
    (20, CsError::BadOperation, "CS_ERR_BAD_OPERATION", "bad operation"),
    (21, CsError::FailedOperation, "CS_ERR_FAILED_OPERATION", "operation failed"),
    (22, CsError::MessageError, "CS_ERR_MESSAGE_ERROR", "message error"),
    (23, CsError::QueueFull, "CS_ERR_QUEUE_FULL", "queue full"),
    (24, CsError::QueueNotAvailable, "CS_ERR_QUEUE_NOT_AVAILABLE", "queue not available"),
    (25, CsError::BadFlags, "CS_ERR_BAD_FLAGS", "bad flags"),
    (26, CsError::TooBig, "CS_ERR_TOO_BIG", "too big"),
    (27, CsError::NoSections, "CS_ERR_NO_SECTIONS", "no more items"),
    (28, CsError::ContextNotFound, "CS_ERR_CONTEXT_NOT_FOUND", "context not found"),
    (30, CsError::TooManyGroups, "CS_ERR_TOO_MANY_GROUPS", "too many groups"),
    (100, CsError::Security, "CS_ERR_SECURITY", "security error"),
];

impl CsError {
    /// The raw `cs_error_t` value of `CS_OK`.
    pub const RAW_OK: i32 = 1;

    /// Turns a raw `cs_error_t` into `Ok(())` (for `CS_OK`) or the error.
    pub fn check(raw: i32) -> Result<(), Self> {
        if raw == Self::RAW_OK {
            Ok(())
        } else {
            Err(Self::from_raw(raw))
        }
    }

    /// The error for a raw value that is not `CS_OK`. `from_raw(1)` gives `Unknown(1)`, since
    /// `CS_OK` is no error; use [`CsError::check`] for values that may be `CS_OK`.
    pub fn from_raw(raw: i32) -> Self {
        TABLE.iter().find(|(n, ..)| *n == raw).map_or(Self::Unknown(raw), |(_, e, ..)| *e)
    }

    /// The raw `cs_error_t` value.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Unknown(raw) => raw,
            known => TABLE.iter().find(|(_, e, ..)| *e == known).map_or(0, |(n, ..)| *n),
        }
    }

    /// The C name, e.g. `"CS_ERR_TRY_AGAIN"`; `None` for [`CsError::Unknown`].
    pub fn name(self) -> Option<&'static str> {
        TABLE.iter().find(|(_, e, ..)| *e == self).map(|(_, _, name, _)| *name)
    }

    /// The raw status of a result: 1 for `Ok`, the error's number otherwise.
    pub fn raw_of(result: Result<(), Self>) -> i32 {
        result.map_or_else(Self::to_raw, |()| Self::RAW_OK)
    }

    /// Maps a libqb errno (as a positive number) to `cs_error_t` as `qb_to_cs_error` does.
    pub fn from_errno(errno: i32) -> Self {
        // Linux errno numbers; the daemon and its clients share the platform's values.
        match errno {
            9 => Self::BadHandle,                  // EBADF
            12 => Self::NoMemory,                  // ENOMEM
            42 | 105 | 110 | 11 => Self::TryAgain, // ENOMSG ENOBUFS ETIMEDOUT EAGAIN
            52 => Self::FailedOperation,           // EBADE
            62 => Self::Timeout,                   // ETIME
            22 => Self::InvalidParam,              // EINVAL
            16 => Self::Busy,                      // EBUSY
            13 => Self::Access,                    // EACCES
            75 => Self::NameTooLong,               // EOVERFLOW
            17 => Self::Exist,                     // EEXIST
            28 => Self::NoSpace,                   // ENOSPC
            4 => Self::Interrupt,                  // EINTR
            2 | 19 => Self::NotExist,              // ENOENT ENODEV
            38 | 95 => Self::NotSupported,         // ENOSYS ENOTSUP
            74 => Self::MessageError,              // EBADMSG
            90 | 7 => Self::TooBig,                // EMSGSIZE E2BIG
            _ => Self::Library,                    // ECONNREFUSED, ENOTCONN, anything else
        }
    }
}

impl fmt::Display for CsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match TABLE.iter().find(|(_, e, ..)| e == self) {
            Some((n, _, name, meaning)) => write!(f, "{meaning} ({name}, {n})"),
            None => write!(f, "unknown cs_error_t value {}", self.to_raw()),
        }
    }
}

impl core::error::Error for CsError {}

/// A message could not be encoded; the output buffer was left untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EncodeError {
    /// The output buffer is too small; `required` bytes are needed.
    BufferTooSmall {
        /// Bytes the message needs.
        required: usize,
        /// Bytes the buffer had.
        available: usize,
    },
    /// A name or key is too long for its field (`len` bytes, at most `max`).
    NameTooLong {
        /// Length given.
        len: usize,
        /// Largest length the field takes.
        max: usize,
    },
    /// A name must not be empty here.
    EmptyName,
    /// A name contains a NUL byte, which would truncate it on the wire.
    NulInName,
    /// A value is longer than the protocol allows (`len` bytes, at most `max`).
    ValueTooLarge {
        /// Length given.
        len: usize,
        /// Largest length allowed.
        max: usize,
    },
    /// The message would not fit in an `i32` size field.
    MessageTooLarge {
        /// Length of the message.
        len: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BufferTooSmall { required, available } => {
                write!(f, "output buffer too small: {required} bytes needed, {available} given")
            }
            Self::NameTooLong { len, max } => {
                write!(f, "name of {len} bytes is too long (at most {max})")
            }
            Self::EmptyName => f.write_str("name must not be empty"),
            Self::NulInName => f.write_str("name contains a NUL byte"),
            Self::ValueTooLarge { len, max } => {
                write!(f, "value of {len} bytes is too large (at most {max})")
            }
            Self::MessageTooLarge { len } => write!(f, "message of {len} bytes is too large"),
        }
    }
}

impl core::error::Error for EncodeError {}

/// A frame could not be decoded.
///
/// [`DecodeError::Incomplete`] means "give me more bytes"; every other variant means the bytes
/// are malformed and more input will not help. Each malformed case names the field and the
/// byte offset (from the start of the frame) where the problem was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ends before the frame does: `needed` bytes in all are required.
    Incomplete {
        /// Total bytes the frame needs.
        needed: usize,
        /// Bytes present.
        have: usize,
    },
    /// The header's `size` field disagrees with the message layout.
    BadSize {
        /// Message id from the header.
        id: i32,
        /// `size` declared in the header.
        declared: i64,
        /// Smallest size the message may have.
        min: usize,
        /// Largest size the message may have.
        max: usize,
    },
    /// The frame is longer than its header's `size` says.
    TrailingBytes {
        /// `size` declared in the header.
        declared: usize,
        /// Bytes given.
        actual: usize,
    },
    /// A message id that this direction of this service does not define.
    UnknownId {
        /// The id.
        id: i32,
    },
    /// A field holds a value outside its range.
    BadField {
        /// Name of the field, as in the C struct.
        field: &'static str,
        /// Byte offset of the field in the frame.
        offset: usize,
        /// The value found (sign-extended or truncated to 64 bits).
        value: u64,
    },
    /// A length field points past the end of the frame.
    LengthOutOfBounds {
        /// Name of the field, as in the C struct.
        field: &'static str,
        /// Byte offset of the field in the frame.
        offset: usize,
        /// Length found.
        len: u64,
        /// Bytes available for it.
        available: usize,
    },
    /// A fixed-size string field has no terminating NUL.
    Unterminated {
        /// Name of the field, as in the C struct.
        field: &'static str,
        /// Byte offset of the field in the frame.
        offset: usize,
    },
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Incomplete { needed, have } => {
                write!(f, "incomplete frame: {needed} bytes needed, {have} present")
            }
            Self::BadSize { id, declared, min, max } => {
                write!(f, "message id {id}: header size {declared} outside the valid range {min}..={max}")
            }
            Self::TrailingBytes { declared, actual } => {
                write!(f, "{actual} bytes given for a frame of {declared} bytes")
            }
            Self::UnknownId { id } => write!(f, "unknown message id {id}"),
            Self::BadField { field, offset, value } => {
                write!(f, "field `{field}` at offset {offset} has invalid value {value}")
            }
            Self::LengthOutOfBounds { field, offset, len, available } => {
                write!(f, "length `{field}` at offset {offset} is {len}, but only {available} bytes follow")
            }
            Self::Unterminated { field, offset } => {
                write!(f, "string `{field}` at offset {offset} has no terminating NUL")
            }
        }
    }
}

impl core::error::Error for DecodeError {}

/// A libqb connection-setup failure: the server's negative errno from the setup response.
///
/// This is a different error domain from [`CsError`]: the setup header's `error` field is 0 or
/// `-errno`, never a `cs_error_t`. [`SetupError::cs_error`] maps it the way libcmap does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SetupError {
    /// The positive errno (e.g. 13 for `EACCES`).
    pub errno: i32,
}

impl SetupError {
    /// The `cs_error_t` libcmap reports for this errno (`qb_to_cs_error`).
    pub fn cs_error(self) -> CsError {
        CsError::from_errno(self.errno)
    }

    /// What the errno means for a corosync client.
    pub fn meaning(self) -> &'static str {
        match self.errno {
            11 => "the daemon is not ready yet (EAGAIN); try again",
            38 => "the service is not loaded in the daemon (ENOSYS)",
            13 => "permission denied: not root and no uidgid entry for this user (EACCES)",
            24 => "the daemon is out of file descriptors (EMFILE)",
            12 => "the daemon is out of memory (ENOMEM)",
            36 => "a path was too long (ENAMETOOLONG)",
            _ => "the daemon refused the connection",
        }
    }
}

impl fmt::Display for SetupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection setup failed: {} (errno {})", self.meaning(), self.errno)
    }
}

impl core::error::Error for SetupError {}
