//! libcfg request and response layouts (`ipc_cfg.h`, corosync 3.1.7), the subset
//! `corosync-quorumtool` uses (GET_NODE_ADDRS, LOCAL_GET) and the shutdown exchange
//! (TRACKSTART, TRACKSTOP, TRYSHUTDOWN, REPLYTOSHUTDOWN and the TESTSHUTDOWN notification).
//! Their other replies are the 24-byte response header alone.

use super::qb::{RequestHeader, ResponseHeader};
use super::{assert_layout, U32};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of one address in a GET_NODE_ADDRS reply (`TOTEMIP_ADDRLEN`, `sizeof(struct in6_addr)`).
pub const ADDR_LEN: usize = 16;

/// `req_lib_cfg_get_node_addrs` (24): the `u32` is the node id (0: the local node).
pub type ReqGetNodeAddrs = super::qb::ReqU32;

/// `res_lib_cfg_get_node_addrs` without its addresses (32); `num_addrs` addresses of
/// [`ADDR_LEN`] bytes follow.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResGetNodeAddrs {
    /// Header (id 11).
    pub hdr: ResponseHeader,
    /// The addresses' `AF_*` family.
    pub family: U32,
    /// Number of addresses that follow.
    pub num_addrs: U32,
}
assert_layout!(ResGetNodeAddrs, 32, family @ 24, num_addrs @ 28);

/// `res_lib_cfg_local_get` (32, header id 12): the `u32` is the local node id.
pub type ResLocalGet = super::qb::ResU32;

/// `req_lib_cfg_trackstart` (24): one byte of track flags (corosync ignores them; libcfg
/// leaves the 7 bytes after it uninitialised, so they are never read).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqTrackStart {
    /// Header (id 10).
    pub hdr: RequestHeader,
    /// `track_flags`.
    pub track_flags: u8,
    /// Tail padding.
    pub _pad: [u8; 7],
}
assert_layout!(ReqTrackStart, 24, track_flags @ 16);

/// `req_lib_cfg_tryshutdown` (24): the `u32` is the `CFG_SHUTDOWN_FLAG_*` value.
pub type ReqTryShutdown = super::qb::ReqU32;

/// `req_lib_cfg_replytoshutdown` (24): the `u32` is the answer (0 no, anything else yes).
pub type ReqReplyToShutdown = super::qb::ReqU32;

/// `res_lib_cfg_testshutdown` (32, header id 10): the `u32` is the shutdown's flags.
pub type ResTestShutdown = super::qb::ResU32;
