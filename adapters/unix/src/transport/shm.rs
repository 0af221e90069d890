//! The libqb shared-memory transport, client side (connection type 1, docs/protocol.md §2, appendix A):
//! three rings (request, response, event) with a glibc semaphore each, and the setup socket
//! as doorbell and liveness channel.

use core::sync::atomic::{AtomicBool, Ordering::Relaxed};
use core::time::Duration;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Instant;

use corowire::dispatch::Wait;
use corowire::ring::FlowControl;
use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::sys::socket::{getsockopt, recv, shutdown, sockopt, MsgFlags, Shutdown};
use nix::unistd::Pid;

use super::clock::{wait_readable, Clock, MAX_WAIT_SLICE};
use super::conndir::{ConnDir, Untrusted};
use super::error::{disconnected, TransportError};
use super::spin::{spin_take, Spin};
use crate::ring::{ShmError, ShmRing};
use crate::sem::{GlibcSem, SemError};
use crate::sys::sock::{poll_readable, send_all, PollState};

/// Doorbell bytes consumed per `recv` when events are read in bulk.
const DOORBELL_BATCH: usize = 256;

/// How often, and how far apart, a client that lost its server looks whether the server
/// process is gone before it removes the ring files itself (libqb looks 4 times, 10 ms apart).
const REAP_TRIES: u32 = 10;
const REAP_PAUSE: Duration = Duration::from_millis(10);

/// A connected libqb shared-memory transport. Dropping it shuts the setup socket down and
/// releases the rings; the server then removes the ring files.
///
/// When the server dies without cleaning up (SIGKILL, a crash), the client removes what it
/// may, as libqb's `qb_ipcc_shm_disconnect` does with `qb_rb_force_close`: the first call
/// that finds the server gone (and the drop, if no call did) looks whether the server
/// process still exists, and once it does not (or is a zombie, or its pid is not known),
/// unlinks the six ring files and, unlike libqb, also the emptied connection directory,
/// which the server made the client's own (docs/protocol.md §2.1, §2.9). It removes them
/// through the directory's descriptor, opened at connect time, so a directory swapped for a
/// link after the server died redirects nothing (issue 13).
///
/// Everything it changes (the rings' chunks, the event doorbell bytes owed, the adaptive
/// spin's statistics) is changed only through `&mut self`, never through a shared reference:
/// the type is `Send` and `Sync`, and a `&ShmTransport` shared between threads allows only
/// the calls that change nothing ([`ShmTransport::check_send`], [`ShmTransport::check_alive`],
/// the ring accessors, whose chunk writes and reads need `&mut ShmRing`), so no chunk can be
/// torn and no update lost. Sending and reading need exclusive access:
///
/// ```compile_fail
/// fn shared(t: &corowire_unix::transport::ShmTransport) {
///     let _ = t.send(b"request");
/// }
/// ```
///
/// ```compile_fail
/// fn shared(t: &corowire_unix::transport::ShmTransport, out: &mut [u8]) {
///     let _ = t.recv_event(corowire::Wait::Never, out);
/// }
/// ```
///
/// ```
/// fn exclusive(t: &mut corowire_unix::transport::ShmTransport, out: &mut [u8]) {
///     let _ = t.send(b"request");
///     let _ = t.recv_event(corowire::Wait::Never, out);
/// }
/// ```
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
    owed: isize,
    clock: Clock,
    /// The base paths of the three rings, as the setup response named them.
    bases: [PathBuf; 3],
    /// The directory holding them, opened at connect time: the files are removed through it.
    dir: ConnDir,
    /// The server's pid from `SO_PEERCRED`, `None` if it is not visible from here.
    server: Option<Pid>,
    /// Whether a failed call already looked whether the server is gone.
    looked: AtomicBool,
    /// Whether the ring files were removed.
    removed: AtomicBool,
}

impl ShmTransport {
    /// Opens the three rings the setup response named, over the connected setup socket
    /// `sock`. The server must run as root or as the client's own user (`SO_PEERCRED` on
    /// `sock`), and the three rings must lie in one `qb-*` directory of the server's or the
    /// client's user, opened `O_NOFOLLOW` and kept open to remove them through (issue 13).
    /// On failure the socket is shut down.
    ///
    /// # Errors
    /// [`TransportError::Untrusted`] for a server or directory failing those checks;
    /// [`TransportError::Ring`] / [`TransportError::Io`] for a ring that cannot be opened.
    pub fn open(
        sock: OwnedFd,
        request_path: &Path,
        response_path: &Path,
        event_path: &Path,
    ) -> Result<Self, TransportError> {
        let opened = (|| {
            let dir = ConnDir::open(&sock, request_path)?;
            if ![response_path, event_path].iter().all(|p| dir.holds(p)) {
                return Err(TransportError::Untrusted(Untrusted::NotInConnectionDir));
            }
            Ok::<_, TransportError>((
                dir,
                ShmRing::open(request_path)?,
                ShmRing::open(response_path)?,
                ShmRing::open(event_path)?,
            ))
        })();
        match opened {
            Ok((dir, request, response, event)) => {
                let server = getsockopt(&sock, sockopt::PeerCredentials)
                    .ok()
                    .map(|c| c.pid())
                    .filter(|&pid| pid > 0)
                    .map(Pid::from_raw);
                Ok(Self {
                    sock,
                    request,
                    response,
                    event,
                    spin: Spin::new(None),
                    owed: 0,
                    clock: Clock::start(),
                    bases: [
                        request_path.to_path_buf(),
                        response_path.to_path_buf(),
                        event_path.to_path_buf(),
                    ],
                    dir,
                    server,
                    looked: AtomicBool::new(false),
                    removed: AtomicBool::new(false),
                })
            }
            Err(e) => {
                let _ = shutdown(sock.as_raw_fd(), Shutdown::Both);
                Err(e)
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

    /// The request ring for writing by hand, e.g. a test that drives a server with raw
    /// chunks: the doorbell byte (`send_all` on [`AsFd`]) is then the caller's.
    pub fn request_ring_mut(&mut self) -> &mut ShmRing {
        &mut self.request
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
        self.after(self.room_for(len))
    }

    fn room_for(&self, len: usize) -> Result<(), TransportError> {
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
    pub fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.check_send(msg.len())?;
        self.write_request(msg)?;
        // libqb sends the low byte of the message length; the value does not matter.
        self.after(send_all(&self.sock, &[msg.len() as u8]).map_err(disconnected))
    }

    /// Commits one request to the request ring without its doorbell byte;
    /// [`ShmTransport::flush`] must follow at once, because the server, once woken,
    /// reads one byte per request it served.
    fn write_request(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        if self.request.ref_count() != 2 {
            return self.after(Err(TransportError::Disconnected));
        }
        self.request.write_chunk(msg)?;
        Ok(())
    }

    /// Sends the doorbell bytes of `n` requests, in one `send()` (libqb's server serves up to
    /// `min(queued, 50)` requests per wake-up and then reads that many bytes).
    fn flush(&self, mut n: usize) -> Result<(), TransportError> {
        let bytes = [0u8; DOORBELL_BATCH];
        while n > 0 {
            let k = n.min(DOORBELL_BATCH);
            self.after(send_all(&self.sock, &bytes[..k]).map_err(disconnected))?;
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
        self.after(self.alive())
    }

    fn alive(&self) -> Result<(), TransportError> {
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

    /// Waits for the next reply and copies it into `out`, then reclaims it; returns its
    /// length. Spins briefly on the response ring's semaphore, then sleeps on its futex in
    /// slices of at most 2 s, checking between slices that the server is alive (docs/protocol.md §2.10).
    /// `deadline` `None` waits for as long as the connection is up.
    ///
    /// # Errors
    /// [`TransportError::Timeout`] once `deadline` passes, [`TransportError::Disconnected`],
    /// [`TransportError::Ring`] for a corrupt ring, [`TransportError::BufferTooSmall`].
    pub fn recv_response(
        &mut self,
        deadline: Option<Instant>,
        out: &mut [u8],
    ) -> Result<usize, TransportError> {
        let got = self.wait_response(deadline, out);
        self.after(got)
    }

    fn wait_response(&mut self, deadline: Option<Instant>, out: &mut [u8]) -> Result<usize, TransportError> {
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
        Ok(self.response.read_chunk_into(out)?)
    }

    /// Reads one event into `out` if one is pending, waiting for one as `wait` says, and
    /// reclaims it; returns its length, or `None` when a [`Wait::Never`] read found none.
    ///
    /// The event ring's semaphore is tried first; the event's doorbell byte is then consumed
    /// with a plain `recv` at once for [`Wait::Forever`], and in bulk by
    /// [`ShmTransport::settle_events`] (or the next wait) for [`Wait::Never`]. Only when no
    /// event is ready is the setup socket polled and read (without `MSG_PEEK`, which walks
    /// every queued byte): EOF or hang-up there means the server is gone.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`] on hang-up or EOF; [`TransportError::Ring`] for a
    /// corrupt ring; [`TransportError::BufferTooSmall`].
    pub fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, TransportError> {
        let got = self.next_event(wait, out);
        self.after(got)
    }

    fn next_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, TransportError> {
        let timeout = match wait {
            Wait::Never => Some(Duration::ZERO),
            Wait::Forever => None,
        };
        loop {
            let owed = self.owed;
            let token = self.event.sem()?.try_wait();
            if token || owed < 0 {
                if !token {
                    // A byte was read before its token was taken; the server posts before it
                    // sends the byte, so the token is there. Wait anyway, with liveness checks.
                    wait_token(&self.event.sem()?, None, || self.check_alive())?;
                }
                let len = self.event.read_chunk_into(out)?;
                self.owed += 1;
                if wait == Wait::Forever || self.owed >= DOORBELL_BATCH as isize {
                    self.settle_events();
                }
                return Ok(Some(len));
            }
            match poll_readable(&self.sock, timeout).map_err(TransportError::Io)? {
                PollState::Timeout => return Ok(None),
                PollState::Hup => return Err(TransportError::Disconnected),
                PollState::Readable => {}
            }
            let mut bytes = [0u8; DOORBELL_BATCH];
            let want = usize::try_from(owed).unwrap_or(0).saturating_add(1).min(DOORBELL_BATCH);
            match recv(self.sock.as_raw_fd(), &mut bytes[..want], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return Err(TransportError::Disconnected),
                Ok(n) => self.owed -= n as isize,
                Err(Errno::EAGAIN | Errno::EINTR) if wait == Wait::Forever => {}
                Err(Errno::EAGAIN | Errno::EINTR) => return Ok(None),
                Err(_) => return Err(TransportError::Disconnected),
            }
        }
    }

    /// Waits until an event may be ready or `deadline` passes (`false`), checking every 2 s
    /// that the server is alive.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or [`TransportError::Io`] if polling fails.
    pub fn wait_event(&mut self, deadline: Instant) -> Result<bool, TransportError> {
        if self.owed < 0 {
            return Ok(true);
        }
        wait_readable(&self.sock, deadline, || self.check_alive())
    }

    /// Passes `result` through; a [`TransportError::Disconnected`] first removes the ring
    /// files if the server died without removing them (see the type's docs). Only the first
    /// such result looks; the drop looks again if the files are still there.
    fn after<T>(&self, result: Result<T, TransportError>) -> Result<T, TransportError> {
        if matches!(result, Err(TransportError::Disconnected)) && !self.looked.swap(true, Relaxed) {
            self.reap();
        }
        result
    }

    /// Removes the six ring files and the connection directory once the server process is
    /// gone (looking [`REAP_TRIES`] times, [`REAP_PAUSE`] apart, as libqb does); leaves them
    /// to a server that still runs, which removes them itself.
    fn reap(&self) {
        let gone = match self.server {
            // Not visible from this pid namespace: as libqb where it has no pid, tidy up.
            None => true,
            Some(pid) => (0..REAP_TRIES).any(|i| {
                if i > 0 {
                    std::thread::sleep(REAP_PAUSE);
                }
                process_gone(pid)
            }),
        };
        if gone {
            for base in &self.bases {
                for suffix in ["-header", "-data"] {
                    // Best effort: a file already gone stays as it is.
                    self.dir.unlink(base, suffix);
                }
            }
            // The per-connection `qb-...` directory, once empty (never anything else).
            self.dir.remove();
            self.removed.store(true, Relaxed);
        }
    }

    /// Consumes the doorbell bytes of events already read, without waiting. Bytes the server
    /// has not sent yet are left for the next [`ShmTransport::recv_event`]; EOF is left for
    /// it to report.
    pub fn settle_events(&mut self) {
        let mut bytes = [0u8; DOORBELL_BATCH];
        while self.owed > 0 {
            let want = usize::try_from(self.owed).unwrap_or(0).min(DOORBELL_BATCH);
            match recv(self.sock.as_raw_fd(), &mut bytes[..want], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => return,
                Ok(n) => self.owed -= n as isize,
                Err(Errno::EINTR) => {}
                Err(_) => return,
            }
        }
    }
}

/// Sleeps on `sem` until a token is taken, in slices of at most 2 s, calling `alive` between
/// slices; gives up at `deadline`.
fn wait_token(
    sem: &GlibcSem<'_>,
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

super::clock::clocked_transport!(ShmTransport);

// Shared references to it may cross threads: every change (a chunk written or read, the
// doorbell and spin bookkeeping) needs `&mut self`.
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<ShmTransport>();
};

/// Whether process `pid` no longer runs: no such process, or only its zombie is left (its
/// descriptors are closed and it will never remove anything).
fn process_gone(pid: Pid) -> bool {
    if kill(pid, None) == Err(Errno::ESRCH) {
        return true;
    }
    let stat = std::fs::read(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `pid (comm) S ...`: the state follows the last `)`, since comm may hold one.
    let state = stat.iter().rposition(|&b| b == b')').and_then(|i| stat.get(i + 2));
    matches!(state, Some(b'Z' | b'X'))
}

impl Drop for ShmTransport {
    fn drop(&mut self) {
        // A server that died before any call noticed: the drop is the last chance to tidy.
        let dead = !self.removed.load(Relaxed) && self.alive() == Err(TransportError::Disconnected);
        // libqb closes the socket first; a living server sees the hang-up and removes the files.
        let _ = shutdown(self.sock.as_raw_fd(), Shutdown::Both);
        if dead {
            self.reap();
        }
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
