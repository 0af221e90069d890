//! The I/O boundary under the blocking client driver ([`crate::driver::Driver`]): a
//! [`Transport`] moves request, reply and event frames and owns the clock; the driver decides
//! what to send and when, and how to react to each [`ErrorKind`].
//!
//! One implementation per libqb transport and runtime: corowire-unix has shared memory
//! (`ShmTransport`) and datagram sockets (`SocketTransport`); an embedded adapter would read
//! a byte stream and split it with [`crate::frame_len`].
//!
//! The setup handshake is not part of this trait: the adapter sends the bytes of
//! [`Connection::encode_setup`](crate::Connection::encode_setup), hands the response bytes to
//! [`Connection::handle_setup`](crate::Connection::handle_setup) and opens the transport the
//! decoded response names.

use core::fmt;

use crate::dispatch::Wait;
use crate::time::{Duration, Instant};

/// What a transport error means to the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ErrorKind {
    /// The server is gone (EOF, hang-up, a dropped reference count): the connection fails
    /// its outstanding requests and is unusable.
    Disconnected,
    /// A deadline passed before the frame came.
    Timeout,
    /// The server asks the client to back off (flow control, a full request channel): the
    /// driver retries after [`Transport::pause`] if its [`Retry`] policy allows.
    TryAgain,
    /// Anything else (a system call failed, a corrupt ring, a frame larger than the buffer):
    /// the driver reports it and closes the connection.
    Other,
}

/// A transport error the driver can classify without knowing the operating system.
pub trait TransportError: fmt::Debug {
    /// What the error means to the driver.
    fn kind(&self) -> ErrorKind;
}

/// A frame did not fit the caller's buffer; it was left unread.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BufferTooSmall {
    /// Bytes the frame has.
    pub needed: usize,
    /// Bytes the buffer has.
    pub available: usize,
}

impl fmt::Display for BufferTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {}-byte frame does not fit a {}-byte buffer", self.needed, self.available)
    }
}

impl core::error::Error for BufferTooSmall {}

/// How often and how patiently the driver retries an [`ErrorKind::TryAgain`] (flow control,
/// a full request channel, a daemon not ready at connect).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Retry {
    /// Attempts after the first.
    pub attempts: u32,
    /// Pause between attempts ([`Transport::pause`]).
    pub backoff: Duration,
}

impl Retry {
    /// The pause before the next attempt, if the policy (`None`: no retries) has one left;
    /// counts it in `attempt` (attempts made after the first).
    pub fn next_pause(policy: Option<Self>, attempt: &mut u32) -> Option<Duration> {
        match policy {
            Some(r) if *attempt < r.attempts => {
                *attempt += 1;
                Some(r.backoff)
            }
            _ => None,
        }
    }
}

/// A connected client transport of one libqb connection, after the setup handshake.
///
/// Requests are written one by one ([`Transport::write_request`]) and announced in a batch
/// ([`Transport::flush`]: the shared-memory transport sends one doorbell `send()` for all of
/// them); replies come back in order ([`Transport::recv_response`]); events come on their own
/// channel ([`Transport::recv_event`]).
///
/// Every method takes `&mut self`: a transport is driven by one owner at a time, so its
/// bookkeeping needs no synchronisation.
pub trait Transport {
    /// The transport's error.
    type Error: TransportError;

    /// The transport's monotonic clock: deadlines the driver passes in are on it.
    fn now(&self) -> Instant;

    /// Checks that a request of `len` bytes could be written now (libqb's checks before a
    /// send: the server is there, flow control is not on, the channel has room).
    ///
    /// # Errors
    /// [`ErrorKind::TryAgain`] to back off; [`ErrorKind::Disconnected`]; an
    /// [`ErrorKind::Other`] for a request the channel can never hold.
    fn check_send(&mut self, len: usize) -> Result<(), Self::Error>;

    /// Writes one request after a successful [`Transport::check_send`] for at least
    /// `request.len()` bytes. The server may only see it after the next [`Transport::flush`].
    ///
    /// # Errors
    /// [`ErrorKind::Disconnected`], or a transport fault.
    fn write_request(&mut self, request: &[u8]) -> Result<(), Self::Error>;

    /// Announces the `written` requests written since the last flush, at once (one doorbell
    /// for the batch where the transport has doorbells).
    ///
    /// # Errors
    /// [`ErrorKind::Disconnected`], or a transport fault.
    fn flush(&mut self, written: usize) -> Result<(), Self::Error>;

    /// Waits for the next reply until `deadline` (`None`: for as long as the server is
    /// alive) and copies it into `out`, returning its length. A reply larger than `out` is a
    /// typed error of the transport (see [`BufferTooSmall`]).
    ///
    /// # Errors
    /// [`ErrorKind::Timeout`] once `deadline` passes; [`ErrorKind::Disconnected`]; a
    /// transport fault.
    fn recv_response(&mut self, deadline: Option<Instant>, out: &mut [u8]) -> Result<usize, Self::Error>;

    /// Reads one event into `out` if one is pending, waiting for one as `wait` says; its
    /// length, or `None` when a [`Wait::Never`] read found none.
    ///
    /// # Errors
    /// [`ErrorKind::Disconnected`]; a transport fault.
    fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, Self::Error>;

    /// Waits until an event may be readable or `deadline` passes (`false`), for a dispatch
    /// with a time limit; a following [`Wait::Never`] read may still find none.
    ///
    /// # Errors
    /// [`ErrorKind::Disconnected`]; a transport fault.
    fn wait_event(&mut self, deadline: Instant) -> Result<bool, Self::Error>;

    /// Settles the bookkeeping of events already read (e.g. consumes their doorbell bytes),
    /// without waiting. Called when a dispatch ends.
    fn settle_events(&mut self);

    /// Pauses the calling thread (or task) for `duration`, between retries.
    fn pause(&mut self, duration: Duration);
}

#[cfg(feature = "alloc")]
mod boxed {
    extern crate alloc;

    use alloc::boxed::Box;

    use super::{Duration, Instant, Transport, Wait};

    /// A boxed transport (e.g. a `dyn` one chosen at run time) is a transport.
    impl<T: Transport + ?Sized> Transport for Box<T> {
        type Error = T::Error;

        fn now(&self) -> Instant {
            (**self).now()
        }

        fn check_send(&mut self, len: usize) -> Result<(), Self::Error> {
            (**self).check_send(len)
        }

        fn write_request(&mut self, request: &[u8]) -> Result<(), Self::Error> {
            (**self).write_request(request)
        }

        fn flush(&mut self, written: usize) -> Result<(), Self::Error> {
            (**self).flush(written)
        }

        fn recv_response(&mut self, deadline: Option<Instant>, out: &mut [u8]) -> Result<usize, Self::Error> {
            (**self).recv_response(deadline, out)
        }

        fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, Self::Error> {
            (**self).recv_event(wait, out)
        }

        fn wait_event(&mut self, deadline: Instant) -> Result<bool, Self::Error> {
            (**self).wait_event(deadline)
        }

        fn settle_events(&mut self) {
            (**self).settle_events();
        }

        fn pause(&mut self, duration: Duration) {
            (**self).pause(duration);
        }
    }
}
