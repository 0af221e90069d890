//! The libqb setup socket: `AF_UNIX` `SOCK_STREAM` on libqb's zero-padded abstract names, with
//! kernel-attached credentials (`SO_PASSCRED`) and liveness polling (docs/protocol.md §1).

use core::time::Duration;
use std::io::{self, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use nix::cmsg_space;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{
    bind, connect, getsockopt, listen, recv, recvmsg, send, setsockopt, socket, sockopt, AddressFamily,
    Backlog, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, UnixCredentials,
};
use nix::unistd::close;

use crate::sys::Deadline;

/// Length of a libqb abstract name: all of `sun_path` (108 bytes) after the leading NUL.
pub const ABSTRACT_NAME_LEN: usize = 107;

/// If this file exists, libqb uses filesystem sockets in [`SOCKET_DIR`] instead of abstract
/// names (checked once per process by libqb, on every connect here).
pub const FORCE_FILESYSTEM_SOCKETS: &str = "/etc/libqb/force-filesystem-sockets";

/// libqb's build-time `SOCKETDIR`, where filesystem sockets live. It is `/tmp` in Debian's
/// libqb 2.0.6: `qb_ipcc_us_setup_connect` formats `"%s/%s"` with `"/tmp"` and the name.
pub const SOCKET_DIR: &str = "/tmp";

/// Listen backlog used by libqb servers.
const LISTEN_BACKLOG: i32 = 128;

/// The abstract address libqb uses for `name`: `sun_path[0] = 0`, then `name`, then zeros up to
/// all 108 bytes of `sun_path`, with an address length of 110.
///
/// This differs from the shorter address Rust's `SocketAddr::from_abstract_name` builds, which
/// names a different socket.
///
/// # Errors
/// `ENAMETOOLONG` if `name` is longer than [`ABSTRACT_NAME_LEN`].
pub fn abstract_addr(name: &[u8]) -> Result<UnixAddr, Errno> {
    let mut padded = [0u8; ABSTRACT_NAME_LEN];
    padded.get_mut(..name.len()).ok_or(Errno::ENAMETOOLONG)?.copy_from_slice(name);
    UnixAddr::new_abstract(&padded)
}

/// Connects a blocking, close-on-exec stream socket to the libqb service `name` (`"cmap"`,
/// `"votequorum"`, …): at its abstract address, or at `SOCKET_DIR/name` when
/// [`FORCE_FILESYSTEM_SOCKETS`] exists.
///
/// # Errors
/// `socket`/`connect` failures, e.g. `ECONNREFUSED` when nobody listens; `ENAMETOOLONG`.
pub fn connect_setup(name: &str) -> Result<OwnedFd, Errno> {
    let addr = if Path::new(FORCE_FILESYSTEM_SOCKETS).exists() {
        UnixAddr::new(&Path::new(SOCKET_DIR).join(name))?
    } else {
        abstract_addr(name.as_bytes())?
    };
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    connect(fd.as_raw_fd(), &addr)?;
    Ok(fd)
}

/// Listens on the libqb abstract address for `name` with backlog 128 and `SO_PASSCRED` set,
/// as a libqb server does.
///
/// # Errors
/// `socket`/`bind`/`listen` failures, e.g. `EADDRINUSE`; `ENAMETOOLONG`.
pub fn listen_abstract(name: &[u8]) -> Result<UnixListener, Errno> {
    listen_at(&abstract_addr(name)?)
}

/// Listens on the filesystem socket `path` (libqb's `SOCKETDIR/name` when
/// [`FORCE_FILESYSTEM_SOCKETS`] exists) with backlog 128 and `SO_PASSCRED` set. The caller
/// removes a stale file first and the socket file when done.
///
/// # Errors
/// `socket`/`bind`/`listen` failures, e.g. `EADDRINUSE` if `path` exists.
pub fn listen_path(path: &Path) -> Result<UnixListener, Errno> {
    listen_at(&UnixAddr::new(path)?)
}

fn listen_at(addr: &UnixAddr) -> Result<UnixListener, Errno> {
    let fd = socket(AddressFamily::Unix, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    set_passcred(&fd, true)?;
    bind(fd.as_raw_fd(), addr)?;
    listen(&fd, Backlog::new(LISTEN_BACKLOG)?)?;
    Ok(UnixListener::from(fd))
}

/// Accepts one connection (close-on-exec, blocking) and sets `SO_PASSCRED` on it, so that the
/// client's credentials arrive with its first message.
///
/// # Errors
/// `accept` or `setsockopt` failures.
pub fn accept_with_passcred(listener: &UnixListener) -> Result<OwnedFd, Errno> {
    let (stream, _) = listener.accept().map_err(errno_of)?;
    let fd = OwnedFd::from(stream);
    set_passcred(&fd, true)?;
    Ok(fd)
}

/// The credentials of the process that connected `fd` (`SO_PEERCRED`), as of its `connect`:
/// known at accept, before the client sent anything.
///
/// # Errors
/// `getsockopt` failures (e.g. `ENOTCONN`).
pub fn peer_cred(fd: impl AsFd) -> Result<PeerCred, Errno> {
    getsockopt(&fd, sockopt::PeerCredentials).map(PeerCred::from)
}

/// The errno of an I/O error (`EIO` if it has none).
pub(crate) fn errno_of(e: io::Error) -> Errno {
    Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Turns `SO_PASSCRED` on or off: while on, received data carries the sender's credentials.
///
/// # Errors
/// `setsockopt` failures.
pub fn set_passcred(fd: impl AsFd, on: bool) -> Result<(), Errno> {
    setsockopt(&fd, sockopt::PassCred, &on)
}

/// Sends all of `buf` (`MSG_NOSIGNAL`, retrying after `EINTR` and short writes).
///
/// # Errors
/// `send` failures, e.g. `EPIPE` once the peer has gone.
pub fn send_all(fd: impl AsFd, mut buf: &[u8]) -> Result<(), Errno> {
    while !buf.is_empty() {
        match send(fd.as_fd().as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL) {
            Ok(sent) => buf = &buf[sent..],
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Credentials the kernel attached to received data (`SCM_CREDENTIALS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerCred {
    /// Sender's process id.
    pub pid: libc::pid_t,
    /// Sender's user id.
    pub uid: libc::uid_t,
    /// Sender's group id.
    pub gid: libc::gid_t,
}

impl From<UnixCredentials> for PeerCred {
    fn from(c: UnixCredentials) -> Self {
        Self { pid: c.pid(), uid: c.uid(), gid: c.gid() }
    }
}

/// Fills `buf` completely (`recvmsg` with `MSG_WAITALL`, retrying after `EINTR` and short
/// reads) and returns the credentials attached to the first data received, if any. They are
/// present when `SO_PASSCRED` is set on `fd` (see [`set_passcred`]).
///
/// # Errors
/// `ENOTCONN` on end of file before `buf` is full; other `recvmsg` failures. Data that came
/// with descriptors (closed at once) or truncated control data carries no credentials.
pub fn recv_exact_with_creds(fd: impl AsFd, buf: &mut [u8]) -> Result<Option<PeerCred>, Errno> {
    let mut cred = None;
    let mut filled = 0;
    while filled < buf.len() {
        let (n, c) = match recv_once(fd.as_fd(), &mut buf[filled..], MsgFlags::MSG_WAITALL) {
            Ok(got) => got,
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(Errno::ENOTCONN);
        }
        cred = cred.or(c);
        filled += n;
    }
    Ok(cred)
}

/// One `recvmsg` into `buf` (retrying after `EINTR`): the bytes received (0 at end of file)
/// and the credentials attached to them, if any. On a non-blocking socket with nothing to
/// read this is `EAGAIN`; a server reads a setup request piecewise this way.
///
/// # Errors
/// `recvmsg` failures. Data that came with descriptors (closed at once) or truncated
/// control data carries no credentials (`None`).
pub fn recv_with_creds(fd: impl AsFd, buf: &mut [u8]) -> Result<(usize, Option<PeerCred>), Errno> {
    loop {
        match recv_once(fd.as_fd(), buf, MsgFlags::empty()) {
            Err(Errno::EINTR) => {}
            got => return got,
        }
    }
}

/// Most descriptors one message can carry (the kernel's `SCM_MAX_FD`): with room for them
/// beside the credentials, a sender cannot make the control data overflow our buffer.
const SCM_MAX_FD: usize = 253;

/// One `recvmsg` into `buf`: the bytes received and the sender's credentials. Descriptors a
/// peer attached (`SCM_RIGHTS`) are closed at once and the message counts as carrying no
/// credentials (`None`), so a caller comparing them discards it; so does control data the
/// kernel had to truncate. Neither is an error: a stranger must not be able to make a
/// server close someone else's connection by attaching a descriptor.
fn recv_once(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: MsgFlags,
) -> Result<(usize, Option<PeerCred>), Errno> {
    let mut cmsg = cmsg_space!(UnixCredentials, [RawFd; SCM_MAX_FD]);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<()>(fd.as_raw_fd(), &mut iov, Some(&mut cmsg), flags | MsgFlags::MSG_CMSG_CLOEXEC)?;
    let Ok(cmsgs) = msg.cmsgs() else {
        return Ok((msg.bytes, None));
    };
    let mut cred = None;
    let mut carried_fds = false;
    for c in cmsgs {
        match c {
            ControlMessageOwned::ScmCredentials(c) => cred = Some(PeerCred::from(c)),
            ControlMessageOwned::ScmRights(fds) => {
                carried_fds = true;
                for fd in fds {
                    // Ours now; nothing else refers to it. A failed close leaves nothing to do.
                    let _ = close(fd);
                }
            }
            _ => {}
        }
    }
    Ok((msg.bytes, if carried_fds { None } else { cred }))
}

/// What [`poll_readable`] saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollState {
    /// Data (or end of file) can be read without blocking.
    Readable,
    /// The peer hung up, or the socket is in error. Like libqb, this wins over pending data.
    Hup,
    /// Nothing happened before the timeout.
    Timeout,
}

/// Waits for at most `timeout` (`None`: forever) until `fd` is readable or hung up, retrying
/// after `EINTR` with the time left. Never returns [`PollState::Timeout`] before `timeout`
/// has passed: `poll`'s milliseconds are rounded up.
///
/// # Errors
/// `poll` failures other than `EINTR`.
pub fn poll_readable(fd: impl AsFd, timeout: Option<Duration>) -> Result<PollState, Errno> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
    if !poll_until(&mut fds, timeout)? {
        return Ok(PollState::Timeout);
    }
    let revents = fds[0].revents().unwrap_or(PollFlags::empty());
    let gone = PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL;
    Ok(if revents.intersects(gone) { PollState::Hup } else { PollState::Readable })
}

/// `poll`s `fds` until one is ready (`true`) or `timeout` (`None`: forever) has passed
/// (`false`), retrying after `EINTR` and after an early return with the time left.
fn poll_until(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> Result<bool, Errno> {
    let deadline = Deadline::after(timeout);
    loop {
        let left = deadline.remaining();
        match poll(fds, poll_timeout(left)) {
            Ok(0) if left.is_some_and(|l| l.is_zero()) => return Ok(false),
            Ok(0) | Err(Errno::EINTR) => {}
            Ok(_) => return Ok(true),
            Err(e) => return Err(e),
        }
    }
}

/// `left` (`None`: no limit) as a `poll` timeout: whole milliseconds rounded up, so that a
/// timeout of 1 µs waits 1 ms instead of not at all; at most `PollTimeout::MAX`.
fn poll_timeout(left: Option<Duration>) -> PollTimeout {
    left.map_or(PollTimeout::NONE, |left| {
        PollTimeout::try_from(left.as_nanos().div_ceil(1_000_000)).unwrap_or(PollTimeout::MAX)
    })
}

/// An epoll instance (close-on-exec) watching each of `fds` for input: its own fd is readable
/// while one of them is readable, at end of file or hung up (epoll always reports
/// `EPOLLHUP`/`EPOLLERR`), so one fd stands for several in a caller's `poll`. Level-triggered:
/// it stays readable until what made it so is consumed.
///
/// # Errors
/// `epoll_create1`/`epoll_ctl` failures.
pub fn readiness_fd(fds: &[BorrowedFd<'_>]) -> Result<OwnedFd, Errno> {
    let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
    for (i, fd) in fds.iter().enumerate() {
        epoll.add(fd, EpollEvent::new(EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP, i as u64))?;
    }
    Ok(epoll.0)
}

/// A non-blocking, close-on-exec `SOCK_DGRAM` socket bound to the libqb abstract name `local`
/// (zero-padded, as [`abstract_addr`]), with `SO_SNDBUF`/`SO_RCVBUF` raised to at least
/// `max_msg_size` (docs/protocol.md §3). The socket transport's datagram sockets are made this way.
///
/// # Errors
/// `socket`/`bind` failures (e.g. `EADDRINUSE`); `ENAMETOOLONG`.
pub fn bind_dgram(local: &[u8], max_msg_size: usize) -> Result<OwnedFd, Errno> {
    let fd = socket(
        AddressFamily::Unix,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )?;
    bind(fd.as_raw_fd(), &abstract_addr(local)?)?;
    set_dgram_buffers(&fd, max_msg_size)?;
    Ok(fd)
}

/// Connects a datagram socket to the libqb abstract name `remote`.
///
/// # Errors
/// `connect` failures, e.g. `ECONNREFUSED` when nothing is bound there.
pub fn connect_dgram(fd: impl AsFd, remote: &[u8]) -> Result<(), Errno> {
    connect(fd.as_fd().as_raw_fd(), &abstract_addr(remote)?)
}

/// Raises `SO_SNDBUF` and `SO_RCVBUF` to at least `max_msg_size`, as libqb does: the forcing
/// variants first (they pass `wmem_max` for a privileged process), then the plain ones (capped
/// by the kernel).
fn set_dgram_buffers(fd: &OwnedFd, max_msg_size: usize) -> Result<(), Errno> {
    if getsockopt(fd, sockopt::SndBuf)? <= max_msg_size
        && setsockopt(fd, sockopt::SndBufForce, &max_msg_size).is_err()
    {
        setsockopt(fd, sockopt::SndBuf, &max_msg_size)?;
    }
    if getsockopt(fd, sockopt::RcvBuf)? <= max_msg_size
        && setsockopt(fd, sockopt::RcvBufForce, &max_msg_size).is_err()
    {
        setsockopt(fd, sockopt::RcvBuf, &max_msg_size)?;
    }
    Ok(())
}

/// Sends one datagram without blocking (`MSG_DONTWAIT | MSG_NOSIGNAL`, retrying after
/// `EINTR`).
///
/// # Errors
/// `EAGAIN`/`ENOBUFS` when the peer's queue is full; `ECONNREFUSED`/`ENOTCONN` once the
/// peer is gone; `EMSGSIZE` for a datagram larger than the send buffer.
pub fn send_dgram(fd: impl AsFd, msg: &[u8]) -> Result<(), Errno> {
    loop {
        match send(fd.as_fd().as_raw_fd(), msg, MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL) {
            Ok(_) => return Ok(()),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Receives one whole datagram into `out` without blocking: its length is peeked first
/// (`MSG_PEEK | MSG_TRUNC`), `out` is resized to it, then it is read.
///
/// # Errors
/// `EAGAIN` when none is queued; other `recv` failures.
pub fn recv_dgram(fd: impl AsFd, out: &mut Vec<u8>) -> Result<(), Errno> {
    let fd = fd.as_fd();
    let len = peek_dgram_len(fd)?;
    out.resize(len, 0);
    let n = recv_dgram_into(fd, out)?;
    out.truncate(n);
    Ok(())
}

/// Receives one whole datagram into `out` without blocking, as [`recv_dgram`], with the
/// sender's credentials (`SCM_CREDENTIALS`), which the kernel attaches to every datagram
/// while `SO_PASSCRED` is set on `fd` (see [`set_passcred`]). A server checks them against
/// its client's: anyone can send to an abstract name.
///
/// # Errors
/// `EAGAIN` when none is queued; other `recvmsg` failures. A datagram that carried
/// descriptors (closed at once) or whose control data was truncated has no credentials
/// (`None`): a server discards it.
pub fn recv_dgram_with_creds(fd: impl AsFd, out: &mut Vec<u8>) -> Result<Option<PeerCred>, Errno> {
    let fd = fd.as_fd();
    let len = peek_dgram_len(fd)?;
    out.resize(len, 0);
    loop {
        match recv_once(fd, out, MsgFlags::MSG_DONTWAIT) {
            Ok((n, cred)) => {
                out.truncate(n);
                return Ok(cred);
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Receives one datagram into the start of `out` without blocking, returning its length; a
/// datagram longer than `out` is left queued and its length returned (check it against
/// `out.len()`). `EAGAIN` when none is queued.
pub fn recv_dgram_into(fd: impl AsFd, out: &mut [u8]) -> Result<usize, Errno> {
    let fd = fd.as_fd();
    let len = peek_dgram_len(fd)?;
    if len > out.len() {
        return Ok(len);
    }
    loop {
        match recv(fd.as_raw_fd(), out, MsgFlags::MSG_DONTWAIT) {
            Ok(n) => return Ok(n),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// The length of the next queued datagram, without consuming it (`EAGAIN` when none is).
fn peek_dgram_len(fd: BorrowedFd<'_>) -> Result<usize, Errno> {
    let peek = MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC | MsgFlags::MSG_DONTWAIT;
    loop {
        let mut probe = [0u8; 16];
        match recv(fd.as_raw_fd(), &mut probe, peek) {
            Ok(len) => return Ok(len),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Waits at most `timeout` (`None`: forever) until `data` is readable or `setup` is readable
/// or hung up: `Ok(Some(true))` for `data`, `Ok(Some(false))` for `setup`, `Ok(None)` on
/// timeout.
///
/// # Errors
/// `poll` failures other than `EINTR`.
pub fn poll_either(
    data: impl AsFd,
    setup: impl AsFd,
    timeout: Option<Duration>,
) -> Result<Option<bool>, Errno> {
    let mut fds =
        [PollFd::new(data.as_fd(), PollFlags::POLLIN), PollFd::new(setup.as_fd(), PollFlags::POLLIN)];
    if !poll_until(&mut fds, timeout)? {
        return Ok(None);
    }
    Ok(Some(fds[0].revents().is_some_and(|r| !r.is_empty())))
}

/// Waits at most `timeout` until a datagram can be sent on `fd`; `false` on timeout.
///
/// # Errors
/// `poll` failures other than `EINTR`.
pub fn poll_writable(fd: impl AsFd, timeout: Duration) -> Result<bool, Errno> {
    let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLOUT)];
    match poll(&mut fds, poll_timeout(Some(timeout))) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    #[test]
    fn poll_timeouts_round_up_to_milliseconds() {
        assert_eq!(poll_timeout(None), PollTimeout::NONE);
        assert_eq!(poll_timeout(Some(Duration::ZERO)), PollTimeout::ZERO);
        assert_eq!(poll_timeout(Some(Duration::from_nanos(1))), PollTimeout::from(1u8));
        assert_eq!(poll_timeout(Some(Duration::from_micros(1500))), PollTimeout::from(2u8));
        assert_eq!(poll_timeout(Some(Duration::from_millis(3))), PollTimeout::from(3u8));
        assert_eq!(poll_timeout(Some(Duration::MAX)), PollTimeout::MAX);
    }

    #[test]
    fn a_poll_timeout_is_never_early() {
        let (a, b) = UnixStream::pair().unwrap();
        for timeout in [Duration::from_micros(1), Duration::from_micros(1500)] {
            let start = Instant::now();
            assert_eq!(poll_readable(&a, Some(timeout)), Ok(PollState::Timeout));
            assert!(start.elapsed() >= timeout, "{timeout:?}: returned after {:?}", start.elapsed());
            let start = Instant::now();
            assert_eq!(poll_either(&a, &b, Some(timeout)), Ok(None));
            assert!(start.elapsed() >= timeout, "{timeout:?}: returned after {:?}", start.elapsed());
        }
        drop(b);
        assert_eq!(poll_readable(&a, Some(Duration::from_secs(60))), Ok(PollState::Hup));
    }

    #[test]
    fn a_readiness_fd_shows_input_and_hang_up_of_each() {
        let ((a, a_peer), (b, b_peer)) = (UnixStream::pair().unwrap(), UnixStream::pair().unwrap());
        let ready = readiness_fd(&[a.as_fd(), b.as_fd()]).unwrap();
        assert_eq!(poll_readable(&ready, Some(Duration::ZERO)), Ok(PollState::Timeout));
        send_all(&a_peer, b"x").unwrap();
        assert_eq!(poll_readable(&ready, Some(Duration::from_secs(60))), Ok(PollState::Readable));
        let mut byte = [0u8; 1];
        assert_eq!(recv(a.as_raw_fd(), &mut byte, MsgFlags::empty()), Ok(1));
        assert_eq!(poll_readable(&ready, Some(Duration::ZERO)), Ok(PollState::Timeout));
        drop(b_peer);
        assert_eq!(poll_readable(&ready, Some(Duration::from_secs(60))), Ok(PollState::Readable));
    }
}
