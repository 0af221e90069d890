//! libquorum request, response and notification layouts (`ipc_quorum.h`, corosync 3.1.7), the
//! subset `corosync-quorumtool` uses (model v0).
//!
//! The notification's `view_list` starts at offset 44, right after `view_list_entries`, but
//! corosync sizes the frame as `sizeof(struct) + 4 * entries`, and the struct is 48 bytes (its
//! 8-byte alignment pads it): every notification ends with 4 bytes after the last entry.

use super::qb::ResponseHeader;
use super::{assert_layout, I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes after the last `view_list` entry of a notification (the C struct's tail padding).
pub const NOTIFICATION_TAIL_PAD: usize = 4;

/// `req_lib_quorum_trackstart` (24): the `u32` is the `CS_TRACK_*` flags.
pub type ReqTrackStart = super::qb::ReqU32;

/// `res_lib_quorum_getquorate` and `res_lib_quorum_gettype` (32): the `u32` is `quorate`
/// (getquorate) or `quorum_type` (gettype).
pub use super::qb::ResU32;

/// `res_lib_quorum_notification` up to its `view_list` (44; the C struct is 48).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResNotification {
    /// Header (id 3).
    pub hdr: ResponseHeader,
    /// Whether the cluster is quorate.
    pub quorate: I32,
    /// Padding.
    pub _pad: [u8; 4],
    /// Ring sequence number.
    pub ring_seq: U64,
    /// Number of u32 node ids that follow (at offset 44).
    pub view_list_entries: U32,
}
assert_layout!(ResNotification, 44, quorate @ 24, ring_seq @ 32, view_list_entries @ 40);
