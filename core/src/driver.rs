//! The generic blocking client driver: a [`Connection`] driven over any [`Transport`] with
//! caller-provided buffers. It holds the client policy every blocking adapter shares:
//!
//! - **submit with deferred announcements**: requests are written at once and announced with
//!   one [`Transport::flush`] per batch ([`Driver::submit_deferred`], [`Driver::flush`]);
//! - **collect**: read replies until one request completes, handing the completions and
//!   failures of other pipelined requests to a callback ([`Driver::collect`]);
//! - **call** = submit + finish ([`Driver::call`]);
//! - **dispatch** with libcmap's modes, an optional time limit, and callbacks that may stop
//!   the dispatch or finalize the connection ([`Driver::dispatch`], [`Flow`]);
//! - **`CS_ERR_TRY_AGAIN` retries** of a send that flow control refused ([`Retry`]).
//!
//! Nothing here allocates; the adapter chooses the buffers (`Vec<u8>` on Unix, static arrays
//! on a microcontroller) and the connection's capacities.

use core::fmt;

use crate::conn::{Connection, FailureReason, HandleError, Service, State, SubmitError, Submitted, Token};
use crate::dispatch::{Dispatch, DispatchMode, Step, Wait};
use crate::error::CsError;
use crate::time::{Duration, Instant};
use crate::transport::{ErrorKind, Retry, Transport, TransportError};

/// The four buffers a driver works in. Each must hold the largest frame of its kind: a
/// request, a reply, an event (as read), an event (as delivered).
#[derive(Debug)]
pub struct Buffers<B> {
    /// Encoded requests: at least the largest request the transport takes.
    pub request: B,
    /// The reply being handled: at least the largest reply.
    pub reply: B,
    /// The event being read: at least the largest event.
    pub event: B,
    /// The event being delivered: at least the largest event.
    pub scratch: B,
}

/// What a dispatch does after a callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Flow {
    /// Go on as the mode says.
    Continue,
    /// End the dispatch now with `CS_OK` (also a [`DispatchMode::Blocking`] one).
    Stop,
    /// Finalize the connection (`cmap_finalize` inside a callback): the dispatch ends with
    /// `CS_ERR_BAD_HANDLE`, as in libcmap, and so does every later call.
    Finalize,
}

/// An error of a driver call.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error<E> {
    /// The daemon answered with this `cs_error_t` (or a dispatch ended with it).
    Cs(CsError),
    /// The client refused a request larger than the negotiated maximum message size,
    /// without sending it (libcmap's `CS_ERR_TOO_BIG`).
    TooBig {
        /// Encoded length.
        len: usize,
        /// The negotiated maximum.
        max: usize,
    },
    /// The connection refused the request before anything was sent (finalized, pipeline
    /// full, a value that cannot be encoded, ...).
    Submit(SubmitError),
    /// The call's timeout (or the dispatch's time limit) passed first.
    Timeout,
    /// The daemon closed the connection (or died); the connection is unusable.
    Disconnected,
    /// The daemon broke the protocol; the connection is unusable.
    Protocol(HandleError),
    /// The transport failed otherwise (including [`ErrorKind::TryAgain`] once the retry
    /// policy is exhausted).
    Transport(E),
}

impl<E: TransportError> Error<E> {
    /// The error for a transport error, by its kind.
    pub fn from_transport(e: E) -> Self {
        match e.kind() {
            ErrorKind::Disconnected => Self::Disconnected,
            ErrorKind::Timeout => Self::Timeout,
            _ => Self::Transport(e),
        }
    }
}

impl<E: fmt::Display> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cs(e) => write!(f, "corosync returned {e}"),
            Self::TooBig { len, max } => write!(
                f,
                "request of {len} bytes is larger than the negotiated maximum message size of {max} \
                 bytes (checked by the client, not sent)"
            ),
            Self::Submit(e) => write!(f, "request not sent: {e}"),
            Self::Timeout => f.write_str("timed out waiting for corosync"),
            Self::Disconnected => f.write_str("the connection to corosync was lost"),
            Self::Protocol(e) => write!(f, "protocol error: {e}"),
            Self::Transport(e) => write!(f, "transport error: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for Error<E> {}

/// `Result` of a driver call.
pub type Result<T, E> = core::result::Result<T, Error<E>>;

/// A blocking client of one service over transport `T`, with buffers `B` and the
/// connection's capacities `P` (requests in flight), `E` (queued events) and `EB` (queued
/// event bytes).
pub struct Driver<S: Service, T: Transport, B: AsMut<[u8]>, const P: usize, const E: usize, const EB: usize> {
    conn: Connection<S, P, E, EB>,
    transport: T,
    buffers: Buffers<B>,
    timeout: Option<Duration>,
    retry: Option<Retry>,
    /// Requests written whose announcement ([`Transport::flush`]) is still due.
    unflushed: usize,
}

impl<S, T, B, const P: usize, const E: usize, const EB: usize> fmt::Debug for Driver<S, T, B, P, E, EB>
where
    S: Service,
    T: Transport + fmt::Debug,
    B: AsMut<[u8]>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Driver")
            .field("conn", &self.conn)
            .field("transport", &self.transport)
            .field("timeout", &self.timeout)
            .field("unflushed", &self.unflushed)
            .finish_non_exhaustive()
    }
}

/// A submit step: `(connection, now, timeout, request buffer) -> Submitted`, e.g. a call of
/// [`Connection::submit`] or [`Connection::track_add`]. The driver calls it once.
pub type SubmitFn<'f, S, const P: usize, const E: usize, const EB: usize> = dyn FnMut(
        &mut Connection<S, P, E, EB>,
        Instant,
        Option<Duration>,
        &mut [u8],
    ) -> core::result::Result<Submitted, SubmitError>
    + 'f;

impl<S, T, B, const P: usize, const E: usize, const EB: usize> Driver<S, T, B, P, E, EB>
where
    S: Service,
    T: Transport,
    B: AsMut<[u8]>,
{
    /// A driver for `conn` (after a successful
    /// [`Connection::handle_setup`](crate::Connection::handle_setup)) over `transport`.
    /// `timeout` bounds each call (`None`: wait as long as the daemon lives, as libcmap);
    /// `retry` retries sends refused with [`ErrorKind::TryAgain`].
    pub fn new(
        conn: Connection<S, P, E, EB>,
        transport: T,
        buffers: Buffers<B>,
        timeout: Option<Duration>,
        retry: Option<Retry>,
    ) -> Self {
        Self { conn, transport, buffers, timeout, retry, unflushed: 0 }
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection<S, P, E, EB> {
        &self.conn
    }

    /// The protocol state, mutably (e.g. to [`Connection::finalize`] it).
    pub fn connection_mut(&mut self) -> &mut Connection<S, P, E, EB> {
        &mut self.conn
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The timeout of each call.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Sets the timeout of each call submitted from now on (`None`: wait as long as the
    /// daemon lives); requests already outstanding keep their deadlines.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Whether a request of `len` bytes could be written now without waiting.
    pub fn can_send(&mut self, len: usize) -> bool {
        self.transport.check_send(len).is_ok()
    }

    /// Checks the transport can take `len` bytes now, retrying `TRY_AGAIN` per the policy.
    fn wait_send_ready(&mut self, len: usize) -> Result<(), T::Error> {
        let mut attempt = 0;
        loop {
            match self.transport.check_send(len) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::TryAgain => {
                    match Retry::next_pause(self.retry, &mut attempt) {
                        Some(pause) => self.transport.pause(pause),
                        None => return Err(Error::from_transport(e)),
                    }
                }
                Err(e) => return Err(Error::from_transport(e)),
            }
        }
    }

    /// Announces the requests written but not announced yet, at once.
    ///
    /// # Errors
    /// The transport's; the connection is then out of step and closed.
    pub fn flush(&mut self) -> Result<(), T::Error> {
        let n = core::mem::take(&mut self.unflushed);
        if n == 0 {
            return Ok(());
        }
        self.transport.flush(n).map_err(|e| self.out_of_step(e))
    }

    /// A request is recorded but was not sent: the connection is out of step.
    fn out_of_step(&mut self, e: T::Error) -> Error<T::Error> {
        self.unflushed = 0;
        self.conn.handle_closed();
        while self.conn.poll_failure().is_some() {}
        match e.kind() {
            ErrorKind::TryAgain => Error::Disconnected,
            _ => Error::from_transport(e),
        }
    }

    /// Submits `req` and sends it at once.
    ///
    /// # Errors
    /// As [`Driver::submit_deferred`], and the flush's.
    pub fn submit(&mut self, req: &S::Request<'_>) -> Result<Token, T::Error> {
        let len = S::encoded_len(req);
        self.submit_with(len, &mut |conn, now, timeout, out| conn.submit(req, now, timeout, out))
    }

    /// [`Driver::submit`] with the connection's submit call chosen by the caller (e.g.
    /// [`Connection::track_add`]) for a request of `len` encoded bytes
    /// ([`Service::encoded_len`]).
    ///
    /// # Errors
    /// As [`Driver::submit`].
    pub fn submit_with(
        &mut self,
        len: usize,
        submit: &mut SubmitFn<'_, S, P, E, EB>,
    ) -> Result<Token, T::Error> {
        let token = self.submit_deferred_with(len, submit)?;
        self.flush()?;
        Ok(token)
    }

    /// Submits `req` and writes it; it is announced with the next [`Driver::flush`] (or
    /// [`Driver::collect`], which flushes first).
    ///
    /// # Errors
    /// [`Error::TooBig`] for a request over the negotiated size; [`Error::Submit`];
    /// a transport error that the retry policy did not absorb.
    pub fn submit_deferred(&mut self, req: &S::Request<'_>) -> Result<Token, T::Error> {
        let len = S::encoded_len(req);
        self.submit_deferred_with(len, &mut |conn, now, timeout, out| conn.submit(req, now, timeout, out))
    }

    fn submit_deferred_with(
        &mut self,
        len: usize,
        submit: &mut SubmitFn<'_, S, P, E, EB>,
    ) -> Result<Token, T::Error> {
        let max = self.conn.max_msg_size();
        if len > max {
            self.flush()?;
            return Err(Error::TooBig { len, max });
        }
        if self.unflushed > 0 && self.transport.check_send(len).is_err() {
            // The server drains the request channel only once it hears the announcements.
            self.flush()?;
        }
        if let Err(e) = self.wait_send_ready(len) {
            self.flush()?;
            return Err(e);
        }
        if self.conn.outstanding() == P {
            self.discard_late()?;
        }
        let now = self.transport.now();
        let sub = match submit(&mut self.conn, now, self.timeout, self.buffers.request.as_mut()) {
            Ok(sub) => sub,
            Err(e) => {
                // Wake the server for the requests already written.
                self.flush()?;
                return Err(match e {
                    SubmitError::Closed => Error::Disconnected,
                    e => Error::Submit(e),
                });
            }
        };
        let written = self.transport.write_request(&self.buffers.request.as_mut()[..sub.len]);
        if let Err(e) = written {
            return Err(self.out_of_step(e));
        }
        self.unflushed += 1;
        Ok(sub.token)
    }

    /// While timed-out requests fill the pipeline, waits (at most the timeout) for their late
    /// replies and discards them, so that calls work again once the daemon answers.
    fn discard_late(&mut self) -> Result<(), T::Error> {
        self.flush()?;
        let deadline = self.timeout.map(|t| self.transport.now().saturating_add(t));
        while self.conn.outstanding() == P && self.conn.next_reply_is_late() {
            let reply = self.buffers.reply.as_mut();
            match self.transport.recv_response(deadline, reply) {
                Ok(n) => {
                    self.conn.handle_response(&reply[..n]).map_err(Error::Protocol)?;
                }
                Err(e) => {
                    if e.kind() != ErrorKind::Timeout {
                        self.conn.handle_closed();
                        while self.conn.poll_failure().is_some() {}
                    }
                    return Err(Error::from_transport(e));
                }
            }
        }
        Ok(())
    }

    /// Reads replies until `until` completes or fails, handing every completion or failure
    /// (also of other pipelined requests) to `on`. Flushes first.
    ///
    /// # Errors
    /// A broken connection (the failures of all outstanding requests go to `on` first).
    pub fn collect(
        &mut self,
        until: Token,
        mut on: impl FnMut(Token, Result<S::Response<'_>, T::Error>),
    ) -> Result<(), T::Error> {
        if self.unflushed > 0 {
            let n = core::mem::take(&mut self.unflushed);
            if let Err(e) = self.transport.flush(n) {
                self.conn.handle_closed();
                self.drain_failures(&mut on);
                return Err(Error::from_transport(e));
            }
        }
        loop {
            let mut done = false;
            while let Some(f) = self.conn.poll_failure() {
                done |= f.token == until;
                let e = match f.reason {
                    FailureReason::TimedOut => Error::Timeout,
                    FailureReason::ConnectionLost => Error::Disconnected,
                };
                on(f.token, Err(e));
            }
            if done || !self.conn.is_waiting(until) {
                return Ok(());
            }
            let deadline = self.conn.poll_timeout();
            let reply = self.buffers.reply.as_mut();
            match self.transport.recv_response(deadline, reply) {
                Ok(n) => {
                    let broken = match self.conn.handle_response(&reply[..n]) {
                        Ok(Some(c)) => {
                            let done = c.token == until;
                            on(c.token, c.result.map_err(Error::Cs));
                            if done {
                                return Ok(());
                            }
                            None
                        }
                        Ok(None) => None,
                        Err(e) => Some(e),
                    };
                    if let Some(e) = broken {
                        self.drain_failures(&mut on);
                        return Err(Error::Protocol(e));
                    }
                }
                Err(e) => match e.kind() {
                    ErrorKind::Timeout => {
                        let now = self.transport.now();
                        self.conn.handle_timeout(now);
                    }
                    ErrorKind::Disconnected => self.conn.handle_closed(),
                    _ => {
                        self.conn.handle_closed();
                        self.drain_failures(&mut on);
                        return Err(Error::from_transport(e));
                    }
                },
            }
        }
    }

    fn drain_failures(&mut self, on: &mut impl FnMut(Token, Result<S::Response<'_>, T::Error>)) {
        while let Some(f) = self.conn.poll_failure() {
            on(f.token, Err(Error::Disconnected));
        }
    }

    /// One request, one reply: `f` turns the reply into the call's result.
    ///
    /// # Errors
    /// As [`Driver::submit`] and [`Driver::finish`].
    pub fn call<R, X: From<Error<T::Error>>>(
        &mut self,
        req: &S::Request<'_>,
        f: impl FnOnce(S::Response<'_>) -> core::result::Result<R, X>,
    ) -> core::result::Result<R, X> {
        let token = self.submit(req)?;
        self.finish(token, f)
    }

    /// Waits for the reply to `token` and converts it with `f`.
    ///
    /// # Errors
    /// The daemon's answer ([`Error::Cs`]), [`Error::Timeout`], a broken connection, or
    /// what `f` returns.
    pub fn finish<R, X: From<Error<T::Error>>>(
        &mut self,
        token: Token,
        f: impl FnOnce(S::Response<'_>) -> core::result::Result<R, X>,
    ) -> core::result::Result<R, X> {
        let mut f = Some(f);
        let mut out = None;
        self.collect(token, |t, r| {
            if t == token {
                out = Some(match (r, f.take()) {
                    (Ok(body), Some(f)) => f(body),
                    (Err(e), _) => Err(X::from(e)),
                    (Ok(_), None) => Err(X::from(Error::Disconnected)),
                });
            }
        })?;
        out.unwrap_or(Err(X::from(Error::Disconnected)))
    }

    /// `dispatch(mode)`: hands each event to `deliver`, whose [`Flow`] may stop the dispatch
    /// or finalize the connection. With `deadline`, waits for events only until then
    /// ([`Error::Timeout`]); without, as the mode says.
    ///
    /// # Errors
    /// The dispatch's `cs_error_t` ([`Error::Cs`]: `CS_ERR_TRY_AGAIN` for
    /// [`DispatchMode::OneNonBlocking`] with nothing pending, `CS_ERR_BAD_HANDLE` once
    /// finalized, `CS_ERR_LIBRARY` for an unknown event), [`Error::Disconnected`],
    /// [`Error::Timeout`], a transport fault.
    pub fn dispatch(
        &mut self,
        mode: DispatchMode,
        deadline: Option<Instant>,
        mut deliver: impl FnMut(S::Event<'_>) -> Flow,
    ) -> Result<(), T::Error> {
        let mut d = Dispatch::new(mode);
        loop {
            let step = d.poll(&mut self.conn, self.buffers.scratch.as_mut());
            match step {
                Step::Deliver(e) => match deliver(e) {
                    Flow::Continue => {}
                    Flow::Stop => {
                        self.transport.settle_events();
                        return Ok(());
                    }
                    Flow::Finalize => self.conn.finalize(),
                },
                Step::Recv(mut wait) => {
                    if let (Wait::Forever, Some(deadline)) = (wait, deadline) {
                        match self.transport.wait_event(deadline) {
                            Ok(true) => wait = Wait::Never,
                            Ok(false) => {
                                self.transport.settle_events();
                                return Err(Error::Timeout);
                            }
                            Err(e) => {
                                event_failure(&mut self.conn, &mut self.transport, e)?;
                                continue;
                            }
                        }
                    }
                    let event = self.buffers.event.as_mut();
                    match self.transport.recv_event(wait, event) {
                        Ok(Some(n)) => {
                            if let Err(e) = self.conn.handle_event(&event[..n]) {
                                self.transport.settle_events();
                                return Err(Error::Protocol(e));
                            }
                        }
                        Ok(None) => d.handle_empty(),
                        Err(e) => event_failure(&mut self.conn, &mut self.transport, e)?,
                    }
                }
                Step::Done(r) => {
                    self.transport.settle_events();
                    let closed = self.conn.state() == State::Closed;
                    return r.map_err(|e| {
                        if e == CsError::Library && closed {
                            Error::Disconnected
                        } else {
                            Error::Cs(e)
                        }
                    });
                }
            }
        }
    }
}

/// A failed event read: a lost connection is handed to the dispatch (which ends with it once
/// the queued events are delivered); anything else ends the dispatch.
fn event_failure<S: Service, T: Transport, const P: usize, const E: usize, const EB: usize>(
    conn: &mut Connection<S, P, E, EB>,
    transport: &mut T,
    e: T::Error,
) -> Result<(), T::Error> {
    conn.handle_closed();
    if e.kind() == ErrorKind::Disconnected {
        return Ok(());
    }
    transport.settle_events();
    Err(Error::from_transport(e))
}
