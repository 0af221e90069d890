//! The sans-IO client connection: setup handshake, pipelined requests matched by position,
//! deadlines, a bounded event queue, and track routing.
//!
//! See the crate documentation for the driving contract an adapter follows.

use crate::codec::{Message, Status};
use crate::error::{CsError, DecodeError, EncodeError, SetupError};
use crate::qb::{ConnectRequest, ConnectResponse, ConnectionType, ReplyHeader};
use crate::time::{Duration, Instant};
use core::fmt;
use heapless::{Deque, Vec};

/// Identifies a submitted request; its completion or failure carries the same token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Token(pub u64);

/// A service a [`Connection`] speaks: the client half of one libqb service. The crate
/// implements it for [`Cmap`] (`cmap.rs`) and [`Votequorum`] (`votequorum.rs`); a new
/// service (e.g. CPG) implements it beside its own codec, without touching this module.
///
/// The trait only describes the service; all methods are associated functions that the
/// connection calls at fixed points, with the service's client-side [`Service::State`]
/// (kept inside the connection) where they need it:
///
/// | method | called by | when |
/// |---|---|---|
/// | [`kind`](Service::kind), [`encoded_len`](Service::encoded_len) | `submit*` | first, before anything changes |
/// | [`is_barrier`](Service::is_barrier) | `submit*` | for each outstanding request's kind |
/// | [`on_submit`](Service::on_submit) | `submit*` | after the pipeline checks, before `encode` |
/// | [`encode`](Service::encode) | `submit*` | once `on_submit` accepted the request |
/// | [`response_id`](Service::response_id), [`decode_reply`](Service::decode_reply) | `handle_response` | for the oldest outstanding request |
/// | [`on_reply`](Service::on_reply) | `handle_response`, failed `submit*` | once per request that `on_submit` accepted |
/// | [`route`](Service::route) | `poll_event`, `route`, `drop_skipped_events` | for every event frame |
///
/// Contract for implementors:
/// - No method does I/O, reads a clock, allocates or panics on peer bytes; the decoders
///   return [`DecodeError`] for anything malformed.
/// - `encoded_len` is exactly what `encode` writes for a request it accepts, and is cheap
///   (no encoding); the connection checks it against the negotiated maximum first.
/// - `on_submit` either records the request and returns `Ok`, or changes nothing and returns
///   the error. Every accepted request is later balanced by exactly one `on_reply`: with the
///   reply, or with `Err(CsError::Library)` and `expired = true` when the request was never
///   sent (its encoding failed) or its caller gave up on it.
/// - `route` only reads the state: queued events are routed when taken, so a track deleted
///   in between is seen as deleted.
pub trait Service {
    /// The libqb service name (`"cmap"`, `"votequorum"`).
    const NAME: &'static str;
    /// The request kinds.
    type Kind: Copy + PartialEq + fmt::Debug;
    /// A request; [`Message`] gives its id, exact length, encoding and decoding.
    type Request<'a>: Message<'a>;
    /// A successful reply's body.
    type Response<'a>;
    /// A routed event, as delivered to the application.
    type Event<'a>;
    /// Client-side bookkeeping (CMAP's track table; `()` for none).
    type State: Default;
    /// What the caller attaches to a request for the service's bookkeeping (CMAP: the track
    /// context handed back with each notification); [`Connection::submit`] passes
    /// `Default::default()`, [`Connection::submit_with_context`] the caller's.
    type Context: Copy + Default;

    /// The kind of a request.
    fn kind(req: &Self::Request<'_>) -> Self::Kind;
    /// The reply id this kind expects.
    fn response_id(kind: Self::Kind) -> i32;
    /// Whether nothing may be sent behind this request until its reply arrives.
    fn is_barrier(kind: Self::Kind) -> bool;
    /// The exact number of bytes [`Service::encode`] writes for `req`, computed without
    /// encoding (saturating for requests too large to encode). Default:
    /// [`Message::encoded_len`].
    fn encoded_len(req: &Self::Request<'_>) -> usize {
        req.encoded_len()
    }
    /// Encodes a request into the start of `out`, after `on_submit` has accepted it; returns
    /// its length. Default: [`Message::encode`].
    fn encode(req: &Self::Request<'_>, out: &mut [u8]) -> Result<usize, EncodeError> {
        req.encode(out)
    }
    /// Records what a request does to client-side state before it is sent; `ctx` is the
    /// caller's context for it. On error nothing may have changed.
    fn on_submit(
        state: &mut Self::State,
        req: &Self::Request<'_>,
        ctx: Self::Context,
        token: Token,
    ) -> Result<(), SubmitError>;
    /// Decodes a reply frame into its status and body.
    fn decode_reply(buf: &[u8]) -> Result<Result<Self::Response<'_>, CsError>, DecodeError>;
    /// Updates client-side state from a reply (`expired` if its caller has given up on it, or
    /// it was never sent).
    fn on_reply(
        state: &mut Self::State,
        token: Token,
        reply: &Result<Self::Response<'_>, CsError>,
        expired: bool,
    );
    /// Decodes an event frame and routes it; `Ok(None)` means skip it (e.g. a deleted track).
    fn route<'a>(state: &Self::State, buf: &'a [u8]) -> Result<Option<Self::Event<'a>>, DecodeError>;
}

pub use crate::cmap::{Cmap, CmapEvent, CmapState, Track};
pub use crate::votequorum::Votequorum;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum State {
    /// Created; the setup request has not been answered.
    Connecting,
    /// Set up; requests may be submitted.
    Ready,
    /// The transport reported the peer gone, or the peer broke the protocol.
    Closed,
    /// The application finalized the connection.
    Finalized,
}

/// Why a request could not be submitted. Nothing was written and no state changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SubmitError {
    /// The connection is not set up yet.
    NotReady,
    /// The connection is closed (`CS_ERR_LIBRARY`).
    Closed,
    /// The connection was finalized (`CS_ERR_BAD_HANDLE`).
    Finalized,
    /// `capacity` requests are already outstanding; complete one first.
    PipelineFull {
        /// The outstanding-request capacity.
        capacity: usize,
    },
    /// A request that must be answered before anything else is sent (votequorum
    /// QDEVICE_REGISTER) is outstanding.
    Barrier,
    /// The track table is full.
    TooManyTracks {
        /// The track capacity.
        capacity: usize,
    },
    /// The track handle is not one of this connection's tracks (`CS_ERR_BAD_HANDLE`).
    UnknownTrack {
        /// The handle given.
        track_handle: u64,
    },
    /// The request is larger than the negotiated maximum message size (`CS_ERR_TOO_BIG`).
    TooLarge {
        /// Request size.
        len: usize,
        /// Negotiated maximum.
        max: usize,
    },
    /// The request could not be encoded.
    Encode(EncodeError),
}

impl SubmitError {
    /// The `cs_error_t` libcmap would report in this situation.
    pub fn cs_error(self) -> CsError {
        match self {
            Self::NotReady | Self::Closed => CsError::Library,
            Self::Finalized | Self::UnknownTrack { .. } => CsError::BadHandle,
            Self::PipelineFull { .. } | Self::Barrier => CsError::TryAgain,
            Self::TooManyTracks { .. } => CsError::NoResources,
            Self::TooLarge { .. } => CsError::TooBig,
            Self::Encode(EncodeError::NameTooLong { .. }) => CsError::NameTooLong,
            Self::Encode(EncodeError::BufferTooSmall { .. }) => CsError::NoMemory,
            Self::Encode(_) => CsError::InvalidParam,
        }
    }
}

impl fmt::Display for SubmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReady => f.write_str("the connection is not set up yet"),
            Self::Closed => f.write_str("the connection is closed"),
            Self::Finalized => f.write_str("the connection was finalized"),
            Self::PipelineFull { capacity } => write!(f, "{capacity} requests are already outstanding"),
            Self::Barrier => {
                f.write_str("a qdevice registration is outstanding; nothing may be sent behind it")
            }
            Self::TooManyTracks { capacity } => write!(f, "the track table is full ({capacity} tracks)"),
            Self::UnknownTrack { track_handle } => write!(f, "track handle {track_handle:#x} is not known"),
            Self::TooLarge { len, max } => write!(f, "request of {len} bytes exceeds the maximum of {max}"),
            Self::Encode(e) => write!(f, "cannot encode the request: {e}"),
        }
    }
}

impl core::error::Error for SubmitError {}

/// Why bytes handed to the connection were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum HandleError {
    /// The bytes are malformed; the connection is now closed.
    Decode(DecodeError),
    /// The server refused the connection (negative errno).
    Setup(SetupError),
    /// The server chose a transport this client cannot use.
    UnsupportedTransport(ConnectionType),
    /// Bytes arrived that the connection's state does not expect (e.g. a setup response
    /// twice, or a reply with nothing outstanding); the connection is now closed.
    Unexpected,
    /// A reply's id is neither the expected one nor corosync's generic reject; the
    /// connection is out of step and is now closed.
    ReplyMismatch {
        /// The id the oldest outstanding request expects.
        expected: i32,
        /// The id received.
        got: i32,
    },
    /// The event queue is full; dispatch events before reading more. The event was not taken.
    EventQueueFull {
        /// Maximum queued events.
        events: usize,
        /// Bytes of event storage.
        bytes: usize,
    },
}

impl HandleError {
    /// The `cs_error_t` libcmap would report.
    pub fn cs_error(self) -> CsError {
        match self {
            Self::Setup(e) => e.cs_error(),
            Self::UnsupportedTransport(_) => CsError::NotSupported,
            Self::EventQueueFull { .. } => CsError::TryAgain,
            _ => CsError::Library,
        }
    }
}

impl fmt::Display for HandleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decode(e) => write!(f, "malformed frame from the server: {e}"),
            Self::Setup(e) => e.fmt(f),
            Self::UnsupportedTransport(t) => write!(f, "unsupported transport type {}", t.to_raw()),
            Self::Unexpected => f.write_str("unexpected frame for the connection's state"),
            Self::ReplyMismatch { expected, got } => {
                write!(f, "reply id {got} does not answer the outstanding request (expected id {expected})")
            }
            Self::EventQueueFull { events, bytes } => {
                write!(f, "event queue full ({events} events, {bytes} bytes)")
            }
        }
    }
}

impl core::error::Error for HandleError {}

/// A request that was submitted: its token and the length of its bytes in the output buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Submitted {
    /// The request's token.
    pub token: Token,
    /// Bytes written at the start of the output buffer; send exactly these.
    pub len: usize,
}

/// A reply matched to its request.
#[derive(Debug)]
pub struct Completion<'b, S: Service> {
    /// The request's token.
    pub token: Token,
    /// The reply's body, or the `cs_error_t` it carried.
    pub result: Result<S::Response<'b>, CsError>,
}

/// A request that ended without a reply the caller will see.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Failure {
    /// The request's token.
    pub token: Token,
    /// Why.
    pub reason: FailureReason,
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FailureReason {
    /// Its deadline passed; a reply that arrives later is discarded.
    TimedOut,
    /// The connection closed first.
    ConnectionLost,
}

impl FailureReason {
    /// The `cs_error_t` for the failure: `CS_ERR_TIMEOUT` or `CS_ERR_LIBRARY`.
    pub fn cs_error(self) -> CsError {
        match self {
            Self::TimedOut => CsError::Timeout,
            Self::ConnectionLost => CsError::Library,
        }
    }
}

/// An event taken from the queue, or routed with [`Connection::route`].
#[derive(Debug)]
pub enum Polled<E> {
    /// An event for the application.
    Event(E),
    /// A notification for a track this client no longer has; libcmap skips these silently,
    /// but they still count as the message of a `DispatchMode::One` dispatch.
    Skipped,
    /// A well-formed frame whose id this service does not define (e.g. the qdevice extra-info
    /// notification, id 7, that corosync's development branch after 3.1.10 sends to every
    /// votequorum tracker). Counted in [`Connection::unknown_events`] and skipped: it never
    /// reaches the application and does not count as the message of a `DispatchMode::One`
    /// dispatch. libvotequorum and libcmap 3.1.x end the dispatch with `CS_ERR_LIBRARY`
    /// instead (the `default:` branch of `votequorum_dispatch` / `cmap_dispatch`).
    /// [`Connection::poll_event`] skips these itself; only [`Connection::route`] returns it.
    Unknown {
        /// The frame's id.
        id: i32,
    },
    /// A frame that is malformed (a bad size, or a known id with a body that does not decode);
    /// dispatch reports `CS_ERR_LIBRARY`, as libcmap does.
    Invalid(DecodeError),
}

#[derive(Clone, Copy, Debug)]
struct Pending<K> {
    token: Token,
    kind: K,
    deadline: Option<Instant>,
    /// Reported as failed; its reply, when it comes, is discarded.
    failed: bool,
}

/// The client state machine of one libqb connection to one service.
///
/// `PENDING` bounds outstanding requests, `EVENTS` and `EVENT_BYTES` bound the event queue
/// (events handed in but not yet taken). All storage is inline; nothing is allocated.
pub struct Connection<
    S: Service,
    const PENDING: usize = 16,
    const EVENTS: usize = 16,
    const EVENT_BYTES: usize = 4096,
> {
    state: State,
    requested_max: u32,
    max_msg_size: usize,
    next_token: u64,
    pending: Deque<Pending<S::Kind>, PENDING>,
    /// Failures not yet taken by `poll_failure`.
    failures: Deque<Failure, PENDING>,
    event_lens: Deque<u32, EVENTS>,
    event_bytes: Vec<u8, EVENT_BYTES>,
    /// Events skipped because their id is unknown ([`Polled::Unknown`]).
    unknown_events: u64,
    service: S::State,
}

impl<S: Service, const P: usize, const E: usize, const B: usize> fmt::Debug for Connection<S, P, E, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("service", &S::NAME)
            .field("state", &self.state)
            .field("outstanding", &self.pending.len())
            .field("queued_events", &self.event_lens.len())
            .finish()
    }
}

impl<S: Service, const P: usize, const E: usize, const B: usize> Default for Connection<S, P, E, B> {
    fn default() -> Self {
        Self::new(crate::qb::DEFAULT_MAX_MSG_SIZE)
    }
}

impl<S: Service, const P: usize, const E: usize, const B: usize> Connection<S, P, E, B> {
    /// A connection that will ask the server for `max_msg_size` (libcmap asks for 1 MiB; a
    /// smaller size means smaller shared-memory rings and a faster connect).
    pub fn new(max_msg_size: u32) -> Self {
        Self {
            state: State::Connecting,
            requested_max: ConnectRequest::new(max_msg_size).max_msg_size,
            max_msg_size: 0,
            next_token: 0,
            pending: Deque::new(),
            failures: Deque::new(),
            event_lens: Deque::new(),
            event_bytes: Vec::new(),
            unknown_events: 0,
            service: S::State::default(),
        }
    }

    /// The service's libqb name, to connect to.
    pub fn service_name(&self) -> &'static str {
        S::NAME
    }

    /// The life-cycle state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The negotiated maximum message size (0 before setup).
    pub fn max_msg_size(&self) -> usize {
        self.max_msg_size
    }

    /// Requests outstanding (including timed-out ones whose late reply is still due).
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    /// The service's client-side state (CMAP: the track table).
    pub fn service_state(&self) -> &S::State {
        &self.service
    }

    /// Writes the 24-byte setup request into `out`; send it on the setup socket.
    pub fn encode_setup(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        ConnectRequest { max_msg_size: self.requested_max }.encode(out)
    }

    /// Hands in the 12328-byte setup response. On success the connection is ready and the
    /// adapter opens the transport the response names.
    pub fn handle_setup<'b>(&mut self, bytes: &'b [u8]) -> Result<ConnectResponse<'b>, HandleError> {
        if self.state != State::Connecting {
            return Err(HandleError::Unexpected);
        }
        let outcome = match ConnectResponse::decode(bytes) {
            Ok(Ok(r)) if matches!(r.connection_type, ConnectionType::Shm | ConnectionType::Socket) => Ok(r),
            Ok(Ok(r)) => Err(HandleError::UnsupportedTransport(r.connection_type)),
            Ok(Err(e)) => Err(HandleError::Setup(e)),
            Err(e) => Err(HandleError::Decode(e)),
        };
        match outcome {
            Ok(r) => {
                self.state = State::Ready;
                self.max_msg_size = r.max_msg_size as usize;
            }
            Err(_) => self.state = State::Closed,
        }
        outcome
    }

    /// Marks the connection ready after a setup negotiated outside libqb (the stream
    /// framing's hello and accept, [`crate::stream`]), with `max_msg_size` bytes granted for
    /// each message.
    ///
    /// # Errors
    /// [`HandleError::Unexpected`] unless the connection is still connecting.
    pub fn handle_stream_setup(&mut self, max_msg_size: usize) -> Result<(), HandleError> {
        if self.state != State::Connecting {
            return Err(HandleError::Unexpected);
        }
        self.state = State::Ready;
        self.max_msg_size = max_msg_size;
        Ok(())
    }

    fn check_ready(&self) -> Result<(), SubmitError> {
        match self.state {
            State::Connecting => Err(SubmitError::NotReady),
            State::Closed => Err(SubmitError::Closed),
            State::Finalized => Err(SubmitError::Finalized),
            State::Ready => Ok(()),
        }
    }

    /// Encodes a request into `out` and records it as outstanding. `now` and `timeout` set its
    /// deadline (`None`: wait forever, as libcmap does). Send exactly `len` bytes afterwards.
    /// On error no state changes and `out` is untouched. The service gets its default
    /// [`Service::Context`]; see [`Connection::submit_with_context`].
    #[must_use = "the request must be sent, or its error handled"]
    pub fn submit(
        &mut self,
        req: &S::Request<'_>,
        now: Instant,
        timeout: Option<Duration>,
        out: &mut [u8],
    ) -> Result<Submitted, SubmitError> {
        self.submit_with_context(req, S::Context::default(), now, timeout, out)
    }

    /// [`Connection::submit`] with the caller's context `ctx` for the service's bookkeeping
    /// (CMAP: the context of a TRACK_ADD, handed back with each of its notifications).
    #[must_use = "the request must be sent, or its error handled"]
    pub fn submit_with_context(
        &mut self,
        req: &S::Request<'_>,
        ctx: S::Context,
        now: Instant,
        timeout: Option<Duration>,
        out: &mut [u8],
    ) -> Result<Submitted, SubmitError> {
        self.check_ready()?;
        if self.pending.is_full() {
            return Err(SubmitError::PipelineFull { capacity: P });
        }
        if self.pending.iter().any(|p| S::is_barrier(p.kind)) {
            return Err(SubmitError::Barrier);
        }
        let len = S::encoded_len(req);
        if len > self.max_msg_size {
            return Err(SubmitError::TooLarge { len, max: self.max_msg_size });
        }
        let kind = S::kind(req);
        let token = Token(self.next_token);
        S::on_submit(&mut self.service, req, ctx, token)?;
        if let Err(e) = S::encode(req, out) {
            // Undo the bookkeeping as if the request had been answered with an error.
            S::on_reply(&mut self.service, token, &Err(CsError::Library), true);
            return Err(SubmitError::Encode(e));
        }
        let deadline = timeout.map(|t| now.saturating_add(t));
        // Cannot fail: fullness was checked above.
        let _ = self.pending.push_back(Pending { token, kind, deadline, failed: false });
        self.next_token += 1;
        Ok(Submitted { token, len })
    }

    /// Hands in one reply frame. Replies are matched by position to the oldest outstanding
    /// request. Returns `Ok(None)` when the reply answers a request that already failed (timed
    /// out): the late reply is discarded, never given to another request.
    pub fn handle_response<'b>(&mut self, bytes: &'b [u8]) -> Result<Option<Completion<'b, S>>, HandleError> {
        let Some(front) = self.pending.front().copied() else {
            return Err(self.close_with(HandleError::Unexpected));
        };
        let hdr = ReplyHeader::decode(bytes).map_err(|e| self.close_with(HandleError::Decode(e)))?;
        let expected = S::response_id(front.kind);
        let result = if hdr.id == expected {
            S::decode_reply(bytes).map_err(|e| self.close_with(HandleError::Decode(e)))?
        } else if hdr.id == 0 && hdr.size == size_of::<crate::wire::qb::ResponseHeader>() && hdr.error != 1 {
            // corosync's generic reject of an unknown or refused request.
            Err(CsError::from_raw(hdr.error))
        } else {
            return Err(self.close_with(HandleError::ReplyMismatch { expected, got: hdr.id }));
        };
        self.pending.pop_front();
        S::on_reply(&mut self.service, front.token, &result, front.failed);
        Ok((!front.failed).then_some(Completion { token: front.token, result }))
    }

    /// Hands in one event frame; it is queued until taken with [`Connection::poll_event`].
    pub fn handle_event(&mut self, bytes: &[u8]) -> Result<(), HandleError> {
        let full = HandleError::EventQueueFull { events: E, bytes: B };
        if self.event_lens.is_full() || self.event_bytes.len() + bytes.len() > B {
            return Err(full);
        }
        let len = u32::try_from(bytes.len()).map_err(|_| full)?;
        // Cannot fail: both capacities were checked above.
        let _ = self.event_bytes.extend_from_slice(bytes);
        let _ = self.event_lens.push_back(len);
        Ok(())
    }

    /// Takes the oldest queued event, copying its frame into `scratch`, and routes it.
    /// `None` when the queue is empty. Events with an unknown id are skipped and counted
    /// ([`Polled::Unknown`]), so this never returns that variant. A frame larger than `scratch`
    /// stays queued and is reported as `Err(EncodeError::BufferTooSmall)`.
    #[must_use = "a taken event is gone from the queue"]
    pub fn poll_event<'o>(
        &mut self,
        scratch: &'o mut [u8],
    ) -> Option<Result<Polled<S::Event<'o>>, EncodeError>> {
        self.drop_front_events(false);
        let len = *self.event_lens.front()? as usize;
        let Some(dst) = scratch.get_mut(..len) else {
            return Some(Err(EncodeError::BufferTooSmall { required: len, available: scratch.len() }));
        };
        dst.copy_from_slice(&self.event_bytes[..len]);
        self.pop_event(len);
        Some(Ok(self.route(&scratch[..len])))
    }

    /// Drops queued events at the front of the queue that are for tracks this client no
    /// longer has, or have an unknown id (counted in [`Connection::unknown_events`]).
    pub fn drop_skipped_events(&mut self) {
        self.drop_front_events(true);
    }

    /// Drops the front events with an unknown id, and with `tracks` those for deleted tracks.
    fn drop_front_events(&mut self, tracks: bool) {
        while let Some(&len) = self.event_lens.front() {
            let len = len as usize;
            match S::route(&self.service, &self.event_bytes[..len]) {
                Err(DecodeError::UnknownId { .. }) => self.unknown_events += 1,
                Ok(None) if tracks => {}
                _ => break,
            }
            self.pop_event(len);
        }
    }

    fn pop_event(&mut self, len: usize) {
        self.event_bytes.copy_within(len.., 0);
        self.event_bytes.truncate(self.event_bytes.len() - len);
        self.event_lens.pop_front();
    }

    /// Routes one event frame without queueing it: for adapters that read events straight
    /// from their own buffer during dispatch. An unknown id is counted (see
    /// [`Connection::unknown_events`]); skip such a frame and read the next.
    #[must_use = "an unknown event is counted; the result says what the frame was"]
    pub fn route<'o>(&mut self, frame: &'o [u8]) -> Polled<S::Event<'o>> {
        match S::route(&self.service, frame) {
            Ok(Some(e)) => Polled::Event(e),
            Ok(None) => Polled::Skipped,
            Err(DecodeError::UnknownId { id }) => {
                self.unknown_events += 1;
                Polled::Unknown { id }
            }
            Err(e) => Polled::Invalid(e),
        }
    }

    /// Events skipped so far because their id is not one this service defines
    /// ([`Polled::Unknown`]): nonzero when a newer daemon sends notifications this library
    /// does not know.
    pub fn unknown_events(&self) -> u64 {
        self.unknown_events
    }

    /// Events queued.
    pub fn queued_events(&self) -> usize {
        self.event_lens.len()
    }

    /// The earliest deadline of an outstanding request: call [`Connection::handle_timeout`]
    /// when it passes.
    #[must_use = "the adapter must wake by this deadline"]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending.iter().filter(|p| !p.failed).filter_map(|p| p.deadline).min()
    }

    /// Hands in the current time: requests whose deadline has passed fail with
    /// [`FailureReason::TimedOut`] (taken with [`Connection::poll_failure`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        for p in self.pending.iter_mut() {
            if !p.failed && p.deadline.is_some_and(|d| d <= now) {
                p.failed = true;
                // Cannot fail: failures holds at most one entry per pending request.
                let _ = self.failures.push_back(Failure { token: p.token, reason: FailureReason::TimedOut });
            }
        }
    }

    /// Takes the next request failure (timeout or lost connection).
    #[must_use = "a taken failure is gone; report it to its caller"]
    pub fn poll_failure(&mut self) -> Option<Failure> {
        self.failures.pop_front()
    }

    /// Whether the next reply answers a request that already failed (timed out): it will be
    /// discarded by [`Connection::handle_response`].
    pub fn next_reply_is_late(&self) -> bool {
        self.pending.front().is_some_and(|p| p.failed)
    }

    /// Whether `token` is still waiting for its reply (it has neither completed nor failed).
    pub fn is_waiting(&self, token: Token) -> bool {
        self.pending.iter().any(|p| p.token == token && !p.failed)
    }

    /// Hands in "the connection closed" (EOF or HUP on the setup socket, `ref_count` dropped):
    /// every outstanding request fails with [`FailureReason::ConnectionLost`].
    pub fn handle_closed(&mut self) {
        if self.state != State::Finalized {
            self.state = State::Closed;
        }
        while let Some(p) = self.pending.pop_front() {
            if !p.failed {
                let _ = self
                    .failures
                    .push_back(Failure { token: p.token, reason: FailureReason::ConnectionLost });
            }
        }
    }

    fn close_with(&mut self, e: HandleError) -> HandleError {
        self.handle_closed();
        e
    }

    /// Finalizes the connection: no further requests; a running dispatch ends with
    /// `CS_ERR_BAD_HANDLE`. The adapter then closes the transport.
    pub fn finalize(&mut self) {
        self.handle_closed();
        self.state = State::Finalized;
    }

    /// Frame length at the start of a byte stream (stream transports split replies with it).
    pub fn frame_len(buf: &[u8]) -> Result<Status<usize>, DecodeError> {
        crate::codec::frame_len(buf, size_of::<crate::wire::qb::ResponseHeader>())
    }
}
