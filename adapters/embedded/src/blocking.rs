//! The blocking link over `embedded_io::{Read, Write, ReadReady}` and its [`Transport`] for
//! the core's [`Driver`](corowire::driver::Driver).

use core::cell::RefCell;
use core::fmt;

use corowire::stream::{Accept, Channel, Kind, Services};
use corowire::transport::Transport;
use corowire::{Duration, Instant, Wait};
use embedded_io::{Read, ReadReady, Write};

use crate::mux::{frame_parts, LinkError, Mux};

/// A monotonic clock: the link's deadlines and retry pauses are on it. Without a timer, pass
/// [`no_clock`] and give the clients no timeout.
pub type Clock = fn() -> Instant;

/// A clock that never moves: calls then wait as long as the gateway lives (a stream whose
/// reads time out still ends them, with `embedded_io::ErrorKind::TimedOut`).
pub fn no_clock() -> Instant {
    Instant::from_millis(0)
}

/// One stream to a gateway (`docs/protocol.md` §12), shared by a CMAP and a votequorum client
/// through a `RefCell`. `RX` bytes hold the frame being received (it bounds the negotiated
/// maximum payload: `RX - 6`); each of the four queues (CMAP and votequorum replies and
/// events) holds `Q` bytes of frames their client has not taken yet.
pub struct Link<IO, const RX: usize = 1030, const Q: usize = 1026> {
    io: IO,
    mux: Mux<RX, Q>,
    clock: Clock,
}

impl<IO, const RX: usize, const Q: usize> fmt::Debug for Link<IO, RX, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("accepted", &self.mux.accepted()).finish_non_exhaustive()
    }
}

impl<IO: Read + Write + ReadReady, const RX: usize, const Q: usize> Link<IO, RX, Q> {
    /// Sends the hello asking for `services` and waits for the gateway's accept.
    ///
    /// # Errors
    /// [`LinkError::Refused`] with the gateway's `cs_error_t`; a stream or framing error.
    pub fn connect(io: IO, services: Services, clock: Clock) -> Result<Self, LinkError<IO::Error>> {
        let mut link = Self { io, mux: Mux::new(), clock };
        let hello = link.mux.hello(services);
        let mut out = [0u8; 16];
        let n = hello.encode(&mut out).map_err(LinkError::Encode)?;
        link.io.write_all(&out[..n]).map_err(LinkError::Io)?;
        link.io.flush().map_err(LinkError::Io)?;
        while link.mux.accepted().is_none() {
            link.read_some(None)?;
        }
        Ok(link)
    }

    /// What the gateway granted.
    pub fn accepted(&self) -> Accept {
        // `connect` returns only once the accept is in.
        self.mux.accepted().unwrap_or(Accept {
            version: 0,
            services: Services::NONE,
            max_payload: 0,
            result: Err(corowire::CsError::BadHandle),
        })
    }

    /// The stream, e.g. to change its settings.
    pub fn io_mut(&mut self) -> &mut IO {
        &mut self.io
    }

    /// The stream, e.g. to close it.
    pub fn into_inner(self) -> IO {
        self.io
    }

    /// Reads what the stream has (waiting for at least one byte, until `deadline` on the
    /// link's clock) and files the frames it completes.
    fn read_some(&mut self, deadline: Option<Instant>) -> Result<(), LinkError<IO::Error>> {
        if let Some(deadline) = deadline {
            while !self.io.read_ready().map_err(LinkError::Io)? {
                if (self.clock)() >= deadline {
                    return Err(LinkError::Timeout);
                }
            }
        }
        let n = self.io.read(self.mux.space()).map_err(LinkError::Io)?;
        if n == 0 {
            return Err(self.mux.closed());
        }
        self.mux.filled(n)
    }

    /// Waits until a frame of `channel` and `kind` is queued and takes it.
    fn recv(
        &mut self,
        channel: Channel,
        kind: Kind,
        deadline: Option<Instant>,
        out: &mut [u8],
    ) -> Result<usize, LinkError<IO::Error>> {
        loop {
            if let Some(n) = self.mux.pop(channel, kind, out)? {
                return Ok(n);
            }
            self.read_some(deadline)?;
        }
    }

    /// Takes a queued event of `channel`, reading what the stream has without waiting.
    fn try_recv_event(
        &mut self,
        channel: Channel,
        out: &mut [u8],
    ) -> Result<Option<usize>, LinkError<IO::Error>> {
        if !self.mux.has(channel, Kind::Event) && self.io.read_ready().map_err(LinkError::Io)? {
            self.read_some(None)?;
        }
        self.mux.pop(channel, Kind::Event, out)
    }

    /// Writes a request frame. What the stream has is read first: a reply that came while
    /// no request was outstanding ends the link here ([`LinkError::UnsolicitedReply`]),
    /// before it could be taken for this request's.
    fn send(&mut self, channel: Channel, payload: &[u8]) -> Result<(), LinkError<IO::Error>> {
        while self.io.read_ready().map_err(LinkError::Io)? {
            self.read_some(None)?;
        }
        self.mux.check(channel)?;
        let (header, trailer) = frame_parts(channel, payload)?;
        for part in [&header[..], payload, &trailer[..]] {
            self.io.write_all(part).map_err(LinkError::Io)?;
        }
        self.mux.sent(channel);
        Ok(())
    }
}

/// One client's end of a shared [`Link`]: the [`Transport`] of one channel.
pub struct Port<'l, IO, const RX: usize, const Q: usize> {
    link: &'l RefCell<Link<IO, RX, Q>>,
    channel: Channel,
    clock: Clock,
}

impl<IO, const RX: usize, const Q: usize> fmt::Debug for Port<'_, IO, RX, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port").field("channel", &self.channel).finish_non_exhaustive()
    }
}

impl<'l, IO: Read + Write + ReadReady, const RX: usize, const Q: usize> Port<'l, IO, RX, Q> {
    /// The port of `channel` on `link`.
    ///
    /// # Errors
    /// [`LinkError::Refused`] with `CS_ERR_NOT_EXIST` if the gateway did not accept the
    /// channel's service.
    pub fn new(link: &'l RefCell<Link<IO, RX, Q>>, channel: Channel) -> Result<Self, LinkError<IO::Error>> {
        let l = link.try_borrow().map_err(|_| LinkError::Busy)?;
        if !l.accepted().services.contains(channel) {
            return Err(LinkError::Refused(corowire::CsError::NotExist));
        }
        let clock = l.clock;
        Ok(Self { link, channel, clock })
    }

    /// The negotiated maximum payload.
    pub fn max_payload(&self) -> usize {
        self.link.try_borrow().map_or(0, |l| usize::from(l.accepted().max_payload))
    }

    fn with<R>(
        &mut self,
        f: impl FnOnce(&mut Link<IO, RX, Q>, Channel) -> Result<R, LinkError<IO::Error>>,
    ) -> Result<R, LinkError<IO::Error>> {
        let mut link = self.link.try_borrow_mut().map_err(|_| LinkError::Busy)?;
        f(&mut link, self.channel)
    }
}

impl<IO: Read + Write + ReadReady, const RX: usize, const Q: usize> Transport for Port<'_, IO, RX, Q> {
    type Error = LinkError<IO::Error>;

    fn now(&self) -> Instant {
        (self.clock)()
    }

    fn check_send(&mut self, _len: usize) -> Result<(), Self::Error> {
        self.with(|l, ch| l.mux.check(ch))
    }

    fn write_request(&mut self, request: &[u8]) -> Result<(), Self::Error> {
        self.with(|l, ch| l.send(ch, request))
    }

    fn flush(&mut self, _written: usize) -> Result<(), Self::Error> {
        self.with(|l, _| l.io.flush().map_err(LinkError::Io))
    }

    fn recv_response(&mut self, deadline: Option<Instant>, out: &mut [u8]) -> Result<usize, Self::Error> {
        self.with(|l, ch| l.recv(ch, Kind::Reply, deadline, out))
    }

    fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, Self::Error> {
        self.with(|l, ch| match wait {
            Wait::Never => l.try_recv_event(ch, out),
            _ => l.recv(ch, Kind::Event, None, out).map(Some),
        })
    }

    fn wait_event(&mut self, deadline: Instant) -> Result<bool, Self::Error> {
        self.with(|l, ch| loop {
            if l.mux.has(ch, Kind::Event) {
                return Ok(true);
            }
            match l.read_some(Some(deadline)) {
                Ok(()) => {}
                Err(LinkError::Timeout) => return Ok(false),
                Err(e) => return Err(e),
            }
        })
    }

    fn settle_events(&mut self) {}

    /// Never asked for: a port reports no `TryAgain`, so the driver has nothing to retry.
    fn pause(&mut self, _duration: Duration) {}
}
