//! CMAP messages, typed: requests (client → server), replies (server → client) and the
//! change notification, each with `encode` into a caller's buffer and a borrowing `decode`.
//!
//! ```
//! use corowire::cmap::{Key, Reply, Request, Response};
//! let mut buf = [0u8; 512];
//! let req = Request::Get { key: Key::new(b"totem.cluster_name")?, value_len: 64 };
//! let n = req.encode(&mut buf)?;
//! assert_eq!(n, 288);
//! assert_eq!(Request::decode(&buf[..n])?, req);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

mod client;
pub use client::{Cmap, CmapEvent, CmapState, Track};

use core::fmt;

use crate::codec::{
    self, bit_flags, check_name, cstr, exact, expect_empty, layout, message, put_cstr, request_msg,
    response_msg, take, u16_len, wire_ids, wire_name, MAX_TAIL,
};
use crate::error::{CsError, DecodeError, EncodeError};
use crate::wire::cmap::{
    I32Slot, MarName, ReqAdjustInt, ReqGet, ReqHandle, ReqKey, ReqSet, ReqSetCurrentMap, ReqTrackAdd, ResGet,
    ResHandle, ResIterNext, ResNotify, U8Slot, NAME_VALUE_LEN,
};
use crate::wire::qb::ResponseHeader;
use crate::wire::{I32, U64};

/// The libqb service name of CMAP.
pub const SERVICE_NAME: &str = "cmap";
/// Longest key a client may send (libcmap rejects 256 bytes or more).
pub const KEY_MAX_LEN: usize = NAME_VALUE_LEN - 1;
/// Shortest key name the server accepts for a new key.
pub const KEY_MIN_LEN: usize = 3;
/// Largest value_len the server accepts in a SET (`ICMAP_MAX_VALUE_LEN`).
pub const VALUE_MAX_LEN: usize = 16384;
/// Largest value the server stores, and so the largest GET buffer a client needs: a string of
/// [`VALUE_MAX_LEN`] characters is sent with value_len = strlen (as libcmap's
/// `cmap_set_string` does) and stored with its NUL, 16385 bytes.
pub const STORED_MAX_LEN: usize = VALUE_MAX_LEN + 1;
/// Longest CMAP notification: 336 bytes of `res_lib_cmap_notify_callback` and a new and an
/// old value of [`STORED_MAX_LEN`] each (33106 bytes). A client's event buffer (its
/// `max_msg_size`) must hold it to receive every change of every key.
pub const NOTIFICATION_MAX_LEN: usize = size_of::<ResNotify>() + 2 * STORED_MAX_LEN;

wire_ids! {
    /// Request ids (`MESSAGE_REQ_CMAP_*`) and their reply ids: the same, except that 9 is
    /// answered with 10 (9 is the notification).
    pub enum RequestKind {
        /// 0: set a value.
        Set = 0 => 0,
        /// 1: delete a key.
        Delete = 1 => 1,
        /// 2: get a value.
        Get = 2 => 2,
        /// 3: add to an integer.
        AdjustInt = 3 => 3,
        /// 4: start an iteration.
        IterInit = 4 => 4,
        /// 5: next key of an iteration.
        IterNext = 5 => 5,
        /// 6: end an iteration.
        IterFinalize = 6 => 6,
        /// 7: start tracking.
        TrackAdd = 7 => 7,
        /// 8: stop tracking.
        TrackDelete = 8 => 8,
        /// 9: switch between the default and the stats map.
        SetCurrentMap = 9 => RESPONSE_SET_CURRENT_MAP,
    }
}

message! {
    Request<'a>: m => m.kind().id(),
    Reply<'a>: m => m.body.id(),
    Notification<'a>: _m => NOTIFY_ID,
}

/// Response id of the reply to SET_CURRENT_MAP.
pub const RESPONSE_SET_CURRENT_MAP: i32 = 10;
/// Response id of the change notification (on the event channel).
pub const NOTIFY_ID: i32 = 9;

/// A key name: at most 255 bytes, no NUL. Keys decoded from the wire borrow the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key<'a>(&'a [u8]);
wire_name!(Key);

impl<'a> Key<'a> {
    /// A key, checked as libcmap checks it: shorter than 256 bytes, and without a NUL (which
    /// would cut it short on the wire).
    pub fn new(name: &'a [u8]) -> Result<Self, EncodeError> {
        check_name(name, NAME_VALUE_LEN)?;
        Ok(Self(name))
    }

    /// Whether corosync accepts this as the name of a new key: 3 to 255 characters of
    /// `[A-Za-z0-9._/:-]`.
    pub fn is_valid_server_name(&self) -> bool {
        (KEY_MIN_LEN..=KEY_MAX_LEN).contains(&self.0.len())
            && self.0.iter().all(|&c| c.is_ascii_alphanumeric() || b"._/:-".contains(&c))
    }

    fn write(&self, name: &mut MarName) {
        name.length = u16_len(self.0.len());
        put_cstr(&mut name.value, self.0);
    }

    fn read(name: &'a MarName, offset: usize) -> Result<Self, DecodeError> {
        cstr(&name.value, "key_name.value", offset + 8).map(Self)
    }

    /// An optional key: length 0 (or an empty name, which cannot be encoded as present) means none.
    fn read_opt(name: &'a MarName, offset: usize) -> Result<Option<Self>, DecodeError> {
        if name.length.get() == 0 || name.value[0] == 0 {
            Ok(None)
        } else {
            Self::read(name, offset).map(Some)
        }
    }
}

/// `cmap_value_types_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ValueType {
    /// 1, `i8`.
    Int8 = 1,
    /// 2, `u8`.
    UInt8 = 2,
    /// 3, `i16`.
    Int16 = 3,
    /// 4, `u16`.
    UInt16 = 4,
    /// 5, `i32`.
    Int32 = 5,
    /// 6, `u32`.
    UInt32 = 6,
    /// 7, `i64`.
    Int64 = 7,
    /// 8, `u64`.
    UInt64 = 8,
    /// 9, `f32`.
    Float = 9,
    /// 10, `f64`.
    Double = 10,
    /// 11, a NUL-terminated string (the stored length includes the NUL).
    String = 11,
    /// 12, bytes.
    Binary = 12,
}

impl ValueType {
    /// All types, in numeric order.
    pub const ALL: [Self; 12] = [
        Self::Int8,
        Self::UInt8,
        Self::Int16,
        Self::UInt16,
        Self::Int32,
        Self::UInt32,
        Self::Int64,
        Self::UInt64,
        Self::Float,
        Self::Double,
        Self::String,
        Self::Binary,
    ];

    /// The type for a raw number (1 to 12).
    pub fn from_raw(raw: u8) -> Option<Self> {
        Self::ALL.get(usize::from(raw).checked_sub(1)?).copied()
    }

    /// The exact length of a fixed-size type; `None` for string and binary.
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            Self::Int8 | Self::UInt8 => Some(1),
            Self::Int16 | Self::UInt16 => Some(2),
            Self::Int32 | Self::UInt32 | Self::Float => Some(4),
            Self::Int64 | Self::UInt64 | Self::Double => Some(8),
            Self::String | Self::Binary => None,
        }
    }

    /// Whether ADJUST_INT (inc/dec) works on this type.
    pub fn is_integer(self) -> bool {
        !matches!(self, Self::Float | Self::Double | Self::String | Self::Binary)
    }

    /// The name `corosync-cmapctl` prints (`u32`, `str`, …); also the `Display` form.
    pub fn cmapctl_name(self) -> &'static str {
        match self {
            Self::Int8 => "i8",
            Self::UInt8 => "u8",
            Self::Int16 => "i16",
            Self::UInt16 => "u16",
            Self::Int32 => "i32",
            Self::UInt32 => "u32",
            Self::Int64 => "i64",
            Self::UInt64 => "u64",
            Self::Float => "flt",
            Self::Double => "dbl",
            Self::String => "str",
            Self::Binary => "bin",
        }
    }

    fn read(raw: u8, field: &'static str, offset: usize) -> Result<Option<Self>, DecodeError> {
        match raw {
            0 => Ok(None),
            _ => Self::from_raw(raw).map(Some).ok_or(DecodeError::BadField {
                field,
                offset,
                value: raw.into(),
            }),
        }
    }
}

/// A typed CMAP value, in host byte order, generic over what holds the bytes of a string or a
/// binary: [`Value`] borrows them (the codec's form), `OwnedValue` (feature `alloc`, in
/// [`crate::value`]) owns them.
///
/// The variants mirror `cmap_value_types_t` (`CMAP_VALUETYPE_*` in corosync's
/// `include/corosync/cmap.h`). `Debug` shows a string as text and `Display` prints the value as
/// `corosync-cmapctl` does (both in [`crate::value`]).
#[derive(Clone, Copy, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TypedValue<B> {
    /// `CMAP_VALUETYPE_INT8` (1): `i8`.
    Int8(i8),
    /// `CMAP_VALUETYPE_UINT8` (2): `u8`.
    UInt8(u8),
    /// `CMAP_VALUETYPE_INT16` (3): `i16`.
    Int16(i16),
    /// `CMAP_VALUETYPE_UINT16` (4): `u16`.
    UInt16(u16),
    /// `CMAP_VALUETYPE_INT32` (5): `i32`.
    Int32(i32),
    /// `CMAP_VALUETYPE_UINT32` (6): `u32`.
    UInt32(u32),
    /// `CMAP_VALUETYPE_INT64` (7): `i64`.
    Int64(i64),
    /// `CMAP_VALUETYPE_UINT64` (8): `u64`.
    UInt64(u64),
    /// `CMAP_VALUETYPE_FLOAT` (9): `f32`.
    Float(f32),
    /// `CMAP_VALUETYPE_DOUBLE` (10): `f64`.
    Double(f64),
    /// `CMAP_VALUETYPE_STRING` (11): the bytes as corosync stores them (not necessarily UTF-8),
    /// without the trailing NUL (stored with the NUL; a SET sends it after value_len).
    /// [`TypedValue::as_str`] reads them as UTF-8.
    String(B),
    /// `CMAP_VALUETYPE_BINARY` (12): bytes.
    Binary(B),
}

/// A typed CMAP value whose string and binary bytes are borrowed: what the codec decodes and
/// encodes.
pub type Value<'a> = TypedValue<&'a [u8]>;

/// Native-endian bytes of a fixed-size value, with its length.
type FixedBytes = ([u8; 8], usize);

fn ne_bytes<const N: usize>(b: [u8; N]) -> FixedBytes {
    let mut out = [0u8; 8];
    out[..N].copy_from_slice(&b);
    (out, N)
}

impl<B: AsRef<[u8]>> TypedValue<B> {
    /// The value's type.
    pub fn value_type(&self) -> ValueType {
        match self {
            Self::Int8(_) => ValueType::Int8,
            Self::UInt8(_) => ValueType::UInt8,
            Self::Int16(_) => ValueType::Int16,
            Self::UInt16(_) => ValueType::UInt16,
            Self::Int32(_) => ValueType::Int32,
            Self::UInt32(_) => ValueType::UInt32,
            Self::Int64(_) => ValueType::Int64,
            Self::UInt64(_) => ValueType::UInt64,
            Self::Float(_) => ValueType::Float,
            Self::Double(_) => ValueType::Double,
            Self::String(_) => ValueType::String,
            Self::Binary(_) => ValueType::Binary,
        }
    }

    fn fixed_bytes(&self) -> Option<FixedBytes> {
        Some(match *self {
            Self::Int8(v) => ne_bytes(v.to_ne_bytes()),
            Self::UInt8(v) => ne_bytes(v.to_ne_bytes()),
            Self::Int16(v) => ne_bytes(v.to_ne_bytes()),
            Self::UInt16(v) => ne_bytes(v.to_ne_bytes()),
            Self::Int32(v) => ne_bytes(v.to_ne_bytes()),
            Self::UInt32(v) => ne_bytes(v.to_ne_bytes()),
            Self::Int64(v) => ne_bytes(v.to_ne_bytes()),
            Self::UInt64(v) => ne_bytes(v.to_ne_bytes()),
            Self::Float(v) => ne_bytes(v.to_ne_bytes()),
            Self::Double(v) => ne_bytes(v.to_ne_bytes()),
            Self::String(_) | Self::Binary(_) => return None,
        })
    }

    /// Length as corosync stores it (and as GET replies and notifications carry it): strings
    /// count their NUL. A SET sends the NUL after its value_len, which is one less.
    pub fn wire_len(&self) -> usize {
        match (self, self.fixed_bytes()) {
            (_, Some((_, n))) => n,
            (Self::String(s), None) => s.as_ref().len() + 1,
            (Self::Binary(b), None) => b.as_ref().len(),
            _ => 0,
        }
    }

    /// The value_len a SET of this value carries (`req_lib_cmap_set.value_len`): a string's
    /// length without its NUL, as libcmap's `cmap_set_string` sends it (the NUL follows in
    /// the frame); [`TypedValue::wire_len`] for the other types. corosync refuses more than
    /// [`VALUE_MAX_LEN`].
    pub fn set_value_len(&self) -> usize {
        match self {
            Self::String(s) => s.as_ref().len(),
            _ => self.wire_len(),
        }
    }

    /// The value as an `i64`, for any integer type that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::Int8(v) => Some(v.into()),
            Self::UInt8(v) => Some(v.into()),
            Self::Int16(v) => Some(v.into()),
            Self::UInt16(v) => Some(v.into()),
            Self::Int32(v) => Some(v.into()),
            Self::UInt32(v) => Some(v.into()),
            Self::Int64(v) => Some(v),
            Self::UInt64(v) => i64::try_from(v).ok(),
            _ => None,
        }
    }

    /// A string value as `&str`: `None` for another type or for bytes that are not UTF-8 (the
    /// bytes are in [`TypedValue::String`]).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(b) => core::str::from_utf8(b.as_ref()).ok(),
            _ => None,
        }
    }

    /// The value borrowed as the codec's [`Value`] (e.g. to SET an owned value).
    pub fn as_value(&self) -> Value<'_> {
        self.map_bytes(AsRef::as_ref)
    }
}

impl<B> TypedValue<B> {
    /// The same value with the bytes of a string or binary passed through `f`; numbers are
    /// copied.
    pub(crate) fn map_bytes<'s, C>(&'s self, f: impl FnOnce(&'s B) -> C) -> TypedValue<C> {
        match *self {
            Self::Int8(v) => TypedValue::Int8(v),
            Self::UInt8(v) => TypedValue::UInt8(v),
            Self::Int16(v) => TypedValue::Int16(v),
            Self::UInt16(v) => TypedValue::UInt16(v),
            Self::Int32(v) => TypedValue::Int32(v),
            Self::UInt32(v) => TypedValue::UInt32(v),
            Self::Int64(v) => TypedValue::Int64(v),
            Self::UInt64(v) => TypedValue::UInt64(v),
            Self::Float(v) => TypedValue::Float(v),
            Self::Double(v) => TypedValue::Double(v),
            Self::String(ref b) => TypedValue::String(f(b)),
            Self::Binary(ref b) => TypedValue::Binary(f(b)),
        }
    }
}

impl<'a> Value<'a> {
    /// Writes the wire bytes into `dst`, which is exactly [`Value::wire_len`] long and zeroed.
    fn write(&self, dst: &mut [u8]) {
        match (self, self.fixed_bytes()) {
            (_, Some((b, n))) => dst.copy_from_slice(&b[..n]),
            (Self::String(s) | Self::Binary(s), None) => dst[..s.len()].copy_from_slice(s),
            _ => {}
        }
    }

    /// Writes the wire bytes into the start of `out` and returns their length; `None` if `out`
    /// is too short.
    pub fn write_to(&self, out: &mut [u8]) -> Option<usize> {
        let n = self.wire_len();
        let dst = out.get_mut(..n)?;
        dst.fill(0);
        self.write(dst);
        Some(n)
    }

    /// Reads a value of type `ty` from its wire bytes. Fixed-size types need their exact length;
    /// a string's trailing NUL is dropped. `None` if the length is wrong for the type.
    pub fn from_wire(ty: ValueType, bytes: &'a [u8]) -> Option<Self> {
        fn arr<const N: usize>(b: &[u8]) -> Option<[u8; N]> {
            b.try_into().ok()
        }
        Some(match ty {
            ValueType::Int8 => Self::Int8(i8::from_ne_bytes(arr(bytes)?)),
            ValueType::UInt8 => Self::UInt8(u8::from_ne_bytes(arr(bytes)?)),
            ValueType::Int16 => Self::Int16(i16::from_ne_bytes(arr(bytes)?)),
            ValueType::UInt16 => Self::UInt16(u16::from_ne_bytes(arr(bytes)?)),
            ValueType::Int32 => Self::Int32(i32::from_ne_bytes(arr(bytes)?)),
            ValueType::UInt32 => Self::UInt32(u32::from_ne_bytes(arr(bytes)?)),
            ValueType::Int64 => Self::Int64(i64::from_ne_bytes(arr(bytes)?)),
            ValueType::UInt64 => Self::UInt64(u64::from_ne_bytes(arr(bytes)?)),
            ValueType::Float => Self::Float(f32::from_ne_bytes(arr(bytes)?)),
            ValueType::Double => Self::Double(f64::from_ne_bytes(arr(bytes)?)),
            ValueType::String => Self::String(bytes.strip_suffix(&[0]).unwrap_or(bytes)),
            ValueType::Binary => Self::Binary(bytes),
        })
    }

    /// Reads a typed value for a frame field, reporting a length that does not fit the type.
    fn read(
        raw_type: u8,
        bytes: &'a [u8],
        type_field: &'static str,
        type_offset: usize,
        len_offset: usize,
    ) -> Result<Option<Self>, DecodeError> {
        match ValueType::read(raw_type, type_field, type_offset)? {
            None if bytes.is_empty() => Ok(None),
            None => Err(DecodeError::BadField {
                field: "value_len",
                offset: len_offset,
                value: bytes.len() as u64,
            }),
            Some(ty) => Self::from_wire(ty, bytes).map(Some).ok_or(DecodeError::BadField {
                field: "value_len",
                offset: len_offset,
                value: bytes.len() as u64,
            }),
        }
    }
}

/// `CMAP_TRACK_*`: what a track reports. Combine with `|`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackType(pub i32);
bit_flags!(TrackType);

impl TrackType {
    /// 1: deletions.
    pub const DELETE: Self = Self(1);
    /// 2: modifications.
    pub const MODIFY: Self = Self(2);
    /// 4: additions.
    pub const ADD: Self = Self(4);
    /// 8: the key is a prefix; every key under it is tracked.
    pub const PREFIX: Self = Self(8);
    /// Every bit corosync accepts.
    pub const ALL: Self = Self(15);

    /// Whether corosync accepts this mask (no bits outside [`TrackType::ALL`]).
    pub fn is_valid(self) -> bool {
        self.0 & !Self::ALL.0 == 0
    }
}

/// The event of a notification: exactly one of add, modify, delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(i32)]
pub enum TrackEvent {
    /// 1: the key was deleted.
    Delete = 1,
    /// 2: the key's value changed.
    Modify = 2,
    /// 4: the key was added.
    Add = 4,
}

/// The word `corosync-cmapctl` prints for the event: `create`, `modify`, `delete`.
impl fmt::Display for TrackEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Add => "create",
            Self::Modify => "modify",
            Self::Delete => "delete",
        })
    }
}

/// [`ValueType::cmapctl_name`]: `u32`, `str`, ….
impl fmt::Display for ValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.cmapctl_name())
    }
}

impl TrackEvent {
    /// The event for a raw value.
    pub fn from_raw(raw: i32) -> Option<Self> {
        match raw {
            1 => Some(Self::Delete),
            2 => Some(Self::Modify),
            4 => Some(Self::Add),
            _ => None,
        }
    }

    /// The track bit that asks for this event.
    pub fn track_type(self) -> TrackType {
        TrackType(self as i32)
    }
}

/// The map a connection reads and writes (`cmap_map_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Map {
    /// 0: icmap, the configuration and runtime keys.
    Default,
    /// 1: the read-only statistics map.
    Stats,
    /// Any other number (the server answers `CS_ERR_NOT_EXIST`).
    Other(i32),
}

impl Map {
    /// The raw number.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Default => 0,
            Self::Stats => 1,
            Self::Other(n) => n,
        }
    }

    /// The map for a raw number.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Default,
            1 => Self::Stats,
            n => Self::Other(n),
        }
    }
}

/// A CMAP request.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request<'a> {
    /// Set `key` to `value` (creating it).
    Set {
        /// Key.
        key: Key<'a>,
        /// Value.
        value: Value<'a>,
    },
    /// Delete `key`.
    Delete {
        /// Key.
        key: Key<'a>,
    },
    /// Get `key`. `value_len` is the size of the caller's buffer (the reply carries that many
    /// value bytes); 0 asks only for the type and length.
    Get {
        /// Key.
        key: Key<'a>,
        /// Buffer size.
        value_len: u64,
    },
    /// Add `step` to the integer at `key` (wrapping).
    AdjustInt {
        /// Key.
        key: Key<'a>,
        /// Step (+1 for inc, −1 for dec).
        step: i32,
    },
    /// Start iterating over the keys under `prefix` (all keys if `None`).
    IterInit {
        /// Prefix.
        prefix: Option<Key<'a>>,
    },
    /// Next key of an iteration.
    IterNext {
        /// Handle from the ITER_INIT reply.
        iter_handle: u64,
    },
    /// End an iteration.
    IterFinalize {
        /// Handle from the ITER_INIT reply.
        iter_handle: u64,
    },
    /// Track changes of `key` (or of every key under it with PREFIX; `None` is the root).
    TrackAdd {
        /// Key or prefix.
        key: Option<Key<'a>>,
        /// What to report.
        track_type: TrackType,
        /// The client's cookie, echoed in each notification.
        track_inst_handle: u64,
    },
    /// Stop tracking.
    TrackDelete {
        /// The server's handle from the TRACK_ADD reply.
        track_handle: u64,
    },
    /// Switch this connection to another map.
    SetCurrentMap {
        /// The map.
        map: Map,
    },
}

impl<'a> Request<'a> {
    /// The kind (and id) of this request.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::Set { .. } => RequestKind::Set,
            Self::Delete { .. } => RequestKind::Delete,
            Self::Get { .. } => RequestKind::Get,
            Self::AdjustInt { .. } => RequestKind::AdjustInt,
            Self::IterInit { .. } => RequestKind::IterInit,
            Self::IterNext { .. } => RequestKind::IterNext,
            Self::IterFinalize { .. } => RequestKind::IterFinalize,
            Self::TrackAdd { .. } => RequestKind::TrackAdd,
            Self::TrackDelete { .. } => RequestKind::TrackDelete,
            Self::SetCurrentMap { .. } => RequestKind::SetCurrentMap,
        }
    }

    /// Length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Set { value, .. } => size_of::<ReqSet>() + value.wire_len(),
            Self::Delete { .. } | Self::IterInit { .. } => size_of::<ReqKey>(),
            Self::Get { .. } => size_of::<ReqGet>(),
            Self::AdjustInt { .. } => size_of::<ReqAdjustInt>(),
            Self::IterNext { .. } | Self::IterFinalize { .. } | Self::TrackDelete { .. } => {
                size_of::<ReqHandle>()
            }
            Self::TrackAdd { .. } => size_of::<ReqTrackAdd>(),
            Self::SetCurrentMap { .. } => size_of::<ReqSetCurrentMap>(),
        }
    }

    /// Encodes the request into the start of `out` and returns its length. On error `out` is
    /// untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.kind() as i32;
        match *self {
            Self::Set { key, value } => {
                let (m, tail, n) = request_msg::<ReqSet>(out, id, value.wire_len())?;
                key.write(&mut m.key_name);
                // A string's NUL follows value_len in the frame, so corosync's `strlen` on the
                // ring stays within it.
                m.value_len = U64::new(value.set_value_len() as u64);
                m.value_type.value = value.value_type() as u8;
                value.write(tail);
                Ok(n)
            }
            Self::Delete { key } => encode_key(out, id, Some(key)),
            Self::IterInit { prefix } => encode_key(out, id, prefix),
            Self::Get { key, value_len } => {
                let (m, _, n) = request_msg::<ReqGet>(out, id, 0)?;
                key.write(&mut m.key_name);
                m.value_len = U64::new(value_len);
                Ok(n)
            }
            Self::AdjustInt { key, step } => {
                let (m, _, n) = request_msg::<ReqAdjustInt>(out, id, 0)?;
                key.write(&mut m.key_name);
                m.step.value = I32::new(step);
                Ok(n)
            }
            Self::IterNext { iter_handle: h }
            | Self::IterFinalize { iter_handle: h }
            | Self::TrackDelete { track_handle: h } => {
                let (m, _, n) = request_msg::<ReqHandle>(out, id, 0)?;
                m.handle = U64::new(h);
                Ok(n)
            }
            Self::TrackAdd { key, track_type, track_inst_handle } => {
                let (m, _, n) = request_msg::<ReqTrackAdd>(out, id, 0)?;
                if let Some(key) = key {
                    key.write(&mut m.key_name);
                }
                m.track_type.value = I32::new(track_type.0);
                m.track_inst_handle = U64::new(track_inst_handle);
                Ok(n)
            }
            Self::SetCurrentMap { map } => {
                let (m, _, n) = request_msg::<ReqSetCurrentMap>(out, id, 0)?;
                m.map.value = I32::new(map.to_raw());
                Ok(n)
            }
        }
    }

    /// Decodes one request frame (server side). `buf` must hold exactly the frame.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let id = codec::request_frame(buf)?;
        let kind = RequestKind::from_id(id).ok_or(DecodeError::UnknownId { id })?;
        Ok(match kind {
            RequestKind::Set => {
                let (m, mut tail) = layout::<ReqSet>(buf, id, MAX_TAIL)?;
                let bytes = take(&mut tail, m.value_len.get(), "value_len", 280)?;
                // A string as corowire sends it: value_len = strlen, then the NUL. Without the
                // NUL after it (libcmap's form, or the NUL inside value_len) it is read as
                // any value.
                let value = if m.value_type.value == ValueType::String as u8 && tail == [0] {
                    Value::String(bytes)
                } else {
                    expect_empty(tail, id, buf.len())?;
                    Value::read(m.value_type.value, bytes, "type", 288, 280)?
                        .ok_or(DecodeError::BadField { field: "type", offset: 288, value: 0 })?
                };
                Self::Set { key: Key::read(&m.key_name, 16)?, value }
            }
            RequestKind::Delete => Self::Delete { key: Key::read(&exact::<ReqKey>(buf, id)?.key_name, 16)? },
            RequestKind::IterInit => {
                Self::IterInit { prefix: Key::read_opt(&exact::<ReqKey>(buf, id)?.key_name, 16)? }
            }
            RequestKind::Get => {
                let m = exact::<ReqGet>(buf, id)?;
                Self::Get { key: Key::read(&m.key_name, 16)?, value_len: m.value_len.get() }
            }
            RequestKind::AdjustInt => {
                let m = exact::<ReqAdjustInt>(buf, id)?;
                Self::AdjustInt { key: Key::read(&m.key_name, 16)?, step: m.step.value.get() }
            }
            RequestKind::IterNext => {
                Self::IterNext { iter_handle: exact::<ReqHandle>(buf, id)?.handle.get() }
            }
            RequestKind::IterFinalize => {
                Self::IterFinalize { iter_handle: exact::<ReqHandle>(buf, id)?.handle.get() }
            }
            RequestKind::TrackDelete => {
                Self::TrackDelete { track_handle: exact::<ReqHandle>(buf, id)?.handle.get() }
            }
            RequestKind::TrackAdd => {
                let m = exact::<ReqTrackAdd>(buf, id)?;
                Self::TrackAdd {
                    key: Key::read_opt(&m.key_name, 16)?,
                    track_type: TrackType(m.track_type.value.get()),
                    track_inst_handle: m.track_inst_handle.get(),
                }
            }
            RequestKind::SetCurrentMap => Self::SetCurrentMap {
                map: Map::from_raw(exact::<ReqSetCurrentMap>(buf, id)?.map.value.get()),
            },
        })
    }
}

fn encode_key(out: &mut [u8], id: i32, key: Option<Key<'_>>) -> Result<usize, EncodeError> {
    let (m, _, n) = request_msg::<ReqKey>(out, id, 0)?;
    if let Some(key) = key {
        key.write(&mut m.key_name);
    }
    Ok(n)
}

/// The body of a GET reply.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GetReply<'a> {
    /// Type of the stored value (`None` on error).
    pub value_type: Option<ValueType>,
    /// Actual length of the stored value.
    pub value_len: u64,
    /// The value bytes carried (empty when the request asked for the length only): at most
    /// `value_len` bytes, and fewer when the stored value did not fit the requested buffer
    /// ([`GetReply::is_truncated`]).
    pub value: &'a [u8],
    /// The buffer size the request asked for: the reply carries that many value bytes,
    /// zero-padded after the value.
    pub buffer_len: u64,
}

impl<'a> GetReply<'a> {
    /// Whether the stored value is longer than the bytes carried: corosync filled a smaller
    /// buffer than the value needs (ask again with `value_len` bytes).
    pub fn is_truncated(&self) -> bool {
        (self.value.len() as u64) < self.value_len
    }

    /// The typed value, if the reply carries it whole.
    pub fn typed(&self) -> Option<Value<'a>> {
        if self.value.len() as u64 != self.value_len || self.buffer_len == 0 {
            return None;
        }
        Value::from_wire(self.value_type?, self.value)
    }
}

/// The body of a CMAP reply; which variant it is follows from the response id.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Response<'a> {
    /// Id 0: SET (also corosync's generic reject, which has the same shape).
    Set,
    /// Id 1: DELETE.
    Delete,
    /// Id 2: GET.
    Get(GetReply<'a>),
    /// Id 3: ADJUST_INT.
    AdjustInt,
    /// Id 4: ITER_INIT.
    IterInit {
        /// The iteration's handle.
        iter_handle: u64,
    },
    /// Id 5: ITER_NEXT. At the end of the iteration the reply's status is
    /// `CS_ERR_NO_SECTIONS` and the fields are empty.
    IterNext {
        /// The key.
        key: Key<'a>,
        /// Length of its value.
        value_len: u64,
        /// Type of its value.
        value_type: Option<ValueType>,
    },
    /// Id 6: ITER_FINALIZE.
    IterFinalize,
    /// Id 7: TRACK_ADD.
    TrackAdd {
        /// The server's track handle (0 on error).
        track_handle: u64,
    },
    /// Id 8: TRACK_DELETE.
    TrackDelete {
        /// The cookie given at TRACK_ADD (0 on error).
        track_inst_handle: u64,
    },
    /// Id 10: SET_CURRENT_MAP.
    SetCurrentMap,
}

impl Response<'_> {
    /// The response id.
    pub fn id(&self) -> i32 {
        self.kind().response_id()
    }

    /// The kind of request this answers.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::Set => RequestKind::Set,
            Self::Delete => RequestKind::Delete,
            Self::Get(_) => RequestKind::Get,
            Self::AdjustInt => RequestKind::AdjustInt,
            Self::IterInit { .. } => RequestKind::IterInit,
            Self::IterNext { .. } => RequestKind::IterNext,
            Self::IterFinalize => RequestKind::IterFinalize,
            Self::TrackAdd { .. } => RequestKind::TrackAdd,
            Self::TrackDelete { .. } => RequestKind::TrackDelete,
            Self::SetCurrentMap => RequestKind::SetCurrentMap,
        }
    }
}

/// A CMAP reply: the status from the header, and the body.
pub type Reply<'a> = codec::Reply<Response<'a>>;

impl<'a> Reply<'a> {
    /// Length of the encoded reply.
    pub fn encoded_len(&self) -> usize {
        match self.body {
            Response::Get(g) => {
                size_of::<ResGet>().saturating_add(usize::try_from(g.buffer_len).unwrap_or(usize::MAX))
            }
            Response::IterInit { .. } | Response::TrackAdd { .. } | Response::TrackDelete { .. } => {
                size_of::<ResHandle>()
            }
            Response::IterNext { .. } => size_of::<ResIterNext>(),
            _ => size_of::<ResponseHeader>(),
        }
    }

    /// Encodes the reply (server side) into the start of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.body.id();
        let err = CsError::raw_of(self.result);
        match self.body {
            Response::Get(g) => {
                let buffer = usize::try_from(g.buffer_len)
                    .map_err(|_| EncodeError::MessageTooLarge { len: usize::MAX })?;
                if g.value.len() > buffer {
                    return Err(EncodeError::ValueTooLarge { len: g.value.len(), max: buffer });
                }
                let (m, tail, n) = response_msg::<ResGet>(out, id, err, buffer)?;
                m.value_len = U64::new(g.value_len);
                m.value_type = U8Slot { value: g.value_type.map_or(0, |t| t as u8), _pad: [0; 7] };
                tail[..g.value.len()].copy_from_slice(g.value);
                Ok(n)
            }
            Response::IterInit { iter_handle: h }
            | Response::TrackAdd { track_handle: h }
            | Response::TrackDelete { track_inst_handle: h } => {
                let (m, _, n) = response_msg::<ResHandle>(out, id, err, 0)?;
                m.handle = U64::new(h);
                Ok(n)
            }
            Response::IterNext { key, value_len, value_type } => {
                let (m, _, n) = response_msg::<ResIterNext>(out, id, err, 0)?;
                key.write(&mut m.key_name);
                m.value_len = U64::new(value_len);
                m.value_type.value = value_type.map_or(0, |t| t as u8);
                Ok(n)
            }
            _ => encode_status(out, id, err),
        }
    }

    /// Decodes one reply frame (client side). `buf` must hold exactly the frame.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, raw_error) = codec::response_frame(buf)?;
        let result = CsError::check(raw_error);
        let kind = match id {
            RESPONSE_SET_CURRENT_MAP => RequestKind::SetCurrentMap,
            NOTIFY_ID => return Err(DecodeError::UnknownId { id }),
            _ => RequestKind::from_id(id).ok_or(DecodeError::UnknownId { id })?,
        };
        let body = match kind {
            RequestKind::Set => status::<Response<'a>>(buf, id, Response::Set)?,
            RequestKind::Delete => status(buf, id, Response::Delete)?,
            RequestKind::AdjustInt => status(buf, id, Response::AdjustInt)?,
            RequestKind::IterFinalize => status(buf, id, Response::IterFinalize)?,
            RequestKind::SetCurrentMap => status(buf, id, Response::SetCurrentMap)?,
            RequestKind::Get => {
                let (m, tail) = layout::<ResGet>(buf, id, MAX_TAIL)?;
                let value_len = m.value_len.get();
                // corosync may report a stored length larger than the buffer it was asked to
                // fill (stats.ipcs.*.procname, whose ITER_NEXT length is 0): the reply then
                // carries only the buffer's bytes, as libcmap copies them (docs/protocol.md §5.3).
                let carried = usize::try_from(value_len).map_or(tail.len(), |n| n.min(tail.len()));
                let value = &tail[..carried];
                Response::Get(GetReply {
                    value_type: ValueType::read(m.value_type.value, "type", 32)?,
                    value_len,
                    value,
                    buffer_len: tail.len() as u64,
                })
            }
            RequestKind::IterInit => {
                Response::IterInit { iter_handle: exact::<ResHandle>(buf, id)?.handle.get() }
            }
            RequestKind::TrackAdd => {
                Response::TrackAdd { track_handle: exact::<ResHandle>(buf, id)?.handle.get() }
            }
            RequestKind::TrackDelete => {
                Response::TrackDelete { track_inst_handle: exact::<ResHandle>(buf, id)?.handle.get() }
            }
            RequestKind::IterNext => {
                let m = exact::<ResIterNext>(buf, id)?;
                Response::IterNext {
                    key: Key::read(&m.key_name, 24)?,
                    value_len: m.value_len.get(),
                    value_type: ValueType::read(m.value_type.value, "type", 296)?,
                }
            }
        };
        Ok(Self { result, body })
    }
}

fn status<T>(buf: &[u8], id: i32, body: T) -> Result<T, DecodeError> {
    exact::<ResponseHeader>(buf, id).map(|_| body)
}

/// Encodes a bare 24-byte reply header: the shape of every status-only reply, and of
/// corosync's generic reject (id 0).
pub fn encode_status(out: &mut [u8], id: i32, raw_error: i32) -> Result<usize, EncodeError> {
    let (_, _, n) = response_msg::<ResponseHeader>(out, id, raw_error, 0)?;
    Ok(n)
}

/// A change notification (response id 9, on the event channel).
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Notification<'a> {
    /// The client's cookie from TRACK_ADD.
    pub track_inst_handle: u64,
    /// The key that changed.
    pub key: Key<'a>,
    /// What happened.
    pub event: TrackEvent,
    /// The new value (`None` for a delete).
    pub new_value: Option<Value<'a>>,
    /// The old value (`None` for an add).
    pub old_value: Option<Value<'a>>,
}

impl<'a> Notification<'a> {
    /// Length of the encoded notification.
    pub fn encoded_len(&self) -> usize {
        size_of::<ResNotify>() + opt_len(&self.new_value) + opt_len(&self.old_value)
    }

    /// Encodes the notification (server side) into the start of `out`; returns its length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let (new_len, old_len) = (opt_len(&self.new_value), opt_len(&self.old_value));
        let (m, tail, n) = response_msg::<ResNotify>(out, NOTIFY_ID, CsError::RAW_OK, new_len + old_len)?;
        m.track_inst_handle = U64::new(self.track_inst_handle);
        self.key.write(&mut m.key_name);
        m.event = I32Slot { value: I32::new(self.event as i32), _pad: [0; 4] };
        m.new_value_type.value = opt_type(&self.new_value);
        m.old_value_type.value = opt_type(&self.old_value);
        m.new_value_len = U64::new(new_len as u64);
        m.old_value_len = U64::new(old_len as u64);
        let (new, old) = tail.split_at_mut(new_len);
        for (v, dst) in [(self.new_value, new), (self.old_value, old)] {
            if let Some(v) = v {
                v.write(dst);
            }
        }
        Ok(n)
    }

    /// Decodes one notification frame (client side). `buf` must hold exactly the frame.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let id = NOTIFY_ID;
        let (m, mut tail) = codec::notification::<ResNotify>(buf, id)?;
        let new = take(&mut tail, m.new_value_len.get(), "new_value_len", 320)?;
        let old = take(&mut tail, m.old_value_len.get(), "old_value_len", 328)?;
        expect_empty(tail, id, buf.len())?;
        let raw_event = m.event.value.get();
        Ok(Self {
            track_inst_handle: m.track_inst_handle.get(),
            key: Key::read(&m.key_name, 32)?,
            event: TrackEvent::from_raw(raw_event).ok_or(DecodeError::BadField {
                field: "event",
                offset: 296,
                value: raw_event as u64,
            })?,
            new_value: Value::read(m.new_value_type.value, new, "new_value_type", 304, 320)?,
            old_value: Value::read(m.old_value_type.value, old, "old_value_type", 312, 328)?,
        })
    }
}

fn opt_len(v: &Option<Value<'_>>) -> usize {
    v.as_ref().map_or(0, Value::wire_len)
}

fn opt_type(v: &Option<Value<'_>>) -> u8 {
    v.as_ref().map_or(0, |v| v.value_type() as u8)
}

/// An iteration over keys as a sans-IO helper: it says which request to send next, takes each
/// reply, and always says how to finalize it on the daemon, also when it is abandoned early.
///
/// ```
/// use corowire::cmap::{Iteration, IterStep, Key, Request, Response};
/// let mut it = Iteration::new(Some(Key::new(b"totem.")?));
/// assert!(matches!(it.next_request(), Some(Request::IterInit { .. })));
/// it.handle_reply(Ok(Response::IterInit { iter_handle: 7 }))?;
/// assert_eq!(it.next_request(), Some(Request::IterNext { iter_handle: 7 }));
/// let step = it.handle_reply(Ok(Response::IterNext { key: Key::new(b"totem.token")?, value_len: 4, value_type: None }))?;
/// assert!(matches!(step, IterStep::Item { .. }));
/// assert_eq!(it.handle_reply(Err(corowire::CsError::NoSections))?, IterStep::End);
/// assert_eq!(it.next_request(), None);
/// assert_eq!(it.finalize_request(), Some(Request::IterFinalize { iter_handle: 7 }));
/// # Ok::<(), Box<dyn core::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Iteration<'p> {
    prefix: Option<Key<'p>>,
    handle: Option<u64>,
    ended: bool,
}

/// What one iteration reply meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum IterStep<'a> {
    /// The iteration is open; send the next request.
    Started,
    /// The next key.
    Item {
        /// The key.
        key: Key<'a>,
        /// Length of its value.
        value_len: u64,
        /// Type of its value.
        value_type: Option<ValueType>,
    },
    /// No more keys (`CS_ERR_NO_SECTIONS`).
    End,
}

impl<'p> Iteration<'p> {
    /// An iteration over the keys under `prefix` (all keys if `None`).
    pub fn new(prefix: Option<Key<'p>>) -> Self {
        Self { prefix, handle: None, ended: false }
    }

    /// The request to send next, or `None` when the iteration has ended.
    pub fn next_request(&self) -> Option<Request<'p>> {
        match (self.ended, self.handle) {
            (true, _) => None,
            (false, None) => Some(Request::IterInit { prefix: self.prefix }),
            (false, Some(iter_handle)) => Some(Request::IterNext { iter_handle }),
        }
    }

    /// Takes the reply to the request [`Iteration::next_request`] gave. An error other than
    /// the end of the iteration is returned, and ends it.
    pub fn handle_reply<'a>(
        &mut self,
        reply: Result<Response<'a>, CsError>,
    ) -> Result<IterStep<'a>, CsError> {
        match reply {
            Ok(Response::IterInit { iter_handle }) if self.handle.is_none() => {
                self.handle = Some(iter_handle);
                Ok(IterStep::Started)
            }
            Ok(Response::IterNext { key, value_len, value_type }) if self.handle.is_some() => {
                Ok(IterStep::Item { key, value_len, value_type })
            }
            Err(CsError::NoSections) if self.handle.is_some() => {
                self.ended = true;
                Ok(IterStep::End)
            }
            Err(e) => {
                self.ended = true;
                Err(e)
            }
            Ok(_) => {
                self.ended = true;
                Err(CsError::MessageError)
            }
        }
    }

    /// The ITER_FINALIZE to send when the caller is done, at the end or abandoning the
    /// iteration early: the daemon keeps the iterator until it gets one. `None` if the
    /// iteration never opened.
    pub fn finalize_request(&self) -> Option<Request<'static>> {
        self.handle.map(|iter_handle| Request::IterFinalize { iter_handle })
    }
}
