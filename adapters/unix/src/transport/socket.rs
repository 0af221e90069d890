//! The libqb socket transport, client side (connection type 0, docs/protocol.md §3): after the setup
//! handshake, a 24-byte control file and two datagram sockets on abstract names derived from
//! the base name the server sent. Used when corosync runs with `qb_ipc_type: socket`.

use core::sync::atomic::Ordering::{AcqRel, Acquire};
use core::time::Duration;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use corowire::dispatch::Wait;
use corowire::ring::FlowControl;
use nix::errno::Errno;
use nix::sys::socket::{recv, shutdown, MsgFlags, Shutdown};

use corowire::transport::BufferTooSmall;
use corowire::wire::socket::{CONTROL_LEN, EVENT_SENT, REQUEST_FLOW_CONTROL, REQUEST_SENT, RESPONSE_SENT};

use super::clock::{wait_readable, Clock, MAX_WAIT_SLICE};
use super::conndir::ConnDir;
use super::error::TransportError;
use crate::sys::shm::SharedMapping;
use crate::sys::sock::{
    bind_dgram, connect_dgram, poll_either, poll_readable, poll_writable, readiness_fd, recv_dgram_into,
    send_dgram, PollState,
};

/// The abstract name `<base>-<suffix>` of one of the connection's datagram sockets.
pub fn channel_name(base: &Path, suffix: &str) -> Vec<u8> {
    let mut name = base.as_os_str().as_bytes().to_vec();
    name.push(b'-');
    name.extend_from_slice(suffix.as_bytes());
    name
}

/// Adds `delta` to the `sent` counter at `offset` of a control file.
pub(crate) fn count(control: &SharedMapping, offset: usize, delta: i32) {
    if let Some(word) = control.atomic_i32(offset) {
        word.fetch_add(delta, AcqRel);
    }
}

/// One reading of the control file (docs/protocol.md §3; libqb's `struct ipc_us_control`,
/// lib/ipc_setup.c): for each channel the number of datagrams sent and not yet received, and
/// the request channel's flow control, in host byte order as the server wrote them. The
/// response and event channels' flow-control words (offsets 12 and 20) are the server's and
/// are not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Control {
    /// Requests sent and not yet received by the server (offset 0).
    pub request_sent: i32,
    /// Whether the client may send (offset 4).
    pub request_flow_control: FlowControl,
    /// Replies sent and not yet received by the client (offset 8).
    pub response_sent: i32,
    /// Events sent and not yet received by the client (offset 16).
    pub event_sent: i32,
}

/// Why a control file's bytes are not a control file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// Fewer than [`CONTROL_LEN`] (24) bytes.
    TooShort {
        /// The bytes there were.
        len: usize,
    },
}

impl core::fmt::Display for ControlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort { len } => {
                write!(f, "socket control file of {len} bytes, shorter than its {CONTROL_LEN}")
            }
        }
    }
}

impl core::error::Error for ControlError {}

/// Decodes the first [`CONTROL_LEN`] bytes of a control file (more are allowed and ignored, as
/// libqb's client maps only its structure). Pure: any bytes give a value or an error.
///
/// # Errors
/// [`ControlError::TooShort`] for fewer than 24 bytes.
pub fn parse_control(bytes: &[u8]) -> Result<Control, ControlError> {
    let Some(bytes) = bytes.get(..CONTROL_LEN) else {
        return Err(ControlError::TooShort { len: bytes.len() });
    };
    let word = |offset: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&bytes[offset..offset + 4]);
        i32::from_ne_bytes(w)
    };
    Ok(Control {
        request_sent: word(REQUEST_SENT),
        request_flow_control: FlowControl::from_raw(word(REQUEST_FLOW_CONTROL)),
        response_sent: word(RESPONSE_SENT),
        event_sent: word(EVENT_SENT),
    })
}

/// Reads the control file mapped as `control` through [`parse_control`]: what
/// [`SocketTransport::open`] checks before it uses the mapping.
///
/// # Errors
/// [`ControlError::TooShort`] for a mapping shorter than 24 bytes.
pub fn read_control(control: &SharedMapping) -> Result<Control, ControlError> {
    let mut bytes = [0u8; CONTROL_LEN];
    let len = control.len().min(CONTROL_LEN);
    if control.read_bytes(0, &mut bytes[..len]).is_err() {
        return Err(ControlError::TooShort { len: 0 });
    }
    parse_control(&bytes[..len])
}

/// A connected libqb socket transport. Dropping it shuts the setup socket down, unlinks the
/// control file and tries to remove its directory.
#[derive(Debug)]
pub struct SocketTransport {
    setup: OwnedFd,
    control: SharedMapping,
    control_path: PathBuf,
    /// The directory holding the control file, opened at connect time: the file is removed
    /// through it.
    dir: ConnDir,
    /// Requests go out and responses come in on this socket.
    request: OwnedFd,
    event: OwnedFd,
    /// An epoll fd over `event` and `setup`: what [`AsFd`] gives, readable on an event or a
    /// hang-up, as the shared-memory transport's setup socket is.
    ready: OwnedFd,
    max_msg_size: usize,
    clock: Clock,
}

impl SocketTransport {
    /// Opens the transport the setup response named: maps the control file `control_path`,
    /// binds `\0<base>-response` and connects it to `\0<base>-request`, binds `\0<base>-event`
    /// and connects it to `\0<base>-event-tx`. `setup` is the connected setup socket, kept for
    /// liveness.
    ///
    /// The server must run as root or as the client's own user (`SO_PEERCRED` on `setup`), and
    /// the control file must lie in a `qb-*` directory of the server's or the client's user;
    /// both are opened through descriptors that never follow a symbolic link, and the file's
    /// owner is checked on its descriptor (issue 13: libqb's client maps and later unlinks
    /// whatever path the server names).
    ///
    /// # Errors
    /// [`TransportError::Untrusted`] for a server or file failing those checks;
    /// [`TransportError::Io`] for a control file that cannot be mapped or is too short
    /// (`EINVAL`, [`read_control`]), or a socket that cannot be bound or connected.
    pub fn open(
        setup: OwnedFd,
        control_path: &Path,
        base: &Path,
        max_msg_size: usize,
    ) -> Result<Self, TransportError> {
        let dir = ConnDir::open(&setup, control_path)?;
        let control = dir.map(control_path)?;
        read_control(&control).map_err(|_| TransportError::Io(Errno::EINVAL))?;
        let pair = |local: &str, remote: &str| -> Result<OwnedFd, Errno> {
            let fd = bind_dgram(&channel_name(base, local), max_msg_size)?;
            connect_dgram(&fd, &channel_name(base, remote))?;
            Ok(fd)
        };
        let request = pair("response", "request").map_err(TransportError::Io)?;
        let event = pair("event", "event-tx").map_err(TransportError::Io)?;
        let ready = readiness_fd(&[event.as_fd(), setup.as_fd()]).map_err(TransportError::Io)?;
        Ok(Self {
            setup,
            control,
            control_path: control_path.to_path_buf(),
            dir,
            request,
            event,
            ready,
            max_msg_size,
            clock: Clock::start(),
        })
    }

    /// The negotiated maximum message size: the largest request or event.
    pub fn max_msg_size(&self) -> usize {
        self.max_msg_size
    }

    /// Checks that a request of `len` bytes could be sent now: the server is there, flow
    /// control is not 1, and `len` is within the negotiated maximum.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], [`TransportError::TryAgain`], or
    /// [`TransportError::Io`] (`EMSGSIZE`) for a request that can never be sent.
    pub fn check_send(&self, len: usize) -> Result<(), TransportError> {
        if len > self.max_msg_size {
            return Err(TransportError::Io(Errno::EMSGSIZE));
        }
        let raw = self.control.atomic_i32(REQUEST_FLOW_CONTROL).map_or(0, |w| w.load(Acquire));
        if FlowControl::from_raw(raw) == FlowControl::Off {
            return Err(TransportError::TryAgain);
        }
        Ok(())
    }

    /// Sends one request as one datagram and counts it in the control file, waiting (with
    /// liveness checks) while the server's queue is full.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`] once the server is gone; [`TransportError::Io`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        loop {
            match send_dgram(&self.request, msg) {
                Ok(()) => {
                    count(&self.control, REQUEST_SENT, 1);
                    return Ok(());
                }
                Err(Errno::EAGAIN | Errno::ENOBUFS) => {
                    if !poll_writable(&self.request, MAX_WAIT_SLICE).map_err(TransportError::Io)? {
                        self.check_alive()?;
                    }
                }
                Err(Errno::ECONNREFUSED | Errno::ENOTCONN | Errno::ECONNRESET | Errno::EPIPE) => {
                    return Err(TransportError::Disconnected)
                }
                Err(e) => return Err(TransportError::Io(e)),
            }
        }
    }

    /// Requests go out at once ([`SocketTransport::send`]).
    fn write_request(&mut self, msg: &[u8]) -> Result<(), TransportError> {
        self.send(msg)
    }

    /// Datagrams need no announcement.
    fn flush(&self, _written: usize) -> Result<(), TransportError> {
        Ok(())
    }

    /// Datagrams carry no doorbells to settle.
    fn settle_events(&mut self) {}

    /// Waits until an event is readable, or the server hung up (`true`: the next
    /// `recv_event` tells which), or `deadline` passes (`false`); checking every 2 s that the
    /// server is alive.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or [`TransportError::Io`] if polling fails.
    pub fn wait_event(&mut self, deadline: Instant) -> Result<bool, TransportError> {
        // The epoll fd over the event and the setup socket: a hang-up ends a short wait too.
        wait_readable(&self.ready, deadline, || self.check_alive())
    }

    /// Checks that the server is still there: no hang-up or end of file on the setup socket
    /// (which carries nothing after the handshake; stray bytes are read and dropped, so that
    /// they do not keep waking a wait). Once it is gone, removes the control file and the
    /// connection directory at once (as the drop does, and as libqb's client does when it
    /// disconnects), so that a handle kept while the daemon is down (a resilient one waiting
    /// to reconnect) leaves nothing of the dead daemon's behind.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], or [`TransportError::Io`] if polling fails.
    pub fn check_alive(&self) -> Result<(), TransportError> {
        let alive = self.alive();
        if matches!(alive, Err(TransportError::Disconnected)) {
            self.remove_files();
        }
        alive
    }

    /// Removes the control file, then tries the directory, both through the directory's
    /// descriptor (the server removes them too; whoever is second fails harmlessly).
    fn remove_files(&self) {
        self.dir.unlink(&self.control_path, "");
        self.dir.remove();
    }

    /// [`SocketTransport::check_alive`] without the removal.
    fn alive(&self) -> Result<(), TransportError> {
        match poll_readable(&self.setup, Some(Duration::ZERO)).map_err(TransportError::Io)? {
            PollState::Hup => Err(TransportError::Disconnected),
            PollState::Timeout => Ok(()),
            PollState::Readable => {
                let mut stray = [0u8; 64];
                match recv(self.setup.as_raw_fd(), &mut stray, MsgFlags::MSG_DONTWAIT) {
                    Ok(0) => Err(TransportError::Disconnected),
                    Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => Ok(()),
                    Err(_) => Err(TransportError::Disconnected),
                }
            }
        }
    }

    /// Receives one datagram from `fd` into `out`, waiting until `deadline` (`None`: for as
    /// long as the server is alive, checked every 2 s and whenever the setup socket stirs),
    /// and uncounts it at `sent`; its length, or `None` when the deadline passed.
    fn recv_on(
        &self,
        fd: &OwnedFd,
        sent: usize,
        deadline: Option<Instant>,
        out: &mut [u8],
    ) -> Result<Option<usize>, TransportError> {
        loop {
            match recv_dgram_into(fd, out) {
                Ok(len) if len > out.len() => {
                    return Err(TransportError::BufferTooSmall(BufferTooSmall {
                        needed: len,
                        available: out.len(),
                    }))
                }
                Ok(len) => {
                    count(&self.control, sent, -1);
                    return Ok(Some(len));
                }
                Err(Errno::EAGAIN) => {}
                Err(Errno::ECONNREFUSED | Errno::ENOTCONN | Errno::ECONNRESET) => {
                    return Err(TransportError::Disconnected)
                }
                Err(e) => return Err(TransportError::Io(e)),
            }
            let slice = match deadline {
                None => MAX_WAIT_SLICE,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(None);
                    }
                    left.min(MAX_WAIT_SLICE)
                }
            };
            match poll_either(fd, &self.setup, Some(slice)).map_err(TransportError::Io)? {
                Some(true) => {}
                Some(false) | None => self.check_alive()?,
            }
        }
    }

    /// Waits for the next reply (until `deadline`; `None`: for as long as the server is
    /// alive) and copies it into `out`; returns its length.
    ///
    /// # Errors
    /// [`TransportError::Timeout`], [`TransportError::Disconnected`],
    /// [`TransportError::BufferTooSmall`], [`TransportError::Io`].
    pub fn recv_response(
        &mut self,
        deadline: Option<Instant>,
        out: &mut [u8],
    ) -> Result<usize, TransportError> {
        self.recv_on(&self.request, RESPONSE_SENT, deadline, out)?.ok_or(TransportError::Timeout)
    }

    /// Reads one event into `out` if one is pending, waiting for one as `wait` says; its
    /// length, or `None` when a [`Wait::Never`] read found none.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`], [`TransportError::BufferTooSmall`],
    /// [`TransportError::Io`].
    pub fn recv_event(&mut self, wait: Wait, out: &mut [u8]) -> Result<Option<usize>, TransportError> {
        let deadline = match wait {
            Wait::Never => Some(Instant::now()),
            Wait::Forever => None,
        };
        let got = self.recv_on(&self.event, EVENT_SENT, deadline, out)?;
        if got.is_none() {
            self.check_alive()?;
        }
        Ok(got)
    }
}

super::clock::clocked_transport!(SocketTransport);

impl Drop for SocketTransport {
    fn drop(&mut self) {
        let _ = shutdown(self.setup.as_raw_fd(), Shutdown::Both);
        // As libqb's client.
        self.remove_files();
    }
}

impl AsFd for SocketTransport {
    /// An epoll fd over the event socket and the setup socket: readable when an event is
    /// pending or the server hung up (the next dispatch tells which). libqb's
    /// `qb_ipcc_fd_get` gives the event socket alone, which never shows a hang-up.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.ready.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_words_in_host_order_and_short_files_refused() {
        let mut bytes = [0u8; CONTROL_LEN + 3];
        for (at, v) in [(REQUEST_SENT, 3), (REQUEST_FLOW_CONTROL, 1), (RESPONSE_SENT, -2), (EVENT_SENT, 7)] {
            bytes[at..at + 4].copy_from_slice(&i32::to_ne_bytes(v));
        }
        let control = Control {
            request_sent: 3,
            request_flow_control: FlowControl::Off,
            response_sent: -2,
            event_sent: 7,
        };
        assert_eq!(parse_control(&bytes), Ok(control));
        assert_eq!(parse_control(&bytes[..CONTROL_LEN]), Ok(control));
        let short = parse_control(&bytes[..CONTROL_LEN - 1]);
        assert_eq!(short, Err(ControlError::TooShort { len: 23 }));
        assert_eq!(short.unwrap_err().to_string(), "socket control file of 23 bytes, shorter than its 24");
    }
}
