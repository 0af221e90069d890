//! A sans-IO *server* engine: decodes client requests, applies corosync 3.1.7's semantics and
//! encodes the replies and notifications, so that an I/O adapter (a libqb listener) can serve
//! the unmodified `corosync-cmapctl`, `corosync-quorumtool` and libcmap/libvotequorum clients.
//!
//! One engine per libqb service, each implementing [`Engine`]:
//! - [`cmap::CmapEngine`]: the key/value store with corosync's checks, iterators, tracking and
//!   the read-only statistics map. Storage is any [`store::Store`]: the fixed-capacity
//!   [`store::FixedStore`] (no heap) or, with the `alloc` feature, `store::BTreeStore`.
//! - [`votequorum::QuorumEngine`]: a configurable one-node (or static node list) quorum model
//!   with tracking and the quorum-device calls.
//! - [`quorum::QuorumLibEngine`] (libquorum) and [`cfg::CfgEngine`] (libcfg's node identity,
//!   what `corosync-quorumtool` needs besides CMAP and votequorum, and the shutdown protocol
//!   of `corosync-cfgtool -H` and shutdown trackers).
//!
//! Beside the engines, [`cluster::Cluster`] models every node of a simulated cluster
//! (corosync-vqsim's commands) and computes the local node's membership changes, which an
//! adapter hands to the votequorum engine (`set_membership`), the libquorum engine
//! ([`quorum::QuorumLibEngine::notify`]) and CMAP ([`cluster::member_keys`]).
//!
//! # Services that read each other: the cluster view
//!
//! In corosync, libquorum's service answers from the state votequorum keeps. The engines do
//! not hold references to each other; instead every engine may [`publish`](Engine::publish)
//! what it owns into a [`ClusterView`] (the votequorum engine: quorate, ring id, members)
//! and [`observe`](Engine::observe) the view before it serves a request (the libquorum engine
//! keeps it as its snapshot). An adapter serving several engines builds the view from all of
//! them and hands it to the one about to serve a request:
//!
//! ```
//! # use corowire::server::{ClusterView, ConnId, Engine};
//! fn serve(engines: &mut [&mut dyn Engine], i: usize, frame: &[u8], out: &mut [u8]) -> usize {
//!     let mut view = ClusterView::default();
//!     engines.iter().for_each(|e| e.publish(&mut view));
//!     engines[i].observe(&view);
//!     engines[i].handle_request(ConnId(1), frame, out).unwrap_or(0)
//! }
//! ```
//!
//! A single-engine adapter that does not serve libquorum can ignore the view.
//!
//! # Driving contract
//!
//! The engines never do I/O, never read a clock and never allocate (except `BTreeStore`). For
//! every connection the adapter accepts it calls `connect(conn)` with a [`ConnId`] of its
//! choice, and `disconnect(conn)` when the client goes away (this frees the connection's
//! iterators and tracks and drops its queued notifications). Then, for every request frame:
//!
//! 1. `handle_request(conn, frame, out)` returns the length of the reply written to `out`;
//! 2. the adapter **drains** `poll_notification(buf)` and writes each notification to the event
//!    channel of the connection it names, **before** it sends the reply: corosync writes the
//!    events caused by a request (a SET's track events, TRACKSTART's initial state) before the
//!    request's response, and clients may rely on that order;
//! 3. it sends the reply.
//!
//! Notifications wait in a bounded outbox whose capacity the caller chooses (`EVENTS` frames,
//! `EVENT_BYTES` bytes). Nothing is ever dropped silently: when a request's notifications do not
//! fit next to the ones already queued, `handle_request` changes nothing and returns
//! [`ServerError::OutboxFull`]; the adapter drains the outbox and hands the same frame in again.
//! When they could not fit even into an empty outbox, the request is refused with
//! `CS_ERR_NO_RESOURCES` (corosync's queue is unbounded; this one is not).
//!
//! `out` must hold at least [`MIN_REPLY_LEN`] bytes. A CMAP GET reply is `40 + value_len` bytes
//! for the client's requested `value_len`; when that does not fit into `out` (size `out` to the
//! connection's negotiated max message size) the reply is the 40-byte `CS_ERR_NO_MEMORY` that
//! corosync sends when it cannot allocate the reply.
//!
//! Bytes from clients never panic: malformed frames get the error reply corosync would send
//! (see each engine), and one connection's requests never affect another's state except through
//! the shared store, as in corosync.

pub mod cfg;
pub mod cluster;
pub mod cmap;
pub mod quorum;
pub mod store;
pub mod votequorum;

mod outbox;
mod session;

use crate::error::EncodeError;
use crate::votequorum::RingId;
use core::fmt;
use heapless::Vec;

/// The smallest reply buffer the engines accept: the 320-byte votequorum GETINFO reply, which is
/// also larger than every fixed-size CMAP reply.
pub const MIN_REPLY_LEN: usize = 320;

/// The smallest maximum message size a server accepts at setup: a bare 16-byte request
/// header, the smallest request of any service (e.g. libquorum's GETQUORATE). A client that
/// asks for less could never send a request.
pub const MIN_MAX_MSG_SIZE: u32 = 16;

/// The maximum message size a server grants a client that asked for `requested` (libqb's
/// setup, `handle_new_connection`): raised to the server's `floor`
/// (`qb_ipcs_enforce_buffer_size`), then checked.
///
/// # Errors
/// The `-errno` the setup response carries: `ENOMEM` (12) above `limit`, `EINVAL` (22) below
/// [`MIN_MAX_MSG_SIZE`] (only possible with a `floor` below it: libqb clients never ask for
/// less than 12328 bytes).
pub fn grant_max_msg_size(requested: u32, floor: u32, limit: u32) -> Result<u32, crate::error::SetupError> {
    let max = requested.max(floor);
    if max > limit {
        Err(crate::error::SetupError { errno: 12 })
    } else if max < MIN_MAX_MSG_SIZE {
        Err(crate::error::SetupError { errno: 22 })
    } else {
        Ok(max)
    }
}

/// A connection, named by the adapter (e.g. an index into its own connection table).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnId(pub u32);

/// Members a [`ClusterView`] holds: corosync's `PROCESSOR_COUNT_MAX`, the most nodes a
/// cluster can have.
pub const MAX_MEMBERS: usize = 384;

/// The cluster state one engine publishes for the others (see the [module
/// documentation](self#services-that-read-each-other-the-cluster-view)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ClusterView {
    /// Whether the cluster is quorate.
    pub quorate: bool,
    /// The current ring (membership) id.
    pub ring_id: RingId,
    /// The member node ids, in the votequorum model's order.
    pub members: Vec<u32, MAX_MEMBERS>,
}

/// A server engine for one libqb service, as an adapter drives it; the [module
/// documentation](self) gives the driving contract. All four engines of this module implement
/// it, and a listener can serve a list of `&mut dyn Engine` without knowing which is which.
///
/// A new service (e.g. CPG) implements it beside its codec: `name`, the connection calls,
/// `handle_request` and the notification outbox; `publish` and `observe` only if it shares
/// state with other services. Like the engines here, an implementation never does I/O, never
/// reads a clock, and answers every malformed frame instead of failing on it.
pub trait Engine {
    /// The service's libqb name (corosync's: `"cmap"`, `"votequorum"`, `"quorum"`, `"cfg"`),
    /// on which an adapter listens unless configured otherwise.
    fn name(&self) -> &'static str;
    /// Registers a new connection `conn` (corosync: the service's `lib_init_fn`).
    ///
    /// # Errors
    /// [`ServerError::AlreadyConnected`], [`ServerError::TooManyConnections`] (the adapter
    /// refuses the client with `-EMFILE`).
    fn connect(&mut self, conn: ConnId) -> Result<(), ServerError>;
    /// Forgets a connection and everything it holds (`lib_exit_fn`); unknown ones are ignored.
    fn disconnect(&mut self, conn: ConnId);
    /// Handles one request frame from `conn`, writes the reply into `out` (at least
    /// [`MIN_REPLY_LEN`] bytes) and returns its length. Notifications it caused are queued:
    /// drain them with [`Engine::poll_notification`] before sending the reply.
    ///
    /// # Errors
    /// [`ServerError::UnknownConnection`], [`ServerError::BufferTooSmall`] (for `out`),
    /// [`ServerError::OutboxFull`] (nothing changed: drain the outbox, hand the frame in again),
    /// [`ServerError::Deferred`] (no reply now: the cfg engine gives it out later), and
    /// [`ServerError::Disconnect`] (libqb's DISCONNECT request: close the connection
    /// without a reply).
    fn handle_request(&mut self, conn: ConnId, frame: &[u8], out: &mut [u8]) -> Result<usize, ServerError>;
    /// Length of the next queued notification, to size the buffer for `poll_notification`.
    fn next_notification_len(&self) -> Option<usize>;
    /// Moves the oldest queued notification into `out`: the connection whose event channel it
    /// goes to, and its length.
    ///
    /// # Errors
    /// [`ServerError::BufferTooSmall`]; the notification stays queued.
    fn poll_notification(&mut self, out: &mut [u8]) -> Result<Option<(ConnId, usize)>, ServerError>;
    /// Writes what this engine owns of the cluster state into `view` (default: nothing).
    fn publish(&self, view: &mut ClusterView) {
        let _ = view;
    }
    /// Takes the cluster state other engines published, before a request is handed in
    /// (default: ignored).
    fn observe(&mut self, view: &ClusterView) {
        let _ = view;
    }
}

/// The [`Engine`] methods that forward to an engine's inherent methods of the same name.
macro_rules! forward_engine_methods {
    () => {
        fn connect(&mut self, conn: ConnId) -> Result<(), ServerError> {
            Self::connect(self, conn)
        }
        fn disconnect(&mut self, conn: ConnId) {
            Self::disconnect(self, conn)
        }
        fn handle_request(
            &mut self,
            conn: ConnId,
            frame: &[u8],
            out: &mut [u8],
        ) -> Result<usize, ServerError> {
            Self::handle_request(self, conn, frame, out)
        }
        fn next_notification_len(&self) -> Option<usize> {
            Self::next_notification_len(self)
        }
        fn poll_notification(&mut self, out: &mut [u8]) -> Result<Option<(ConnId, usize)>, ServerError> {
            Self::poll_notification(self, out)
        }
    };
}
pub(crate) use forward_engine_methods;

/// Why an engine call did not produce a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ServerError {
    /// `connect` was never called for this connection (or it was disconnected).
    UnknownConnection(ConnId),
    /// `connect` for a connection that is connected already.
    AlreadyConnected(ConnId),
    /// The connection table is full (its capacity is a const generic of the engine).
    TooManyConnections,
    /// The notifications of this request do not fit into the outbox next to those already
    /// queued. Nothing changed; drain [`poll_notification`](cmap::CmapEngine::poll_notification)
    /// and hand the same frame in again.
    OutboxFull,
    /// The caller's buffer is too small: for a reply (at least [`MIN_REPLY_LEN`]) or for the
    /// next queued notification (which stays queued).
    BufferTooSmall {
        /// Bytes needed.
        required: usize,
        /// Bytes available.
        available: usize,
    },
    /// A reply could not be encoded for another reason (an engine bug: the engines only
    /// encode values they have checked).
    Encode(EncodeError),
    /// The client sent libqb's DISCONNECT request (`QB_IPC_MSG_DISCONNECT`, id −3): no reply;
    /// the adapter closes the connection as libqb's server does (`qb_ipcs_disconnect`) and
    /// calls [`Engine::disconnect`].
    Disconnect,
    /// A membership ([`votequorum::QuorumEngine::set_membership`]) names more nodes than the
    /// engine's node table holds (its `NODES` const generic, one slot kept for the quorum
    /// device). Nothing changed.
    TooManyNodes,
    /// The request is answered later (libcfg's TRYSHUTDOWN waiting for the shutdown
    /// trackers' answers): send no reply now; the engine gives it out later
    /// ([`cfg::CfgEngine::poll_reply`]). The connection stays open.
    Deferred,
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnknownConnection(c) => write!(f, "unknown connection {}", c.0),
            Self::AlreadyConnected(c) => write!(f, "connection {} is connected already", c.0),
            Self::TooManyConnections => f.write_str("connection table full"),
            Self::OutboxFull => f.write_str("notification outbox full; drain it and retry"),
            Self::BufferTooSmall { required, available } => {
                write!(f, "buffer too small: {required} bytes needed, {available} available")
            }
            Self::Encode(e) => write!(f, "cannot encode the reply: {e}"),
            Self::Disconnect => f.write_str("the client asked to disconnect (QB_IPC_MSG_DISCONNECT)"),
            Self::TooManyNodes => f.write_str("membership has more nodes than the node table holds"),
            Self::Deferred => f.write_str("the request is answered later"),
        }
    }
}

impl core::error::Error for ServerError {}

impl From<EncodeError> for ServerError {
    fn from(e: EncodeError) -> Self {
        match e {
            EncodeError::BufferTooSmall { required, available } => {
                Self::BufferTooSmall { required, available }
            }
            other => Self::Encode(other),
        }
    }
}

/// A small deterministic generator for the "random" half of handles (`(random32 << 32) |
/// index`, as corosync's handle databases make them). The caller gives the seed; the core has
/// no entropy source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandleRng(u64);

impl HandleRng {
    pub(crate) fn new(seed: u64) -> Self {
        // xorshift must not start at 0.
        Self(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// A non-zero 32-bit check value, so that a valid handle is never 0 (0 is the handle of an
    /// error reply).
    pub(crate) fn next_check(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        match (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) as u32 {
            0 => 1,
            c => c,
        }
    }
}

/// Splits a handle into (check, index).
pub(crate) fn split_handle(handle: u64) -> (u32, usize) {
    ((handle >> 32) as u32, (handle & 0xffff_ffff) as usize)
}

/// Makes a handle from (check, index).
pub(crate) fn make_handle(check: u32, index: usize) -> u64 {
    (u64::from(check) << 32) | (index as u64 & 0xffff_ffff)
}

/// The request id of a frame, if its 16-byte request header is there.
pub(crate) fn frame_id(frame: &[u8]) -> Option<i32> {
    crate::codec::header_fields(frame).map(|(id, _)| id)
}

/// What the engines' request handlers return: the reply's length.
pub(crate) type Served = Result<usize, ServerError>;

pub(crate) fn check_out(out: &[u8]) -> Result<(), ServerError> {
    if out.len() < MIN_REPLY_LEN {
        return Err(ServerError::BufferTooSmall { required: MIN_REPLY_LEN, available: out.len() });
    }
    Ok(())
}
