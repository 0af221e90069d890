//! A simulated cluster, sans IO: every node of the node list, up or down, in numbered
//! partitions, and the membership the local node sees, changed by corosync-vqsim's commands
//! (`vqsim/parser.c`: `up`, `down`, `split` / `move`, `join`, `qdevice`, `show`), and `leave`,
//! a clean stop vqsim does not have.
//!
//! The model is what totem would agree on, without the protocol: after each command, every
//! partition whose set of up nodes changed forms a new ring, and when the local node's
//! partition changed, [`Cluster::apply`] returns the new view ([`Change`]): the members (sorted
//! by node id, as totem's commit token lists them), the new ring id, and the nodes that joined
//! or left the local view. The adapter hands the members and ring id to the votequorum engine
//! (`QuorumEngine::set_membership_with`, with the NODEINFO messages of the other nodes'
//! engines), notifies libquorum trackers, and sets the
//! `runtime.members.<id>.*` CMAP keys ([`member_keys`]) as corosync's `exec/main.c` does on a
//! configuration change.
//!
//! ```
//! use corowire::server::cluster::{Cluster, Command};
//!
//! let mut cluster: Cluster = Cluster::new(1, &[1, 2, 3], &[1, 2, 3], 0)?;
//! assert_eq!(cluster.members(), [1, 2, 3]);
//! let change = cluster.apply(&Command::parse("down 3")?)?.membership.unwrap();
//! assert_eq!((&change.members[..], &change.left[..]), (&[1, 2][..], &[3][..]));
//! assert_eq!((change.ring_id.nodeid, change.ring_id.seq), (1, 13)); // corosync's 1.d
//! assert!(cluster.apply(&Command::parse("down 1")?).is_err()); // the local node
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Rules
//!
//! - Nodes are named by node id, optionally with a partition: `P:N[,N..]`; without `P:` the
//!   partition is 0 (vqsim's default). Only nodes of the node list exist.
//! - `up [P:]N[,N..] ...`: down nodes start, in partition `P`; an up node is an error.
//! - `down N[,N..]`: up nodes crash (a SIGKILL, a power loss: they tell nothing to the
//!   others), keeping their last ring sequence, as corosync keeps it in
//!   `/var/lib/corosync/ringid_*`; the local node cannot go down (its clients would lose the
//!   daemon).
//! - `leave N[,N..]`: up nodes stop cleanly (corosync's SIGTERM or `corosync-cfgtool -H`
//!   shutdown): the same change of the model as `down`, and [`Command::Leave`] tells the
//!   adapter to hand each node's votequorum LEAVING message to the nodes of its partition
//!   first (`QuorumEngine::leave_message`, `node_leaving`: with allow_downscale the expected
//!   votes go down to the nodes that stay).
//! - `split P:N[,N..] ...` (or `move`): up nodes move to partition `P`.
//! - `join P Q [R..]`: every node of partitions `Q`, `R`, ... moves to partition `P`.
//! - `qdevice on|off [P:]N[,N..] ...`: the node's quorum device is on or off (the partition,
//!   if given, must be the node's). The model records it; the votes are the votequorum
//!   engine's (`QuorumEngine::simulate_qdevice`, applied by the adapter).
//! - A command is checked whole before anything changes: an error changes nothing.
//! - Ring ids follow corosync 3.1.7's totem (`exec/totemsrp.c`), so the sequences are
//!   corosync's own (checked against the real cluster by `tests/cluster/diff`): a new ring's
//!   representative is its lowest member (the node that sends the commit token), and its
//!   sequence is the highest sequence any member brings, plus 4 (`token_ring_id_seq + 4`).
//!   Every node keeps the sequence of the last ring it was in (corosync stores it in
//!   `/var/lib/corosync/ringid_<nodeid>`, also while the node is down). A node that starts
//!   loads it, adds 1 (`main_iface_change_fn`: "Increase the ring_id sequence number") and
//!   first forms a ring of its own, at the loaded sequence plus 5, before it merges with the
//!   nodes it reaches: a restarted node can therefore raise the merged ring by 5 instead of 4.
//!   Nodes up at the start are fresh (sequence 0 stored): each forms its own ring at 5, and
//!   together they form one at 9.

use super::MAX_MEMBERS;
use crate::votequorum::RingId;
use core::fmt;
use heapless::Vec;

/// Node ids and partitions a command may name: corosync's `PROCESSOR_COUNT_MAX`.
pub const MAX_TARGETS: usize = MAX_MEMBERS;

/// How much a ring's sequence grows when it forms (totemsrp's `token_ring_id_seq + 4`).
const SEQ_STEP: u64 = 4;

/// How much a starting node adds to its stored sequence before forming its own ring: 1
/// (`main_iface_change_fn`), then [`SEQ_STEP`].
const START_STEP: u64 = 1 + SEQ_STEP;

/// One command, as corosync-vqsim's prompt takes it ([`Command::parse`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Command {
    /// `up [P:]N[,N..] ...`: start nodes in a partition.
    Up(Vec<Target, MAX_TARGETS>),
    /// `down N[,N..]`: crash nodes.
    Down(Vec<u32, MAX_TARGETS>),
    /// `leave N[,N..]`: stop nodes cleanly (not a vqsim command: vqsim's `down` is a crash).
    Leave(Vec<u32, MAX_TARGETS>),
    /// `split [P:]N[,N..] ...` or `move`: move up nodes to a partition.
    Split(Vec<Target, MAX_TARGETS>),
    /// `join P Q [R..]`: merge partitions `Q`, `R`, ... into `P` (the first).
    Join(Vec<u32, MAX_TARGETS>),
    /// `qdevice on|off [P:]N[,N..] ...`: switch the quorum device of nodes.
    Qdevice {
        /// `on` or `off`.
        on: bool,
        /// The nodes; the partition, when given, must be the node's.
        nodes: Vec<Target, MAX_TARGETS>,
    },
    /// `show`: print the model; changes nothing.
    Show,
}

/// A node named in a command, with the partition written before it (`P:N`; 0 without).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Target {
    /// The partition.
    pub partition: u32,
    /// The node id.
    pub nodeid: u32,
    /// Whether the partition was written (`P:`).
    pub explicit: bool,
}

/// Why a command was refused; the model did not change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CommandError {
    /// No command on the line.
    Empty,
    /// The first word is not a command.
    UnknownCommand,
    /// The arguments do not have the command's shape; the text is the usage.
    Usage(&'static str),
    /// A node id or partition is not a decimal number of 32 bits.
    BadNumber,
    /// More node ids or partitions than [`MAX_TARGETS`].
    TooMany,
    /// The node id is not in the node list.
    NoSuchNode(u32),
    /// The node is named twice in one command.
    Duplicate(u32),
    /// `up` of a node that is up.
    AlreadyUp(u32),
    /// The node is down (`down`, `split`, `qdevice` need it up).
    NotUp(u32),
    /// The command would take the local node down.
    LocalNode(u32),
    /// `qdevice` with `P:N` where node `N` is not in partition `P`.
    WrongPartition {
        /// The node.
        nodeid: u32,
        /// The partition it is in.
        partition: u32,
    },
    /// Building the model: more nodes than the model holds.
    Capacity,
    /// `join` of a partition no up node is in.
    NoSuchPartition(u32),
    /// `join` names the partition twice.
    DuplicatePartition(u32),
}

impl fmt::Display for CommandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty command"),
            Self::UnknownCommand => {
                f.write_str("unknown command (commands: up, down, leave, split, move, join, qdevice, show)")
            }
            Self::Usage(usage) => write!(f, "usage: {usage}"),
            Self::BadNumber => f.write_str("node ids and partitions are unsigned 32-bit decimal numbers"),
            Self::TooMany => write!(f, "more than {MAX_TARGETS} node ids or partitions"),
            Self::NoSuchNode(n) => write!(f, "node {n} is not in the node list"),
            Self::Duplicate(n) => write!(f, "node {n} is named twice"),
            Self::AlreadyUp(n) => write!(f, "node {n} is up already"),
            Self::NotUp(n) => write!(f, "node {n} is not up"),
            Self::LocalNode(n) => write!(
                f,
                "node {n} is the local node: taking it down would stop the daemon its clients \
                 talk to (split it away instead)"
            ),
            Self::WrongPartition { nodeid, partition } => {
                write!(f, "node {nodeid} is in partition {partition}")
            }
            Self::Capacity => f.write_str("more nodes than the model holds"),
            Self::NoSuchPartition(p) => write!(f, "no node is up in partition {p}"),
            Self::DuplicatePartition(p) => write!(f, "partition {p} is named twice"),
        }
    }
}

impl core::error::Error for CommandError {}

const UP_USAGE: &str = "up [P:]N[,N..] [[P:]N[,N..]]...";
const DOWN_USAGE: &str = "down N[,N..]";
const LEAVE_USAGE: &str = "leave N[,N..]";
const SPLIT_USAGE: &str = "split [P:]N[,N..] [[P:]N[,N..]]...";
const JOIN_USAGE: &str = "join P P [P]...";
const QDEVICE_USAGE: &str = "qdevice on|off [P:]N[,N..] [[P:]N[,N..]]...";

impl Command {
    /// Parses one command line (words separated by blanks).
    ///
    /// # Errors
    /// [`CommandError::Empty`], [`UnknownCommand`](CommandError::UnknownCommand),
    /// [`Usage`](CommandError::Usage), [`BadNumber`](CommandError::BadNumber),
    /// [`TooMany`](CommandError::TooMany).
    pub fn parse(line: &str) -> Result<Self, CommandError> {
        let mut words = line.split_ascii_whitespace();
        let name = words.next().ok_or(CommandError::Empty)?;
        let rest = || line.split_ascii_whitespace().skip(1);
        let require = |usage, ok: bool| if ok { Ok(()) } else { Err(CommandError::Usage(usage)) };
        match name {
            "up" => {
                let targets = targets(rest())?;
                require(UP_USAGE, !targets.is_empty())?;
                Ok(Self::Up(targets))
            }
            "down" | "leave" => {
                let mut nodes = Vec::new();
                for word in rest() {
                    for n in word.split(',') {
                        nodes.push(number(n)?).map_err(|_| CommandError::TooMany)?;
                    }
                }
                if name == "down" {
                    require(DOWN_USAGE, !nodes.is_empty())?;
                    Ok(Self::Down(nodes))
                } else {
                    require(LEAVE_USAGE, !nodes.is_empty())?;
                    Ok(Self::Leave(nodes))
                }
            }
            "split" | "move" => {
                let targets = targets(rest())?;
                require(SPLIT_USAGE, !targets.is_empty())?;
                Ok(Self::Split(targets))
            }
            "join" => {
                let mut parts = Vec::new();
                for word in rest() {
                    parts.push(number(word)?).map_err(|_| CommandError::TooMany)?;
                }
                require(JOIN_USAGE, parts.len() >= 2)?;
                Ok(Self::Join(parts))
            }
            "qdevice" => {
                let on = match words.next() {
                    Some("on") => true,
                    Some("off") => false,
                    _ => return Err(CommandError::Usage(QDEVICE_USAGE)),
                };
                let nodes = targets(rest().skip(1))?;
                require(QDEVICE_USAGE, !nodes.is_empty())?;
                Ok(Self::Qdevice { on, nodes })
            }
            "show" => {
                require("show", words.next().is_none())?;
                Ok(Self::Show)
            }
            _ => Err(CommandError::UnknownCommand),
        }
    }
}

fn number(text: &str) -> Result<u32, CommandError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CommandError::BadNumber);
    }
    text.parse().map_err(|_| CommandError::BadNumber)
}

/// `[P:]N[,N..]` words.
fn targets<'a>(words: impl Iterator<Item = &'a str>) -> Result<Vec<Target, MAX_TARGETS>, CommandError> {
    let mut out = Vec::new();
    for word in words {
        let (partition, nodes, explicit) = match word.split_once(':') {
            Some((p, nodes)) => (number(p)?, nodes, true),
            None => (0, word, false),
        };
        for n in nodes.split(',') {
            let target = Target { partition, nodeid: number(n)?, explicit };
            out.push(target).map_err(|_| CommandError::TooMany)?;
        }
    }
    Ok(out)
}

/// One node of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SimNode {
    /// The node id.
    pub nodeid: u32,
    /// Whether its corosync runs.
    pub up: bool,
    /// Its partition (kept while it is down; `up` sets it).
    pub partition: u32,
    /// Whether its quorum device is on.
    pub qdevice: bool,
    /// How often the local node saw it join (`runtime.members.<id>.join_count`; 0: never, and
    /// the node has no `runtime.members` keys).
    pub join_count: u32,
    /// The sequence of the last ring it was in (kept while it is down, as corosync's
    /// `ringid_<nodeid>` file; 0: never started).
    pub seq: u64,
}

/// The local node's new view after a command changed its partition.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Change<const NODES: usize> {
    /// The members, the local node included, by node id.
    pub members: Vec<u32, NODES>,
    /// The new ring's id.
    pub ring_id: RingId,
    /// Nodes that are members now and were not.
    pub joined: Vec<u32, NODES>,
    /// Nodes that were members and are not.
    pub left: Vec<u32, NODES>,
}

/// What a command did to the local node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Outcome<const NODES: usize> {
    /// The local node's new view, when its partition changed.
    pub membership: Option<Change<NODES>>,
    /// The local node's quorum device, when a `qdevice` command switched it.
    pub local_qdevice: Option<bool>,
}

/// The simulated cluster of at most `NODES` nodes. See the [module documentation](self).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Cluster<const NODES: usize = 64> {
    local: u32,
    /// In node-id order.
    nodes: Vec<SimNode, NODES>,
    /// The local view.
    members: Vec<u32, NODES>,
    ring_id: RingId,
}

impl<const NODES: usize> Cluster<NODES> {
    /// A cluster of the node list `nodelist`, with the nodes `up` up in partition 0 and the
    /// others down; `local` is the node whose view the server shows (it is always up). Every
    /// node has `stored` as its last ring sequence (corosync's `ringid_<nodeid>` file; 0 for a
    /// fresh start, as the harnesses have). The up nodes start: each forms its own ring (at
    /// `stored + 5`), and when there are several they form one more together (`+ 4`: 9 on a
    /// fresh start, as a real cluster started at once shows), represented by the lowest of
    /// them; each of them has joined the local view once.
    ///
    /// # Errors
    /// [`CommandError::NoSuchNode`] (`local` or a node of `up` is not in `nodelist`),
    /// [`CommandError::Capacity`] (more than `NODES` nodes).
    pub fn new(local: u32, nodelist: &[u32], up: &[u32], stored: u64) -> Result<Self, CommandError> {
        let mut nodes: Vec<SimNode, NODES> = Vec::new();
        for &nodeid in nodelist {
            if nodes.iter().all(|n| n.nodeid != nodeid) {
                let seq = stored;
                let node = SimNode { nodeid, up: false, partition: 0, qdevice: false, join_count: 0, seq };
                nodes.push(node).map_err(|_| CommandError::Capacity)?;
            }
        }
        nodes.sort_unstable_by_key(|n| n.nodeid);
        let mut cluster =
            Self { local, nodes, members: Vec::new(), ring_id: RingId { nodeid: local, seq: 0 } };
        let mut next = cluster.nodes.clone();
        for &id in up.iter().chain([&local]) {
            let node = find(&mut next, id)?;
            node.up = true;
        }
        cluster.commit(next);
        Ok(cluster)
    }

    /// The local node id.
    pub fn local(&self) -> u32 {
        self.local
    }

    /// Sets whether the local node's quorum device is on, when something other than a
    /// `qdevice` command switched it (a client unregistered it: `corosync-quorumtool -f`), so
    /// that `show` and the next `qdevice` command see the engine's device.
    pub fn set_local_qdevice(&mut self, on: bool) {
        let local = self.local;
        if let Some(node) = self.nodes.iter_mut().find(|n| n.nodeid == local) {
            node.qdevice = on;
        }
    }

    /// Every node, by node id.
    pub fn nodes(&self) -> &[SimNode] {
        &self.nodes
    }

    /// The local node's current members, by node id.
    pub fn members(&self) -> &[u32] {
        &self.members
    }

    /// The local node's current ring id.
    pub fn ring_id(&self) -> RingId {
        self.ring_id
    }

    /// The up nodes of `partition`, by node id.
    pub fn partition_members(&self, partition: u32) -> Vec<u32, NODES> {
        self.nodes.iter().filter(|n| n.up && n.partition == partition).map(|n| n.nodeid).collect()
    }

    /// The partitions that have up nodes, in increasing order.
    pub fn partitions(&self) -> Vec<u32, NODES> {
        let mut out: Vec<u32, NODES> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.up) {
            if !out.contains(&n.partition) {
                // Cannot fail: at most one partition per node.
                let _ = out.push(n.partition);
            }
        }
        out.sort_unstable();
        out
    }

    /// Applies `cmd` (checked whole first). [`Command::Show`] changes nothing.
    ///
    /// # Errors
    /// Any [`CommandError`] about the nodes named; the model is unchanged.
    pub fn apply(&mut self, cmd: &Command) -> Result<Outcome<NODES>, CommandError> {
        let mut next = self.nodes.clone();
        let mut local_qdevice = None;
        let mut seen: Vec<u32, MAX_TARGETS> = Vec::new();
        let mut once = |nodeid: u32| {
            if seen.contains(&nodeid) {
                return Err(CommandError::Duplicate(nodeid));
            }
            seen.push(nodeid).map_err(|_| CommandError::TooMany)
        };
        match cmd {
            Command::Up(targets) => {
                for t in targets {
                    once(t.nodeid)?;
                    let node = find(&mut next, t.nodeid)?;
                    if node.up {
                        return Err(CommandError::AlreadyUp(t.nodeid));
                    }
                    node.up = true;
                    node.partition = t.partition;
                }
            }
            Command::Down(ids) | Command::Leave(ids) => {
                for &id in ids {
                    once(id)?;
                    if id == self.local {
                        return Err(CommandError::LocalNode(id));
                    }
                    up_node(&mut next, id)?.up = false;
                }
            }
            Command::Split(targets) => {
                for t in targets {
                    once(t.nodeid)?;
                    up_node(&mut next, t.nodeid)?.partition = t.partition;
                }
            }
            Command::Join(parts) => {
                let Some((into, from)) = parts.split_first() else {
                    return Err(CommandError::Usage(JOIN_USAGE));
                };
                for (i, p) in parts.iter().enumerate() {
                    if parts[..i].contains(p) {
                        return Err(CommandError::DuplicatePartition(*p));
                    }
                    if !next.iter().any(|n| n.up && n.partition == *p) {
                        return Err(CommandError::NoSuchPartition(*p));
                    }
                }
                for n in next.iter_mut().filter(|n| n.up && from.contains(&n.partition)) {
                    n.partition = *into;
                }
            }
            Command::Qdevice { on, nodes } => {
                for t in nodes {
                    once(t.nodeid)?;
                    let node = up_node(&mut next, t.nodeid)?;
                    if t.explicit && node.partition != t.partition {
                        return Err(CommandError::WrongPartition {
                            nodeid: t.nodeid,
                            partition: node.partition,
                        });
                    }
                    node.qdevice = *on;
                    if t.nodeid == self.local {
                        local_qdevice = Some(*on);
                    }
                }
            }
            Command::Show => {}
        }
        let membership = self.commit(next);
        Ok(Outcome { membership, local_qdevice })
    }

    /// Makes `next` the model: every partition whose up nodes changed forms a new ring; the
    /// local view's change, if any.
    fn commit(&mut self, mut next: Vec<SimNode, NODES>) -> Option<Change<NODES>> {
        let before = core::mem::replace(&mut self.nodes, next.clone());
        let old_partition = |id: u32| before.iter().find(|n| n.nodeid == id && n.up).map(|n| n.partition);
        // A node that starts forms a ring of its own first.
        for n in next.iter_mut().filter(|n| n.up && old_partition(n.nodeid).is_none()) {
            n.seq = n.seq.saturating_add(START_STEP);
        }
        for i in 0..next.len() {
            let node = next[i];
            if !node.up || next[..i].iter().any(|n| n.up && n.partition == node.partition) {
                continue;
            }
            let now = self.partition_members(node.partition);
            // The ring stays when its members are one ring already: the same nodes that shared
            // a partition before, or a node that started alone.
            let same = match old_partition(now[0]) {
                Some(p) => {
                    let was = before.iter().filter(|n| n.up && n.partition == p).map(|n| n.nodeid);
                    was.eq(now.iter().copied())
                }
                None => now.len() == 1,
            };
            if same {
                continue;
            }
            let seq = next.iter().filter(|n| now.contains(&n.nodeid)).map(|n| n.seq).max().unwrap_or(0);
            let seq = seq.saturating_add(SEQ_STEP);
            for n in next.iter_mut().filter(|n| now.contains(&n.nodeid)) {
                n.seq = seq;
            }
        }
        self.nodes = next;
        let partition = self.nodes.iter().find(|n| n.nodeid == self.local).map_or(0, |n| n.partition);
        let members = self.partition_members(partition);
        if members == self.members {
            return None;
        }
        let joined: Vec<u32, NODES> = members.iter().copied().filter(|m| !self.members.contains(m)).collect();
        let left: Vec<u32, NODES> = self.members.iter().copied().filter(|m| !members.contains(m)).collect();
        for n in self.nodes.iter_mut().filter(|n| joined.contains(&n.nodeid)) {
            n.join_count = n.join_count.saturating_add(1);
        }
        let seq = self.nodes.iter().find(|n| n.nodeid == self.local).map_or(0, |n| n.seq);
        self.ring_id = RingId { nodeid: members.first().copied().unwrap_or(self.local), seq };
        self.members.clone_from(&members);
        Some(Change { members, ring_id: self.ring_id, joined, left })
    }
}

fn find<const NODES: usize>(nodes: &mut Vec<SimNode, NODES>, id: u32) -> Result<&mut SimNode, CommandError> {
    nodes.iter_mut().find(|n| n.nodeid == id).ok_or(CommandError::NoSuchNode(id))
}

fn up_node<const NODES: usize>(
    nodes: &mut Vec<SimNode, NODES>,
    id: u32,
) -> Result<&mut SimNode, CommandError> {
    let node = find(nodes, id)?;
    if !node.up {
        return Err(CommandError::NotUp(id));
    }
    Ok(node)
}

impl<const NODES: usize> Cluster<NODES> {
    /// Writes the `show` text: one line per node (`node N: up, partition P, ring R.S[,
    /// qdevice][, local]`, with the ring as corosync-quorumtool prints it, or `node N: down`),
    /// then one per partition with up nodes (`partition P: nodes [a b ..]`, followed by
    /// `, quorate yes|no` when `quorate` knows it for those members).
    ///
    /// # Errors
    /// Those of `out`.
    pub fn show<W: fmt::Write>(&self, out: &mut W, quorate: impl Fn(&[u32]) -> Option<bool>) -> fmt::Result {
        for n in &self.nodes {
            write!(out, "node {}: ", n.nodeid)?;
            if n.up {
                let rep = self.partition_members(n.partition).first().copied().unwrap_or(n.nodeid);
                write!(out, "up, partition {}, ring {rep}.{:x}", n.partition, n.seq)?;
                if n.qdevice {
                    out.write_str(", qdevice")?;
                }
            } else {
                out.write_str("down")?;
            }
            if n.nodeid == self.local {
                out.write_str(", local")?;
            }
            out.write_str("\n")?;
        }
        for p in self.partitions() {
            let members = self.partition_members(p);
            write!(out, "partition {p}: nodes [")?;
            for (i, id) in members.iter().enumerate() {
                write!(out, "{}{id}", if i == 0 { "" } else { " " })?;
            }
            out.write_str("]")?;
            if let Some(q) = quorate(&members) {
                write!(out, ", quorate {}", if q { "yes" } else { "no" })?;
            }
            out.write_str("\n")?;
        }
        Ok(())
    }
}

/// [`Cluster::show`] without quorum.
impl<const NODES: usize> fmt::Display for Cluster<NODES> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.show(f, |_| None)
    }
}

/// The `runtime.members.<nodeid>.*` keys corosync 3.1.7 sets (`exec/main.c`) when `node`
/// joins (`joined`) or leaves the local view, in the order it sets them, as
/// `(suffix after runtime.members.<nodeid>., value)`: a first join sets `ip` (the `ip`
/// argument: `r(0) ip(ADDR) ` per link), `join_count` (u32 1), `status` (`joined`) and
/// `config_version` (u64 0), in that order (seen on corosync 3.1.7 by a `-T` tracker); a
/// later join `join_count` and `status`; a leave `status` (`left`).
/// `node.join_count` is the count after the change ([`Cluster::apply`] counts it).
pub fn member_keys<'a>(
    node: &SimNode,
    joined: bool,
    ip: &'a str,
) -> impl Iterator<Item = (&'static str, crate::cmap::Value<'a>)> {
    use crate::cmap::Value;
    let first = joined && node.join_count == 1;
    let status: &'static str = if joined { "joined" } else { "left" };
    let keys = [
        (first, "ip", Value::String(ip.as_bytes())),
        (joined, "join_count", Value::UInt32(node.join_count)),
        (true, "status", Value::String(status.as_bytes())),
        (first, "config_version", Value::UInt64(0)),
    ];
    keys.into_iter().filter(|(on, ..)| *on).map(|(_, k, v)| (k, v))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(up: &[u32]) -> Cluster<8> {
        Cluster::new(1, &[3, 1, 2], up, 0).unwrap()
    }

    fn apply(c: &mut Cluster<8>, line: &str) -> Result<Option<Change<8>>, CommandError> {
        Ok(c.apply(&Command::parse(line)?)?.membership)
    }

    #[test]
    fn parses_vqsim_vocabulary() {
        let t = |partition, nodeid, explicit| Target { partition, nodeid, explicit };
        assert_eq!(
            Command::parse(" up 2,3 "),
            Ok(Command::Up(Vec::from_slice(&[t(0, 2, false), t(0, 3, false)]).unwrap()))
        );
        assert_eq!(
            Command::parse("split 1:2,3 0:1"),
            Ok(Command::Split(Vec::from_slice(&[t(1, 2, true), t(1, 3, true), t(0, 1, true)]).unwrap()))
        );
        assert_eq!(Command::parse("move 2"), Ok(Command::Split(Vec::from_slice(&[t(0, 2, false)]).unwrap())));
        assert_eq!(Command::parse("join 0 1"), Ok(Command::Join(Vec::from_slice(&[0, 1]).unwrap())));
        assert_eq!(Command::parse("down 3,2"), Ok(Command::Down(Vec::from_slice(&[3, 2]).unwrap())));
        assert_eq!(Command::parse("leave 2 3"), Ok(Command::Leave(Vec::from_slice(&[2, 3]).unwrap())));
        assert_eq!(Command::parse("leave"), Err(CommandError::Usage(LEAVE_USAGE)));
        assert!(matches!(Command::parse("qdevice off 1"), Ok(Command::Qdevice { on: false, .. })));
        assert_eq!(Command::parse("show"), Ok(Command::Show));
        assert_eq!(Command::parse("  "), Err(CommandError::Empty));
        assert_eq!(Command::parse("reboot 1"), Err(CommandError::UnknownCommand));
        assert_eq!(Command::parse("join 1"), Err(CommandError::Usage(JOIN_USAGE)));
        assert_eq!(Command::parse("qdevice maybe 1"), Err(CommandError::Usage(QDEVICE_USAGE)));
        assert_eq!(Command::parse("down"), Err(CommandError::Usage(DOWN_USAGE)));
        assert_eq!(Command::parse("show 1"), Err(CommandError::Usage("show")));
        assert_eq!(Command::parse("up 2,,3"), Err(CommandError::BadNumber));
        for bad in ["down x", "down -1", "up 1:", "up :1", "down 4294967296", "join 0 +1", "down 2,"] {
            let got = Command::parse(bad);
            assert!(matches!(got, Err(CommandError::BadNumber | CommandError::Usage(_))), "{bad}: {got:?}");
        }
    }

    #[test]
    fn a_node_leaves_and_comes_back_with_a_new_ring_each_time() {
        let mut c = cluster(&[1, 2, 3]);
        assert_eq!((c.members(), c.ring_id()), (&[1, 2, 3][..], RingId { nodeid: 1, seq: 9 }));
        let change = apply(&mut c, "down 3").unwrap().unwrap();
        assert_eq!(
            (&change.members[..], &change.joined[..], &change.left[..]),
            (&[1, 2][..], &[][..], &[3][..])
        );
        assert_eq!(change.ring_id, RingId { nodeid: 1, seq: 13 });
        let change = apply(&mut c, "up 3").unwrap().unwrap();
        assert_eq!((&change.members[..], &change.joined[..]), (&[1, 2, 3][..], &[3][..]));
        // Node 3 brings 9 + 5 = 14, its own ring's, above the others' 13: 14 + 4.
        assert_eq!(change.ring_id, RingId { nodeid: 1, seq: 18 });
        assert_eq!(c.nodes().iter().map(|n| n.join_count).collect::<Vec<_, 8>>(), [1, 1, 2]);
    }

    #[test]
    fn leave_changes_the_model_as_down_does() {
        let (mut left, mut crashed) = (cluster(&[1, 2, 3]), cluster(&[1, 2, 3]));
        let change = apply(&mut left, "leave 3").unwrap();
        assert_eq!(change, apply(&mut crashed, "down 3").unwrap());
        assert_eq!(change.map(|c| c.left), Some(Vec::from_slice(&[3]).unwrap()));
        assert_eq!(left, crashed);
    }

    /// The sequences corosync 3.1.7 showed on node 1 of the real cluster (lose-two, then
    /// partition; `tests/cluster/expected/`), 0x16 being a restarted node's own ring + 4.
    #[test]
    fn ring_sequences_are_corosyncs() {
        let mut c = cluster(&[1, 2, 3]);
        let mut seqs: Vec<u64, 8> = Vec::new();
        seqs.push(c.ring_id().seq).unwrap();
        for line in ["down 3", "down 2", "up 2", "up 3", "split 1:2,3", "join 0 1"] {
            seqs.push(apply(&mut c, line).unwrap().unwrap().ring_id.seq).unwrap();
        }
        assert_eq!(seqs, [0x9, 0xd, 0x11, 0x16, 0x1a, 0x1e, 0x22]);
        // A node started alone forms its own ring only: a fresh one at 5.
        let mut c = cluster(&[]);
        assert_eq!(c.ring_id(), RingId { nodeid: 1, seq: 5 });
        apply(&mut c, "up 1:2").unwrap();
        assert_eq!(c.nodes()[1].seq, 5);
    }

    #[test]
    fn partitions_split_and_join() {
        let mut c = cluster(&[1, 2, 3]);
        let change = apply(&mut c, "split 1:1").unwrap().unwrap();
        assert_eq!((&change.members[..], &change.left[..]), (&[1][..], &[2, 3][..]));
        // The other side formed its own ring, represented by its lowest node.
        assert_eq!(c.nodes()[1].seq, 13);
        // Changes in the other partition do not reach the local view.
        assert_eq!(apply(&mut c, "down 3"), Ok(None));
        assert_eq!(apply(&mut c, "up 3"), Ok(None));
        assert_eq!(c.nodes()[2].seq, 22);
        let change = apply(&mut c, "join 1 0").unwrap().unwrap();
        assert_eq!((&change.members[..], &change.joined[..]), (&[1, 2, 3][..], &[2, 3][..]));
        // 4 more than the highest sequence any member knew.
        assert_eq!(change.ring_id, RingId { nodeid: 1, seq: 26 });
        // Moving a node to the partition it is in changes nothing.
        assert_eq!(apply(&mut c, "split 1:2"), Ok(None));
        assert_eq!(c.partitions(), [1]);
        assert_eq!(apply(&mut c, "join 1 7"), Err(CommandError::NoSuchPartition(7)));
        assert_eq!(apply(&mut c, "join 0 1"), Err(CommandError::NoSuchPartition(0)));
        assert!(apply(&mut c, "split 2:3").is_ok());
        assert_eq!(apply(&mut c, "join 1 2 2"), Err(CommandError::DuplicatePartition(2)));
    }

    #[test]
    fn a_cold_start_has_only_the_up_nodes() {
        let mut c = cluster(&[2]);
        assert_eq!(c.members(), [1, 2]);
        assert_eq!(c.nodes()[2].join_count, 0);
        assert_eq!(apply(&mut c, "down 3"), Err(CommandError::NotUp(3)));
        assert_eq!(apply(&mut c, "up 2"), Err(CommandError::AlreadyUp(2)));
        assert!(apply(&mut c, "up 3").unwrap().is_some());
        assert_eq!(c.nodes()[2].join_count, 1);
    }

    #[test]
    fn refused_commands_change_nothing() {
        let mut c = cluster(&[1, 2, 3]);
        let before = c.clone();
        assert_eq!(apply(&mut c, "down 3,1"), Err(CommandError::LocalNode(1)));
        assert_eq!(apply(&mut c, "leave 1"), Err(CommandError::LocalNode(1)));
        assert_eq!(apply(&mut c, "down 2,2"), Err(CommandError::Duplicate(2)));
        assert_eq!(apply(&mut c, "split 1:2 1:9"), Err(CommandError::NoSuchNode(9)));
        assert_eq!(
            apply(&mut c, "qdevice on 1:2"),
            Err(CommandError::WrongPartition { nodeid: 2, partition: 0 })
        );
        assert_eq!(c, before);
        assert!(Cluster::<8>::new(4, &[1], &[], 0).is_err());
        assert_eq!(Cluster::<1>::new(1, &[1, 2], &[], 0), Err(CommandError::Capacity));
    }

    #[test]
    fn qdevice_of_the_local_node_is_reported() {
        let mut c = cluster(&[1, 2, 3]);
        let outcome = c.apply(&Command::parse("qdevice on 0:1,2").unwrap()).unwrap();
        assert_eq!((outcome.membership, outcome.local_qdevice), (None, Some(true)));
        let outcome = c.apply(&Command::parse("qdevice off 2").unwrap()).unwrap();
        assert_eq!(outcome.local_qdevice, None);
    }

    #[test]
    fn show_lists_nodes_and_partitions() {
        let mut c = cluster(&[1, 2]);
        apply(&mut c, "split 1:2").unwrap();
        let mut text = heapless::String::<256>::new();
        fmt::write(&mut text, format_args!("{c}")).unwrap();
        assert_eq!(
            text,
            "node 1: up, partition 0, ring 1.d, local\nnode 2: up, partition 1, ring 2.d\nnode 3: down\n\
             partition 0: nodes [1]\npartition 1: nodes [2]\n"
        );
        text.clear();
        c.show(&mut text, |members| Some(members == [1])).unwrap();
        assert!(
            text.ends_with("partition 0: nodes [1], quorate yes\npartition 1: nodes [2], quorate no\n"),
            "{text}"
        );
    }

    proptest::proptest! {
        // Under miri (CI's `cargo miri test`) a few cases: each one is slow there.
        #![proptest_config(proptest::test_runner::Config {
            cases: if cfg!(miri) { 4 } else { 512 },
            failure_persistence: if cfg!(miri) { None } else { proptest::test_runner::Config::default().failure_persistence },
            ..Default::default()
        })]

        /// Any line, even of vqsim's words with odd numbers, is applied or refused, never a
        /// panic; a refusal changes nothing; the local node stays up and in its own view.
        #[test]
        fn any_line_is_applied_or_refused(
            lines in proptest::collection::vec("(up|down|leave|split|move|join|qdevice on|qdevice off|show|x)( [0-9:,]{0,8}){0,3}", 1..12)
        ) {
            let mut c = cluster(&[1, 2]);
            for line in &lines {
                let before = c.clone();
                match Command::parse(line).and_then(|cmd| c.apply(&cmd)) {
                    Ok(_) => {}
                    Err(e) => {
                        proptest::prop_assert_eq!(&c, &before);
                        let mut text = heapless::String::<256>::new();
                        let written = fmt::write(&mut text, format_args!("{}", e)).is_ok();
                        proptest::prop_assert!(written && !text.is_empty());
                    }
                }
                proptest::prop_assert!(c.members().contains(&1));
                proptest::prop_assert!(c.ring_id().seq >= before.ring_id().seq);
            }
        }
    }

    #[test]
    fn member_keys_follow_corosync() {
        let mut node = SimNode { nodeid: 3, up: true, partition: 0, qdevice: false, join_count: 1, seq: 0 };
        let keys = |n: &SimNode, joined| {
            member_keys(n, joined, "r(0) ip(10.0.0.3) ").map(|(k, _)| k).collect::<Vec<_, 4>>()
        };
        assert_eq!(keys(&node, true), ["ip", "join_count", "status", "config_version"]);
        assert_eq!(keys(&node, false), ["status"]);
        node.join_count = 2;
        assert_eq!(keys(&node, true), ["join_count", "status"]);
        let (_, status) = member_keys(&node, false, "").last().unwrap();
        assert_eq!(status, crate::cmap::Value::String(b"left"));
    }
}
