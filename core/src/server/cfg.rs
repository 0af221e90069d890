//! The libcfg (`cfg` service) server engine, sans IO: the node-identity part of corosync
//! 3.1.7's `exec/cfg.c` that `corosync-quorumtool` uses, and its shutdown protocol
//! (`corosync-cfgtool -H` and shutdown trackers such as pacemakerd).
//!
//! The engine knows the local node id and the link addresses of each node (corosync gets
//! them from totem; an adapter takes them from the node list, `nodelist.node.N.ring0_addr`).
//!
//! # Driving the shutdown
//!
//! Besides the common contract (see [`super`]), an adapter
//! - hands in its clock ([`CfgEngine::set_clock`]) and `cfg.shutdown_timeout`
//!   ([`CfgEngine::set_shutdown_timeout`]) before each request, as corosync reads them when
//!   a TRYSHUTDOWN arrives;
//! - sends no reply when `handle_request` returns [`ServerError::Deferred`] (a TRYSHUTDOWN
//!   that waits for the trackers' answers);
//! - after every call (request, [`CfgEngine::handle_timeout`] when [`CfgEngine::poll_timeout`]
//!   is due, `disconnect`) drains the notifications, then [`CfgEngine::poll_reply`] (the
//!   waiting TRYSHUTDOWN's reply, to the connection it names, on its response channel), then
//!   [`CfgEngine::poll_event`]: [`CfgEvent::ShutDown`] means corosync would now stop, as on
//!   `SIGTERM` (its clients see their connections end).
//!
//! ```
//! use corowire::cfg::{Notification, Reply, Request, Response, SHUTDOWN_FLAG_REQUEST};
//! use corowire::server::cfg::{CfgEngine, CfgEvent};
//! use corowire::server::{ConnId, ServerError};
//!
//! let mut engine: CfgEngine = CfgEngine::new(1);
//! let (tool, tracker) = (ConnId(1), ConnId(2));
//! engine.connect(tool)?;
//! engine.connect(tracker)?;
//! let (mut req, mut out) = ([0u8; 32], [0u8; 320]);
//! let n = Request::TrackStart { flags: 0 }.encode(&mut req)?;
//! engine.handle_request(tracker, &req[..n], &mut out)?;
//! let n = Request::TryShutdown { flags: SHUTDOWN_FLAG_REQUEST }.encode(&mut req)?;
//! assert_eq!(engine.handle_request(tool, &req[..n], &mut out), Err(ServerError::Deferred));
//! let (to, len) = engine.poll_notification(&mut out)?.unwrap();
//! assert_eq!((to, Notification::decode(&out[..len])?.flags), (tracker, SHUTDOWN_FLAG_REQUEST));
//! let n = Request::ReplyToShutdown { response: 1 }.encode(&mut req)?;
//! engine.handle_request(tracker, &req[..n], &mut out)?;
//! let (to, len) = engine.poll_reply(&mut out)?.unwrap();
//! assert_eq!((to, Reply::decode(&out[..len])?), (tool, Reply { result: Ok(()), body: Response::TryShutdown }));
//! assert_eq!(engine.poll_event(), Some(CfgEvent::ShutDown));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use corowire::cfg::{Reply, Request, Response};
//! use corowire::server::cfg::CfgEngine;
//! use corowire::server::ConnId;
//!
//! let mut engine: CfgEngine = CfgEngine::new(1);
//! engine.add_addr(1, IpAddr::V4(Ipv4Addr::LOCALHOST))?;
//! engine.connect(ConnId(3))?;
//! let (mut req, mut out) = ([0u8; 32], [0u8; 320]);
//! let n = Request::GetNodeAddrs { nodeid: 0 }.encode(&mut req)?;
//! let m = engine.handle_request(ConnId(3), &req[..n], &mut out)?;
//! let Response::GetNodeAddrs(addrs) = Reply::decode(&out[..m])?.body else { unreachable!() };
//! assert_eq!(addrs.get(0), Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! - GET_NODE_ADDRS: node 0 is the local node; the node's addresses in the order they were
//!   added; a node without addresses → `CS_ERR_NOT_EXIST` in a 32-byte reply.
//! - LOCAL_GET: the local node id.
//! - TRACKSTART (reply id 2, `CS_OK`) makes the connection a shutdown tracker (its flags are
//!   ignored); during a shutdown a new tracker is asked too (TESTSHUTDOWN before the reply)
//!   and counted. TRACKSTOP (reply id 3, `CS_OK`) and a disconnect of a tracker count as its
//!   *yes* (replacing an answer it gave); either from the connection that asked for the
//!   shutdown cancels the shutdown, and it is never answered.
//! - TRYSHUTDOWN (reply id 9): IMMEDIATE shuts down at once (`CS_OK`). Otherwise, while
//!   another is waiting, `CS_ERR_EXIST`. Without trackers (other than the asker) `CS_OK` and
//!   shut down. Otherwise every other tracker gets TESTSHUTDOWN (`CS_OK`, the flags) and the
//!   reply waits until the answers (REPLYTOSHUTDOWN, leaving trackers) number the trackers
//!   asked: all *yes*, or REGARDLESS, → `CS_OK` and shut down; else `CS_ERR_BUSY`. After
//!   `cfg.shutdown_timeout` ms (5000 unless set as a `u32`) the missing answers are *no*,
//!   and the trackers that once sent a TRYSHUTDOWN themselves get TESTSHUTDOWN with
//!   `CS_ERR_TIMEOUT` (corosync's `send_test_shutdown(NULL, NULL, ...)` skips the others).
//! - REPLYTOSHUTDOWN (reply id 13): counted from any connection, as often as it is sent,
//!   while a shutdown waits (`CS_OK`); else `CS_ERR_ACCESS`.
//! - A malformed frame of a known id gets its reply shape with `CS_ERR_INVALID_PARAM`.
//!
//! # Not reproduced
//!
//! - A connection the adapter refused the right to stop the server
//!   ([`CfgEngine::set_may_shut_down`]) gets `CS_ERR_ACCESS` for TRYSHUTDOWN; corosync lets
//!   every client it admits stop it.
//! - The other cfg requests (ring status, reload, kill node, node status, reopen log files):
//!   they get the generic 24-byte reply with `CS_ERR_INVALID_PARAM` (7), as unknown ids do.
//!   `corosync-cfgtool` then prints the error and still exits 0: `-s` prints `Local node ID
//!   1, transport knet` and `Could not get the node status for nodeid 1, the error is: 7`
//!   where corosync prints each link's status.

use super::outbox::Outbox;
use super::session::{handle_request_method, notification_methods, Sessions};
use super::{forward_engine_methods, ConnId, Engine, Served, ServerError};
use crate::cfg::{
    NodeAddrs, Notification, Reply, Request, RequestKind, Response, SHUTDOWN_FLAG_IMMEDIATE,
    SHUTDOWN_FLAG_REGARDLESS,
};
use crate::error::CsError;
use crate::time::{Duration, Instant};
use core::net::IpAddr;
use heapless::Vec;

/// Addresses per node (knet's `KNET_MAX_LINK`).
pub const MAX_LINKS: usize = 8;

/// corosync's shutdown timeout when `cfg.shutdown_timeout` is not set as a `u32`
/// (`DEFAULT_SHUTDOWN_TIMEOUT`, in milliseconds).
pub const DEFAULT_SHUTDOWN_TIMEOUT_MS: u32 = 5000;

/// What the engine asks of its adapter ([`CfgEngine::poll_event`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum CfgEvent {
    /// corosync would stop now (`send_shutdown`, then `corosync_shutdown_request`: the same
    /// stop as on `SIGTERM`). Deliver [`CfgEngine::poll_reply`]'s reply first.
    ShutDown,
}

/// A tracker's answer to the shutdown being asked (`shutdown_reply` in `exec/cfg.c`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Vote {
    #[default]
    Unknown,
    Yes,
    No,
}

/// What the engine keeps of a connection (`struct cfg_info`).
#[derive(Clone, Copy, Debug)]
struct Conn {
    /// In the trackers' list.
    tracking: bool,
    vote: Vote,
    /// Sent a TRYSHUTDOWN once (`ci->conn` set): gets the timeout's TESTSHUTDOWN if it tracks.
    asked: bool,
    /// The adapter's permission to stop the server.
    may_shut_down: bool,
}

impl Default for Conn {
    fn default() -> Self {
        Self { tracking: false, vote: Vote::Unknown, asked: false, may_shut_down: true }
    }
}

/// A TRYSHUTDOWN waiting for the trackers (`shutdown_con` and its counters).
#[derive(Clone, Copy, Debug)]
struct Pending {
    requester: ConnId,
    flags: u32,
    yes: i64,
    no: i64,
    expected: i64,
    deadline: Instant,
}

/// The libcfg engine: `CONNS` connections, `ADDRS` (node id, address) pairs in all, and an
/// outbox of `EVENTS` TESTSHUTDOWN notifications (`EVENT_BYTES` bytes), which must hold one
/// for every connection (checked at compile time).
#[derive(Debug)]
pub struct CfgEngine<
    const CONNS: usize = 16,
    const ADDRS: usize = 64,
    const EVENTS: usize = 16,
    const EVENT_BYTES: usize = 512,
> {
    nodeid: u32,
    addrs: Vec<(u32, IpAddr), ADDRS>,
    conns: Sessions<Conn, CONNS>,
    outbox: Outbox<EVENTS, EVENT_BYTES>,
    pending: Option<Pending>,
    /// The waiting TRYSHUTDOWN's reply, decided, until [`CfgEngine::poll_reply`] takes it.
    decided: Option<(ConnId, Result<(), CsError>)>,
    /// [`CfgEvent::ShutDown`] not yet taken.
    shut_down: bool,
    clock: Instant,
    timeout_ms: u32,
}

/// Size of a TESTSHUTDOWN notification.
const NOTE_LEN: usize = 32;

impl<const CONNS: usize, const ADDRS: usize, const EVENTS: usize, const EVENT_BYTES: usize>
    CfgEngine<CONNS, ADDRS, EVENTS, EVENT_BYTES>
{
    /// An engine for the local node `nodeid`, without addresses yet, at clock 0 with
    /// [`DEFAULT_SHUTDOWN_TIMEOUT_MS`].
    pub fn new(nodeid: u32) -> Self {
        const {
            assert!(
                EVENTS >= CONNS && EVENT_BYTES >= CONNS * NOTE_LEN,
                "the outbox must hold a TESTSHUTDOWN for every connection"
            )
        };
        Self {
            nodeid,
            addrs: Vec::new(),
            conns: Sessions::new(),
            outbox: Outbox::new(),
            pending: None,
            decided: None,
            shut_down: false,
            clock: Instant::default(),
            timeout_ms: DEFAULT_SHUTDOWN_TIMEOUT_MS,
        }
    }

    /// The local node id.
    pub fn nodeid(&self) -> u32 {
        self.nodeid
    }

    /// Adds a link address of `nodeid` (after the ones it has).
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` when the node has addresses of the other IP family (one reply
    /// carries one family), `CS_ERR_NO_SPACE` when the node has [`MAX_LINKS`] addresses,
    /// `CS_ERR_NO_MEMORY` when the table is full.
    pub fn add_addr(&mut self, nodeid: u32, addr: IpAddr) -> Result<(), CsError> {
        let mut of_node = self.addrs.iter().filter(|(n, _)| *n == nodeid);
        if of_node.clone().any(|(_, a)| a.is_ipv4() != addr.is_ipv4()) {
            return Err(CsError::InvalidParam);
        }
        if of_node.nth(MAX_LINKS - 1).is_some() {
            return Err(CsError::NoSpace);
        }
        self.addrs.push((nodeid, addr)).map_err(|_| CsError::NoMemory)
    }

    /// The addresses of `nodeid` (0: the local node), in order.
    pub fn addrs(&self, nodeid: u32) -> Vec<IpAddr, MAX_LINKS> {
        let nodeid = if nodeid == 0 { self.nodeid } else { nodeid };
        self.addrs.iter().filter(|(n, _)| *n == nodeid).map(|(_, a)| *a).take(MAX_LINKS).collect()
    }

    /// Registers a new connection (corosync's `cfg_lib_init_fn`); it may stop the server
    /// until [`CfgEngine::set_may_shut_down`] says otherwise.
    pub fn connect(&mut self, conn: ConnId) -> Result<(), ServerError> {
        self.conns.connect(conn, Conn::default()).map(drop)
    }

    /// Forgets a connection (`cfg_lib_exit_fn`): a tracker's leaving counts as its *yes*, the
    /// asker's cancels the shutdown; its queued notifications are dropped. Drain
    /// [`CfgEngine::poll_reply`] and [`CfgEngine::poll_event`] afterwards.
    pub fn disconnect(&mut self, conn: ConnId) {
        let Some(ci) = self.conns.slot(conn) else { return };
        self.leave(ci);
        self.conns.disconnect(conn);
        self.outbox.remove_conn(conn);
        if self.decided.is_some_and(|(c, _)| c == conn) {
            self.decided = None;
        }
    }

    /// Whether `conn` is connected.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.is_connected(conn)
    }

    /// Whether `conn` is a shutdown tracker.
    pub fn is_tracking(&self, conn: ConnId) -> bool {
        self.conns.get(conn).is_some_and(|c| c.tracking)
    }

    /// Lets `conn` stop the server with TRYSHUTDOWN, or not (then it gets `CS_ERR_ACCESS`).
    /// An adapter refuses it to a client that could not stop the server by itself.
    ///
    /// # Errors
    /// [`ServerError::UnknownConnection`].
    pub fn set_may_shut_down(&mut self, conn: ConnId, may: bool) -> Result<(), ServerError> {
        let ci = self.conns.require(conn)?;
        self.conns[ci].may_shut_down = may;
        Ok(())
    }

    /// The adapter's clock, from which a TRYSHUTDOWN's deadline is counted.
    pub fn set_clock(&mut self, now: Instant) {
        self.clock = now;
    }

    /// `cfg.shutdown_timeout` in milliseconds for the next TRYSHUTDOWN (corosync reads the
    /// key, as a `u32`, when one arrives; [`DEFAULT_SHUTDOWN_TIMEOUT_MS`] otherwise).
    pub fn set_shutdown_timeout(&mut self, ms: u32) {
        self.timeout_ms = ms;
    }

    /// When the waiting TRYSHUTDOWN runs out of time (`shutdown_timer_fn`), if one waits.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.map(|p| p.deadline)
    }

    /// Applies the timeout if it is due at `now` (`shutdown_timer_fn`): the missing answers
    /// count as *no*, the asker's reply is decided ([`CfgEngine::poll_reply`]: `CS_ERR_BUSY`,
    /// or `CS_OK` and [`CfgEvent::ShutDown`] with REGARDLESS), and the trackers that once
    /// asked for a shutdown themselves get TESTSHUTDOWN with `CS_ERR_TIMEOUT`.
    ///
    /// # Errors
    /// [`ServerError::OutboxFull`]: nothing changed; drain the notifications and call again.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ServerError> {
        let Some(p) = self.pending.filter(|p| p.deadline <= now) else { return Ok(()) };
        let told = (0..self.conns.len()).filter(|&i| self.conns[i].tracking && self.conns[i].asked).count();
        if !self.outbox.has_room(told, told * NOTE_LEN) {
            return Err(ServerError::OutboxFull);
        }
        self.pending = Some(Pending { no: p.expected, ..p });
        self.check();
        let note = Notification { status: Err(CsError::Timeout), flags: p.flags };
        for i in 0..self.conns.len() {
            if self.conns[i].tracking && self.conns[i].asked {
                self.outbox.push(self.conns.id(i), NOTE_LEN, |buf| note.encode(buf))?;
            }
        }
        Ok(())
    }

    /// Moves the decided reply of a TRYSHUTDOWN that waited ([`ServerError::Deferred`]) into
    /// `out` (24 bytes): the connection whose response channel it goes to, and its length.
    ///
    /// # Errors
    /// [`ServerError::BufferTooSmall`]; the reply stays.
    pub fn poll_reply(&mut self, out: &mut [u8]) -> Result<Option<(ConnId, usize)>, ServerError> {
        let Some((conn, result)) = self.decided else { return Ok(None) };
        let n = Reply { result, body: Response::TryShutdown }.encode(out)?;
        self.decided = None;
        Ok(Some((conn, n)))
    }

    /// What the adapter must do now, once: [`CfgEvent::ShutDown`] when corosync would stop.
    pub fn poll_event(&mut self) -> Option<CfgEvent> {
        core::mem::take(&mut self.shut_down).then_some(CfgEvent::ShutDown)
    }

    notification_methods!();

    handle_request_method! {
        /// Handles one request frame from `conn` and writes the reply into `out` (at least
        /// [`super::MIN_REPLY_LEN`] bytes); returns the reply's length, or
        /// [`ServerError::Deferred`] for a TRYSHUTDOWN that waits for the trackers.
        => serve
    }

    fn serve(&mut self, ci: usize, kind: RequestKind, frame: &[u8], out: &mut [u8]) -> Served {
        let Ok(request) = Request::decode(frame) else {
            return Ok(Reply { result: Err(CsError::InvalidParam), body: empty_body(kind) }.encode(out)?);
        };
        let (result, body) = match request {
            Request::LocalGet => (Ok(()), Response::LocalGet { nodeid: self.nodeid }),
            Request::GetNodeAddrs { nodeid } => {
                let addrs = self.addrs(nodeid);
                // `add_addr` keeps each node's addresses of one family.
                let list = NodeAddrs::from_slice(&addrs).unwrap_or_default();
                let result = if list.is_empty() { Err(CsError::NotExist) } else { Ok(()) };
                return Ok(Reply { result, body: Response::GetNodeAddrs(list) }.encode(out)?);
            }
            Request::TrackStart { .. } => (self.track_start(ci)?, Response::TrackStart),
            Request::TrackStop => {
                self.leave(ci);
                (Ok(()), Response::TrackStop)
            }
            Request::TryShutdown { flags } => match self.try_shutdown(ci, flags)? {
                Some(result) => (result, Response::TryShutdown),
                None => return Err(ServerError::Deferred),
            },
            Request::ReplyToShutdown { response } => {
                (self.reply_to_shutdown(ci, response != 0), Response::ReplyToShutdown)
            }
        };
        Ok(Reply { result, body }.encode(out)?)
    }

    /// `message_handler_req_lib_cfg_trackstart`.
    fn track_start(&mut self, ci: usize) -> Result<Result<(), CsError>, ServerError> {
        if self.conns[ci].tracking {
            return Ok(Ok(()));
        }
        if let Some(p) = &mut self.pending {
            if !self.outbox.has_room(1, NOTE_LEN) {
                return Err(ServerError::OutboxFull);
            }
            let note = Notification { status: Ok(()), flags: p.flags };
            self.outbox.push(self.conns.id(ci), NOTE_LEN, |buf| note.encode(buf))?;
            p.expected = p.expected.saturating_add(1);
            self.conns[ci].vote = Vote::Unknown;
        }
        self.conns[ci].tracking = true;
        Ok(Ok(()))
    }

    /// `remove_ci_from_shutdown`: TRACKSTOP and disconnect.
    fn leave(&mut self, ci: usize) {
        if self.pending.is_some_and(|p| p.requester == self.conns.id(ci)) {
            self.pending = None;
        }
        let conn = &mut self.conns[ci];
        if !conn.tracking {
            return;
        }
        conn.tracking = false;
        if let Some(p) = &mut self.pending {
            match conn.vote {
                Vote::Yes => p.yes = p.yes.saturating_sub(1),
                Vote::No => p.no = p.no.saturating_sub(1),
                Vote::Unknown => {}
            }
            p.yes = p.yes.saturating_add(1);
        }
        conn.vote = Vote::Yes;
        self.check();
    }

    /// `message_handler_req_lib_cfg_tryshutdown`: the reply now, or `None` when it waits.
    fn try_shutdown(&mut self, ci: usize, flags: u32) -> Result<Option<Result<(), CsError>>, ServerError> {
        if !self.conns[ci].may_shut_down {
            return Ok(Some(Err(CsError::Access)));
        }
        if flags == SHUTDOWN_FLAG_IMMEDIATE {
            self.shut_down = true;
            return Ok(Some(Ok(())));
        }
        if self.pending.is_some() {
            return Ok(Some(Err(CsError::Exist)));
        }
        // The last decided reply is still to be taken: one at a time.
        if self.decided.is_some() {
            return Err(ServerError::OutboxFull);
        }
        let asked = |i: usize| i != ci && self.conns[i].tracking;
        let expected = (0..self.conns.len()).filter(|&i| asked(i)).count();
        if !self.outbox.has_room(expected, expected * NOTE_LEN) {
            return Err(ServerError::OutboxFull);
        }
        self.conns[ci].asked = true;
        if expected == 0 {
            self.shut_down = true;
            return Ok(Some(Ok(())));
        }
        let note = Notification { status: Ok(()), flags };
        for i in 0..self.conns.len() {
            if i != ci && self.conns[i].tracking {
                self.conns[i].vote = Vote::Unknown;
                self.outbox.push(self.conns.id(i), NOTE_LEN, |buf| note.encode(buf))?;
            }
        }
        let timeout = Duration::from_millis(u64::from(self.timeout_ms));
        self.pending = Some(Pending {
            requester: self.conns.id(ci),
            flags,
            yes: 0,
            no: 0,
            expected: expected as i64,
            deadline: self.clock.saturating_add(timeout),
        });
        Ok(None)
    }

    /// `message_handler_req_lib_cfg_replytoshutdown`.
    fn reply_to_shutdown(&mut self, ci: usize, yes: bool) -> Result<(), CsError> {
        let Some(p) = &mut self.pending else { return Err(CsError::Access) };
        if yes {
            p.yes = p.yes.saturating_add(1);
        } else {
            p.no = p.no.saturating_add(1);
        }
        self.conns[ci].vote = if yes { Vote::Yes } else { Vote::No };
        self.check();
        Ok(())
    }

    /// `check_shutdown_status`: decides once the answers number the trackers asked.
    fn check(&mut self) {
        let Some(p) = self.pending else { return };
        if p.yes.saturating_add(p.no) < p.expected {
            return;
        }
        self.pending = None;
        let go = p.yes >= p.expected || p.flags == SHUTDOWN_FLAG_REGARDLESS;
        self.decided = Some((p.requester, if go { Ok(()) } else { Err(CsError::Busy) }));
        self.shut_down |= go;
    }
}

/// The reply body of `kind`, with empty fields (an error reply).
fn empty_body(kind: RequestKind) -> Response<'static> {
    match kind {
        RequestKind::GetNodeAddrs => Response::GetNodeAddrs(NodeAddrs::default()),
        RequestKind::LocalGet => Response::LocalGet { nodeid: 0 },
        RequestKind::TrackStart => Response::TrackStart,
        RequestKind::TrackStop => Response::TrackStop,
        RequestKind::TryShutdown => Response::TryShutdown,
        RequestKind::ReplyToShutdown => Response::ReplyToShutdown,
    }
}

impl<const CONNS: usize, const ADDRS: usize, const EVENTS: usize, const EVENT_BYTES: usize> Engine
    for CfgEngine<CONNS, ADDRS, EVENTS, EVENT_BYTES>
{
    fn name(&self) -> &'static str {
        crate::cfg::SERVICE_NAME
    }

    forward_engine_methods!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg::{SHUTDOWN_FLAG_REGARDLESS, SHUTDOWN_FLAG_REQUEST};

    const TOOL: ConnId = ConnId(1);
    const T1: ConnId = ConnId(2);
    const T2: ConnId = ConnId(3);

    /// An engine with the tool and two trackers connected (`trackers` of them tracking).
    fn engine(trackers: usize) -> CfgEngine<4, 4, 4, 128> {
        let mut e = CfgEngine::new(1);
        for (i, c) in [TOOL, T1, T2].into_iter().enumerate() {
            e.connect(c).unwrap();
            if i >= 1 && i <= trackers {
                assert_eq!(send(&mut e, c, Request::TrackStart { flags: 0 }), Ok(Ok(Response::TrackStart)));
            }
        }
        e
    }

    /// The reply's status and body, or the engine's error.
    fn send(
        e: &mut CfgEngine<4, 4, 4, 128>,
        conn: ConnId,
        r: Request,
    ) -> Result<Result<Response<'static>, CsError>, ServerError> {
        let (mut req, mut out) = ([0u8; 32], [0u8; 320]);
        let n = r.encode(&mut req).unwrap();
        let m = e.handle_request(conn, &req[..n], &mut out)?;
        let reply = Reply::decode(&out[..m]).unwrap();
        let body = match reply.body {
            Response::TrackStart => Response::TrackStart,
            Response::TrackStop => Response::TrackStop,
            Response::TryShutdown => Response::TryShutdown,
            Response::ReplyToShutdown => Response::ReplyToShutdown,
            other => panic!("unexpected {other:?}"),
        };
        Ok(reply.result.map(|()| body))
    }

    fn notes(e: &mut CfgEngine<4, 4, 4, 128>) -> std::vec::Vec<(ConnId, Notification)> {
        let mut out = [0u8; 64];
        let mut got = std::vec::Vec::new();
        while let Some((c, n)) = e.poll_notification(&mut out).unwrap() {
            got.push((c, Notification::decode(&out[..n]).unwrap()));
        }
        got
    }

    fn decided(e: &mut CfgEngine<4, 4, 4, 128>) -> Option<(ConnId, Result<(), CsError>)> {
        let mut out = [0u8; 24];
        e.poll_reply(&mut out).unwrap().map(|(c, n)| (c, Reply::decode(&out[..n]).unwrap().result))
    }

    fn try_shutdown(
        e: &mut CfgEngine<4, 4, 4, 128>,
        flags: u32,
    ) -> Result<Result<Response<'static>, CsError>, ServerError> {
        send(e, TOOL, Request::TryShutdown { flags })
    }

    fn answer(e: &mut CfgEngine<4, 4, 4, 128>, conn: ConnId, yes: bool) {
        let r = Request::ReplyToShutdown { response: yes.into() };
        assert_eq!(send(e, conn, r), Ok(Ok(Response::ReplyToShutdown)));
    }

    const ASKED: Notification = Notification { status: Ok(()), flags: SHUTDOWN_FLAG_REQUEST };

    #[test]
    fn without_trackers_the_shutdown_is_at_once() {
        let mut e = engine(0);
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST), Ok(Ok(Response::TryShutdown)));
        assert_eq!((e.poll_event(), e.poll_event()), (Some(CfgEvent::ShutDown), None));
        assert!(notes(&mut e).is_empty());
    }

    #[test]
    fn every_tracker_says_yes() {
        let mut e = engine(2);
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST), Err(ServerError::Deferred));
        assert_eq!(notes(&mut e), [(T1, ASKED), (T2, ASKED)]);
        assert_eq!(e.poll_timeout(), Some(Instant::from_millis(5000)));
        answer(&mut e, T1, true);
        assert_eq!((decided(&mut e), e.poll_event()), (None, None));
        answer(&mut e, T2, true);
        assert_eq!(decided(&mut e), Some((TOOL, Ok(()))));
        assert_eq!((e.poll_event(), e.poll_timeout()), (Some(CfgEvent::ShutDown), None));
        // No shutdown waits any more.
        answer_refused(&mut e);
    }

    #[test]
    fn one_no_is_busy_unless_regardless() {
        let mut e = engine(2);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        answer(&mut e, T1, false);
        answer(&mut e, T2, true);
        assert_eq!((decided(&mut e), e.poll_event()), (Some((TOOL, Err(CsError::Busy))), None));
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REGARDLESS), Err(ServerError::Deferred));
        let forced = Notification { status: Ok(()), flags: SHUTDOWN_FLAG_REGARDLESS };
        assert_eq!(notes(&mut e), [(T1, ASKED), (T2, ASKED), (T1, forced), (T2, forced)]);
        answer(&mut e, T1, false);
        answer(&mut e, T2, false);
        assert_eq!((decided(&mut e), e.poll_event()), (Some((TOOL, Ok(()))), Some(CfgEvent::ShutDown)));
    }

    #[test]
    fn the_timeout_counts_silence_as_no_and_tells_only_trackers_that_asked() {
        let mut e = engine(2);
        // T2 asked once itself (alone with T1 tracking, it waits for T1).
        assert_eq!(send(&mut e, T2, Request::TryShutdown { flags: 0 }), Err(ServerError::Deferred));
        answer(&mut e, T1, false);
        assert_eq!(decided(&mut e), Some((T2, Err(CsError::Busy))));
        notes(&mut e);
        e.set_clock(Instant::from_millis(100));
        e.set_shutdown_timeout(1000);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        answer(&mut e, T1, true);
        e.handle_timeout(Instant::from_millis(1099)).unwrap();
        assert_eq!(decided(&mut e), None);
        e.handle_timeout(Instant::from_millis(1100)).unwrap();
        assert_eq!((decided(&mut e), e.poll_event()), (Some((TOOL, Err(CsError::Busy))), None));
        let timed_out = Notification { status: Err(CsError::Timeout), flags: 0 };
        assert_eq!(notes(&mut e), [(T1, ASKED), (T2, ASKED), (T2, timed_out)]);
    }

    #[test]
    fn the_timeout_with_regardless_shuts_down() {
        let mut e = engine(1);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REGARDLESS).unwrap_err();
        e.handle_timeout(Instant::from_millis(5000)).unwrap();
        assert_eq!((decided(&mut e), e.poll_event()), (Some((TOOL, Ok(()))), Some(CfgEvent::ShutDown)));
    }

    #[test]
    fn a_leaving_tracker_says_yes_even_after_a_no() {
        let mut e = engine(2);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        answer(&mut e, T1, false);
        e.disconnect(T1);
        assert_eq!(decided(&mut e), None);
        assert_eq!(send(&mut e, T2, Request::TrackStop), Ok(Ok(Response::TrackStop)));
        assert_eq!((decided(&mut e), e.poll_event()), (Some((TOOL, Ok(()))), Some(CfgEvent::ShutDown)));
    }

    #[test]
    fn the_asker_leaving_cancels_and_a_second_asker_waits_its_turn() {
        let mut e = engine(1);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        assert_eq!(send(&mut e, T2, Request::TryShutdown { flags: 0 }), Ok(Err(CsError::Exist)));
        e.disconnect(TOOL);
        assert_eq!((e.poll_timeout(), decided(&mut e)), (None, None));
        answer_refused(&mut e);
        // IMMEDIATE asks nobody.
        assert_eq!(send(&mut e, T2, Request::TryShutdown { flags: 2 }), Ok(Ok(Response::TryShutdown)));
        assert_eq!(e.poll_event(), Some(CfgEvent::ShutDown));
    }

    fn answer_refused(e: &mut CfgEngine<4, 4, 4, 128>) {
        assert_eq!(send(e, T1, Request::ReplyToShutdown { response: 1 }), Ok(Err(CsError::Access)));
    }

    #[test]
    fn a_tracker_joining_during_a_shutdown_is_asked_before_its_reply() {
        let mut e = engine(1);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        notes(&mut e);
        assert_eq!(send(&mut e, T2, Request::TrackStart { flags: 0 }), Ok(Ok(Response::TrackStart)));
        assert_eq!(notes(&mut e), [(T2, ASKED)]);
        answer(&mut e, T1, true);
        assert_eq!(decided(&mut e), None);
        answer(&mut e, T2, true);
        assert_eq!(decided(&mut e), Some((TOOL, Ok(()))));
    }

    #[test]
    fn a_connection_the_adapter_forbids_cannot_stop_the_server() {
        let mut e = engine(0);
        e.set_may_shut_down(TOOL, false).unwrap();
        for flags in [0, 1, 2] {
            assert_eq!(try_shutdown(&mut e, flags), Ok(Err(CsError::Access)));
        }
        assert_eq!(e.poll_event(), None);
        assert_eq!(e.set_may_shut_down(ConnId(9), true), Err(ServerError::UnknownConnection(ConnId(9))));
    }

    #[test]
    fn a_full_outbox_or_an_untaken_reply_holds_the_request_back() {
        let mut e = engine(2);
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        answer(&mut e, T1, false);
        answer(&mut e, T2, false);
        // The decided reply is not taken yet.
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST), Err(ServerError::OutboxFull));
        decided(&mut e);
        // Two notifications are queued; two more do not fit into 4 frames of 128 bytes.
        try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST).unwrap_err();
        answer(&mut e, T1, false);
        answer(&mut e, T2, false);
        decided(&mut e);
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST), Err(ServerError::OutboxFull));
        assert_eq!(notes(&mut e).len(), 4);
        assert_eq!(try_shutdown(&mut e, SHUTDOWN_FLAG_REQUEST), Err(ServerError::Deferred));
    }

    #[test]
    fn malformed_frames_get_their_reply_shape() {
        let mut e = engine(0);
        let (mut req, mut out) = ([0u8; 32], [0u8; 320]);
        let n = Request::TryShutdown { flags: 0 }.encode(&mut req).unwrap();
        req[8..12].copy_from_slice(&20i32.to_le_bytes());
        let m = e.handle_request(TOOL, &req[..n - 4], &mut out).unwrap();
        let reply = Reply::decode(&out[..m]).unwrap();
        assert_eq!((reply.result, reply.body), (Err(CsError::InvalidParam), Response::TryShutdown));
        assert_eq!(e.poll_event(), None);
    }
}
