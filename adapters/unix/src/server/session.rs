//! One client connection of the server: its setup socket, its directory in shared memory
//! with either the three rings or the socket transport's control file and datagram sockets,
//! and what is queued for it (events, doorbell bytes, a reply that did not fit).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use corowire::qb::CONNECTION_REQUEST_LEN;
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::socket::{recv, send, shutdown, MsgFlags, Shutdown};
use nix::sys::stat::fchmod;
use nix::sys::stat::Mode;
use nix::unistd::{fchown, mkdtemp, unlinkat, Gid, Uid, UnlinkatFlags};

use crate::ring::{ShmError, ShmRing};
use crate::sys::shm::{Owner, SharedMapping};
use crate::sys::sock::{
    bind_dgram, connect_dgram, recv_dgram_with_creds, send_dgram, set_passcred, PeerCred,
};
use crate::transport::socket::{channel_name, count};
use corowire::wire::socket::{CONTROL_LEN, EVENT_SENT, REQUEST_SENT, RESPONSE_SENT};

/// Largest backlog of undelivered events (bytes) one connection may have before it is
/// dropped. corosync's queue is unbounded; a client that tracks keys and never reads its
/// events would otherwise make the server grow without limit.
const EVENT_BACKLOG_LIMIT: usize = 64 << 20;

/// The three rings, in the order of the setup response.
const RING_KINDS: [&str; 3] = ["request", "response", "event"];

/// The per-connection directory `<shm_dir>/qb-<spid>-<cpid>-<fd>-XXXXXX`. It stays the
/// server's (mode 0700) while its files are made, through its descriptor, and is given to
/// the client (mode 0770) only by [`ShmDir::hand_over`], after which the server never
/// follows a path in it again (issue 13). Dropping it unlinks the files made in it (through
/// the descriptor) and removes it.
#[derive(Debug)]
pub(super) struct ShmDir {
    path: PathBuf,
    /// The directory, opened `O_DIRECTORY | O_NOFOLLOW` right after `mkdtemp` made it.
    fd: OwnedFd,
    service: String,
    owner: Owner,
    /// Names of the files made in it.
    files: Vec<PathBuf>,
}

impl ShmDir {
    /// Creates the directory for the client `cred` of `service` on the server's setup socket
    /// `server_fd`, as libqb names it; it is the server's until [`ShmDir::hand_over`].
    pub(super) fn create(
        shm_dir: &Path,
        service: &str,
        server_fd: i32,
        cred: PeerCred,
    ) -> Result<Self, Errno> {
        let template = shm_dir.join(format!("qb-{}-{}-{server_fd}-XXXXXX", std::process::id(), cred.pid));
        let path = mkdtemp(&template)?;
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let fd = open(&path, flags, Mode::empty()).inspect_err(|_| {
            let _ = std::fs::remove_dir(&path);
        })?;
        let owner = (Some(Uid::from_raw(cred.uid)), Some(Gid::from_raw(cred.gid)));
        Ok(Self { path, fd, service: service.to_owned(), owner, files: Vec::new() })
    }

    /// `<dir>/qb-<kind>-<service>`.
    fn base(&self, kind: &str) -> PathBuf {
        self.path.join(format!("qb-{kind}-{}", self.service))
    }

    /// Records the file `name` made in the directory (removed on drop).
    fn adopt(&mut self, name: String) {
        self.files.push(PathBuf::from(name));
    }

    /// Gives the directory to the client (mode 0770, its uid and gid), through its
    /// descriptor, once everything in it is made. A failed chown is not fatal, as in libqb:
    /// a server that is not root serving another user leaves the client unable to open the
    /// files.
    fn hand_over(&self) -> Result<(), Errno> {
        fchmod(&self.fd, Mode::from_bits_truncate(0o770))?;
        let _ = fchown(&self.fd, self.owner.0, self.owner.1);
        Ok(())
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        for file in &self.files {
            // Best effort: the client may have removed it already.
            let _ = unlinkat(&self.fd, file, UnlinkatFlags::NoRemoveDir);
        }
        // Not a symbolic link: rmdir does not follow one in the last component.
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// The shared-memory side of an established connection.
#[derive(Debug)]
pub(super) struct Rings {
    pub(super) request: ShmRing,
    response: ShmRing,
    event: ShmRing,
    /// Declared last: dropped after the rings are unmapped.
    dir: ShmDir,
}

impl Rings {
    /// Creates the three rings for a client in its directory, as libqb does (docs/protocol.md §2.1 and
    /// appendix B), owned by the client's uid and gid.
    pub(super) fn create(mut dir: ShmDir, max_msg_size: u32, page_size: usize) -> Result<Self, Errno> {
        let mut rings = Vec::with_capacity(RING_KINDS.len());
        for kind in RING_KINDS {
            let created =
                ShmRing::create(dir.fd.as_fd(), &dir.base(kind), max_msg_size, page_size, dir.owner);
            // Files of a ring that failed half-way are removed with the directory too.
            for suffix in ["-header", "-data"] {
                dir.adopt(format!("qb-{kind}-{}{suffix}", dir.service));
            }
            rings.push(created.map_err(|e| match e {
                ShmError::Io(e) => e,
                ShmError::Header(_) => Errno::ENAMETOOLONG,
                _ => Errno::EINVAL,
            })?);
        }
        dir.hand_over()?;
        let mut rings = rings.into_iter();
        match (rings.next(), rings.next(), rings.next()) {
            (Some(request), Some(response), Some(event)) => Ok(Self { request, response, event, dir }),
            _ => Err(Errno::EINVAL),
        }
    }

    /// The ring base paths for the setup response.
    pub(super) fn bases(&self) -> [PathBuf; 3] {
        RING_KINDS.map(|kind| self.dir.base(kind))
    }
}

impl Drop for Rings {
    fn drop(&mut self) {
        for ring in [&self.request, &self.response, &self.event] {
            ring.mark_closed();
        }
    }
}

/// The socket side of an established connection (docs/protocol.md §3): the control file and the two
/// datagram sockets, connected to the client's on their first send.
#[derive(Debug)]
pub(super) struct Sockets {
    control: SharedMapping,
    control_path: PathBuf,
    /// `<dir>/qb-<service>`: the datagram sockets' names are derived from it.
    base: PathBuf,
    /// Requests come in and replies go out here (`\0<base>-request`).
    request: OwnedFd,
    /// Events go out here (`\0<base>-event-tx`).
    event: OwnedFd,
    response_connected: bool,
    event_connected: bool,
    /// Declared last: dropped (removing the control file and the directory) after the
    /// control file is unmapped.
    _dir: ShmDir,
}

impl Sockets {
    /// Creates the 24-byte control file in the client's directory and the two bound datagram
    /// sockets.
    pub(super) fn create(mut dir: ShmDir, max_msg_size: u32) -> Result<Self, Errno> {
        let service = dir.service.clone();
        let control_name = format!("qb-control-{service}");
        let control_path = dir.path.join(&control_name);
        let control =
            SharedMapping::create_at(dir.fd.as_fd(), Path::new(&control_name), CONTROL_LEN, dir.owner)?;
        dir.adopt(control_name);
        let base = dir.path.join(format!("qb-{service}"));
        let max = max_msg_size as usize;
        let request = bind_dgram(&channel_name(&base, "request"), max)?;
        // Anyone may send to the abstract name: every request is checked against the client.
        set_passcred(&request, true)?;
        let event = bind_dgram(&channel_name(&base, "event-tx"), max)?;
        dir.hand_over()?;
        Ok(Self {
            control,
            control_path,
            base,
            request,
            event,
            response_connected: false,
            event_connected: false,
            _dir: dir,
        })
    }

    /// The control file's path and the base name, for the setup response.
    pub(super) fn names(&self) -> (&Path, &Path) {
        (&self.control_path, &self.base)
    }

    /// Sends one message on `fd`, connecting it to the client's `\0<base>-<peer>` first if
    /// needed, and counts it at `sent`.
    fn send(&mut self, reply: bool, msg: &[u8]) -> Result<(), Put> {
        let (fd, connected, peer, sent) = if reply {
            (&self.request, &mut self.response_connected, "response", RESPONSE_SENT)
        } else {
            (&self.event, &mut self.event_connected, "event", EVENT_SENT)
        };
        if !*connected {
            connect_dgram(fd, &channel_name(&self.base, peer))
                .map_err(|e| Put::Fault(format!("connecting to the client's {peer} socket: {e}")))?;
            *connected = true;
        }
        match send_dgram(fd, msg) {
            Ok(()) => {
                count(&self.control, sent, 1);
                Ok(())
            }
            Err(Errno::EAGAIN | Errno::ENOBUFS) => Err(Put::Full),
            Err(Errno::EMSGSIZE) => Err(Put::TooLarge),
            Err(e) => Err(Put::Fault(format!("sending on the {peer} socket: {e}"))),
        }
    }
}

/// How an established connection moves messages.
#[derive(Debug)]
pub(super) enum Channels {
    /// Shared-memory rings plus doorbell bytes on the setup socket (boxed: six mappings).
    Shm(Box<Rings>),
    /// Datagram sockets; the setup socket only tells that the client is alive.
    Socket(Sockets),
}

/// Why a message could not be written.
#[derive(Debug)]
enum Put {
    /// No room now; retry later.
    Full,
    /// It can never fit.
    TooLarge,
    /// The connection is broken.
    Fault(String),
}

impl Channels {
    /// Writes an event (a doorbell byte must follow on shared memory).
    fn put_event(&mut self, event: &[u8]) -> Result<(), Put> {
        match self {
            Self::Shm(rings) => rings.event.write_chunk(event).map_err(|e| ring_put("event", e)),
            Self::Socket(sockets) => sockets.send(false, event),
        }
    }

    /// Writes a reply.
    fn put_reply(&mut self, reply: &[u8]) -> Result<(), Put> {
        match self {
            Self::Shm(rings) => rings.response.write_chunk(reply).map_err(|e| ring_put("response", e)),
            Self::Socket(sockets) => sockets.send(true, reply),
        }
    }

    /// The datagram socket requests arrive on (socket transport only).
    pub(super) fn request_socket(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Self::Shm(_) => None,
            Self::Socket(sockets) => Some(sockets.request.as_fd()),
        }
    }
}

fn ring_put(ring: &str, e: ShmError) -> Put {
    match e {
        ShmError::Full { .. } => Put::Full,
        ShmError::TooLarge { .. } => Put::TooLarge,
        e => Put::Fault(format!("{ring} ring: {}", crate::error::report(&e))),
    }
}

/// What [`Session::take_request`] found.
#[derive(Debug)]
pub(super) enum Take {
    /// A request is in the frame buffer.
    Request,
    /// Nothing (more) to read now.
    Empty,
    /// A doorbell byte without a request (libqb consumes it with a warning).
    StrayDoorbell,
    /// A datagram on the request socket from another process than the client (`None`:
    /// without credentials); it was discarded unread.
    Foreign(Option<PeerCred>),
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(super) enum Phase {
    /// Reading the 24-byte setup request from the user `uid` that connected (`SO_PEERCRED`).
    Setup {
        buf: [u8; CONNECTION_REQUEST_LEN],
        filled: usize,
        cred: Option<PeerCred>,
        since: Instant,
        uid: u32,
    },
    /// Established.
    Ready(Channels),
}

/// A client connection.
#[derive(Debug)]
pub(super) struct Session {
    /// The index of its service in the listener's engine list.
    pub(super) service: usize,
    pub(super) sock: UnixStream,
    pub(super) phase: Phase,
    /// The client's credentials (once the setup request was read).
    pub(super) cred: Option<PeerCred>,
    /// The negotiated maximum message size.
    pub(super) max_msg_size: usize,
    /// Bytes of its ring files (0 on the socket transport), counted against [`super::Limits`].
    pub(super) shm_bytes: usize,
    /// Whether the engine knows this connection (`connect` succeeded).
    pub(super) registered: bool,
    /// Why the connection is being closed; it is reaped at the end of the loop iteration.
    pub(super) dead: Option<String>,
    /// Events that did not fit into the event ring yet, oldest first.
    events: VecDeque<Vec<u8>>,
    event_bytes: usize,
    /// Event doorbell bytes the socket could not take yet.
    doorbells: usize,
    /// A reply the response ring could not take yet; no request is read until it is sent.
    reply: Option<Vec<u8>>,
    /// Events too large for this client's event ring (logged, then dropped as corosync does).
    pub(super) oversized_events: usize,
}

impl Session {
    /// A connection of user `uid` (as `connect`ed) to the `service`th listener, in setup.
    pub(super) fn new(service: usize, sock: UnixStream, uid: u32) -> Self {
        Self {
            service,
            sock,
            phase: Phase::Setup {
                buf: [0; CONNECTION_REQUEST_LEN],
                filled: 0,
                cred: None,
                since: Instant::now(),
                uid,
            },
            cred: None,
            max_msg_size: 0,
            shm_bytes: 0,
            registered: false,
            dead: None,
            events: VecDeque::new(),
            event_bytes: 0,
            doorbells: 0,
            reply: None,
            oversized_events: 0,
        }
    }

    /// The uid that connected, while the connection is in setup and not being closed.
    pub(super) fn setup_uid(&self) -> Option<u32> {
        match self.phase {
            Phase::Setup { uid, .. } if self.dead.is_none() => Some(uid),
            _ => None,
        }
    }

    pub(super) fn kill(&mut self, why: impl Into<String>) {
        if self.dead.is_none() {
            self.dead = Some(why.into());
        }
    }

    pub(super) fn channels(&self) -> Option<&Channels> {
        match &self.phase {
            Phase::Ready(c) if self.dead.is_none() => Some(c),
            _ => None,
        }
    }

    /// Whether a file of the connection was truncated under the server's mapping (the
    /// `SIGBUS` was survived; the client must be dropped).
    pub(super) fn truncated(&self) -> bool {
        match &self.phase {
            Phase::Ready(Channels::Shm(r)) => {
                [&r.request, &r.response, &r.event].iter().any(|r| r.truncated())
            }
            Phase::Ready(Channels::Socket(s)) => s.control.truncated(),
            Phase::Setup { .. } => false,
        }
    }

    /// Whether requests may be read now (established, alive, no reply waiting).
    pub(super) fn can_serve(&self) -> bool {
        self.channels().is_some() && self.reply.is_none()
    }

    /// Whether the connection uses the socket transport (after setup).
    pub(super) fn is_socket(&self) -> bool {
        matches!(self.phase, Phase::Ready(Channels::Socket(_)))
    }

    /// Whether something waits for ring space, so the loop must retry soon.
    pub(super) fn has_backlog(&self) -> bool {
        self.dead.is_none() && (!self.events.is_empty() || self.reply.is_some())
    }

    /// Whether event doorbell bytes wait for socket space.
    pub(super) fn wants_write(&self) -> bool {
        self.dead.is_none() && self.doorbells > 0
    }

    /// Reads the next request into `frame`, without blocking: on shared memory one doorbell
    /// byte, then the ring's chunk; on sockets one datagram.
    ///
    /// # Errors
    /// Why the connection must be closed.
    pub(super) fn take_request(&mut self, frame: &mut Vec<u8>) -> Result<Take, String> {
        match &mut self.phase {
            Phase::Ready(Channels::Shm(rings)) => {
                let mut byte = [0u8; 1];
                loop {
                    match recv(self.sock.as_raw_fd(), &mut byte, MsgFlags::MSG_DONTWAIT) {
                        Ok(0) => return Err("end of file".into()),
                        Ok(_) => break,
                        Err(Errno::EAGAIN) => return Ok(Take::Empty),
                        Err(Errno::EINTR) => {}
                        Err(e) => return Err(format!("reading a doorbell byte: {e}")),
                    }
                }
                let sem = rings.request.sem().map_err(|_| "request ring semaphore".to_owned())?;
                if !sem.try_wait() {
                    return Ok(Take::StrayDoorbell);
                }
                rings
                    .request
                    .read_chunk(frame)
                    .map_err(|e| format!("request ring: {}", crate::error::report(&e)))?;
                Ok(Take::Request)
            }
            Phase::Ready(Channels::Socket(sockets)) => match recv_dgram_with_creds(&sockets.request, frame) {
                Ok(sender) if sender.is_none() || sender != self.cred => Ok(Take::Foreign(sender)),
                Ok(_) => {
                    count(&sockets.control, REQUEST_SENT, -1);
                    Ok(Take::Request)
                }
                Err(Errno::EAGAIN) => Ok(Take::Empty),
                Err(e) => Err(format!("reading a request: {e}")),
            },
            Phase::Setup { .. } => Ok(Take::Empty),
        }
    }

    /// On the socket transport the setup socket carries nothing after the handshake: when it
    /// is readable, the client has closed it (or sent stray bytes, which are dropped).
    pub(super) fn check_eof(&mut self) {
        let mut buf = [0u8; 16];
        match recv(self.sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT) {
            Ok(0) => self.kill("end of file"),
            Ok(_) | Err(Errno::EAGAIN | Errno::EINTR) => {}
            Err(e) => self.kill(format!("setup socket: {e}")),
        }
    }

    /// Bytes of events waiting for room in the client's event ring.
    pub(super) fn queued_event_bytes(&self) -> usize {
        self.event_bytes
    }

    /// Queues one event and delivers what fits. `room` is what the server's bound on all
    /// queued events leaves ([`super::Limits::queued_event_bytes`]): a client that already
    /// has events waiting and would queue more than that is dropped (its queue is freed).
    pub(super) fn push_event(&mut self, event: &[u8], room: usize) {
        if self.channels().is_none() {
            return;
        }
        if self.event_bytes + event.len() > EVENT_BACKLOG_LIMIT {
            self.drop_events(format!("more than {EVENT_BACKLOG_LIMIT} bytes of events not read"));
            return;
        }
        if !self.events.is_empty() && event.len() > room {
            self.drop_events("events not read while the server's bound on queued events was reached".into());
            return;
        }
        self.event_bytes += event.len();
        self.events.push_back(event.to_vec());
        self.flush();
    }

    /// Drops the connection of a client that does not read its events, freeing its queue.
    fn drop_events(&mut self, why: String) {
        self.kill(why);
        self.events = VecDeque::new();
        self.event_bytes = 0;
    }

    /// Writes queued events (each followed by a doorbell byte on shared memory), sends
    /// pending doorbell bytes, and writes a waiting reply. Returns whether a waiting reply
    /// was sent (requests may be read again).
    pub(super) fn flush(&mut self) -> bool {
        let (Phase::Ready(channels), None) = (&mut self.phase, &self.dead) else { return false };
        let doorbells = matches!(channels, Channels::Shm(_));
        let mut failure = None;
        while let Some(event) = self.events.front() {
            match channels.put_event(event) {
                Ok(()) => self.doorbells += usize::from(doorbells),
                Err(Put::Full) => break,
                Err(Put::TooLarge) => self.oversized_events += 1,
                Err(Put::Fault(why)) => {
                    failure = Some(why);
                    break;
                }
            }
            self.event_bytes -= event.len();
            self.events.pop_front();
        }
        let unblocked = match self.reply.as_deref().map(|r| channels.put_reply(r)) {
            None | Some(Err(Put::Full)) => false,
            Some(Ok(())) => true,
            Some(Err(Put::TooLarge)) => {
                failure = Some("a reply larger than the client can take".into());
                false
            }
            Some(Err(Put::Fault(why))) => {
                failure = Some(why);
                false
            }
        };
        if unblocked {
            self.reply = None;
        }
        if let Some(why) = failure {
            self.kill(why);
        }
        self.send_doorbells();
        unblocked
    }

    /// Writes a reply, or keeps it until there is room.
    pub(super) fn send_reply(&mut self, reply: &[u8]) {
        let (Phase::Ready(channels), None) = (&mut self.phase, &self.dead) else { return };
        match channels.put_reply(reply) {
            Ok(()) => {}
            Err(Put::Full) => self.reply = Some(reply.to_vec()),
            Err(Put::TooLarge) => self.kill("a reply larger than the client can take"),
            Err(Put::Fault(why)) => self.kill(why),
        }
    }

    /// Sends pending event doorbell bytes (0x00) without blocking.
    pub(super) fn send_doorbells(&mut self) {
        const ZEROS: [u8; 64] = [0; 64];
        while self.doorbells > 0 && self.dead.is_none() {
            let n = self.doorbells.min(ZEROS.len());
            let flags = MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL;
            match send(self.sock.as_raw_fd(), &ZEROS[..n], flags) {
                Ok(sent) => self.doorbells -= sent,
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => break,
                Err(e) => self.kill(format!("sending an event byte: {e}")),
            }
        }
    }

    /// Shuts the setup socket down as libqb does on disconnect (the client sees POLLHUP).
    pub(super) fn shutdown(&self) {
        let _ = shutdown(self.sock.as_fd().as_raw_fd(), Shutdown::Both);
    }
}
