//! A libqb-compatible CMAP, votequorum, quorum and cfg server that the unmodified corosync
//! tools and libraries (`corosync-cmapctl`, `corosync-quorumtool`, libcmap, libvotequorum)
//! and this crate's clients accept.
//!
//! The protocol is the core's sans-IO engines (`corowire::server`); this module is their
//! I/O: libqb's setup sockets and shared-memory rings, or its datagram sockets (docs/protocol.md §1, §2,
//! §3, §8 and appendix B), in one single-threaded `poll` loop, as corosync runs.
//!
//! ```no_run
//! use corowire_unix::server::{Server, ServerConfig};
//! let mut cfg = ServerConfig::default();
//! cfg.load_file("corowire.conf".as_ref())?;
//! let mut server = Server::bind(cfg)?;
//! let stop = server.run_until_signal()?; // or run(), or run_until(&stop_flag)
//! eprintln!("stopped by {stop}");
//! drop(server); // closes the connections, removes their files
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! - **Setup**: the 24-byte request is read with the client's credentials (a request whose id
//!   is not −1, or without credentials, is closed without a reply). Clients are authorised
//!   as corosync does: uid 0 or gid 0, or a CMAP key `uidgid.uid.<uid>`, `uidgid.gid.<gid>`,
//!   `uidgid.config.uid.<uid>` or `uidgid.config.gid.<gid>` of type `u8` and value 1;
//!   otherwise the reply is `-EACCES`. The maximum message size is `max(requested,
//!   floor)`; above [`ServerConfig::max_msg_size_limit`] the reply is `-ENOMEM`, below the
//!   16 bytes of a request header `-EINVAL` (`corowire::server::grant_max_msg_size`), and
//!   beyond a [`Limits`] connection bound or with a full connection table `-EBUSY`
//!   (`CS_ERR_BUSY`). The rings live in
//!   `<shm_dir>/qb-<server pid>-<client pid>-<fd>-XXXXXX` (mode 0770, files 0600, owned by
//!   the client). Each file is created in the directory through its descriptor
//!   (`openat` with `O_EXCL | O_NOFOLLOW`), given to the client and sized through its own
//!   descriptor, and the directory is given to the client last: no path the client could
//!   change is ever followed. With [`IpcType::Socket`] that directory holds the 24-byte control file
//!   `qb-control-<service>` instead, the server binds the datagram sockets
//!   `\0<dir>/qb-<service>-request` and `-event-tx`, and connects them to the client's
//!   `-response` and `-event` on its first send (docs/protocol.md §3). Anyone can send to
//!   an abstract name, so the request socket has `SO_PASSCRED` set and a datagram whose
//!   credentials (pid, uid, gid) are not the client's of the setup, or that carries
//!   descriptors (they are closed), is discarded unread. What the server *sends* on the socket
//!   transport is not protected: the client's `-response` and `-event` names are abstract,
//!   any local user may bind them first (the client's `bind` then fails with `EADDRINUSE`),
//!   and the server connects to whoever owns them; Linux gives no `SO_PEERCRED` for a
//!   datagram peer, and a check by handshake would change what C clients see. libqb and
//!   corosync share this weakness (docs/protocol.md §3). The shared-memory transport, the
//!   default, has no such names: prefer it where other users are not trusted.
//! - **Requests**: one per doorbell byte (shared memory) or datagram (sockets), in order
//!   (pipelining works). A chunk that is not LIVE, or whose `hdr.size` is ≤ 0 or above the
//!   negotiated maximum (libqb ≥ 2.0.10), or that is shorter than a request header, drops
//!   the connection. Every other frame goes to the service's engine, which answers malformed
//!   and unknown requests as corosync does.
//! - **Events** are written before the reply of the request that caused them. When a
//!   client's event ring is full they wait (in order, up to 64 MiB per connection and
//!   [`Limits::queued_event_bytes`] for all connections together, beyond which the client
//!   that does not read is dropped) and are retried every few milliseconds; nothing is
//!   dropped silently. Scratch buffers a large request grew are given back after it. An event larger than the client's whole event ring can never be delivered
//!   and is counted and logged (corosync drops it too).
//! - **Replies** that do not fit into a full response ring (or socket) wait, and the
//!   connection's requests are not read until it is sent.
//! - **Disconnect** (hang-up, EOF, or any fault of that client): the engine forgets the
//!   connection, `ref_count` of the three rings is set to 0, the six files (or the control
//!   file) are unlinked and the directory removed. Other clients are not affected.
//!
//! - **Shutdown** (libcfg's `corosync_cfg_try_shutdown`, `corosync-cfgtool -H`): once the
//!   cfg engine decides as corosync would (`corowire::server::cfg`: the trackers' answers,
//!   `cfg.shutdown_timeout` read from CMAP as a `u32`, else 5000 ms), the asker gets its
//!   `CS_OK` and the run loops return ([`Server::shut_down`], [`Stop::CfgShutdown`]);
//!   dropping the server then closes every connection, as corosync's exit after a SIGTERM
//!   does. Only root and the server's own user (who could stop it with a signal) may ask;
//!   other users the setup lets in (gid 0, `uidgid` keys) get `CS_ERR_ACCESS`, where corosync
//!   lets every client it admits stop it. A simulated cluster's local node is not made to
//!   leave first: no client of this server could see it (its other nodes live in this
//!   process).
//! - **Simulated cluster**: every node of the node list is modelled
//!   (`corowire::server::cluster`), with [`ServerConfig::up`] up at start, and the server
//!   shows the view of [`ServerConfig::nodeid`]'s node: `runtime.members.<id>.*` keys, the
//!   votequorum members and ring id. With [`ServerConfig::control`] a Unix stream socket
//!   (mode 0600; peers of another uid than the server's, by `SO_PEERCRED`, are closed
//!   unanswered; removed on drop) takes corosync-vqsim's commands, one per line (`up`,
//!   `down`, `split`/`move`, `join`, `qdevice`, `show`), and answers each with its output
//!   lines and a status line, `ok` or `error: <why>`. A change of the local node's partition
//!   reaches votequorum (`set_membership`: its trackers' notifications), libquorum trackers
//!   (the new view; while a quorum device holds the sync, at its end instead) and the
//!   `runtime.members` keys (with their CMAP track events) before the status line is written
//!   (`corowire sim` is its client).
//!
//! # Differences from corosync
//!
//! Only the CMAP, votequorum, libquorum (`quorum`) and libcfg (`cfg`) services exist, and of
//! the latter two only what `corosync-quorumtool` uses and cfg's shutdown protocol (see
//! `corowire::server::quorum` and `corowire::server::cfg`); the cfg service's node addresses come from the node list's
//! `ring<N>_addr` keys (host names resolved once, at start). The server offers one transport, [`ServerConfig::transport`]:
//! shared memory (corosync's default) or sockets (`system.qb_ipc_type: socket`). There is no
//! flow control (the value in the request ring or the control file is always 0). The
//! engines' own differences are listed in `corowire::server::cmap`,
//! `corowire::server::votequorum`, `corowire::server::quorum` and
//! `corowire::server::cfg`.
//!
//! # Limits
//!
//! - [`MAX_CONNECTIONS`] connections per service, of which one user or one process may
//!   hold only a part and some are kept for root ([`Limits`]; more are refused with
//!   `-EBUSY`, never dropping a connection already made); connections accepted but not yet
//!   set up are bounded per user and for all non-root users together, root exempt
//!   ([`Limits::setup_per_uid`], [`Limits::setup_total`]; a newcomer beyond is closed);
//!   the shared memory of ring files is bounded per user and for all non-root users
//!   together, root exempt ([`Limits::shm_per_uid`], [`Limits::shm_total`]; a setup beyond
//!   is refused with `-ENOMEM`), and so is the rate at which one user sets rings up
//!   ([`Limits::setup_rate_per_uid`]; a setup beyond is refused with `-EAGAIN`);
//!   [`MAX_ITERATORS`] iterators and [`MAX_TRACKS`] tracks per CMAP connection (more get
//!   `CS_ERR_NO_MEMORY`).
//! - A client may truncate its own ring files (they are its files, as in libqb); the server's
//!   next access to a page past the new end then raises `SIGBUS`, which kills corosync in the
//!   same situation. This server survives it (`corowire_unix::sys::sigbus`): the mapping is
//!   replaced by zero pages and the client is dropped. A process embedding the server gets
//!   its `SIGBUS` handler installed on the first connection.

pub mod config;
mod control;
pub mod corosync_conf;
mod session;
pub mod sync;

use core::fmt;
use core::hash::BuildHasher;
use core::net::IpAddr;
use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Instant;

use corowire::cmap::Value;
use corowire::error::SetupError;
use corowire::qb::{ConnectRequest, ConnectResponse, ConnectionType, CONNECTION_RESPONSE_LEN};
use corowire::ring::data_bytes;
use corowire::server::cfg::{CfgEngine, CfgEvent, DEFAULT_SHUTDOWN_TIMEOUT_MS, MAX_LINKS};
use corowire::server::cmap::CmapEngine;
use corowire::server::quorum::QuorumLibEngine;
use corowire::server::store::BTreeStore;
use corowire::server::votequorum::{ConfigError, QuorumConfig, QuorumEngine, Reconfigure};
use corowire::server::{grant_max_msg_size, ClusterView, ConnId, Engine, ServerError, MIN_REPLY_LEN};
use corowire::votequorum::{NodeState, RingId};
use corowire::wire::ring::HEADER_FILE_LEN;
use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;

use crate::sys::sock::{
    accept_with_passcred, errno_of, listen_abstract, listen_path, peer_cred, recv_with_creds, send_all,
    PeerCred, FORCE_FILESYSTEM_SOCKETS, SOCKET_DIR,
};
use corowire::value::OwnedValue;
use session::{Channels, Phase, Rings, Session, ShmDir, Sockets, Take};

/// Connections per service at once.
pub const MAX_CONNECTIONS: usize = 128;
/// Open CMAP iterators per connection.
pub const MAX_ITERATORS: usize = 16;
/// CMAP tracks per connection.
pub const MAX_TRACKS: usize = 32;
/// Nodes of the quorum model, including the quorum device's slot: corosync 3.1.7's node limit
/// (`PROCESSOR_COUNT_MAX`, 384, the size of totem's member lists and of votequorum's node
/// table) plus one.
pub const MAX_NODES: usize = MAX_MODEL_NODES + 1;
/// The most nodes a node list may have, [`MAX_NODES`] less the quorum device's slot: 384,
/// corosync 3.1.7's `PROCESSOR_COUNT_MAX`. [`Server::bind`] refuses more at once
/// ([`ServerStartError::Config`]), before it reads their addresses. corosync itself starts
/// with up to 388 nodes, overrunning its 384-entry arrays, and refuses 389 or more with an
/// unrelated `ttl` message (see [`corosync_conf`]); the server does not copy the overrun.
pub const MAX_MODEL_NODES: usize = 384;

/// The words for a node list longer than [`MAX_MODEL_NODES`], wherever it is refused.
pub fn too_many_nodes(nodes: usize) -> String {
    format!(
        "the node list has {nodes} nodes; at most {MAX_MODEL_NODES} are supported \
         (corosync 3.1.7's PROCESSOR_COUNT_MAX)"
    )
}

/// The server's CMAP engine: an unbounded store, and an outbox of 512 notifications or 256 KiB.
pub type Cmap = CmapEngine<BTreeStore, MAX_CONNECTIONS, MAX_ITERATORS, MAX_TRACKS, 512, { 256 * 1024 }>;
/// The server's votequorum engine.
pub type Quorum = QuorumEngine<MAX_CONNECTIONS, MAX_NODES, 512, { 64 * 1024 }>;
/// The server's libquorum engine (it reads the votequorum engine's model).
pub type QuorumLib = QuorumLibEngine<MAX_CONNECTIONS, 512, { 64 * 1024 }>;
/// The server's libcfg engine: a 32-byte TESTSHUTDOWN for every connection fits its outbox.
pub type Cfg =
    CfgEngine<MAX_CONNECTIONS, { MAX_NODES * MAX_LINKS }, MAX_CONNECTIONS, { MAX_CONNECTIONS * 32 }>;

/// Requests served from one connection before the loop turns to the others.
const BATCH: usize = 50;
/// How soon a full ring (events or a reply waiting) is retried.
const RETRY: Duration = Duration::from_millis(2);
/// How long a client may take to send its setup request.
const SETUP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`Server::run_until`] looks at its stop flag.
const STOP_POLL: Duration = Duration::from_millis(50);
/// Scratch buffers larger than this (bytes) are given back after the request that grew them
/// (a client may negotiate up to [`ServerConfig::max_msg_size_limit`]); libcmap's 1 MiB
/// messages stay within.
const SCRATCH_KEEP: usize = 2 << 20;
/// How long the listeners rest after `accept` failed for lack of resources (e.g. `EMFILE`),
/// rather than waking the loop again at once for the connection still pending.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What the server serves and where.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The CMAP service's libqb name (corosync: `cmap`).
    pub cmap_name: String,
    /// The votequorum service's libqb name (corosync: `votequorum`); `None`: no votequorum
    /// service. Without a quorum provider in `initial` it is not served either
    /// ([`ServerConfig::has_quorum_provider`]).
    pub votequorum_name: Option<String>,
    /// The libquorum service's libqb name (corosync: `quorum`); `None`: not served.
    pub quorum_name: Option<String>,
    /// The libcfg service's libqb name (corosync: `cfg`); `None`: not served. Its node
    /// addresses are the `nodelist.node.<i>.ring<N>_addr` keys of `initial`, host names
    /// resolved at [`Server::bind`] as corosync does (following `totem.ip_version`).
    pub cfg_name: Option<String>,
    /// Where the per-connection ring directories are created (libqb: `/dev/shm`).
    pub shm_dir: PathBuf,
    /// The server's minimum message size: `max(requested, floor)` is negotiated (corosync: 0).
    pub max_msg_size_floor: u32,
    /// Larger requested sizes are refused with `-ENOMEM` (libqb has no limit; this keeps a
    /// client from making the server allocate gigabytes of shared memory).
    pub max_msg_size_limit: u32,
    /// Keys of the default CMAP map, set at start (see [`config`] for a file format).
    pub initial: Vec<(String, OwnedValue)>,
    /// The quorum model. [`Server::bind`] also applies the quorum keys and the node list of
    /// `initial` ([`sync::quorum_setup`]); every node of that list is up unless
    /// [`ServerConfig::up`] says otherwise.
    pub quorum: QuorumConfig,
    /// Other nodes of the quorum model: `(nodeid, votes, state)`.
    pub nodes: Vec<(u32, u32, NodeState)>,
    /// Print connection events and faults to standard error (corosync's configuration
    /// messages, such as `auto_tie_breaker` switched off, are printed always).
    pub verbose: bool,
    /// The transport offered to clients (corosync's `system.qb_ipc_type`).
    pub transport: IpcType,
    /// What one client identity and all clients together may hold.
    pub limits: Limits,
    /// The local node of the simulated cluster (`corowire serve --nodeid`), overriding the
    /// quorum keys' `totem.nodeid`; `None`: that node, or the lowest node id of the node
    /// list when the node list does not have it.
    pub nodeid: Option<u32>,
    /// The nodes of the node list up at start (`--up`); `None`: all. The local node is
    /// always up.
    pub up: Option<Vec<u32>>,
    /// Nodes of the node list that never join: down at start, and `up` of one is refused
    /// (as a corosync.conf node without `ring0_addr`: corosync has no address to reach it;
    /// [`ServerConfig::load_corosync_conf`] sets them). The local node is never one.
    pub never_join: Vec<u32>,
    /// Where to listen for simulated-cluster commands (`--control`; a Unix stream socket,
    /// mode 0600, removed on drop; see `corowire sim`); `None`: no control socket.
    pub control: Option<PathBuf>,
}

/// Bounds on what clients may hold, so that no client (nor one user's clients) can lock
/// the others out or make the server grow without limit (issue 13). corosync has none of
/// these; its clients never meet them in normal use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections one user (uid) other than root may hold per service. Beyond it the
    /// setup is refused with `-EBUSY` (`CS_ERR_BUSY` for the C libraries).
    pub per_uid: usize,
    /// Connections one process (pid) other than root's may hold per service; `-EBUSY`
    /// beyond.
    pub per_pid: usize,
    /// Connections of the [`MAX_CONNECTIONS`] of each service only root (uid 0) may take:
    /// once the others hold `MAX_CONNECTIONS - reserved_for_root`, a non-root client is
    /// refused with `-EBUSY`. Root is refused with `-EBUSY` only when the table is full.
    pub reserved_for_root: usize,
    /// Bytes of events all connections together may have waiting for room in their event
    /// rings (corosync's queue is unbounded). When an event would pass it, the client it is
    /// for is disconnected if it already has events waiting (it does not read them), and its
    /// queue is freed; the bound may be passed by at most one event per connection whose
    /// ring was free. Each connection is also dropped beyond 64 MiB of its own.
    pub queued_event_bytes: usize,
    /// Connections one user other than root may have accepted but not yet set up (no
    /// complete setup request read), over all services. Its uid is known at accept
    /// (`SO_PEERCRED`); a newcomer beyond it is closed at once, without a reply (there is
    /// no request to answer yet; libqb clients report `CS_ERR_LIBRARY`), and logged. Those
    /// already waiting are kept, each for 10 s at most.
    pub setup_per_uid: usize,
    /// Connections all users other than root together may have accepted but not yet set
    /// up, over all services; a newcomer beyond it is closed as for
    /// [`setup_per_uid`](Self::setup_per_uid). Root is never refused for it, so a crowd of
    /// silent connections cannot keep root out (nor make `accept` run out of descriptors).
    pub setup_total: usize,
    /// Bytes of shared-memory ring files (in [`ServerConfig::shm_dir`]) the connections of
    /// one user other than root may have, over all services. A connection's three rings take
    /// `3 × (8252 + round_up(max_msg_size + 13, page size))` bytes, allocated at setup; a
    /// setup that would pass the bound is refused with `-ENOMEM` (`CS_ERR_NO_MEMORY`).
    ///
    /// It is also the bound on the work one user's setups put into the single-threaded loop:
    /// the rings are created and sized (`posix_fallocate`) in it, so a user holding rings
    /// of this many bytes has no more to size until it frees some. What it does not bound is
    /// churn: a user that closes and reopens one large connection makes the server size its
    /// rings again each time (four users doing so with 64 MiB rings took root's `cmapctl -g`
    /// from under 0.1 s to about 1 s in the breaker's run, issue 13). That is bounded by
    /// [`setup_rate_per_uid`](Self::setup_rate_per_uid).
    pub shm_per_uid: usize,
    /// Bytes of ring files all users other than root may have together; `-ENOMEM` beyond.
    /// Root is never refused for it: keep it below the size of `shm_dir`'s file system
    /// (by default half the RAM for `/dev/shm`) so that root's clients always find room.
    pub shm_total: usize,
    /// Bytes of shared-memory rings one user other than root may have set up per second:
    /// a token bucket per uid, refilled at this rate up to
    /// [`setup_burst_per_uid`](Self::setup_burst_per_uid) and emptied by each setup by its
    /// ring bytes (as [`shm_per_uid`](Self::shm_per_uid) counts them; the socket transport's
    /// setups cost nothing). So a user that keeps closing and reopening large connections
    /// costs the server loop at most this many bytes of `posix_fallocate` per second. A
    /// setup is admitted when the bucket holds its bytes (or, for a setup larger than the
    /// burst, is full), and may leave it in debt; otherwise it is refused with `-EAGAIN`
    /// in the setup response's `hdr.error`, as corosync refuses a client while it is not
    /// ready: libqb's `qb_ipcc_connect` fails with that `errno`, `qb_to_cs_error` makes it
    /// `CS_ERR_TRY_AGAIN` for `cmap_initialize` and `votequorum_initialize` (so
    /// `corosync-cmapctl` pauses and retries, as while corosync starts; docs/protocol.md
    /// §1.4), and corowire's clients get `CsError::TryAgain`.
    pub setup_rate_per_uid: usize,
    /// The most a user's setup-rate bucket holds, in bytes: what it may set up at once after
    /// a quiet while ([`setup_rate_per_uid`](Self::setup_rate_per_uid)).
    pub setup_burst_per_uid: usize,
}

impl Default for Limits {
    /// 32 connections per uid and 16 per pid for each service, 16 kept for root, 256 MiB
    /// of queued events; 8 connections in setup per uid and 64 for all non-root users;
    /// 256 MiB of ring files per uid and 1 GiB for all non-root users; rings set up at
    /// 64 MiB per second per uid, in bursts of up to 256 MiB.
    fn default() -> Self {
        Self {
            per_uid: 32,
            per_pid: 16,
            reserved_for_root: 16,
            queued_event_bytes: 256 << 20,
            setup_per_uid: 8,
            setup_total: 64,
            shm_per_uid: 256 << 20,
            shm_total: 1 << 30,
            setup_rate_per_uid: 64 << 20,
            setup_burst_per_uid: 256 << 20,
        }
    }
}

/// The libqb transport the server offers (it alone chooses; docs/protocol.md §1.4).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IpcType {
    /// Shared-memory rings (connection type 1; corosync's default).
    #[default]
    Shm,
    /// Datagram sockets (connection type 0; corosync's `qb_ipc_type: socket`).
    Socket,
}

impl Default for ServerConfig {
    /// The standard names `cmap`, `votequorum`, `quorum` and `cfg`, `/dev/shm`, floor 0,
    /// limit 64 MiB, the one-node quorum model, and the keys
    /// `quorum.provider = corosync_votequorum` and `totem.cluster_name = corowire`.
    fn default() -> Self {
        Self {
            cmap_name: "cmap".into(),
            votequorum_name: Some("votequorum".into()),
            quorum_name: Some("quorum".into()),
            cfg_name: Some("cfg".into()),
            shm_dir: PathBuf::from("/dev/shm"),
            max_msg_size_floor: 0,
            max_msg_size_limit: 64 << 20,
            initial: vec![
                ("quorum.provider".into(), OwnedValue::String("corosync_votequorum".into())),
                ("totem.cluster_name".into(), OwnedValue::String("corowire".into())),
            ],
            quorum: QuorumConfig::default(),
            nodes: Vec::new(),
            verbose: false,
            transport: IpcType::Shm,
            limits: Limits::default(),
            nodeid: None,
            up: None,
            never_join: Vec::new(),
            control: None,
        }
    }
}

impl ServerConfig {
    /// The name each service listens on, in the order of [`Engines::all`] (`None`: not
    /// served). Without a quorum provider there is no votequorum service, as in corosync.
    fn names(&self) -> [Option<&str>; SERVICES] {
        [
            Some(&self.cmap_name),
            self.votequorum_name.as_deref().filter(|_| self.has_quorum_provider()),
            self.quorum_name.as_deref(),
            self.cfg_name.as_deref(),
        ]
    }

    /// Whether `initial` configures a quorum provider (`quorum.provider`, corosync's
    /// `quorum { provider: ... }`). Without one corosync loads no votequorum: [`Server::bind`]
    /// then serves no votequorum service (libvotequorum gets `CS_ERR_LIBRARY`), sets no
    /// `runtime.votequorum.*` key, and libquorum answers `QUORUM_FREE`, quorate, with no
    /// members.
    pub fn has_quorum_provider(&self) -> bool {
        self.initial.iter().any(|(k, _)| k == "quorum.provider")
    }

    /// Adds the keys of a configuration file ([`config`] describes the format) to
    /// [`ServerConfig::initial`]; its quorum keys configure the quorum model at
    /// [`Server::bind`].
    ///
    /// # Errors
    /// The file cannot be read, or a line is malformed.
    pub fn load_file(&mut self, path: &Path) -> Result<(), config::ConfigError> {
        self.initial.extend(config::load_keys(path)?);
        Ok(())
    }

    /// Replaces [`ServerConfig::initial`] with the keys corosync 3.1.7 presents for the
    /// corosync.conf at `path` ([`corosync_conf::CorosyncConf::presented_keys`]), on the node
    /// with id `nodeid` (`None`: the node corosync would pick,
    /// [`corosync_conf::CorosyncConf::local_node_pos`]), and makes that node the quorum
    /// model's local node. Without `quorum.provider` in the file, votequorum is not served;
    /// `system.qb_ipc_type` sets [`ServerConfig::transport`] (`socket`, or `native` / `shm`).
    ///
    /// # Errors
    /// The file cannot be read or parsed (the line and what is wrong), `nodeid` is not in
    /// its node list ([`corosync_conf::ConfErrorKind::UnknownNode`]), or corosync would not
    /// start with it ([`corosync_conf::ConfErrorKind::Startup`], corosync's words).
    pub fn load_corosync_conf(
        &mut self,
        path: &Path,
        nodeid: Option<u32>,
    ) -> Result<(), corosync_conf::ConfError> {
        let conf = corosync_conf::CorosyncConf::load(path)?;
        let pos = match nodeid {
            Some(id) => Some(conf.position_of(id).ok_or(corosync_conf::ConfError {
                line: 0,
                kind: corosync_conf::ConfErrorKind::UnknownNode(id),
            })?),
            None => conf.local_node_pos(),
        };
        conf.startup_check(pos)?;
        if let Some(id) = pos.and_then(|p| conf.nodeid_at(p)) {
            self.quorum.nodeid = id;
            self.nodeid = Some(id);
        }
        self.never_join = conf.addressless_nodes();
        let keys = conf.presented_keys(pos);
        if !keys.iter().any(|(k, _)| k == "quorum.provider") {
            self.votequorum_name = None;
        }
        match conf.file_keys().find(|&(k, _)| k == "system.qb_ipc_type").map(|(_, v)| v.as_value()) {
            Some(Value::String(b"socket")) => self.transport = IpcType::Socket,
            Some(Value::String(b"native" | b"shm")) => self.transport = IpcType::Shm,
            _ => {}
        }
        self.initial = keys;
        Ok(())
    }
}

/// Why the server could not start or run.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerStartError {
    /// A listening socket could not be created (e.g. `EADDRINUSE`: the name is taken).
    Listen {
        /// The service name.
        name: String,
        /// The error.
        errno: Errno,
    },
    /// A configured key or node was refused by the engine.
    Config(String),
    /// The simulated cluster's control socket (`--control`) could not be set up; the text
    /// names the path and what failed.
    Control(String),
    /// corosync's votequorum would not start with this quorum configuration (its message).
    Quorum(ConfigError),
    /// The simulated cluster could not be built (e.g. an `up` node not in the node list).
    Sim(String),
    /// `poll` failed.
    Poll(Errno),
    /// The stop signals could not be blocked or read ([`Server::run_until_signal`]).
    Signals(Errno),
}

impl fmt::Display for ServerStartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Listen { name, errno } => write!(f, "cannot listen on libqb socket '{name}': {errno}"),
            Self::Config(what) => write!(f, "configuration refused: {what}"),
            Self::Quorum(e) => write!(f, "{e}"),
            Self::Control(what) => f.write_str(what),
            Self::Sim(what) => write!(f, "simulated cluster: {what}"),
            Self::Poll(e) => write!(f, "poll failed: {e}"),
            Self::Signals(e) => write!(f, "cannot wait for SIGINT/SIGTERM: {e}"),
        }
    }
}

impl core::error::Error for ServerStartError {}

/// The engines, one per service. [`Engines::all`] is the list the listener iterates to listen,
/// accept and dispatch: a connection names its service by its index in that list.
struct Engines {
    cmap: Box<Cmap>,
    quorum: Box<Quorum>,
    quorum_lib: Box<QuorumLib>,
    cfg: Box<Cfg>,
    /// Whether votequorum is served (a quorum provider is configured): only then does CMAP
    /// show its `runtime.votequorum.*` keys, as in corosync.
    votequorum: bool,
    /// The quorate state libquorum's trackers were last told: corosync's votequorum calls the
    /// quorum service's callback whenever quorate-ness changes (`are_we_quorate`), also outside
    /// a membership change (a quorum device's vote, its timeout, new expected votes), but not
    /// while a membership change's sync is in progress.
    lib_quorate: bool,
    /// votequorum's [`Quorum::completed_syncs`] when libquorum's trackers were last told: the
    /// end of every sync calls that callback too (`votequorum_sync_activate`), quorate-ness
    /// changed or not; a sync held for the quorum device ends when the device polls, is
    /// unregistered or `quorum.device.sync_timeout` passes.
    lib_syncs: u32,
    /// votequorum's reconfigure messages taken from its engine by [`drain`] (which makes room
    /// for a change refused with `OutboxFull`), until `Server::deliver_reconfigures` hands
    /// them to the simulator's other nodes.
    reconfigures: Vec<Reconfigure>,
}

/// Number of services; the length of [`Engines::all`] and [`ServerConfig::names`].
const SERVICES: usize = 4;

impl Engines {
    /// Whether libquorum's trackers are owed a notification, as corosync's votequorum would
    /// call the quorum service's callback (`quorum_callback`): a sync completed since they were
    /// last told, or quorate-ness changed; never while a sync waits for the quorum device.
    fn quorum_lib_owed(&self) -> bool {
        !self.quorum.sync_waiting()
            && (self.quorum.completed_syncs() != self.lib_syncs
                || self.quorum.is_quorate() != self.lib_quorate)
    }

    /// Gives libquorum's trackers the view the engines publish.
    ///
    /// # Errors
    /// Those of `QuorumLibEngine::notify`.
    fn notify_quorum_lib(&mut self) -> Result<(), ServerError> {
        let mut view = ClusterView::default();
        self.all().iter().for_each(|e| e.publish(&mut view));
        let result = self.quorum_lib.notify(&view);
        // A full outbox took nothing: the change stays unseen, and the next sync tries again.
        if !matches!(result, Err(ServerError::OutboxFull)) {
            self.lib_quorate = view.quorate;
            self.lib_syncs = self.quorum.completed_syncs();
        }
        result
    }

    /// Takes votequorum's waiting reconfigure messages into [`Engines::reconfigures`].
    fn take_reconfigures(&mut self) {
        while let Some(r) = self.quorum.poll_reconfigure() {
            self.reconfigures.push(r);
        }
    }

    /// Every engine, in the order of [`ServerConfig::names`]. A new service is one more entry
    /// here and there.
    fn all(&mut self) -> [&mut dyn Engine; SERVICES] {
        [&mut *self.cmap, &mut *self.quorum, &mut *self.quorum_lib, &mut *self.cfg]
    }

    /// Hands one request to engine `service` after it observed the cluster state all engines
    /// publish (libquorum answers from votequorum's model).
    fn handle_request(
        &mut self,
        service: usize,
        conn: ConnId,
        frame: &[u8],
        out: &mut [u8],
    ) -> Result<usize, ServerError> {
        let mut all = self.all();
        let mut view = ClusterView::default();
        all.iter().for_each(|e| e.publish(&mut view));
        let engine = all.get_mut(service).ok_or(ServerError::UnknownConnection(conn))?;
        engine.observe(&view);
        engine.handle_request(conn, frame, out)
    }
}

/// What `poll` found: listeners that can accept, connections with the events of their
/// setup socket and of their request datagram socket (socket transport), and what the simulated cluster's descriptors saw.
type Readiness = (Vec<usize>, Vec<(u32, PollFlags, PollFlags)>, Vec<PollFlags>);

/// A listening setup socket.
#[derive(Debug)]
struct Listener {
    /// The service's index in [`Engines::all`].
    service: usize,
    name: String,
    socket: UnixListener,
    /// The filesystem socket to remove on drop.
    path: Option<PathBuf>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Why [`Server::run_until_signal`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stop {
    /// `SIGINT` or `SIGTERM`.
    Signal(Signal),
    /// A libcfg client shut the server down ([`Server::shut_down`]).
    CfgShutdown,
}

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Signal(s) => write!(f, "{s}"),
            Self::CfgShutdown => f.write_str("a cfg shutdown request (corosync-cfgtool -H)"),
        }
    }
}

/// The server: listeners, connections and both engines. See the [module documentation](self).
pub struct Server {
    listeners: Vec<Listener>,
    sessions: BTreeMap<u32, Session>,
    next_id: u32,
    engines: Engines,
    shm_dir: PathBuf,
    max_msg_size_floor: u32,
    max_msg_size_limit: u32,
    page_size: usize,
    verbose: bool,
    transport: IpcType,
    limits: Limits,
    /// The listeners are not polled until then (after a failed `accept`).
    accept_backoff: Option<Instant>,
    /// Ring bytes each non-root user may still set up now ([`Limits::setup_rate_per_uid`]).
    setup_rate: SetupRate,
    /// The simulated cluster and its control socket (taken out while a command runs).
    sim: Option<control::Sim>,
    /// CMAP <-> votequorum.
    sync: sync::QuorumSync,
    /// A CMAP write whose configuration change could not be acted on (a full outbox): the
    /// next CMAP request, of any kind, tries again.
    sync_unseen: bool,
    /// A libcfg client shut the server down ([`CfgEvent::ShutDown`]): the loop ends.
    shut_down: bool,
    /// Scratch buffers: the request being served, its reply, a notification.
    frame: Vec<u8>,
    reply: Vec<u8>,
    note: Vec<u8>,
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("listeners", &self.listeners)
            .field("connections", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// Builds both engines on a thread with a large stack: they are over a megabyte of inline,
/// fixed-capacity tables, which a debug build moves through the stack on the way to the heap.
/// The quorum engine is configured as corosync's votequorum ([`Quorum::configure`]); its
/// configuration messages go to standard error ([`sync::report`]).
fn new_engines(
    quorum: QuorumConfig,
    nodelist: &[(u32, u32)],
) -> Result<(Box<Cmap>, Box<Quorum>), ServerStartError> {
    let seed = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
    let nodes = nodelist.to_vec();
    let build = move || {
        let cmap = Box::new(Cmap::new(BTreeStore::new(), BTreeStore::new(), seed));
        let quorum = Quorum::configure(quorum, &nodes, &mut sync::report);
        quorum.map(|q| (cmap, Box::new(q))).map_err(ServerStartError::Quorum)
    };
    match std::thread::Builder::new().stack_size(64 << 20).spawn(build.clone()) {
        Ok(handle) => match handle.join() {
            Ok(engines) => engines,
            Err(panic) => std::panic::resume_unwind(panic),
        },
        // No thread to spare: build them here (fine in optimised builds).
        Err(_) => build(),
    }
}

impl Server {
    /// Creates the engines from `cfg` and listens on the services' libqb names: the padded
    /// abstract names, or `/tmp/<name>` when `/etc/libqb/force-filesystem-sockets` exists.
    /// With votequorum served, the `runtime.votequorum.*` keys are set as corosync's
    /// votequorum sets them ([`Quorum::runtime_keys`]) unless `initial` sets them, and kept
    /// up to date ([`sync`]).
    ///
    /// # Errors
    /// [`ServerStartError::Listen`] (e.g. the name is taken: another server or corosync runs
    /// in this network namespace); [`ServerStartError::Config`] for a key the engine refuses.
    pub fn bind(cfg: ServerConfig) -> Result<Self, ServerStartError> {
        let (mut quorum_cfg, nodelist) = sync::quorum_setup(sync::owned_keys(&cfg.initial), cfg.quorum);
        // The local node: --nodeid, else the configured one if listed, else the lowest.
        quorum_cfg.nodeid = match (cfg.nodeid, nodelist.iter().map(|n| n.0).min()) {
            (Some(nodeid), _) => nodeid,
            (None, Some(lowest)) if !nodelist.iter().any(|n| n.0 == quorum_cfg.nodeid) => lowest,
            (None, _) => quorum_cfg.nodeid,
        };
        let nodes = nodelist.len() + cfg.nodes.len();
        if nodes > MAX_MODEL_NODES {
            return Err(ServerStartError::Config(too_many_nodes(nodes)));
        }
        let addrs = node_addrs(&cfg.initial);
        let mut addrs_of: BTreeMap<u32, Vec<String>> = BTreeMap::new();
        for (id, addr) in &addrs {
            addrs_of.entry(*id).or_default().push(addr.to_string());
        }
        // The simulated cluster: the node list and the configured nodes; by default those
        // of the node list and the configured members are up.
        let ids = nodelist.iter().map(|n| n.0).chain(cfg.nodes.iter().map(|n| n.0));
        let sim_nodes: Vec<(u32, Vec<String>)> =
            ids.map(|id| (id, addrs_of.get(&id).cloned().unwrap_or_default())).collect();
        let configured_up = cfg.nodes.iter().filter(|n| n.2 == NodeState::MEMBER).map(|n| n.0);
        let never_join: Vec<u32> =
            cfg.never_join.iter().copied().filter(|&id| id != quorum_cfg.nodeid).collect();
        let default_up: Vec<u32> =
            nodelist.iter().map(|n| n.0).chain(configured_up).filter(|id| !never_join.contains(id)).collect();
        let up = cfg.up.as_deref().unwrap_or(&default_up);
        if let Some(id) = up.iter().find(|id| never_join.contains(id)) {
            return Err(ServerStartError::Sim(control::never_joins(*id)));
        }
        let mut sim = control::Sim::new(
            quorum_cfg.nodeid,
            &sim_nodes,
            up,
            // A fresh start: no node has a `ringid_<nodeid>` file yet.
            0,
            cfg.control.as_deref(),
        )?;
        sim.never_join = never_join;
        // The local node's first ring: its own, or the one the up nodes formed.
        quorum_cfg.ring_id = sim.initial_view().1;
        let votes = nodelist.iter().copied().chain(cfg.nodes.iter().map(|n| (n.0, n.1))).collect();
        sim.set_quorum_model(quorum_cfg, votes, corowire::time::Instant::from_millis(0));
        let (mut cmap, mut quorum) = new_engines(quorum_cfg, &nodelist)?;
        for (key, value) in &cfg.initial {
            cmap.set_initial(key.as_bytes(), value.as_value())
                .map_err(|e| ServerStartError::Config(format!("key {key}: {e}")))?;
        }
        // The simulated cluster's initial view (by default every node of the nodelist is up).
        let (members, ring_id) = sim.initial_view();
        if members.len() > 1 {
            quorum
                .set_membership(members, ring_id, corowire::time::Instant::from_millis(0))
                .map_err(|e| ServerStartError::Config(format!("initial membership: {e}")))?;
        }
        for &(nodeid, votes, state) in &cfg.nodes {
            quorum
                .add_node(nodeid, votes, state)
                .map_err(|e| ServerStartError::Config(format!("node {nodeid}: {e}")))?;
        }
        for (key, value) in sim.initial_keys() {
            cmap.set_initial(key.as_bytes(), value.as_value())
                .map_err(|e| ServerStartError::Config(format!("key {key}: {e}")))?;
        }
        // votequorum publishes its runtime keys (corosync-quorumtool reads this_node_id),
        // except those `initial` sets.
        if cfg.votequorum_name.is_some() && cfg.has_quorum_provider() {
            for (key, value) in quorum.runtime_keys() {
                if !cfg.initial.iter().any(|(k, _)| k == key) {
                    cmap.set_initial(key.as_bytes(), value)
                        .map_err(|e| ServerStartError::Config(format!("key {key}: {e}")))?;
                }
            }
        }
        let quorum_lib = Box::new(QuorumLib::new(cfg.has_quorum_provider()));
        let mut cfg_engine = Box::new(Cfg::new(quorum_cfg.nodeid));
        for (nodeid, addr) in addrs {
            cfg_engine
                .add_addr(nodeid, addr)
                .map_err(|e| ServerStartError::Config(format!("address {addr} of node {nodeid}: {e}")))?;
        }
        let sync = sync::QuorumSync::new(&cmap);
        let votequorum = cfg.votequorum_name.is_some() && cfg.has_quorum_provider();
        let (lib_quorate, lib_syncs) = (quorum.is_quorate(), quorum.completed_syncs());
        let engines = Engines {
            cmap,
            quorum,
            quorum_lib,
            cfg: cfg_engine,
            votequorum,
            lib_quorate,
            lib_syncs,
            reconfigures: Vec::new(),
        };
        let mut listeners = Vec::new();
        for (service, name) in cfg.names().into_iter().enumerate() {
            if let Some(name) = name {
                listeners.push(listen(service, name)?);
            }
        }
        let page_size = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
            .ok()
            .flatten()
            .and_then(|p| usize::try_from(p).ok())
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096);
        Ok(Self {
            listeners,
            sessions: BTreeMap::new(),
            next_id: 1,
            engines,
            shm_dir: cfg.shm_dir,
            max_msg_size_floor: cfg.max_msg_size_floor,
            max_msg_size_limit: cfg.max_msg_size_limit,
            page_size,
            verbose: cfg.verbose,
            transport: cfg.transport,
            limits: cfg.limits,
            accept_backoff: None,
            setup_rate: SetupRate::default(),
            sim: Some(sim),
            sync,
            sync_unseen: false,
            shut_down: false,
            frame: Vec::new(),
            reply: Vec::new(),
            note: Vec::new(),
        })
    }

    /// Serves until an error stops the loop (a failing `poll`) or a libcfg client shuts the
    /// server down ([`Server::shut_down`]).
    ///
    /// # Errors
    /// [`ServerStartError::Poll`].
    pub fn run(&mut self) -> Result<(), ServerStartError> {
        self.run_until(&AtomicBool::new(false))
    }

    /// Serves until `stop` is set (checked at least every 50 ms) or a libcfg client shuts the
    /// server down ([`Server::shut_down`]). Open connections stay open; dropping the server
    /// closes them and removes their files.
    ///
    /// # Errors
    /// [`ServerStartError::Poll`].
    pub fn run_until(&mut self, stop: &AtomicBool) -> Result<(), ServerStartError> {
        while !stop.load(Ordering::Relaxed) && !self.shut_down {
            self.step(Some(STOP_POLL))?;
        }
        Ok(())
    }

    /// Whether a libcfg client shut the server down, as corosync stops on
    /// `corosync_cfg_try_shutdown` (`corosync-cfgtool -H`): the asker has its `CS_OK`, and
    /// the loops return; drop the server then, which closes every connection, as corosync's
    /// exit does. Only a client that could stop the server by itself (root, or the server's
    /// own user) may (`CS_ERR_ACCESS` for others).
    pub fn shut_down(&self) -> bool {
        self.shut_down
    }

    /// Serves until the process gets `SIGINT` or `SIGTERM`, or a libcfg client shuts the
    /// server down ([`Server::shut_down`]), and returns why. Dropping
    /// the server afterwards closes the connections and removes their files and any
    /// filesystem sockets. The two signals are blocked in the calling thread and read
    /// from a `signalfd`; call this from the main thread before other threads start, so that
    /// they inherit the blocked mask (a thread with the signals unblocked would be killed by
    /// them instead).
    ///
    /// # Errors
    /// [`ServerStartError::Signals`] if the signals cannot be blocked or read;
    /// [`ServerStartError::Poll`].
    pub fn run_until_signal(&mut self) -> Result<Stop, ServerStartError> {
        let mut mask = SigSet::empty();
        mask.add(Signal::SIGINT);
        mask.add(Signal::SIGTERM);
        mask.thread_block().map_err(ServerStartError::Signals)?;
        let signals = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(ServerStartError::Signals)?;
        loop {
            self.step(Some(STOP_POLL))?;
            if self.shut_down {
                return Ok(Stop::CfgShutdown);
            }
            if let Some(info) = signals.read_signal().map_err(ServerStartError::Signals)? {
                let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
                return Ok(Stop::Signal(Signal::try_from(signo).unwrap_or(Signal::SIGTERM)));
            }
        }
    }

    /// Number of open connections (both services, including those still in setup).
    pub fn connections(&self) -> usize {
        self.sessions.len()
    }

    /// The CMAP engine (e.g. to read keys, or set them with `set_initial`, between steps).
    pub fn cmap(&mut self) -> &mut Cmap {
        &mut self.engines.cmap
    }

    /// The votequorum engine.
    pub fn quorum(&mut self) -> &mut Quorum {
        &mut self.engines.quorum
    }

    /// A new membership of the local node's partition (what corosync's totem and sync layers
    /// hand votequorum; see [`Quorum::set_membership`]), applied at once: votequorum's
    /// trackers get their notifications, the `runtime.votequorum.*` keys follow with their
    /// track events, libquorum's trackers get the new view (when the sync waits for a quorum
    /// device, [`Quorum::sync_waiting`], only once it ends, as corosync sends it), and
    /// everything is handed to the connections before this returns.
    ///
    /// # Errors
    /// [`ServerError::OutboxFull`] if the notifications still do not fit after draining
    /// (nothing changed); [`ServerError::TooManyNodes`].
    pub fn set_membership(&mut self, members: &[u32], ring_id: RingId) -> Result<(), ServerError> {
        let Self { engines, sessions, note, sync, .. } = self;
        let now = sync.now();
        sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |e| {
            e.quorum.set_membership(members, ring_id, now)
        })
    }

    /// One round of the loop: waits at most `timeout` (`None`: until something happens) for
    /// a connection, a request or a hang-up, and handles all that is ready. A caller that
    /// drives the loop itself stops when [`Server::shut_down`] says so.
    ///
    /// # Errors
    /// [`ServerStartError::Poll`].
    pub fn step(&mut self, timeout: Option<Duration>) -> Result<(), ServerStartError> {
        if self.accept_backoff.is_some_and(|until| Instant::now() >= until) {
            self.accept_backoff = None;
        }
        let backlog = self.sessions.values().any(Session::has_backlog) || self.accept_backoff.is_some();
        let wait = match (backlog, timeout) {
            (true, t) => Some(t.map_or(RETRY, |t| t.min(RETRY))),
            (false, t) => t,
        };
        let now = self.sync.now();
        let cfg_due = self.engines.cfg.poll_timeout().map(|at| at.saturating_duration_since(now));
        let wait = [wait, self.sync.until_timeout(&self.engines.quorum), cfg_due].into_iter().flatten().min();
        let held = self.engines.quorum.sync_waiting();
        let (listening, ready, control) = self.wait(wait)?;
        // A quorum device's poll arms its timer from this instant.
        self.engines.quorum.set_clock(self.sync.now());
        if self.engines.quorum.poll_timeout().is_some_and(|at| at <= self.sync.now()) {
            let Self { engines, sessions, note, sync, .. } = self;
            let now = sync.now();
            // A full outbox leaves the timer due: tried again on the next round.
            let _ = sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |e| {
                e.quorum.handle_timeout(now)
            });
        }
        let now = self.sync.now();
        if self.engines.cfg.poll_timeout().is_some_and(|at| at <= now) {
            // The outbox is emptied first, so it has room for the timeout's notifications.
            let Self { engines, sessions, note, .. } = self;
            drain(engines, CFG_SERVICE, sessions, note, self.limits.queued_event_bytes);
            // Cannot fail: the outbox, just emptied, holds a notification for every connection.
            let _ = self.engines.cfg.handle_timeout(now);
            self.after_cfg();
        }
        for i in listening {
            self.accept(i);
        }
        self.control_ready(&control);
        for (id, revents, data) in ready {
            self.on_ready(id, revents, data);
        }
        let ids: Vec<u32> = self.sessions.keys().copied().collect();
        if held && !self.engines.quorum.sync_waiting() {
            // The sync hold ended: the requests it kept waiting.
            for &id in &ids {
                self.serve(id);
            }
        }
        for id in ids {
            let Some(s) = self.sessions.get_mut(&id) else { continue };
            if s.has_backlog() && s.flush() {
                self.serve(id);
            }
            if let Some(s) = self.sessions.get_mut(&id) {
                if matches!(&s.phase, Phase::Setup { since, .. } if since.elapsed() > SETUP_TIMEOUT) {
                    s.kill("no setup request in time");
                }
            }
        }
        self.reap();
        Ok(())
    }

    /// Polls the listeners and connections: the listeners that can accept, and the
    /// connections with their events.
    fn wait(&self, timeout: Option<Duration>) -> Result<Readiness, ServerStartError> {
        let resting = self.accept_backoff.is_some_and(|until| Instant::now() < until);
        let accept = if resting { PollFlags::empty() } else { PollFlags::POLLIN };
        let mut fds: Vec<PollFd<'_>> =
            self.listeners.iter().map(|l| PollFd::new(l.socket.as_fd(), accept)).collect();
        // (connection, index of its setup socket's entry, index of its datagram socket's entry)
        let mut ids = Vec::with_capacity(self.sessions.len());
        for (&id, s) in &self.sessions {
            let mut events = PollFlags::empty();
            let data = s.channels().and_then(Channels::request_socket);
            let can_serve = s.can_serve() && !self.holds(s.service);
            if matches!(s.phase, Phase::Setup { .. }) || can_serve || data.is_some() {
                // On sockets the setup socket is read only to see end of file.
                events |= PollFlags::POLLIN;
            }
            if s.wants_write() {
                events |= PollFlags::POLLOUT;
            }
            fds.push(PollFd::new(s.sock.as_fd(), events));
            let setup_at = fds.len() - 1;
            let data_at = data.map(|fd| {
                let wanted = if can_serve { PollFlags::POLLIN } else { PollFlags::empty() };
                fds.push(PollFd::new(fd, wanted));
                fds.len() - 1
            });
            ids.push((id, setup_at, data_at));
        }
        let control_at = fds.len();
        fds.extend(self.sim.iter().flat_map(|s| s.poll_fds(resting)).map(|(fd, ev)| PollFd::new(fd, ev)));
        let timeout =
            timeout.map_or(PollTimeout::NONE, |t| PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX));
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(ServerStartError::Poll(e)),
        }
        let revents = |fd: &PollFd<'_>| fd.revents().unwrap_or(PollFlags::empty());
        let n = self.listeners.len();
        let listening = (0..n).filter(|&i| !revents(&fds[i]).is_empty()).collect();
        let ready = ids
            .into_iter()
            .map(|(id, setup, data)| {
                (id, revents(&fds[setup]), data.map_or(PollFlags::empty(), |i| revents(&fds[i])))
            })
            .filter(|(_, setup, data)| !setup.is_empty() || !data.is_empty());
        let control = fds[control_at..].iter().map(revents).collect();
        Ok((listening, ready.collect(), control))
    }

    /// Whether requests to `service` wait: corosync serves none but votequorum's while a
    /// membership change's sync waits for the quorum device to poll
    /// (`QuorumEngine::sync_waiting`; `cs_ipcs_check_for_flow_control` in `exec/ipc_glue.c`).
    fn holds(&self, service: usize) -> bool {
        service != VOTEQUORUM_SERVICE && self.engines.quorum.sync_waiting()
    }

    fn log(&self, id: u32, what: fmt::Arguments<'_>) {
        if self.verbose {
            let s = self.sessions.get(&id);
            let service = s.map_or("?", |s| self.listener_name(s.service));
            let pid = s.and_then(|s| s.cred).map_or(0, |c| c.pid);
            eprintln!("corowire serve: connection {id} ({service}, pid {pid}): {what}");
        }
    }

    fn listener_name(&self, service: usize) -> &str {
        self.listeners.iter().find(|l| l.service == service).map_or("?", |l| l.name.as_str())
    }

    /// Accepts all pending connections of listener `i`.
    fn accept(&mut self, i: usize) {
        loop {
            let Some(listener) = self.listeners.get(i) else { return };
            let fd = match accept_with_passcred(&listener.socket) {
                Ok(fd) => fd,
                Err(Errno::EAGAIN) => return,
                Err(Errno::ECONNABORTED | Errno::EINTR) => continue,
                Err(e) => {
                    if self.verbose {
                        eprintln!("corowire serve: accept on '{}' failed: {e}", listener.name);
                    }
                    self.accept_backoff = Some(Instant::now() + ACCEPT_BACKOFF);
                    return;
                }
            };
            let Ok(peer) = peer_cred(&fd) else { continue };
            if !self.admit_setup(peer.uid) {
                if self.verbose {
                    eprintln!(
                        "corowire serve: connection of uid {} (pid {}) on '{}' closed: too many in setup",
                        peer.uid, peer.pid, listener.name
                    );
                }
                continue;
            }
            let sock = UnixStream::from(fd);
            if sock.set_nonblocking(true).is_err() {
                continue;
            }
            // Ids are not reused while their connection is open, even after wrapping.
            let mut id = self.next_id;
            while id == 0 || self.sessions.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            self.next_id = id.wrapping_add(1);
            self.sessions.insert(id, Session::new(listener.service, sock, peer.uid));
        }
    }

    /// Handles what `poll` saw on a connection's setup socket (`revents`) and, on the socket
    /// transport, on its request datagram socket (`data`).
    fn on_ready(&mut self, id: u32, revents: PollFlags, data: PollFlags) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        if matches!(s.phase, Phase::Setup { .. }) {
            self.setup_read(id);
            return;
        }
        if revents.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
            s.kill("hang-up");
            return;
        }
        if revents.contains(PollFlags::POLLOUT) {
            s.send_doorbells();
        }
        if s.is_socket() {
            if revents.contains(PollFlags::POLLIN) {
                s.check_eof();
            }
            if data.contains(PollFlags::POLLIN) {
                self.serve(id);
            }
        } else if revents.contains(PollFlags::POLLIN) {
            self.serve(id);
        }
    }

    /// Reads (part of) the setup request; when complete, sets the connection up.
    fn setup_read(&mut self, id: u32) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        let Phase::Setup { buf, filled, cred, .. } = &mut s.phase else { return };
        match recv_with_creds(&s.sock, &mut buf[*filled..]) {
            Ok((0, _)) => return s.kill("closed during setup"),
            Ok((n, c)) => {
                *filled += n;
                *cred = cred.or(c);
            }
            Err(Errno::EAGAIN) => return,
            Err(e) => return s.kill(format!("reading the setup request: {e}")),
        }
        if *filled < buf.len() {
            return;
        }
        let (request, peer) = (ConnectRequest::decode(&buf[..]), *cred);
        let Ok(request) = request else { return s.kill("malformed setup request") };
        let Some(peer) = peer else { return s.kill("no credentials with the setup request") };
        s.cred = Some(peer);
        if let Err(errno) = self.establish(id, request, peer) {
            self.refuse(id, errno);
        }
    }

    /// Authorises the client, registers it with the engine, creates the rings and sends the
    /// setup response.
    fn establish(&mut self, id: u32, request: ConnectRequest, peer: PeerCred) -> Result<(), Errno> {
        if !self.authorised(peer) {
            return Err(Errno::EACCES);
        }
        let max = grant_max_msg_size(request.max_msg_size, self.max_msg_size_floor, self.max_msg_size_limit)
            .map_err(|e| Errno::from_raw(e.errno))?;
        let Some(s) = self.sessions.get(&id) else { return Err(Errno::ENOTCONN) };
        let service = s.service;
        self.admit(service, peer)?;
        let server_fd = s.sock.as_raw_fd();
        let shm_bytes = match self.transport {
            IpcType::Shm => 3 * (HEADER_FILE_LEN + data_bytes(max, self.page_size)),
            IpcType::Socket => 0,
        };
        self.admit_shm(peer.uid, shm_bytes)?;
        let (rate, burst) = (self.limits.setup_rate_per_uid, self.limits.setup_burst_per_uid);
        if peer.uid != 0 && !self.setup_rate.take(peer.uid, shm_bytes, rate, burst, Instant::now()) {
            return Err(Errno::EAGAIN);
        }
        let dir = ShmDir::create(&self.shm_dir, self.listener_name(service), server_fd, peer)?;
        let channels = match self.transport {
            IpcType::Shm => Channels::Shm(Box::new(Rings::create(dir, max, self.page_size)?)),
            IpcType::Socket => Channels::Socket(Sockets::create(dir, max)?),
        };
        let connected = self.engines.all().get_mut(service).map(|e| e.connect(ConnId(id)));
        match connected.unwrap_or(Err(ServerError::UnknownConnection(ConnId(id)))) {
            Ok(()) => {}
            Err(ServerError::TooManyConnections) => return Err(Errno::EBUSY),
            Err(_) => return Err(Errno::EINVAL),
        }
        if service == CFG_SERVICE {
            // Stopping the server is for those who could stop it by themselves (a signal):
            // root and the server's own user, not every user `authorised` lets in.
            let may = peer.uid == 0 || peer.uid == nix::unistd::geteuid().as_raw();
            // Cannot fail: the connection was just registered.
            let _ = self.engines.cfg.set_may_shut_down(ConnId(id), may);
        }
        let Some(s) = self.sessions.get_mut(&id) else { return Err(Errno::ENOTCONN) };
        s.registered = true;
        s.max_msg_size = max as usize;
        s.shm_bytes = shm_bytes;
        let bases;
        let (connection_type, paths): (_, [&Path; 3]) = match &channels {
            Channels::Shm(rings) => {
                bases = rings.bases();
                (ConnectionType::Shm, bases.each_ref().map(PathBuf::as_path))
            }
            // libqb leaves the event path empty.
            Channels::Socket(sockets) => {
                let (control, base) = sockets.names();
                (ConnectionType::Socket, [control, base, Path::new("")])
            }
        };
        let [request_path, response_path, event_path] = paths.map(|p| p.as_os_str().as_bytes());
        let response = ConnectResponse {
            connection_type,
            max_msg_size: max,
            connection: u64::from(id),
            request: request_path,
            response: response_path,
            event: event_path,
        };
        let mut out = vec![0u8; CONNECTION_RESPONSE_LEN];
        let n = response.encode(&mut out).map_err(|_| Errno::ENAMETOOLONG)?;
        let dir = paths[0].parent().map(Path::to_path_buf).unwrap_or_default();
        s.phase = Phase::Ready(channels);
        if let Err(e) = send_all(&s.sock, &out[..n]) {
            s.kill(format!("sending the setup response: {e}"));
            return Ok(());
        }
        self.log(
            id,
            format_args!("connected, max message size {max}, {connection_type:?} files in {}", dir.display()),
        );
        Ok(())
    }

    /// Whether the client `peer` may open one more connection to `service` ([`Limits`]):
    /// counts the established connections of that service by uid and by pid.
    ///
    /// # Errors
    /// `EBUSY` when a limit is reached.
    fn admit(&self, service: usize, peer: PeerCred) -> Result<(), Errno> {
        if peer.uid == 0 {
            return Ok(());
        }
        let held = self.sessions.values().filter(|s| s.registered && s.service == service);
        let (mut others, mut same_uid, mut same_pid) = (0, 0, 0);
        for cred in held.filter_map(|s| s.cred) {
            others += usize::from(cred.uid != 0);
            same_uid += usize::from(cred.uid == peer.uid);
            same_pid += usize::from(cred.pid == peer.pid);
        }
        let limits = self.limits;
        if same_uid >= limits.per_uid
            || same_pid >= limits.per_pid
            || others >= MAX_CONNECTIONS.saturating_sub(limits.reserved_for_root)
        {
            return Err(Errno::EBUSY);
        }
        Ok(())
    }

    /// Whether a connection of user `uid` just accepted may wait for its setup request
    /// ([`Limits::setup_per_uid`], [`Limits::setup_total`]; root always may).
    fn admit_setup(&self, uid: libc::uid_t) -> bool {
        if uid == 0 {
            return true;
        }
        let waiting = self.sessions.values().filter_map(Session::setup_uid).filter(|&u| u != 0);
        let (mut total, mut same_uid) = (0, 0);
        for u in waiting {
            total += 1;
            same_uid += usize::from(u == uid);
        }
        same_uid < self.limits.setup_per_uid && total < self.limits.setup_total
    }

    /// Whether user `uid` may have `bytes` more of ring files ([`Limits::shm_per_uid`],
    /// [`Limits::shm_total`]; root always may).
    ///
    /// # Errors
    /// `ENOMEM` when a bound would be passed.
    fn admit_shm(&self, uid: libc::uid_t, bytes: usize) -> Result<(), Errno> {
        if uid == 0 {
            return Ok(());
        }
        let held = self.sessions.values().filter_map(|s| Some((s.cred?.uid, s.shm_bytes)));
        let (mut total, mut same_uid) = (bytes, bytes);
        for (u, b) in held.filter(|&(u, _)| u != 0) {
            total += b;
            same_uid += if u == uid { b } else { 0 };
        }
        if same_uid > self.limits.shm_per_uid || total > self.limits.shm_total {
            return Err(Errno::ENOMEM);
        }
        Ok(())
    }

    /// corosync's check (`exec/ipc_glue.c`): root user or group, or a `uidgid` key.
    fn authorised(&self, peer: PeerCred) -> bool {
        if peer.uid == 0 || peer.gid == 0 {
            return true;
        }
        let keys = [
            format!("uidgid.uid.{}", peer.uid),
            format!("uidgid.config.uid.{}", peer.uid),
            format!("uidgid.gid.{}", peer.gid),
            format!("uidgid.config.gid.{}", peer.gid),
        ];
        keys.iter().any(|k| self.engines.cmap.get(k.as_bytes()) == Some(Value::UInt8(1)))
    }

    /// Sends a setup refusal (`-errno`) and closes the connection.
    fn refuse(&mut self, id: u32, errno: Errno) {
        let Some(s) = self.sessions.get_mut(&id) else { return };
        let mut out = vec![0u8; CONNECTION_RESPONSE_LEN];
        if let Ok(n) = ConnectResponse::encode_error(SetupError { errno: errno as i32 }, &mut out) {
            // The connection is closed either way.
            let _ = send_all(&s.sock, &out[..n]);
        }
        s.kill(format!("setup refused: {errno}"));
    }

    /// Serves up to [`BATCH`] requests of connection `id`: one per doorbell byte.
    fn serve(&mut self, id: u32) {
        for _ in 0..BATCH {
            let held = self.sessions.get(&id).is_some_and(|s| self.holds(s.service));
            let Some(s) = self.sessions.get_mut(&id) else { return };
            if !s.can_serve() || held {
                return;
            }
            match s.take_request(&mut self.frame) {
                Ok(Take::Request) => {}
                Ok(Take::Empty) => return,
                Ok(Take::StrayDoorbell) => {
                    // libqb consumes such a byte with a warning.
                    self.log(id, format_args!("doorbell byte without a request"));
                    continue;
                }
                Ok(Take::Foreign(sender)) => {
                    self.log(id, format_args!("request datagram from another process ignored: {sender:?}"));
                    continue;
                }
                Err(why) => return s.kill(why),
            }
            match corowire::codec::header_fields(&self.frame) {
                Some((_, size)) if size > 0 && size as usize <= s.max_msg_size => {}
                Some((_, size)) => return s.kill(format!("request with hdr.size {size}")),
                None => {
                    return s.kill(format!("request of {} bytes, shorter than its header", self.frame.len()))
                }
            }
            let service = s.service;
            let reply_cap = s.max_msg_size.max(MIN_REPLY_LEN);
            self.handle(id, service, reply_cap);
        }
    }

    /// Hands `self.frame` to the engine, delivers the notifications, then the reply.
    fn handle(&mut self, id: u32, service: usize, reply_cap: usize) {
        let Self { engines, sessions, frame, reply, note, .. } = self;
        if reply.len() < reply_cap {
            reply.resize(reply_cap, 0);
        }
        if service == CFG_SERVICE {
            // corosync reads both when a TRYSHUTDOWN arrives.
            engines.cfg.set_clock(self.sync.now());
            engines.cfg.set_shutdown_timeout(shutdown_timeout(&engines.cmap));
        }
        let mut retried = false;
        let outcome = loop {
            match engines.handle_request(service, ConnId(id), frame, &mut reply[..reply_cap]) {
                // Nothing changed: drain (votequorum's reconfigure messages too) and retry once.
                Err(ServerError::OutboxFull) if !retried => {
                    retried = true;
                    drain(engines, service, sessions, note, self.limits.queued_event_bytes);
                }
                other => break other,
            }
        };
        drain(engines, service, sessions, note, self.limits.queued_event_bytes);
        // Only a write can change the configuration keys: reads (a C tool iterating a large
        // node list once per node) must not re-read them each time.
        let cmap_changed = service == CMAP_SERVICE
            && (self.sync_unseen
                || corowire::cmap::Request::decode(frame).is_ok_and(|r| {
                    use corowire::cmap::RequestKind as K;
                    matches!(r.kind(), K::Set | K::Delete | K::AdjustInt)
                }));
        // A full outbox leaves the change unseen until the next CMAP request.
        let synced = sync_quorum(engines, sessions, note, self.limits.queued_event_bytes, |engines| {
            if cmap_changed {
                self.sync.after_cmap_change(&mut engines.cmap, &mut engines.quorum)?;
            }
            Ok(())
        });
        self.sync_unseen = cmap_changed && synced.is_err();
        if let Some(s) = sessions.get_mut(&id) {
            match outcome {
                Ok(n) => s.send_reply(&reply[..n]),
                // A TRYSHUTDOWN waiting for the trackers: answered by `after_cfg`.
                Err(ServerError::Deferred) => {}
                Err(e) => s.kill(format!("engine: {e}")),
            }
        }
        for buf in [frame, reply, note] {
            if buf.capacity() > SCRATCH_KEEP {
                buf.truncate(SCRATCH_KEEP);
                buf.shrink_to(SCRATCH_KEEP);
            }
        }
        self.deliver_reconfigures();
        if service == CFG_SERVICE {
            self.after_cfg();
        }
    }

    /// Delivers what the cfg engine decided since it was last asked: its notifications, the
    /// reply of a TRYSHUTDOWN that waited, and a shutdown ([`Server::shut_down`]).
    fn after_cfg(&mut self) {
        let Self { engines, sessions, note, .. } = self;
        drain(engines, CFG_SERVICE, sessions, note, self.limits.queued_event_bytes);
        let mut reply = [0u8; MIN_REPLY_LEN];
        // Cannot fail: a TRYSHUTDOWN reply is 24 bytes.
        while let Ok(Some((conn, n))) = self.engines.cfg.poll_reply(&mut reply) {
            if let Some(s) = self.sessions.get_mut(&conn.0) {
                s.send_reply(&reply[..n]);
            }
        }
        while let Some(event) = self.engines.cfg.poll_event() {
            match event {
                CfgEvent::ShutDown => self.shut_down = true,
                other => eprintln!("corowire serve: cfg event {other:?} ignored"),
            }
        }
    }

    /// Closes dead connections: engine, rings, files, socket.
    fn reap(&mut self) {
        for s in self.sessions.values_mut().filter(|s| s.truncated()) {
            s.kill("a file of the connection was truncated under the server (SIGBUS survived)");
        }
        let dead: Vec<u32> =
            self.sessions.iter().filter(|(_, s)| s.dead.is_some()).map(|(&id, _)| id).collect();
        for id in dead {
            if let Some(s) = self.sessions.get(&id) {
                let why = s.dead.clone().unwrap_or_default();
                if s.oversized_events > 0 {
                    let n = s.oversized_events;
                    self.log(id, format_args!("{n} events larger than the event ring were not delivered"));
                }
                self.log(id, format_args!("closed: {why}"));
            }
            if let Some(s) = self.sessions.remove(&id) {
                if let Some(engine) = self.engines.all().get_mut(s.service).filter(|_| s.registered) {
                    engine.disconnect(ConnId(id));
                }
                s.shutdown();
                // Dropping the session marks the rings closed and removes their files.
            }
        }
        // A tracker's leaving may decide a waiting shutdown.
        self.after_cfg();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for s in self.sessions.values() {
            s.shutdown();
        }
    }
}

/// The link addresses of the node list in `keys`: for each node `nodelist.node.<i>.nodeid`
/// (`u32`), its `nodelist.node.<i>.ring<N>_addr` keys, by node and link. An address that is
/// not an IP address is a host name, resolved as corosync's `totemip_parse` does
/// ([`resolve`]); one that does not resolve is skipped.
///
/// Linear in the keys (with a logarithmic look-up): a huge node list costs no more than
/// reading it.
fn node_addrs(keys: &[(String, OwnedValue)]) -> Vec<(u32, IpAddr)> {
    // The last value of each key wins, as in the store.
    let by_name: BTreeMap<&str, &OwnedValue> = keys.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let text = |key: &str| match by_name.get(key)?.as_value() {
        Value::String(bytes) => core::str::from_utf8(bytes).ok().map(str::to_owned),
        _ => None,
    };
    let ip_version = text("totem.ip_version");
    let addr = |key: &str| {
        let text = text(key)?;
        text.parse::<IpAddr>().ok().or_else(|| resolve(&text, ip_version.as_deref()))
    };
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for (key, value) in keys {
        let Some(index) = key.strip_prefix("nodelist.node.").and_then(|k| k.strip_suffix(".nodeid")) else {
            continue;
        };
        let Value::UInt32(nodeid) = value.as_value() else { continue };
        if !seen.insert(nodeid) {
            continue;
        }
        let links = (0..MAX_LINKS).filter_map(|link| addr(&format!("nodelist.node.{index}.ring{link}_addr")));
        out.extend(links.map(|a| (nodeid, a)));
    }
    out
}

/// The address of host `name` as corosync 3.1.7 picks it (`totemip_parse` with
/// `totem.ip_version`): `ipv4` or `ipv6` only that family; `ipv4-6` the first IPv4 address,
/// else the first IPv6 one; `ipv6-4` (knet's default, also for an unknown value) IPv6 first.
/// `None` when the name does not resolve (the system resolver, e.g. `/etc/hosts`).
fn resolve(name: &str, ip_version: Option<&str>) -> Option<IpAddr> {
    use std::net::ToSocketAddrs;
    let found: Vec<IpAddr> = (name, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    let first = |v6: bool| found.iter().copied().find(|a| a.is_ipv6() == v6);
    match ip_version {
        Some("ipv4") => first(false),
        Some("ipv6") => first(true),
        Some("ipv4-6") => first(false).or_else(|| first(true)),
        _ => first(true).or_else(|| first(false)),
    }
}

/// The index of CMAP in [`Engines::all`].
const CMAP_SERVICE: usize = 0;
/// The index of votequorum's engine in [`Engines::all`].
const VOTEQUORUM_SERVICE: usize = 1;
/// The index of libquorum's engine in [`Engines::all`].
const QUORUM_LIB_SERVICE: usize = 2;
/// The index of libcfg's engine in [`Engines::all`].
const CFG_SERVICE: usize = 3;

/// corosync's `cfg.shutdown_timeout` in `cmap` (milliseconds), read as corosync reads it
/// (`icmap_get_uint32`): only a `u32` value counts, else [`DEFAULT_SHUTDOWN_TIMEOUT_MS`]. A
/// `cfg { shutdown_timeout: N }` of corosync.conf is stored as a string, so it never counts.
fn shutdown_timeout(cmap: &Cmap) -> u32 {
    match cmap.get(b"cfg.shutdown_timeout") {
        Some(Value::UInt32(ms)) => ms,
        _ => DEFAULT_SHUTDOWN_TIMEOUT_MS,
    }
}

/// Runs `step` (a change to the engines), mirrors votequorum's runtime keys into CMAP and
/// delivers every engine's notifications; a full outbox is drained and the whole retried
/// once. A step that still fails is given up and its error returned (the engines changed
/// nothing).
fn sync_quorum(
    engines: &mut Engines,
    sessions: &mut BTreeMap<u32, Session>,
    buf: &mut Vec<u8>,
    bound: usize,
    mut step: impl FnMut(&mut Engines) -> Result<(), ServerError>,
) -> Result<(), ServerError> {
    let mut done = Ok(());
    for _ in 0..2 {
        done = step(engines).and_then(|()| {
            if engines.votequorum {
                sync::mirror(&mut engines.cmap, &engines.quorum)?;
                if engines.quorum_lib_owed() && engines.notify_quorum_lib() == Err(ServerError::OutboxFull) {
                    // Drained and tried once more (re-running `step` could apply a command
                    // twice); still full, it waits for the next sync (`lib_quorate` and
                    // `lib_syncs` unchanged).
                    drain(engines, QUORUM_LIB_SERVICE, sessions, buf, bound);
                    let _ = engines.notify_quorum_lib();
                }
            }
            Ok(())
        });
        for service in 0..SERVICES {
            drain(engines, service, sessions, buf, bound);
        }
        if done.is_ok() {
            break;
        }
    }
    done
}

/// Moves every queued notification of engine `service` to the connection it is for (which
/// writes what fits into its event ring), keeping all queues together within `bound` bytes
/// ([`Limits::queued_event_bytes`]); for votequorum, also its reconfigure messages into
/// [`Engines::reconfigures`] (its other queue that can refuse a change with `OutboxFull`).
fn drain(
    engines: &mut Engines,
    service: usize,
    sessions: &mut BTreeMap<u32, Session>,
    buf: &mut Vec<u8>,
    bound: usize,
) {
    if service == VOTEQUORUM_SERVICE {
        engines.take_reconfigures();
    }
    let mut queued: usize = sessions.values().map(Session::queued_event_bytes).sum();
    let mut all = engines.all();
    let Some(engine) = all.get_mut(service) else { return };
    while let Some(len) = engine.next_notification_len() {
        if buf.len() < len {
            buf.resize(len, 0);
        }
        match engine.poll_notification(buf) {
            Ok(Some((conn, n))) => {
                if let Some(s) = sessions.get_mut(&conn.0) {
                    let before = s.queued_event_bytes();
                    s.push_event(&buf[..n], bound.saturating_sub(queued));
                    queued = queued - before + s.queued_event_bytes();
                }
            }
            // Cannot happen: the buffer was sized for it. Stop rather than spin.
            Ok(None) | Err(_) => return,
        }
    }
}

fn listen(service: usize, name: &str) -> Result<Listener, ServerStartError> {
    let error = |errno| ServerStartError::Listen { name: name.to_owned(), errno };
    let (socket, path) = if Path::new(FORCE_FILESYSTEM_SOCKETS).exists() {
        let path = Path::new(SOCKET_DIR).join(OsStr::new(name));
        // libqb removes a stale socket file before binding.
        let _ = std::fs::remove_file(&path);
        let socket = listen_path(&path).map_err(error)?;
        // As libqb: anyone may connect; authorisation happens at setup.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| error(errno_of(e)))?;
        (socket, Some(path))
    } else {
        (listen_abstract(name.as_bytes()).map_err(error)?, None)
    };
    socket.set_nonblocking(true).map_err(|e| error(errno_of(e)))?;
    Ok(Listener { service, name: name.to_owned(), socket, path })
}

/// Token buckets of ring bytes, one per user that set up recently ([`Limits::setup_rate_per_uid`]).
#[derive(Debug, Default)]
struct SetupRate {
    buckets: BTreeMap<libc::uid_t, Bucket>,
}

/// A user's bucket: its level (negative: in debt) when last taken from.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    bytes: i128,
    at: Instant,
}

impl Bucket {
    /// The level at `now`: refilled at `rate` bytes per second since it was taken from, up to
    /// `burst`.
    fn level(self, rate: usize, burst: usize, now: Instant) -> i128 {
        let refill =
            now.saturating_duration_since(self.at).as_nanos().saturating_mul(rate as u128) / 1_000_000_000;
        self.bytes.saturating_add(i128::try_from(refill).unwrap_or(i128::MAX)).min(burst as i128)
    }
}

impl SetupRate {
    /// Takes `bytes` from `uid`'s bucket at `now` (`rate` bytes per second, at most `burst`):
    /// `true` if it held them, or was full (a setup larger than the burst then leaves it in
    /// debt); `false`, taking nothing, otherwise. Buckets full again are forgotten, so the
    /// map holds only users that set up within the last `burst / rate` seconds or so.
    fn take(&mut self, uid: libc::uid_t, bytes: usize, rate: usize, burst: usize, now: Instant) -> bool {
        let full = burst as i128;
        self.buckets.retain(|_, b| b.level(rate, burst, now) < full);
        let have = self.buckets.get(&uid).map_or(full, |b| b.level(rate, burst, now));
        let bytes = bytes as i128;
        if have < bytes.min(full) {
            return false;
        }
        self.buckets.insert(uid, Bucket { bytes: have - bytes, at: now });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    fn key(k: &str, v: &str) -> (String, OwnedValue) {
        (k.into(), OwnedValue::String(v.into()))
    }

    #[test]
    fn node_addresses_come_from_the_node_list_with_host_names_resolved() {
        let keys = vec![
            ("nodelist.node.0.nodeid".into(), OwnedValue::UInt32(1)),
            key("nodelist.node.0.ring0_addr", "localhost"),
            key("nodelist.node.0.ring1_addr", "10.0.0.1"),
            ("nodelist.node.1.nodeid".into(), OwnedValue::UInt32(2)),
            key("nodelist.node.1.ring0_addr", "no-such-host.invalid"),
            key("totem.ip_version", "ipv4"),
        ];
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(node_addrs(&keys), [(1, local), (1, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))]);
        assert_eq!(resolve("localhost", Some("ipv4-6")), Some(local));
        assert!(resolve("localhost", None).is_some_and(|a| a.is_loopback()));
        assert_eq!(resolve("no-such-host.invalid", None), None);
    }

    const MIB: usize = 1 << 20;

    /// A node list of `n` nodes (ids 1..=n, one address each) as keys.
    fn node_list(n: u32) -> Vec<(String, OwnedValue)> {
        (0..n)
            .flat_map(|i| {
                let addr = Ipv4Addr::from(0x0a00_0000 + i + 1).to_string();
                [
                    (format!("nodelist.node.{i}.nodeid"), OwnedValue::UInt32(i + 1)),
                    key(&format!("nodelist.node.{i}.ring0_addr"), &addr),
                ]
            })
            .collect()
    }

    #[test]
    fn node_lists_past_corosyncs_limit_are_refused_before_their_addresses_are_read() {
        // 10,000 nodes took 30 s to refuse when addresses were matched pairwise; each step
        // is now a map look-up, and bind refuses on the count alone.
        let big = node_list(10_000);
        assert_eq!(node_addrs(&big).len(), 10_000);
        let (_, nodes) = sync::quorum_setup(sync::owned_keys(&big), QuorumConfig::default());
        assert_eq!((nodes.len(), nodes[9_999]), (10_000, (10_000, 1)));
        let tag = std::process::id();
        let cfg = |n: u32| ServerConfig {
            cmap_name: format!("corowire-limit-{tag}-{n}-cmap"),
            votequorum_name: Some(format!("corowire-limit-{tag}-{n}-vq")),
            quorum_name: None,
            cfg_name: None,
            initial: node_list(n)
                .into_iter()
                .chain([key("quorum.provider", "corosync_votequorum")])
                .collect(),
            ..ServerConfig::default()
        };
        for n in [MAX_MODEL_NODES as u32 + 1, 10_000] {
            match Server::bind(cfg(n)) {
                Err(ServerStartError::Config(why)) => assert_eq!(why, too_many_nodes(n as usize)),
                other => panic!("{n} nodes: {:?}", other.map(|_| ())),
            }
        }
        let server = Server::bind(cfg(MAX_MODEL_NODES as u32)).expect("384 nodes, corosync's limit");
        // Every node up: quorum 384 / 2 + 1, as corosync-quorumtool shows.
        assert_eq!((server.engines.quorum.quorum(), server.engines.quorum.is_quorate()), (193, true));
    }

    /// A request refused for votequorum's full reconfigure queue is retried after the drain
    /// takes the messages, not lost with its connection.
    #[test]
    fn a_request_meeting_a_full_reconfigure_queue_is_drained_and_retried() {
        let tag = std::process::id();
        let mut server = Server::bind(ServerConfig {
            cmap_name: format!("corowire-reconf-{tag}-cmap"),
            votequorum_name: Some(format!("corowire-reconf-{tag}-vq")),
            quorum_name: None,
            cfg_name: None,
            initial: node_list(3)
                .into_iter()
                .chain([key("quorum.provider", "corosync_votequorum")])
                .collect(),
            ..ServerConfig::default()
        })
        .unwrap();
        server.set_membership(&[1, 2, 3], RingId { nodeid: 1, seq: 8 }).unwrap();
        // Changes made through the engine and not delivered fill its queue.
        for _ in 0..4 {
            server.engines.quorum.cancel_wait_for_all().unwrap();
        }
        assert_eq!(server.engines.quorum.cancel_wait_for_all(), Err(ServerError::OutboxFull));
        let conn = 7;
        server.engines.quorum.connect(ConnId(conn)).unwrap();
        server.frame = vec![0; 64];
        let request = corowire::votequorum::Request::SetExpected { expected_votes: 4 };
        let n = request.encode(&mut server.frame).unwrap();
        server.frame.truncate(n);
        server.handle(conn, VOTEQUORUM_SERVICE, MIN_REPLY_LEN);
        assert_eq!(server.engines.quorum.expected_votes(), 4);
        assert!(server.engines.reconfigures.is_empty(), "delivered (no simulation: nobody else)");
        assert_eq!(server.engines.quorum.poll_reconfigure(), None);
    }

    #[test]
    fn setup_rate_bucket_refills_at_its_rate_per_uid() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut rate = SetupRate::default();
        let take = |r: &mut SetupRate, uid, mib: usize, now| r.take(uid, mib * MIB, 64 * MIB, 256 * MIB, now);
        // A full burst, then nothing left.
        for _ in 0..4 {
            assert!(take(&mut rate, 1000, 64, at(0)));
        }
        assert!(!take(&mut rate, 1000, 1, at(0)));
        // Another user has its own bucket.
        assert!(take(&mut rate, 1001, 200, at(0)));
        // Refilled at 64 MiB/s: half a second gives 32 MiB, not 33.
        assert!(!take(&mut rate, 1000, 33, at(500)));
        assert!(take(&mut rate, 1000, 32, at(500)));
        assert!(!take(&mut rate, 1000, 1, at(500)));
        // Never above the burst, however long the pause; full buckets are forgotten.
        assert!(take(&mut rate, 1000, 256, at(3_600_000)));
        assert!(!take(&mut rate, 1000, 1, at(3_600_000)));
        assert_eq!(rate.buckets.keys().collect::<Vec<_>>(), [&1000], "1001's full bucket is dropped");
        // A setup larger than the burst passes from a full bucket and leaves it in debt.
        let mut rate = SetupRate::default();
        assert!(take(&mut rate, 7, 400, at(0)));
        assert!(!take(&mut rate, 7, 1, at(2_000)), "144 MiB of debt, 128 MiB refilled");
        assert!(take(&mut rate, 7, 1, at(2_300)));
    }
}
