//! libqb IPC headers and the connection-setup structures (`qbipc_common.h`, `ipc_setup.c`).

use super::{assert_layout, I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// `PATH_MAX` as used by the setup response (not `NAME_MAX`).
pub const PATH_MAX: usize = 4096;
/// Message id of the setup handshake, request and response (`QB_IPC_MSG_AUTHENTICATE`).
pub const MSG_AUTHENTICATE: i32 = -1;
/// Legacy setup id `QB_IPC_MSG_NEW_EVENT_SOCK`, unused by libqb 2.x.
pub const MSG_NEW_EVENT_SOCK: i32 = -2;
/// A request with this id tears the connection down (`QB_IPC_MSG_DISCONNECT`).
pub const MSG_DISCONNECT: i32 = -3;

/// `struct qb_ipc_request_header`: 16 bytes, every field in an 8-byte slot.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RequestHeader {
    /// Message id.
    pub id: I32,
    /// Padding of the aligned(8) slot.
    pub _pad0: [u8; 4],
    /// Total message length, header included.
    pub size: I32,
    /// Padding of the aligned(8) slot.
    pub _pad1: [u8; 4],
}
assert_layout!(RequestHeader, 16, id @ 0, size @ 8);

/// `struct qb_ipc_response_header`: 24 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResponseHeader {
    /// Message id.
    pub id: I32,
    /// Padding of the aligned(8) slot.
    pub _pad0: [u8; 4],
    /// Total message length, header included.
    pub size: I32,
    /// Padding of the aligned(8) slot.
    pub _pad1: [u8; 4],
    /// `cs_error_t` in service replies; 0 or `-errno` in the setup response.
    pub error: I32,
    /// Padding of the aligned(8) slot.
    pub _pad2: [u8; 4],
}
assert_layout!(ResponseHeader, 24, id @ 0, size @ 8, error @ 16);

/// A request header and one `u32` (24): every request whose body is a single 32-bit field
/// (`qb_ipc_connection_request`, `req_lib_votequorum_getinfo` and `_setexpected`,
/// `req_lib_quorum_trackstart`, `req_lib_cfg_get_node_addrs`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqU32 {
    /// Header.
    pub hdr: RequestHeader,
    /// The field (`max_msg_size`, `nodeid`, `expected_votes`, `track_flags`, ...).
    pub value: U32,
    /// Tail padding.
    pub _pad: [u8; 4],
}
assert_layout!(ReqU32, 24, value @ 16);

/// A response header and one `u32` (32): every reply whose body is a single 32-bit field
/// (`res_lib_quorum_getquorate` and `_gettype`, `res_lib_cfg_local_get`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResU32 {
    /// Header.
    pub hdr: ResponseHeader,
    /// The field (`quorate`, `quorum_type`, `local_nodeid`, ...).
    pub value: U32,
    /// Tail padding.
    pub _pad: [u8; 4],
}
assert_layout!(ResU32, 32, value @ 24);

/// `struct qb_ipc_connection_request` (24): a header with id −1 and size 24; the `u32` is the
/// requested maximum message size.
pub type ConnectionRequest = ReqU32;

/// `struct qb_ipc_connection_response`: 12328 bytes.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ConnectionResponse {
    /// Header with id −1, size 12328 and error 0 or `-errno`.
    pub hdr: ResponseHeader,
    /// `enum qb_ipc_type`: 0 socket, 1 shared memory.
    pub connection_type: I32,
    /// Negotiated maximum message size.
    pub max_msg_size: U32,
    /// Server-side pointer; opaque.
    pub connection: U64,
    /// Request ring base path (or the control file, for sockets).
    pub request: [u8; PATH_MAX],
    /// Response ring base path (or the socket base name).
    pub response: [u8; PATH_MAX],
    /// Event ring base path.
    pub event: [u8; PATH_MAX],
}
assert_layout!(
    ConnectionResponse,
    12328,
    hdr @ 0,
    connection_type @ 24,
    max_msg_size @ 28,
    connection @ 32,
    request @ 40,
    response @ 4136,
    event @ 8232,
);

/// The ring header now lives with the other ring layouts.
pub use super::ring::RingHeader;
