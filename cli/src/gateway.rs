//! `corowire gateway`: relays stream-framed clients (`docs/protocol.md` §12, e.g. a
//! microcontroller running `corowire-embedded`) to the local CMAP and votequorum services.
//!
//! ```text
//! corowire gateway --listen unix:PATH | tcp:ADDR:PORT | serial:DEVICE
//!                  [--socket-mode OCTAL] [--allow-uid UID]... [--allow-remote]
//!                  [--allow-write PREFIX]... [--allow-votequorum-write] [--allow-qdevice]
//!                  [--max-clients N] [--max-tracks N] [--max-in-flight N]
//!                  [--max-frame BYTES] [--stall-timeout SECS] [--verbose]
//! ```
//!
//! Each client gets its own upstream libqb connections (`corowire_unix::connect_driver`) for
//! the services its hello asked for, to corosync or to `corowire serve` (the names follow
//! `COROWIRE_NAME_PREFIX` as every corowire client does). Requests and replies pass byte for
//! byte; every request is decoded first (`corowire::cmap::Request::decode`,
//! `corowire::votequorum::Request::decode`), so the daemon never sees a malformed one.
//!
//! Threads per client: one reads the client (frames, policy, hands requests on), one per
//! accepted service owns its upstream connection (relays each request and its reply, and the
//! events between them); writes to the client go through one lock, a frame at a time. So a
//! client is read and written at the same time, and a slow service does not hold up the other.
//! A service thread sleeps in `poll` on two fds: its upstream connection's (readable on an
//! event or a hang-up: the shared-memory transport's setup socket, which carries a doorbell
//! byte per event, or the socket transport's epoll fd over its event and setup sockets) and a
//! doorbell the client thread rings after queueing a request. An idle gateway does not wake.
//!
//! Policy (safe by default):
//! - the Unix socket is created owner-only (mode 0600, whatever the umask) unless
//!   `--socket-mode`; its clients' credentials (`SO_PEERCRED`) are checked at accept: root
//!   (user or group 0), the gateway's own user and the `--allow-uid` users are served, others
//!   are logged and closed without a word. This is corosync's own rule (`exec/ipc_glue.c`:
//!   root, or a `uidgid` entry) with the gateway's user standing in for the `uidgid` entries
//!   the daemon applies to the gateway itself;
//! - TCP has no such check: every local user can connect to a TCP listener, loopback or not
//!   (the gateway says so on standard error when it starts);
//! - TCP listens on loopback addresses only, unless `--allow-remote`;
//! - clients are read-only: CMAP get, iterate, track, set-current-map and votequorum
//!   getinfo, track start/stop pass; a CMAP set, delete or adjust passes only for a key
//!   an `--allow-write` prefix covers (one ending in `.` covers the keys under it, any other
//!   the key itself and the keys under `PREFIX.`; an empty prefix is refused); votequorum set-expected and set-votes need
//!   `--allow-votequorum-write`; the qdevice calls need `--allow-qdevice`. A refused request
//!   is answered by the gateway with `CS_ERR_ACCESS` and never reaches the daemon; the log
//!   line names the request, the key and the rule (the client cannot tell the gateway's
//!   refusal from corosync's);
//! - a request whose reply cannot fit the session's frames (a CMAP GET asking for more value
//!   bytes than fit, or any reply of a fixed shape larger than a small negotiated frame) is
//!   answered `CS_ERR_TOO_BIG` by the gateway in the shape corosync gives that reply, and
//!   never reaches the daemon;
//! - a daemon that does not answer a request within `--stall-timeout` (stopped, say) ends
//!   the session with a reset frame (its replies would come out of step); a client that leaves frees its threads and upstream
//!   connections at once;
//! - deadlines: a socket client must send its hello, and every client each whole frame,
//!   within `--stall-timeout`, or is closed (an idle or trickling client holds no slot); the
//!   upstream connect at a hello waits as long at most (a stopped daemon: the accept says
//!   `CS_ERR_TRY_AGAIN`); a failed `accept` (out of file descriptors) is logged and tried
//!   again after a pause that doubles up to a second, and never ends the gateway;
//! - per client: at most `--max-tracks` CMAP tracks (more are answered
//!   `CS_ERR_NO_RESOURCES`; a track counts from its TRACK_ADD until the daemon refuses it or
//!   confirms its TRACK_DELETE), and no votequorum tracking at all with `--max-tracks 0`
//!   (a connection tracks once: a new TRACK_START changes the flags),
//!   `--max-in-flight` requests queued per service and `--max-frame` bytes of payload (the
//!   most the gateway offers in the accept); a client that sends a frame that does not decode,
//!   a request that does not decode, too many requests, or stalls (stops reading for
//!   `--stall-timeout`, or stops in the middle of a frame for as long) is logged and closed.
//!
//! A serial line (`serial:DEVICE`) carries one client at a time, and the gateway serves it
//! until killed: a hello at any time (the device rebooted) starts a new session, a refused
//! hello (the daemon is down) leaves the line open for the next, and a fault (a frame or
//! request that does not decode, a stall in either direction) closes the session, flushes
//! the line both ways and serves it again; a line whose other end hung up (a closed pty) is
//! reopened every second until it is back. The line is non-blocking and waited on with
//! `poll`, so `--stall-timeout` applies to it as to sockets.
//!
//! A daemon restart: the service thread that sees its upstream connection close sends the
//! client a reset frame naming the client's services and drops all its upstream connections;
//! the gateway re-creates nothing (no connection, no track). The client starts over with a new
//! hello, on the same stream or a new one; while the daemon is down, hellos are answered with
//! `CS_ERR_TRY_AGAIN`. Requests that arrive between the reset and the new hello are dropped.

use core::net::SocketAddr;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use core::time::Duration;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread;

use corowire::cmap::{
    GetReply, Key, Reply as CmapReply, Request as CmapRequest, RequestKind as CmapKind,
    Response as CmapResponse,
};
use corowire::conn::{Cmap as CmapService, Service, Votequorum as VotequorumService};
use corowire::stream::{
    Channel, Frame, FrameReader, FromClient, GatewaySession, Kind, Services, MIN_MAX_PAYLOAD, OVERHEAD,
};
use corowire::transport::{ErrorKind as TransportErrorKind, Transport};
use corowire::votequorum::{
    NodeInfo, Reply as VqReply, Request as VqRequest, RequestKind as VqKind, Response as VqResponse,
};
use corowire::{CsError, Wait};
use corowire_unix::transport::{ClientTransport, TransportError};
use corowire_unix::{ClientDriver, Options};

const USAGE: &str = "\
usage: corowire gateway --listen unix:PATH | tcp:ADDR:PORT | serial:DEVICE
                        [--socket-mode OCTAL] [--allow-uid UID]... [--allow-remote]
                        [--allow-write PREFIX]... [--allow-votequorum-write] [--allow-qdevice]
                        [--max-clients N] [--max-tracks N] [--max-in-flight N]
                        [--max-frame BYTES] [--stall-timeout SECS] [--verbose]

Relays stream-framed clients (docs/protocol.md section 12, e.g. corowire-embedded on a
microcontroller) to the local cmap and votequorum services (corosync, or `corowire serve`
under $COROWIRE_NAME_PREFIX). Runs until killed.

  --listen unix:PATH       listen on a Unix stream socket at PATH (QEMU: -chardev
                           socket,path=PATH,server=off); a socket file there that nobody
                           listens on (a killed gateway's) is replaced, anything else refused;
                           only root, the gateway's own user and --allow-uid users are served
  --listen tcp:ADDR:PORT   listen on TCP (QEMU: -chardev socket,host=ADDR,port=PORT,server=off);
                           ADDR (a host name: its first address) must be a loopback
                           address unless --allow-remote; a TCP
                           listener, even on loopback, is open to every local user
  --listen serial:DEVICE   one client on a serial device or pty, set to raw mode; a hello at
                           any time starts a new session; a fault (garbage, a stall, a
                           refused hello) closes the session, not the gateway: the line is
                           flushed and served again (reopened every second once hung up)
  --socket-mode OCTAL      the Unix socket's permission bits (default 0600: owner only)
  --allow-uid UID          also serve this user on the Unix socket (repeatable)
  --allow-remote           accept a non-loopback TCP address
  --allow-write PREFIX     let clients set, delete and adjust CMAP keys under PREFIX: a
                           PREFIX ending in '.' covers the keys under it, any other the key
                           PREFIX and the keys under PREFIX. (app.b: app.b, app.b.x, not
                           app.bc); repeatable, never empty (default: CMAP is read-only)
  --allow-votequorum-write let clients set expected votes and node votes
  --allow-qdevice          let clients register and drive a quorum device
  --max-clients N          clients served at once, more wait (default 16)
  --max-tracks N           CMAP tracks per client, counted until the daemon confirms their
                           delete; 0 also refuses votequorum tracking (default 16)
  --max-in-flight N        requests queued per client and service (default 32)
  --max-frame BYTES        largest frame payload offered, 64..65535 (default 16448)
  --stall-timeout SECS     close a client (or serial session) that stops reading, or stops
                           mid-frame, this long, or takes longer for its hello (sockets) or
                           a whole frame; also the longest the daemon may take to answer a
                           connect or a request (default 10)
  --verbose                log sessions to standard error (refusals and closes always are)

A refused request is answered with CS_ERR_ACCESS by the gateway, one whose reply could not
fit the session's frames (a CMAP get asking for too many value bytes) with CS_ERR_TOO_BIG; it
never reaches the daemon. A daemon that does not answer within --stall-timeout ends the session.
After a daemon restart each client gets a reset frame and starts over with a new hello.
";

/// Tracks one upstream CMAP connection can hold.
const TRACKS: usize = 64;
/// The frame reader's capacity: the largest frame.
const READER: usize = u16::MAX as usize + OVERHEAD;

/// Where the gateway listens.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Listen {
    Unix(PathBuf),
    Tcp(SocketAddr),
    Serial(PathBuf),
}

/// What clients may do and how much.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Policy {
    write_prefixes: Vec<Vec<u8>>,
    votequorum_write: bool,
    qdevice: bool,
    max_tracks: usize,
    max_in_flight: usize,
    max_frame: u16,
    stall: Duration,
    verbose: bool,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Args {
    listen: Listen,
    allow_remote: bool,
    max_clients: usize,
    /// The Unix socket's permission bits (`--socket-mode`, default owner-only).
    socket_mode: u32,
    /// Users let in on the Unix socket besides root and the gateway's own (`--allow-uid`).
    allow_uids: Vec<u32>,
    policy: Policy,
}

/// Runs `corowire gateway`; the exit status.
pub(crate) fn run(args: &[OsString]) -> u8 {
    let args = match parse(args) {
        Ok(Some(a)) => a,
        Ok(None) => {
            crate::out::print(USAGE);
            return 0;
        }
        Err(e) => {
            eprintln!("corowire gateway: {e} (see corowire gateway --help)");
            return 1;
        }
    };
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("corowire gateway: {e}");
            1
        }
    }
}

fn parse(args: &[OsString]) -> Result<Option<Args>, String> {
    let mut listen = None;
    let mut allow_remote = false;
    let mut max_clients = 16;
    let mut socket_mode = 0o600;
    let mut allow_uids = Vec::new();
    let mut policy = Policy {
        write_prefixes: Vec::new(),
        votequorum_write: false,
        qdevice: false,
        max_tracks: 16,
        max_in_flight: 32,
        max_frame: 16448,
        stall: Duration::from_secs(10),
        verbose: false,
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let arg = arg.to_str().ok_or_else(|| format!("argument {arg:?} is not UTF-8"))?;
        let mut value = || {
            it.next()
                .and_then(|v| v.to_str())
                .map(str::to_owned)
                .ok_or_else(|| format!("{arg} needs a UTF-8 value"))
        };
        let number = |v: String, min: usize, max: usize| match v.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(format!("{arg} takes a number from {min} to {max}, not {v:?}")),
        };
        match arg {
            "--listen" => listen = Some(parse_listen(&value()?)?),
            "--allow-remote" => allow_remote = true,
            "--allow-write" => {
                let prefix = value()?;
                if prefix.is_empty() {
                    return Err("--allow-write \"\" would make every key writable: name a prefix".into());
                }
                policy.write_prefixes.push(prefix.into_bytes());
            }
            "--allow-votequorum-write" => policy.votequorum_write = true,
            "--allow-qdevice" => policy.qdevice = true,
            "--socket-mode" => {
                let v = value()?;
                socket_mode = match u32::from_str_radix(&v, 8) {
                    Ok(m) if m <= 0o777 => m,
                    _ => return Err(format!("--socket-mode takes octal permission bits (0600), not {v:?}")),
                };
            }
            "--allow-uid" => {
                let v = value()?;
                allow_uids
                    .push(v.parse().map_err(|_| format!("--allow-uid takes a numeric uid, not {v:?}"))?);
            }
            "--max-clients" => max_clients = number(value()?, 1, 4096)?,
            "--max-tracks" => policy.max_tracks = number(value()?, 0, TRACKS)?,
            "--max-in-flight" => policy.max_in_flight = number(value()?, 1, 4096)?,
            "--max-frame" => {
                let n = number(value()?, MIN_MAX_PAYLOAD.into(), u16::MAX.into())?;
                policy.max_frame = u16::try_from(n).map_err(|e| e.to_string())?;
            }
            "--stall-timeout" => policy.stall = Duration::from_secs(number(value()?, 1, 86400)? as u64),
            "--verbose" => policy.verbose = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    let listen = listen.ok_or("--listen is missing")?;
    if let Listen::Tcp(addr) = listen {
        if !is_loopback(addr.ip()) && !allow_remote {
            return Err(format!(
                "{addr} is not a loopback address: anyone who reaches it could read corosync's \
                 state; add --allow-remote to listen there anyway"
            ));
        }
    }
    Ok(Some(Args { listen, allow_remote, max_clients, socket_mode, allow_uids, policy }))
}

/// Whether `ip` is a loopback address, an IPv4-mapped one (`::ffff:127.0.0.1`) included.
fn is_loopback(ip: core::net::IpAddr) -> bool {
    match ip {
        core::net::IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        core::net::IpAddr::V4(v4) => v4.is_loopback(),
    }
}

/// Whether `prefix` (an `--allow-write` value) covers `key`: a prefix ending in `.` covers
/// the keys under it; any other covers the key itself and the keys under `prefix.` (so
/// `app.b` covers `app.b` and `app.b.x`, not `app.bc`).
fn covers(prefix: &[u8], key: &[u8]) -> bool {
    match key.strip_prefix(prefix) {
        Some(rest) => prefix.ends_with(b".") || rest.is_empty() || rest.starts_with(b"."),
        None => false,
    }
}

fn parse_listen(spec: &str) -> Result<Listen, String> {
    match spec.split_once(':') {
        Some(("unix", path)) if !path.is_empty() => Ok(Listen::Unix(path.into())),
        Some(("serial", path)) if !path.is_empty() => Ok(Listen::Serial(path.into())),
        Some(("tcp", addr)) => {
            // A host name (localhost) is resolved; its first address is the one listened on.
            let mut all = std::net::ToSocketAddrs::to_socket_addrs(addr)
                .map_err(|e| format!("--listen tcp:{addr}: {e} (want ADDR:PORT or HOST:PORT)"))?;
            all.next().map(Listen::Tcp).ok_or_else(|| format!("--listen tcp:{addr}: no address"))
        }
        _ => Err(format!("--listen {spec:?}: want unix:PATH, tcp:ADDR:PORT or serial:DEVICE")),
    }
}

/// Logs one line to standard error.
fn log(line: &str) {
    eprintln!("corowire gateway: {line}");
}

fn serve(args: Args) -> Result<(), String> {
    let policy = Arc::new(args.policy);
    let slots = Arc::new(AtomicUsize::new(args.max_clients));
    let mut next_id = 0u64;
    let mut spawn = |reader: Box<dyn Read + Send>, writer: Box<dyn Write + Send>, peer: String| {
        next_id += 1;
        let (policy, slots, id) = (Arc::clone(&policy), Arc::clone(&slots), next_id);
        while slots.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_err() {
            thread::sleep(Duration::from_millis(50));
        }
        thread::spawn(move || {
            let name = format!("client {id} ({peer})");
            let why = Client::new(&name, writer, policy.clone()).run(reader);
            log(&format!("{name} closed: {why}"));
            slots.fetch_add(1, Ordering::AcqRel);
        });
    };
    match args.listen {
        Listen::Unix(path) => {
            let listener = bind_unix(&path).map_err(|e| format!("listen on {}: {e}", path.display()))?;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(args.socket_mode))
                .map_err(|e| format!("chmod {:o} {}: {e}", args.socket_mode, path.display()))?;
            log(&format!("listening on unix:{} (mode {:04o})", path.display(), args.socket_mode));
            // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
            let own = unsafe { libc::geteuid() };
            let mut pause = ACCEPT_PAUSE;
            for conn in listener.incoming() {
                let Some(conn) = accepted(conn, &mut pause) else { continue };
                match corowire_unix::sys::sock::peer_cred(&conn) {
                    Ok(c) if c.uid == 0 || c.gid == 0 || c.uid == own || args.allow_uids.contains(&c.uid) => {
                    }
                    Ok(c) => {
                        log(&format!(
                            "unix client of uid {} (pid {}) refused: only root, uid {own} and --allow-uid may connect",
                            c.uid, c.pid
                        ));
                        continue;
                    }
                    Err(e) => {
                        log(&format!("unix client dropped: its credentials: {e}"));
                        continue;
                    }
                }
                let set =
                    conn.set_write_timeout(Some(policy.stall)).and(conn.set_read_timeout(Some(policy.stall)));
                match (set, conn.try_clone()) {
                    (Ok(()), Ok(r)) => spawn(Box::new(r), Box::new(conn), "unix".into()),
                    (Err(e), _) | (_, Err(e)) => log(&format!("unix client dropped: {e}")),
                }
            }
        }
        Listen::Tcp(addr) => {
            let listener = TcpListener::bind(addr).map_err(|e| format!("listen on {addr}: {e}"))?;
            log(&format!("listening on tcp:{}", listener.local_addr().map_err(|e| e.to_string())?));
            log(&format!(
                "warning: a TCP listener has no peer check: every local user{} can read \
                 corosync's state through it (and write what --allow-* allows); use a Unix socket \
                 to restrict it",
                if args.allow_remote { ", and every host that reaches it," } else { "" }
            ));
            let mut pause = ACCEPT_PAUSE;
            for conn in listener.incoming() {
                let Some(conn): Option<TcpStream> = accepted(conn, &mut pause) else { continue };
                let peer = conn.peer_addr().map_or_else(|_| "tcp".into(), |a| a.to_string());
                let set = conn
                    .set_nodelay(true)
                    .and(conn.set_write_timeout(Some(policy.stall)))
                    .and(conn.set_read_timeout(Some(policy.stall)));
                match (set, conn.try_clone()) {
                    (Ok(()), Ok(r)) => spawn(Box::new(r), Box::new(conn), peer),
                    (Err(e), _) | (_, Err(e)) => log(&format!("{peer} dropped: {e}")),
                }
            }
        }
        Listen::Serial(path) => {
            let name = format!("serial:{}", path.display());
            let mut line = open_line(&path)?;
            log(&format!("serving {name}"));
            loop {
                let (reader, writer) = (line.try_clone().map_err(|e| e.to_string())?, line.try_clone());
                let writer = writer.map_err(|e| e.to_string())?;
                let timeout = policy.stall;
                let why = Client::new(&name, Box::new(Line { file: writer, timeout }), Arc::clone(&policy))
                    .restart_on_hello()
                    .run(Box::new(Line { file: reader, timeout }));
                // What the client sent after the fault, and what it never read, are dropped:
                // the next session starts on a clean line.
                let flushed = nix::sys::termios::tcflush(&line, nix::sys::termios::FlushArg::TCIOFLUSH);
                log(&format!("{name} closed: {why}; serving the line again"));
                if flushed.is_err() || hung_up(&line) {
                    line = reopen_line(&path);
                    log(&format!("serving {name} again"));
                }
            }
        }
    }
    Ok(())
}

/// The first pause after a failed `accept`; it doubles while `accept` keeps failing, up to
/// [`ACCEPT_PAUSE_MAX`].
const ACCEPT_PAUSE: Duration = Duration::from_millis(10);
const ACCEPT_PAUSE_MAX: Duration = Duration::from_secs(1);

/// The connection `accept` gave, or `None` after logging its failure (out of file
/// descriptors, say) and pausing: a failed accept never ends the gateway.
fn accepted<T>(conn: std::io::Result<T>, pause: &mut Duration) -> Option<T> {
    match conn {
        Ok(conn) => {
            *pause = ACCEPT_PAUSE;
            Some(conn)
        }
        Err(e) => {
            log(&format!("accept: {e}; trying again in {pause:?}"));
            thread::sleep(*pause);
            *pause = (*pause * 2).min(ACCEPT_PAUSE_MAX);
            None
        }
    }
}

/// Binds a Unix stream socket at `path`. A socket file left there by a gateway that was
/// killed (nobody listens: `connect` gets `ECONNREFUSED`) is removed first; a live listener,
/// and anything that is not a socket (a regular file, a directory, a symbolic link, which is
/// never followed), are left alone and refused. The look and the removal are not atomic: a
/// user who can swap the entry in between can remove it anyway, and `unlink` never follows a
/// link.
fn bind_unix(path: &Path) -> Result<UnixListener, String> {
    let in_use = match UnixListener::bind(path) {
        Ok(listener) => return Ok(listener),
        Err(e) if e.kind() == ErrorKind::AddrInUse => e,
        Err(e) => return Err(e.to_string()),
    };
    let kind = std::fs::symlink_metadata(path).map_err(|e| e.to_string())?.file_type();
    if !kind.is_socket() {
        return Err(format!("{in_use}, and it is not a socket (left alone)"));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(format!("{in_use}: a listener is there")),
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            log(&format!("removing the stale socket {} (nobody listens there)", path.display()));
            std::fs::remove_file(path).map_err(|e| format!("remove the stale socket: {e}"))?;
            UnixListener::bind(path).map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("{in_use}, and connecting to it fails: {e}")),
    }
}

/// Opens a serial device or pty, non-blocking (the [`Line`] waits), without making it the
/// controlling terminal, in raw mode.
fn open_line(path: &Path) -> Result<std::fs::File, String> {
    use std::os::unix::fs::OpenOptionsExt;
    let line = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    raw_mode(&line).map_err(|e| format!("{}: raw mode: {e}", path.display()))?;
    Ok(line)
}

/// Whether the line's other end hung up (a pty whose other side closed).
fn hung_up(line: &std::fs::File) -> bool {
    corowire_unix::sys::sock::poll_readable(line, Some(Duration::ZERO))
        .map_or(true, |p| p == corowire_unix::sys::sock::PollState::Hup)
}

/// Opens the line again after its other end hung up (a pty whose other side closed, a
/// device gone): every second until it opens and is not hung up, logging the first failure.
fn reopen_line(path: &Path) -> std::fs::File {
    let mut logged = false;
    loop {
        thread::sleep(Duration::from_secs(1));
        let line = open_line(path).and_then(|l| {
            if hung_up(&l) {
                Err(format!("{}: its other end is closed", path.display()))
            } else {
                Ok(l)
            }
        });
        match line {
            Ok(line) => return line,
            Err(e) if !logged => {
                log(&format!("{e}; trying again every second"));
                logged = true;
            }
            Err(_) => {}
        }
    }
}

/// A non-blocking serial line read and written with a timeout: a read that waits longer
/// fails with `TimedOut` (as a socket's read timeout), so does a write the other end does
/// not take.
struct Line {
    file: std::fs::File,
    timeout: Duration,
}

impl Line {
    /// Runs `op` until it does not say `WouldBlock`, waiting for `ready` in between.
    fn wait<T>(
        &mut self,
        mut op: impl FnMut(&mut std::fs::File) -> std::io::Result<T>,
        ready: fn(&std::fs::File, Duration) -> Result<bool, corowire_unix::Errno>,
    ) -> std::io::Result<T> {
        loop {
            match op(&mut self.file) {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if !ready(&self.file, self.timeout)? {
                        return Err(ErrorKind::TimedOut.into());
                    }
                }
                done => return done,
            }
        }
    }
}

impl Read for Line {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.wait(
            |f| f.read(buf),
            |f, t| {
                let p = corowire_unix::sys::sock::poll_readable(f, Some(t))?;
                Ok(p != corowire_unix::sys::sock::PollState::Timeout)
            },
        )
    }
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.wait(|f| f.write(buf), |f, t| corowire_unix::sys::sock::poll_writable(f, t))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Puts a terminal (a serial device, a pty) into raw mode: no echo, no line editing, no
/// translation, 8 data bits (`cfmakeraw`).
fn raw_mode(line: &std::fs::File) -> Result<(), String> {
    use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
    let mut t = tcgetattr(line).map_err(|e| e.to_string())?;
    cfmakeraw(&mut t);
    tcsetattr(line, SetArg::TCSANOW, &t).map_err(|e| e.to_string())
}

/// The writing half of a client, shared by its threads: whole frames under the lock.
struct Out {
    writer: Mutex<Box<dyn Write + Send>>,
    /// Set once a write failed (the client stalled or left), or the client's thread ended:
    /// nothing more is written, and a service thread waiting for a reply gives up.
    dead: AtomicBool,
}

impl Out {
    /// Writes `frame`; `false` if the client is gone or stalled.
    fn send(&self, frame: Frame<'_>) -> bool {
        let mut buf = vec![0u8; frame.encoded_len()];
        let Ok(n) = frame.encode(&mut buf) else { return false };
        let Ok(mut w) = self.writer.lock() else { return false };
        if self.dead.load(Ordering::Acquire) {
            return false;
        }
        let ok = w.write_all(&buf[..n]).and_then(|()| w.flush()).is_ok();
        if !ok {
            self.dead.store(true, Ordering::Release);
        }
        ok
    }
}

/// The client thread's end of a service thread's request queue.
struct Requests {
    queue: SyncSender<Vec<u8>>,
    /// Non-blocking; a byte written after each request wakes the service thread's `poll`.
    /// Dropped with the queue, which the service thread sees as end of file.
    bell: UnixStream,
}

impl Requests {
    /// Queues `request` and rings the bell.
    fn send(&self, request: Vec<u8>) -> Result<(), TrySendError<Vec<u8>>> {
        self.queue.try_send(request)?;
        // A full bell already has bytes the service thread has yet to read: it wakes anyway.
        let _ = (&self.bell).write(&[1]);
        Ok(())
    }
}

/// The upstream side of one session: one service thread per accepted channel.
struct Upstream {
    cmap: Option<Requests>,
    votequorum: Option<Requests>,
    /// Set by a service thread that lost its daemon: the session is over.
    lost: Arc<AtomicBool>,
}

impl Upstream {
    fn sender(&self, channel: Channel) -> Option<&Requests> {
        match channel {
            Channel::Cmap => self.cmap.as_ref(),
            Channel::Votequorum => self.votequorum.as_ref(),
        }
    }
}

/// One stream client.
struct Client {
    name: String,
    out: Arc<Out>,
    policy: Arc<Policy>,
    session: GatewaySession,
    upstream: Option<Upstream>,
    /// The session's CMAP tracks: counted when a TRACK_ADD is relayed, uncounted by the
    /// service thread when the daemon refuses it or confirms a TRACK_DELETE.
    tracks: Arc<AtomicUsize>,
    /// The client ended its sending half (end of stream); it may still read.
    half_closed: bool,
    /// The client sent a hello.
    greeted: bool,
    /// A hello at any time starts a new session, and a refused hello does not end the
    /// stream (a serial line: the device at its other end reboots, or asks again).
    rehello: bool,
}

impl Client {
    fn new(name: &str, writer: Box<dyn Write + Send>, policy: Arc<Policy>) -> Self {
        Self {
            name: name.to_owned(),
            out: Arc::new(Out { writer: Mutex::new(writer), dead: AtomicBool::new(false) }),
            session: GatewaySession::new(Services::ALL, policy.max_frame),
            policy,
            upstream: None,
            tracks: Arc::new(AtomicUsize::new(0)),
            half_closed: false,
            greeted: false,
            rehello: false,
        }
    }

    /// Lets a hello at any time start a new session (see `rehello`).
    fn restart_on_hello(mut self) -> Self {
        self.rehello = true;
        self
    }

    /// Serves the client until it leaves or is closed; why it ended. Its service threads
    /// see it gone at once (their queues end; one waiting for a reply sees `Out::dead`) and
    /// close their upstream connections. A client that only ended its sending half (end of
    /// stream) still gets the replies to the requests it sent, within the reply timeout.
    fn run(mut self, reader: Box<dyn Read + Send>) -> String {
        let why = self.serve(reader);
        if !self.half_closed {
            self.out.dead.store(true, Ordering::Release);
        }
        why
    }

    fn serve(&mut self, mut reader: Box<dyn Read + Send>) -> String {
        let mut frames: Box<FrameReader<READER>> = Box::new(FrameReader::new());
        let start = std::time::Instant::now();
        // When the frame in the reader (incomplete) began.
        let mut partial_since = None;
        loop {
            if self.out.dead.load(Ordering::Acquire) {
                return "it stopped reading (or left) while the gateway wrote to it".into();
            }
            // Deadlines: the hello (a socket's client must greet within --stall-timeout; a
            // serial line may stay quiet), and each whole frame (a client trickling bytes).
            let stall = self.policy.stall;
            if !self.rehello && !self.greeted && start.elapsed() >= stall {
                return format!("no hello within {stall:?}");
            }
            if partial_since.is_some_and(|t: std::time::Instant| t.elapsed() >= stall) {
                return format!("a frame took longer than {stall:?} to arrive");
            }
            frames.set_max_payload(self.session.max_payload());
            let got = reader.read(frames.space());
            match got {
                Ok(0) => {
                    self.half_closed = true;
                    return "end of stream".into();
                }
                Ok(n) => frames.filled(n),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if frames.buffered() > 0 {
                        return format!("stalled in the middle of a frame for {:?}", self.policy.stall);
                    }
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return format!("read error: {e}"),
            }
            loop {
                let frame = match frames.next_frame() {
                    Ok(Some(f)) => f,
                    Ok(None) => break,
                    Err(e) => return format!("malformed frame: {e}"),
                };
                if let Err(why) = self.handle(frame) {
                    return why;
                }
                frames.set_max_payload(self.session.max_payload());
            }
            partial_since =
                (frames.buffered() > 0).then(|| partial_since.unwrap_or_else(std::time::Instant::now));
        }
    }

    /// One frame from the client.
    fn handle(&mut self, frame: Frame<'_>) -> Result<(), String> {
        let lost = self.upstream.as_ref().is_some_and(|u| u.lost.load(Ordering::Acquire));
        let hello = matches!(frame, Frame::Hello(_));
        self.greeted |= hello;
        if lost && !hello {
            // After a reset: a new hello starts over, anything else is dropped.
            return Ok(());
        }
        if lost || (hello && self.rehello) {
            self.upstream = None;
            self.tracks = Arc::new(AtomicUsize::new(0));
            self.session = GatewaySession::new(Services::ALL, self.policy.max_frame);
        }
        match self.session.handle_frame(frame).map_err(|e| e.to_string())? {
            FromClient::Accept(mut accept) => {
                if accept.result.is_ok() {
                    match self.connect(accept.services) {
                        Ok(up) => self.upstream = Some(up),
                        Err(e) => {
                            log(&format!("{}: upstream connect failed: {e}", self.name));
                            accept.result = Err(CsError::TryAgain);
                            // Nothing is connected upstream: none of them is served.
                            accept.services = Services::NONE;
                        }
                    }
                }
                if self.policy.verbose || accept.result.is_err() {
                    log(&format!("{}: hello, accept {accept:?}", self.name));
                }
                self.out.send(Frame::Accept(accept));
                match accept.result {
                    Err(e) if !self.rehello => Err(format!("refused at hello: {e}")),
                    _ => Ok(()),
                }
            }
            FromClient::Request { channel, payload } => self.request(channel, payload),
        }
    }

    /// Opens the upstream connections and their service threads.
    fn connect(&self, services: Services) -> Result<Upstream, corowire_unix::Error> {
        let lost = Arc::new(AtomicBool::new(false));
        // A daemon that does not answer the connect (stopped) does not hold the session.
        let options = Options { timeout: Some(self.policy.stall), ..Options::default() };
        let mut up = Upstream { cmap: None, votequorum: None, lost: Arc::clone(&lost) };
        if services.contains(Channel::Cmap) {
            let (client, _) = corowire_unix::connect_driver::<CmapService<TRACKS>, 1, 1, 64>(&options)?;
            up.cmap = Some(self.spawn_service(Channel::Cmap, services, client, &lost)?);
        }
        if services.contains(Channel::Votequorum) {
            let (client, _) = corowire_unix::connect_driver::<VotequorumService, 1, 1, 64>(&options)?;
            up.votequorum = Some(self.spawn_service(Channel::Votequorum, services, client, &lost)?);
        }
        Ok(up)
    }

    fn spawn_service<S: Service + Send + 'static>(
        &self,
        channel: Channel,
        services: Services,
        client: ClientDriver<S, 1, 1, 64>,
        lost: &Arc<AtomicBool>,
    ) -> Result<Requests, corowire_unix::Error>
    where
        ClientDriver<S, 1, 1, 64>: Send,
    {
        let (queue, rx) = std::sync::mpsc::sync_channel(self.policy.max_in_flight);
        let io = |e: std::io::Error| {
            corowire_unix::Error::Io(
                e.raw_os_error().map_or(corowire_unix::Errno::EIO, corowire_unix::Errno::from_raw),
            )
        };
        let (bell, wake) = UnixStream::pair().map_err(io)?;
        bell.set_nonblocking(true).and(wake.set_nonblocking(true)).map_err(io)?;
        let relay = Relay {
            name: format!("{} {channel:?}", self.name),
            channel,
            services,
            out: Arc::clone(&self.out),
            lost: Arc::clone(lost),
            max_payload: self.session.max_payload(),
            reply_timeout: self.policy.stall,
            tracks: (channel == Channel::Cmap).then(|| Arc::clone(&self.tracks)),
        };
        thread::spawn(move || {
            let mut client = client;
            relay.run(client.transport_mut(), &rx, &wake);
        });
        Ok(Requests { queue, bell })
    }

    /// A request of an accepted channel: policy, limits, then upstream.
    fn request(&mut self, channel: Channel, payload: &[u8]) -> Result<(), String> {
        let verdict = match channel {
            Channel::Cmap => self.cmap_verdict(payload)?,
            Channel::Votequorum => self.votequorum_verdict(payload)?,
        };
        if let Some(reply) = verdict {
            self.out.send(Frame::Message { channel, kind: Kind::Reply, payload: &reply });
            return Ok(());
        }
        let Some(tx) = self.upstream.as_ref().and_then(|u| u.sender(channel)) else {
            return Err(format!("{channel:?} request without an upstream connection"));
        };
        match tx.send(payload.to_vec()) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                Err(format!("more than {} {channel:?} requests in flight", self.policy.max_in_flight))
            }
            // The service thread ended: its daemon is gone and a reset is (being) sent.
            Err(TrySendError::Disconnected(_)) => Ok(()),
        }
    }

    /// `None` to relay a CMAP request, or the gateway's reply refusing it.
    fn cmap_verdict(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let req = CmapRequest::decode(payload).map_err(|e| format!("malformed CMAP request: {e}"))?;
        let kind = req.kind();
        let refuse = |e| Ok(Some(cmap_refusal(kind, e)));
        let (bound, max) = (cmap_reply_bound(&req), self.session.max_payload());
        if bound > max {
            log(&format!(
                "{}: CMAP {kind:?} refused (CS_ERR_TOO_BIG): its reply (up to {bound} bytes) \
                 exceeds the session's {max}-byte frames",
                self.name
            ));
            return refuse(CsError::TooBig);
        }
        let key = match req {
            CmapRequest::Set { key, .. }
            | CmapRequest::Delete { key }
            | CmapRequest::AdjustInt { key, .. } => Some(key),
            _ => None,
        };
        if let Some(key) = key {
            if self.policy.write_prefixes.iter().any(|p| covers(p, key.as_bytes())) {
                return Ok(None);
            }
            log(&format!(
                "{}: CMAP {kind:?} of {:?} refused (CS_ERR_ACCESS): no --allow-write prefix covers it",
                self.name,
                String::from_utf8_lossy(key.as_bytes())
            ));
            return refuse(CsError::Access);
        }
        if kind != CmapKind::TrackAdd {
            return Ok(None);
        }
        let max_tracks = self.policy.max_tracks;
        match self
            .tracks
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_tracks).then_some(n + 1))
        {
            Ok(_) => Ok(None),
            Err(_) => {
                log(&format!(
                    "{}: CMAP TrackAdd refused (CS_ERR_NO_RESOURCES): --max-tracks {max_tracks}",
                    self.name
                ));
                refuse(CsError::NoResources)
            }
        }
    }

    /// `None` to relay a votequorum request, or the gateway's reply refusing it.
    fn votequorum_verdict(&mut self, payload: &[u8]) -> Result<Option<Vec<u8>>, String> {
        let req = VqRequest::decode(payload).map_err(|e| format!("malformed votequorum request: {e}"))?;
        let kind = req.kind();
        let (bound, max) = (votequorum_reply(kind, Ok(())).encoded_len(), self.session.max_payload());
        let refused = |e, why: &str| {
            log(&format!("{}: votequorum {kind:?} refused ({e:?}): {why}", self.name));
            Ok(Some(votequorum_refusal(kind, e)))
        };
        if bound > max {
            return refused(
                CsError::TooBig,
                &format!("its {bound}-byte reply exceeds the {max}-byte frames"),
            );
        }
        match kind {
            // A votequorum connection holds one track at most: a TRACK_START while tracking
            // changes its flags (`exec/votequorum.c`), so only `--max-tracks 0` refuses it.
            VqKind::TrackStart if self.policy.max_tracks == 0 => {
                refused(CsError::NoResources, "--max-tracks 0")
            }
            VqKind::GetInfo | VqKind::TrackStop | VqKind::TrackStart => Ok(None),
            VqKind::SetExpected | VqKind::SetVotes if self.policy.votequorum_write => Ok(None),
            VqKind::SetExpected | VqKind::SetVotes => {
                refused(CsError::Access, "needs --allow-votequorum-write")
            }
            _ if self.policy.qdevice => Ok(None),
            _ => refused(CsError::Access, "needs --allow-qdevice"),
        }
    }
}

/// The largest reply the daemon can send to `req`: a GET's carries the `value_len` bytes it
/// asks for (`res_lib_cmap_get` + `value_len`), every other reply has a fixed shape.
fn cmap_reply_bound(req: &CmapRequest<'_>) -> usize {
    let body = match *req {
        CmapRequest::Get { value_len, .. } => {
            CmapResponse::Get(GetReply { buffer_len: value_len, ..GetReply::default() })
        }
        CmapRequest::IterNext { .. } => match Key::new(b"any") {
            Ok(key) => CmapResponse::IterNext { key, value_len: 0, value_type: None },
            Err(_) => return usize::MAX,
        },
        _ => return cmap_refusal(req.kind(), CsError::Access).len(),
    };
    CmapReply { result: Ok(()), body }.encoded_len()
}

/// The gateway's reply refusing a CMAP request of `kind` with `error`: the shape corosync
/// gives (`exec/cmap.c`): a handle reply's handle 0, a GET's empty value, the bare status
/// header otherwise (as for ITER_NEXT, whose error reply has no key).
fn cmap_refusal(kind: CmapKind, error: CsError) -> Vec<u8> {
    let body = match kind {
        CmapKind::Get => CmapResponse::Get(GetReply::default()),
        CmapKind::IterInit => CmapResponse::IterInit { iter_handle: 0 },
        CmapKind::TrackAdd => CmapResponse::TrackAdd { track_handle: 0 },
        CmapKind::TrackDelete => CmapResponse::TrackDelete { track_inst_handle: 0 },
        _ => return status_reply(kind.response_id(), error),
    };
    let reply = CmapReply { result: Err(error), body };
    let mut out = vec![0u8; reply.encoded_len()];
    let n = reply.encode(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A votequorum reply to `kind`: GETINFO's 320-byte shape (zeroed), the status header
/// otherwise (`exec/votequorum.c`).
fn votequorum_reply(kind: VqKind, result: Result<(), CsError>) -> VqReply<'static> {
    let body = match kind {
        VqKind::GetInfo => VqResponse::GetInfo(NodeInfo::default()),
        _ => VqResponse::Status,
    };
    VqReply { result, body }
}

/// The gateway's reply refusing a votequorum request of `kind` with `error`.
fn votequorum_refusal(kind: VqKind, error: CsError) -> Vec<u8> {
    let reply = votequorum_reply(kind, Err(error));
    let mut out = vec![0u8; reply.encoded_len()];
    let n = reply.encode(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}

/// A bare status reply (`cs_error_t` in a 24-byte header), as corosync sends for a refused
/// request of this shape.
fn status_reply(id: i32, error: CsError) -> Vec<u8> {
    let mut out = vec![0u8; 64];
    let n = corowire::cmap::encode_status(&mut out, id, CsError::raw_of(Err(error))).unwrap_or(0);
    out.truncate(n);
    out
}

/// One service thread: relays the client's requests of one channel to its upstream
/// connection, each reply back, and the events in between.
struct Relay {
    name: String,
    channel: Channel,
    services: Services,
    out: Arc<Out>,
    lost: Arc<AtomicBool>,
    max_payload: usize,
    /// The longest the daemon may take to answer a request (`--stall-timeout`).
    reply_timeout: Duration,
    /// The CMAP channel's track count (see `Client::tracks`); `None` on votequorum.
    tracks: Option<Arc<AtomicUsize>>,
}

/// How often a service thread waiting for a reply looks whether its client left.
const SLICE: Duration = Duration::from_millis(100);

impl Relay {
    fn run(self, transport: &mut Box<dyn ClientTransport>, rx: &Receiver<Vec<u8>>, wake: &UnixStream) {
        let mut buf = vec![0u8; transport.max_response_len().max(transport.max_event_len()).min(1 << 20)];
        match self.serve(transport, rx, wake, &mut buf) {
            Ok(()) => {}
            Err(Fault::Upstream(e)) => {
                log(&format!("{}: upstream lost ({e}); reset sent", self.name));
                // The first service thread to see it tells the client, once.
                if !self.lost.swap(true, Ordering::AcqRel) {
                    self.out.send(Frame::Reset(self.services));
                }
            }
            Err(Fault::NoReply(limit)) => {
                log(&format!(
                    "{}: the daemon did not reply within {limit:?}; reset sent, closing",
                    self.name
                ));
                // As after a restart, the client learns that its session is gone (a serial
                // device sees no close), then the session ends.
                if !self.lost.swap(true, Ordering::AcqRel) {
                    self.out.send(Frame::Reset(self.services));
                }
                self.out.dead.store(true, Ordering::Release);
            }
            Err(Fault::TooLarge(len)) => {
                log(&format!(
                    "{}: a {len}-byte message does not fit the client's frames; closing",
                    self.name
                ));
                self.out.dead.store(true, Ordering::Release);
            }
            Err(Fault::ClientGone) => {}
        }
    }

    /// Relays requests, replies and events until the client thread drops the queue (`Ok`) or
    /// something fails. Sleeps in `poll` until the upstream fd (an event, a hang-up) or the
    /// bell (a request, or the queue dropped) is readable; no timeout, since both transports'
    /// fds show a dead daemon as a hang-up.
    fn serve(
        &self,
        transport: &mut Box<dyn ClientTransport>,
        rx: &Receiver<Vec<u8>>,
        wake: &UnixStream,
        buf: &mut [u8],
    ) -> Result<(), Fault> {
        loop {
            loop {
                match rx.try_recv() {
                    Ok(request) => self.relay(transport, &request, buf)?,
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => return Ok(()),
                }
            }
            self.events(transport, buf)?;
            let polled = corowire_unix::sys::sock::poll_either(wake, transport.as_fd(), None);
            polled.map_err(|e| Fault::Upstream(TransportError::Io(e)))?;
            // Bells are only wake-ups: the queue above is what counts. End of file (the queue
            // dropped) is found by `try_recv`.
            let mut bells = [0u8; 64];
            while matches!((&*wake).read(&mut bells), Ok(n) if n > 0) {}
        }
    }

    /// Relays one request and its reply. Every wait is bounded: by the client leaving (looked
    /// at every [`SLICE`]) and by `reply_timeout` in all (a daemon that takes longer, e.g.
    /// stopped, or a request it never answers, ends the session: its replies would come out
    /// of step).
    fn relay(&self, t: &mut Box<dyn ClientTransport>, request: &[u8], buf: &mut [u8]) -> Result<(), Fault> {
        let start = std::time::Instant::now();
        let waited = || {
            if self.out.dead.load(Ordering::Acquire) {
                Err(Fault::ClientGone)
            } else if start.elapsed() >= self.reply_timeout {
                Err(Fault::NoReply(self.reply_timeout))
            } else {
                Ok(())
            }
        };
        loop {
            match t.check_send(request.len()) {
                Ok(()) => break,
                Err(e) if is_try_again(&e) => {
                    waited()?;
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(Fault::Upstream(e)),
            }
        }
        t.write_request(request).map_err(Fault::Upstream)?;
        t.flush(1).map_err(Fault::Upstream)?;
        loop {
            match t.recv_response(Some(t.now().saturating_add(SLICE)), buf) {
                Ok(n) => {
                    self.count_tracks(&buf[..n]);
                    return self.deliver(Kind::Reply, &buf[..n]);
                }
                Err(e) if corowire::transport::TransportError::kind(&e) == TransportErrorKind::Timeout => {
                    waited()?;
                }
                Err(e) => return Err(Fault::Upstream(e)),
            }
        }
    }

    /// Uncounts a track the daemon refused to add or confirmed deleted.
    fn count_tracks(&self, reply: &[u8]) {
        let Some(tracks) = &self.tracks else { return };
        let Ok(reply) = CmapReply::decode(reply) else { return };
        let gone = match reply.body.kind() {
            CmapKind::TrackAdd => reply.result.is_err(),
            CmapKind::TrackDelete => reply.result.is_ok(),
            _ => false,
        };
        if gone {
            let _ = tracks.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        }
    }

    /// Relays the events pending.
    fn events(&self, t: &mut Box<dyn ClientTransport>, buf: &mut [u8]) -> Result<(), Fault> {
        let mut any = false;
        while let Some(n) = t.recv_event(Wait::Never, buf).map_err(Fault::Upstream)? {
            any = true;
            self.deliver(Kind::Event, &buf[..n])?;
        }
        if any {
            t.settle_events();
        }
        // An idle check that notices a daemon gone while nothing moves.
        t.check_alive().map_err(Fault::Upstream)
    }

    fn deliver(&self, kind: Kind, payload: &[u8]) -> Result<(), Fault> {
        if payload.len() > self.max_payload {
            return Err(Fault::TooLarge(payload.len()));
        }
        if self.out.send(Frame::Message { channel: self.channel, kind, payload }) {
            Ok(())
        } else {
            Err(Fault::ClientGone)
        }
    }
}

/// Whether `e` says "not now, try again" (a full request ring).
fn is_try_again(e: &TransportError) -> bool {
    corowire::transport::TransportError::kind(e) == TransportErrorKind::TryAgain
}

/// Why a service thread ends.
enum Fault {
    Upstream(TransportError),
    /// The daemon did not answer a request within this long.
    NoReply(Duration),
    TooLarge(usize),
    ClientGone,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_prefixes_stop_at_a_key_boundary() {
        assert!(covers(b"app.", b"app.b"));
        assert!(!covers(b"app.", b"app"));
        assert!(covers(b"app.b", b"app.b"));
        assert!(covers(b"app.b", b"app.b.c"));
        assert!(!covers(b"app.b", b"app.bc"));
        assert!(!covers(b"app.b", b"app"));
    }

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn listen_specs() {
        assert_eq!(parse_listen("unix:/tmp/g"), Ok(Listen::Unix("/tmp/g".into())));
        assert_eq!(parse_listen("serial:/dev/pts/3"), Ok(Listen::Serial("/dev/pts/3".into())));
        assert_eq!(parse_listen("tcp:127.0.0.1:7000"), Ok(Listen::Tcp("127.0.0.1:7000".parse().unwrap())));
        assert!(parse_listen("tcp:localhost").is_err());
        let Ok(Listen::Tcp(local)) = parse_listen("tcp:localhost:7000") else { panic!("localhost") };
        assert!(is_loopback(local.ip()) && local.port() == 7000, "{local}");
        assert!(parse_listen("udp:1").is_err());
    }

    #[test]
    fn remote_bind_needs_the_flag() {
        let e = parse(&args(&["--listen", "tcp:0.0.0.0:7000"])).unwrap_err();
        assert!(e.contains("--allow-remote"), "{e}");
        assert!(parse(&args(&["--listen", "tcp:0.0.0.0:7000", "--allow-remote"])).unwrap().is_some());
        assert!(parse(&args(&["--listen", "tcp:[::1]:7000"])).unwrap().is_some());
        assert!(parse(&args(&["--listen", "tcp:[::ffff:127.0.0.1]:7000"])).unwrap().is_some());
        assert!(parse(&args(&["--listen", "tcp:[::ffff:10.0.0.1]:7000"])).is_err());
    }

    #[test]
    fn options() {
        let a = parse(&args(&["--listen", "unix:/x", "--allow-write", "test.", "--max-frame", "512"]))
            .unwrap()
            .unwrap();
        assert_eq!(a.policy.write_prefixes, [b"test.".to_vec()]);
        assert_eq!(a.policy.max_frame, 512);
        assert!(parse(&args(&["--listen", "unix:/x", "--max-frame", "10"])).is_err());
        assert!(parse(&args(&[])).is_err());
        let e = parse(&args(&["--listen", "unix:/x", "--allow-write", ""])).unwrap_err();
        assert!(e.contains("every key"), "{e}");
        assert_eq!(parse(&args(&["--help"])), Ok(None));
    }
}
