//! votequorum messages, typed: requests (client → server), replies (server → client) and the
//! three notifications, each with `encode` into a caller's buffer and a borrowing `decode`.
//!
//! Node lists in notifications are not copied: [`NodeList`] and [`NodeIds`] are views that
//! read the entries straight out of the frame (or, for encoding, out of a caller's slice).
//!
//! ```
//! use corowire::votequorum::{Request, RequestKind, RESPONSE_GETINFO};
//! let mut buf = [0u8; 64];
//! let req = Request::GetInfo { nodeid: 0 };
//! let n = req.encode(&mut buf)?;
//! assert_eq!(n, 24);
//! assert_eq!(Request::decode(&buf[..n])?, req);
//! assert_eq!(req.kind(), RequestKind::GetInfo);
//! assert_eq!(req.kind().response_id(), RESPONSE_GETINFO);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

mod client;
pub use client::Votequorum;

use crate::codec::{
    self, bit_flags, check_name, cstr, exact, expect_empty, layout, message, put_cstr, request_msg,
    response_msg, take, wire_ids, wire_name, MAX_TAIL,
};
use crate::error::{CsError, DecodeError, EncodeError};
use crate::wire::qb::{RequestHeader, ResponseHeader};
use crate::wire::votequorum::{
    self as raw, ReqQdeviceMasterWins, ReqQdeviceName, ReqQdevicePoll, ReqQdeviceUpdate, ReqSetVotes,
    ReqTrackStart, ReqU32, ResExpectedVotesNotification, ResGetInfo, ResNodelistNotification,
    ResQuorumNotification, QDEVICE_NAME_LEN,
};
use crate::wire::{I32, U32, U64};
use core::fmt;
use core::iter::FusedIterator;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The libqb service name of votequorum.
pub const SERVICE_NAME: &str = "votequorum";
/// Longest qdevice name a client may send (libvotequorum rejects 255 bytes or more).
pub const QDEVICE_NAME_MAX_LEN: usize = QDEVICE_NAME_LEN - 1;
/// The node id under which the quorum device appears (`VOTEQUORUM_QDEVICE_NODEID`): in
/// SETVOTES it addresses the device, in the quorum notification it lists it.
pub const QDEVICE_NODEID: u32 = 0;

/// Response id of the status-only reply to every request but GETINFO (also corosync's
/// generic reject of an unknown request).
pub const RESPONSE_STATUS: i32 = 0;
/// Response id of the GETINFO reply.
pub const RESPONSE_GETINFO: i32 = 1;
/// Response id of the quorum notification (on the event channel).
pub const NOTIFY_QUORUM: i32 = 3;
/// Response id of the expected-votes notification (on the event channel).
pub const NOTIFY_EXPECTED_VOTES: i32 = 4;
/// Response id of the node-list notification (on the event channel).
pub const NOTIFY_NODELIST: i32 = 5;

wire_ids! {
    /// Request ids (`MESSAGE_REQ_VOTEQUORUM_*`) and their reply ids: [`RESPONSE_GETINFO`] for
    /// GETINFO, [`RESPONSE_STATUS`] for everything else.
    pub enum RequestKind {
        /// 0: information about a node.
        GetInfo = 0 => RESPONSE_GETINFO,
        /// 1: set the expected votes of the cluster.
        SetExpected = 1 => RESPONSE_STATUS,
        /// 2: set the votes of a node (or of the quorum device).
        SetVotes = 2 => RESPONSE_STATUS,
        /// 3: start tracking quorum and membership changes.
        TrackStart = 3 => RESPONSE_STATUS,
        /// 4: stop tracking.
        TrackStop = 4 => RESPONSE_STATUS,
        /// 5: register a quorum device.
        QdeviceRegister = 5 => RESPONSE_STATUS,
        /// 6: unregister the quorum device.
        QdeviceUnregister = 6 => RESPONSE_STATUS,
        /// 7: rename the quorum device.
        QdeviceUpdate = 7 => RESPONSE_STATUS,
        /// 8: the quorum device's periodic poll (cast or withhold its vote).
        QdevicePoll = 8 => RESPONSE_STATUS,
        /// 9: set the quorum device's master-wins mode.
        QdeviceMasterWins = 9 => RESPONSE_STATUS,
    }
}

message! {
    Request<'a>: m => m.kind().id(),
    Reply<'a>: m => m.body.id(),
    Notification<'a>: m => m.id(),
}

/// A quorum device name: 1 to 254 bytes, no NUL. Names decoded from the wire borrow the frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QdeviceName<'a>(&'a [u8]);
wire_name!(QdeviceName);

impl<'a> QdeviceName<'a> {
    /// A name, checked as libvotequorum checks it: not empty, shorter than 255 bytes, and
    /// without a NUL (which would cut it short on the wire).
    pub fn new(name: &'a [u8]) -> Result<Self, EncodeError> {
        if name.is_empty() {
            return Err(EncodeError::EmptyName);
        }
        check_name(name, QDEVICE_NAME_LEN)?;
        Ok(Self(name))
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the name is empty: never for [`QdeviceName::new`], but a request decoded from
    /// the wire may carry an empty name (corosync does not check).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn write(&self, field: &mut [u8; QDEVICE_NAME_LEN]) {
        put_cstr(field, self.0);
    }

    fn read(
        field: &'a [u8; QDEVICE_NAME_LEN],
        name: &'static str,
        offset: usize,
    ) -> Result<Self, DecodeError> {
        cstr(field, name, offset).map(Self)
    }
}

/// `CS_TRACK_*`: what TRACKSTART asks for. Combine with `|`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TrackFlags(pub u32);
bit_flags!(TrackFlags);

impl TrackFlags {
    /// 1: send the current node list and quorum state now.
    pub const CURRENT: Self = Self(1);
    /// 2: send the current state now and every change from then on.
    pub const CHANGES: Self = Self(2);
    /// 4: send changes only, from now on.
    pub const CHANGES_ONLY: Self = Self(4);
}

/// `struct mar_votequorum_ring_id`: a membership ring. `Display` prints it as
/// `corosync-quorumtool`'s `Ring ID:` line does (`CS_PRI_RING_ID`: both numbers in hex,
/// `1.2c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RingId {
    /// Representative node id.
    pub nodeid: u32,
    /// Ring sequence number.
    pub seq: u64,
}

impl RingId {
    fn from_wire(r: &raw::RingId) -> Self {
        Self { nodeid: r.nodeid.get(), seq: r.seq.get() }
    }

    fn to_wire(self) -> raw::RingId {
        raw::RingId { nodeid: U32::new(self.nodeid), _pad: [0; 4], seq: U64::new(self.seq) }
    }
}

/// `VOTEQUORUM_NODESTATE_*`. Any number is kept as it is, so the conversion is lossless.
/// `Debug` and `Display` give the word (`Member`); `Debug` shows an undefined state as
/// `NodeState(5)`.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeState(pub u32);

impl NodeState {
    /// 1: the node is a member of the cluster.
    pub const MEMBER: Self = Self(1);
    /// 2: the node is dead.
    pub const DEAD: Self = Self(2);
    /// 3: the node is leaving.
    pub const LEAVING: Self = Self(3);
}

/// `VOTEQUORUM_INFO_*`: the flags of a GETINFO reply. Combine with `|`. `Debug` joins the
/// words of [`InfoFlags::WORDS`] with `|` (`Quorate|WaitForAll`).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InfoFlags(pub u32);
bit_flags!(InfoFlags);

impl InfoFlags {
    /// 1: `two_node` mode is configured.
    pub const TWONODE: Self = Self(1);
    /// 2: the cluster is quorate now.
    pub const QUORATE: Self = Self(2);
    /// 4: `wait_for_all` is configured.
    pub const WAIT_FOR_ALL: Self = Self(4);
    /// 8: `last_man_standing` is configured.
    pub const LAST_MAN_STANDING: Self = Self(8);
    /// 16: an auto tie-breaker is configured.
    pub const AUTO_TIE_BREAKER: Self = Self(16);
    /// 32: `allow_downscale` is configured.
    pub const ALLOW_DOWNSCALE: Self = Self(32);
    /// 64: the queried node has a registered quorum device.
    pub const QDEVICE_REGISTERED: Self = Self(64);
    /// 128: the quorum device polled within its timeout.
    pub const QDEVICE_ALIVE: Self = Self(128);
    /// 256: the quorum device is casting its vote.
    pub const QDEVICE_CAST_VOTE: Self = Self(256);
    /// 512: the quorum device set master-wins mode.
    pub const QDEVICE_MASTER_WINS: Self = Self(512);
}

/// The word for the state: `Member`, `Dead`, `Leaving` (the `VOTEQUORUM_NODESTATE_*` names),
/// or the number for a state corosync does not define.
impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MEMBER => f.write_str("Member"),
            Self::DEAD => f.write_str("Dead"),
            Self::LEAVING => f.write_str("Leaving"),
            Self(other) => write!(f, "{other}"),
        }
    }
}

impl fmt::Debug for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::MEMBER | Self::DEAD | Self::LEAVING => fmt::Display::fmt(self, f),
            Self(other) => write!(f, "NodeState({other})"),
        }
    }
}

impl fmt::Display for RingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}.{:x}", self.nodeid, self.seq)
    }
}

impl InfoFlags {
    /// Every defined flag with its word, in bit order. The first seven are the words
    /// `corosync-quorumtool` prints on its `Flags:` line (`display_quorum_data` in corosync's
    /// `tools/corosync-quorumtool.c`); the three quorum-device states it shows per node instead
    /// (`A`/`NA`, `V`/`NV`, `MW`/`NMW`) are named after the constants.
    pub const WORDS: [(Self, &'static str); 10] = [
        (Self::TWONODE, "2Node"),
        (Self::QUORATE, "Quorate"),
        (Self::WAIT_FOR_ALL, "WaitForAll"),
        (Self::LAST_MAN_STANDING, "LastManStanding"),
        (Self::AUTO_TIE_BREAKER, "AutoTieBreaker"),
        (Self::ALLOW_DOWNSCALE, "AllowDownscale"),
        (Self::QDEVICE_REGISTERED, "Qdevice"),
        (Self::QDEVICE_ALIVE, "QdeviceAlive"),
        (Self::QDEVICE_CAST_VOTE, "QdeviceCastVote"),
        (Self::QDEVICE_MASTER_WINS, "QdeviceMasterWins"),
    ];

    /// The words of the flags that are set, in bit order (see [`InfoFlags::WORDS`]).
    pub fn words(self) -> impl Iterator<Item = &'static str> {
        Self::WORDS.into_iter().filter(move |(f, _)| self.contains(*f)).map(|(_, w)| w)
    }
}

impl InfoFlags {
    /// The words of the set flags separated by `sep`, then any bits corosync does not define
    /// as one hex number (`0x400`); nothing for no flags.
    fn write_words(self, f: &mut fmt::Formatter<'_>, sep: &str) -> fmt::Result {
        let mut before = "";
        for w in self.words() {
            write!(f, "{before}{w}")?;
            before = sep;
        }
        let known = Self::WORDS.iter().fold(0, |acc, (flag, _)| acc | flag.0);
        match self.0 & !known {
            0 => Ok(()),
            unknown => write!(f, "{before}{unknown:#x}"),
        }
    }
}

/// The words of the set flags separated by spaces ([`InfoFlags::words`]), e.g.
/// `Quorate WaitForAll`, then any bits corosync does not define as one hex number
/// (`0x400`); no flags print nothing, as `corosync-quorumtool`'s `Flags:` line.
impl fmt::Display for InfoFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_words(f, " ")
    }
}

/// `Quorate|WaitForAll`, `0x400` for undefined bits, `(empty)` for no flags.
impl fmt::Debug for InfoFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("(empty)");
        }
        self.write_words(f, "|")
    }
}

/// A votequorum request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request<'a> {
    /// Information about a node.
    GetInfo {
        /// Node id (0 = the local node; an `i32` on the wire, bit-cast).
        nodeid: u32,
    },
    /// Set the expected votes of the cluster.
    SetExpected {
        /// New expected votes.
        expected_votes: u32,
    },
    /// Set the votes of a node.
    SetVotes {
        /// Node id (0 = the quorum device; an `i32` on the wire, bit-cast).
        nodeid: u32,
        /// New votes.
        votes: u32,
    },
    /// Start tracking; the notifications carry `context`.
    TrackStart {
        /// The client's cookie, echoed in each notification.
        context: u64,
        /// What to report.
        flags: TrackFlags,
    },
    /// Stop tracking.
    TrackStop,
    /// Register a quorum device.
    QdeviceRegister {
        /// Device name.
        name: QdeviceName<'a>,
    },
    /// Unregister the quorum device.
    QdeviceUnregister {
        /// Device name.
        name: QdeviceName<'a>,
    },
    /// Rename the quorum device.
    QdeviceUpdate {
        /// Current name.
        old_name: QdeviceName<'a>,
        /// New name.
        new_name: QdeviceName<'a>,
    },
    /// The quorum device's poll: cast its vote or not, for the ring it saw.
    QdevicePoll {
        /// Device name.
        name: QdeviceName<'a>,
        /// Whether the device casts its vote (any non-zero value on the wire).
        cast_vote: bool,
        /// The ring the device voted on.
        ring_id: RingId,
    },
    /// Set the quorum device's master-wins mode.
    QdeviceMasterWins {
        /// Device name.
        name: QdeviceName<'a>,
        /// Whether master-wins is allowed (any non-zero value on the wire).
        allow: bool,
    },
}

impl<'a> Request<'a> {
    /// The kind (and id) of this request.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::GetInfo { .. } => RequestKind::GetInfo,
            Self::SetExpected { .. } => RequestKind::SetExpected,
            Self::SetVotes { .. } => RequestKind::SetVotes,
            Self::TrackStart { .. } => RequestKind::TrackStart,
            Self::TrackStop => RequestKind::TrackStop,
            Self::QdeviceRegister { .. } => RequestKind::QdeviceRegister,
            Self::QdeviceUnregister { .. } => RequestKind::QdeviceUnregister,
            Self::QdeviceUpdate { .. } => RequestKind::QdeviceUpdate,
            Self::QdevicePoll { .. } => RequestKind::QdevicePoll,
            Self::QdeviceMasterWins { .. } => RequestKind::QdeviceMasterWins,
        }
    }

    /// Length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::GetInfo { .. } | Self::SetExpected { .. } => size_of::<ReqU32>(),
            Self::SetVotes { .. } => size_of::<ReqSetVotes>(),
            Self::TrackStart { .. } => size_of::<ReqTrackStart>(),
            Self::TrackStop => size_of::<RequestHeader>(),
            Self::QdeviceRegister { .. } | Self::QdeviceUnregister { .. } => size_of::<ReqQdeviceName>(),
            Self::QdeviceUpdate { .. } => size_of::<ReqQdeviceUpdate>(),
            Self::QdevicePoll { .. } => size_of::<ReqQdevicePoll>(),
            Self::QdeviceMasterWins { .. } => size_of::<ReqQdeviceMasterWins>(),
        }
    }

    /// Encodes the request into the start of `out` and returns its length. On error `out` is
    /// untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.kind() as i32;
        match *self {
            Self::GetInfo { nodeid: value } | Self::SetExpected { expected_votes: value } => {
                let (m, _, n) = request_msg::<ReqU32>(out, id, 0)?;
                m.value = U32::new(value);
                Ok(n)
            }
            Self::SetVotes { nodeid, votes } => {
                let (m, _, n) = request_msg::<ReqSetVotes>(out, id, 0)?;
                m.votes = U32::new(votes);
                m.nodeid = I32::new(nodeid as i32);
                Ok(n)
            }
            Self::TrackStart { context, flags } => {
                let (m, _, n) = request_msg::<ReqTrackStart>(out, id, 0)?;
                m.context = U64::new(context);
                m.track_flags = U32::new(flags.0);
                Ok(n)
            }
            Self::TrackStop => {
                let (_, _, n) = request_msg::<RequestHeader>(out, id, 0)?;
                Ok(n)
            }
            Self::QdeviceRegister { name } | Self::QdeviceUnregister { name } => {
                let (m, _, n) = request_msg::<ReqQdeviceName>(out, id, 0)?;
                name.write(&mut m.name);
                Ok(n)
            }
            Self::QdeviceUpdate { old_name, new_name } => {
                let (m, _, n) = request_msg::<ReqQdeviceUpdate>(out, id, 0)?;
                old_name.write(&mut m.oldname);
                new_name.write(&mut m.newname);
                Ok(n)
            }
            Self::QdevicePoll { name, cast_vote, ring_id } => {
                let (m, _, n) = request_msg::<ReqQdevicePoll>(out, id, 0)?;
                name.write(&mut m.name);
                m.cast_vote = I32::new(cast_vote.into());
                m.ring_id = ring_id.to_wire();
                Ok(n)
            }
            Self::QdeviceMasterWins { name, allow } => {
                let (m, _, n) = request_msg::<ReqQdeviceMasterWins>(out, id, 0)?;
                name.write(&mut m.name);
                m.allow = U32::new(allow.into());
                Ok(n)
            }
        }
    }

    /// Decodes one request frame (server side). `buf` must hold exactly the frame.
    ///
    /// Qdevice names must be NUL-terminated within their 255-byte field; an empty name is
    /// accepted, as corosync accepts it.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let id = codec::request_frame(buf)?;
        let kind = RequestKind::from_id(id).ok_or(DecodeError::UnknownId { id })?;
        Ok(match kind {
            RequestKind::GetInfo => Self::GetInfo { nodeid: exact::<ReqU32>(buf, id)?.value.get() },
            RequestKind::SetExpected => {
                Self::SetExpected { expected_votes: exact::<ReqU32>(buf, id)?.value.get() }
            }
            RequestKind::SetVotes => {
                let m = exact::<ReqSetVotes>(buf, id)?;
                Self::SetVotes { nodeid: m.nodeid.get() as u32, votes: m.votes.get() }
            }
            RequestKind::TrackStart => {
                let m = exact::<ReqTrackStart>(buf, id)?;
                Self::TrackStart { context: m.context.get(), flags: TrackFlags(m.track_flags.get()) }
            }
            RequestKind::TrackStop => {
                exact::<RequestHeader>(buf, id)?;
                Self::TrackStop
            }
            RequestKind::QdeviceRegister => Self::QdeviceRegister {
                name: QdeviceName::read(&exact::<ReqQdeviceName>(buf, id)?.name, "name", 16)?,
            },
            RequestKind::QdeviceUnregister => Self::QdeviceUnregister {
                name: QdeviceName::read(&exact::<ReqQdeviceName>(buf, id)?.name, "name", 16)?,
            },
            RequestKind::QdeviceUpdate => {
                let m = exact::<ReqQdeviceUpdate>(buf, id)?;
                Self::QdeviceUpdate {
                    old_name: QdeviceName::read(&m.oldname, "oldname", 16)?,
                    new_name: QdeviceName::read(&m.newname, "newname", 271)?,
                }
            }
            RequestKind::QdevicePoll => {
                let m = exact::<ReqQdevicePoll>(buf, id)?;
                Self::QdevicePoll {
                    name: QdeviceName::read(&m.name, "name", 16)?,
                    cast_vote: m.cast_vote.get() != 0,
                    ring_id: RingId::from_wire(&m.ring_id),
                }
            }
            RequestKind::QdeviceMasterWins => {
                let m = exact::<ReqQdeviceMasterWins>(buf, id)?;
                Self::QdeviceMasterWins {
                    name: QdeviceName::read(&m.name, "name", 16)?,
                    allow: m.allow.get() != 0,
                }
            }
        })
    }
}

/// The body of a GETINFO reply (`struct res_lib_votequorum_getinfo` in corosync's
/// `include/corosync/ipc_votequorum.h`, `votequorum_info` in `votequorum.h`), generic over what
/// holds the quorum device's name: the codec's [`NodeInfo`] borrows its bytes, the blocking
/// client's `corowire_unix::votequorum::NodeInfo` owns a `String`. [`NodeInfoOf::map_name`]
/// converts one into the other.
///
/// On an error reply corosync leaves the body uninitialised, so decoding never fails on its
/// contents: every field is taken as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeInfoOf<N> {
    /// Node id.
    pub nodeid: u32,
    /// Node state.
    pub state: NodeState,
    /// Votes of the node.
    pub votes: u32,
    /// Expected votes of the node.
    pub expected_votes: u32,
    /// Highest expected votes in the cluster.
    pub highest_expected: u32,
    /// Total votes in the cluster.
    pub total_votes: u32,
    /// Votes needed for quorum.
    pub quorum: u32,
    /// `VOTEQUORUM_INFO_*` flags.
    pub flags: InfoFlags,
    /// Votes of the quorum device.
    pub qdevice_votes: u32,
    /// Name of the quorum device, up to its NUL (all 255 bytes if there is none); empty when no
    /// device is registered. At most 255 bytes, without a NUL, for encoding.
    pub qdevice_name: N,
}

/// The body of a GETINFO reply as the codec reads and writes it: the quorum device's name
/// borrows its bytes.
pub type NodeInfo<'a> = NodeInfoOf<&'a [u8]>;

impl<N> NodeInfoOf<N> {
    /// Whether the cluster is quorate (`VOTEQUORUM_INFO_QUORATE` in [`NodeInfoOf::flags`]).
    pub fn is_quorate(&self) -> bool {
        self.flags.contains(InfoFlags::QUORATE)
    }

    /// The same answer with the quorum device's name passed through `f` (e.g. to own it).
    pub fn map_name<M>(self, f: impl FnOnce(N) -> M) -> NodeInfoOf<M> {
        NodeInfoOf {
            nodeid: self.nodeid,
            state: self.state,
            votes: self.votes,
            expected_votes: self.expected_votes,
            highest_expected: self.highest_expected,
            total_votes: self.total_votes,
            quorum: self.quorum,
            flags: self.flags,
            qdevice_votes: self.qdevice_votes,
            qdevice_name: f(self.qdevice_name),
        }
    }
}

impl<'a> NodeInfo<'a> {
    fn read(m: &'a ResGetInfo) -> Self {
        let name = &m.qdevice_name;
        Self {
            nodeid: m.nodeid.get(),
            state: NodeState(m.state.get()),
            votes: m.votes.get(),
            expected_votes: m.expected_votes.get(),
            highest_expected: m.highest_expected.get(),
            total_votes: m.total_votes.get(),
            quorum: m.quorum.get(),
            flags: InfoFlags(m.flags.get()),
            qdevice_votes: m.qdevice_votes.get(),
            qdevice_name: &name[..name.iter().position(|&b| b == 0).unwrap_or(name.len())],
        }
    }

    fn check(&self) -> Result<(), EncodeError> {
        let len = self.qdevice_name.len();
        if len > QDEVICE_NAME_LEN {
            return Err(EncodeError::NameTooLong { len, max: QDEVICE_NAME_LEN });
        }
        if self.qdevice_name.contains(&0) {
            return Err(EncodeError::NulInName);
        }
        Ok(())
    }

    fn write(&self, m: &mut ResGetInfo) {
        m.nodeid = U32::new(self.nodeid);
        m.state = U32::new(self.state.0);
        m.votes = U32::new(self.votes);
        m.expected_votes = U32::new(self.expected_votes);
        m.highest_expected = U32::new(self.highest_expected);
        m.total_votes = U32::new(self.total_votes);
        m.quorum = U32::new(self.quorum);
        m.flags = U32::new(self.flags.0);
        m.qdevice_votes = U32::new(self.qdevice_votes);
        put_cstr(&mut m.qdevice_name, self.qdevice_name);
    }
}

/// The body of a votequorum reply; which variant it is follows from the response id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Response<'a> {
    /// Id 0: the status-only reply to every request but GETINFO (also corosync's generic
    /// reject).
    Status,
    /// Id 1: GETINFO.
    GetInfo(NodeInfo<'a>),
}

impl Response<'_> {
    /// The response id.
    pub fn id(&self) -> i32 {
        match self {
            Self::Status => RESPONSE_STATUS,
            Self::GetInfo(_) => RESPONSE_GETINFO,
        }
    }
}

/// A votequorum reply: the status from the header, and the body.
pub type Reply<'a> = codec::Reply<Response<'a>>;

impl<'a> Reply<'a> {
    /// Length of the encoded reply.
    pub fn encoded_len(&self) -> usize {
        match self.body {
            Response::Status => size_of::<ResponseHeader>(),
            Response::GetInfo(_) => size_of::<ResGetInfo>(),
        }
    }

    /// Encodes the reply (server side) into the start of `out`; returns its length. On error
    /// `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.body.id();
        let err = CsError::raw_of(self.result);
        match self.body {
            Response::Status => {
                let (_, _, n) = response_msg::<ResponseHeader>(out, id, err, 0)?;
                Ok(n)
            }
            Response::GetInfo(info) => {
                info.check()?;
                let (m, _, n) = response_msg::<ResGetInfo>(out, id, err, 0)?;
                info.write(m);
                Ok(n)
            }
        }
    }

    /// Decodes one reply frame (client side). `buf` must hold exactly the frame.
    /// Notification ids are [`DecodeError::UnknownId`] here; see [`Notification::decode`].
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, raw_error) = codec::response_frame(buf)?;
        let result = CsError::check(raw_error);
        let body = match id {
            RESPONSE_STATUS => {
                exact::<ResponseHeader>(buf, id)?;
                Response::Status
            }
            RESPONSE_GETINFO => Response::GetInfo(NodeInfo::read(exact::<ResGetInfo>(buf, id)?)),
            _ => return Err(DecodeError::UnknownId { id }),
        };
        Ok(Self { result, body })
    }
}

/// One entry of a quorum notification's node list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeEntry {
    /// Node id ([`QDEVICE_NODEID`] for the quorum device).
    pub nodeid: u32,
    /// Node state.
    pub state: NodeState,
}

mod sealed {
    /// Keeps [`WireItem`](super::WireItem) implemented only here.
    pub trait Sealed {}
    impl Sealed for super::NodeEntry {}
    impl Sealed for u32 {}
}

/// An item of a [`WireList`]: a value with a fixed wire form. Sealed; implemented for
/// [`NodeEntry`] (the quorum notification's node list) and `u32` (the node-list notification's
/// node ids).
pub trait WireItem: sealed::Sealed + Copy + Eq + fmt::Debug {
    /// The item as laid out in a frame.
    type Raw: FromBytes + IntoBytes + KnownLayout + Immutable + Unaligned + 'static;

    /// Reads the item out of its wire form.
    fn from_raw(raw: &Self::Raw) -> Self;

    /// The item's wire form.
    fn to_raw(self) -> Self::Raw;
}

impl WireItem for NodeEntry {
    type Raw = raw::NodeEntry;

    fn from_raw(raw: &raw::NodeEntry) -> Self {
        Self { nodeid: raw.nodeid.get(), state: NodeState(raw.state.get()) }
    }

    fn to_raw(self) -> raw::NodeEntry {
        raw::NodeEntry { nodeid: U32::new(self.nodeid), state: U32::new(self.state.0) }
    }
}

impl WireItem for u32 {
    type Raw = U32;

    fn from_raw(raw: &U32) -> Self {
        raw.get()
    }

    fn to_raw(self) -> U32 {
        U32::new(self)
    }
}

enum Items<'a, T: WireItem> {
    Wire(&'a [T::Raw]),
    Slice(&'a [T]),
}

impl<T: WireItem> Clone for Items<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: WireItem> Copy for Items<'_, T> {}

/// A list in a notification: a view over the frame (when decoded) or over a caller's slice
/// (for encoding), never a copy. Two lists are equal if their items are. Used as [`NodeList`]
/// and [`NodeIds`].
pub struct WireList<'a, T: WireItem>(Items<'a, T>);

/// The node list of a quorum notification (see [`WireList`]).
pub type NodeList<'a> = WireList<'a, NodeEntry>;

/// The node ids of a node-list notification (see [`WireList`]).
pub type NodeIds<'a> = WireList<'a, u32>;

impl<'a, T: WireItem> WireList<'a, T> {
    /// A list over `items`, for encoding.
    pub fn from_slice(items: &'a [T]) -> Self {
        Self(Items::Slice(items))
    }

    /// Number of items.
    pub fn len(&self) -> usize {
        match self.0 {
            Items::Wire(s) => s.len(),
            Items::Slice(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Item `i`, if there is one.
    pub fn get(&self, i: usize) -> Option<T> {
        match self.0 {
            Items::Wire(s) => s.get(i).map(T::from_raw),
            Items::Slice(s) => s.get(i).copied(),
        }
    }

    /// The items, in order.
    pub fn iter(&self) -> WireListIter<'a, T> {
        WireListIter { list: *self, front: 0, back: self.len() }
    }

    /// Length of the encoded items (saturating).
    pub(crate) fn encoded_len(&self) -> usize {
        self.len().saturating_mul(size_of::<T::Raw>())
    }

    /// Length of the encoded items, if it fits a `usize`.
    pub(crate) fn checked_encoded_len(&self) -> Option<usize> {
        self.len().checked_mul(size_of::<T::Raw>())
    }

    /// Writes the items into `tail`, which must be exactly [`Self::checked_encoded_len`] long.
    pub(crate) fn encode_into(&self, tail: &mut [u8]) -> Option<()> {
        let dst = <[T::Raw]>::mut_from_bytes(tail).ok()?;
        for (d, item) in dst.iter_mut().zip(self.iter()) {
            *d = item.to_raw();
        }
        Some(())
    }

    /// Splits `count` items (the field `node_list_entries`, at `offset`) off the front of
    /// `tail`, as a view over the frame.
    pub(crate) fn decode(tail: &mut &'a [u8], count: u32, offset: usize) -> Result<Self, DecodeError> {
        let len = u64::from(count) * size_of::<T::Raw>() as u64;
        let bytes = take(tail, len, "node_list_entries", offset)?;
        let items = <[T::Raw]>::ref_from_bytes(bytes).map_err(|_| DecodeError::LengthOutOfBounds {
            field: "node_list_entries",
            offset,
            len: bytes.len() as u64,
            available: bytes.len(),
        })?;
        Ok(Self(Items::Wire(items)))
    }
}

impl<T: WireItem> Clone for WireList<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: WireItem> Copy for WireList<'_, T> {}

impl<'a, T: WireItem> IntoIterator for WireList<'a, T> {
    type Item = T;
    type IntoIter = WireListIter<'a, T>;
    fn into_iter(self) -> WireListIter<'a, T> {
        self.iter()
    }
}

impl<T: WireItem> PartialEq for WireList<'_, T> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl<T: WireItem> Eq for WireList<'_, T> {}

impl<T: WireItem> fmt::Debug for WireList<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl<T: WireItem + defmt::Format> defmt::Format for WireList<'_, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "[");
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                defmt::write!(f, ", ");
            }
            defmt::write!(f, "{}", item);
        }
        defmt::write!(f, "]");
    }
}

/// Iterator over the items of a [`WireList`].
pub struct WireListIter<'a, T: WireItem> {
    list: WireList<'a, T>,
    front: usize,
    back: usize,
}

/// Iterator over the entries of a [`NodeList`].
pub type NodeListIter<'a> = WireListIter<'a, NodeEntry>;

/// Iterator over the ids of a [`NodeIds`].
pub type NodeIdsIter<'a> = WireListIter<'a, u32>;

impl<T: WireItem> Clone for WireListIter<'_, T> {
    fn clone(&self) -> Self {
        Self { list: self.list, front: self.front, back: self.back }
    }
}

impl<T: WireItem> fmt::Debug for WireListIter<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireListIter")
            .field("list", &self.list)
            .field("front", &self.front)
            .field("back", &self.back)
            .finish()
    }
}

#[cfg(feature = "defmt")]
impl<T: WireItem + defmt::Format> defmt::Format for WireListIter<'_, T> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(
            f,
            "WireListIter {{ list: {}, front: {=usize}, back: {=usize} }}",
            self.list,
            self.front,
            self.back
        );
    }
}

impl<T: WireItem> Iterator for WireListIter<'_, T> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        if self.front == self.back {
            return None;
        }
        self.front += 1;
        self.list.get(self.front - 1)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.back - self.front;
        (n, Some(n))
    }
}

impl<T: WireItem> DoubleEndedIterator for WireListIter<'_, T> {
    fn next_back(&mut self) -> Option<T> {
        if self.front == self.back {
            return None;
        }
        self.back -= 1;
        self.list.get(self.back)
    }
}

impl<T: WireItem> ExactSizeIterator for WireListIter<'_, T> {}
impl<T: WireItem> FusedIterator for WireListIter<'_, T> {}

/// A notification (on the event channel), sent to clients that called TRACKSTART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Notification<'a> {
    /// Id 3: the quorum state and the nodes with their states.
    Quorum {
        /// Whether the cluster is quorate (any non-zero value on the wire).
        quorate: bool,
        /// The context given at TRACKSTART.
        context: u64,
        /// The nodes (the quorum device as node 0 when one is registered).
        nodes: NodeList<'a>,
    },
    /// Id 5: the members of a new ring.
    NodeList {
        /// The context given at TRACKSTART.
        context: u64,
        /// The ring.
        ring_id: RingId,
        /// The member node ids.
        nodes: NodeIds<'a>,
    },
    /// Id 4: the expected votes changed.
    ExpectedVotes {
        /// The context given at TRACKSTART.
        context: u64,
        /// New expected votes.
        expected_votes: u32,
    },
}

impl<'a> Notification<'a> {
    /// The response id.
    pub fn id(&self) -> i32 {
        match self {
            Self::Quorum { .. } => NOTIFY_QUORUM,
            Self::NodeList { .. } => NOTIFY_NODELIST,
            Self::ExpectedVotes { .. } => NOTIFY_EXPECTED_VOTES,
        }
    }

    /// Length of the encoded notification (saturating for lists too long to encode).
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::Quorum { nodes, .. } => {
                size_of::<ResQuorumNotification>().saturating_add(nodes.encoded_len())
            }
            Self::NodeList { nodes, .. } => {
                size_of::<ResNodelistNotification>().saturating_add(nodes.encoded_len())
            }
            Self::ExpectedVotes { .. } => size_of::<ResExpectedVotesNotification>(),
        }
    }

    /// Encodes the notification (server side) into the start of `out`; returns its length. On
    /// error `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.id();
        let too_large = EncodeError::MessageTooLarge { len: self.encoded_len() };
        match *self {
            Self::Quorum { quorate, context, nodes } => {
                let tail_len = nodes.checked_encoded_len().ok_or(too_large)?;
                let (m, tail, n) = response_msg::<ResQuorumNotification>(out, id, CsError::RAW_OK, tail_len)?;
                m.quorate = U32::new(quorate.into());
                m.context = U64::new(context);
                m.node_list_entries = U32::new(nodes.len() as u32);
                nodes.encode_into(tail).ok_or(too_large)?;
                Ok(n)
            }
            Self::NodeList { context, ring_id, nodes } => {
                let tail_len = nodes.checked_encoded_len().ok_or(too_large)?;
                let (m, tail, n) =
                    response_msg::<ResNodelistNotification>(out, id, CsError::RAW_OK, tail_len)?;
                m.context = U64::new(context);
                m.ring_id = ring_id.to_wire();
                m.node_list_entries = U32::new(nodes.len() as u32);
                nodes.encode_into(tail).ok_or(too_large)?;
                Ok(n)
            }
            Self::ExpectedVotes { context, expected_votes } => {
                let (m, _, n) = response_msg::<ResExpectedVotesNotification>(out, id, CsError::RAW_OK, 0)?;
                m.context = U64::new(context);
                m.expected_votes = U32::new(expected_votes);
                Ok(n)
            }
        }
    }

    /// Decodes one notification frame (client side). `buf` must hold exactly the frame, and a
    /// node list must fill the rest of it exactly.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, _) = codec::response_frame(buf)?;
        match id {
            NOTIFY_QUORUM => {
                let (m, mut tail) = layout::<ResQuorumNotification>(buf, id, MAX_TAIL)?;
                let nodes = NodeList::decode(&mut tail, m.node_list_entries.get(), 40)?;
                expect_empty(tail, id, buf.len())?;
                Ok(Self::Quorum { quorate: m.quorate.get() != 0, context: m.context.get(), nodes })
            }
            NOTIFY_NODELIST => {
                let (m, mut tail) = layout::<ResNodelistNotification>(buf, id, MAX_TAIL)?;
                let nodes = NodeIds::decode(&mut tail, m.node_list_entries.get(), 48)?;
                expect_empty(tail, id, buf.len())?;
                Ok(Self::NodeList { context: m.context.get(), ring_id: RingId::from_wire(&m.ring_id), nodes })
            }
            NOTIFY_EXPECTED_VOTES => {
                let m = exact::<ResExpectedVotesNotification>(buf, id)?;
                Ok(Self::ExpectedVotes { context: m.context.get(), expected_votes: m.expected_votes.get() })
            }
            _ => Err(DecodeError::UnknownId { id }),
        }
    }
}
