//! A blocking CMAP client, wire-compatible with libcmap, talking to corosync over libqb IPC
//! (shared memory or sockets, as the daemon chooses).
//!
//! ```no_run
//! use corowire_unix::cmap::Cmap;
//! let mut cmap = Cmap::connect()?;
//! let name = cmap.get_string("totem.cluster_name")?;
//! cmap.set_u32("mytool.counter", 1)?;
//! cmap.inc("mytool.counter")?;
//! for entry in cmap.iter(Some("totem."))? {
//!     let (key, ty, len) = entry?;
//!     println!("{key} ({}) {len} bytes", ty.cmapctl_name());
//! }
//! # Ok::<(), corowire_unix::Error>(())
//! ```

use core::fmt;
use core::time::Duration;
use corowire::wire::ring::CHUNK_OVERHEAD;
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};

use corowire::cmap::{Key, Request, Response};
use corowire::conn::{Cmap as CmapService, CmapEvent, Token};

use crate::client::{Client, Context, Control};
use crate::error::{CheckError, Error, KeyOp, Result, BAD_VALUE, OTHER_KIND};
pub use crate::options::Options;
use crate::resilient::{Resilience, Resilient};
pub use corowire::cmap::{Map, TrackEvent, TrackType, Value, ValueType, VALUE_MAX_LEN};
pub use corowire::{CsError, DispatchMode};

/// Tracks one connection can hold.
const TRACKS: usize = 64;
/// Requests one connection keeps in flight ([`Cmap::get_many`]).
const PENDING: usize = 32;
/// Events queued during a dispatch.
const EVENTS: usize = 64;
/// Bytes of queued events.
const EVENT_BYTES: usize = 65536;
/// Bytes of a GET reply's header before the value.
const GET_REPLY_OVERHEAD: usize = size_of::<corowire::wire::cmap::ResGet>();
/// Value buffer of the pipelined GETs of [`Cmap::get_many`], and the first buffer of
/// [`Cmap::get`]: most values fit.
const GET_MANY_BUFFER: usize = 256;
/// Attempts of [`Cmap::get`] to size its buffer while the value keeps growing.
const GET_ATTEMPTS: usize = 4;
/// ITER_NEXT requests [`Cmap::dump`] keeps in flight.
const ITER_WINDOW: usize = 16;
/// Ring bytes an ITER_NEXT reply may take (header, a 256-byte key, length and type).
const ITER_REPLY_BYTES: usize = 512;
/// Bytes libqb keeps free in a ring beyond a chunk (`QB_RB_CHUNK_MARGIN` and then some).
const RING_MARGIN: usize = 256;

type Conn = Client<CmapService<TRACKS>, PENDING, EVENTS, EVENT_BYTES>;

/// A CMAP value, owned: the core's `corowire::value::OwnedValue`, re-exported here.
pub use corowire::value::OwnedValue;

/// A track registered with [`Cmap::track_add`]: the server's track handle. A handle
/// connected with [`Options::reconnect`] keeps it across reconnects (the daemon's handle of
/// the re-created track is mapped to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrackHandle(pub u64);

/// A change notification, as handed to a track's callback (`cmap_notify_fn_t`'s arguments).
#[derive(Clone, Copy, PartialEq)]
pub struct TrackNotification<'a> {
    /// The track that reported it.
    pub track: TrackHandle,
    /// What happened.
    pub event: TrackEvent,
    /// The key that changed, as bytes.
    pub key_bytes: &'a [u8],
    /// The new value (`None` for a delete).
    pub new_value: Option<Value<'a>>,
    /// The old value (`None` for an add).
    pub old_value: Option<Value<'a>>,
}

impl TrackNotification<'_> {
    /// The key that changed (keys are ASCII in practice; anything else is replaced lossily).
    pub fn key(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.key_bytes)
    }

    /// `Debug` under the struct name `name`, with the key as text.
    fn debug_as(&self, name: &str, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(name)
            .field("track", &self.track)
            .field("event", &self.event)
            .field("key", &self.key())
            .field("new_value", &self.new_value)
            .field("old_value", &self.old_value)
            .finish()
    }
}

/// The key as text (lossily), e.g. `TrackNotification { track: .., event: Add, key: "a.b", .. }`:
/// `key` there is [`TrackNotification::key`], the text of the field `key_bytes`.
impl fmt::Debug for TrackNotification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.debug_as("TrackNotification", f)
    }
}

/// As `corosync-cmapctl -t` words it: `modify a.b = 2 (was 1)`, `create a.b = 1`,
/// `delete a.b (was 1)`; values as `corosync-cmapctl` prints them.
impl fmt::Display for TrackNotification<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.event, self.key())?;
        if let Some(new) = &self.new_value {
            write!(f, " = {new}")?;
        }
        match &self.old_value {
            Some(old) => write!(f, " (was {old})"),
            None => Ok(()),
        }
    }
}

/// A track's callback.
type Callback = Box<dyn FnMut(&TrackNotification<'_>) + Send>;

/// A track as [`Cmap::track_add`] made it, to re-create after a reconnect.
struct Track {
    /// The handle the application was given.
    user: TrackHandle,
    /// The daemon's handle of the track on the current connection.
    daemon: u64,
    /// What is tracked.
    key: Option<String>,
    track_type: TrackType,
    callback: Callback,
}

/// A connection to corosync's CMAP service. Finalized (the connection closed) on drop.
pub struct Cmap {
    client: Conn,
    /// The libqb service name connected to.
    service: String,
    /// The tracks, by the context given to the core's track table.
    tracks: HashMap<u64, Track>,
    next_context: u64,
    context: Context,
    control: Control,
    /// The map this connection works on (restored after a reconnect).
    map: Map,
    /// Reconnecting, with [`Options::reconnect`].
    resilience: Option<Resilience>,
}

impl fmt::Debug for Cmap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cmap")
            .field("service", &self.service)
            .field("client", &self.client)
            .field("tracks", &self.tracks.len())
            .finish()
    }
}

fn key(name: &str) -> Result<Key<'_>> {
    Key::new(name.as_bytes()).map_err(|error| CheckError::KeyName { key: name.to_owned(), error }.into())
}

macro_rules! typed {
    ($(($get:ident, $set:ident, $ty:ty, $variant:ident)),* $(,)?) => {
        $(
            #[doc = concat!("Gets a `", stringify!($ty), "` value (`cmap_get_", stringify!($ty), "`).")]
            ///
            /// # Errors
            /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type
            /// (`CS_ERR_INVALID_PARAM`, as libcmap).
            pub fn $get(&mut self, key: &str) -> Result<$ty> {
                match self.get_typed(key, ValueType::$variant, core::mem::size_of::<$ty>())? {
                    OwnedValue::$variant(v) => Ok(v),
                    other => Err(wrong_type(key, ValueType::$variant, &other)),
                }
            }

            #[doc = concat!("Sets a `", stringify!($ty), "` value.")]
            ///
            /// # Errors
            /// As [`Cmap::set`].
            pub fn $set(&mut self, key: &str, value: $ty) -> Result<()> {
                self.set(key, Value::$variant(value))
            }
        )*
    };
}

impl Cmap {
    /// Connects with the default [`Options`].
    ///
    /// # Errors
    /// [`Error::Connect`] if no daemon listens or it refuses; other errors of the handshake.
    pub fn connect() -> Result<Self> {
        Self::connect_with(Options::default())
    }

    /// Connects with `options`, then switches to `options.map` if it is not the default map.
    ///
    /// The default options (64 KiB rings) suit short-lived calls; a connection that tracks
    /// keys should use [`Options::for_tracking`] (1 MiB rings), or bursts of notifications
    /// overflow the event ring and back up in the daemon.
    ///
    /// # Errors
    /// As [`Cmap::connect`], and the result of the map switch.
    ///
    /// With [`Options::reconnect`], a daemon that is not (yet) there is waited for up to its
    /// `start_wait`; see [`Options::reconnect`] for what the handle then does on a loss.
    pub fn connect_with(options: Options) -> Result<Self> {
        let (client, service, resilience) = crate::resilient::connect_resilient(&options)?;
        let mut cmap = Self {
            client,
            service,
            tracks: HashMap::new(),
            next_context: 1,
            context: Context::default(),
            control: Control::default(),
            map: Map::Default,
            resilience,
        };
        if options.map != Map::Default {
            cmap.set_current_map(options.map)?;
        }
        Ok(cmap)
    }

    /// The negotiated maximum message size.
    pub fn max_msg_size(&self) -> usize {
        self.client.connection().max_msg_size()
    }

    /// The largest value buffer a GET may ask for: every CMAP value (at most 16385 bytes)
    /// unless the rings are smaller.
    fn get_buffer(&self) -> usize {
        corowire::cmap::STORED_MAX_LEN
            .min(self.max_msg_size().saturating_sub(GET_REPLY_OVERHEAD + CHUNK_OVERHEAD))
    }

    fn simple(&mut self, req: &Request<'_>) -> Result<()> {
        self.ready()?;
        self.client.call(req, |_| Ok(()))
    }

    /// Gets the value of `key`.
    ///
    /// Asks for a 256-byte buffer first (corosync allocates the buffer a GET asks for); a
    /// larger value is fetched again with its exact length, and so is a value corosync carried
    /// short (the stats map's `stats.ipcs.*.procname`, docs/protocol.md §5.3). At most 4 GETs
    /// are sent.
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` for a missing key, `CS_ERR_NAME_TOO_LONG` for a key of 256 bytes or
    /// more, `CS_ERR_TOO_BIG` if the value does not fit the negotiated message size,
    /// [`CheckError::ValueKeptChanging`] (`CS_ERR_TRY_AGAIN`) if the value changed size at
    /// each attempt; the connection errors.
    pub fn get(&mut self, name: &str) -> Result<OwnedValue> {
        self.get_fitting(name).map_err(|e| e.for_key(KeyOp::Get, name))
    }

    /// [`Cmap::get`] without the key in the daemon's answers.
    fn get_fitting(&mut self, name: &str) -> Result<OwnedValue> {
        let max = self.get_buffer();
        let mut len = GET_MANY_BUFFER.min(max);
        for _ in 0..GET_ATTEMPTS {
            let need = match self.get_sized(name, len) {
                Ok(Fetched::Whole(v)) => return Ok(v),
                Ok(Fetched::Truncated(stored)) => stored,
                // GET answers CS_ERR_INVALID_PARAM for a buffer smaller than the value.
                Err(Error::Cs(CsError::InvalidParam)) => {
                    let need = self.get_type(name)?.1;
                    if need <= len as u64 && len == max {
                        return Err(Error::Cs(CsError::InvalidParam));
                    }
                    need
                }
                Err(e) => return Err(e),
            };
            let need = usize::try_from(need).unwrap_or(usize::MAX);
            if need > max {
                return Err(CheckError::TooBig { key: Some(name.to_owned()), len: need, max }.into());
            }
            // The value grew (or shrank) in between: ask again, for at least as much as
            // before.
            len = need.max(len.saturating_add(1)).min(max);
        }
        Err(CheckError::ValueKeptChanging { key: name.to_owned(), attempts: GET_ATTEMPTS }.into())
    }

    /// One GET with exactly the `size` bytes of `ty`, as libcmap's typed getters ask. corosync
    /// answers `CS_ERR_INVALID_PARAM` for a larger value (and may carry a computed string
    /// short); a value of another type is then reported as [`CheckError::WrongType`], as a
    /// smaller one is by the caller.
    fn get_typed(&mut self, name: &str, ty: ValueType, size: usize) -> Result<OwnedValue> {
        let reply = self.get_sized(name, size);
        if matches!(reply, Ok(Fetched::Truncated(_)) | Err(Error::Cs(CsError::InvalidParam))) {
            let (actual, _) = self.get_type(name)?;
            if actual != ty {
                return Err(CheckError::WrongType { key: name.to_owned(), expected: ty, actual }.into());
            }
        }
        match reply {
            Ok(Fetched::Whole(v)) => Ok(v),
            Ok(Fetched::Truncated(_)) => Err(BAD_VALUE),
            Err(e) => Err(e.for_key(KeyOp::Get, name)),
        }
    }

    /// One GET with a `len`-byte value buffer.
    fn get_sized(&mut self, name: &str, len: usize) -> Result<Fetched> {
        let req = Request::Get { key: key(name)?, value_len: len as u64 };
        self.ready()?;
        self.client.call(&req, fetched)
    }

    /// The type and length of `key`'s value (a GET with no buffer).
    ///
    /// # Errors
    /// As [`Cmap::get`].
    pub fn get_type(&mut self, name: &str) -> Result<(ValueType, u64)> {
        let req = Request::Get { key: key(name)?, value_len: 0 };
        self.ready()?;
        self.client
            .call(&req, |r| match r {
                Response::Get(g) => Ok((g.value_type.ok_or(BAD_VALUE)?, g.value_len)),
                _ => Err(OTHER_KIND),
            })
            .map_err(|e| e.for_key(KeyOp::Get, name))
    }

    typed!(
        (get_i8, set_i8, i8, Int8),
        (get_u8, set_u8, u8, UInt8),
        (get_i16, set_i16, i16, Int16),
        (get_u16, set_u16, u16, UInt16),
        (get_i32, set_i32, i32, Int32),
        (get_u32, set_u32, u32, UInt32),
        (get_i64, set_i64, i64, Int64),
        (get_u64, set_u64, u64, UInt64),
        (get_f32, set_f32, f32, Float),
        (get_f64, set_f64, f64, Double),
    );

    /// Gets a string value. Bytes that are not UTF-8 are replaced with U+FFFD (lossily);
    /// [`Cmap::get`] gives the bytes as corosync stores them ([`OwnedValue::String`]).
    ///
    /// # Errors
    /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type.
    pub fn get_string(&mut self, key: &str) -> Result<String> {
        match self.get(key)? {
            OwnedValue::String(s) => Ok(match String::from_utf8(s) {
                Ok(s) => s,
                Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
            }),
            other => Err(wrong_type(key, ValueType::String, &other)),
        }
    }

    /// Gets a binary value.
    ///
    /// # Errors
    /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type.
    pub fn get_binary(&mut self, key: &str) -> Result<Vec<u8>> {
        match self.get(key)? {
            OwnedValue::Binary(b) => Ok(b),
            other => Err(wrong_type(key, ValueType::Binary, &other)),
        }
    }

    /// Sets `key` to `value`, creating it. Strings are sent with their NUL inside the length.
    ///
    /// # Errors
    /// `CS_ERR_ACCESS` for a read-only key, `CS_ERR_INVALID_PARAM` for a value over 16384
    /// bytes, `CS_ERR_NAME_TOO_LONG` for an invalid new key name; the connection errors.
    pub fn set(&mut self, name: &str, value: Value<'_>) -> Result<()> {
        self.simple(&Request::Set { key: key(name)?, value }).map_err(|e| e.for_key(KeyOp::Set, name))
    }

    /// Sets a string value (value_len = strlen, as `cmap_set_string`; at most 16384 bytes).
    ///
    /// # Errors
    /// As [`Cmap::set`].
    pub fn set_string(&mut self, key: &str, value: &str) -> Result<()> {
        self.set(key, Value::String(value.as_bytes()))
    }

    /// Sets a binary value.
    ///
    /// # Errors
    /// As [`Cmap::set`].
    pub fn set_binary(&mut self, key: &str, value: &[u8]) -> Result<()> {
        self.set(key, Value::Binary(value))
    }

    /// Deletes `key`.
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST`, `CS_ERR_ACCESS`; the connection errors.
    pub fn delete(&mut self, name: &str) -> Result<()> {
        self.simple(&Request::Delete { key: key(name)? }).map_err(|e| e.for_key(KeyOp::Delete, name))
    }

    /// Adds 1 to the integer at `key` (wrapping).
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` for a non-integer, `CS_ERR_NOT_EXIST`; the connection errors.
    pub fn inc(&mut self, name: &str) -> Result<()> {
        self.simple(&Request::AdjustInt { key: key(name)?, step: 1 }).map_err(|e| e.for_key(KeyOp::Inc, name))
    }

    /// Subtracts 1 from the integer at `key` (wrapping).
    ///
    /// # Errors
    /// As [`Cmap::inc`].
    pub fn dec(&mut self, name: &str) -> Result<()> {
        self.simple(&Request::AdjustInt { key: key(name)?, step: -1 })
            .map_err(|e| e.for_key(KeyOp::Dec, name))
    }

    /// Switches this connection to `map` (`CS_ERR_BUSY` while iterations or tracks are open).
    ///
    /// # Errors
    /// `CS_ERR_BUSY`, `CS_ERR_NOT_EXIST` for an unknown map; the connection errors.
    pub fn set_current_map(&mut self, map: Map) -> Result<()> {
        self.simple(&Request::SetCurrentMap { map })?;
        self.map = map;
        Ok(())
    }

    /// Gets many keys with the requests pipelined (up to 32 in flight): one result per key,
    /// in order. The outer error is a connection failure.
    ///
    /// The pipelined GETs ask for small buffers, so that all their replies fit the response
    /// ring at once (corosync drops a reply that does not fit); a value larger than that
    /// buffer is fetched again on its own. Each batch of requests is written to the request
    /// ring first and then announced with one `send()` of all their doorbell bytes. A value
    /// corosync carried short (docs/protocol.md §5.3) is fetched again too.
    ///
    /// # Errors
    /// Connection errors; per-key errors (e.g. `CS_ERR_NOT_EXIST`) are in the inner results.
    pub fn get_many(&mut self, names: &[&str]) -> Result<Vec<Result<OwnedValue>>> {
        let buffer = self.get_buffer().min(GET_MANY_BUFFER);
        let items: Vec<(&str, usize)> = names.iter().map(|&n| (n, buffer)).collect();
        self.ready()?;
        match self.get_pipelined(&items) {
            (_, Some(lost)) => Err(lost),
            (values, None) => Ok(values),
        }
    }

    /// [`Cmap::get_many`] with a value buffer per key. A connection error ends the pipeline:
    /// it is returned beside the values (the keys answered before it hold their results,
    /// the others the error).
    fn get_pipelined(&mut self, items: &[(&str, usize)]) -> (Vec<Result<OwnedValue>>, Option<Error>) {
        let max = self.get_buffer();
        // Ring bytes one reply takes: size and magic words, then the payload in whole words.
        let reply_bytes = |len: usize| 8 + (GET_REPLY_OVERHEAD + len.min(max)).div_ceil(4) * 4;
        let ring = self.client.transport().reply_budget();
        let budget = ring.saturating_sub(RING_MARGIN);
        let mut results: Vec<Option<Result<Fetched>>> = (0..items.len()).map(|_| None).collect();
        let mut in_flight: VecDeque<(Token, usize, usize)> = VecDeque::new();
        let mut flight_bytes = 0;
        let mut next = 0;
        let mut lost: Option<Error> = None;
        'pipeline: while next < items.len() || !in_flight.is_empty() {
            while next < items.len() && in_flight.len() < PENDING {
                let (name, len) = items[next];
                let len = len.min(max);
                let bytes = reply_bytes(len);
                // Every reply in flight must fit the response ring at once.
                if !in_flight.is_empty() && flight_bytes + bytes > budget {
                    break;
                }
                let req = match key(name) {
                    Ok(key) => Request::Get { key, value_len: len as u64 },
                    Err(e) => {
                        results[next] = Some(Err(e));
                        next += 1;
                        continue;
                    }
                };
                // A full request ring: collect a reply first (unless nothing is in flight).
                if !in_flight.is_empty() && !self.client.can_send(req.encoded_len()) {
                    break;
                }
                let token = match self.client.submit_deferred(&req) {
                    Ok(token) => token,
                    Err(e) => {
                        lost = Some(e.into());
                        break 'pipeline;
                    }
                };
                in_flight.push_back((token, next, bytes));
                flight_bytes += bytes;
                next += 1;
            }
            // Collect until half the window is free (or all, at the end), so that the next
            // batch is worth a wake-up of the daemon.
            while let Some(&(front, _, _)) = in_flight.front() {
                let flight = &mut in_flight;
                let res = &mut results;
                let fb = &mut flight_bytes;
                let collected = self.client.collect(front, |t, r| {
                    if let Some(pos) = flight.iter().position(|&(tok, _, _)| tok == t) {
                        let (_, index, bytes) = flight.remove(pos).unwrap_or((t, usize::MAX, 0));
                        *fb -= bytes;
                        if let Some(slot) = res.get_mut(index) {
                            *slot = Some(r.map_err(Error::from).and_then(fetched));
                        }
                    }
                });
                if let Err(e) = collected {
                    lost = Some(e.into());
                    break 'pipeline;
                }
                if next < items.len() && in_flight.len() <= PENDING / 2 && flight_bytes <= budget / 2 {
                    break;
                }
            }
        }
        let mut values = Vec::with_capacity(items.len());
        for (slot, &(name, _)) in results.into_iter().zip(items) {
            values.push(match slot {
                Some(Ok(Fetched::Whole(v))) => Ok(v),
                // A value larger than the buffer (GET answers CS_ERR_INVALID_PARAM only
                // then), or one corosync carried short: fetched again on its own.
                Some(Ok(Fetched::Truncated(_)) | Err(Error::Cs(CsError::InvalidParam))) if lost.is_none() => {
                    self.get(name)
                }
                Some(Ok(Fetched::Truncated(_)) | Err(Error::Cs(CsError::InvalidParam))) | None => {
                    Err(lost.clone().unwrap_or(Error::Disconnected))
                }
                Some(Err(e)) => Err(e.for_key(KeyOp::Get, name)),
            });
        }
        (values, lost)
    }

    /// Every key under `prefix` (all keys for `None`) with its value, in corosync's order: a
    /// fast full dump.
    ///
    /// The ITER_NEXT requests are pipelined (up to 16 in flight; the ones sent past the end
    /// answer `CS_ERR_NO_SECTIONS`), the iteration is finalized, and the values are then
    /// fetched with pipelined GETs of the lengths the iteration reported. A key deleted in
    /// between (`CS_ERR_NOT_EXIST`) is left out; a value that grew in between, or that
    /// corosync carried short, is fetched again.
    ///
    /// One key whose value cannot be read does not fail the dump: as `corosync-cmapctl`
    /// (which prints `Can't get value of KEY. Error ...` and goes on), its entry holds the
    /// GET's error (e.g. [`Error::Key`] with the daemon's answer) and the other keys follow.
    /// A connection lost while the values are read does not fail it either: the keys whose
    /// values came before hold them, every later key holds the connection error (e.g.
    /// [`Error::Disconnected`], [`Error::Timeout`]), so a caller can show what it had, as the C
    /// tool does. Lost while the keys are read, after at least one key came, every key read
    /// holds that error.
    ///
    /// # Errors
    /// Errors of the iteration, including a connection lost before any key came.
    pub fn dump(&mut self, prefix: Option<&str>) -> Result<Vec<(String, Result<OwnedValue>)>> {
        let (keys, outcome) = self.iter_pipelined(prefix);
        match outcome {
            Err(e @ (Error::Disconnected | Error::Timeout)) if !keys.is_empty() => {
                return Ok(keys.into_iter().map(|(k, _, _)| (k, Err(e.clone()))).collect());
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        let items: Vec<(&str, usize)> = keys
            .iter()
            .map(|(k, _, len)| (k.as_str(), usize::try_from(*len).unwrap_or(usize::MAX).max(8)))
            .collect();
        let (values, _lost) = self.get_pipelined(&items);
        Ok(keys
            .into_iter()
            .zip(values)
            .filter(|(_, v)| v.as_ref().err().and_then(Error::answered) != Some(CsError::NotExist))
            .map(|((k, _, _), v)| (k, v))
            .collect())
    }

    /// Starts an iteration over the keys under `prefix` (ITER_INIT); returns its handle.
    fn iter_init(&mut self, prefix: Option<&str>) -> Result<u64> {
        let prefix = prefix.map(key).transpose()?;
        let req = Request::IterInit { prefix };
        self.ready()?;
        self.client.call(&req, |r| match r {
            Response::IterInit { iter_handle } => Ok(iter_handle),
            _ => Err(OTHER_KIND),
        })
    }

    /// All of an iteration's items, with the ITER_NEXT requests pipelined; finalizes it. The
    /// items read before a failure come with it.
    fn iter_pipelined(&mut self, prefix: Option<&str>) -> (Vec<(String, ValueType, u64)>, Result<()>) {
        let handle = match self.iter_init(prefix) {
            Ok(handle) => handle,
            Err(e) => return (Vec::new(), Err(e)),
        };
        let ring = self.client.transport().reply_budget();
        let window = (ring.saturating_sub(RING_MARGIN) / ITER_REPLY_BYTES).clamp(1, ITER_WINDOW.min(PENDING));
        let next = Request::IterNext { iter_handle: handle };
        let mut keys = Vec::new();
        let mut in_flight: VecDeque<Token> = VecDeque::new();
        let mut ended = false;
        let mut failed: Option<Error> = None;
        let mut lost: Option<Error> = None;
        'pipeline: while !ended || !in_flight.is_empty() {
            while !ended && in_flight.len() < window {
                match self.client.submit_deferred(&next) {
                    Ok(token) => in_flight.push_back(token),
                    Err(e) => {
                        failed.get_or_insert(e.into());
                        ended = true;
                    }
                }
            }
            while let Some(&front) = in_flight.front() {
                let flight = &mut in_flight;
                let (keys, end, failed) = (&mut keys, &mut ended, &mut failed);
                let r = self.client.collect(front, |t, r| {
                    flight.retain(|&tok| tok != t);
                    match r.map_err(Error::from) {
                        // ITER_NEXT past the end answers CS_ERR_NO_SECTIONS again (checked
                        // against corosync 3.1.7); an item there means the iterator restarted.
                        Ok(_) if *end => {
                            failed.get_or_insert(Error::UnexpectedReply {
                                what: "an item after the end of the iteration",
                            });
                        }
                        Ok(Response::IterNext { key, value_len, value_type }) => match value_type {
                            Some(ty) => keys.push((
                                String::from_utf8_lossy(key.as_bytes()).into_owned(),
                                ty,
                                value_len,
                            )),
                            None => {
                                failed.get_or_insert(BAD_VALUE);
                                *end = true;
                            }
                        },
                        Ok(_) => {
                            failed.get_or_insert(OTHER_KIND);
                            *end = true;
                        }
                        Err(Error::Cs(CsError::NoSections)) => *end = true,
                        Err(e) => {
                            failed.get_or_insert(e);
                            *end = true;
                        }
                    }
                });
                // A broken connection: nothing more to finalize.
                if let Err(e) = r {
                    lost = Some(e.into());
                    break 'pipeline;
                }
                if !ended && in_flight.len() <= window / 2 {
                    break;
                }
            }
        }
        if let Some(e) = lost {
            return (keys, Err(e));
        }
        let fin = Request::IterFinalize { iter_handle: handle };
        let finalized = self.client.call(&fin, |_| Ok(()));
        let outcome = match failed {
            Some(e) => Err(e),
            None => finalized,
        };
        (keys, outcome)
    }

    /// Iterates over the keys under `prefix` (all keys for `None`), in corosync's order:
    /// `(key, type, value length)`. The iteration is finalized when the iterator is dropped.
    ///
    /// # Errors
    /// Errors of ITER_INIT; each item carries the errors of its ITER_NEXT.
    pub fn iter(&mut self, prefix: Option<&str>) -> Result<Iter<'_>> {
        let handle = self.iter_init(prefix)?;
        Ok(Iter { cmap: self, handle, done: false })
    }

    /// Starts tracking `key` (or, with [`TrackType::PREFIX`], every key under it; `None` is
    /// the root). `callback` runs from [`Cmap::dispatch`] for each change. It cannot call this
    /// handle (share state with it through what it captures instead), but it can stop the
    /// dispatch or finalize the connection through a [`Cmap::control`] it captured.
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` for a bad track type; `CS_ERR_NO_RESOURCES` with 64 tracks
    /// open; the connection errors.
    pub fn track_add(
        &mut self,
        key_name: Option<&str>,
        track_type: TrackType,
        callback: impl FnMut(&TrackNotification<'_>) + Send + 'static,
    ) -> Result<TrackHandle> {
        let track_key = key_name.map(key).transpose()?;
        let context = self.next_context;
        self.next_context += 1;
        self.ready()?;
        let daemon = add_track(&mut self.client, track_key, track_type, context)?;
        // The daemon's handle, unless an earlier track kept that value across a reconnect.
        let mut user = daemon;
        while self.tracks.values().any(|t| t.user.0 == user) {
            user = user.wrapping_add(1);
        }
        let track = Track {
            user: TrackHandle(user),
            daemon,
            key: key_name.map(str::to_owned),
            track_type,
            callback: Box::new(callback),
        };
        self.tracks.insert(context, track);
        Ok(TrackHandle(user))
    }

    /// Stops a track. Notifications already queued for it are skipped.
    ///
    /// # Errors
    /// `CS_ERR_BAD_HANDLE` for a track this connection does not have; the connection errors.
    pub fn track_delete(&mut self, track: TrackHandle) -> Result<()> {
        self.ready()?;
        let found = self.tracks.iter().find(|(_, t)| t.user == track).map(|(&c, t)| (c, t.daemon));
        // A handle this connection does not know goes to the daemon as is (it answers
        // CS_ERR_BAD_HANDLE, as to libcmap).
        let daemon = found.map_or(track.0, |(_, d)| d);
        let len = Request::TrackDelete { track_handle: daemon }.encoded_len();
        let token = self
            .client
            .submit_with(len, &mut |conn, now, timeout, out| conn.track_delete(daemon, now, timeout, out))?;
        self.client.finish(token, |_| Ok::<_, Error>(()))?;
        if let Some((context, _)) = found {
            self.tracks.remove(&context);
        }
        Ok(())
    }

    /// Delivers pending notifications to the tracks' callbacks, as `cmap_dispatch` does:
    /// [`DispatchMode::One`] waits for one, [`DispatchMode::All`] handles all pending ones
    /// without waiting, [`DispatchMode::OneNonBlocking`] handles one if pending (else
    /// `CS_ERR_TRY_AGAIN`), [`DispatchMode::Blocking`] runs until an error, a callback's
    /// [`Control::stop`], or its [`Control::finalize`] (then `CS_ERR_BAD_HANDLE`).
    ///
    /// # Errors
    /// [`CheckError::NothingPending`] (`CS_ERR_TRY_AGAIN`, see above),
    /// [`CheckError::Finalized`] (`CS_ERR_BAD_HANDLE`) once finalized,
    /// [`Error::Disconnected`], [`CheckError::Dispatch`] (`CS_ERR_LIBRARY`) for a malformed
    /// event. An event with an unknown id is skipped and counted, not reported.
    ///
    /// With [`Options::reconnect`], a lost connection is re-established first (the waiting
    /// modes wait at most the dispatch's time limit, or until the daemon is back;
    /// [`DispatchMode::All`] and [`DispatchMode::OneNonBlocking`] try once and never wait)
    /// and the dispatch ends with [`Error::Resync`] once; the tracks keep their handles and
    /// callbacks. While the daemon is down it fails with [`Error::Connect`].
    pub fn dispatch(&mut self, mode: DispatchMode) -> Result<()> {
        self.dispatch_within(mode, None)
    }

    fn dispatch_within(&mut self, mode: DispatchMode, timeout: Option<Duration>) -> Result<()> {
        self.watched(crate::resilient::dispatch_wait(mode, timeout), |cmap| {
            let tracks = &mut cmap.tracks;
            crate::client::dispatch(&mut cmap.client, mode, timeout, &cmap.control, |e: CmapEvent<'_>| {
                if let Some(t) = tracks.get_mut(&e.context) {
                    (t.callback)(&TrackNotification { track: t.user, ..TrackNotification::from(&e) });
                }
            })
        })
    }

    /// The next notification of any track, owned, without running the tracks' callbacks
    /// (pull style, beside [`Cmap::dispatch`]): waits at most `timeout` (`None`: for as long
    /// as the daemon lives) and returns `None` if none came.
    ///
    /// An event with an unknown id (or of a deleted track) is skipped, counted as the
    /// dispatch counts it, and the wait goes on.
    ///
    /// # Errors
    /// [`CheckError::Finalized`] (`CS_ERR_BAD_HANDLE`) once finalized,
    /// [`Error::Disconnected`], [`CheckError::Dispatch`] (`CS_ERR_LIBRARY`) for a malformed
    /// event.
    ///
    /// With [`Options::reconnect`], [`Error::Resync`] once after each reconnect (as
    /// [`Cmap::dispatch`]).
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<OwnedTrackNotification>> {
        self.watched(timeout, |cmap| {
            let tracks = &cmap.tracks;
            crate::client::next_event(&mut cmap.client, timeout, |e: CmapEvent<'_>| {
                let track = tracks.get(&e.context).map_or(TrackHandle(e.track_handle), |t| t.user);
                OwnedTrackNotification::from(&TrackNotification { track, ..TrackNotification::from(&e) })
            })
        })
    }
}

impl Resilient for Cmap {
    fn resilience(&mut self) -> Option<&mut Resilience> {
        self.resilience.as_mut()
    }

    /// Reconnects; then switches to the map in use and re-adds every track with its context.
    fn revive(&mut self, wait: Option<Duration>) -> Result<()> {
        let Some(r) = self.resilience.as_mut() else { return Ok(()) };
        let (map, tracks) = (self.map, &mut self.tracks);
        r.revive(&mut self.client, wait, |client| {
            if map != Map::Default {
                client.call(&Request::SetCurrentMap { map }, |_| Ok::<_, Error>(()))?;
            }
            for (&context, t) in tracks.iter_mut() {
                let track_key = t.key.as_deref().map(key).transpose()?;
                t.daemon = add_track(client, track_key, t.track_type, context)?;
            }
            Ok(())
        })
    }
}

/// Sends TRACK_ADD with `context` for the core's track table; the daemon's track handle.
fn add_track(
    client: &mut Conn,
    track_key: Option<Key<'_>>,
    track_type: TrackType,
    context: u64,
) -> Result<u64> {
    let len = Request::TrackAdd { key: track_key, track_type, track_inst_handle: 0 }.encoded_len();
    let token = client.submit_with(len, &mut |conn, now, timeout, out| {
        conn.track_add(track_key, track_type, context, now, timeout, out)
    })?;
    client.finish(token, |r| match r {
        Response::TrackAdd { track_handle } => Ok(track_handle),
        _ => Err(OTHER_KIND),
    })
}

impl<'a> From<&CmapEvent<'a>> for TrackNotification<'a> {
    fn from(e: &CmapEvent<'a>) -> Self {
        let n = &e.notification;
        TrackNotification {
            track: TrackHandle(e.track_handle),
            event: n.event,
            key_bytes: n.key.as_bytes(),
            new_value: n.new_value,
            old_value: n.old_value,
        }
    }
}

/// A change notification, owned ([`Cmap::next_event`]).
#[derive(Clone, PartialEq)]
pub struct OwnedTrackNotification {
    /// The track that reported it.
    pub track: TrackHandle,
    /// What happened.
    pub event: TrackEvent,
    /// The key that changed, as bytes.
    pub key_bytes: Vec<u8>,
    /// The new value (`None` for a delete).
    pub new_value: Option<OwnedValue>,
    /// The old value (`None` for an add).
    pub old_value: Option<OwnedValue>,
}

impl OwnedTrackNotification {
    /// The key that changed (keys are ASCII in practice; anything else is replaced lossily).
    pub fn key(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.key_bytes)
    }

    /// The notification, borrowed.
    pub fn as_notification(&self) -> TrackNotification<'_> {
        TrackNotification {
            track: self.track,
            event: self.event,
            key_bytes: &self.key_bytes,
            new_value: self.new_value.as_ref().map(OwnedValue::as_value),
            old_value: self.old_value.as_ref().map(OwnedValue::as_value),
        }
    }
}

/// As [`TrackNotification`]'s: the key as text.
/// As [`TrackNotification`]'s: `key` is [`OwnedTrackNotification::key`], the text of the
/// field `key_bytes`.
impl fmt::Debug for OwnedTrackNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_notification().debug_as("OwnedTrackNotification", f)
    }
}

/// As [`TrackNotification`]'s.
impl fmt::Display for OwnedTrackNotification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.as_notification().fmt(f)
    }
}

impl From<&TrackNotification<'_>> for OwnedTrackNotification {
    fn from(e: &TrackNotification<'_>) -> Self {
        Self {
            track: e.track,
            event: e.event,
            key_bytes: e.key_bytes.to_vec(),
            new_value: e.new_value.map(OwnedValue::from),
            old_value: e.old_value.map(OwnedValue::from),
        }
    }
}

/// A typed getter's error for a value of another type.
fn wrong_type(key: &str, expected: ValueType, found: &OwnedValue) -> Error {
    CheckError::WrongType { key: key.to_owned(), expected, actual: found.value_type() }.into()
}

/// What a GET reply carried.
enum Fetched {
    /// The whole value.
    Whole(OwnedValue),
    /// Fewer bytes than the stored length given here (docs/protocol.md §5.3): ask again with
    /// that length.
    Truncated(u64),
}

fn fetched(r: Response<'_>) -> Result<Fetched> {
    match r {
        Response::Get(g) if g.is_truncated() => Ok(Fetched::Truncated(g.value_len)),
        Response::Get(g) => g.typed().map(|v| Fetched::Whole(v.into())).ok_or(BAD_VALUE),
        _ => Err(OTHER_KIND),
    }
}

crate::client::client_handle!(Cmap, "cmap");

/// An iteration over keys ([`Cmap::iter`]); finalized on drop.
#[derive(Debug)]
pub struct Iter<'a> {
    cmap: &'a mut Cmap,
    handle: u64,
    done: bool,
}

impl Iterator for Iter<'_> {
    type Item = Result<(String, ValueType, u64)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let req = Request::IterNext { iter_handle: self.handle };
        let item = self.cmap.client.call(&req, |r| match r {
            Response::IterNext { key, value_len, value_type } => Ok((
                String::from_utf8_lossy(key.as_bytes()).into_owned(),
                value_type.ok_or(BAD_VALUE)?,
                value_len,
            )),
            _ => Err(OTHER_KIND),
        });
        match item {
            Err(Error::Cs(CsError::NoSections)) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
            Ok(v) => Some(Ok(v)),
        }
    }
}

impl Drop for Iter<'_> {
    fn drop(&mut self) {
        let req = Request::IterFinalize { iter_handle: self.handle };
        // Errors cannot be reported from drop; a lost connection frees the iterator anyway.
        let _ = self.cmap.client.call(&req, |_| Ok::<_, Error>(()));
    }
}
