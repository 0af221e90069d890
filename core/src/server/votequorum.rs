//! The votequorum server engine: a static-membership model of corosync 3.1.7's
//! `exec/votequorum.c`, sans IO.
//!
//! The model holds the local node plus any other nodes the adapter adds ([`QuorumEngine::add_node`]),
//! each with votes, expected votes and a state; the ring id; the configured flags; and the quorum
//! device. Quorum is computed as corosync does (`max((highest_expected + 2) / 2,
//! (total_votes + 2) / 2)`, never decreasing unless allowed, 1 in two-node mode with at most two
//! nodes; `wait_for_all` holds quorum back until all expected votes are present once).
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
//! - Request ids outside 0–9 get corosync's generic reply (id 0, 24 bytes, `INVALID_PARAM`); a
//!   malformed frame of a known id gets its reply shape with `INVALID_PARAM`.
//!
//! # Not reproduced
//!
//! - Cluster messaging: what corosync multicasts and applies when the message comes back (new
//!   expected votes or votes, qdevice registration) is applied at once. corosync therefore
//!   answers QDEVICE_REGISTER asynchronously and sends the notifications of SETEXPECTED /
//!   SETVOTES *after* the reply; here they are queued with the reply (the adapter sends them
//!   first). libvotequorum cannot tell: events and replies use different channels.
//! - The quorum-device timer (a device that stops polling is never declared dead), the
//!   expected-votes tracking barrier, last-man-standing, auto-tie-breaker and master-wins
//!   quorum rules: their flags are reported but do not change the quorum.
//! - The quorum device's votes count only while it is registered and casting its vote.

use super::outbox::Outbox;
use super::session::{handle_request_method, notification_methods, tracking_connection_methods, Sessions};
use super::{forward_engine_methods, ClusterView, ConnId, Engine, Served, ServerError, MAX_MEMBERS};
use crate::cmap::Value;
use crate::error::CsError;
use crate::time::Instant;
use crate::votequorum::{
    InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeList, NodeState, Notification, Reply, Request, RequestKind,
    Response, RingId, TrackFlags, QDEVICE_NAME_MAX_LEN, QDEVICE_NODEID,
};
use heapless::Vec;

/// Configuration of the quorum model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct QuorumConfig {
    /// The local node id (`totem.nodeid` / the nodelist entry).
    pub nodeid: u32,
    /// The local node's votes (`quorum_votes`).
    pub votes: u32,
    /// `quorum.expected_votes`.
    pub expected_votes: u32,
    /// `quorum.two_node`.
    pub two_node: bool,
    /// `quorum.wait_for_all`.
    pub wait_for_all: bool,
    /// `quorum.last_man_standing` (reported only).
    pub last_man_standing: bool,
    /// `quorum.auto_tie_breaker` (reported only).
    pub auto_tie_breaker: bool,
    /// `quorum.allow_downscale` (reported only).
    pub allow_downscale: bool,
    /// Whether a quorum device may register (corosync refuses when its configuration is
    /// incompatible).
    pub qdevice_can_operate: bool,
    /// The quorum device's votes (`quorum.device.votes`).
    pub qdevice_votes: u32,
    /// The current ring (membership) id.
    pub ring_id: RingId,
}

impl Default for QuorumConfig {
    /// The harness's single-node cluster: node 1, one vote, expected 1, ring (1, 5), no
    /// quorum-device votes configured.
    fn default() -> Self {
        Self {
            nodeid: 1,
            votes: 1,
            expected_votes: 1,
            two_node: false,
            wait_for_all: false,
            last_man_standing: false,
            auto_tie_breaker: false,
            allow_downscale: false,
            qdevice_can_operate: true,
            qdevice_votes: 0,
            ring_id: RingId { nodeid: 1, seq: 5 },
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Node {
    nodeid: u32,
    votes: u32,
    expected_votes: u32,
    state: NodeState,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Qdevice {
    registered: bool,
    alive: bool,
    cast_vote: bool,
    master_wins: bool,
    name: Vec<u8, QDEVICE_NAME_MAX_LEN>,
}

/// The quorum state: cloned, changed and committed only when its notifications fit.
#[derive(Clone, Debug)]
struct Model<const NODES: usize> {
    cfg: QuorumConfig,
    /// The local node first.
    nodes: Vec<Node, NODES>,
    quorum: u32,
    quorate: bool,
    wait_for_all_status: bool,
    qdevice: Qdevice,
}

/// What changed in a step, to notify trackers.
#[derive(Clone, Copy, Debug, Default)]
struct Changes {
    nodelist: bool,
    expected_votes: bool,
    quorate: bool,
}

impl<const NODES: usize> Model<NODES> {
    fn qdevice_votes(&self) -> u32 {
        if self.qdevice.registered && self.qdevice.cast_vote {
            self.cfg.qdevice_votes
        } else {
            0
        }
    }

    fn members(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.state == NodeState::MEMBER)
    }

    /// `calculate_quorum`: (new quorum, total votes).
    fn calculate(&self, allow_decrease: bool, max_expected: u32) -> (u32, u32) {
        let mut total = self.members().fold(0u32, |a, n| a.saturating_add(n.votes));
        let mut highest = self.members().map(|n| n.expected_votes).max().unwrap_or(0);
        let mut count = self.members().count();
        if self.qdevice_votes() > 0 {
            total = total.saturating_add(self.qdevice_votes());
            count += 1;
        }
        if max_expected > 0 {
            highest = max_expected;
        }
        let mut quorum = (highest.saturating_add(2) / 2).max(total.saturating_add(2) / 2);
        if !allow_decrease {
            quorum = quorum.max(self.quorum);
        }
        if self.cfg.two_node && count <= 2 {
            quorum = 1;
        }
        (quorum, total)
    }

    fn local(&self) -> &Node {
        &self.nodes[0]
    }

    /// `recalculate_quorum` + `are_we_quorate`.
    fn recalculate(&mut self, allow_decrease: bool, changes: &mut Changes) {
        let total =
            self.members().fold(0u32, |a, n| a.saturating_add(n.votes)).saturating_add(self.qdevice_votes());
        if total > self.local().expected_votes {
            self.nodes[0].expected_votes = total;
            changes.expected_votes = true;
        }
        let (quorum, total) = self.calculate(allow_decrease, 0);
        self.quorum = quorum;
        if self.cfg.wait_for_all && self.wait_for_all_status {
            if total != self.local().expected_votes {
                return;
            }
            self.wait_for_all_status = false;
        }
        let quorate = quorum <= total;
        if quorate != self.quorate {
            changes.quorate = true;
        }
        self.quorate = quorate;
        if self.cfg.wait_for_all {
            self.wait_for_all_status = !quorate;
        }
    }

    fn set_members_expected(&mut self, expected: u32) {
        if expected > 0 {
            for n in self.nodes.iter_mut().filter(|n| n.state == NodeState::MEMBER) {
                n.expected_votes = expected;
            }
        }
    }

    fn flags(&self, local: bool) -> InfoFlags {
        let c = &self.cfg;
        let q = &self.qdevice;
        let bits = [
            (c.two_node, InfoFlags::TWONODE),
            (self.quorate, InfoFlags::QUORATE),
            (c.wait_for_all, InfoFlags::WAIT_FOR_ALL),
            (c.last_man_standing, InfoFlags::LAST_MAN_STANDING),
            (c.auto_tie_breaker, InfoFlags::AUTO_TIE_BREAKER),
            (c.allow_downscale, InfoFlags::ALLOW_DOWNSCALE),
            (local && q.registered, InfoFlags::QDEVICE_REGISTERED),
            (local && q.alive, InfoFlags::QDEVICE_ALIVE),
            (local && q.cast_vote, InfoFlags::QDEVICE_CAST_VOTE),
            (local && q.master_wins, InfoFlags::QDEVICE_MASTER_WINS),
        ];
        bits.iter().filter(|(on, _)| *on).fold(InfoFlags(0), |a, (_, f)| a | *f)
    }

    fn quorum_entries(&self) -> Vec<NodeEntry, NODES> {
        let mut v: Vec<NodeEntry, NODES> =
            self.nodes.iter().map(|n| NodeEntry { nodeid: n.nodeid, state: n.state }).collect();
        if self.qdevice.registered {
            let state = if self.qdevice.alive { NodeState::MEMBER } else { NodeState::DEAD };
            // `add_node` keeps one slot free for the device.
            let _ = v.push(NodeEntry { nodeid: QDEVICE_NODEID, state });
        }
        v
    }

    fn member_ids(&self) -> Vec<u32, NODES> {
        self.members().map(|n| n.nodeid).collect()
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
    /// [`QuorumEngine::add_node`]). `NODES` must be at least 2 (checked at compile time).
    pub fn new(cfg: QuorumConfig) -> Self {
        const { assert!(NODES >= 2, "NODES must hold the local node and the quorum device") };
        let mut nodes = Vec::new();
        let local = Node {
            nodeid: cfg.nodeid,
            votes: cfg.votes,
            expected_votes: cfg.expected_votes,
            state: NodeState::MEMBER,
        };
        // Cannot fail: `NODES >= 2` is checked at compile time above.
        let _ = nodes.push(local);
        let mut model = Model {
            cfg,
            nodes,
            quorum: 0,
            quorate: false,
            wait_for_all_status: cfg.wait_for_all,
            qdevice: Qdevice::default(),
        };
        model.recalculate(true, &mut Changes::default());
        Self { model, conns: Sessions::new(), outbox: Outbox::new() }
    }

    /// Adds (or updates) another node of the cluster and recomputes quorum without notifying
    /// anyone (use it while loading configuration). `Err` when the node table is full.
    pub fn add_node(&mut self, nodeid: u32, votes: u32, state: NodeState) -> Result<(), CsError> {
        let expected_votes = self.model.local().expected_votes;
        let node = Node { nodeid, votes, expected_votes, state };
        if let Some(n) = self.model.nodes.iter_mut().find(|n| n.nodeid == nodeid) {
            *n = node;
        } else if self.model.nodes.len() + 1 >= NODES {
            return Err(CsError::NoMemory);
        } else {
            self.model.nodes.push(node).map_err(|_| CsError::NoMemory)?;
        }
        self.model.recalculate(true, &mut Changes::default());
        Ok(())
    }

    /// Whether the cluster is quorate.
    pub fn is_quorate(&self) -> bool {
        self.model.quorate
    }

    /// The votes needed for quorum.
    pub fn quorum(&self) -> u32 {
        self.model.quorum
    }

    /// The local node's expected votes.
    pub fn expected_votes(&self) -> u32 {
        self.model.nodes.first().map_or(0, |n| n.expected_votes)
    }

    /// The votes of `nodeid` (0: the quorum device).
    pub fn votes(&self, nodeid: u32) -> Option<u32> {
        if nodeid == QDEVICE_NODEID {
            return Some(self.model.cfg.qdevice_votes);
        }
        self.model.nodes.iter().find(|n| n.nodeid == nodeid).map(|n| n.votes)
    }

    /// The current ring (membership) id.
    pub fn ring_id(&self) -> RingId {
        self.model.cfg.ring_id
    }

    /// The node ids of the current members (the local node first), as the libquorum service
    /// ([`super::quorum`]) reports them.
    pub fn member_ids(&self) -> Vec<u32, NODES> {
        self.model.member_ids()
    }

    /// The registered quorum device's name.
    pub fn qdevice_name(&self) -> Option<&[u8]> {
        self.model.qdevice.registered.then_some(&self.model.qdevice.name[..])
    }

    /// Sets the membership of the local node's partition, as corosync's totem/sync layer hands
    /// it to votequorum (`votequorum_sync_init` / `quorum_callback` in `exec/votequorum.c`):
    /// `members` are the node ids in the partition (the local node is always a member, listed or
    /// not; order and duplicates do not matter), every other known node becomes dead. A node not
    /// known yet joins with one vote and the local node's expected votes. `ring_id` becomes the
    /// current ring id; `now` (the adapter's clock) starts the last-man-standing window.
    ///
    /// Trackers get a NODELIST notification (the new ring id and members), then EXPECTEDVOTES
    /// if the expected votes changed and QUORUM if quorate-ness changed, each with its
    /// tracking context.
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit now; nothing changed, drain
    /// [`QuorumEngine::poll_notification`] and call again. [`ServerError::TooManyNodes`]: more
    /// nodes than the table holds (`NODES - 1`); nothing changed.
    pub fn set_membership(
        &mut self,
        members: &[u32],
        ring_id: RingId,
        now: Instant,
    ) -> Result<(), ServerError> {
        let _ = now;
        let mut next = self.model.clone();
        let local_id = next.local().nodeid;
        for n in next.nodes.iter_mut() {
            let member = n.nodeid == local_id || members.contains(&n.nodeid);
            n.state = if member { NodeState::MEMBER } else { NodeState::DEAD };
        }
        let expected_votes = next.local().expected_votes;
        for &nodeid in members {
            if next.nodes.iter().any(|n| n.nodeid == nodeid) {
                continue;
            }
            if next.nodes.len() + 1 >= NODES {
                return Err(ServerError::TooManyNodes);
            }
            let node = Node { nodeid, votes: 1, expected_votes, state: NodeState::MEMBER };
            next.nodes.push(node).map_err(|_| ServerError::TooManyNodes)?;
        }
        next.cfg.ring_id = ring_id;
        let mut changes = Changes { nodelist: true, ..Changes::default() };
        next.recalculate(true, &mut changes);
        match self.commit(next.clone(), changes)? {
            Ok(()) => Ok(()),
            // The notifications could never fit the outbox: the cluster changed regardless.
            Err(_) => {
                self.model = next;
                Ok(())
            }
        }
    }

    /// When [`QuorumEngine::handle_timeout`] wants to be called next (the end of the
    /// last-man-standing window), or `None`.
    pub fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Applies what is due at `now` (corosync's last-man-standing timer,
    /// `lms_timer_fn` in `exec/votequorum.c`), queueing the trackers' notifications.
    ///
    /// # Errors
    ///
    /// [`ServerError::OutboxFull`]: the notifications do not fit now; nothing changed, drain
    /// and call again.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ServerError> {
        let _ = now;
        Ok(())
    }

    /// The `runtime.votequorum.*` CMAP keys corosync's votequorum keeps for this state (full
    /// key names), for the adapter to mirror into CMAP after every change.
    pub fn runtime_keys(&self) -> impl Iterator<Item = (&'static str, Value<'static>)> + '_ {
        let m = &self.model;
        let ids = || m.nodes.iter().map(|n| n.nodeid);
        [
            ("runtime.votequorum.ev_barrier", Some(Value::UInt32(m.local().expected_votes))),
            ("runtime.votequorum.highest_node_id", Some(Value::UInt32(ids().max().unwrap_or(0)))),
            ("runtime.votequorum.lowest_node_id", Some(Value::UInt32(ids().min().unwrap_or(0)))),
            ("runtime.votequorum.this_node_id", Some(Value::UInt32(m.local().nodeid))),
            ("runtime.votequorum.two_node", Some(Value::UInt8(m.cfg.two_node.into()))),
            (
                "runtime.votequorum.wait_for_all_status",
                m.cfg.wait_for_all.then_some(Value::UInt8(m.wait_for_all_status.into())),
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
        /// caused are queued; send them first.
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
                    && self.model.cfg.qdevice_can_operate
                    && ring_id != self.model.cfg.ring_id
                {
                    Err(CsError::MessageError)
                } else {
                    self.qdevice_step(name.as_bytes(), true, |m| {
                        m.qdevice.alive = true;
                        m.qdevice.cast_vote = cast_vote;
                        Ok(())
                    })?
                }
            }
            Request::QdeviceMasterWins { name, allow } => self.qdevice_step(name.as_bytes(), true, |m| {
                m.qdevice.master_wins = allow;
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
        let mut total_votes = m.members().fold(0u32, |a, n| a.saturating_add(n.votes));
        if local && m.qdevice.cast_vote {
            total_votes = total_votes.saturating_add(m.cfg.qdevice_votes);
        }
        let info = NodeInfo {
            nodeid: node.nodeid,
            state: node.state,
            votes: node.votes,
            expected_votes: node.expected_votes,
            highest_expected: m.members().map(|n| n.expected_votes).max().unwrap_or(0),
            total_votes,
            quorum: m.quorum,
            flags: m.flags(local),
            qdevice_votes: m.cfg.qdevice_votes,
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
        next.set_members_expected(expected);
        let mut changes = Changes { expected_votes: true, ..Changes::default() };
        next.recalculate(true, &mut changes);
        self.commit(next, changes)
    }

    fn set_votes(&mut self, nodeid: u32, votes: u32) -> Result<Result<(), CsError>, ServerError> {
        let mut next = self.model.clone();
        if nodeid == QDEVICE_NODEID {
            next.cfg.qdevice_votes = votes;
        } else if let Some(n) = next.nodes.iter_mut().find(|n| n.nodeid == nodeid) {
            n.votes = votes;
        } else {
            return Ok(Err(CsError::NameNotFound));
        }
        let (newquorum, total) = next.calculate(true, 0);
        if newquorum < total / 2 || newquorum > total {
            return Ok(Err(CsError::InvalidParam));
        }
        let mut changes = Changes::default();
        next.recalculate(true, &mut changes);
        self.commit(next, changes)
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
        if !m.cfg.qdevice_can_operate {
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
        let mut changes = Changes::default();
        next.recalculate(false, &mut changes);
        self.commit(next, changes)
    }

    /// The common shape of UNREGISTER, UPDATE, POLL and MASTER_WINS.
    fn qdevice_step(
        &mut self,
        name: &[u8],
        needs_operate: bool,
        apply: impl FnOnce(&mut Model<NODES>) -> Result<(), CsError>,
    ) -> Result<Result<(), CsError>, ServerError> {
        let m = &self.model;
        if needs_operate && !m.cfg.qdevice_can_operate {
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
        let mut changes = Changes::default();
        next.recalculate(false, &mut changes);
        self.commit(next, changes)
    }

    /// Queues the trackers' notifications for `changes` and commits `next`, or changes nothing.
    fn commit(&mut self, next: Model<NODES>, changes: Changes) -> Result<Result<(), CsError>, ServerError> {
        let previous = core::mem::replace(&mut self.model, next);
        let mut kinds: Vec<Kind, 3> = Vec::new();
        if changes.nodelist {
            let _ = kinds.push(Kind::NodeList);
        }
        if changes.expected_votes {
            let _ = kinds.push(Kind::ExpectedVotes);
        }
        if changes.quorate {
            let _ = kinds.push(Kind::Quorum);
        }
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
            Kind::NodeList => 56 + 4 * self.model.member_ids().len(),
            Kind::Quorum => 48 + 8 * self.model.quorum_entries().len(),
            Kind::ExpectedVotes => 40,
        }
    }

    fn push(&mut self, conn: ConnId, context: u64, kind: Kind) -> Result<(), ServerError> {
        let m = &self.model;
        let len = self.frame_len(kind);
        match kind {
            Kind::NodeList => {
                let ids = m.member_ids();
                let n = Notification::NodeList {
                    context,
                    ring_id: m.cfg.ring_id,
                    nodes: NodeIds::from_slice(&ids),
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
        view.members = self.model.members().map(|n| n.nodeid).take(MAX_MEMBERS).collect();
    }
}

/// The reply to `kind`: GETINFO's 320-byte shape (zeroed on error) or the 24-byte status.
fn reply(kind: RequestKind, result: Result<(), CsError>, out: &mut [u8]) -> Result<usize, ServerError> {
    let body = match kind {
        RequestKind::GetInfo => Response::GetInfo(NodeInfo::default()),
        _ => Response::Status,
    };
    Ok(Reply { result, body }.encode(out)?)
}
