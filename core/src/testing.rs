//! An in-memory client ↔ server pair with a fake clock, for end-to-end protocol tests without
//! an OS, root or a daemon (feature `testing`, which needs `alloc`).
//!
//! A [`Pair`] connects client [`Connection`]s to one server engine (e.g.
//! [`CmapEngine`](crate::server::cmap::CmapEngine) or
//! [`QuorumEngine`](crate::server::votequorum::QuorumEngine); any [`Engine`]) and plays the adapters of both
//! sides, following both driving contracts literally:
//!
//! - [`Pair::connect`] does the libqb setup handshake in memory (`encode_setup` → a
//!   `ConnectResponse` the pair builds → `handle_setup`) and `connect`s the engine;
//! - a submitted request's bytes wait on the connection's request "wire";
//! - [`Pair::step`] hands one waiting request per connection to `handle_request`, **drains** the
//!   engine's notifications onto the event wire of the connection each names, hands every event
//!   wire to its connection's `handle_event` (until its queue is full: the rest wait, as in a
//!   ring), and only then hands the reply to `handle_response`; [`Pair::drive`] steps until
//!   nothing moves;
//! - replies can be held back per connection ([`Pair::hold_replies`]) to pipeline requests, let
//!   them time out, and release them late;
//! - the clock is fake: [`Pair::advance`] moves it and calls every connection's
//!   `handle_timeout`;
//! - either side can close a connection ([`Pair::finalize`], [`Pair::close_by_server`]).
//!
//! Completed requests are collected per connection as owned [`Done`] values; events stay in
//! the connection's own queue, to be taken with [`Connection::poll_event`] as an application
//! would.
//!
//! ```
//! use corowire::cmap::{Key, Request, Response, Value};
//! use corowire::conn::Cmap;
//! use corowire::server::cmap::CmapEngine;
//! use corowire::server::store::BTreeStore;
//! use corowire::testing::Pair;
//! use corowire::Duration;
//!
//! let engine: CmapEngine<BTreeStore> = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 1);
//! let mut pair: Pair<_, Cmap> = Pair::new(engine);
//! let c = pair.connect()?;
//!
//! // A SET, driven to its reply.
//! let key = Key::new(b"test.answer")?;
//! let set = pair.call(c, &Request::Set { key, value: Value::UInt32(42) })?;
//! assert_eq!(set.response(), Ok(Response::Set));
//!
//! // A GET whose reply is held back past its deadline: it times out, and the late reply is
//! // discarded when it finally arrives.
//! pair.hold_replies(c, true);
//! let get = pair.submit(c, &Request::Get { key, value_len: 8 }, Some(Duration::from_secs(1)))?;
//! pair.drive()?;
//! pair.advance(Duration::from_secs(2));
//! assert_eq!(pair.conn_mut(c).poll_failure().map(|f| f.token), Some(get));
//! pair.hold_replies(c, false);
//! pair.drive()?;
//! assert!(pair.take_done(c, get).is_none());
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

extern crate alloc;

use crate::conn::{Connection, HandleError, Service, SubmitError, Submitted, Token};
use crate::error::{CsError, DecodeError, EncodeError};
use crate::qb::{ConnectRequest, ConnectResponse, ConnectionType, CONNECTION_RESPONSE_LEN};
use crate::server::{ConnId, Engine, ServerError};
use crate::time::{Duration, Instant};
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::marker::PhantomData;

/// A client connection of a [`Pair`]: its index, which is also the engine's [`ConnId`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub usize);

impl ClientId {
    fn conn_id(self) -> ConnId {
        // The pair never holds more than `u32::MAX` clients (`connect` checks).
        ConnId(self.0 as u32)
    }
}

/// Why the pair could not move bytes: one side broke its contract, or the caller named a client
/// the pair does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairError {
    /// The engine refused a call (e.g. `TooManyConnections` at connect).
    Server(ServerError),
    /// The client connection refused a frame from the engine (and closed itself).
    Client(HandleError),
    /// The client's setup request did not decode.
    SetupRequest(DecodeError),
    /// The setup response or a request could not be encoded.
    Encode(EncodeError),
    /// No client with this id.
    UnknownClient(ClientId),
}

impl fmt::Display for PairError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server(e) => write!(f, "the engine refused: {e}"),
            Self::Client(e) => write!(f, "the client refused a frame: {e}"),
            Self::SetupRequest(e) => write!(f, "malformed setup request: {e}"),
            Self::Encode(e) => write!(f, "cannot encode: {e}"),
            Self::UnknownClient(c) => write!(f, "no client {}", c.0),
        }
    }
}

impl core::error::Error for PairError {}

impl From<ServerError> for PairError {
    fn from(e: ServerError) -> Self {
        Self::Server(e)
    }
}

impl From<EncodeError> for PairError {
    fn from(e: EncodeError) -> Self {
        Self::Encode(e)
    }
}

/// A completed request, owned: its token and its reply (the frame, or the `cs_error_t` of a
/// reply without a body, such as corosync's generic reject).
pub struct Done<S: Service> {
    /// The request's token.
    pub token: Token,
    reply: Result<Vec<u8>, CsError>,
    service: PhantomData<fn() -> S>,
}

impl<S: Service> Done<S> {
    /// The reply as the connection's `handle_response` returned it: the body, or the reply's
    /// `cs_error_t`.
    pub fn response(&self) -> Result<S::Response<'_>, CsError> {
        match &self.reply {
            // The frame decoded once already, in `handle_response`; it decodes again the same.
            Ok(frame) => S::decode_reply(frame).unwrap_or(Err(CsError::MessageError)),
            Err(e) => Err(*e),
        }
    }

    /// The reply's status: `Ok(())` or its `cs_error_t`.
    pub fn status(&self) -> Result<(), CsError> {
        self.response().map(drop)
    }
}

impl<S: Service> fmt::Debug for Done<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Done").field("token", &self.token).field("status", &self.status()).finish()
    }
}

/// One client connection and its three wires.
struct Client<S: Service, const P: usize, const E: usize, const B: usize> {
    conn: Connection<S, P, E, B>,
    /// Request frames sent but not yet handled by the engine.
    requests: VecDeque<Vec<u8>>,
    /// Reply frames sent by the engine, not yet handed to the connection.
    replies: VecDeque<Vec<u8>>,
    /// Event frames sent by the engine, not yet handed to the connection.
    events: VecDeque<Vec<u8>>,
    hold: bool,
    /// Completed requests not yet taken.
    done: VecDeque<Done<S>>,
}

impl<S: Service, const P: usize, const E: usize, const B: usize> Client<S, P, E, B> {
    fn cut(&mut self) {
        self.requests.clear();
        self.replies.clear();
        self.events.clear();
    }
}

/// The panic of every accessor given an id the pair did not hand out.
fn missing(c: ClientId) -> ! {
    panic!("no client {} in this pair", c.0)
}

/// Ring names the pair's setup response carries (nothing opens them).
const RING_NAMES: [&[u8]; 3] = [b"pair-request", b"pair-response", b"pair-event"];

/// One server engine `E` and any number of client connections of service `S` (with the
/// connection's capacities `P`, `EV`, `B`), joined in memory, with a fake clock.
///
/// See the [module documentation](self) for what each call moves.
pub struct Pair<E: Engine, S: Service, const P: usize = 16, const EV: usize = 16, const B: usize = 4096> {
    /// The server engine, for direct inspection or daemon-side changes (e.g. `update`). Drain
    /// what such a change queues with [`Pair::drive`].
    pub engine: E,
    clients: Vec<Client<S, P, EV, B>>,
    now: Instant,
    max_msg_size: u32,
    /// Scratch for encoded requests and replies.
    out: Vec<u8>,
    /// Scratch for notifications.
    note: Vec<u8>,
}

impl<E: Engine, S: Service, const P: usize, const EV: usize, const B: usize> fmt::Debug
    for Pair<E, S, P, EV, B>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pair").field("clients", &self.clients.len()).field("now", &self.now).finish()
    }
}

impl<E: Engine, S: Service, const P: usize, const EV: usize, const B: usize> Pair<E, S, P, EV, B> {
    /// A pair around `engine` whose connections ask for 64 KiB messages: room for a 16384-byte
    /// value in a request, a reply and a notification with both values. The clock starts at 0.
    pub fn new(engine: E) -> Self {
        Self::with_max_msg_size(engine, 65536)
    }

    /// A pair whose connections ask for (and get) `max_msg_size`-byte messages.
    pub fn with_max_msg_size(engine: E, max_msg_size: u32) -> Self {
        let max = ConnectRequest::new(max_msg_size).max_msg_size;
        Self {
            engine,
            clients: Vec::new(),
            now: Instant::default(),
            max_msg_size: max,
            out: vec![0; max as usize],
            note: vec![0; max as usize],
        }
    }

    /// Opens a new client connection: the setup handshake in memory, then the engine's
    /// `connect`. Its events and replies flow from the next [`Pair::step`].
    ///
    /// Errors: the engine's connection table is full ([`ServerError::TooManyConnections`]), or a
    /// side refused the handshake.
    pub fn connect(&mut self) -> Result<ClientId, PairError> {
        let id = ClientId(self.clients.len());
        if u32::try_from(id.0).is_err() {
            return Err(PairError::Server(ServerError::TooManyConnections));
        }
        let mut conn = Connection::new(self.max_msg_size);
        let mut setup = [0u8; CONNECTION_RESPONSE_LEN];
        let n = conn.encode_setup(&mut setup)?;
        let request = ConnectRequest::decode(&setup[..n]).map_err(PairError::SetupRequest)?;
        let [req, resp, event] = RING_NAMES;
        let response = ConnectResponse {
            connection_type: ConnectionType::Shm,
            max_msg_size: request.max_msg_size,
            connection: id.0 as u64,
            request: req,
            response: resp,
            event,
        };
        let n = response.encode(&mut setup)?;
        self.engine.connect(id.conn_id())?;
        if let Err(e) = conn.handle_setup(&setup[..n]) {
            self.engine.disconnect(id.conn_id());
            return Err(PairError::Client(e));
        }
        self.clients.push(Client {
            conn,
            requests: VecDeque::new(),
            replies: VecDeque::new(),
            events: VecDeque::new(),
            hold: false,
            done: VecDeque::new(),
        });
        Ok(id)
    }

    fn client(&mut self, c: ClientId) -> &mut Client<S, P, EV, B> {
        self.clients.get_mut(c.0).unwrap_or_else(|| missing(c))
    }

    fn client_ref(&self, c: ClientId) -> &Client<S, P, EV, B> {
        self.clients.get(c.0).unwrap_or_else(|| missing(c))
    }

    /// The client's connection, to poll its events and failures or inspect its state.
    ///
    /// # Panics
    /// If the pair has no client `c` (ids come from [`Pair::connect`]).
    pub fn conn(&self, c: ClientId) -> &Connection<S, P, EV, B> {
        &self.client_ref(c).conn
    }

    /// The client's connection, mutably. Bytes it is asked to encode directly are not sent: use
    /// [`Pair::submit_with`] for that.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn conn_mut(&mut self, c: ClientId) -> &mut Connection<S, P, EV, B> {
        &mut self.client(c).conn
    }

    /// The fake clock's current instant.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Moves the clock forward by `d` and hands the new time to every connection's
    /// `handle_timeout`; the failures wait in each connection's `poll_failure`.
    pub fn advance(&mut self, d: Duration) {
        self.now = self.now.saturating_add(d);
        for client in &mut self.clients {
            client.conn.handle_timeout(self.now);
        }
    }

    /// Submits `req` on client `c` with an optional timeout from now, and puts its bytes on the
    /// request wire. Errors are the connection's; then nothing is sent.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn submit(
        &mut self,
        c: ClientId,
        req: &S::Request<'_>,
        timeout: Option<Duration>,
    ) -> Result<Token, SubmitError> {
        self.submit_with(c, |conn, now, out| conn.submit(req, now, timeout, out))
    }

    /// Runs `f` with client `c`'s connection, the current time and an output buffer of the
    /// negotiated size, and sends the `len` bytes of the request it submits. For submitting
    /// calls other than `submit` (e.g. CMAP's `track_add`, `track_delete`).
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn submit_with(
        &mut self,
        c: ClientId,
        f: impl FnOnce(&mut Connection<S, P, EV, B>, Instant, &mut [u8]) -> Result<Submitted, SubmitError>,
    ) -> Result<Token, SubmitError> {
        let now = self.now;
        let client = self.clients.get_mut(c.0).unwrap_or_else(|| missing(c));
        let sub = f(&mut client.conn, now, &mut self.out)?;
        client.requests.push_back(self.out[..sub.len].to_vec());
        Ok(sub.token)
    }

    /// Submits `req` without a timeout, drives the pair and takes the request's completion.
    ///
    /// Errors: the connection refused the request, driving failed, or nothing completed it
    /// (its replies are held back, or the connection closed).
    pub fn call(&mut self, c: ClientId, req: &S::Request<'_>) -> Result<Done<S>, CallError> {
        let token = self.submit(c, req, None).map_err(CallError::Submit)?;
        self.drive().map_err(CallError::Pair)?;
        self.take_done(c, token).ok_or(CallError::NoReply(token))
    }

    /// Holds back (`true`) or lets through (`false`) the replies to client `c`. The engine
    /// still handles its requests and sends their events; the replies wait on the wire.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn hold_replies(&mut self, c: ClientId, hold: bool) {
        self.client(c).hold = hold;
    }

    /// Frames waiting on client `c`'s wires: (requests, replies, events).
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn in_flight(&self, c: ClientId) -> (usize, usize, usize) {
        let cl = self.client_ref(c);
        (cl.requests.len(), cl.replies.len(), cl.events.len())
    }

    /// Takes the completion of `token` on client `c`, if its reply has been handed in.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn take_done(&mut self, c: ClientId, token: Token) -> Option<Done<S>> {
        let done = &mut self.client(c).done;
        let i = done.iter().position(|d| d.token == token)?;
        done.remove(i)
    }

    /// Takes the oldest completion on client `c`.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn next_done(&mut self, c: ClientId) -> Option<Done<S>> {
        self.client(c).done.pop_front()
    }

    /// The application finalizes client `c` (its outstanding requests fail with
    /// `ConnectionLost`), then the adapter closes the transport: the engine forgets the
    /// connection and frames on its wires are lost.
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn finalize(&mut self, c: ClientId) {
        self.client(c).conn.finalize();
        self.close(c);
    }

    /// The server side drops client `c` (a daemon restart, a kick): the engine forgets the
    /// connection, frames on its wires are lost, and the client sees the transport close
    /// (`handle_closed`: outstanding requests fail with `ConnectionLost`).
    ///
    /// # Panics
    /// If the pair has no client `c`.
    pub fn close_by_server(&mut self, c: ClientId) {
        self.close(c);
        self.client(c).conn.handle_closed();
    }

    fn close(&mut self, c: ClientId) {
        self.engine.disconnect(c.conn_id());
        self.client(c).cut();
    }

    /// One round: the engine handles one waiting request of each client (draining its
    /// notifications onto the event wires), every event wire is handed to its connection (as
    /// far as its queue has room), then the replies of clients that are not held. Returns
    /// whether any frame moved.
    ///
    /// Errors: the engine failed a request other than by a reply (`OutboxFull` is drained and
    /// retried), or a connection refused a frame (it is then closed).
    pub fn step(&mut self) -> Result<bool, PairError> {
        let mut moved = false;
        for i in 0..self.clients.len() {
            moved |= self.serve_one(ClientId(i))?;
        }
        for client in &mut self.clients {
            while let Some(frame) = client.events.front() {
                match client.conn.handle_event(frame) {
                    Ok(()) => {
                        client.events.pop_front();
                        moved = true;
                    }
                    Err(HandleError::EventQueueFull { .. }) => break,
                    Err(e) => return Err(PairError::Client(e)),
                }
            }
        }
        for client in self.clients.iter_mut().filter(|c| !c.hold) {
            while let Some(frame) = client.replies.pop_front() {
                moved = true;
                let reply = match client.conn.handle_response(&frame) {
                    Ok(Some(done)) => Some((done.token, done.result.map(drop))),
                    Ok(None) => None,
                    Err(e) => return Err(PairError::Client(e)),
                };
                if let Some((token, result)) = reply {
                    let reply = result.map(|()| frame);
                    client.done.push_back(Done { token, reply, service: PhantomData });
                }
            }
        }
        Ok(moved)
    }

    /// Steps until no frame moves: every request handled, every event and reply that can be
    /// handed in handed in.
    pub fn drive(&mut self) -> Result<(), PairError> {
        while self.step()? {}
        Ok(())
    }

    /// The engine handles client `c`'s oldest waiting request, following its contract.
    fn serve_one(&mut self, c: ClientId) -> Result<bool, PairError> {
        let Some(frame) = self.clients[c.0].requests.pop_front() else {
            return Ok(false);
        };
        let mut len = self.engine.handle_request(c.conn_id(), &frame, &mut self.out);
        if len == Err(ServerError::OutboxFull) {
            self.drain_notifications()?;
            len = self.engine.handle_request(c.conn_id(), &frame, &mut self.out);
        }
        let len = len?;
        self.drain_notifications()?;
        let reply = self.out[..len].to_vec();
        self.clients[c.0].replies.push_back(reply);
        Ok(true)
    }

    /// Moves every queued notification onto the event wire of the connection it names.
    fn drain_notifications(&mut self) -> Result<(), PairError> {
        while let Some((conn, len)) = self.engine.poll_notification(&mut self.note)? {
            let frame = self.note[..len].to_vec();
            match self.clients.get_mut(conn.0 as usize) {
                Some(client) => client.events.push_back(frame),
                None => return Err(PairError::UnknownClient(ClientId(conn.0 as usize))),
            }
        }
        Ok(())
    }
}

/// Why [`Pair::call`] produced no completion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallError {
    /// The connection refused the request; nothing was sent.
    Submit(SubmitError),
    /// Driving the pair failed.
    Pair(PairError),
    /// Nothing completed the request (its reply is held back, it timed out, or the connection
    /// closed).
    NoReply(Token),
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Submit(e) => write!(f, "request refused: {e}"),
            Self::Pair(e) => e.fmt(f),
            Self::NoReply(t) => write!(f, "no reply completed request {}", t.0),
        }
    }
}

impl core::error::Error for CallError {}
