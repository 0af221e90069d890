//! The simulated cluster's I/O: the model (`corowire::server::cluster`) applied to the
//! engines, and its control socket (`corowire serve --control PATH`, driven by `corowire sim`).
//!
//! # The model
//!
//! [`Server::bind`] builds a cluster of every node of the node list (or of the local node
//! alone), with [`ServerConfig::up`] up (default: all) in partition 0. Its local node is the
//! one whose view the server shows. The initial view is given to the votequorum engine
//! (`set_membership`) and to CMAP as the `runtime.members.<id>.*` keys corosync keeps
//! (`config_version`, `ip` as `r(0) ip(ADDR) ` per link, `join_count`, `status`).
//!
//! After each command that changes the local node's partition, before the command's reply:
//! the votequorum engine takes the new members and ring id (its trackers get their
//! notifications), every libquorum tracker gets the new view, and the `runtime.members` keys
//! of the nodes that joined or left change with their CMAP track events. All of them are
//! queued to the clients' event channels before the reply is written; except, when a client's
//! quorum device holds the sync (`QuorumEngine::sync_waiting`), votequorum's QUORUM
//! notification and libquorum's, which follow when the device polls or the sync times out,
//! as corosync 3.1.7 sends them.
//!
//! `leave` stops nodes as `down` does, after handing each one's votequorum LEAVING message
//! (with allow_downscale) to the nodes of its partition: the local engine (its
//! notifications) and the other nodes' states.
//!
//! `qdevice on|off` switches a simulated quorum device (`QuorumEngine::simulate_qdevice`,
//! corosync-vqsim's): on the local node in the votequorum engine, with its notifications, the
//! `runtime.votequorum` keys and a libquorum notification when quorate-ness changed or a held
//! sync ended (the simulated device polls at once); on the other nodes in their shadow states
//! (`show`'s quorate column) and in the flags the local engine shows for them
//! (`QuorumEngine::set_remote_qdevice`: `corosync-quorumtool -l` prints `A,V,NMW`). When the
//! local engine refuses (a client's device registered under another name, the device disabled
//! by the configuration, `off` with no device) the whole command is refused and nothing
//! changes.
//!
//! # The control socket
//!
//! A Unix stream socket at the path given, mode 0600, removed when the server is dropped. A
//! peer whose uid (`SO_PEERCRED`) is not the server's is closed at once. A peer sends
//! commands, one per line (corosync-vqsim's: `up`, `down`, `split`/`move`, `join`,
//! `qdevice`, `show`; and `leave`; see `corowire::server::cluster`), at most 4096 bytes each; for each the
//! server writes the command's output lines (only `show` has some) and then one status line:
//! `ok`, or `error: ` and what was wrong. The peer may close after its last reply.

use core::fmt::Write as _;
use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use corowire::server::cluster::{member_keys, Change, Cluster, Command, CommandError};
use corowire::server::votequorum::{NodeMessage, QuorumConfig, QuorumEngine, Reconfigure};
use corowire::server::ServerError;
use corowire::time::Instant;
use corowire::value::OwnedValue;
use corowire::votequorum::{NodeState, RingId};
use nix::poll::PollFlags;

use super::{drain, Server, ServerStartError, CMAP_SERVICE, MAX_NODES, QUORUM_LIB_SERVICE};

/// The longest command line.
const MAX_LINE: usize = 4096;
/// Replies a peer may leave unread before it is dropped.
const MAX_OUTPUT: usize = 1 << 20;
/// Control connections at once; a newcomer beyond them is closed at once.
const MAX_PEERS: usize = 64;
/// Bytes read from one peer per wake-up (`poll` wakes the server again for the rest).
const READ_PER_WAKE: usize = 64 * 1024;

/// The votequorum state of another up node of the simulation (for `show`): nobody connects,
/// so it has no room for connections or notifications.
type Shadow = QuorumEngine<1, MAX_NODES, 1, 64>;

/// The simulated cluster and its control socket.
#[derive(Debug)]
pub(super) struct Sim {
    cluster: Cluster<MAX_NODES>,
    /// The local node's quorum configuration, and every node's votes, for the shadows.
    quorum: QuorumConfig,
    votes: Vec<(u32, u32)>,
    /// The votequorum state of each other up node, as its own corosync would have it (a
    /// node that comes up starts afresh); their NODEINFO messages reach the local engine when
    /// partitions change, and the local engine's reconfigure messages reach those of its
    /// partition ([`Sim::reconfigure`]).
    shadows: BTreeMap<u32, Box<Shadow>>,
    /// `runtime.members.<id>.ip` of each node.
    ips: BTreeMap<u32, String>,
    /// The nodes `up` refuses ([`ServerConfig::never_join`](super::ServerConfig::never_join)).
    pub(super) never_join: Vec<u32>,
    socket: Option<ControlSocket>,
    peers: Vec<Peer>,
}

#[derive(Debug)]
struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A connected `corowire sim`.
#[derive(Debug)]
struct Peer {
    sock: UnixStream,
    /// The start of the line being received (at most [`MAX_LINE`] bytes).
    input: Vec<u8>,
    /// Complete lines received, each `Err(())` when it was longer than [`MAX_LINE`].
    lines: Vec<Result<Vec<u8>, ()>>,
    /// The line being received is too long: its bytes are dropped up to its newline.
    discarding: bool,
    output: Vec<u8>,
    /// The peer closed its side: close once the output is written.
    eof: bool,
    dead: bool,
}

impl Peer {
    /// A newly accepted peer: nothing read or to write yet.
    fn new(sock: UnixStream) -> Self {
        Self {
            sock,
            input: Vec::new(),
            lines: Vec::new(),
            discarding: false,
            output: Vec::new(),
            eof: false,
            dead: false,
        }
    }
}

impl Sim {
    /// The model of `nodelist` (`(nodeid, ring addresses by link)`; the local node is added,
    /// on loopback, when missing) seen from `local`, with `up` up, every node's last ring
    /// sequence `stored` (see [`Cluster::new`]), and the control socket at `control`.
    pub(super) fn new(
        local: u32,
        nodelist: &[(u32, Vec<String>)],
        up: &[u32],
        stored: u64,
        control: Option<&Path>,
    ) -> Result<Self, ServerStartError> {
        let mut ips: BTreeMap<u32, String> =
            nodelist.iter().map(|(id, addrs)| (*id, ip_text(addrs))).collect();
        ips.entry(local).or_insert_with(|| ip_text(&["127.0.0.1".to_owned()]));
        let ids: Vec<u32> = ips.keys().copied().collect();
        let cluster =
            Cluster::new(local, &ids, up, stored).map_err(|e| ServerStartError::Sim(e.to_string()))?;
        let socket = control.map(bind_control).transpose()?;
        Ok(Self {
            cluster,
            quorum: QuorumConfig::default(),
            votes: Vec::new(),
            shadows: BTreeMap::new(),
            ips,
            never_join: Vec::new(),
            socket,
            peers: Vec::new(),
        })
    }

    /// Sets the quorum configuration the other nodes' votequorum states are built from:
    /// the local node's, and the votes of each node (others have 1).
    pub(super) fn set_quorum_model(&mut self, quorum: QuorumConfig, votes: Vec<(u32, u32)>, now: Instant) {
        self.quorum = quorum;
        self.votes = votes;
        self.shadows.clear();
        self.start_shadows(now);
        self.refresh_shadows(now, &[]);
    }

    /// Brings the other nodes' votequorum states up to the model's up nodes: forgets the down
    /// nodes' states, gives a node that came up a fresh one, and runs the timers that are due
    /// at `now` (last_man_standing's window: nobody watches a shadow, so its timer runs only
    /// when its state is about to be read).
    fn start_shadows(&mut self, now: Instant) {
        let local = self.cluster.local();
        let up: Vec<u32> =
            self.cluster.nodes().iter().filter(|n| n.up && n.nodeid != local).map(|n| n.nodeid).collect();
        self.shadows.retain(|id, _| up.contains(id));
        for id in up {
            let shadow = self.shadows.entry(id).or_insert_with(|| new_shadow(self.quorum, &self.votes, id));
            // Cannot be OutboxFull: nobody connects to a shadow, so nothing is queued.
            let _ = shadow.handle_timeout(now);
        }
    }

    /// The NODEINFO message of every up node (`local` for the local node), as each sends it
    /// when its partition forms a new ring.
    fn messages(&self, local: NodeMessage) -> Vec<NodeMessage> {
        core::iter::once(local).chain(self.shadows.values().map(|s| s.node_message())).collect()
    }

    /// Applies the local node's reconfigure message `r` to the other nodes of its partition,
    /// as corosync multicasts it there.
    fn reconfigure(&mut self, r: Reconfigure, now: Instant) {
        self.multicast(self.cluster.local(), now, |shadow| shadow.apply_reconfigure(r));
    }

    /// Runs `deliver` on the votequorum state of every other node in the partition of node
    /// `sender` (after the timers due at `now`), as corosync's multicast reaches them.
    fn multicast(
        &mut self,
        sender: u32,
        now: Instant,
        mut deliver: impl FnMut(&mut Shadow) -> Result<(), ServerError>,
    ) {
        let partition = self.cluster.nodes().iter().find(|n| n.nodeid == sender).map_or(0, |n| n.partition);
        let members = self.cluster.partition_members(partition);
        for (_, shadow) in self.shadows.iter_mut().filter(|(id, _)| **id != sender && members.contains(id)) {
            // Cannot be OutboxFull: nobody connects to a shadow, so nothing is queued.
            let _ = shadow.handle_timeout(now);
            let _ = deliver(shadow);
        }
    }

    /// The LEAVING message node `nodeid` sends when it stops cleanly
    /// (`QuorumEngine::leave_message`: with allow_downscale), from its votequorum state.
    fn leave_message(&self, nodeid: u32) -> Option<NodeMessage> {
        self.shadows.get(&nodeid).and_then(|s| s.leave_message())
    }

    /// Gives every other up node's votequorum state its partition's members when they
    /// changed, with the members' `messages` ([`Sim::messages`], taken before any node saw
    /// the change).
    fn refresh_shadows(&mut self, now: Instant, messages: &[NodeMessage]) {
        for (&id, shadow) in &mut self.shadows {
            let Some(node) = self.cluster.nodes().iter().find(|n| n.nodeid == id) else { continue };
            let members = self.cluster.partition_members(node.partition);
            let mut known = shadow.member_ids();
            known.sort_unstable();
            if known != members {
                let ring_id = RingId { nodeid: members.first().copied().unwrap_or(id), seq: node.seq };
                // Cannot be OutboxFull: nobody connects to a shadow, so nothing is queued.
                let _ = shadow.set_membership_with(&members, ring_id, now, messages);
            }
            if shadow.simulated_qdevice() != node.qdevice {
                // Refused (a device disabled by the configuration) leaves the node without one.
                let _ = shadow.simulate_qdevice(node.qdevice);
            }
        }
    }

    /// Whether the partition of `members` is quorate: the local engine's answer for the local
    /// node's partition (`local_quorate`), else its lowest node's shadow's.
    fn quorate(&self, members: &[u32], local_quorate: bool) -> Option<bool> {
        if members.contains(&self.cluster.local()) {
            return Some(local_quorate);
        }
        self.shadows.get(members.first()?).map(|s| s.is_quorate())
    }

    /// The `runtime.members` keys of the initial view, to set at start.
    pub(super) fn initial_keys(&self) -> Vec<(String, OwnedValue)> {
        let mut out = Vec::new();
        for node in self.cluster.nodes().iter().filter(|n| self.cluster.members().contains(&n.nodeid)) {
            let ip = self.ips.get(&node.nodeid).map_or("", String::as_str);
            for (suffix, value) in member_keys(node, true, ip) {
                out.push((format!("runtime.members.{}.{suffix}", node.nodeid), OwnedValue::from(value)));
            }
        }
        out
    }

    /// The initial members and ring id, for the votequorum engine.
    pub(super) fn initial_view(&self) -> (&[u32], RingId) {
        (self.cluster.members(), self.cluster.ring_id())
    }

    /// The descriptors to poll and what for: the listener, then each peer.
    /// The descriptors to poll: the control socket first (not read for new peers while
    /// `resting` after a failed `accept`), then each peer.
    pub(super) fn poll_fds(&self, resting: bool) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let accept = if resting { PollFlags::empty() } else { PollFlags::POLLIN };
        let listener = self.socket.iter().map(|s| (s.listener.as_fd(), accept));
        let peers = self.peers.iter().map(|p| {
            let mut flags = if p.eof { PollFlags::empty() } else { PollFlags::POLLIN };
            if !p.output.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            (p.sock.as_fd(), flags)
        });
        listener.chain(peers).collect()
    }
}

/// A fresh votequorum state for node `nodeid`: the local configuration with its id and votes,
/// the expected votes the local node started with (`quorum.expected_votes`, else the
/// nodelist's sum, as `votequorum_readconfig`), every other node known and dead.
fn new_shadow(quorum: QuorumConfig, votes: &[(u32, u32)], nodeid: u32) -> Box<Shadow> {
    let votes_of = |id: u32| votes.iter().find(|v| v.0 == id).map_or(1, |v| v.1);
    let expected_votes = match quorum.expected_votes {
        0 => votes.iter().fold(0u32, |sum, v| sum.wrapping_add(v.1)),
        set => set,
    };
    let cfg = QuorumConfig { nodeid, votes: votes_of(nodeid), expected_votes, ..quorum };
    // Built as the local engine is from the same node list (a quorum device's computed votes
    // included); a list the engine refuses falls back to the summed expected votes.
    let configured = Shadow::configure(QuorumConfig { nodeid, ..quorum }, votes, &mut |_| {});
    let mut shadow = Box::new(configured.unwrap_or_else(|_| Shadow::new(cfg)));
    // A full table only leaves the nodes out: the shadow is for `show`.
    let _ = shadow.add_nodes(votes.iter().copied().filter(|v| v.0 != nodeid), NodeState::DEAD);
    shadow
}

/// Why node `id` cannot be up.
pub(super) fn never_joins(id: u32) -> String {
    format!("node {id} has no ring0_addr in the node list: corosync can never reach it, it never joins")
}

/// `r(N) ip(ADDR) ` for each link, as corosync's `totem_ifaces_print`.
fn ip_text(addrs: &[String]) -> String {
    addrs.iter().enumerate().fold(String::new(), |mut s, (link, addr)| {
        let _ = write!(s, "r({link}) ip({addr}) ");
        s
    })
}

/// Listens at `path` (mode 0600); a stale socket file nobody listens on is replaced.
fn bind_control(path: &Path) -> Result<ControlSocket, ServerStartError> {
    let error = |what: &str, e: std::io::Error| {
        ServerStartError::Control(format!("control socket {}: {what}: {e}", path.display()))
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServerStartError::Control(format!(
                "control socket {}: exists and is not a socket",
                path.display()
            )));
        }
        if UnixStream::connect(path).is_ok() {
            return Err(ServerStartError::Control(format!(
                "control socket {}: another server listens on it",
                path.display()
            )));
        }
        std::fs::remove_file(path).map_err(|e| error("cannot remove the stale socket", e))?;
    }
    let listener = UnixListener::bind(path).map_err(|e| error("cannot bind", e))?;
    let socket = ControlSocket { listener, path: path.to_owned() };
    // Peers of another uid are refused at accept; the mode keeps them from connecting at all.
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|e| error("chmod", e))?;
    socket.listener.set_nonblocking(true).map_err(|e| error("cannot make it non-blocking", e))?;
    Ok(socket)
}

impl Server {
    /// Handles what `poll` saw on the simulation's descriptors (`revents`, in the order of
    /// [`Sim::poll_fds`]).
    pub(super) fn control_ready(&mut self, revents: &[PollFlags]) {
        let Some(mut sim) = self.sim.take() else { return };
        let mut events = revents.iter().copied();
        if sim.socket.is_some() && events.next().is_some_and(|r| !r.is_empty()) {
            self.accept_control(&mut sim);
        }
        let polled = revents.len().saturating_sub(usize::from(sim.socket.is_some()));
        for i in 0..polled.min(sim.peers.len()) {
            let flags = events.next().unwrap_or(PollFlags::empty());
            if flags.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
                read_peer(&mut sim.peers[i]);
                let lines = core::mem::take(&mut sim.peers[i].lines);
                for line in lines {
                    let reply = match line {
                        Ok(line) => self.command(&mut sim, &line),
                        Err(()) => format!("error: command longer than {MAX_LINE} bytes\n"),
                    };
                    let peer = &mut sim.peers[i];
                    peer.output.extend_from_slice(reply.as_bytes());
                    if peer.output.len() > MAX_OUTPUT {
                        peer.dead = true;
                    }
                }
            }
            write_peer(&mut sim.peers[i]);
        }
        sim.peers.retain(|p| !(p.dead || p.eof && p.output.is_empty()));
        self.sim = Some(sim);
    }

    fn accept_control(&mut self, sim: &mut Sim) {
        let Some(socket) = &sim.socket else { return };
        let me = nix::unistd::geteuid().as_raw();
        loop {
            let sock = match socket.listener.accept() {
                Ok((sock, _)) => sock,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) => {
                    // Out of descriptors (EMFILE) and the like: the socket stays readable, so
                    // rest instead of waking again at once.
                    self.log_sim(format_args!("control socket: accept failed: {e}"));
                    self.accept_backoff = Some(std::time::Instant::now() + super::ACCEPT_BACKOFF);
                    return;
                }
            };
            if sim.peers.len() >= MAX_PEERS {
                self.log_sim(format_args!("control socket: {MAX_PEERS} peers already, newcomer closed"));
                continue;
            }
            match super::peer_cred(&sock) {
                Ok(peer) if peer.uid == me => {}
                Ok(peer) => {
                    if self.verbose {
                        eprintln!(
                            "corowire serve: control peer of uid {} (pid {}) refused",
                            peer.uid, peer.pid
                        );
                    }
                    continue;
                }
                Err(_) => continue,
            }
            if sock.set_nonblocking(true).is_ok() {
                sim.peers.push(Peer::new(sock));
            }
        }
    }

    /// Runs one command line: its output and status line. The model changes only when the
    /// local engine took the local node's part of a `qdevice` command.
    fn command(&mut self, sim: &mut Sim, line: &[u8]) -> String {
        let Ok(text) = core::str::from_utf8(line) else { return "error: command is not UTF-8\n".into() };
        // A client may have unregistered the simulator's device since the last command.
        sim.cluster.set_local_qdevice(self.engines.quorum.simulated_qdevice());
        let mut next = sim.cluster.clone();
        if let Ok(Command::Up(targets)) = Command::parse(text) {
            if let Some(t) = targets.iter().find(|t| sim.never_join.contains(&t.nodeid)) {
                return format!("error: {}\n", never_joins(t.nodeid));
            }
        }
        let (outcome, cmd) = match Command::parse(text).and_then(|cmd| Ok((next.apply(&cmd)?, cmd))) {
            Ok(o) => o,
            Err(CommandError::Empty) => return "ok\n".into(),
            Err(e) => return format!("error: {e}\n"),
        };
        if let Some(on) = outcome.local_qdevice {
            if let Err(e) = self.local_qdevice(on) {
                return format!("error: node {}: {e}\n", sim.cluster.local());
            }
        }
        if let Command::Leave(ids) = &cmd {
            self.deliver_leaves(sim, ids);
        }
        sim.cluster = next;
        for node in sim.cluster.nodes().iter().filter(|n| n.nodeid != sim.cluster.local()) {
            // A full table leaves the node without device flags.
            let _ = self.engines.quorum.set_remote_qdevice(node.nodeid, node.qdevice);
        }
        let now = self.sync.now();
        sim.start_shadows(now);
        let messages = sim.messages(self.engines.quorum.node_message());
        if let Some(change) = &outcome.membership {
            self.apply_membership(sim, change, &messages);
        }
        sim.refresh_shadows(now, &messages);
        let mut out = String::new();
        if cmd == Command::Show {
            let local_quorate = self.engines.quorum.is_quorate();
            let _ = sim.cluster.show(&mut out, |members| sim.quorate(members, local_quorate));
        }
        out.push_str("ok\n");
        out
    }

    /// Hands the LEAVING message of each node of `ids` that sends one ([`Sim::leave_message`])
    /// to the other nodes of its partition, as corosync's `votequorum_exec_exit_fn` multicasts
    /// it before the node leaves the ring: to the local engine (its notifications, and a
    /// libquorum one when quorate-ness changed) and to the other nodes' states. `sim` is the
    /// model before the nodes stop.
    fn deliver_leaves(&mut self, sim: &mut Sim, ids: &[u32]) {
        let now = self.sync.now();
        let local = sim.cluster.local();
        for &id in ids {
            let Some(message) = sim.leave_message(id) else { continue };
            let partition = |n: u32| sim.cluster.nodes().iter().find(|x| x.nodeid == n).map(|x| x.partition);
            if partition(id) == partition(local) {
                let Self { engines, sessions, note, .. } = self;
                let done = super::sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |e| {
                    e.quorum.node_leaving(&message)
                });
                if let Err(e) = done {
                    self.log_sim(format_args!("node {id}'s leave not applied: {e}"));
                }
            }
            sim.multicast(id, now, |shadow| shadow.node_leaving(&message));
        }
    }

    /// Switches the local node's simulated quorum device (`QuorumEngine::simulate_qdevice`),
    /// with the notifications and `runtime.votequorum` keys it causes (a libquorum one when
    /// quorate-ness changed: `sync_quorum`).
    fn local_qdevice(&mut self, on: bool) -> Result<(), String> {
        if !self.engines.votequorum {
            return Err("no quorum device without votequorum (quorum.provider is not set)".into());
        }
        let mut refused = None;
        let Self { engines, sessions, note, .. } = self;
        super::sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |e| {
            refused = e.quorum.simulate_qdevice(on)?.err();
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        if let Some(e) = refused {
            return Err(e.to_string());
        }
        for service in [CMAP_SERVICE, QUORUM_LIB_SERVICE] {
            self.drain_service(service);
        }
        Ok(())
    }

    /// Hands the reconfigure messages the local engine sent (those a drain already took
    /// first) to the other nodes of its partition (without a simulation, drops them: no other
    /// node exists).
    pub(super) fn deliver_reconfigures(&mut self) {
        let now = self.sync.now();
        self.engines.take_reconfigures();
        for r in core::mem::take(&mut self.engines.reconfigures) {
            if let Some(sim) = self.sim.as_mut() {
                sim.reconfigure(r, now);
            }
        }
    }

    /// Gives a new local view to the engines and queues every notification it causes.
    fn apply_membership(&mut self, sim: &Sim, change: &Change<MAX_NODES>, messages: &[NodeMessage]) {
        let now = self.sync.now();
        let Self { engines, sessions, note, .. } = self;
        // Also mirrors the runtime.votequorum keys into CMAP, and tells libquorum at the end of
        // the sync (at once, or when the quorum device ends the wait).
        let done = super::sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |e| {
            e.quorum.set_membership_with(&change.members, change.ring_id, now, messages)
        });
        if let Err(e) = done {
            self.log_sim(format_args!("membership not applied: {e}"));
        }
        let updates =
            change.left.iter().map(|id| (*id, false)).chain(change.joined.iter().map(|id| (*id, true)));
        for (nodeid, joined) in updates {
            let Some(node) = sim.cluster.nodes().iter().find(|n| n.nodeid == nodeid) else { continue };
            let ip = sim.ips.get(&nodeid).map_or("", String::as_str);
            for (suffix, value) in member_keys(node, joined, ip) {
                let key = format!("runtime.members.{nodeid}.{suffix}");
                self.retry(CMAP_SERVICE, |s| match s.engines.cmap.update(key.as_bytes(), value) {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => {
                        s.log_sim(format_args!("key {key}: {e}"));
                        Ok(())
                    }
                    Err(e) => Err(e),
                });
            }
        }
        for service in [CMAP_SERVICE, QUORUM_LIB_SERVICE] {
            self.drain_service(service);
        }
    }

    /// Runs `step` on the engines; when the outbox of engine `service` is full, drains it and
    /// runs `step` once more. Other failures are logged (an outbox too small for one change).
    fn retry(&mut self, service: usize, mut step: impl FnMut(&mut Self) -> Result<(), ServerError>) {
        let mut result = step(self);
        if result == Err(ServerError::OutboxFull) {
            self.drain_service(service);
            result = step(self);
        }
        if let Err(e) = result {
            self.log_sim(format_args!("applying the membership change: {e}"));
        }
    }

    fn drain_service(&mut self, service: usize) {
        let bound = self.limits.queued_event_bytes;
        drain(&mut self.engines, service, &mut self.sessions, &mut self.note, bound);
    }

    fn log_sim(&self, what: core::fmt::Arguments<'_>) {
        if self.verbose {
            eprintln!("corowire serve: simulated cluster: {what}");
        }
    }
}

/// Reads what the peer sent (at most [`READ_PER_WAKE`] bytes) and splits it into lines.
fn read_peer(peer: &mut Peer) {
    let mut buf = [0u8; 1024];
    let mut read = 0;
    while read < READ_PER_WAKE {
        match peer.sock.read(&mut buf) {
            Ok(0) => {
                peer.eof = true;
                // A last line without its newline still counts.
                if !peer.input.is_empty() && !peer.discarding {
                    peer.lines.push(Ok(core::mem::take(&mut peer.input)));
                }
                return;
            }
            Ok(n) => {
                read += n;
                take_lines(peer, &buf[..n]);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => {
                peer.dead = true;
                return;
            }
        }
    }
}

/// Adds `bytes` to the peer's input: each complete line goes to `lines`; a line longer than
/// [`MAX_LINE`] gives one error and its bytes are dropped up to its newline, so that no part
/// of it is ever taken for a command and the lines after it are served.
fn take_lines(peer: &mut Peer, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let end = bytes.iter().position(|&b| b == b'\n');
        let part = &bytes[..end.unwrap_or(bytes.len())];
        if !peer.discarding {
            if peer.input.len() + part.len() > MAX_LINE {
                peer.input.clear();
                peer.discarding = true;
                peer.lines.push(Err(()));
            } else {
                peer.input.extend_from_slice(part);
            }
        }
        let Some(end) = end else { return };
        if peer.discarding {
            peer.discarding = false;
        } else {
            peer.lines.push(Ok(core::mem::take(&mut peer.input)));
        }
        bytes = &bytes[end + 1..];
    }
}

/// Writes what is pending for the peer.
fn write_peer(peer: &mut Peer) {
    while !peer.output.is_empty() && !peer.dead {
        match peer.sock.write(&peer.output) {
            Ok(0) => peer.dead = true,
            Ok(n) => {
                peer.output.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(_) => peer.dead = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer {
        let (sock, _other) = UnixStream::pair().expect("socket pair");
        Peer::new(sock)
    }

    #[test]
    fn no_part_of_an_overlong_line_is_taken_for_a_command() {
        // The breaker's case: 5 KiB without a newline in 1 KiB writes, then a command: the long
        // line's tail must not run as one, and `down 2` is the next command.
        let mut p = peer();
        for _ in 0..5 {
            take_lines(&mut p, &[b'x'; 1024]);
        }
        take_lines(&mut p, b"tail\ndown 2\n");
        assert_eq!(p.lines, [Err(()), Ok(b"down 2".to_vec())]);
        assert!(p.input.is_empty() && !p.discarding);
    }

    #[test]
    fn the_lines_after_an_overlong_one_in_the_same_read_are_served() {
        let mut p = peer();
        let mut bytes = vec![b'y'; 5000];
        bytes.extend_from_slice(b"\nup 2\nshow\nsh");
        take_lines(&mut p, &bytes);
        assert_eq!(p.lines, [Err(()), Ok(b"up 2".to_vec()), Ok(b"show".to_vec())]);
        take_lines(&mut p, b"ow\n");
        assert_eq!(p.lines.last(), Some(&Ok(b"show".to_vec())));
        // Exactly MAX_LINE bytes is a line; one more is not, and gives one error, however long.
        let mut p = peer();
        take_lines(&mut p, &[b'a'; MAX_LINE]);
        take_lines(&mut p, b"\n");
        assert_eq!(p.lines, [Ok(vec![b'a'; MAX_LINE])]);
        let mut p = peer();
        for _ in 0..100 {
            take_lines(&mut p, &[b'z'; MAX_LINE]);
        }
        assert_eq!(p.lines, [Err(())]);
        assert!(p.input.is_empty(), "an overlong line is not kept");
    }
}
