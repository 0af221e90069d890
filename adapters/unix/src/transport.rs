//! The libqb transports, client side: the setup handshake (docs/protocol.md §1), then either the
//! shared-memory rings ([`ShmTransport`], docs/protocol.md §2, appendix A) or the datagram sockets
//! ([`SocketTransport`], docs/protocol.md §3), as the server chose ([`Transport`]).
//!
//! The transports move bytes; the protocol state (what was sent, what a reply answers) lives
//! in [`corowire::conn::Connection`], which [`Transport::connect`] drives through the setup
//! handshake.

use core::fmt;
use core::time::Duration;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use core::sync::atomic::Ordering::Relaxed;
use core::sync::atomic::{AtomicIsize, AtomicU32, AtomicU64};
use corowire::conn::{Connection, HandleError, Service};
use corowire::dispatch::Wait;
use corowire::qb::{ConnectionType, CONNECTION_RESPONSE_LEN};
use corowire::ring::FlowControl;
use nix::errno::Errno;
use nix::sys::socket::{recv, setsockopt, shutdown, sockopt, MsgFlags, Shutdown};
use nix::sys::time::TimeVal;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use crate::ring::{ShmError, ShmRing};
use crate::sem::SemError;
use crate::socket_transport::SocketTransport;
use crate::sys::sock::{
    connect_setup, poll_readable, recv_exact_with_creds, send_all, set_passcred, PollState,
};

/// libqb's longest single wait for a reply before it checks that the server is alive
/// (`QB_IPC_MAX_WAIT_MS`).
const MAX_WAIT_SLICE: Duration = Duration::from_secs(2);
/// The longest a reply wait spins on the semaphore before it sleeps in the kernel.
const SPIN_MAX: Duration = Duration::from_micros(30);
/// The shortest adaptive spin, so that a reply already on its way is still caught despite
/// jitter.
const SPIN_MIN: Duration = Duration::from_micros(10);
/// How long a spin runs before it also yields the CPU on every round (a daemon that shares
/// the CPU and is not real-time gets to run).
const SPIN_YIELD_AFTER: Duration = Duration::from_micros(1);
/// Consecutive spins that ran out before the adaptive spin stops spinning.
const SPIN_MISSES_OFF: u32 = 4;
/// Replies, while the adaptive spin is off, that came within the spin limit before it turns
/// back on.
const SPIN_HITS_ON: u32 = 2;
/// Doorbell bytes consumed per `recv` when events are read in bulk.
const DOORBELL_BATCH: usize = 256;

/// Why a transport operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportError {
    /// Nothing listens on the service's socket (`ECONNREFUSED`, or `ENOENT` for filesystem
    /// sockets): the daemon is not running, or the service is not loaded.
    NoDaemon(Errno),
    /// The setup handshake failed: the server refused (negative errno), sent a malformed
    /// response, or chose a transport this client does not implement.
    Handshake(HandleError),
    /// The deadline passed first.
    Timeout,
    /// The server is gone: EOF or hang-up on the setup socket, or a dropped `ref_count`.
    Disconnected,
    /// The server asked clients to back off (flow control), or the request ring is full.
    TryAgain,
    /// A ring is malformed or corrupt.
    Ring(ShmError),
    /// A system call failed.
    Io(Errno),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDaemon(e) => write!(f, "no daemon listens on the service socket ({e})"),
            Self::Handshake(e) => write!(f, "connection setup failed: {e}"),
            Self::Timeout => f.write_str("timed out"),
            Self::Disconnected => f.write_str("the daemon closed the connection"),
            Self::TryAgain => f.write_str("the daemon asked to try again later (flow control)"),
            Self::Ring(e) => e.fmt(f),
            Self::Io(e) => write!(f, "system call failed: {e}"),
        }
    }
}

impl core::error::Error for TransportError {}

impl From<ShmError> for TransportError {
    fn from(e: ShmError) -> Self {
        match e {
            ShmError::Full { .. } => Self::TryAgain,
            ShmError::Io(e) => Self::Io(e),
            e => Self::Ring(e),
        }
    }
}

/// A connected libqb shared-memory transport. Dropping it shuts the setup socket down and
/// releases the rings; the server then removes the ring files.
#[derive(Debug)]
pub struct ShmTransport {
    sock: OwnedFd,
    request: ShmRing,
    response: ShmRing,
    event: ShmRing,
    spin: Spin,
    /// Event-ring tokens taken minus event doorbell bytes consumed: positive when bytes are
    /// still to be read off the socket, negative when a byte was read before its token was
    /// taken.
    owed: AtomicIsize,
}

/// The reply-wait spin: fixed, or adaptive (the default).
///
/// Adaptive: the limit is about twice the moving average of recent reply latencies, between
/// [`SPIN_MIN`] and [`SPIN_MAX`]; after [`SPIN_MISSES_OFF`] consecutive spins that ran out it
/// stops spinning, and it turns back on after [`SPIN_HITS_ON`] replies that came within the
/// limit while it was off.
#[derive(Debug)]
struct Spin {
    /// A fixed limit (`Options::spin`); `None` is adaptive.
    fixed: Option<Duration>,
    /// Moving average of reply latencies, in ns.
    avg_ns: AtomicU64,
    /// Consecutive misses while on; at [`SPIN_MISSES_OFF`] the spin is off.
    misses: AtomicU32,
    /// Hits counted while off.
    hits: AtomicU32,
}

impl Spin {
    fn new(fixed: Option<Duration>) -> Self {
        Self {
            fixed,
            avg_ns: AtomicU64::new(SPIN_MAX.as_nanos() as u64 / 2),
            misses: AtomicU32::new(0),
            hits: AtomicU32::new(0),
        }
    }

    /// The limit of the next spin; zero when off.
    fn limit(&self) -> Duration {
        if let Some(d) = self.fixed {
            return d;
        }
        if self.misses.load(Relaxed) >= SPIN_MISSES_OFF {
            return Duration::ZERO;
        }
        self.adaptive_limit()
    }

    fn adaptive_limit(&self) -> Duration {
        Duration::from_nanos(self.avg_ns.load(Relaxed).saturating_mul(2)).clamp(SPIN_MIN, SPIN_MAX)
    }

    /// Records a reply that took `latency`; `spun` says whether it came during a spin.
    fn record(&self, latency: Duration, spun: bool) {
        if self.fixed.is_some() {
            return;
        }
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX).min(SPIN_MAX.as_nanos() as u64 * 4);
        let avg = self.avg_ns.load(Relaxed);
        self.avg_ns.store(avg - avg / 8 + ns / 8, Relaxed);
        let off = self.misses.load(Relaxed) >= SPIN_MISSES_OFF;
        if spun {
            self.misses.store(0, Relaxed);
        } else if off {
            // Would a spin have caught it?
            if latency <= self.adaptive_limit() {
                let hits = self.hits.load(Relaxed) + 1;
                if hits >= SPIN_HITS_ON {
                    self.hits.store(0, Relaxed);
                    self.misses.store(0, Relaxed);
                } else {
                    self.hits.store(hits, Relaxed);
                }
            } else {
                self.hits.store(0, Relaxed);
            }
        } else {
            self.misses.store(self.misses.load(Relaxed) + 1, Relaxed);
        }
    }
}

/// What the setup response named, copied out of it.
#[derive(Debug)]
struct SetupNames {
    connection_type: ConnectionType,
    max_msg_size: usize,
    request: PathBuf,
    response: PathBuf,
    event: PathBuf,
}

/// The setup handshake (docs/protocol.md §1): connect the setup socket to `name`, `SO_PASSCRED` on, send
/// the setup request, read the 12328-byte response (waiting at most `timeout`), hand it to
/// `conn`, `SO_PASSCRED` off.
fn handshake<S: Service, const P: usize, const E: usize, const B: usize>(
    conn: &mut Connection<S, P, E, B>,
    name: &str,
    timeout: Option<Duration>,
) -> Result<(OwnedFd, SetupNames), TransportError> {
    let sock = connect_setup(name).map_err(|e| match e {
        Errno::ECONNREFUSED | Errno::ENOENT => TransportError::NoDaemon(e),
        e => TransportError::Io(e),
    })?;
    set_passcred(&sock, true).map_err(TransportError::Io)?;
    let mut req = [0u8; 64];
    let n = conn.encode_setup(&mut req).map_err(|_| TransportError::Io(Errno::EINVAL))?;
    send_all(&sock, &req[..n]).map_err(disconnected)?;
    match poll_readable(&sock, timeout).map_err(TransportError::Io)? {
        PollState::Timeout => return Err(TransportError::Timeout),
        PollState::Readable | PollState::Hup => {}
    }
    let mut resp = vec![0u8; CONNECTION_RESPONSE_LEN];
    if let Some(t) = timeout {
        // Bound the read of the rest of the response too.
        let t = TimeVal::new(
            libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            libc::suseconds_t::from(t.subsec_micros().max(1)),
        );
        setsockopt(&sock, sockopt::ReceiveTimeout, &t).map_err(TransportError::Io)?;
    }
    recv_exact_with_creds(&sock, &mut resp).map_err(|e| match e {
        Errno::EAGAIN => TransportError::Timeout,
        e => disconnected(e),
    })?;
    if timeout.is_some() {
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 0)).map_err(TransportError::Io)?;
    }
    let names = conn.handle_setup(&resp).map_err(TransportError::Handshake)?;
    let names = SetupNames {
        connection_type: names.connection_type,
        max_msg_size: names.max_msg_size as usize,
        request: path_of(names.request).to_path_buf(),
        response: path_of(names.response).to_path_buf(),
        event: path_of(names.event).to_path_buf(),
    };
    set_passcred(&sock, false).map_err(TransportError::Io)?;
    Ok((sock, names))
}

/// Refuses a transport this client does not speak: closes the connection.
fn unsupported<S: Service, const P: usize, const E: usize, const B: usize>(
    conn: &mut Connection<S, P, E, B>,
    sock: OwnedFd,
    kind: ConnectionType,
) -> TransportError {
    conn.handle_closed();
    let _ = shutdown(sock.as_raw_fd(), Shutdown::Both);
    TransportError::Handshake(HandleError::UnsupportedTransport(kind))
}

fn path_of(bytes: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(bytes))
}

impl ShmTransport {
    /// Opens the three rings the setup response named.
    fn open<S: Service, const P: usize, const E: usize, const B: usize>(
        conn: &mut Connection<S, P, E, B>,
        sock: OwnedFd,
        names: &SetupNames,
    ) -> Result<Self, TransportError> {
        let opened = (|| {
            Ok::<_, ShmError>((
                ShmRing::open(&names.request)?,
                ShmRing::open(&names.response)?,
                ShmRing::open(&names.event)?,
            ))
        })();
        match opened {
            Ok((request, response, event)) => {
                Ok(Self { sock, request, response, event, spin: Spin::new(None), owed: AtomicIsize::new(0) })
            }
            Err(e) => {
                conn.handle_closed();
                let _ = shutdown(sock.as_raw_fd(), Shutdown::Both);
                Err(e.into())
            }
        }
    }

    /// Sets how long a reply wait spins before it sleeps: `None` (the default) adapts to the
    /// recent reply latencies (see `Options::spin`), `Some(Duration::ZERO)` never spins.
    pub fn set_spin(&mut self, spin: Option<Duration>) {
        self.spin = Spin::new(spin);
    }

    /// The request ring.
    pub fn request_ring(&self) -> &ShmRing {
        &self.request
    }

    /// The response ring.
    pub fn response_ring(&self) -> &ShmRing {
        &self.response
    }

    /// The event ring.
    pub fn event_ring(&self) -> &ShmRing {
        &self.event
    }

    /// Checks that a request of `len` bytes could be sent now, as libqb does before a send:
    /// the request ring's `ref_count` is 2, flow control is not 1, and the ring has room.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], [`TransportError::TryAgain`], or
    /// [`TransportError::Ring`] for a request the ring can never hold.
    pub fn check_send(&self, len: usize) -> Result<(), TransportError> {
        if self.request.ref_count() != 2 {
            return Err(TransportError::Disconnected);
        }
        if self.request.flow_control() == FlowControl::Off {
            return Err(TransportError::TryAgain);
        }
        self.request.check_space(len)?;
        Ok(())
    }

    /// Sends one request: [`ShmTransport::check_send`], commit the chunk to the request ring,
    /// post its semaphore, then write the 1-byte doorbell on the setup socket.
    ///
    /// # Errors
    /// As [`ShmTransport::check_send`]; [`TransportError::Disconnected`] if the socket is gone.
    pub fn send(&self, msg: &[u8]) -> Result<(), TransportError> {
        self.check_send(msg.len())?;
        self.send_checked(msg)
    }

    /// [`ShmTransport::send`] after a successful [`ShmTransport::check_send`] for at least
    /// `msg.len()` bytes: flow control is not looked at again (the request is already
    /// recorded by the caller), and ring space can only have grown since.
    pub(crate) fn send_checked(&self, msg: &[u8]) -> Result<(), TransportError> {
        if self.request.ref_count() != 2 {
            return Err(TransportError::Disconnected);
        }
        self.request.write_chunk(msg)?;
        // libqb sends the low byte of the message length; the value does not matter.
        send_all(&self.sock, &[msg.len() as u8]).map_err(disconnected)
    }

    /// Commits one request to the request ring (as [`ShmTransport::send_checked`]) without
    /// its doorbell byte; [`ShmTransport::ring_doorbells`] must follow at once, because the
    /// server, once woken, reads one byte per request it served.
    pub(crate) fn write_request(&self, msg: &[u8]) -> Result<(), TransportError> {
        if self.request.ref_count() != 2 {
            return Err(TransportError::Disconnected);
        }
        self.request.write_chunk(msg)?;
        Ok(())
    }

    /// Sends the doorbell bytes of `n` requests written with [`ShmTransport::write_request`],
    /// in one `send()` (libqb's server serves up to `min(queued, 50)` requests per wake-up and
    /// then reads that many bytes).
    pub(crate) fn ring_doorbells(&self, mut n: usize) -> Result<(), TransportError> {
        let bytes = [0u8; DOORBELL_BATCH];
        while n > 0 {
            let k = n.min(DOORBELL_BATCH);
            send_all(&self.sock, &bytes[..k]).map_err(disconnected)?;
            n -= k;
        }
        Ok(())
    }

    /// Checks that the server is still there: no hang-up or EOF on the setup socket (pending
    /// event bytes are fine) and the request ring still referenced by both sides.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or [`TransportError::Io`] if polling fails.
    pub fn check_alive(&self) -> Result<(), TransportError> {
        match poll_readable(&self.sock, Some(Duration::ZERO)).map_err(TransportError::Io)? {
            PollState::Hup => return Err(TransportError::Disconnected),
            PollState::Readable if !self.event_byte_pending()? => return Err(TransportError::Disconnected),
            PollState::Readable | PollState::Timeout => {}
        }
        if self.request.ref_count() != 2 {
            return Err(TransportError::Disconnected);
        }
        Ok(())
    }

    /// Whether an event byte is waiting (`false` means end of file).
    fn event_byte_pending(&self) -> Result<bool, TransportError> {
        let mut byte = [0u8; 1];
        loop {
            match recv(self.sock.as_raw_fd(), &mut byte, MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Ok(false),
                Ok(_) | Err(Errno::EAGAIN) => return Ok(true),
                Err(Errno::EINTR) => {}
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
    }

    /// Waits for the next reply and copies it into `out`, then reclaims it. Spins briefly on
    /// the response ring's semaphore, then sleeps on its futex in slices of at most 2 s,
    /// checking between slices that the server is alive (docs/protocol.md §2.10). `deadline` `None` waits
    /// for as long as the connection is up.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] once `deadline` passes, [`TransportError::Disconnected`],
    /// [`TransportError::Ring`] for a corrupt ring.
    pub fn recv_response(&self, deadline: Option<Instant>, out: &mut Vec<u8>) -> Result<(), TransportError> {
        let sem = self.response.sem()?;
        if !sem.try_wait() {
            let start = Instant::now();
            let limit = self.spin.limit();
            let spun = !limit.is_zero() && spin_take(&sem, start, limit);
            if !spun {
                wait_token(&sem, deadline, || self.check_alive())?;
            }
            self.spin.record(start.elapsed(), spun);
        }
        self.response.read_chunk(out)?;
        Ok(())
    }

    /// Reads one event into `out` if one is pending, waiting for one as `wait` says, and
    /// reclaims it. Returns `false` when a [`Wait::Never`] read found none.
    ///
    /// The event ring's semaphore is tried first; the event's doorbell byte is then consumed
    /// with a plain `recv` at once for [`Wait::Forever`], and in bulk by
    /// [`ShmTransport::settle_events`] (or the next wait) for [`Wait::Never`]. Only when no
    /// event is ready is the setup socket polled and read (without `MSG_PEEK`, which walks
    /// every queued byte): EOF or hang-up there means the server is gone.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`] on hang-up or EOF; [`TransportError::Ring`] for a
    /// corrupt ring.
    pub fn recv_event(&self, wait: Wait, out: &mut Vec<u8>) -> Result<bool, TransportError> {
        let timeout = match wait {
            Wait::Never => Some(Duration::ZERO),
            Wait::Forever => None,
        };
        let sem = self.event.sem()?;
        loop {
            let owed = self.owed.load(Relaxed);
            let token = sem.try_wait();
            if token || owed < 0 {
                if !token {
                    // A byte was read before its token was taken; the server posts before it
                    // sends the byte, so the token is there. Wait anyway, with liveness checks.
                    wait_token(&sem, None, || self.check_alive())?;
                }
                self.event.read_chunk(out)?;
                self.owed.store(self.owed.load(Relaxed) + 1, Relaxed);
                if wait == Wait::Forever || self.owed.load(Relaxed) >= DOORBELL_BATCH as isize {
                    self.settle_events();
                }
                return Ok(true);
            }
            match poll_readable(&self.sock, timeout).map_err(TransportError::Io)? {
                PollState::Timeout => return Ok(false),
                PollState::Hup => return Err(TransportError::Disconnected),
                PollState::Readable => {}
            }
            let mut bytes = [0u8; DOORBELL_BATCH];
            let want = usize::try_from(owed).unwrap_or(0).saturating_add(1).min(DOORBELL_BATCH);
            match recv(self.sock.as_raw_fd(), &mut bytes[..want], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => self.owed.store(self.owed.load(Relaxed) - n as isize, Relaxed),
                Err(Errno::EAGAIN | Errno::EINTR) if wait == Wait::Forever => {}
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(false),
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
    }

    /// Consumes the doorbell bytes of events already read, without waiting. Bytes the server
    /// has not sent yet are left for the next [`ShmTransport::recv_event`]; EOF is left for
    /// it to report.
    pub fn settle_events(&self) {
        let mut bytes = [0u8; DOORBELL_BATCH];
        loop {
            let owed = self.owed.load(Relaxed);
            if owed <= 0 {
                return;
            }
            let want = usize::try_from(owed).unwrap_or(0).min(DOORBELL_BATCH);
            match recv(self.sock.as_raw_fd(), &mut bytes[..want], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return,
                Ok(n) => self.owed.store(owed - n as isize, Relaxed),
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

/// Takes a token by spinning from `start` for at most `limit`, yielding the CPU on every round
/// after [`SPIN_YIELD_AFTER`]; `false` if none came.
fn spin_take(sem: &crate::sem::GlibcSem<'_>, start: Instant, limit: Duration) -> bool {
    loop {
        for _ in 0..64 {
            if sem.try_wait() {
                return true;
            }
            core::hint::spin_loop();
        }
        let spent = start.elapsed();
        if spent >= limit {
            return false;
        }
        if spent >= SPIN_YIELD_AFTER {
            // `sched_yield()` on Linux.
            std::thread::yield_now();
        }
    }
}

/// Sleeps on `sem` until a token is taken, in slices of at most 2 s, calling `alive` between
/// slices; gives up at `deadline`.
fn wait_token(
    sem: &crate::sem::GlibcSem<'_>,
    deadline: Option<Instant>,
    alive: impl Fn() -> Result<(), TransportError>,
) -> Result<(), TransportError> {
    loop {
        let slice = match deadline {
            None => MAX_WAIT_SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return if sem.try_wait() { Ok(()) } else { Err(TransportError::Timeout) };
                }
                left.min(MAX_WAIT_SLICE)
            }
        };
        match sem.wait(Some(slice)) {
            Ok(()) => return Ok(()),
            Err(SemError::TimedOut) => alive()?,
            Err(e) => return Err(ShmError::from(e).into()),
        }
    }
}

fn disconnected(e: Errno) -> TransportError {
    match e {
        Errno::EPIPE | Errno::ECONNRESET | Errno::ENOTCONN => TransportError::Disconnected,
        e => TransportError::Io(e),
    }
}

impl Drop for ShmTransport {
    fn drop(&mut self) {
        // libqb closes the socket first; the server sees the hang-up and removes the files.
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Both);
    }
}

impl AsFd for ShmTransport {
    /// The setup socket: readable when an event is pending or the server hung up.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for ShmTransport {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// The transport the server chose at setup: shared memory (type 1, corosync's default) or
/// datagram sockets (type 0, `qb_ipc_type: socket`). The clients drive either through the
/// same calls.
#[derive(Debug)]
pub enum Transport {
    /// Shared-memory rings (docs/protocol.md §2).
    Shm(ShmTransport),
    /// Datagram sockets (docs/protocol.md §3).
    Socket(SocketTransport),
}

/// Runs `$body` with `$t` bound to whichever transport `$self` holds.
macro_rules! either {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            Transport::Shm($t) => $body,
            Transport::Socket($t) => $body,
        }
    };
}

/// Bytes of replies a pipelining client keeps in flight on the socket transport (the server's
/// send buffer holds them until they are read).
const SOCKET_REPLY_BUDGET: usize = 64 * 1024;

impl Transport {
    /// Connects to the connection's service and runs the setup handshake: connect the setup
    /// socket, `SO_PASSCRED` on, send the setup request, read the 12328-byte response (waiting
    /// at most `timeout` for it), hand it to `conn`, `SO_PASSCRED` off; then opens the
    /// transport the server chose: the three rings, or the control file and datagram sockets.
    ///
    /// # Errors
    /// [`TransportError::NoDaemon`], [`TransportError::Handshake`] (e.g. `EACCES`, or a
    /// transport other than shared memory or sockets), [`TransportError::Timeout`],
    /// [`TransportError::Disconnected`] if the server closes the socket before answering,
    /// [`TransportError::Ring`] / [`TransportError::Io`] otherwise.
    pub fn connect<S: Service, const P: usize, const E: usize, const B: usize>(
        conn: &mut Connection<S, P, E, B>,
        timeout: Option<Duration>,
    ) -> Result<Self, TransportError> {
        Self::connect_to(conn, conn.service_name(), timeout)
    }

    /// [`Transport::connect`] to the libqb socket `name` instead of the service's standard
    /// one (e.g. a test server listening under a private name).
    ///
    /// # Errors
    /// As [`Transport::connect`].
    pub fn connect_to<S: Service, const P: usize, const E: usize, const B: usize>(
        conn: &mut Connection<S, P, E, B>,
        name: &str,
        timeout: Option<Duration>,
    ) -> Result<Self, TransportError> {
        let (sock, names) = handshake(conn, name, timeout)?;
        match names.connection_type {
            ConnectionType::Shm => ShmTransport::open(conn, sock, &names).map(Self::Shm),
            ConnectionType::Socket => {
                SocketTransport::open(sock, &names.request, &names.response, names.max_msg_size)
                    .map(Self::Socket)
                    .inspect_err(|_| conn.handle_closed())
            }
            other => Err(unsupported(conn, sock, other)),
        }
    }

    /// The reply-wait spin of the shared-memory transport ([`ShmTransport::set_spin`]); the
    /// socket transport sleeps in `poll` and ignores it.
    pub fn set_spin(&mut self, spin: Option<Duration>) {
        if let Self::Shm(t) = self {
            t.set_spin(spin);
        }
    }

    /// The largest request that can be sent: the request ring's largest chunk, or the
    /// negotiated maximum message size.
    pub fn max_request_len(&self) -> usize {
        match self {
            Self::Shm(t) => t.request_ring().geometry().max_chunk(),
            Self::Socket(t) => t.max_msg_size(),
        }
    }

    /// The largest event that can arrive.
    pub fn max_event_len(&self) -> usize {
        match self {
            Self::Shm(t) => t.event_ring().geometry().max_chunk(),
            Self::Socket(t) => t.max_msg_size(),
        }
    }

    /// How many bytes of replies may be in flight at once: the response ring's size, or a
    /// fixed budget on sockets.
    pub fn reply_budget(&self) -> usize {
        match self {
            Self::Shm(t) => t.response_ring().geometry().bytes(),
            Self::Socket(_) => SOCKET_REPLY_BUDGET,
        }
    }

    /// Checks that a request of `len` bytes could be sent now.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], [`TransportError::TryAgain`], or an error for a
    /// request that can never be sent.
    pub fn check_send(&self, len: usize) -> Result<(), TransportError> {
        either!(self, t => t.check_send(len))
    }

    /// Writes one request after a successful [`Transport::check_send`]: into the request ring
    /// (its doorbell goes with [`Transport::ring_doorbells`]), or as a datagram.
    pub(crate) fn write_request(&self, msg: &[u8]) -> Result<(), TransportError> {
        match self {
            Self::Shm(t) => t.write_request(msg),
            Self::Socket(t) => t.send(msg),
        }
    }

    /// Sends the doorbell bytes of `n` requests written with [`Transport::write_request`]
    /// (shared memory only; datagrams need none).
    pub(crate) fn ring_doorbells(&self, n: usize) -> Result<(), TransportError> {
        match self {
            Self::Shm(t) => t.ring_doorbells(n),
            Self::Socket(_) => Ok(()),
        }
    }

    /// Checks that the server is still there.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or [`TransportError::Io`] if polling fails.
    pub fn check_alive(&self) -> Result<(), TransportError> {
        either!(self, t => t.check_alive())
    }

    /// Waits for the next reply and copies it into `out` ([`ShmTransport::recv_response`]).
    ///
    /// # Errors
    /// [`TransportError::Timeout`] once `deadline` passes, [`TransportError::Disconnected`],
    /// or a transport fault.
    pub fn recv_response(&self, deadline: Option<Instant>, out: &mut Vec<u8>) -> Result<(), TransportError> {
        either!(self, t => t.recv_response(deadline, out))
    }

    /// Reads one event into `out` if one is pending, waiting as `wait` says; `false` when a
    /// [`Wait::Never`] read found none.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or a transport fault.
    pub fn recv_event(&self, wait: Wait, out: &mut Vec<u8>) -> Result<bool, TransportError> {
        either!(self, t => t.recv_event(wait, out))
    }

    /// Consumes the doorbell bytes of events already read ([`ShmTransport::settle_events`]).
    pub fn settle_events(&self) {
        if let Self::Shm(t) = self {
            t.settle_events();
        }
    }
}

impl AsFd for Transport {
    /// The fd to poll for events: the setup socket (shared memory) or the event socket.
    fn as_fd(&self) -> BorrowedFd<'_> {
        either!(self, t => t.as_fd())
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.as_fd().as_raw_fd()
    }
}
