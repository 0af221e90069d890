//! The CMAP server engine: corosync 3.1.7's `exec/cmap.c`, `exec/icmap.c` and the statistics
//! map of `exec/stats.c`, sans IO.
//!
//! ```
//! use corowire::cmap::{Key, Reply, Request, Response, Value};
//! use corowire::server::cmap::CmapEngine;
//! use corowire::server::store::FixedStore;
//! use corowire::server::ConnId;
//!
//! let mut engine: CmapEngine<FixedStore<64, 4096>> =
//!     CmapEngine::new(FixedStore::new(), FixedStore::new(), 0x1234);
//! engine.set_initial(b"totem.cluster_name", Value::String(b"demo")).unwrap();
//! engine.connect(ConnId(1))?;
//!
//! let (mut req, mut reply) = ([0u8; 512], [0u8; 512]);
//! let n = Request::Get { key: Key::new(b"totem.cluster_name")?, value_len: 64 }.encode(&mut req)?;
//! let m = engine.handle_request(ConnId(1), &req[..n], &mut reply)?;
//! // Send queued notifications first (there are none for a GET), then the reply.
//! while let Some((_conn, _len)) = engine.poll_notification(&mut req)? {}
//! let Response::Get(get) = Reply::decode(&reply[..m])?.body else { unreachable!() };
//! assert_eq!(get.typed(), Some(Value::String(b"demo")));
//! assert_eq!((get.value, get.buffer_len, m), (&b"demo\0"[..], 64, 40 + 64));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! The checks run in corosync's order (see docs/protocol.md §5.5):
//! - SET: read-only key → `CS_ERR_ACCESS`; `value_len` > 16384 → `CS_ERR_INVALID_PARAM`; a
//!   fixed-size type with another length → `INVALID_PARAM`; a STRING whose `value_len` exceeds
//!   its `strlen + 1` → `INVALID_PARAM`; an identical value → `CS_OK` without events; a new key
//!   whose name is not 3–255 characters of `[A-Za-z0-9._/:-]` → `CS_ERR_NAME_TOO_LONG`.
//!   Strings are stored as `min(strlen, value_len) + 1` bytes with a final NUL.
//! - DELETE: read-only → `ACCESS`; missing → `CS_ERR_NOT_EXIST`.
//! - GET: missing → `NOT_EXIST`; a buffer smaller than the value → `INVALID_PARAM` (40-byte
//!   reply); else `40 + value_len` bytes, the value then zeros; `value_len` 0 → length and type.
//! - ADJUST_INT: read-only → `ACCESS`; missing → `NOT_EXIST`; float, double, string, binary →
//!   `INVALID_PARAM`; integers wrap.
//! - ITER_*: handles are `(check << 32) | slot`; keys in byte order under a plain prefix; the
//!   end is `CS_ERR_NO_SECTIONS` in a zeroed 304-byte reply (again on every later call); an
//!   unknown handle → `CS_ERR_BAD_HANDLE`.
//! - TRACK_ADD: bits outside `DELETE|MODIFY|ADD|PREFIX` → `INVALID_PARAM` (default map only, as
//!   in corosync); TRACK_DELETE returns the cookie or `BAD_HANDLE`.
//! - SET_CURRENT_MAP: `CS_ERR_BUSY` while the connection has an iterator or a track; maps other
//!   than 0 and 1 → `NOT_EXIST`.
//! - Statistics map (map 1): every key but `stats.clear.*` is read-only (`ACCESS`), also for
//!   keys that do not exist. SET of `stats.clear.{all,ipc,knet,totem,schedmiss}*` → `CS_OK`
//!   (`ipc` and `all` reset the `stats.ipcs.global.*` counters, as corosync does); other
//!   `stats.clear.*` keys → `CS_ERR_NOT_SUPPORTED`, as are DELETE and ADJUST_INT of them. A
//!   PREFIX track without both ADD and DELETE → `NOT_SUPPORTED`.
//! - Request ids outside 0–9 and frames too short for a header get corosync's generic reply
//!   (id 0, 24 bytes, `INVALID_PARAM`). A malformed frame of a known id (wrong size, key without
//!   NUL, bad type) gets that request's reply shape with `INVALID_PARAM`.
//!
//! Capacity limits answer `CS_ERR_NO_MEMORY` (what corosync answers when an allocation fails):
//! a full store, and a connection out of iterator or track slots.
//!
//! # Not reproduced
//!
//! - Statistics-map trackers get no events: corosync polls them every 1.5 s on its totem
//!   timer, which this engine has no notion of. Runtime counters other than
//!   `stats.ipcs.global.{active,closed}` exist only if the adapter sets them
//!   ([`CmapEngine::set_stat`]).
//! - SET with a type outside 1–12 is refused (`INVALID_PARAM`); corosync stores such a value
//!   when its length is 0.
//! - Corosync never checks a frame's size against its structure, and its `strlen` on a STRING
//!   may read past the value; this engine answers `INVALID_PARAM` for a value that extends past
//!   the frame, and treats a STRING without a NUL as ending at `value_len`.
//! - Event order among several trackers of one change: connection-table order, then track-slot
//!   order (corosync: deepest trie node first).

use super::outbox::Outbox;
use super::session::{handle_request_method, notification_methods, Sessions};
use super::store::Store;
use super::{
    forward_engine_methods, make_handle, split_handle, ConnId, Engine, HandleRng, Served, ServerError,
};
use crate::cmap::{
    GetReply, Key, Map, Notification, Reply, Request, RequestKind, Response, TrackEvent, TrackType, Value,
    ValueType, VALUE_MAX_LEN,
};
use crate::error::CsError;
use crate::wire::cmap::{ReqSet, NAME_VALUE_LEN};
use heapless::Vec;
use zerocopy::FromBytes;

/// A read-only rule: an exact key, or every key that starts with `key`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReadOnly {
    /// The key or prefix.
    pub key: &'static [u8],
    /// Whether `key` is a prefix.
    pub prefix: bool,
}

impl ReadOnly {
    /// A rule for every key starting with `key`.
    pub const fn prefix(key: &'static [u8]) -> Self {
        Self { key, prefix: true }
    }

    /// A rule for exactly `key`.
    pub const fn exact(key: &'static [u8]) -> Self {
        Self { key, prefix: false }
    }

    /// Whether the rule covers `key`.
    pub fn covers(&self, key: &[u8]) -> bool {
        if self.prefix {
            key.starts_with(self.key)
        } else {
            key == self.key
        }
    }
}

/// The read-only keys of corosync 3.1.7 (`exec/main.c` `set_icmap_ro_keys_flag`, plus the
/// quorum keys `exec/votequorum.c` and `nodelist.local_node_pos` `exec/totemconfig.c` add).
pub const COROSYNC_READ_ONLY: &[ReadOnly] = &[
    ReadOnly::prefix(b"internal_configuration."),
    ReadOnly::prefix(b"runtime.services."),
    ReadOnly::prefix(b"runtime.config."),
    ReadOnly::prefix(b"runtime.totem."),
    ReadOnly::prefix(b"uidgid.config."),
    ReadOnly::prefix(b"system."),
    ReadOnly::prefix(b"nodelist."),
    ReadOnly::exact(b"totem.crypto_cipher"),
    ReadOnly::exact(b"totem.crypto_hash"),
    ReadOnly::exact(b"totem.crypto_model"),
    ReadOnly::exact(b"totem.keyfile"),
    ReadOnly::exact(b"totem.key"),
    ReadOnly::exact(b"totem.secauth"),
    ReadOnly::exact(b"totem.ip_version"),
    ReadOnly::exact(b"totem.rrp_mode"),
    ReadOnly::exact(b"totem.transport"),
    ReadOnly::exact(b"totem.cluster_name"),
    ReadOnly::exact(b"totem.netmtu"),
    ReadOnly::exact(b"totem.threads"),
    ReadOnly::exact(b"totem.version"),
    ReadOnly::exact(b"totem.nodeid"),
    ReadOnly::exact(b"totem.clear_node_high_bit"),
    ReadOnly::exact(b"config.reload_in_progress"),
    ReadOnly::exact(b"config.totemconfig_reload_in_progress"),
    ReadOnly::exact(b"quorum.allow_downscale"),
    ReadOnly::exact(b"quorum.wait_for_all"),
    ReadOnly::exact(b"quorum.last_man_standing"),
    ReadOnly::exact(b"quorum.last_man_standing_window"),
    ReadOnly::exact(b"quorum.expected_votes_tracking"),
    ReadOnly::exact(b"quorum.auto_tie_breaker"),
    ReadOnly::exact(b"quorum.auto_tie_breaker_node"),
];

/// Statistics key: connections open now.
pub const STAT_IPCS_ACTIVE: &[u8] = b"stats.ipcs.global.active";
/// Statistics key: connections closed so far.
pub const STAT_IPCS_CLOSED: &[u8] = b"stats.ipcs.global.closed";
const STATS_CLEAR: &[u8] = b"stats.clear.";

/// Size of a notification without its values.
const NOTIFY_FIXED_LEN: usize = 336;
/// Size of a GET reply without its value.
const GET_FIXED_LEN: usize = 40;

type KeyBuf = Vec<u8, NAME_VALUE_LEN>;

/// A status for a reply: `Ok` is `CS_OK`.
type Outcome = Result<(), CsError>;

#[derive(Clone, Debug)]
struct Iter {
    check: u32,
    prefix: KeyBuf,
    last: Option<KeyBuf>,
}

#[derive(Clone, Debug)]
struct Track {
    check: u32,
    key: Option<KeyBuf>,
    track_type: TrackType,
    inst: u64,
}

impl Track {
    fn matches(&self, key: &[u8], event: TrackEvent) -> bool {
        if !self.track_type.contains(event.track_type()) {
            return false;
        }
        let own = self.key.as_deref();
        if self.track_type.contains(TrackType::PREFIX) {
            key.starts_with(own.unwrap_or(b""))
        } else {
            own == Some(key)
        }
    }
}

#[derive(Debug)]
struct Conn<const ITERS: usize, const TRACKS: usize> {
    stats_map: bool,
    iters: [Option<Iter>; ITERS],
    tracks: [Option<Track>; TRACKS],
}

impl<const ITERS: usize, const TRACKS: usize> Conn<ITERS, TRACKS> {
    fn new() -> Self {
        Self {
            stats_map: false,
            iters: core::array::from_fn(|_| None),
            tracks: core::array::from_fn(|_| None),
        }
    }

    fn handles_open(&self) -> bool {
        self.iters.iter().any(Option::is_some) || self.tracks.iter().any(Option::is_some)
    }

    fn iter_mut(&mut self, handle: u64) -> Option<&mut Iter> {
        let (check, index) = split_handle(handle);
        self.iters.get_mut(index)?.as_mut().filter(|it| it.check == check)
    }

    fn track_slot(&self, handle: u64) -> Option<usize> {
        let (check, index) = split_handle(handle);
        self.tracks.get(index)?.as_ref().filter(|t| t.check == check).map(|_| index)
    }
}

fn key_buf(bytes: &[u8]) -> KeyBuf {
    // Keys decoded from a frame are at most 255 bytes; a longer one cannot occur.
    Vec::from_slice(bytes.get(..NAME_VALUE_LEN).unwrap_or(bytes)).unwrap_or_default()
}

/// The bytes up to the first NUL of a fixed-size name field, if it has one.
fn cstr(field: &[u8]) -> Option<&[u8]> {
    field.iter().position(|&b| b == 0).map(|end| &field[..end])
}

/// Whether `stored` and `value` have the same type and wire bytes (corosync compares the bytes,
/// so setting a NaN again is no change).
fn same_value(stored: &Value<'_>, value: &Value<'_>) -> bool {
    let (mut a, mut b) = ([0u8; 8], [0u8; 8]);
    stored.value_type() == value.value_type() && wire_bytes(stored, &mut a) == wire_bytes(value, &mut b)
}

/// The wire bytes of `value`, a fixed-size one written into `buf`; a string's without its NUL.
fn wire_bytes<'a>(value: &Value<'a>, buf: &'a mut [u8; 8]) -> &'a [u8] {
    match *value {
        Value::String(s) | Value::Binary(s) => s,
        fixed => {
            let n = fixed.write_to(buf).unwrap_or(0);
            &buf[..n]
        }
    }
}

fn adjusted(value: Value<'_>, step: i32) -> Option<Value<'static>> {
    Some(match value {
        Value::Int8(v) => Value::Int8(v.wrapping_add(step as i8)),
        Value::UInt8(v) => Value::UInt8(v.wrapping_add(step as u8)),
        Value::Int16(v) => Value::Int16(v.wrapping_add(step as i16)),
        Value::UInt16(v) => Value::UInt16(v.wrapping_add(step as u16)),
        Value::Int32(v) => Value::Int32(v.wrapping_add(step)),
        Value::UInt32(v) => Value::UInt32(v.wrapping_add(step as u32)),
        Value::Int64(v) => Value::Int64(v.wrapping_add(i64::from(step))),
        Value::UInt64(v) => Value::UInt64(v.wrapping_add(i64::from(step) as u64)),
        Value::Float(_) | Value::Double(_) | Value::String(_) | Value::Binary(_) => return None,
    })
}

fn opt_len(v: &Option<Value<'_>>) -> usize {
    v.as_ref().map_or(0, Value::wire_len)
}

/// Queues one notification per matching default-map track. `Ok(false)`: they could never fit.
fn queue_events<
    const CONNS: usize,
    const ITERS: usize,
    const TRACKS: usize,
    const EVENTS: usize,
    const BYTES: usize,
>(
    conns: &Sessions<Conn<ITERS, TRACKS>, CONNS>,
    outbox: &mut Outbox<EVENTS, BYTES>,
    key: &[u8],
    event: TrackEvent,
    new_value: Option<Value<'_>>,
    old_value: Option<Value<'_>>,
) -> Result<bool, ServerError> {
    let Ok(wire_key) = Key::new(key) else {
        // Keys in the store always fit a notification; nothing to tell otherwise.
        return Ok(true);
    };
    let tracks = || {
        conns
            .iter()
            .filter(|(_, c)| !c.stats_map)
            .flat_map(|(id, c)| c.tracks.iter().flatten().map(move |t| (id, t)))
            .filter(|(_, t)| t.matches(key, event))
    };
    let count = tracks().count();
    if count == 0 {
        return Ok(true);
    }
    let len = NOTIFY_FIXED_LEN + opt_len(&new_value) + opt_len(&old_value);
    if !outbox.reserve(count, count.saturating_mul(len))? {
        return Ok(false);
    }
    let mark = outbox.mark();
    for (conn, t) in tracks() {
        let n = Notification { track_inst_handle: t.inst, key: wire_key, event, new_value, old_value };
        if let Err(e) = outbox.push(conn, len, |buf| n.encode(buf)) {
            outbox.rollback(mark);
            return Err(e);
        }
    }
    Ok(true)
}

/// The CMAP engine.
///
/// - `S`: the store of both maps (icmap and the statistics map);
/// - `CONNS`: connections at once; `ITERS`, `TRACKS`: open iterators and tracks per connection;
/// - `EVENTS`, `EVENT_BYTES`: the notification outbox (frames, bytes). A notification is 336
///   bytes plus its new and old values (up to 16384 bytes each).
///
/// See the [module documentation](self) for the behaviour and [`super`] for the driving
/// contract.
#[derive(Debug)]
pub struct CmapEngine<
    S: Store,
    const CONNS: usize = 8,
    const ITERS: usize = 4,
    const TRACKS: usize = 8,
    const EVENTS: usize = 32,
    const EVENT_BYTES: usize = 16384,
> {
    icmap: S,
    stats: S,
    read_only: &'static [ReadOnly],
    conns: Sessions<Conn<ITERS, TRACKS>, CONNS>,
    outbox: Outbox<EVENTS, EVENT_BYTES>,
    rng: HandleRng,
}

impl<
        S: Store,
        const CONNS: usize,
        const ITERS: usize,
        const TRACKS: usize,
        const EVENTS: usize,
        const EVENT_BYTES: usize,
    > CmapEngine<S, CONNS, ITERS, TRACKS, EVENTS, EVENT_BYTES>
{
    /// An engine over `icmap` (the default map) and `stats` (the statistics map), with
    /// corosync's read-only keys ([`COROSYNC_READ_ONLY`]). `seed` makes the random half of
    /// iterator and track handles; give a fresh one per daemon start (e.g. from the OS).
    ///
    /// `stats.ipcs.global.active` and `.closed` are created in `stats` if it has room.
    pub fn new(icmap: S, stats: S, seed: u64) -> Self {
        let mut engine = Self {
            icmap,
            stats,
            read_only: COROSYNC_READ_ONLY,
            conns: Sessions::new(),
            outbox: Outbox::new(),
            rng: HandleRng::new(seed),
        };
        for key in [STAT_IPCS_ACTIVE, STAT_IPCS_CLOSED] {
            if engine.stats.get(key).is_none() {
                // Documented: the counters exist only if the statistics store has room.
                let _ = engine.stats.insert(key, Value::UInt64(0));
            }
        }
        engine
    }

    /// Replaces the read-only rules of the default map (e.g. `&[]` for none).
    pub fn set_read_only(&mut self, rules: &'static [ReadOnly]) {
        self.read_only = rules;
    }

    /// Whether a client may not change `key` in the default map.
    pub fn is_read_only(&self, key: &[u8]) -> bool {
        self.read_only.iter().any(|r| r.covers(key))
    }

    /// Sets a default-map value as configuration: no read-only check and no events, but the
    /// key must be a valid new name (`CS_ERR_NAME_TOO_LONG`) and fit the store
    /// (`CS_ERR_NO_MEMORY`).
    pub fn set_initial(&mut self, key: &[u8], value: Value<'_>) -> Result<(), CsError> {
        let known = self.icmap.get(key).is_some();
        if !known && !Key::new(key).is_ok_and(|k| k.is_valid_server_name()) {
            return Err(CsError::NameTooLong);
        }
        self.icmap.insert(key, value).map_err(|_| CsError::NoMemory)
    }

    /// Changes a default-map value from the daemon's side (as corosync's own `icmap_set`):
    /// no read-only check, but trackers get their events as for a client's SET. The outer
    /// `Err` is [`ServerError::OutboxFull`] (drain, then retry); the inner one is the status a
    /// client would get (`CS_ERR_NAME_TOO_LONG`, `CS_ERR_NO_MEMORY`, `CS_ERR_NO_RESOURCES`).
    pub fn update(&mut self, key: &[u8], value: Value<'_>) -> Result<Result<(), CsError>, ServerError> {
        // As icmap_set_string: value_len = strlen, at most ICMAP_MAX_VALUE_LEN; stored with its NUL.
        if let Value::String(s) = value {
            if s.contains(&0) || s.len() > VALUE_MAX_LEN {
                return Ok(Err(CsError::InvalidParam));
            }
        } else if value.wire_len() > VALUE_MAX_LEN {
            return Ok(Err(CsError::InvalidParam));
        }
        self.apply_set(key, value)
    }

    /// Deletes a default-map key from the daemon's side, with events; see
    /// [`CmapEngine::update`]. A missing key is `CS_ERR_NOT_EXIST`.
    pub fn remove(&mut self, key: &[u8]) -> Result<Result<(), CsError>, ServerError> {
        self.delete_key(key)
    }

    /// A default-map value.
    pub fn get(&self, key: &[u8]) -> Option<Value<'_>> {
        self.icmap.get(key)
    }

    /// Sets a statistics-map value (no events; clients cannot write the statistics map).
    pub fn set_stat(&mut self, key: &[u8], value: Value<'_>) -> Result<(), CsError> {
        Key::new(key).map_err(|_| CsError::NameTooLong)?;
        self.stats.insert(key, value).map_err(|_| CsError::NoMemory)
    }

    /// A statistics-map value.
    pub fn stat(&self, key: &[u8]) -> Option<Value<'_>> {
        self.stats.get(key)
    }

    /// The default map.
    pub fn icmap(&self) -> &S {
        &self.icmap
    }

    /// The statistics map.
    pub fn stats(&self) -> &S {
        &self.stats
    }

    /// Registers a new connection (corosync's `cmap_lib_init_fn`): default map, no handles.
    pub fn connect(&mut self, conn: ConnId) -> Result<(), ServerError> {
        self.conns.connect(conn, Conn::new())?;
        self.bump_stat(STAT_IPCS_ACTIVE, 1);
        Ok(())
    }

    /// Forgets a connection: frees its iterators and tracks and drops its queued
    /// notifications. Unknown connections are ignored.
    pub fn disconnect(&mut self, conn: ConnId) {
        if self.conns.disconnect(conn).is_some() {
            self.outbox.remove_conn(conn);
            self.bump_stat(STAT_IPCS_ACTIVE, -1);
            self.bump_stat(STAT_IPCS_CLOSED, 1);
        }
    }

    /// Whether `conn` is connected.
    pub fn is_connected(&self, conn: ConnId) -> bool {
        self.conns.is_connected(conn)
    }

    /// The map `conn` uses now.
    pub fn current_map(&self, conn: ConnId) -> Option<Map> {
        let c = self.conns.get(conn)?;
        Some(if c.stats_map { Map::Stats } else { Map::Default })
    }

    /// Number of open iterators of `conn`.
    pub fn open_iterators(&self, conn: ConnId) -> usize {
        self.conns.get(conn).map_or(0, |c| c.iters.iter().flatten().count())
    }

    /// Number of open tracks of `conn`.
    pub fn open_tracks(&self, conn: ConnId) -> usize {
        self.conns.get(conn).map_or(0, |c| c.tracks.iter().flatten().count())
    }

    notification_methods!(
        /// If `out` is too small the
        /// notification stays queued ([`ServerError::BufferTooSmall`]).
    );

    handle_request_method! {
        /// Handles one request frame from `conn` and writes the reply into `out` (at least
        /// [`super::MIN_REPLY_LEN`] bytes); returns the reply's length. Notifications the request
        /// caused are queued; send them first.
        => serve
    }

    fn serve(&mut self, ci: usize, kind: RequestKind, frame: &[u8], out: &mut [u8]) -> Served {
        if kind == RequestKind::Set {
            return self.handle_set(ci, frame, out);
        }
        let Ok(req) = Request::decode(frame) else {
            return error_reply(kind, CsError::InvalidParam, out);
        };
        let body = match req {
            Request::Set { .. } => return error_reply(kind, CsError::InvalidParam, out),
            Request::Delete { key } => {
                let r = self.delete(ci, key.as_bytes())?;
                return status(kind, r, out);
            }
            Request::AdjustInt { key, step } => {
                let r = self.adjust(ci, key.as_bytes(), step)?;
                return status(kind, r, out);
            }
            Request::Get { key, value_len } => return self.get_reply(ci, key.as_bytes(), value_len, out),
            Request::IterInit { prefix } => return self.iter_init(ci, prefix, out),
            Request::IterNext { iter_handle } => return self.iter_next(ci, iter_handle, out),
            Request::IterFinalize { iter_handle } => {
                let c = &mut self.conns[ci];
                let (_, index) = split_handle(iter_handle);
                let r = match c.iter_mut(iter_handle) {
                    Some(_) => {
                        c.iters[index] = None;
                        Ok(())
                    }
                    None => Err(CsError::BadHandle),
                };
                return status(kind, r, out);
            }
            Request::TrackAdd { key, track_type, track_inst_handle } => {
                return self.track_add(ci, key, track_type, track_inst_handle, out)
            }
            Request::TrackDelete { track_handle } => {
                let c = &mut self.conns[ci];
                match c.track_slot(track_handle).and_then(|i| c.tracks[i].take()) {
                    Some(t) => (Ok(()), Response::TrackDelete { track_inst_handle: t.inst }),
                    None => (Err(CsError::BadHandle), Response::TrackDelete { track_inst_handle: 0 }),
                }
            }
            Request::SetCurrentMap { map } => {
                let c = &mut self.conns[ci];
                let r = if c.handles_open() {
                    Err(CsError::Busy)
                } else {
                    match map {
                        Map::Default => {
                            c.stats_map = false;
                            Ok(())
                        }
                        Map::Stats => {
                            c.stats_map = true;
                            Ok(())
                        }
                        Map::Other(_) => Err(CsError::NotExist),
                    }
                };
                return status(kind, r, out);
            }
        };
        Ok(Reply { result: body.0, body: body.1 }.encode(out)?)
    }

    fn bump_stat(&mut self, key: &[u8], delta: i64) {
        if let Some(Value::UInt64(v)) = self.stats.get(key) {
            let v = if delta < 0 {
                v.saturating_sub(delta.unsigned_abs())
            } else {
                v.saturating_add(delta as u64)
            };
            // Same size as before, so a replacement always fits.
            let _ = self.stats.insert(key, Value::UInt64(v));
        }
    }

    fn handle_set(&mut self, ci: usize, frame: &[u8], out: &mut [u8]) -> Result<usize, ServerError> {
        let kind = RequestKind::Set;
        let Ok((m, tail)) = ReqSet::ref_from_prefix(frame) else {
            return error_reply(kind, CsError::InvalidParam, out);
        };
        let Some(key) = cstr(&m.key_name.value) else {
            return error_reply(kind, CsError::InvalidParam, out);
        };
        let r = if self.conns[ci].stats_map {
            stats_set(key).inspect(|()| self.stats_cleared(key))
        } else {
            match self.check_set(key, m.value_len.get(), m.value_type.value, tail) {
                Ok(value) => self.apply_set(key, value)?,
                Err(e) => Err(e),
            }
        };
        status(kind, r, out)
    }

    /// corosync's checks of a client SET on the default map, in its order, up to the value.
    fn check_set<'f>(
        &self,
        key: &[u8],
        value_len: u64,
        raw_type: u8,
        tail: &'f [u8],
    ) -> Result<Value<'f>, CsError> {
        if self.is_read_only(key) {
            return Err(CsError::Access);
        }
        let len =
            usize::try_from(value_len).ok().filter(|&n| n <= VALUE_MAX_LEN).ok_or(CsError::InvalidParam)?;
        let ty = ValueType::from_raw(raw_type).ok_or(CsError::InvalidParam)?;
        let bytes = tail.get(..len).ok_or(CsError::InvalidParam)?;
        match ty {
            ValueType::String => match bytes.iter().position(|&b| b == 0) {
                Some(strlen) if len > strlen + 1 => Err(CsError::InvalidParam),
                Some(strlen) => Ok(Value::String(&bytes[..strlen])),
                None => Ok(Value::String(bytes)),
            },
            ValueType::Binary => Ok(Value::Binary(bytes)),
            fixed => Value::from_wire(fixed, bytes).ok_or(CsError::InvalidParam),
        }
    }

    /// `icmap_set`: equality, name check, events, store.
    fn apply_set(&mut self, key: &[u8], value: Value<'_>) -> Result<Outcome, ServerError> {
        let existing = self.icmap.get(key);
        match existing {
            Some(s) if same_value(&s, &value) => return Ok(Ok(())),
            None if !Key::new(key).is_ok_and(|k| k.is_valid_server_name()) => {
                return Ok(Err(CsError::NameTooLong));
            }
            _ => {}
        }
        let mark = self.outbox.mark();
        let (event, old) = match existing {
            Some(s) => (TrackEvent::Modify, Some(s)),
            None => (TrackEvent::Add, None),
        };
        if !queue_events(&self.conns, &mut self.outbox, key, event, Some(value), old)? {
            return Ok(Err(CsError::NoResources));
        }
        if self.icmap.insert(key, value).is_err() {
            self.outbox.rollback(mark);
            return Ok(Err(CsError::NoMemory));
        }
        Ok(Ok(()))
    }

    fn delete(&mut self, ci: usize, key: &[u8]) -> Result<Outcome, ServerError> {
        if self.conns[ci].stats_map {
            return Ok(Err(stats_write_error(key)));
        }
        if self.is_read_only(key) {
            return Ok(Err(CsError::Access));
        }
        self.delete_key(key)
    }

    /// `icmap_delete`: events, then removal.
    fn delete_key(&mut self, key: &[u8]) -> Result<Outcome, ServerError> {
        let Some(old) = self.icmap.get(key) else {
            return Ok(Err(CsError::NotExist));
        };
        if !queue_events(&self.conns, &mut self.outbox, key, TrackEvent::Delete, None, Some(old))? {
            return Ok(Err(CsError::NoResources));
        }
        self.icmap.remove(key);
        Ok(Ok(()))
    }

    fn adjust(&mut self, ci: usize, key: &[u8], step: i32) -> Result<Outcome, ServerError> {
        if self.conns[ci].stats_map {
            return Ok(Err(stats_write_error(key)));
        }
        if self.is_read_only(key) {
            return Ok(Err(CsError::Access));
        }
        let Some(old) = self.icmap.get(key) else {
            return Ok(Err(CsError::NotExist));
        };
        let Some(new) = adjusted(old, step) else {
            return Ok(Err(CsError::InvalidParam));
        };
        self.apply_set(key, new)
    }

    fn map(&self, ci: usize) -> &S {
        if self.conns[ci].stats_map {
            &self.stats
        } else {
            &self.icmap
        }
    }

    fn get_reply(&self, ci: usize, key: &[u8], value_len: u64, out: &mut [u8]) -> Result<usize, ServerError> {
        let kind = RequestKind::Get;
        let Some(stored) = self.map(ci).get(key) else {
            return error_reply(kind, CsError::NotExist, out);
        };
        let actual = stored.wire_len() as u64;
        let value_type = Some(stored.value_type());
        let mut fixed = [0u8; 8];
        let reply = if value_len == 0 {
            GetReply { value_type, value_len: actual, value: &[], buffer_len: 0 }
        } else if value_len < actual {
            return error_reply(kind, CsError::InvalidParam, out);
        } else if value_len > (out.len() - GET_FIXED_LEN) as u64 {
            return error_reply(kind, CsError::NoMemory, out);
        } else {
            // A string's NUL comes from the zero-filled value buffer (`buffer_len >= actual`).
            GetReply {
                value_type,
                value_len: actual,
                value: wire_bytes(&stored, &mut fixed),
                buffer_len: value_len,
            }
        };
        Ok(Reply { result: Ok(()), body: Response::Get(reply) }.encode(out)?)
    }

    fn iter_init(
        &mut self,
        ci: usize,
        prefix: Option<Key<'_>>,
        out: &mut [u8],
    ) -> Result<usize, ServerError> {
        let check = self.rng.next_check();
        let c = &mut self.conns[ci];
        let (result, iter_handle) = match c.iters.iter().position(Option::is_none) {
            Some(i) => {
                let prefix = key_buf(prefix.map_or(&[][..], |k| k.as_bytes()));
                c.iters[i] = Some(Iter { check, prefix, last: None });
                (Ok(()), make_handle(check, i))
            }
            None => (Err(CsError::NoMemory), 0),
        };
        Ok(Reply { result, body: Response::IterInit { iter_handle } }.encode(out)?)
    }

    fn iter_next(&mut self, ci: usize, handle: u64, out: &mut [u8]) -> Result<usize, ServerError> {
        let kind = RequestKind::IterNext;
        let store = if self.conns[ci].stats_map { &self.stats } else { &self.icmap };
        let Some(it) = self.conns[ci].iter_mut(handle) else {
            return error_reply(kind, CsError::BadHandle, out);
        };
        let Some((key, stored)) = store.next_after(&it.prefix, it.last.as_deref()) else {
            return error_reply(kind, CsError::NoSections, out);
        };
        it.last = Some(key_buf(key));
        let Ok(key) = Key::new(key) else {
            return error_reply(kind, CsError::NoSections, out);
        };
        let body = Response::IterNext {
            key,
            value_len: stored.wire_len() as u64,
            value_type: Some(stored.value_type()),
        };
        Ok(Reply { result: Ok(()), body }.encode(out)?)
    }

    fn track_add(
        &mut self,
        ci: usize,
        key: Option<Key<'_>>,
        track_type: TrackType,
        inst: u64,
        out: &mut [u8],
    ) -> Result<usize, ServerError> {
        let check = self.rng.next_check();
        let c = &mut self.conns[ci];
        let checked = if c.stats_map {
            let prefix = track_type.contains(TrackType::PREFIX);
            if prefix && !track_type.contains(TrackType::ADD | TrackType::DELETE) {
                Err(CsError::NotSupported)
            } else {
                Ok(())
            }
        } else if track_type.is_valid() {
            Ok(())
        } else {
            Err(CsError::InvalidParam)
        };
        let (result, track_handle) =
            match checked.and_then(|()| c.tracks.iter().position(Option::is_none).ok_or(CsError::NoMemory)) {
                Ok(i) => {
                    let key = key.map(|k| key_buf(k.as_bytes()));
                    c.tracks[i] = Some(Track { check, key, track_type, inst });
                    (Ok(()), make_handle(check, i))
                }
                Err(e) => (Err(e), 0),
            };
        Ok(Reply { result, body: Response::TrackAdd { track_handle } }.encode(out)?)
    }

    /// The side effect of a successful `stats.clear.*` SET.
    fn stats_cleared(&mut self, key: &[u8]) {
        if key.starts_with(b"stats.clear.ipc") || key.starts_with(b"stats.clear.all") {
            for k in [STAT_IPCS_ACTIVE, STAT_IPCS_CLOSED] {
                if self.stats.get(k).is_some() {
                    let _ = self.stats.insert(k, Value::UInt64(0));
                }
            }
        }
    }
}

impl<
        S: Store,
        const CONNS: usize,
        const ITERS: usize,
        const TRACKS: usize,
        const EVENTS: usize,
        const EVENT_BYTES: usize,
    > Engine for CmapEngine<S, CONNS, ITERS, TRACKS, EVENTS, EVENT_BYTES>
{
    fn name(&self) -> &'static str {
        crate::cmap::SERVICE_NAME
    }

    forward_engine_methods!();
}

/// `stats_map_is_key_ro` + `stats_map_set`.
fn stats_set(key: &[u8]) -> Outcome {
    if !key.starts_with(STATS_CLEAR) {
        return Err(CsError::Access);
    }
    let known: [&[u8]; 5] = [
        b"stats.clear.knet",
        b"stats.clear.ipc",
        b"stats.clear.totem",
        b"stats.clear.schedmiss",
        b"stats.clear.all",
    ];
    if known.iter().any(|k| key.starts_with(k)) {
        Ok(())
    } else {
        Err(CsError::NotSupported)
    }
}

/// DELETE and ADJUST_INT on the statistics map.
fn stats_write_error(key: &[u8]) -> CsError {
    if key.starts_with(STATS_CLEAR) {
        CsError::NotSupported
    } else {
        CsError::Access
    }
}

fn status(kind: RequestKind, result: Outcome, out: &mut [u8]) -> Result<usize, ServerError> {
    Ok(crate::cmap::encode_status(out, kind.response_id(), CsError::raw_of(result))?)
}

/// The reply corosync sends for `kind` on error: the request's reply shape, fields zeroed.
fn error_reply(kind: RequestKind, error: CsError, out: &mut [u8]) -> Result<usize, ServerError> {
    let body = match kind {
        RequestKind::Get => Response::Get(GetReply::default()),
        RequestKind::IterInit => Response::IterInit { iter_handle: 0 },
        RequestKind::IterNext => match Key::new(b"") {
            Ok(key) => Response::IterNext { key, value_len: 0, value_type: None },
            Err(_) => return status(kind, Err(error), out),
        },
        RequestKind::TrackAdd => Response::TrackAdd { track_handle: 0 },
        RequestKind::TrackDelete => Response::TrackDelete { track_inst_handle: 0 },
        _ => return status(kind, Err(error), out),
    };
    Ok(Reply { result: Err(error), body }.encode(out)?)
}
