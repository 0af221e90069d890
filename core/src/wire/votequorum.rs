//! votequorum request, response and notification layouts (`ipc_votequorum.h`, corosync 3.1.7).
//!
//! Unlike CMAP these structs use natural alignment, so fields are packed more tightly and one
//! (`newname` of `qdevice_update`) sits at an odd offset.

use super::qb::{RequestHeader, ResponseHeader};
use super::{assert_layout, I32, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of a qdevice name field (`VOTEQUORUM_QDEVICE_MAX_NAME_LEN`).
pub const QDEVICE_NAME_LEN: usize = 255;

/// `req_lib_votequorum_getinfo` (24); also `setexpected`: the `u32` is `nodeid` (getinfo) or
/// `expected_votes` (setexpected).
pub use super::qb::ReqU32;

/// `req_lib_votequorum_setvotes` (24).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqSetVotes {
    /// Header.
    pub hdr: RequestHeader,
    /// New votes.
    pub votes: U32,
    /// Node (0 = the quorum device).
    pub nodeid: I32,
}
assert_layout!(ReqSetVotes, 24, votes @ 16, nodeid @ 20);

/// `req_lib_votequorum_trackstart` (32).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqTrackStart {
    /// Header.
    pub hdr: RequestHeader,
    /// Context echoed in notifications.
    pub context: U64,
    /// `CS_TRACK_*` flags.
    pub track_flags: U32,
    /// Tail padding.
    pub _pad: [u8; 4],
}
assert_layout!(ReqTrackStart, 32, context @ 16, track_flags @ 24);

/// `req_lib_votequorum_qdevice_register` and `_unregister` (272).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqQdeviceName {
    /// Header.
    pub hdr: RequestHeader,
    /// Device name, NUL-terminated.
    pub name: [u8; QDEVICE_NAME_LEN],
    /// Tail padding.
    pub _pad: [u8; 1],
}
assert_layout!(ReqQdeviceName, 272, name @ 16);

/// `req_lib_votequorum_qdevice_update` (528).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqQdeviceUpdate {
    /// Header.
    pub hdr: RequestHeader,
    /// Current name.
    pub oldname: [u8; QDEVICE_NAME_LEN],
    /// New name (at the unaligned offset 271).
    pub newname: [u8; QDEVICE_NAME_LEN],
    /// Tail padding.
    pub _pad: [u8; 2],
}
assert_layout!(ReqQdeviceUpdate, 528, oldname @ 16, newname @ 271);

/// `struct mar_votequorum_ring_id` (16).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RingId {
    /// Representative node id.
    pub nodeid: U32,
    /// Padding.
    pub _pad: [u8; 4],
    /// Ring sequence number.
    pub seq: U64,
}
assert_layout!(RingId, 16, nodeid @ 0, seq @ 8);

/// `req_lib_votequorum_qdevice_poll` (296).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqQdevicePoll {
    /// Header.
    pub hdr: RequestHeader,
    /// Device name.
    pub name: [u8; QDEVICE_NAME_LEN],
    /// Padding.
    pub _pad0: [u8; 1],
    /// Whether the device casts its vote.
    pub cast_vote: I32,
    /// Padding.
    pub _pad1: [u8; 4],
    /// Ring id the device voted on.
    pub ring_id: RingId,
}
assert_layout!(ReqQdevicePoll, 296, name @ 16, cast_vote @ 272, ring_id @ 280);

/// `req_lib_votequorum_qdevice_master_wins` (280).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ReqQdeviceMasterWins {
    /// Header.
    pub hdr: RequestHeader,
    /// Device name.
    pub name: [u8; QDEVICE_NAME_LEN],
    /// Padding.
    pub _pad0: [u8; 1],
    /// Whether master-wins is allowed.
    pub allow: U32,
    /// Tail padding.
    pub _pad1: [u8; 4],
}
assert_layout!(ReqQdeviceMasterWins, 280, name @ 16, allow @ 272);

/// `res_lib_votequorum_getinfo` (320).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResGetInfo {
    /// Header (id 1).
    pub hdr: ResponseHeader,
    /// Node id.
    pub nodeid: U32,
    /// Node state.
    pub state: U32,
    /// Votes of the node.
    pub votes: U32,
    /// Expected votes.
    pub expected_votes: U32,
    /// Highest expected votes in the cluster.
    pub highest_expected: U32,
    /// Total votes.
    pub total_votes: U32,
    /// Quorum.
    pub quorum: U32,
    /// `VOTEQUORUM_INFO_*` flags.
    pub flags: U32,
    /// Votes of the quorum device.
    pub qdevice_votes: U32,
    /// Quorum device name, NUL-terminated.
    pub qdevice_name: [u8; QDEVICE_NAME_LEN],
    /// Tail padding.
    pub _pad: [u8; 5],
}
assert_layout!(
    ResGetInfo,
    320,
    nodeid @ 24,
    state @ 28,
    votes @ 32,
    expected_votes @ 36,
    highest_expected @ 40,
    total_votes @ 44,
    quorum @ 48,
    flags @ 52,
    qdevice_votes @ 56,
    qdevice_name @ 60,
);

/// `res_lib_votequorum_quorum_notification` without its node list (48).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResQuorumNotification {
    /// Header (id 3).
    pub hdr: ResponseHeader,
    /// 1 if quorate.
    pub quorate: U32,
    /// Padding.
    pub _pad0: [u8; 4],
    /// Context from trackstart.
    pub context: U64,
    /// Number of `{nodeid, state}` entries that follow.
    pub node_list_entries: U32,
    /// Padding.
    pub _pad1: [u8; 4],
}
assert_layout!(ResQuorumNotification, 48, quorate @ 24, context @ 32, node_list_entries @ 40);

/// One entry of the quorum notification's node list (8).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct NodeEntry {
    /// Node id (0 = the quorum device).
    pub nodeid: U32,
    /// Node state.
    pub state: U32,
}
assert_layout!(NodeEntry, 8, nodeid @ 0, state @ 4);

/// `res_lib_votequorum_nodelist_notification` without its node ids (56).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResNodelistNotification {
    /// Header (id 5).
    pub hdr: ResponseHeader,
    /// Context from trackstart.
    pub context: U64,
    /// Ring id.
    pub ring_id: RingId,
    /// Number of u32 node ids that follow.
    pub node_list_entries: U32,
    /// Padding.
    pub _pad: [u8; 4],
}
assert_layout!(ResNodelistNotification, 56, context @ 24, ring_id @ 32, node_list_entries @ 48);

/// `res_lib_votequorum_expectedvotes_notification` (40).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct ResExpectedVotesNotification {
    /// Header (id 4).
    pub hdr: ResponseHeader,
    /// Context from trackstart.
    pub context: U64,
    /// New expected votes.
    pub expected_votes: U32,
    /// Tail padding.
    pub _pad: [u8; 4],
}
assert_layout!(ResExpectedVotesNotification, 40, context @ 24, expected_votes @ 32);
