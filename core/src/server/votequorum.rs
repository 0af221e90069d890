//! The votequorum server engine: a model of corosync 3.1.7's `exec/votequorum.c` as the local
//! node runs it, sans IO.
//!
//! The model holds the local node and the nodes it has seen, each with votes, expected votes
//! and a state; the ring id and the members of the current and previous ring; the rules in
//! force; and the quorum device. [`QuorumEngine::configure`] applies corosync's configuration
//! rules (`votequorum_readconfig`): expected votes from the nodelist unless
//! `quorum.expected_votes` is set; `two_node` at start switches `wait_for_all` on unless it is set;
//! `two_node` is dropped when `auto_tie_breaker` is on; `auto_tie_breaker` is dropped on an
//! odd node count without `wait_for_all` (refused with `last_man_standing`), with corosync's
//! messages ([`ConfigNote`]). Quorum is computed as corosync does (`max((highest_expected +
//! 2) / 2, (total_votes + 2) / 2)`, never decreasing unless allowed, 1 in two-node mode with at
//! most two nodes; in corosync's C types: the sums wrap around at 2^32, and the quorum kept
//! is the low 8 bits of that value, as votequorum.c's `static uint8_t quorum` keeps it —
//! `quorum.expected_votes` 1000 on one node gives quorum 245, 4294967295 gives 1 and
//! 2147483647 gives 0, as the real daemon shows; `wait_for_all` holds quorum back until all expected votes are present once;
//! `auto_tie_breaker` decides an even split; `last_man_standing` lowers the expected votes at
//! the end of its window). Membership changes ([`QuorumEngine::set_membership`]), run-time
//! configuration changes ([`QuorumEngine::reconfigure`],
//! [`QuorumEngine::cancel_wait_for_all`]) and the window's timer
//! ([`QuorumEngine::handle_timeout`]) queue the notifications corosync's trackers get, and
//! [`QuorumEngine::runtime_keys`] gives the `runtime.votequorum.*` keys.
//!
//! ```
//! use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
//! use corowire::server::ConnId;
//! use corowire::votequorum::{Reply, Request, Response};
//!
//! let mut engine: QuorumEngine = QuorumEngine::new(QuorumConfig::default());
//! engine.connect(ConnId(7))?;
//! let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
//! let n = Request::GetInfo { nodeid: 0 }.encode(&mut req)?;
//! let m = engine.handle_request(ConnId(7), &req[..n], &mut out)?;
//! let Response::GetInfo(info) = Reply::decode(&out[..m])?.body else { unreachable!() };
//! assert_eq!((info.nodeid, info.votes, info.quorum), (1, 1, 1));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! - GETINFO: node 0 is the local node; an unknown node → `CS_ERR_NOT_EXIST` in a 320-byte
//!   reply (zeroed body; corosync leaves it uninitialised).
//! - SETEXPECTED: below the current total votes, or making a quorate cluster inquorate →
//!   `CS_ERR_INVALID_PARAM`; else every member's expected votes change, trackers get an
//!   EXPECTEDVOTES notification, and a QUORUM notification if quorate-ness changed.
//! - SETVOTES: unknown node → `CS_ERR_NAME_NOT_FOUND` (node 0 is the quorum device); a new quorum
//!   outside `[total/2, total]` → `INVALID_PARAM`.
//! - TRACKSTART: with CURRENT or CHANGES, a NODELIST then a QUORUM notification with the
//!   request's context are queued *before* the reply, also when the answer is `CS_ERR_EXIST`
//!   (tracking already on); CHANGES or CHANGES_ONLY register the context. TRACKSTOP when not
//!   tracking → `NOT_EXIST`.
//! - Quorum device: REGISTER (qdevice disabled by configuration → `CS_ERR_ACCESS`; registered
//!   under another name → `CS_ERR_EXIST`; same name → OK), UNREGISTER / UPDATE / POLL /
//!   MASTER_WINS (not registered → `NOT_EXIST`; name mismatch → `INVALID_PARAM`; POLL with another
//!   ring id → `CS_ERR_MESSAGE_ERROR`; POLL and MASTER_WINS with qdevice disabled → `ACCESS`).
//!   A configured device (`quorum { device { model: ... } }`, [`DeviceConfig`]) counts its votes
//!   in the expected votes even while it casts none; without `votes` they are computed from
//!   a nodelist where every node has one vote (nodes − 1). Its incompatibilities (`two_node`,
//!   last_man_standing, auto_tie_breaker, allow_downscale, missing or too many votes) refuse the
//!   configuration at start ([`ConfigError`]) and disable the device at run time
//!   ([`ConfigNote::DeviceDisabled`]; `runtime.votequorum.qdevice_can_operate` 0), except
//!   `two_node` at run time, which is dropped when a device is registered. A POLL arms the
//!   device's timer (`quorum.device.timeout` from [`QuorumEngine::set_clock`]'s instant); when it
//!   runs out the device is no longer alive and its vote is withdrawn. MASTER_WINS sets
//!   `runtime.votequorum.qdevice_master_wins`; with it, a device casting its vote keeps its
//!   partition quorate.
//!   After a membership change a registered, alive device must poll with the new ring id
//!   within `quorum.device.sync_timeout`: until it does, the change's QUORUM notification
//!   waits ([`QuorumEngine::sync_waiting`], during which the adapter serves no other service);
//!   if it does not, it is no longer alive and the change completes without its vote. The end
//!   of every sync is counted ([`QuorumEngine::completed_syncs`]): the adapter sends libquorum's
//!   notification then, and none during the wait, as corosync 3.1.7 does.
//! - Request ids outside 0–9 get corosync's generic reply (id 0, 24 bytes, `INVALID_PARAM`); a
//!   malformed frame of a known id gets its reply shape with `INVALID_PARAM`.
//!
//! # Not reproduced
//!
//! - Cluster messaging: what corosync multicasts and applies when the message comes back (new
//!   expected votes or votes, qdevice registration) is applied at once. corosync therefore
//!   answers QDEVICE_REGISTER asynchronously and sends the notifications of SETEXPECTED /
//!   SETVOTES *after* the reply; here they are queued with the reply (the adapter sends them
//!   first). libvotequorum cannot tell: events and replies use different channels. A sync
//!   held for the quorum device ends at its POLL here; corosync ends it at the next sync
//!   round after the poll (about 60 ms later on a 3-node cluster).
//! - Other nodes' quorum devices: corosync learns each node's device flags from its messages
//!   (`corosync-quorumtool -l` shows `A,V,NMW` for a remote node whose device votes), and its
//!   `check_qdevice_master` lets a remote master_wins device make the partition quorate. Here
//!   they are what [`QuorumEngine::set_remote_qdevice`] says (the simulator's devices: voting
//!   or none), and a remote master_wins is not modelled.
//! - Other nodes' own state comes only from the caller: [`QuorumEngine::set_membership_with`]
//!   takes each member's NODEINFO message (votes, expected votes, the quorate and
//!   wait-for-all flags; the simulator gives every node an engine of its own and passes
//!   their messages), handled in node-id order; corosync handles them in totem's delivery
//!   order, and node-id order reproduces what the real cluster showed
//!   (`tests/cluster/expected/lms-heal.txt`: two EXPECTEDVOTES notifications on node 2),
//!   except in one case seen: with allow_downscale, 4 nodes, node 4 stopped cleanly (expected
//!   votes 3), node 3 crashed and restarted, then node 4 restarted: corosync 3.1.7 sent node
//!   1's trackers two EXPECTEDVOTES notifications (4, then 4 again: node 1's own message,
//!   still saying 3, arrived after node 4's), the model one.
//!   Without messages ([`QuorumEngine::set_membership`]) every member is taken to share the
//!   local node's view. A node that stops cleanly sends its NODEINFO message with
//!   `LEAVING` first ([`QuorumEngine::leave_message`], [`QuorumEngine::node_leaving`]:
//!   allow_downscale). Not modelled from the messages: `FIRST`, and the quorum device's
//!   flags and votes.
//!   Run-time changes travel as reconfigure messages ([`Reconfigure`]): the engine applies
//!   its own and, when its partition has other members, keeps them for
//!   [`QuorumEngine::poll_reconfigure`] (at most four; a change that needs a fifth is refused
//!   with [`ServerError::OutboxFull`]); another member's are applied with
//!   [`QuorumEngine::apply_reconfigure`].
//! - The expected-votes tracking barrier lives in memory (corosync keeps it in
//!   `/var/lib/corosync/ev_tracking`).
//! - A device registered by a connection stays registered when that connection closes, as
//!   in corosync (its vote is withdrawn when it stops polling: `quorum.device.timeout`).

use super::outbox::Outbox;
use super::session::{handle_request_method, notification_methods, tracking_connection_methods, Sessions};
use super::{forward_engine_methods, ClusterView, ConnId, Engine, Served, ServerError, MAX_MEMBERS};
use crate::cmap::Value;
use crate::error::CsError;
use crate::time::{Duration, Instant};
use crate::votequorum::{
    InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeList, NodeState, Notification, Reply, Request, RequestKind,
    Response, RingId, TrackFlags, QDEVICE_NAME_MAX_LEN, QDEVICE_NODEID,
};
use heapless::Vec;

/// Most node ids an `auto_tie_breaker_node` list holds (corosync: `PROCESSOR_COUNT_MAX`,
/// 384; a longer list is cut here).
pub const ATB_NODES_MAX: usize = 16;

/// `quorum.auto_tie_breaker_node`: which partition wins a tie (`parse_atb_string` in
/// corosync's `exec/votequorum.c`). Its number is `runtime.votequorum.atb_type`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum TieBreaker {
    /// `lowest` (the default): the partition with the lowest node id seen when last quorate.
    #[default]
    Lowest,
    /// `highest`: the partition with the highest such node id.
    Highest,
    /// A list of node ids, most preferred first (`len` of `ids` used).
    List {
        /// The node ids.
        ids: [u32; ATB_NODES_MAX],
        /// How many of `ids` are used (1 or more).
        len: usize,
    },
}

impl TieBreaker {
    /// Parses the key's string as corosync does: `lowest`, `highest`, or node ids separated
    /// by blanks (read as C's `strtol` would, stopping at the first 0 or non-number).
    /// `None`: not valid (corosync then disables auto_tie_breaker with a warning).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "lowest" => return Some(Self::Lowest),
            "highest" => return Some(Self::Highest),
            _ => {}
        }
        let (mut ids, mut len) = ([0u32; ATB_NODES_MAX], 0);
        for word in text.split_ascii_whitespace() {
            let Some(id) = word.parse::<u32>().ok().filter(|&id| id != 0) else { break };
            if len < ATB_NODES_MAX {
                ids[len] = id;
                len += 1;
            }
        }
        (len > 0).then_some(Self::List { ids, len })
    }

    /// `runtime.votequorum.atb_type`: 1 lowest, 2 highest, 3 list (0 is "none").
    pub fn atb_type(&self) -> u32 {
        match self {
            Self::Lowest => 1,
            Self::Highest => 2,
            Self::List { .. } => 3,
        }
    }
}

/// Configuration of the quorum model: the `quorum.*` keys (and the local node's) as corosync's
/// `votequorum_readconfig` reads them. The engine applies corosync's rules to them (see the
/// [module documentation](self)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuorumConfig {
    /// The local node id (`totem.nodeid` / the nodelist entry).
    pub nodeid: u32,
    /// The local node's votes (`quorum.votes`, or its nodelist entry's `quorum_votes`).
    pub votes: u32,
    /// `quorum.expected_votes`; 0: not set (then the sum of the nodelist's votes).
    pub expected_votes: u32,
    /// `quorum.two_node`.
    pub two_node: bool,
    /// `quorum.wait_for_all`; `None`: not set (it then follows `two_node`).
    pub wait_for_all: Option<bool>,
    /// `quorum.last_man_standing`.
    pub last_man_standing: bool,
    /// `quorum.last_man_standing_window`, milliseconds (corosync's default 10000).
    pub last_man_standing_window: u32,
    /// `quorum.auto_tie_breaker`.
    pub auto_tie_breaker: bool,
    /// `quorum.auto_tie_breaker_node`, parsed ([`TieBreaker::parse`]); `None` when set but
    /// not valid (auto_tie_breaker is then off).
    pub auto_tie_breaker_node: Option<TieBreaker>,
    /// `quorum.allow_downscale` (it switches expected-votes tracking on).
    pub allow_downscale: bool,
    /// `quorum.expected_votes_tracking`.
    pub expected_votes_tracking: bool,
    /// The quorum device (`quorum.device.*`); `None` without one (no `quorum.device.model`,
    /// or an empty one, as corosync's `votequorum_qdevice_is_configured` reads it).
    pub device: Option<DeviceConfig>,
    /// The current ring (membership) id.
    pub ring_id: RingId,
}

impl Default for QuorumConfig {
    /// The harness's single-node cluster: node 1, one vote, expected 1, ring (1, 5), no
    /// quorum device configured, corosync's defaults otherwise.
    fn default() -> Self {
        Self {
            nodeid: 1,
            votes: 1,
            expected_votes: 1,
            two_node: false,
            wait_for_all: None,
            last_man_standing: false,
            last_man_standing_window: 10_000,
            auto_tie_breaker: false,
            auto_tie_breaker_node: Some(TieBreaker::Lowest),
            allow_downscale: false,
            expected_votes_tracking: false,
            device: None,
            ring_id: RingId { nodeid: 1, seq: 5 },
        }
    }
}

/// `quorum.device.*`: a configured quorum device (corosync's `votequorum_qdevice_is_configured`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DeviceConfig {
    /// `quorum.device.votes`; `None`: not set, then computed from the nodelist when every
    /// node has one vote (the node count less one, added to the expected votes), refused
    /// otherwise (see [`ConfigError`]). `Some(u32::MAX)` (4294967295) also means not set, as
    /// in corosync, which keeps "not set" as C's -1 in the same variable.
    pub votes: Option<u32>,
    /// `quorum.device.timeout`, milliseconds (corosync's default 10000): a device that has
    /// not polled for this long is no longer alive and its vote is withdrawn.
    pub timeout: u32,
    /// `quorum.device.sync_timeout`, milliseconds (corosync's default 30000): the same after
    /// a membership change.
    pub sync_timeout: u32,
}

impl Default for DeviceConfig {
    /// Votes not set, corosync's default timeouts.
    fn default() -> Self {
        Self { votes: None, timeout: 10_000, sync_timeout: 30_000 }
    }
}

/// What corosync logs while applying a configuration (`votequorum_readconfig`), in its words
/// (one entry per message, without corosync's line breaks).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigNote {
    /// `two_node` and `auto_tie_breaker` together: two_node is switched off (critical).
    TwoNodeDropped,
    /// auto_tie_breaker on an odd node count without wait_for_all: it is switched off
    /// (critical).
    AtbDroppedOddNodes,
    /// `auto_tie_breaker_node` is not `lowest`, `highest` or a list of node ids: ATB is off
    /// (warning).
    AtbNodeInvalid,
    /// `auto_tie_breaker_node` without `auto_tie_breaker` (warning).
    AtbNodeMeaningless,
    /// At run time, `two_node` with a quorum device configured while a device is registered:
    /// two_node is switched off (critical).
    DeviceTwoNodeDropped,
    /// At run time, `two_node` with a quorum device configured while none is registered:
    /// two_node stays, and the device may no longer operate (critical).
    DeviceTwoNodeKept,
    /// At run time, a quorum-device configuration corosync refuses at start (the
    /// [`ConfigError`]): the device may no longer operate (register, poll, master_wins get
    /// `CS_ERR_ACCESS`; critical).
    DeviceDisabled(ConfigError),
}

impl ConfigNote {
    /// corosync's log lines for it.
    pub fn lines(self) -> impl Iterator<Item = &'static str> {
        const DEVICE_TWO_NODE: &str =
            "configuration error: two_node and quorum device cannot be configured at the same time!";
        let (first, rest): (Option<&'static str>, &'static [&'static str]) = match self {
            Self::DeviceTwoNodeDropped => {
                (Some(DEVICE_TWO_NODE), &["quorum device is registered, disabling two_node"])
            }
            Self::DeviceTwoNodeKept => {
                (Some(DEVICE_TWO_NODE), &["quorum device is not registered, allowing two_node"])
            }
            Self::DeviceDisabled(e) => (Some(e.message()), &["disabling quorum device operations"]),
            _ => (None, self.fixed_lines()),
        };
        first.into_iter().chain(rest.iter().copied())
    }

    fn fixed_lines(self) -> &'static [&'static str] {
        match self {
            Self::TwoNodeDropped => &[
                "two_node and auto_tie_breaker are both specified but are not compatible.",
                "two_node has been disabled, please fix your corosync.conf",
            ],
            Self::AtbDroppedOddNodes => &[
                "auto_tie_breaker is set and the cluster has an odd number of nodes.",
                "wait_for_all needs to be set for this configuration but it is missing",
                "Therefore auto_tie_breaker has been disabled. Please fix your corosync.conf",
            ],
            Self::AtbNodeInvalid => &["auto_tie_breaker_nodes is not valid. It must be 'lowest', 'highest' or a space-separated list of node IDs. auto_tie_breaker is disabled"],
            Self::AtbNodeMeaningless => &["auto_tie_breaker_node: is meaningless if auto_tie_breaker is set to 0"],
            Self::DeviceTwoNodeDropped | Self::DeviceTwoNodeKept | Self::DeviceDisabled(_) => &[],
        }
    }
}

impl core::fmt::Display for ConfigNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(line)?;
        }
        Ok(())
    }
}

/// A configuration corosync refuses to start with (`votequorum_readconfig`'s errors).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ConfigError {
    /// Neither a nodelist nor `quorum.expected_votes`.
    NoExpectedVotes,
    /// The nodelist has more nodes than the engine's node table holds (`NODES - 1`).
    TooManyNodes,
    /// auto_tie_breaker and last_man_standing on an odd node count without wait_for_all.
    AtbLmsOddNodes,
    /// `two_node` and a quorum device together.
    TwoNodeWithDevice,
    /// A quorum device with last_man_standing.
    DeviceWithLastManStanding,
    /// A quorum device with auto_tie_breaker (after the odd-node-count rule).
    DeviceWithAutoTieBreaker,
    /// A quorum device with allow_downscale.
    DeviceWithAllowDownscale,
    /// `quorum.expected_votes` and a quorum device without `quorum.device.votes`.
    DeviceVotesWithExpectedVotes,
    /// A quorum device without `quorum.device.votes` and a nodelist where some node has
    /// other than one vote.
    DeviceVotesUnevenNodes,
    /// `quorum.expected_votes` less `quorum.device.votes` is below 2 (C's signed difference).
    DeviceVotesTooHigh,
}

impl ConfigError {
    /// corosync's message (the `error` string of `votequorum_readconfig`).
    fn message(self) -> &'static str {
        match self {
            Self::NoExpectedVotes => {
                "configuration error: nodelist or quorum.expected_votes must be configured!"
            }
            Self::TooManyNodes => "the nodelist has more nodes than the quorum engine holds",
            Self::AtbLmsOddNodes => {
                "configuration error: auto_tie_breaker & last_man_standing not available in odd sized cluster"
            }
            Self::TwoNodeWithDevice => {
                "configuration error: two_node and quorum device cannot be configured at the same time!"
            }
            Self::DeviceWithLastManStanding => {
                "configuration error: quorum.device is not compatible with last_man_standing"
            }
            Self::DeviceWithAutoTieBreaker => {
                "configuration error: quorum.device is not compatible with auto_tie_breaker"
            }
            Self::DeviceWithAllowDownscale => {
                "configuration error: quorum.device is not compatible with allow_downscale"
            }
            Self::DeviceVotesWithExpectedVotes => {
                "configuration error: quorum.device.votes must be specified when quorum.expected_votes is set"
            }
            Self::DeviceVotesUnevenNodes => {
                "configuration error: quorum.device.votes must be specified when not all nodes votes 1"
            }
            Self::DeviceVotesTooHigh => {
                "configuration error: quorum.device.votes is too high or expected_votes is too low"
            }
        }
    }
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for ConfigError {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Node {
    nodeid: u32,
    votes: u32,
    expected_votes: u32,
    state: NodeState,
    /// The flags of its last NODEINFO message (`quorate`, `wait_for_all_status`).
    flags: (bool, bool),
}

/// A run-time change a node multicasts to its partition (`struct req_exec_quorum_reconfigure`
/// in corosync's `exec/votequorum.c`, sent by `votequorum_exec_send_reconfigure`), which every
/// member, the sender included, applies. [`QuorumEngine::poll_reconfigure`] gives the local
/// node's (kept only while its partition has other members, at most four at a time: a change
/// that needs one more is refused with [`ServerError::OutboxFull`] until they are taken);
/// [`QuorumEngine::apply_reconfigure`] applies another member's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reconfigure {
    /// `VOTEQUORUM_RECONFIG_PARAM_EXPECTED_VOTES`: every member's expected votes (a SETEXPECTED
    /// request, or a changed `quorum.expected_votes`).
    ExpectedVotes(u32),
    /// `VOTEQUORUM_RECONFIG_PARAM_NODE_VOTES`: a node's votes (a SETVOTES request, or a changed
    /// `quorum.votes`).
    NodeVotes {
        /// The node.
        nodeid: u32,
        /// Its new votes.
        votes: u32,
    },
    /// `VOTEQUORUM_RECONFIG_PARAM_CANCEL_WFA`: stop waiting for all nodes.
    CancelWaitForAll,
}

/// Reconfigure messages a model keeps until [`QuorumEngine::poll_reconfigure`] takes them; a
/// change that would queue one more is refused with [`ServerError::OutboxFull`].
const RECONFIGURES: usize = 4;

/// What a node tells the other members about itself when a membership forms: votequorum's
/// NODEINFO message (`struct req_exec_quorum_nodeinfo` in corosync's `exec/votequorum.c`, sent
/// by `votequorum_exec_send_nodeinfo` from `votequorum_sync_process`), with the flags the model
/// acts on. [`QuorumEngine::node_message`] gives the local node's;
/// [`QuorumEngine::set_membership_with`] takes the members'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct NodeMessage {
    /// The sender's node id.
    pub nodeid: u32,
    /// Its votes.
    pub votes: u32,
    /// Its own expected votes (corosync's `us->expected_votes` on that node).
    pub expected_votes: u32,
    /// `NODE_FLAGS_QUORATE`: its partition was quorate when it sent the message.
    pub quorate: bool,
    /// `NODE_FLAGS_WFASTATUS`: it was still waiting for all nodes (wait_for_all).
    pub wait_for_all_status: bool,
    /// `NODE_FLAGS_LEAVING`: it is stopping cleanly ([`QuorumEngine::leave_message`]).
    pub leaving: bool,
}

/// The local node's quorum device: its flags (`NODE_FLAGS_QDEVICE_*`) and name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Qdevice {
    registered: bool,
    alive: bool,
    cast_vote: bool,
    master_wins: bool,
    name: Vec<u8, QDEVICE_NAME_MAX_LEN>,
    /// The simulator's device ([`QuorumEngine::simulate_qdevice`]) is on: it keeps polling.
    simulated: bool,
}

/// The name `corosync-vqsim` registers its simulated quorum device under (`QDEVICE_NAME` in
/// `vqsim/vqsim_vq_engine.c`), and [`QuorumEngine::simulate_qdevice`] too.
pub const SIM_QDEVICE_NAME: &str = "VQsim_qdevice";

/// Why [`QuorumEngine::simulate_qdevice`] refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SimDeviceError {
    /// A client registered a quorum device under another name: the simulator does not
    /// override it.
    ClientDevice,
    /// The configuration disabled quorum devices (`runtime.votequorum.qdevice_can_operate`
    /// 0; corosync answers `CS_ERR_ACCESS`).
    Disabled,
    /// `off` while no device is registered (vqsim's poll gets `CS_ERR_NOT_EXIST`).
    NotRegistered,
}

impl core::fmt::Display for SimDeviceError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::ClientDevice => {
                "a client of the server registered the local node's quorum device under another name; \
                 unregister it first (corosync-quorumtool -f)"
            }
            Self::Disabled => {
                "the configuration disabled the quorum device (runtime.votequorum.qdevice_can_operate is 0)"
            }
            Self::NotRegistered => "the local node has no quorum device to switch off",
        })
    }
}

impl core::error::Error for SimDeviceError {}

/// What corosync's votequorum keeps about quorum devices beyond the local node's flags.
#[derive(Clone, Copy, Debug)]
struct DeviceState {
    /// `qdevice->votes`: counted in the expected votes even while the device casts none.
    votes: u32,
    /// `qdevice_can_operate` (1 until a configuration check fails).
    can_operate: bool,
    /// Whether `runtime.votequorum.qdevice_can_operate` exists (once a device is configured).
    can_operate_key: bool,
    /// `qdevice_master_wins` (its key exists once a device asked for it).
    master_wins: Option<bool>,
    /// `quorum.device.timeout` and `.sync_timeout` as last read, milliseconds.
    timeout: u32,
    sync_timeout: u32,
    /// When the device is declared dead unless it polls (`qdevice_timer`).
    deadline: Option<Instant>,
    /// `sync_wait_for_poll_or_timeout`: the membership change's sync is held back until the
    /// registered device polls with the new ring id, times out or is unregistered.
    sync_wait: bool,
}

impl Default for DeviceState {
    fn default() -> Self {
        let cfg = DeviceConfig::default();
        Self {
            votes: 0,
            can_operate: true,
            can_operate_key: false,
            master_wins: None,
            timeout: cfg.timeout,
            sync_timeout: cfg.sync_timeout,
            deadline: None,
            sync_wait: false,
        }
    }
}

/// The rules in force: the configuration after corosync's checks.
#[derive(Clone, Copy, Debug, Default)]
struct Rules {
    two_node: bool,
    wait_for_all: bool,
    wait_for_all_autoset: bool,
    last_man_standing: bool,
    /// `None`: off.
    atb: Option<TieBreaker>,
    /// As configured at start (a run-time re-read goes back to it).
    initial_atb: Option<TieBreaker>,
    ev_tracking: bool,
}

/// Notifications a step queues, in order (more than this many are not queued).
const STEP_EVENTS: usize = 8;

/// The quorum state: cloned, changed and committed only when its notifications fit.
#[derive(Clone, Debug)]
struct Model<const NODES: usize> {
    cfg: QuorumConfig,
    rules: Rules,
    /// The local node first.
    nodes: Vec<Node, NODES>,
    /// votequorum.c's `static uint8_t quorum`: what `calculate_quorum` returned, truncated to
    /// 8 bits.
    quorum: u8,
    quorate: bool,
    wait_for_all_status: bool,
    /// Whether `runtime.votequorum.wait_for_all_status` exists (set once, never deleted).
    wait_for_all_key: bool,
    /// Whether `runtime.votequorum.atb_type` exists (set with auto_tie_breaker and by every
    /// run-time re-read).
    atb_type_key: bool,
    ev_barrier: u32,
    ev_tracking_barrier: u32,
    /// Lowest and highest member id when last quorate (`None`: never quorate yet).
    lowest_node_id: Option<u32>,
    highest_node_id: Option<u32>,
    /// The members of the current and of the previous ring (`quorum_members`).
    members: Vec<u32, NODES>,
    previous_members: Vec<u32, NODES>,
    /// The end of the last-man-standing window, when running.
    lms_deadline: Option<Instant>,
    /// The configured nodes and their votes (`nodelist.node.<i>`).
    nodelist: Vec<(u32, u32), NODES>,
    qdevice: Qdevice,
    device: DeviceState,
    /// Other nodes whose quorum device is registered and alive, and whether it casts its
    /// vote, as their messages would say ([`QuorumEngine::set_remote_qdevice`]).
    remote_devices: Vec<(u32, bool), NODES>,
    /// The adapter's clock as last given (a device's poll arms its timer from it).
    clock: Instant,
    /// Membership changes whose sync completed (`votequorum_sync_activate` calls), wrapping.
    syncs: u32,
    /// Notifications of the step in progress, in order.
    events: Vec<Kind, STEP_EVENTS>,
    /// Reconfigure messages sent and not yet taken.
    reconfigures: Vec<Reconfigure, RECONFIGURES>,
}

impl<const NODES: usize> Model<NODES> {
    /// The votes and nodes `calculate_quorum` counts: the members, and the device while it
    /// casts its vote (a node even with 0 votes).
    fn counted(&self, with_device: bool) -> (u32, usize) {
        let mut total = self.total_votes();
        let mut count = self.members().count();
        if with_device {
            total = total.wrapping_add(self.device.votes);
            count += 1;
        }
        (total, count)
    }

    fn members(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.state == NodeState::MEMBER)
    }

    /// The members' votes (`get_total_votes`), summed in C's `unsigned int`: wrapping at 2^32.
    fn total_votes(&self) -> u32 {
        self.members().fold(0u32, |a, n| a.wrapping_add(n.votes))
    }

    /// `votequorum_sync_activate`, the end of a membership change's sync: recalculate, then
    /// always a QUORUM notification (and corosync's `quorum_callback`: counted in `syncs`).
    fn sync_activate(&mut self) {
        self.recalculate(false, false, false);
        self.event(Kind::Quorum);
        self.syncs = self.syncs.wrapping_add(1);
    }

    /// When a sync held back for the quorum device ends: [`Model::sync_activate`].
    fn end_sync_wait(&mut self) {
        if core::mem::take(&mut self.device.sync_wait) {
            self.sync_activate();
        }
    }

    fn event(&mut self, kind: Kind) {
        let _ = self.events.push(kind);
    }

    /// `votequorum_readconfig`: applies `cfg` (`nodelist`: the nodelist's node count and
    /// summed votes, (0, 0) without one) with corosync's rules. At run time only `two_node`,
    /// the expected votes, the votes and the quorum device are re-read. Notes go to `note`.
    fn readconfig(
        &mut self,
        mut cfg: QuorumConfig,
        nodelist: (usize, u32),
        runtime: bool,
        note: &mut impl FnMut(ConfigNote),
    ) -> Result<(), ConfigError> {
        let (node_count, nodelist_votes) = nodelist;
        // corosync reads `quorum.device.votes` into a variable where C's -1 means "not set".
        if let Some(device) = cfg.device.as_mut() {
            device.votes = device.votes.filter(|&v| v != u32::MAX);
        }
        // corosync asks for a node list (`have_nodelist`), not for votes: a list whose votes
        // are all 0, or sum to 0 in `uint32_t`, starts with expected votes 0.
        if node_count == 0 && cfg.expected_votes == 0 {
            return Err(ConfigError::NoExpectedVotes);
        }
        // At start an incompatible device refuses the configuration; at run time it disables
        // the device.
        let device_problem = |d: &mut DeviceState, e: ConfigError, note: &mut dyn FnMut(ConfigNote)| {
            if !runtime {
                return Err(e);
            }
            note(ConfigNote::DeviceDisabled(e));
            d.can_operate = false;
            Ok(())
        };
        if let Some(device) = cfg.device {
            let d = &mut self.device;
            (d.can_operate, d.can_operate_key) = (true, true);
            (d.timeout, d.sync_timeout) = (device.timeout, device.sync_timeout);
        }
        let mut two_node = cfg.two_node;
        if two_node && cfg.device.is_some() {
            if !runtime {
                return Err(ConfigError::TwoNodeWithDevice);
            } else if self.qdevice.registered {
                note(ConfigNote::DeviceTwoNodeDropped);
                two_node = false;
            } else {
                note(ConfigNote::DeviceTwoNodeKept);
                self.device.can_operate = false;
            }
        }
        self.atb_type_key |= runtime || cfg.auto_tie_breaker;
        let r = &mut self.rules;
        if runtime {
            r.atb = r.initial_atb;
        } else {
            r.wait_for_all_autoset = cfg.wait_for_all.is_none();
            r.wait_for_all = cfg.wait_for_all.unwrap_or(false);
            r.last_man_standing = cfg.last_man_standing;
            r.atb = None;
            if cfg.auto_tie_breaker {
                r.atb = cfg.auto_tie_breaker_node;
                if r.atb.is_none() {
                    note(ConfigNote::AtbNodeInvalid);
                }
            } else if cfg.auto_tie_breaker_node != Some(TieBreaker::Lowest) {
                note(ConfigNote::AtbNodeMeaningless);
            }
            r.initial_atb = r.atb;
            r.ev_tracking = cfg.allow_downscale || cfg.expected_votes_tracking;
        }
        r.two_node = two_node;
        // A wait_for_all not configured follows two_node, also at run time (`two_node` 1 -> 0
        // drops `WaitForAll`, 0 -> 1 shows it again, on the real daemon: cli/tests/rules.rs);
        // only at start does it make the node wait (`wait_for_all_status`, below).
        if r.wait_for_all_autoset {
            r.wait_for_all = r.two_node;
        }
        if r.two_node && r.atb.is_some() {
            note(ConfigNote::TwoNodeDropped);
            r.two_node = false;
        }
        if r.atb.is_some() && nodelist_votes % 2 == 1 && !r.wait_for_all {
            if r.last_man_standing {
                return Err(ConfigError::AtbLmsOddNodes);
            }
            note(ConfigNote::AtbDroppedOddNodes);
            r.atb = None;
        }
        let allow_downscale = if runtime { self.cfg.allow_downscale } else { cfg.allow_downscale };
        // `qdevice_votes`: 0 without a device, C's -1 when not set.
        let mut device_votes = cfg.device.map_or(Some(0), |d| d.votes);
        let mut node_expected = nodelist_votes;
        if let Some(device) = cfg.device {
            let uneven = node_count > 0 && usize::try_from(nodelist_votes).ok() != Some(node_count);
            let checks = [
                (r.last_man_standing, ConfigError::DeviceWithLastManStanding),
                (r.atb.is_some(), ConfigError::DeviceWithAutoTieBreaker),
                (allow_downscale, ConfigError::DeviceWithAllowDownscale),
                (
                    cfg.expected_votes != 0 && device.votes.is_none(),
                    ConfigError::DeviceVotesWithExpectedVotes,
                ),
                (device.votes.is_none() && uneven, ConfigError::DeviceVotesUnevenNodes),
            ];
            for (bad, e) in checks {
                if bad {
                    device_problem(&mut self.device, e, note)?;
                }
            }
            if device.votes.is_none() && cfg.expected_votes == 0 && node_count > 0 && !uneven {
                let votes = nodelist_votes.saturating_sub(1);
                device_votes = Some(votes);
                node_expected = nodelist_votes.saturating_add(votes);
            }
        }
        // C: `int delta = expected_votes - qdevice_votes` with -1 for "not set".
        let raw_votes = device_votes.unwrap_or(u32::MAX);
        if raw_votes > 0 && cfg.expected_votes != 0 {
            let delta = i32::from_ne_bytes(cfg.expected_votes.wrapping_sub(raw_votes).to_ne_bytes());
            if delta < 2 {
                device_problem(&mut self.device, ConfigError::DeviceVotesTooHigh, note)?;
            }
        }
        if let Some(votes) = device_votes {
            self.device.votes = votes;
        }
        let mut expected_votes = cfg.expected_votes;
        if r.ev_tracking {
            expected_votes = self.ev_tracking_barrier;
        }
        let local = &mut self.nodes[0];
        local.votes = cfg.votes;
        if node_count > 0 {
            local.expected_votes = node_expected;
        }
        if expected_votes > 0 {
            local.expected_votes = expected_votes;
        }
        if runtime {
            // Kept: the rules corosync reads only at start.
            let first = self.cfg;
            self.cfg = QuorumConfig { ring_id: first.ring_id, ..cfg };
        } else {
            self.cfg = cfg;
        }
        self.ev_barrier = self.nodes[0].expected_votes;
        if self.rules.wait_for_all {
            if !runtime {
                self.set_wait_for_all_status(true);
            }
        } else if self.rules.wait_for_all_autoset && self.wait_for_all_status {
            self.set_wait_for_all_status(false);
        }
        Ok(())
    }

    /// `message_handler_req_exec_votequorum_reconfigure` (the sender's own copy included).
    fn apply_reconfigure(&mut self, r: Reconfigure) {
        match r {
            Reconfigure::ExpectedVotes(expected) => {
                self.set_members_expected(expected);
                self.event(Kind::ExpectedVotes);
                self.ev_barrier = expected;
                self.recalculate(true, false, true);
            }
            Reconfigure::NodeVotes { nodeid, votes } => {
                if let Some(n) = self.nodes.iter_mut().find(|n| n.nodeid == nodeid) {
                    n.votes = votes;
                    self.recalculate(true, false, true);
                }
            }
            Reconfigure::CancelWaitForAll => {
                self.set_wait_for_all_status(false);
                self.recalculate(false, false, true);
            }
        }
    }

    /// Applies `r` as its sender and keeps it for the other members ([`Model::queue_reconfigure`]).
    fn send_reconfigure(&mut self, r: Reconfigure) -> Result<(), ServerError> {
        self.apply_reconfigure(r);
        self.queue_reconfigure(r)
    }

    /// Keeps `r` for the other members of the local partition; in a one-node partition
    /// corosync's multicast reaches only the sender, which applied it already, so nothing is
    /// kept. `Err(OutboxFull)` when [`RECONFIGURES`] wait already (the caller's change is
    /// refused: the model is a clone committed only on success).
    fn queue_reconfigure(&mut self, r: Reconfigure) -> Result<(), ServerError> {
        let local = self.local().nodeid;
        if !self.members.iter().any(|&id| id != local) {
            return Ok(());
        }
        self.reconfigures.push(r).map_err(|_| ServerError::OutboxFull)
    }

    fn set_wait_for_all_status(&mut self, on: bool) {
        self.wait_for_all_status = on;
        self.wait_for_all_key = true;
    }

    /// `calculate_quorum`: (new quorum, total votes).
    fn calculate(&self, allow_decrease: bool, max_expected: u32) -> (u32, u32) {
        let mut max_expected = max_expected;
        if self.cfg.allow_downscale && allow_decrease && max_expected > 0 {
            max_expected = max_expected.max(self.ev_barrier);
        }
        let (total, count) = self.counted(self.qdevice.cast_vote);
        let mut highest = self.members().map(|n| n.expected_votes).max().unwrap_or(0);
        if max_expected > 0 {
            highest = max_expected;
        }
        // C's unsigned arithmetic: `highest_expected + 2` wraps (4294967295 gives 0).
        let mut quorum = (highest.wrapping_add(2) / 2).max(total.wrapping_add(2) / 2);
        if !allow_decrease {
            quorum = quorum.max(u32::from(self.quorum));
        }
        if self.rules.two_node && count <= 2 {
            quorum = 1;
        }
        (quorum, total)
    }

    fn local(&self) -> &Node {
        &self.nodes[0]
    }

    /// `recalculate_quorum` + `are_we_quorate`; `notify`: queue a QUORUM notification when
    /// quorate-ness changes (not during a membership change, which always sends one).
    fn recalculate(&mut self, allow_decrease: bool, by_current_nodes: bool, notify: bool) {
        // `get_total_votes`: the device's configured votes count here even while it casts none.
        let (total, count) = self.counted(self.device.votes > 0);
        let count = if by_current_nodes { u32::try_from(count).unwrap_or(u32::MAX) } else { 0 };
        if total > self.local().expected_votes {
            self.nodes[0].expected_votes = total;
            self.event(Kind::ExpectedVotes);
        }
        if self.rules.ev_tracking {
            self.ev_tracking_barrier = self.ev_tracking_barrier.max(self.local().expected_votes);
        }
        let (quorum, total) = self.calculate(allow_decrease, count);
        // `quorum = calculate_quorum(...)` stores into a uint8_t.
        self.quorum = quorum.to_le_bytes()[0];
        self.set_members_expected(count);
        self.are_we_quorate(total, notify);
    }

    fn are_we_quorate(&mut self, total: u32, notify: bool) {
        if self.rules.wait_for_all && self.wait_for_all_status {
            if total != self.local().expected_votes {
                return;
            }
            self.set_wait_for_all_status(false);
        }
        let mut quorate = u32::from(self.quorum) <= total;
        if quorate {
            let lowest = self.members().map(|n| n.nodeid).min();
            let highest = self.members().map(|n| n.nodeid).max();
            (self.lowest_node_id, self.highest_node_id) = (lowest, highest);
        }
        if let Some(atb) = self.rules.atb {
            // `previous_quorum_members_entries - quorum_members_entries < quorum`: C ints, so
            // a grown membership gives a negative count, below any quorum.
            let (before, now) = (self.previous_members.len(), self.members.len());
            let lost_below_quorum = now > before || before - now < usize::from(self.quorum);
            if total == self.local().expected_votes / 2 && lost_below_quorum && self.tie_breaker_here(atb) {
                quorate = true;
            }
        }
        // master_wins (`check_qdevice_master`): a member whose device casts its vote with
        // master_wins makes its partition quorate; only the local node's flags are known here.
        if self.device.master_wins == Some(true)
            && !quorate
            && self.qdevice.master_wins
            && self.qdevice.cast_vote
        {
            quorate = true;
        }
        let changed = quorate != self.quorate;
        self.quorate = quorate;
        if self.rules.wait_for_all {
            self.set_wait_for_all_status(!quorate);
        }
        if changed && notify {
            self.event(Kind::Quorum);
        }
    }

    /// `check_auto_tie_breaker`: whether this partition wins a tie.
    fn tie_breaker_here(&self, atb: TieBreaker) -> bool {
        let member = |id: Option<u32>| self.members().any(|n| Some(n.nodeid) == id);
        match atb {
            TieBreaker::Lowest => member(self.lowest_node_id),
            TieBreaker::Highest => member(self.highest_node_id),
            TieBreaker::List { ids, len } => {
                let ids = &ids[..len];
                match ids.iter().position(|id| self.members.contains(id)) {
                    Some(i) => !ids[..i].iter().any(|id| self.previous_members.contains(id)),
                    None => false,
                }
            }
        }
    }

    fn set_members_expected(&mut self, expected: u32) {
        if expected > 0 {
            for n in self.nodes.iter_mut().filter(|n| n.state == NodeState::MEMBER) {
                n.expected_votes = expected;
            }
        }
    }

    /// GETINFO's flags for `nodeid` (`local`: the local node); another node's device flags are
    /// those [`QuorumEngine::set_remote_qdevice`] gave.
    fn flags(&self, nodeid: u32, local: bool) -> InfoFlags {
        let r = &self.rules;
        let remote = self.remote_devices.iter().find(|d| !local && d.0 == nodeid);
        let q = match remote {
            Some(&(_, cast_vote)) => {
                &Qdevice { registered: true, alive: true, cast_vote, ..Qdevice::default() }
            }
            None => &self.qdevice,
        };
        let local = local || remote.is_some();
        let bits = [
            (r.two_node, InfoFlags::TWONODE),
            (self.quorate, InfoFlags::QUORATE),
            (r.wait_for_all, InfoFlags::WAIT_FOR_ALL),
            (r.last_man_standing, InfoFlags::LAST_MAN_STANDING),
            (r.atb.is_some(), InfoFlags::AUTO_TIE_BREAKER),
            (self.cfg.allow_downscale, InfoFlags::ALLOW_DOWNSCALE),
            (local && q.registered, InfoFlags::QDEVICE_REGISTERED),
            (local && q.alive, InfoFlags::QDEVICE_ALIVE),
            (local && q.cast_vote, InfoFlags::QDEVICE_CAST_VOTE),
            (local && q.master_wins, InfoFlags::QDEVICE_MASTER_WINS),
        ];
        bits.iter().filter(|(on, _)| *on).fold(InfoFlags(0), |a, (_, f)| a | *f)
    }

    /// The nodes in the order of corosync's `cluster_members_list`, which a QUORUM notification
    /// follows: the other nodes in ascending node id (`node_add_ordered`, filled from the nodelist
    /// at start), then the local node (added after them), then the quorum device.
    fn quorum_entries(&self) -> Vec<NodeEntry, NODES> {
        let entry = |n: &Node| NodeEntry { nodeid: n.nodeid, state: n.state };
        let mut v: Vec<NodeEntry, NODES> = self.nodes.iter().skip(1).map(entry).collect();
        v.sort_unstable_by_key(|e| e.nodeid);
        // Cannot fail: `v` holds one node fewer than `nodes`.
        let _ = v.push(entry(self.local()));
        if self.qdevice.registered {
            // corosync never sets the device node's state: it stays 0 (neither member nor dead).
            // `add_node` keeps one slot free for the device.
            let _ = v.push(NodeEntry { nodeid: QDEVICE_NODEID, state: NodeState(0) });
        }
        v
    }

    fn member_ids(&self) -> Vec<u32, NODES> {
        self.members().map(|n| n.nodeid).collect()
    }

    /// `message_handler_req_exec_votequorum_nodeinfo` for a cluster node's message (the
    /// local node's own included); `notify`: outside a membership change (a change of
    /// quorate-ness is notified). `Err` when the node table is full.
    fn nodeinfo(&mut self, m: &NodeMessage, notify: bool) -> Result<(), ServerError> {
        let (i, new) = match self.nodes.iter().position(|n| n.nodeid == m.nodeid) {
            Some(i) => (i, false),
            None => {
                if self.nodes.len() + 1 >= NODES {
                    return Err(ServerError::TooManyNodes);
                }
                let node = Node {
                    nodeid: m.nodeid,
                    votes: 0,
                    expected_votes: 0,
                    state: NodeState::DEAD,
                    flags: (false, false),
                };
                self.nodes.push(node).map_err(|_| ServerError::TooManyNodes)?;
                (self.nodes.len() - 1, true)
            }
        };
        let old = self.nodes[i];
        let flags = (m.quorate, m.wait_for_all_status);
        let node = &mut self.nodes[i];
        let state = if m.leaving { NodeState::LEAVING } else { NodeState::MEMBER };
        (node.flags, node.votes, node.state) = (flags, m.votes, state);
        // A leaving node: quorum may go down, and the members count as the expected votes.
        let mut allow_decrease = m.leaving;
        if !self.quorate && m.quorate {
            allow_decrease = true;
            self.nodes[0].expected_votes = m.expected_votes;
        }
        let us_expected = self.nodes[0].expected_votes;
        self.nodes[i].expected_votes =
            if m.quorate || self.rules.ev_tracking { m.expected_votes } else { us_expected };
        if self.rules.last_man_standing && m.votes > 1 {
            // "Last Man Standing feature is supported only when all cluster nodes votes are
            // set to 1. Disabling LMS."
            self.rules.last_man_standing = false;
            self.lms_deadline = None;
        }
        if new || i == 0 || old != self.nodes[i] {
            self.recalculate(allow_decrease, m.leaving, notify);
        }
        if self.rules.wait_for_all && !m.wait_for_all_status && m.quorate {
            self.set_wait_for_all_status(false);
        }
        Ok(())
    }
}

/// A notification to queue: which kind, and for whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    NodeList,
    Quorum,
    ExpectedVotes,
}

/// The votequorum engine.
///
/// - `CONNS`: connections at once;
/// - `NODES`: nodes in the model, **including one slot for the quorum device** (so at most
///   `NODES - 1` cluster nodes);
/// - `EVENTS`, `EVENT_BYTES`: the notification outbox (frames, bytes). A QUORUM notification is
///   `48 + 8·n` bytes, a NODELIST one `56 + 4·n`, EXPECTEDVOTES 40.
///
/// See the [module documentation](self) for the behaviour and [`super`] for the driving
/// contract.
#[derive(Debug)]
pub struct QuorumEngine<
    const CONNS: usize = 8,
    const NODES: usize = 16,
    const EVENTS: usize = 32,
    const EVENT_BYTES: usize = 4096,
> {
    model: Model<NODES>,
    /// Connections and their tracking context.
    conns: Sessions<Option<u64>, CONNS>,
    outbox: Outbox<EVENTS, EVENT_BYTES>,
}

impl<const CONNS: usize, const NODES: usize, const EVENTS: usize, const EVENT_BYTES: usize>
    QuorumEngine<CONNS, NODES, EVENTS, EVENT_BYTES>
{
    /// An engine for a cluster of the local node alone (add others with
    /// [`QuorumEngine::add_node`]), without a nodelist: `cfg.expected_votes` 0 counts as 1.
    /// `NODES` must be at least 2 (checked at compile time). [`QuorumEngine::configure`]
    /// also takes the nodelist and reports corosync's notes and errors.
    pub fn new(cfg: QuorumConfig) -> Self {
        let cfg = QuorumConfig { expected_votes: cfg.expected_votes.max(1), ..cfg };
        let (engine, _) = Self::build(cfg, &[], &mut |_| {});
        engine
    }

    /// An engine for `cfg` and the cluster's nodelist (`(nodeid, votes)`; empty: none), as
    /// corosync's votequorum starts (`votequorum_exec_init_fn`, `votequorum_readconfig`):
    /// the local node's votes come from its entry, the expected votes from the sum of the
    /// votes unless `cfg.expected_votes` is set. The local node starts alone (corosync's
    /// first membership), in ring `cfg.ring_id`; [`QuorumEngine::set_membership`] brings the
    /// others in (with their nodelist votes). corosync's configuration messages go to `note`
    /// (the listener prints them).
    ///
    /// # Errors
    /// [`ConfigError`]: corosync would not start with this configuration, or the nodelist
    /// is longer than the node table (`NODES - 1`): [`ConfigError::TooManyNodes`].
    pub fn configure(
        cfg: QuorumConfig,
        nodelist: &[(u32, u32)],
        note: &mut impl FnMut(ConfigNote),
    ) -> Result<Self, ConfigError> {
        if nodelist.len() >= NODES {
            return Err(ConfigError::TooManyNodes);
        }
        let (engine, result) = Self::build(cfg, nodelist, note);
        result.map(|()| engine)
    }

    fn build(
        cfg: QuorumConfig,
        nodelist: &[(u32, u32)],
        note: &mut impl FnMut(ConfigNote),
    ) -> (Self, Result<(), ConfigError>) {
        const { assert!(NODES >= 2, "NODES must hold the local node and the quorum device") };
        let votes = nodelist.iter().find(|n| n.0 == cfg.nodeid).map_or(cfg.votes, |n| n.1);
        let cfg = QuorumConfig { votes, ..cfg };
        let mut nodes = Vec::new();
        let local = Node {
            nodeid: cfg.nodeid,
            votes,
            expected_votes: cfg.expected_votes,
            state: NodeState::MEMBER,
            flags: (false, false),
        };
        // Cannot fail: `NODES >= 2` is checked at compile time above.
        let _ = nodes.push(local);
        let mut model = Model {
            cfg,
            rules: Rules::default(),
            nodes,
            quorum: 0,
            quorate: false,
            wait_for_all_status: false,
            wait_for_all_key: false,
            atb_type_key: false,
            ev_barrier: 0,
            ev_tracking_barrier: 0,
            lowest_node_id: None,
            highest_node_id: None,
            members: Vec::new(),
            previous_members: Vec::new(),
            lms_deadline: None,
            nodelist: Vec::new(),
            qdevice: Qdevice::default(),
            device: DeviceState::default(),
            remote_devices: Vec::new(),
            clock: Instant::from_millis(0),
            syncs: 0,
            events: Vec::new(),
            reconfigures: Vec::new(),
        };
        let result = model.readconfig(cfg, nodelist_sums(nodelist), false, note);
        model.nodelist = nodelist.iter().copied().take(NODES - 1).collect();
        model.members = model.member_ids();
        model.members.sort_unstable();
        model.recalculate(false, false, false);
        model.events.clear();
        (Self { model, conns: Sessions::new(), outbox: Outbox::new() }, result)
    }

    /// Adds (or updates) another node of the cluster and recomputes quorum without notifying
    /// anyone (use it while loading configuration). `Err` when the node table is full.
    pub fn add_node(&mut self, nodeid: u32, votes: u32, state: NodeState) -> Result<(), CsError> {
        self.add_nodes([(nodeid, votes)], state)
    }

    /// [`QuorumEngine::add_node`] for each `(nodeid, votes)` of `nodes`, all in `state`,
    /// recomputing quorum once at the end (a node list of n nodes costs one recount, not n).
    /// `Err` when the node table is full: the nodes before the one that did not fit stay.
    pub fn add_nodes(
        &mut self,
        nodes: impl IntoIterator<Item = (u32, u32)>,
        state: NodeState,
    ) -> Result<(), CsError> {
        let expected_votes = self.model.local().expected_votes;
        let mut added = Ok(());
        for (nodeid, votes) in nodes {
            let node = Node { nodeid, votes, expected_votes, state, flags: (false, false) };
            if let Some(n) = self.model.nodes.iter_mut().find(|n| n.nodeid == nodeid) {
                *n = node;
            } else if self.model.nodes.len() + 1 >= NODES || self.model.nodes.push(node).is_err() {
                added = Err(CsError::NoMemory);
                break;
            }
        }
        self.model.members = self.model.member_ids();
        self.model.members.sort_unstable();
        self.model.recalculate(true, false, false);
        self.model.events.clear();
        added
    }

    /// Whether the cluster is quorate.
    pub fn is_quorate(&self) -> bool {
        self.model.quorate
    }

    /// The votes needed for quorum, as corosync keeps it: the low 8 bits of the computed
    /// value (votequorum.c's `uint8_t quorum`; see the [module documentation](self)).
    pub fn quorum(&self) -> u32 {
        u32::from(self.model.quorum)
    }

    /// The local node's expected votes.
    pub fn expected_votes(&self) -> u32 {
        self.model.nodes.first().map_or(0, |n| n.expected_votes)
    }

    /// The NODEINFO message the local node sends when a membership forms (see
    /// [`QuorumEngine::set_membership_with`]): its votes, expected votes and flags now.
    pub fn node_message(&self) -> NodeMessage {
        let m = &self.model;
        let us = m.local();
        NodeMessage {
            nodeid: us.nodeid,
            votes: us.votes,
            expected_votes: us.expected_votes,
            quorate: m.quorate,
            wait_for_all_status: m.wait_for_all_status,
            leaving: false,
        }
    }

    /// The NODEINFO message the local node sends when it stops cleanly (corosync's
    /// `votequorum_exec_exit_fn`, run by a SIGTERM or `corosync-cfgtool -H` shutdown): with
    /// allow_downscale, [`QuorumEngine::node_message`] with `NODE_FLAGS_LEAVING`; without it
    /// `None`, as corosync sends nothing and the other nodes see the same as a crash. The
    /// other members handle it with [`QuorumEngine::node_leaving`].
    pub fn leave_message(&self) -> Option<NodeMessage> {
        self.model.cfg.allow_downscale.then(|| NodeMessage { leaving: true, ..self.node_message() })
    }

    /// Handles another member's NODEINFO message outside a membership change, as corosync's
    /// `message_handler_req_exec_votequorum_nodeinfo` handles a stopping node's
    /// ([`QuorumEngine::leave_message`], before the ring re-forms without it). With
    /// `leaving`, the node is `LEAVING` (GETINFO state 3; no longer counted) and quorum is
    /// recomputed from the members that remain, allowed to go down, with their count as the
    /// expected votes of every member (allow_downscale: 4 nodes, one leaves, expected votes
    /// 3; quorum stays at least half the expected-votes barrier plus one, 3). Trackers get a
    /// QUORUM notification when quorate-ness changed (corosync is not syncing). A message
    /// without `leaving` is handled the same way with the node kept a member.
    ///
    /// # Errors
    /// Those of [`QuorumEngine::set_membership`].
    pub fn node_leaving(&mut self, message: &NodeMessage) -> Result<(), ServerError> {
        let mut next = self.model.clone();
        next.nodeinfo(message, true)?;
        self.commit_anyway(next)
    }

    /// Takes the oldest reconfigure message the local node sent (a SETEXPECTED or SETVOTES
    /// request for a node, a run-time configuration change, `cancel_wait_for_all`) and has
    /// applied itself, for the other members of its partition
    /// ([`QuorumEngine::apply_reconfigure`]); `None` when none waits. Messages are kept only
    /// while the local partition has other members (in a one-node partition corosync's
    /// multicast reaches only the sender: a single-node user never needs to poll). At most
    /// four wait: a change that needs one more is refused with [`ServerError::OutboxFull`]
    /// and changes nothing (a request, [`QuorumEngine::reconfigure`],
    /// [`QuorumEngine::cancel_wait_for_all`]); take them after every change, and before
    /// retrying one refused so.
    pub fn poll_reconfigure(&mut self) -> Option<Reconfigure> {
        let r = self.model.reconfigures.first().copied()?;
        self.model.reconfigures.remove(0);
        Some(r)
    }

    /// Applies a reconfigure message another member of the partition sent, as corosync's
    /// `message_handler_req_exec_votequorum_reconfigure` does (quorum may go down); trackers
    /// get the notifications corosync's would. A node-votes message for an unknown node
    /// changes nothing.
    ///
    /// # Errors
    /// [`ServerError::OutboxFull`]: drain and call again; nothing changed.
    pub fn apply_reconfigure(&mut self, r: Reconfigure) -> Result<(), ServerError> {
        let mut next = self.model.clone();
        next.apply_reconfigure(r);
        self.commit_anyway(next)
    }

    /// The votes of `nodeid` (0: the quorum device).
    pub fn votes(&self, nodeid: u32) -> Option<u32> {
        if nodeid == QDEVICE_NODEID {
            return Some(self.model.device.votes);
        }
        self.model.nodes.iter().find(|n| n.nodeid == nodeid).map(|n| n.votes)
    }

    /// The current ring (membership) id.
    pub fn ring_id(&self) -> RingId {
        self.model.cfg.ring_id
    }

    /// The node ids of the current members in ring order (by node id), as corosync's NODELIST
    /// notifications and the libquorum service ([`super::quorum`]) list them.
    pub fn member_ids(&self) -> Vec<u32, NODES> {
        self.model.members.clone()
    }

    /// The registered quorum device's name.
    pub fn qdevice_name(&self) -> Option<&[u8]> {
        self.model.qdevice.registered.then_some(&self.model.qdevice.name[..])
    }

    /// Sets the membership of the local node's partition, as corosync's sync layer hands it
    /// to votequorum (`votequorum_sync_init`, `_sync_process`, `_sync_activate` in
    /// `exec/votequorum.c`): `members` are the node ids in the partition (the local node is
    /// always a member, listed or not; duplicates do not matter), every other known node
    /// becomes dead. A node not known yet joins with its nodelist votes (1 if not listed). `ring_id` becomes the current
    /// ring id; `now` (the adapter's clock) starts the last-man-standing window when corosync
    /// would (see [`QuorumEngine::poll_timeout`]).
    ///
    /// The math is corosync's: quorum never decreases on a loss (only last_man_standing's
    /// timer or a new expected-votes value lower it), wait_for_all holds quorum back until
    /// all expected votes have been seen once, auto_tie_breaker lets the partition holding
    /// the tie-breaker node keep quorum in an even split. Other nodes are assumed to hold the
    /// local node's view (expected votes, flags); [`QuorumEngine::set_membership_with`] takes
    /// their own, as corosync learns them from their NODEINFO messages.
    ///
    /// Trackers get a NODELIST notification (new ring id and members), an EXPECTEDVOTES one
    /// if the expected votes rose, and always a QUORUM one, each with its tracking context.
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit now; nothing changed, drain
    /// [`QuorumEngine::poll_notification`] and call again. [`ServerError::TooManyNodes`]: more
    /// nodes than the table holds (`NODES - 1`); nothing changed. If the notifications could
    /// never fit the outbox, the membership changes without them.
    pub fn set_membership(
        &mut self,
        members: &[u32],
        ring_id: RingId,
        now: Instant,
    ) -> Result<(), ServerError> {
        self.set_membership_with(members, ring_id, now, &[])
    }

    /// [`QuorumEngine::set_membership`] with the members' own state: `messages` holds the
    /// NODEINFO message each member sent in this membership change (take each node's
    /// [`QuorumEngine::node_message`] before giving any of them the new membership). They are
    /// handled in node-id order as corosync's `message_handler_req_exec_votequorum_nodeinfo`
    /// does: a member's votes and flags are taken; a quorate sender's expected votes are taken
    /// for it (and become the local node's when the local partition is not quorate, allowing
    /// quorum to go down), a sender that is not quorate counts with the local node's expected
    /// votes; a wait_for_all node stops waiting when a quorate node no longer waits; quorum is
    /// recomputed after each message that changed something, so a rise of the expected votes
    /// is notified as corosync's is. A member without a message is taken to share the local
    /// node's view (`set_membership`'s assumption).
    ///
    /// # Errors
    /// Those of [`QuorumEngine::set_membership`].
    pub fn set_membership_with(
        &mut self,
        members: &[u32],
        ring_id: RingId,
        now: Instant,
        messages: &[NodeMessage],
    ) -> Result<(), ServerError> {
        let mut next = self.model.clone();
        let local_id = next.local().nodeid;
        let listed = |id: u32| id == local_id || members.contains(&id);
        // sync_init: the nodes that left are dead.
        let left = next.members.iter().any(|&id| !listed(id));
        for n in next.nodes.iter_mut().filter(|n| !listed(n.nodeid)) {
            n.state = NodeState::DEAD;
        }
        let mut ids: Vec<u32, NODES> = Vec::new();
        for id in core::iter::once(local_id).chain(members.iter().copied()) {
            if !ids.contains(&id) {
                ids.push(id).map_err(|_| ServerError::TooManyNodes)?;
            }
        }
        ids.sort_unstable();
        let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        if next.rules.last_man_standing {
            let low_here = next.members().any(|n| Some(n.nodeid) == next.lowest_node_id);
            if (count >= u32::from(next.quorum) && left)
                || (count <= u32::from(next.quorum) && next.rules.atb.is_some() && low_here)
            {
                let window = Duration::from_millis(u64::from(next.cfg.last_man_standing_window));
                next.lms_deadline = Some(now.saturating_add(window));
            }
        }
        next.previous_members = core::mem::replace(&mut next.members, ids.clone());
        next.cfg.ring_id = ring_id;
        next.clock = now;
        // The sync waits for the device to poll with the new ring id, at most the sync
        // timeout (the simulator's device polls at once).
        next.device.sync_wait = next.qdevice.registered && next.qdevice.alive && !next.qdevice.simulated;
        if next.device.sync_wait {
            let wait = Duration::from_millis(u64::from(next.device.sync_timeout));
            next.device.deadline = Some(now.saturating_add(wait));
        }
        // sync_process: the NODELIST notification, then every member's node information.
        next.event(Kind::NodeList);
        let own = self.node_message();
        for &id in &ids {
            let message = match messages.iter().find(|m| m.nodeid == id) {
                Some(m) => *m,
                None if id == local_id => own,
                None => {
                    let votes = next.nodes.iter().find(|n| n.nodeid == id).map(|n| n.votes);
                    let votes = votes.or_else(|| next.nodelist.iter().find(|n| n.0 == id).map(|n| n.1));
                    // Not quorate: it then counts with the local node's expected votes.
                    NodeMessage { nodeid: id, votes: votes.unwrap_or(1), quorate: false, ..own }
                }
            };
            next.nodeinfo(&message, false)?;
        }
        // sync_activate: recalculate, then always a QUORUM notification (held back while the
        // sync waits for the device).
        if !next.device.sync_wait {
            next.sync_activate();
        }
        self.commit_anyway(next)
    }

    /// Commits `next` with its notifications; if they could never fit, without them.
    fn commit_anyway(&mut self, next: Model<NODES>) -> Result<(), ServerError> {
        let mut quiet = next.clone();
        if self.commit(next)?.is_err() {
            quiet.events.clear();
            self.model = quiet;
        }
        Ok(())
    }

    /// When [`QuorumEngine::handle_timeout`] wants to be called (the end of the
    /// last-man-standing window, or the quorum device's poll deadline), or `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.model.lms_deadline, self.model.device.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// `corosync-vqsim`'s `qdevice on|off` for the local node (`do_qdevice` in
    /// `vqsim/vqsim_vq_engine.c`): `on` registers a device named [`SIM_QDEVICE_NAME`] if none is
    /// and polls with its vote cast; it then keeps polling (it is never timed out, and polls
    /// with each new ring at once; a sync held for a client's device registered under that
    /// name ends, as at its poll). `off` polls once without a vote and stops polling: the
    /// device stays registered and is declared dead after `quorum.device.timeout`, as vqsim's;
    /// until then a membership change waits for it ([`QuorumEngine::sync_waiting`]).
    /// Trackers get the notifications corosync's would. A device registered by a client under
    /// another name is left alone ([`SimDeviceError::ClientDevice`]); a client may
    /// unregister the simulator's device, as any device.
    ///
    /// Difference from vqsim: its first poll comes `quorum.device.timeout` after registering;
    /// here the vote counts at once.
    ///
    /// # Errors
    /// `Ok(Err(_))`: refused, nothing changed. [`ServerError`] as for
    /// [`QuorumEngine::set_membership`].
    pub fn simulate_qdevice(&mut self, on: bool) -> Result<Result<(), SimDeviceError>, ServerError> {
        let m = &self.model;
        let name = SIM_QDEVICE_NAME.as_bytes();
        if m.qdevice.registered && m.qdevice.name != name {
            return Ok(Err(SimDeviceError::ClientDevice));
        }
        if !m.device.can_operate {
            return Ok(Err(SimDeviceError::Disabled));
        }
        if !on && !m.qdevice.registered {
            return Ok(Err(SimDeviceError::NotRegistered));
        }
        let mut next = m.clone();
        if !next.qdevice.registered {
            next.qdevice.registered = true;
            next.qdevice.name = Vec::from_slice(name).unwrap_or_default();
            next.recalculate(false, false, true);
        }
        (next.qdevice.alive, next.qdevice.cast_vote, next.qdevice.simulated) = (true, on, on);
        let wait = Duration::from_millis(u64::from(next.device.timeout));
        next.device.deadline = (!on).then(|| next.clock.saturating_add(wait));
        // It polls with the current ring: that ends a sync held for a client's device under
        // its name, which has no timer left to end it.
        next.end_sync_wait();
        next.recalculate(false, false, true);
        self.commit_anyway(next)?;
        Ok(Ok(()))
    }

    /// Another node's quorum device, as that node's messages would tell corosync, the way
    /// the simulator's devices behave: `on`, it is registered, alive and casts its vote (GETINFO
    /// for that node shows the flags, so `corosync-quorumtool -l` prints `A,V,NMW` for it);
    /// `off`, a device it had stays registered and alive without its vote (`A,NV,NMW`; corosync
    /// would show it dead, `NA`, once that node's `quorum.device.timeout` passed: not
    /// modelled), and a node that never had one shows none. It changes nothing in the local
    /// node's quorum (each node counts its own device), so nobody is notified. `false` when the
    /// table of such nodes is full (`NODES`).
    pub fn set_remote_qdevice(&mut self, nodeid: u32, on: bool) -> bool {
        let devices = &mut self.model.remote_devices;
        match devices.iter_mut().find(|d| d.0 == nodeid) {
            Some(device) => {
                device.1 = on;
                true
            }
            None => !on || devices.push((nodeid, true)).is_ok(),
        }
    }

    /// Whether the sync of the last membership change is held back for the local node's
    /// quorum device (`sync_wait_for_poll_or_timeout` in corosync's `votequorum_sync_init`):
    /// a device registered by a client and alive must poll with the new ring id; until it
    /// does, is unregistered or `quorum.device.sync_timeout` passes (then it is no longer
    /// alive and its vote is withdrawn), the QUORUM notification of the change is held back,
    /// and corosync serves no IPC request of any service but votequorum (`ipc_glue.c`), which
    /// the adapter mirrors. The simulator's device polls at once and holds nothing.
    pub fn sync_waiting(&self) -> bool {
        self.model.device.sync_wait
    }

    /// How many membership changes' syncs have completed, wrapping at 2^32: corosync's
    /// `votequorum_sync_activate`, which calls the quorum service's callback
    /// (`quorum_api_set_quorum` in `exec/vsf_quorum.c`), so that libquorum's trackers get a
    /// notification at the end of every sync, whether or not quorate-ness changed, and none
    /// while it waits ([`QuorumEngine::sync_waiting`]). An adapter serving libquorum compares
    /// it with the count it last notified.
    pub fn completed_syncs(&self) -> u32 {
        self.model.syncs
    }

    /// Whether the simulator's quorum device is on ([`QuorumEngine::simulate_qdevice`]).
    pub fn simulated_qdevice(&self) -> bool {
        self.model.qdevice.simulated
    }

    /// Tells the engine the adapter's clock (the one [`QuorumEngine::poll_timeout`] and
    /// [`QuorumEngine::handle_timeout`] use): a quorum device's POLL arms its timer
    /// (`quorum.device.timeout`) from the last instant given. Call it before handing over
    /// requests; it changes nothing else.
    pub fn set_clock(&mut self, now: Instant) {
        self.model.clock = now;
    }

    /// Applies what is due at `now`: at the end of the last-man-standing window
    /// (`votequorum_last_man_standing_timer_fn`), a quorate partition recomputes quorum from
    /// its current members, lowering the expected votes to their number; when the quorum
    /// device has not polled in time (`qdevice_timer_fn`), it is no longer alive and its vote
    /// is withdrawn (it stays registered). Trackers get the EXPECTEDVOTES / QUORUM
    /// notifications corosync's would.
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit now; nothing changed, drain
    /// and call again.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ServerError> {
        let due = |d: Option<Instant>| d.is_some_and(|d| d <= now);
        let (lms, device) = (due(self.model.lms_deadline), due(self.model.device.deadline));
        if !lms && !device {
            return Ok(());
        }
        let mut next = self.model.clone();
        next.clock = now;
        if device {
            next.device.deadline = None;
            if next.qdevice.alive {
                (next.qdevice.alive, next.qdevice.cast_vote) = (false, false);
                next.recalculate(false, false, !next.device.sync_wait);
            }
            next.end_sync_wait();
        }
        if lms {
            next.lms_deadline = None;
            if next.quorate {
                next.recalculate(true, true, true);
            }
        }
        self.commit_anyway(next)
    }

    /// Re-reads the configuration at run time, as corosync does when a `quorum.` or
    /// `nodelist.` key changes (`votequorum_refresh_config`): `two_node`, the expected votes
    /// (from `cfg.expected_votes` or the nodelist) and the local node's votes take effect;
    /// wait_for_all, last_man_standing, auto_tie_breaker and allow_downscale keep their
    /// start-up values, as in corosync. Trackers get the notifications corosync's would. A
    /// configuration corosync refuses is ignored, as corosync does at run time ("will
    /// continue with current runtime data"). A change of the local node's votes or of the
    /// expected votes is a reconfigure message for the other members of the partition
    /// ([`QuorumEngine::poll_reconfigure`]; at most two).
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit the outbox, or the
    /// reconfigure messages do not fit their queue; nothing changed, drain
    /// ([`QuorumEngine::poll_notification`], [`QuorumEngine::poll_reconfigure`]) and call again.
    pub fn reconfigure(
        &mut self,
        cfg: QuorumConfig,
        nodelist: &[(u32, u32)],
        note: &mut impl FnMut(ConfigNote),
    ) -> Result<(), ServerError> {
        let mut next = self.model.clone();
        let (old_votes, old_expected) = (next.local().votes, next.local().expected_votes);
        let nodeid = next.local().nodeid;
        let votes = nodelist.iter().find(|n| n.0 == nodeid).map_or(cfg.votes, |n| n.1);
        let cfg = QuorumConfig { nodeid, votes, ..cfg };
        if next.readconfig(cfg, nodelist_sums(nodelist), true, note).is_err() {
            return Ok(());
        }
        // Our own node information, then the reconfigure messages.
        next.recalculate(false, false, true);
        if next.local().votes != old_votes {
            next.queue_reconfigure(Reconfigure::NodeVotes { nodeid, votes: next.local().votes })?;
            next.recalculate(true, false, true);
        }
        let expected = next.local().expected_votes;
        if expected != old_expected {
            next.send_reconfigure(Reconfigure::ExpectedVotes(expected))?;
        }
        self.commit_anyway(next)
    }

    /// `quorum.cancel_wait_for_all` set to 1 (corosync resets the key to 0): stops waiting
    /// for all nodes and recomputes quorum (`VOTEQUORUM_RECONFIG_PARAM_CANCEL_WFA`), a
    /// reconfigure message for the other members of the partition
    /// ([`QuorumEngine::poll_reconfigure`]).
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit the outbox, or the
    /// reconfigure message does not fit its queue; nothing changed, drain
    /// ([`QuorumEngine::poll_notification`], [`QuorumEngine::poll_reconfigure`]) and call again.
    pub fn cancel_wait_for_all(&mut self) -> Result<(), ServerError> {
        let mut next = self.model.clone();
        next.send_reconfigure(Reconfigure::CancelWaitForAll)?;
        self.commit_anyway(next)
    }

    /// The `runtime.votequorum.*` CMAP keys corosync's votequorum keeps for this state (full
    /// key names, in key order), for the adapter to mirror into CMAP after every change:
    /// `atb_type` (u32, with auto_tie_breaker configured or after a run-time re-read),
    /// `ev_barrier` (u32),
    /// `ev_tracking_barrier` (u32, with allow_downscale or expected_votes_tracking),
    /// `highest_node_id` and `lowest_node_id` (u32, once quorate), `qdevice_can_operate` (u8,
    /// once a quorum device is configured), `qdevice_master_wins` (u8, once a device asked for
    /// master_wins), `this_node_id` (u32),
    /// `two_node` (u8), `wait_for_all_status` (u8, with wait_for_all).
    pub fn runtime_keys(&self) -> impl Iterator<Item = (&'static str, Value<'static>)> + '_ {
        let m = &self.model;
        let atb = m.rules.atb.map_or(0, |a| a.atb_type());
        [
            ("runtime.votequorum.atb_type", m.atb_type_key.then_some(Value::UInt32(atb))),
            ("runtime.votequorum.ev_barrier", Some(Value::UInt32(m.ev_barrier))),
            (
                "runtime.votequorum.ev_tracking_barrier",
                m.rules.ev_tracking.then_some(Value::UInt32(m.ev_tracking_barrier)),
            ),
            ("runtime.votequorum.highest_node_id", m.highest_node_id.map(Value::UInt32)),
            ("runtime.votequorum.lowest_node_id", m.lowest_node_id.map(Value::UInt32)),
            (
                "runtime.votequorum.qdevice_can_operate",
                m.device.can_operate_key.then_some(Value::UInt8(m.device.can_operate.into())),
            ),
            (
                "runtime.votequorum.qdevice_master_wins",
                m.device.master_wins.map(|on| Value::UInt8(on.into())),
            ),
            ("runtime.votequorum.this_node_id", Some(Value::UInt32(m.local().nodeid))),
            ("runtime.votequorum.two_node", Some(Value::UInt8(m.rules.two_node.into()))),
            (
                "runtime.votequorum.wait_for_all_status",
                m.wait_for_all_key.then_some(Value::UInt8(m.wait_for_all_status.into())),
            ),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
    }

    /// The tracking context of `conn`, if it tracks.
    pub fn tracking(&self, conn: ConnId) -> Option<u64> {
        *self.conns.get(conn)?
    }

    tracking_connection_methods!();

    notification_methods!();

    handle_request_method! {
        /// Handles one request frame from `conn` and writes the reply into `out` (at least
        /// [`super::MIN_REPLY_LEN`] bytes); returns the reply's length. Notifications the request
        /// caused are queued; send them first. A SETEXPECTED, or a SETVOTES for a node, in a
        /// partition with other members also queues a reconfigure message
        /// ([`QuorumEngine::poll_reconfigure`]).
        ///
        /// # Errors
        ///
        /// [`ServerError::OutboxFull`]: the notifications do not fit the outbox, or the
        /// reconfigure message does not fit its queue; nothing changed, drain
        /// ([`QuorumEngine::poll_notification`], [`QuorumEngine::poll_reconfigure`]) and hand
        /// the frame in again. The others of [`super::Engine::handle_request`].
        => serve
    }

    fn serve(&mut self, ci: usize, kind: RequestKind, frame: &[u8], out: &mut [u8]) -> Served {
        let Ok(req) = Request::decode(frame) else {
            return reply(kind, Err(CsError::InvalidParam), out);
        };
        let result = match req {
            Request::GetInfo { nodeid } => return self.getinfo(nodeid, out),
            Request::SetExpected { expected_votes } => self.set_expected(expected_votes)?,
            Request::SetVotes { nodeid, votes } => self.set_votes(nodeid, votes)?,
            Request::TrackStart { context, flags } => self.track_start(ci, context, flags)?,
            Request::TrackStop => match self.conns[ci].take() {
                Some(_) => Ok(()),
                None => Err(CsError::NotExist),
            },
            Request::QdeviceRegister { name } => self.qdevice_register(name.as_bytes())?,
            Request::QdeviceUnregister { name } => self.qdevice_step(name.as_bytes(), false, |m| {
                m.qdevice = Qdevice::default();
                m.device.deadline = None;
                m.end_sync_wait();
                Ok(())
            })?,
            Request::QdeviceUpdate { old_name, new_name } => {
                self.qdevice_step(old_name.as_bytes(), false, |m| {
                    m.qdevice.name =
                        Vec::from_slice(new_name.as_bytes()).map_err(|_| CsError::InvalidParam)?;
                    Ok(())
                })?
            }
            Request::QdevicePoll { name, cast_vote, ring_id } => {
                if self.model.qdevice.registered
                    && self.model.device.can_operate
                    && ring_id != self.model.cfg.ring_id
                {
                    Err(CsError::MessageError)
                } else {
                    self.qdevice_step(name.as_bytes(), true, |m| {
                        m.qdevice.alive = true;
                        m.qdevice.cast_vote = cast_vote;
                        let wait = Duration::from_millis(u64::from(m.device.timeout));
                        m.device.deadline = Some(m.clock.saturating_add(wait));
                        m.end_sync_wait();
                        Ok(())
                    })?
                }
            }
            Request::QdeviceMasterWins { name, allow } => self.qdevice_step(name.as_bytes(), true, |m| {
                m.qdevice.master_wins = allow;
                m.device.master_wins = Some(allow);
                Ok(())
            })?,
        };
        reply(kind, result, out)
    }

    fn getinfo(&self, nodeid: u32, out: &mut [u8]) -> Result<usize, ServerError> {
        let m = &self.model;
        let local_id = m.nodes.first().map_or(0, |n| n.nodeid);
        let nodeid = if nodeid == QDEVICE_NODEID { local_id } else { nodeid };
        let Some(node) = m.nodes.iter().find(|n| n.nodeid == nodeid) else {
            return reply(RequestKind::GetInfo, Err(CsError::NotExist), out);
        };
        let local = nodeid == local_id;
        let mut total_votes = m.total_votes();
        if local && m.qdevice.cast_vote {
            total_votes = total_votes.wrapping_add(m.device.votes);
        }
        let info = NodeInfo {
            nodeid: node.nodeid,
            state: node.state,
            votes: node.votes,
            expected_votes: node.expected_votes,
            highest_expected: m.members().map(|n| n.expected_votes).max().unwrap_or(0),
            total_votes,
            quorum: u32::from(m.quorum),
            flags: m.flags(node.nodeid, local),
            qdevice_votes: m.device.votes,
            qdevice_name: &m.qdevice.name,
        };
        Ok(Reply { result: Ok(()), body: Response::GetInfo(info) }.encode(out)?)
    }

    fn set_expected(&mut self, expected: u32) -> Result<Result<(), CsError>, ServerError> {
        let (newquorum, total) = self.model.calculate(true, expected);
        if expected < total || (self.model.quorate && newquorum > total) {
            return Ok(Err(CsError::InvalidParam));
        }
        let mut next = self.model.clone();
        next.send_reconfigure(Reconfigure::ExpectedVotes(expected))?;
        self.commit(next)
    }

    fn set_votes(&mut self, nodeid: u32, votes: u32) -> Result<Result<(), CsError>, ServerError> {
        let mut next = self.model.clone();
        if nodeid == QDEVICE_NODEID {
            next.device.votes = votes;
        } else if let Some(n) = next.nodes.iter_mut().find(|n| n.nodeid == nodeid) {
            n.votes = votes;
        } else {
            return Ok(Err(CsError::NameNotFound));
        }
        let (newquorum, total) = next.calculate(true, 0);
        if newquorum < total / 2 || newquorum > total {
            return Ok(Err(CsError::InvalidParam));
        }
        next.recalculate(true, false, true);
        if nodeid != QDEVICE_NODEID {
            next.queue_reconfigure(Reconfigure::NodeVotes { nodeid, votes })?;
        }
        self.commit(next)
    }

    fn track_start(
        &mut self,
        ci: usize,
        context: u64,
        flags: TrackFlags,
    ) -> Result<Result<(), CsError>, ServerError> {
        let conn = self.conns.id(ci);
        if flags.contains(TrackFlags::CURRENT) || flags.contains(TrackFlags::CHANGES) {
            let kinds = [Kind::NodeList, Kind::Quorum];
            let bytes = self.frame_len(Kind::NodeList) + self.frame_len(Kind::Quorum);
            if !self.outbox.reserve(2, bytes)? {
                return Ok(Err(CsError::NoResources));
            }
            let mark = self.outbox.mark();
            for kind in kinds {
                if let Err(e) = self.push(conn, context, kind) {
                    self.outbox.rollback(mark);
                    return Err(e);
                }
            }
        }
        if self.conns[ci].is_some() {
            return Ok(Err(CsError::Exist));
        }
        if flags.contains(TrackFlags::CHANGES) || flags.contains(TrackFlags::CHANGES_ONLY) {
            self.conns[ci] = Some(context);
        }
        Ok(Ok(()))
    }

    fn qdevice_register(&mut self, name: &[u8]) -> Result<Result<(), CsError>, ServerError> {
        let m = &self.model;
        if !m.device.can_operate {
            return Ok(Err(CsError::Access));
        }
        if m.qdevice.registered {
            return Ok(if m.qdevice.name == name { Ok(()) } else { Err(CsError::Exist) });
        }
        let mut next = self.model.clone();
        if next.qdevice.name.is_empty() {
            next.qdevice.name = Vec::from_slice(name).unwrap_or_default();
        }
        if next.qdevice.name != name {
            return Ok(Err(CsError::Exist));
        }
        next.qdevice.registered = true;
        next.recalculate(false, false, true);
        self.commit(next)
    }

    /// The common shape of UNREGISTER, UPDATE, POLL and MASTER_WINS.
    fn qdevice_step(
        &mut self,
        name: &[u8],
        needs_operate: bool,
        apply: impl FnOnce(&mut Model<NODES>) -> Result<(), CsError>,
    ) -> Result<Result<(), CsError>, ServerError> {
        let m = &self.model;
        if needs_operate && !m.device.can_operate {
            return Ok(Err(CsError::Access));
        }
        if !m.qdevice.registered {
            return Ok(Err(CsError::NotExist));
        }
        if m.qdevice.name != name {
            return Ok(Err(CsError::InvalidParam));
        }
        let mut next = self.model.clone();
        if let Err(e) = apply(&mut next) {
            return Ok(Err(e));
        }
        // No QUORUM notification while the sync waits for the device.
        next.recalculate(false, false, !next.device.sync_wait);
        self.commit(next)
    }

    /// Queues the trackers' notifications of `next`'s step and commits it, or changes nothing.
    fn commit(&mut self, mut next: Model<NODES>) -> Result<Result<(), CsError>, ServerError> {
        let kinds = core::mem::take(&mut next.events);
        let previous = core::mem::replace(&mut self.model, next);
        let trackers = self.conns.iter().filter(|(_, t)| t.is_some()).count();
        let per_tracker: usize = kinds.iter().map(|k| self.frame_len(*k)).sum();
        let fits = match self.outbox.reserve(trackers * kinds.len(), trackers * per_tracker) {
            Ok(fits) => fits,
            Err(e) => {
                self.model = previous;
                return Err(e);
            }
        };
        if !fits {
            self.model = previous;
            return Ok(Err(CsError::NoResources));
        }
        let mark = self.outbox.mark();
        for kind in kinds {
            for i in 0..self.conns.len() {
                let (conn, Some(context)) = (self.conns.id(i), self.conns[i]) else { continue };
                if let Err(e) = self.push(conn, context, kind) {
                    self.outbox.rollback(mark);
                    self.model = previous;
                    return Err(e);
                }
            }
        }
        Ok(Ok(()))
    }

    fn frame_len(&self, kind: Kind) -> usize {
        match kind {
            Kind::NodeList => 56 + 4 * self.model.members.len(),
            Kind::Quorum => 48 + 8 * self.model.quorum_entries().len(),
            Kind::ExpectedVotes => 40,
        }
    }

    fn push(&mut self, conn: ConnId, context: u64, kind: Kind) -> Result<(), ServerError> {
        let m = &self.model;
        let len = self.frame_len(kind);
        match kind {
            Kind::NodeList => {
                let n = Notification::NodeList {
                    context,
                    ring_id: m.cfg.ring_id,
                    nodes: NodeIds::from_slice(&m.members),
                };
                self.outbox.push(conn, len, |buf| n.encode(buf))
            }
            Kind::Quorum => {
                let entries = m.quorum_entries();
                let n = Notification::Quorum {
                    quorate: m.quorate,
                    context,
                    nodes: NodeList::from_slice(&entries),
                };
                self.outbox.push(conn, len, |buf| n.encode(buf))
            }
            Kind::ExpectedVotes => {
                let n = Notification::ExpectedVotes { context, expected_votes: m.local().expected_votes };
                self.outbox.push(conn, len, |buf| n.encode(buf))
            }
        }
    }
}

/// Publishes the quorum model: quorate, ring id and members (the first [`MAX_MEMBERS`] of
/// them; a real cluster has no more).
impl<const CONNS: usize, const NODES: usize, const EVENTS: usize, const EVENT_BYTES: usize> Engine
    for QuorumEngine<CONNS, NODES, EVENTS, EVENT_BYTES>
{
    fn name(&self) -> &'static str {
        crate::votequorum::SERVICE_NAME
    }

    forward_engine_methods!();

    fn publish(&self, view: &mut ClusterView) {
        view.quorate = self.is_quorate();
        view.ring_id = self.ring_id();
        view.members = self.model.members.iter().copied().take(MAX_MEMBERS).collect();
    }
}

/// A nodelist's node count and summed votes.
fn nodelist_sums(nodelist: &[(u32, u32)]) -> (usize, u32) {
    (nodelist.len(), nodelist.iter().fold(0u32, |a, n| a.wrapping_add(n.1)))
}

/// The reply to `kind`: GETINFO's 320-byte shape (zeroed on error) or the 24-byte status.
fn reply(kind: RequestKind, result: Result<(), CsError>, out: &mut [u8]) -> Result<usize, ServerError> {
    let body = match kind {
        RequestKind::GetInfo => Response::GetInfo(NodeInfo::default()),
        _ => Response::Status,
    };
    Ok(Reply { result, body }.encode(out)?)
}
