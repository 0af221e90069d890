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

/// The default idle step: none.
fn nothing() {}

/// One stream to a gateway (`docs/protocol.md` §12), shared by a CMAP and a votequorum client
/// through a `RefCell`. `RX` bytes hold the frame being received; each of the four queues
/// (CMAP and votequorum replies and events) holds `Q` bytes of frames their client has not
/// taken yet. The hello offers `min(RX - 6, Q - 2)` bytes of payload.
///
/// [`Link::new`] wraps the stream, [`Link::connect`] sends the hello and waits for the
/// accept; the link keeps the stream whatever happens, so a refused or timed-out connect
/// can be tried again and [`Link::into_inner`] gives the stream back.
pub struct Link<IO, const RX: usize = 1030, const Q: usize = 1026> {
    io: IO,
    mux: Mux<RX, Q>,
    clock: Clock,
    idle: fn(),
}

impl<IO, const RX: usize, const Q: usize> fmt::Debug for Link<IO, RX, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Link").field("accepted", &self.mux.accepted()).finish_non_exhaustive()
    }
}

impl<IO: Read + Write + ReadReady, const RX: usize, const Q: usize> Link<IO, RX, Q> {
    /// A link over `io` whose deadlines are on `clock` ([`no_clock`]: none); nothing is sent
    /// until [`Link::connect`].
    pub const fn new(io: IO, clock: Clock) -> Self {
        Self { io, mux: Mux::new(), clock, idle: nothing }
    }

    /// Sets what the link does between two checks of `read_ready` while it waits with a
    /// deadline (by default nothing: a busy wait). On a Cortex-M whose timer ticks with an
    /// interrupt, `cortex_m::asm::wfi` sleeps until the next tick or UART interrupt; on a
    /// host, a short `std::thread::sleep`.
    pub fn set_idle(&mut self, idle: fn()) {
        self.idle = idle;
    }

    /// Sends the hello asking for `services` and waits, at most `timeout` on the link's
    /// clock (`None`: as long as the gateway lives), for the gateway's accept; returns it.
    /// Anything the link held from an earlier session is dropped first, so this is also how
    /// a client recovers after [`LinkError::Reset`] (the gateway lost corosync): a new hello
    /// on the same stream, then new clients. While corosync is down the gateway refuses it
    /// with `CS_ERR_TRY_AGAIN` and, as after every refusal, closes the stream: reopen it
    /// (`into_inner`, a new socket) and try again later (`docs/protocol.md` §12.3).
    ///
    /// # Errors
    /// [`LinkError::Refused`] with the gateway's `cs_error_t`; [`LinkError::Timeout`] (the
    /// gateway's answer may still come: reopen the stream, or wait until the gateway's
    /// `--stall-timeout` closed it, before another hello); a stream or framing error. The
    /// link keeps the stream in every case.
    pub fn connect(
        &mut self,
        services: Services,
        timeout: Option<Duration>,
    ) -> Result<Accept, LinkError<IO::Error>> {
        self.mux = Mux::new();
        let hello = self.mux.hello(services);
        let mut out = [0u8; 16];
        let n = hello.encode(&mut out).map_err(LinkError::Encode)?;
        self.io.write_all(&out[..n]).map_err(LinkError::Io)?;
        self.io.flush().map_err(LinkError::Io)?;
        let deadline = timeout.map(|t| (self.clock)().saturating_add(t));
        loop {
            if let Some(accepted) = self.mux.accepted() {
                return Ok(accepted);
            }
            self.read_some(deadline)?;
        }
    }

    /// What the gateway granted; `None` before [`Link::connect`] succeeded.
    pub fn accepted(&self) -> Option<Accept> {
        self.mux.accepted()
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
                (self.idle)();
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
        if !l.accepted().is_some_and(|a| a.services.contains(channel)) {
            return Err(LinkError::Refused(corowire::CsError::NotExist));
        }
        let clock = l.clock;
        Ok(Self { link, channel, clock })
    }

    /// The negotiated maximum payload.
    pub fn max_payload(&self) -> usize {
        self.link.try_borrow().ok().and_then(|l| l.accepted()).map_or(0, |a| usize::from(a.max_payload))
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
