//! One client connection of the server: its setup socket, its shared-memory directory and
//! rings, and what is queued for it (events, doorbell bytes, a reply that did not fit).

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Instant;

use corowire::qb::CONNECTION_REQUEST_LEN;
use nix::errno::Errno;
use nix::sys::socket::{send, shutdown, MsgFlags, Shutdown};
use nix::unistd::{chown, mkdtemp, Gid, Uid};

use crate::ring::{ShmError, ShmRing};
use crate::sys::sock::{errno_of, PeerCred};

/// Largest backlog of undelivered events (bytes) one connection may have before it is
/// dropped. corosync's queue is unbounded; a client that tracks keys and never reads its
/// events would otherwise make the server grow without limit.
const EVENT_BACKLOG_LIMIT: usize = 64 << 20;

/// The three rings, in the order of the setup response.
const RING_KINDS: [&str; 3] = ["request", "response", "event"];

/// Which service a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ServiceKind {
    /// CMAP.
    Cmap,
    /// votequorum.
    Votequorum,
    /// libquorum (`quorum`).
    Quorum,
    /// libcfg (`cfg`).
    Cfg,
}

/// The per-connection directory `<shm_dir>/qb-<spid>-<cpid>-<fd>-XXXXXX`; dropping it unlinks
/// the six ring files and removes the directory.
#[derive(Debug)]
struct ShmDir {
    path: PathBuf,
    service: String,
}

impl ShmDir {
    fn base(&self, kind: &str) -> PathBuf {
        self.path.join(format!("qb-{kind}-{}", self.service))
    }

    /// The two files of a ring.
    fn files(&self, kind: &str) -> [PathBuf; 2] {
        ["-header", "-data"].map(|suffix| {
            let mut file = self.base(kind).into_os_string();
            file.push(suffix);
            PathBuf::from(file)
        })
    }
}

impl Drop for ShmDir {
    fn drop(&mut self) {
        for file in RING_KINDS.iter().flat_map(|kind| self.files(kind)) {
            // Best effort: a file that is missing was never created.
            let _ = std::fs::remove_file(file);
        }
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
    /// Creates the directory and the three rings for a client, as libqb does (spec §2.1 and
    /// appendix B), owned by the client's uid and gid.
    pub(super) fn create(
        shm_dir: &Path,
        service: &str,
        server_fd: i32,
        cred: PeerCred,
        max_msg_size: u32,
        page_size: usize,
    ) -> Result<Self, Errno> {
        let template = shm_dir.join(format!("qb-{}-{}-{server_fd}-XXXXXX", std::process::id(), cred.pid));
        let dir = ShmDir { path: mkdtemp(&template)?, service: service.to_owned() };
        std::fs::set_permissions(&dir.path, std::fs::Permissions::from_mode(0o770)).map_err(errno_of)?;
        let owner = (Some(Uid::from_raw(cred.uid)), Some(Gid::from_raw(cred.gid)));
        give_to(&dir.path, owner);
        let make = |kind: &str| -> Result<ShmRing, Errno> {
            let ring = ShmRing::create(&dir.base(kind), max_msg_size, page_size).map_err(|e| match e {
                ShmError::Io(e) => e,
                ShmError::Header(_) => Errno::ENAMETOOLONG,
                _ => Errno::EINVAL,
            })?;
            for file in dir.files(kind) {
                give_to(&file, owner);
            }
            Ok(ring)
        };
        let (request, response, event) = (make(RING_KINDS[0])?, make(RING_KINDS[1])?, make(RING_KINDS[2])?);
        Ok(Self { request, response, event, dir })
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

/// chown as libqb does: a failure (a server that is not root serving another user) is not
/// fatal; the client then fails to open the files.
fn give_to(path: &Path, (uid, gid): (Option<Uid>, Option<Gid>)) {
    let _ = chown(path, uid, gid);
}

/// Where a connection is in its life.
#[derive(Debug)]
pub(super) enum Phase {
    /// Reading the 24-byte setup request.
    Setup { buf: [u8; CONNECTION_REQUEST_LEN], filled: usize, cred: Option<PeerCred>, since: Instant },
    /// Established.
    Ready(Rings),
}

/// A client connection.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) service: ServiceKind,
    pub(super) sock: UnixStream,
    pub(super) phase: Phase,
    /// The client's credentials (once the setup request was read).
    pub(super) cred: Option<PeerCred>,
    /// The negotiated maximum message size.
    pub(super) max_msg_size: usize,
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
    pub(super) fn new(service: ServiceKind, sock: UnixStream) -> Self {
        Self {
            service,
            sock,
            phase: Phase::Setup {
                buf: [0; CONNECTION_REQUEST_LEN],
                filled: 0,
                cred: None,
                since: Instant::now(),
            },
            cred: None,
            max_msg_size: 0,
            registered: false,
            dead: None,
            events: VecDeque::new(),
            event_bytes: 0,
            doorbells: 0,
            reply: None,
            oversized_events: 0,
        }
    }

    pub(super) fn kill(&mut self, why: impl Into<String>) {
        if self.dead.is_none() {
            self.dead = Some(why.into());
        }
    }

    pub(super) fn rings(&self) -> Option<&Rings> {
        match &self.phase {
            Phase::Ready(r) if self.dead.is_none() => Some(r),
            _ => None,
        }
    }

    /// Whether requests may be read now (established, alive, no reply waiting).
    pub(super) fn can_serve(&self) -> bool {
        self.rings().is_some() && self.reply.is_none()
    }

    /// Whether something waits for ring space, so the loop must retry soon.
    pub(super) fn has_backlog(&self) -> bool {
        self.dead.is_none() && (!self.events.is_empty() || self.reply.is_some())
    }

    /// Whether event doorbell bytes wait for socket space.
    pub(super) fn wants_write(&self) -> bool {
        self.dead.is_none() && self.doorbells > 0
    }

    /// Queues one event and delivers what fits.
    pub(super) fn push_event(&mut self, event: &[u8]) {
        if self.rings().is_none() {
            return;
        }
        if self.event_bytes + event.len() > EVENT_BACKLOG_LIMIT {
            self.kill(format!("more than {EVENT_BACKLOG_LIMIT} bytes of events not read"));
            return;
        }
        self.event_bytes += event.len();
        self.events.push_back(event.to_vec());
        self.flush();
    }

    /// Writes queued events into the event ring (each followed by a doorbell byte), sends
    /// pending doorbell bytes, and writes a waiting reply. Returns whether a waiting reply
    /// was sent (requests may be read again).
    pub(super) fn flush(&mut self) -> bool {
        let (Phase::Ready(rings), None) = (&self.phase, &self.dead) else { return false };
        let mut failure = None;
        while let Some(event) = self.events.front() {
            match rings.event.write_chunk(event) {
                Ok(()) => self.doorbells += 1,
                Err(ShmError::Full { .. }) => break,
                Err(ShmError::TooLarge { .. }) => self.oversized_events += 1,
                Err(e) => {
                    failure = Some(format!("event ring: {e}"));
                    break;
                }
            }
            self.event_bytes -= event.len();
            self.events.pop_front();
        }
        let unblocked = match self.reply.as_deref().map(|r| rings.response.write_chunk(r)) {
            None | Some(Err(ShmError::Full { .. })) => false,
            Some(Ok(())) => true,
            Some(Err(e)) => {
                failure = Some(format!("response ring: {e}"));
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

    /// Writes a reply into the response ring, or keeps it until the ring has room.
    pub(super) fn send_reply(&mut self, reply: &[u8]) {
        let (Phase::Ready(rings), None) = (&self.phase, &self.dead) else { return };
        match rings.response.write_chunk(reply) {
            Ok(()) => {}
            Err(ShmError::Full { .. }) => self.reply = Some(reply.to_vec()),
            Err(e) => self.kill(format!("response ring: {e}")),
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
