//! The transports' clock (the monotonic clock, as the core's `corowire::Instant`s) and
//! their waits with liveness checks.

use core::time::Duration;
use std::os::fd::AsFd;
use std::time::Instant;

use super::error::TransportError;
use crate::sys::sock::{poll_readable, PollState};

/// libqb's longest single wait before it checks that the server is alive
/// (`QB_IPC_MAX_WAIT_MS`).
pub(crate) const MAX_WAIT_SLICE: Duration = Duration::from_secs(2);

/// Core instants are nanoseconds since the transport's `epoch`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    /// A clock whose origin is now.
    pub(crate) fn start() -> Self {
        Self { epoch: Instant::now() }
    }

    /// Now, as a core instant.
    pub(crate) fn now(&self) -> corowire::Instant {
        corowire::Instant::from_nanos(u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX))
    }

    /// The monotonic instant of a core instant; `None` if it cannot be represented (so far in
    /// the future that it never comes).
    pub(crate) fn to_std(self, t: corowire::Instant) -> Option<Instant> {
        self.epoch.checked_add(Duration::from_nanos(t.0))
    }
}

/// An instant that does not come in practice (a century from now, or as far as the clock
/// goes): the stand-in for a core instant [`Clock::to_std`] cannot represent.
pub(crate) fn far_future() -> Instant {
    let now = Instant::now();
    now.checked_add(Duration::from_secs(100 * 365 * 86_400)).unwrap_or(now)
}

/// Waits until `fd` is readable (or hung up: the caller's next read reports it) or `deadline`
/// has passed (`false`), in slices of at most 2 s, calling `alive` after each full slice.
pub(crate) fn wait_readable(
    fd: impl AsFd,
    deadline: Instant,
    alive: impl Fn() -> Result<(), TransportError>,
) -> Result<bool, TransportError> {
    loop {
        let slice = deadline.saturating_duration_since(Instant::now()).min(MAX_WAIT_SLICE);
        match poll_readable(&fd, Some(slice)).map_err(TransportError::Io)? {
            PollState::Readable | PollState::Hup => return Ok(true),
            PollState::Timeout if Instant::now() >= deadline => return Ok(false),
            PollState::Timeout if slice == MAX_WAIT_SLICE => alive()?,
            PollState::Timeout => {}
        }
    }
}

/// Implements `corowire::transport::Transport` for a Unix transport `$t` over its inherent
/// calls of the same names, which wait on the monotonic clock: the core's instants are
/// converted with the transport's `clock`, and pauses sleep the thread.
macro_rules! clocked_transport {
    ($t:ty) => {
        impl corowire::transport::Transport for $t {
            type Error = $crate::transport::error::TransportError;

            fn now(&self) -> corowire::Instant {
                self.clock.now()
            }

            fn check_send(&mut self, len: usize) -> Result<(), Self::Error> {
                <$t>::check_send(self, len)
            }

            fn write_request(&mut self, request: &[u8]) -> Result<(), Self::Error> {
                <$t>::write_request(self, request)
            }

            fn flush(&mut self, written: usize) -> Result<(), Self::Error> {
                <$t>::flush(self, written)
            }

            fn recv_response(
                &mut self,
                deadline: Option<corowire::Instant>,
                out: &mut [u8],
            ) -> Result<usize, Self::Error> {
                let deadline = deadline.and_then(|d| self.clock.to_std(d));
                <$t>::recv_response(self, deadline, out)
            }

            fn recv_event(
                &mut self,
                wait: corowire::Wait,
                out: &mut [u8],
            ) -> Result<Option<usize>, Self::Error> {
                <$t>::recv_event(self, wait, out)
            }

            fn wait_event(&mut self, deadline: corowire::Instant) -> Result<bool, Self::Error> {
                let deadline =
                    self.clock.to_std(deadline).unwrap_or_else($crate::transport::clock::far_future);
                <$t>::wait_event(self, deadline)
            }

            fn settle_events(&mut self) {
                <$t>::settle_events(self);
            }

            fn pause(&mut self, duration: core::time::Duration) {
                std::thread::sleep(duration);
            }
        }
    };
}
pub(crate) use clocked_transport;

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wait_readable_waits_until_the_deadline() {
        let (a, b) = UnixStream::pair().unwrap();
        let deadline = Instant::now() + Duration::from_micros(1500);
        assert!(!wait_readable(&a, deadline, || Ok(())).unwrap());
        assert!(Instant::now() >= deadline);
        drop(b);
        assert!(wait_readable(&a, far_future(), || Ok(())).unwrap());
    }
}
