//! Framing and the bounds-checked helpers every codec in this crate is built from.

use crate::error::{CsError, DecodeError, EncodeError};
use crate::wire::qb::{RequestHeader, ResponseHeader};
use crate::wire::{I32, U16};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// A reply of any service: the `cs_error_t` status from its header, and its body (the
/// service's `Response`; on an error status the body has the reply's shape with whatever
/// the server put in it). Each service module names its instance `Reply` and gives it
/// `encoded_len`, `encode` and `decode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Reply<B> {
    /// The header's `cs_error_t`.
    pub result: Result<(), CsError>,
    /// The body.
    pub body: B,
}

impl<B> Reply<B> {
    /// The body if the status is `CS_OK`, else the status.
    pub fn into_result(self) -> Result<B, CsError> {
        self.result.map(|()| self.body)
    }
}

/// One message of a service, either direction: its id, and the exact length, encoding and
/// borrowing decoding of its frame. Every `Request`, `Reply` and notification type of the
/// service modules implements it (with the `message!` table in its module), so generic code
/// (the connection, tests, fuzz targets) handles all of them alike.
pub trait Message<'a>: Sized {
    /// The id in the frame's header (`hdr.id`).
    fn id(&self) -> i32;
    /// The exact number of bytes [`Message::encode`] writes, computed without encoding
    /// (saturating for a message too large to encode).
    fn encoded_len(&self) -> usize;
    /// Encodes the message into the start of `out` and returns its length.
    ///
    /// # Errors
    /// [`EncodeError::BufferTooSmall`] (and `out` is untouched), or a field that cannot be
    /// sent.
    fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError>;
    /// Decodes one frame; `buf` must hold exactly the frame.
    ///
    /// # Errors
    /// [`DecodeError::Incomplete`] for too few bytes, another [`DecodeError`] for a malformed
    /// frame.
    fn decode(buf: &'a [u8]) -> Result<Self, DecodeError>;
}

/// Implements [`Message`] for message types by their inherent `encoded_len`, `encode` and
/// `decode`, each with the expression that gives its id: `message! { Request<'a>: m =>
/// m.kind().id(), ... }`.
macro_rules! message {
    ($($ty:ty: $this:ident => $id:expr),+ $(,)?) => {$(
        impl<'a> $crate::codec::Message<'a> for $ty {
            fn id(&self) -> i32 {
                let $this = self;
                $id
            }
            fn encoded_len(&self) -> usize {
                Self::encoded_len(self)
            }
            fn encode(&self, out: &mut [u8]) -> Result<usize, $crate::error::EncodeError> {
                Self::encode(self, out)
            }
            fn decode(buf: &'a [u8]) -> Result<Self, $crate::error::DecodeError> {
                Self::decode(buf)
            }
        }
    )+};
}
pub(crate) use message;

/// The answer of a push parser: a complete item, or how many bytes in all are needed first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status<T> {
    /// The item is complete.
    Complete(T),
    /// More input is needed: `needed` bytes in all.
    Partial {
        /// Total bytes needed before the item can be read.
        needed: usize,
    },
}

/// Length of the libqb frame at the start of a byte stream, from its header's `size` field.
///
/// Request and response headers both keep `size` at offset 8; `min_header` is 16 for a request
/// and 24 for a response. Stream transports call this to split frames; message-oriented ones
/// (rings, datagrams) hand each frame to the decoders directly.
pub fn frame_len(buf: &[u8], min_header: usize) -> Result<Status<usize>, DecodeError> {
    let Ok((hdr, _)) = RequestHeader::ref_from_prefix(buf) else {
        return Ok(Status::Partial { needed: min_header.max(size_of::<RequestHeader>()) });
    };
    let declared = hdr.size.get();
    match usize::try_from(declared) {
        Ok(size) if size >= min_header => Ok(Status::Complete(size)),
        _ => Err(DecodeError::BadSize {
            id: hdr.id.get(),
            declared: declared.into(),
            min: min_header,
            max: i32::MAX as usize,
        }),
    }
}

/// The `id` and `size` fields of the libqb header at the start of `frame`, as they are (not
/// checked against the frame); `None` if `frame` is shorter than a request header (16 bytes).
/// A server reads these before it decides whether to serve or drop a request.
pub fn header_fields(frame: &[u8]) -> Option<(i32, i32)> {
    RequestHeader::ref_from_prefix(frame).ok().map(|(h, _)| (h.id.get(), h.size.get()))
}

/// Checks that `buf` is exactly one frame whose header is `H`, and returns the header and frame.
fn frame<H>(buf: &[u8]) -> Result<(&H, usize), DecodeError>
where
    H: FromBytes + KnownLayout + Immutable + Unaligned,
{
    let min = size_of::<H>();
    let Status::Complete(size) = frame_len(buf, min)? else {
        return Err(DecodeError::Incomplete { needed: min, have: buf.len() });
    };
    if buf.len() < size {
        return Err(DecodeError::Incomplete { needed: size, have: buf.len() });
    }
    if buf.len() > size {
        return Err(DecodeError::TrailingBytes { declared: size, actual: buf.len() });
    }
    let (hdr, _) =
        H::ref_from_prefix(buf).map_err(|_| DecodeError::Incomplete { needed: min, have: buf.len() })?;
    Ok((hdr, size))
}

/// A request frame: its id and bytes, header validated.
pub(crate) fn request_frame(buf: &[u8]) -> Result<i32, DecodeError> {
    frame::<RequestHeader>(buf).map(|(h, _)| h.id.get())
}

/// A response frame: its id and the header's error field.
pub(crate) fn response_frame(buf: &[u8]) -> Result<(i32, i32), DecodeError> {
    frame::<ResponseHeader>(buf).map(|(h, _)| (h.id.get(), h.error.get()))
}

/// A notification frame with the id `expected` (any other id is [`DecodeError::UnknownId`]):
/// its fixed part `T` and the bytes after it.
pub(crate) fn notification<T>(buf: &[u8], expected: i32) -> Result<(&T, &[u8]), DecodeError>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    match response_frame(buf)? {
        (id, _) if id == expected => layout::<T>(buf, id, MAX_TAIL),
        (id, _) => Err(DecodeError::UnknownId { id }),
    }
}

/// Reads the fixed part `T` at the start of a frame and returns it with the bytes after it.
/// `max_tail` bounds the variable part (0 for fixed-size messages).
pub(crate) fn layout<T>(frame: &[u8], id: i32, max_tail: usize) -> Result<(&T, &[u8]), DecodeError>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    let min = size_of::<T>();
    let max = min.saturating_add(max_tail);
    match T::ref_from_prefix(frame) {
        Ok((t, tail)) if tail.len() <= max_tail => Ok((t, tail)),
        _ => Err(DecodeError::BadSize { id, declared: frame.len() as i64, min, max }),
    }
}

/// Largest variable part a decoder accepts after a fixed layout: the frame's own `size` is the
/// real bound, so this only keeps the arithmetic in range.
pub(crate) const MAX_TAIL: usize = i32::MAX as usize;

/// Reads a fixed-size message `T` that must fill the whole frame.
pub(crate) fn exact<T>(frame: &[u8], id: i32) -> Result<&T, DecodeError>
where
    T: FromBytes + KnownLayout + Immutable + Unaligned,
{
    layout::<T>(frame, id, 0).map(|(m, _)| m)
}

/// Checks that a decoder used every byte of the frame (`len` bytes in all).
pub(crate) fn expect_empty(tail: &[u8], id: i32, len: usize) -> Result<(), DecodeError> {
    if tail.is_empty() {
        Ok(())
    } else {
        let used = len - tail.len();
        Err(DecodeError::BadSize { id, declared: len as i64, min: used, max: used })
    }
}

/// Splits `len` bytes for the field `field` (at `offset`) off the front of `tail`.
pub(crate) fn take<'a>(
    tail: &mut &'a [u8],
    len: u64,
    field: &'static str,
    offset: usize,
) -> Result<&'a [u8], DecodeError> {
    let err = DecodeError::LengthOutOfBounds { field, offset, len, available: tail.len() };
    let n = usize::try_from(len).map_err(|_| err)?;
    let (head, rest) = tail.split_at_checked(n).ok_or(err)?;
    *tail = rest;
    Ok(head)
}

/// The bytes of a NUL-terminated fixed-size string field, up to the NUL.
pub(crate) fn cstr<'a>(
    field_bytes: &'a [u8],
    field: &'static str,
    offset: usize,
) -> Result<&'a [u8], DecodeError> {
    let end = field_bytes.iter().position(|&b| b == 0).ok_or(DecodeError::Unterminated { field, offset })?;
    Ok(&field_bytes[..end])
}

/// A fixed-size message layout from [`crate::wire`] that encoders write in place.
pub(crate) trait Layout: FromBytes + IntoBytes + KnownLayout + Unaligned {}
impl<T: FromBytes + IntoBytes + KnownLayout + Unaligned> Layout for T {}

/// Prepares `out` for a message of `size_of::<T>() + tail_len` bytes: checks room (leaving
/// `out` untouched on error), zeroes the message, writes `header(total length)` at its start
/// (every message layout starts with its libqb header), and returns its fixed part, tail and
/// length.
fn prepare_with<T: Layout, H: IntoBytes + Immutable>(
    out: &mut [u8],
    tail_len: usize,
    header: impl FnOnce(usize) -> H,
) -> Result<(&mut T, &mut [u8], usize), EncodeError> {
    let total = size_of::<T>().saturating_add(tail_len);
    if i32::try_from(total).is_err() {
        return Err(EncodeError::MessageTooLarge { len: total });
    }
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall { required: total, available: out.len() });
    }
    let msg = &mut out[..total];
    msg.fill(0);
    header(total)
        .write_to_prefix(msg)
        .map_err(|_| EncodeError::BufferTooSmall { required: size_of::<H>(), available: total })?;
    let (fixed, tail) = T::mut_from_prefix(msg)
        .map_err(|_| EncodeError::BufferTooSmall { required: total, available: total })?;
    Ok((fixed, tail, total))
}

/// Prepares `out` for the request `T` with id `id` and `tail_len` bytes after its fixed part,
/// its request header written (see [`prepare_with`]).
pub(crate) fn request_msg<T: Layout>(
    out: &mut [u8],
    id: i32,
    tail_len: usize,
) -> Result<(&mut T, &mut [u8], usize), EncodeError> {
    prepare_with(out, tail_len, |n| request_header(id, n))
}

/// Prepares `out` for the reply or notification `T` with id `id` and the raw `cs_error_t`
/// `error`, its response header written (see [`prepare_with`]).
pub(crate) fn response_msg<T: Layout>(
    out: &mut [u8],
    id: i32,
    error: i32,
    tail_len: usize,
) -> Result<(&mut T, &mut [u8], usize), EncodeError> {
    prepare_with(out, tail_len, |n| response_header(id, n, error))
}

/// A request header for `id` and a message of `size` bytes (checked by [`prepare_with`]).
fn request_header(id: i32, size: usize) -> RequestHeader {
    RequestHeader { id: I32::new(id), _pad0: [0; 4], size: I32::new(size as i32), _pad1: [0; 4] }
}

/// A response header for `id`, a message of `size` bytes and a raw error value.
fn response_header(id: i32, size: usize, error: i32) -> ResponseHeader {
    ResponseHeader {
        id: I32::new(id),
        _pad0: [0; 4],
        size: I32::new(size as i32),
        _pad1: [0; 4],
        error: I32::new(error),
        _pad2: [0; 4],
    }
}

/// Copies `s` into a zeroed fixed-size string field; the caller has checked that it fits with
/// its NUL.
pub(crate) fn put_cstr(field: &mut [u8], s: &[u8]) {
    field[..s.len()].copy_from_slice(s);
}

/// Validates a name for a NUL-terminated field of `field_len` bytes.
pub(crate) fn check_name(name: &[u8], field_len: usize) -> Result<(), EncodeError> {
    if name.len() >= field_len {
        return Err(EncodeError::NameTooLong { len: name.len(), max: field_len - 1 });
    }
    if name.contains(&0) {
        return Err(EncodeError::NulInName);
    }
    Ok(())
}

/// A `u16` length field.
pub(crate) fn u16_len(len: usize) -> U16 {
    U16::new(len as u16)
}

/// Declares a service's request-kind enum from one table of `Variant = request id => reply id`
/// rows: the `#[repr(i32)]` enum (with the crate's usual derives) and its raw-id conversions
/// `from_id` (`None` for an id the module does not know), `id` and `response_id`. Every
/// service module declares its `RequestKind` with it, so a new service writes only its table.
macro_rules! wire_ids {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $($(#[$vmeta:meta])* $variant:ident = $id:literal => $response:expr,)+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[repr(i32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $id,)+
        }

        impl $name {
            /// The kind with the request id `id`; `None` for an id this module does not know.
            pub const fn from_id(id: i32) -> Option<Self> {
                match id {
                    $($id => Some(Self::$variant),)+
                    _ => None,
                }
            }

            /// The request id (`hdr.id` of the request).
            pub const fn id(self) -> i32 {
                self as i32
            }

            /// The id of the reply to this request.
            pub const fn response_id(self) -> i32 {
                match self {
                    $(Self::$variant => $response,)+
                }
            }
        }
    };
}
pub(crate) use wire_ids;

/// `contains` and `|` for a bit-mask newtype `$ty(pub int)` (`CS_TRACK_*`, `CMAP_TRACK_*`,
/// votequorum's info flags).
macro_rules! bit_flags {
    ($ty:ident) => {
        impl $ty {
            /// Whether every bit of `other` is set.
            pub fn contains(self, other: Self) -> bool {
                self.0 & other.0 == other.0
            }
        }

        impl core::ops::BitOr for $ty {
            type Output = Self;
            fn bitor(self, rhs: Self) -> Self {
                Self(self.0 | rhs.0)
            }
        }
    };
}
pub(crate) use bit_flags;

/// `as_bytes`, `as_str`, and the `Debug` (`Name("…")`), `Display` and `defmt` forms of a name
/// newtype `$ty<'a>(&'a [u8])` that travels in a NUL-terminated field (a CMAP key, a qdevice
/// name). The bytes never include the NUL.
macro_rules! wire_name {
    ($ty:ident) => {
        impl<'a> $ty<'a> {
            /// The bytes, without a NUL.
            pub fn as_bytes(&self) -> &'a [u8] {
                self.0
            }

            /// The bytes as UTF-8, if they are.
            pub fn as_str(&self) -> Option<&'a str> {
                core::str::from_utf8(self.0).ok()
            }
        }

        impl core::fmt::Debug for $ty<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, concat!(stringify!($ty), "(\"{}\")"), self.0.escape_ascii())
            }
        }

        impl core::fmt::Display for $ty<'_> {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                write!(f, "{}", self.0.escape_ascii())
            }
        }

        #[cfg(feature = "defmt")]
        impl defmt::Format for $ty<'_> {
            fn format(&self, f: defmt::Formatter<'_>) {
                defmt::write!(f, "{=[u8]}", self.0)
            }
        }
    };
}
pub(crate) use wire_name;
