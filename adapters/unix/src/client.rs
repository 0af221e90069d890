//! The blocking request/reply and dispatch plumbing shared by the CMAP and votequorum clients:
//! a [`Connection`] (the protocol state) driven over a [`Transport`] with a monotonic clock.

use core::time::Duration;
use std::time::Instant;

use corowire::conn::{Connection, Service, SubmitError, Submitted, Token};
use corowire::dispatch::{Dispatch, DispatchMode, Step};
use corowire::CsError;

use crate::error::{Error, Result};
use crate::options::Options;
use crate::transport::{Transport, TransportError};

/// The handle plumbing every blocking client shares: finalize on drop, `Send`, and the setup
/// socket as the fd to poll for `POLLIN` before dispatching (`cmap_fd_get`,
/// `votequorum_fd_get`).
macro_rules! client_handle {
    ($handle:ty) => {
        impl Drop for $handle {
            fn drop(&mut self) {
                self.client.conn.finalize();
            }
        }

        // The handle may move between threads.
        const _: fn() = || {
            fn send<T: Send>() {}
            send::<$handle>();
        };

        impl std::os::fd::AsFd for $handle {
            /// The setup socket: poll it for `POLLIN`, then dispatch with `DispatchMode::All`.
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.client.transport)
            }
        }

        impl std::os::fd::AsRawFd for $handle {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.client.transport)
            }
        }
    };
}
pub(crate) use client_handle;

/// Retry policy for `CS_ERR_TRY_AGAIN` from the transport (flow control, a full request
/// ring) and from the connection handshake (daemon not ready).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Retry {
    /// Attempts after the first.
    pub(crate) attempts: u32,
    /// Sleep between attempts.
    pub(crate) backoff: Duration,
}

/// A blocking client of one service.
pub(crate) struct Client<S: Service, const P: usize, const E: usize, const B: usize> {
    pub(crate) conn: Box<Connection<S, P, E, B>>,
    pub(crate) transport: Transport,
    /// Encoded requests.
    out: Vec<u8>,
    /// The reply being handled.
    reply: Vec<u8>,
    /// The event being read.
    event: Vec<u8>,
    /// Events being delivered.
    scratch: Vec<u8>,
    epoch: Instant,
    pub(crate) timeout: Option<Duration>,
    retry: Option<Retry>,
    /// Requests written to the request ring whose doorbell bytes are not sent yet.
    unrung: usize,
}

impl<S: Service, const P: usize, const E: usize, const B: usize> core::fmt::Debug for Client<S, P, E, B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Client").field("conn", &self.conn).field("transport", &self.transport).finish()
    }
}

impl<S: Service, const P: usize, const E: usize, const B: usize> Client<S, P, E, B> {
    /// Connects to `options.service_name`, or if `None` to the service's standard name (or the
    /// `COROWIRE_NAME_PREFIX` one, see [`crate::NAME_PREFIX_ENV`]).
    pub(crate) fn connect(options: &Options) -> Result<Self> {
        let Options { max_msg_size, timeout, spin, .. } = *options;
        let (retry, service_name) = (options.retry(), options.service_name.as_deref());
        let mut attempt = 0;
        loop {
            let mut conn = Box::new(Connection::<S, P, E, B>::new(max_msg_size));
            let name = crate::options::service_name(service_name, S::NAME);
            match Transport::connect_to(&mut conn, &name, timeout) {
                Ok(mut transport) => {
                    transport.set_spin(spin);
                    // Sized by the rings actually mapped, not by the size the server claims.
                    let out = conn.max_msg_size().min(transport.max_request_len());
                    let event = transport.max_event_len();
                    return Ok(Self {
                        conn,
                        transport,
                        out: vec![0; out],
                        reply: Vec::new(),
                        event: Vec::new(),
                        scratch: vec![0; event],
                        epoch: Instant::now(),
                        timeout,
                        retry,
                        unrung: 0,
                    });
                }
                Err(e) => {
                    let e = Error::from_transport(S::NAME, e);
                    if e.cs_error() != CsError::TryAgain || !backoff(retry, &mut attempt) {
                        return Err(e);
                    }
                }
            }
        }
    }

    fn now(&self) -> corowire::Instant {
        corowire::Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The clock's instant for a core instant; `None` if it cannot be represented (so far in
    /// the future that it never comes).
    fn to_std(&self, t: corowire::Instant) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_nanos(t.0))
    }

    /// Checks the transport can take `len` bytes now, retrying `TRY_AGAIN` per the policy.
    pub(crate) fn wait_send_ready(&self, len: usize) -> Result<()> {
        let mut attempt = 0;
        loop {
            match self.transport.check_send(len) {
                Ok(()) => return Ok(()),
                Err(TransportError::TryAgain) if backoff(self.retry, &mut attempt) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Submits one request of `len` encoded bytes through `submit` and sends it (with the
    /// doorbells of any deferred requests).
    pub(crate) fn submit_with(
        &mut self,
        len: usize,
        submit: impl FnOnce(
            &mut Connection<S, P, E, B>,
            corowire::Instant,
            Option<Duration>,
            &mut [u8],
        ) -> core::result::Result<Submitted, SubmitError>,
    ) -> Result<Token> {
        let token = self.submit_deferred_with(len, submit)?;
        self.flush()?;
        Ok(token)
    }

    /// Sends the doorbell bytes of the deferred requests, in one `send()`.
    pub(crate) fn flush(&mut self) -> Result<()> {
        let n = core::mem::take(&mut self.unrung);
        if n == 0 {
            return Ok(());
        }
        self.transport.ring_doorbells(n).map_err(|e| self.out_of_step(e))
    }

    /// A request is recorded but was not sent: the connection is out of step.
    fn out_of_step(&mut self, e: TransportError) -> Error {
        self.unrung = 0;
        self.conn.handle_closed();
        while self.conn.poll_failure().is_some() {}
        match e {
            TransportError::TryAgain => Error::Disconnected,
            e => e.into(),
        }
    }

    /// Submits one request and writes it to the request ring; its doorbell byte goes out
    /// with the next [`Client::flush`] (or [`Client::collect`], which flushes first).
    pub(crate) fn submit_deferred(&mut self, req: &S::Request<'_>, len: usize) -> Result<Token> {
        self.submit_deferred_with(len, |conn, now, timeout, out| conn.submit(req, now, timeout, out))
    }

    fn submit_deferred_with(
        &mut self,
        len: usize,
        submit: impl FnOnce(
            &mut Connection<S, P, E, B>,
            corowire::Instant,
            Option<Duration>,
            &mut [u8],
        ) -> core::result::Result<Submitted, SubmitError>,
    ) -> Result<Token> {
        if len > self.conn.max_msg_size() {
            self.flush()?;
            return Err(Error::Cs(CsError::TooBig));
        }
        if self.unrung > 0 && self.transport.check_send(len).is_err() {
            // The server drains the ring only once it hears the doorbells.
            self.flush()?;
        }
        if let Err(e) = self.wait_send_ready(len) {
            self.flush()?;
            return Err(e);
        }
        let now = self.now();
        let sub = match submit(&mut self.conn, now, self.timeout, &mut self.out) {
            Ok(sub) => sub,
            Err(e) => {
                // Wake the server for the requests already written.
                self.flush()?;
                return Err(e.into());
            }
        };
        if let Err(e) = self.transport.write_request(&self.out[..sub.len]) {
            return Err(self.out_of_step(e));
        }
        self.unrung += 1;
        Ok(sub.token)
    }

    /// Submits and sends one request.
    pub(crate) fn submit(&mut self, req: &S::Request<'_>, len: usize) -> Result<Token> {
        self.submit_with(len, |conn, now, timeout, out| conn.submit(req, now, timeout, out))
    }

    /// Reads replies until `until` completes or fails, handing every completion or failure
    /// (also of other pipelined requests) to `on`.
    pub(crate) fn collect(
        &mut self,
        until: Token,
        mut on: impl FnMut(Token, core::result::Result<S::Response<'_>, Error>),
    ) -> Result<()> {
        if self.unrung > 0 {
            let n = core::mem::take(&mut self.unrung);
            if let Err(e) = self.transport.ring_doorbells(n) {
                self.conn.handle_closed();
                self.drain_failures(&mut on);
                return Err(e.into());
            }
        }
        loop {
            let mut done = false;
            while let Some(f) = self.conn.poll_failure() {
                done |= f.token == until;
                let e = match f.reason {
                    corowire::conn::FailureReason::TimedOut => Error::Timeout,
                    corowire::conn::FailureReason::ConnectionLost => Error::Disconnected,
                };
                on(f.token, Err(e));
            }
            if done || !self.conn.is_waiting(until) {
                return Ok(());
            }
            let deadline = self.conn.poll_timeout().and_then(|t| self.to_std(t));
            match self.transport.recv_response(deadline, &mut self.reply) {
                Ok(()) => {
                    let broken = match self.conn.handle_response(&self.reply) {
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
                Err(TransportError::Timeout) => {
                    let now = self.now();
                    self.conn.handle_timeout(now);
                }
                Err(TransportError::Disconnected) => {
                    self.conn.handle_closed();
                }
                Err(e) => {
                    self.conn.handle_closed();
                    self.drain_failures(&mut on);
                    return Err(e.into());
                }
            }
        }
    }

    fn drain_failures(&mut self, on: &mut impl FnMut(Token, core::result::Result<S::Response<'_>, Error>)) {
        while let Some(f) = self.conn.poll_failure() {
            on(f.token, Err(Error::Disconnected));
        }
    }

    /// One request, one reply: `f` turns the reply into the call's result.
    pub(crate) fn call<T>(
        &mut self,
        req: &S::Request<'_>,
        len: usize,
        f: impl FnOnce(S::Response<'_>) -> Result<T>,
    ) -> Result<T> {
        let token = self.submit(req, len)?;
        self.finish(token, f)
    }

    /// Waits for the reply to `token` and converts it with `f`.
    pub(crate) fn finish<T>(
        &mut self,
        token: Token,
        f: impl FnOnce(S::Response<'_>) -> Result<T>,
    ) -> Result<T> {
        let mut f = Some(f);
        let mut out = None;
        self.collect(token, |t, r| {
            if t == token {
                out = Some(r.and_then(|body| f.take().map_or(Err(Error::Disconnected), |f| f(body))));
            }
        })?;
        out.unwrap_or(Err(Error::Disconnected))
    }

    /// Runs `dispatch(mode)`, handing each event to `deliver`.
    pub(crate) fn dispatch(
        &mut self,
        mode: DispatchMode,
        mut deliver: impl FnMut(S::Event<'_>),
    ) -> Result<()> {
        let mut d = Dispatch::new(mode);
        loop {
            match d.poll(&mut self.conn, &mut self.scratch) {
                Step::Deliver(e) => deliver(e),
                Step::Recv(wait) => match self.transport.recv_event(wait, &mut self.event) {
                    Ok(true) => self.conn.handle_event(&self.event).map_err(Error::Protocol)?,
                    Ok(false) => d.handle_empty(),
                    Err(TransportError::Disconnected) => self.conn.handle_closed(),
                    Err(e) => {
                        self.transport.settle_events();
                        self.conn.handle_closed();
                        return Err(e.into());
                    }
                },
                Step::Done(r) => {
                    self.transport.settle_events();
                    let closed = self.conn.state() == corowire::conn::State::Closed;
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

/// Sleeps before the next attempt if the policy allows one.
fn backoff(retry: Option<Retry>, attempt: &mut u32) -> bool {
    match retry {
        Some(r) if *attempt < r.attempts => {
            *attempt += 1;
            std::thread::sleep(r.backoff);
            true
        }
        _ => false,
    }
}
