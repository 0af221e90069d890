//! libcfg request and response layouts (`ipc_cfg.h`, corosync 3.1.7), the subset
//! `corosync-quorumtool` uses: GET_NODE_ADDRS, and LOCAL_GET.

use super::qb::ResponseHeader;
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
