//! CMAP request, response and notification layouts (`ipc_cmap.h`); every field is aligned(8).

use super::qb::{RequestHeader, ResponseHeader};
use super::{assert_layout, I32, U16, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of `mar_name_t.value`.
pub const NAME_VALUE_LEN: usize = 256;

/// `mar_name_t`: a length and a NUL-padded 256-byte value (264 bytes, align 8).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MarName {
    /// Length of the name (the server only tests whether it is non-zero).
    pub length: U16,
    /// Padding to the value.
    pub _pad: [u8; 6],
    /// The name, NUL-terminated within the 256 bytes.
    pub value: [u8; NAME_VALUE_LEN],
}
assert_layout!(MarName, 264, length @ 0, value @ 8);

/// A `mar_uint8_t` in an aligned(8) slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct U8Slot {
    /// The byte.
    pub value: u8,
    /// The slot's padding.
    pub _pad: [u8; 7],
}

/// An `int32` in an aligned(8) slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct I32Slot {
    /// The value.
    pub value: I32,
    /// The slot's padding.
    pub _pad: [u8; 4],
}

/// `req_lib_cmap_set` without its trailing value bytes (296).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqSet {
    /// Header.
    pub hdr: RequestHeader,
    /// Key.
    pub key_name: MarName,
    /// Length of the value that follows.
    pub value_len: U64,
    /// Value type.
    pub value_type: U8Slot,
}
assert_layout!(ReqSet, 296, key_name @ 16, value_len @ 280, value_type @ 288);

/// `req_lib_cmap_delete` (280); also the layout of `req_lib_cmap_iter_init`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqKey {
    /// Header.
    pub hdr: RequestHeader,
    /// Key (or prefix; length 0 = none).
    pub key_name: MarName,
}
assert_layout!(ReqKey, 280, key_name @ 16);

/// `req_lib_cmap_get` (288).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqGet {
    /// Header.
    pub hdr: RequestHeader,
    /// Key.
    pub key_name: MarName,
    /// Size of the caller's value buffer; 0 asks for the length and type only.
    pub value_len: U64,
}
assert_layout!(ReqGet, 288, key_name @ 16, value_len @ 280);

/// `req_lib_cmap_adjust_int` (288).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqAdjustInt {
    /// Header.
    pub hdr: RequestHeader,
    /// Key.
    pub key_name: MarName,
    /// Step to add.
    pub step: I32Slot,
}
assert_layout!(ReqAdjustInt, 288, key_name @ 16, step @ 280);

/// A request whose body is one u64 handle (24): `iter_next`, `iter_finalize`, `track_delete`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqHandle {
    /// Header.
    pub hdr: RequestHeader,
    /// Iterator or track handle.
    pub handle: U64,
}
assert_layout!(ReqHandle, 24, handle @ 16);

/// `req_lib_cmap_track_add` (296).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqTrackAdd {
    /// Header.
    pub hdr: RequestHeader,
    /// Key or prefix (length 0 = none).
    pub key_name: MarName,
    /// Track type bit mask.
    pub track_type: I32Slot,
    /// The client's cookie, echoed in notifications.
    pub track_inst_handle: U64,
}
assert_layout!(ReqTrackAdd, 296, key_name @ 16, track_type @ 280, track_inst_handle @ 288);

/// `req_lib_cmap_set_current_map` (24).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqSetCurrentMap {
    /// Header.
    pub hdr: RequestHeader,
    /// Map: 0 default, 1 stats.
    pub map: I32Slot,
}
assert_layout!(ReqSetCurrentMap, 24, map @ 16);

/// `res_lib_cmap_get` without its value bytes (40).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResGet {
    /// Header.
    pub hdr: ResponseHeader,
    /// Actual length of the value.
    pub value_len: U64,
    /// Value type.
    pub value_type: U8Slot,
}
assert_layout!(ResGet, 40, value_len @ 24, value_type @ 32);

/// A response whose body is one u64 handle (32): `iter_init`, `track_add`, `track_delete`.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResHandle {
    /// Header.
    pub hdr: ResponseHeader,
    /// Iterator handle, track handle, or track cookie.
    pub handle: U64,
}
assert_layout!(ResHandle, 32, handle @ 24);

/// `res_lib_cmap_iter_next` (304).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResIterNext {
    /// Header.
    pub hdr: ResponseHeader,
    /// Key.
    pub key_name: MarName,
    /// Length of the key's value.
    pub value_len: U64,
    /// Type of the key's value.
    pub value_type: U8Slot,
}
assert_layout!(ResIterNext, 304, key_name @ 24, value_len @ 288, value_type @ 296);

/// `res_lib_cmap_notify_callback` without its value bytes (336).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResNotify {
    /// Header (id 9).
    pub hdr: ResponseHeader,
    /// The client's cookie from `track_add`.
    pub track_inst_handle: U64,
    /// Key that changed.
    pub key_name: MarName,
    /// Event: 4 add, 2 modify, 1 delete.
    pub event: I32Slot,
    /// Type of the new value (0 = none).
    pub new_value_type: U8Slot,
    /// Type of the old value (0 = none).
    pub old_value_type: U8Slot,
    /// Length of the new value.
    pub new_value_len: U64,
    /// Length of the old value.
    pub old_value_len: U64,
}
assert_layout!(
    ResNotify,
    336,
    track_inst_handle @ 24,
    key_name @ 32,
    event @ 296,
    new_value_type @ 304,
    old_value_type @ 312,
    new_value_len @ 320,
    old_value_len @ 328,
);
