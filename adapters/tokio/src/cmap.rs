//! The async CMAP client ([`Cmap`]), libcmap's calls as `async fn`s on a cloneable handle.

use core::sync::atomic::{AtomicU64, Ordering};
use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::oneshot;

use corowire::cmap::{Key, Request, Response, STORED_MAX_LEN};
use corowire::conn::{Cmap as CmapService, Token};
use corowire_unix::{
    CheckError, CsError, Error, KeyOp, Map, Options, OwnedTrackNotification, OwnedValue, Result, TrackHandle,
    TrackNotification, TrackType, Value, ValueType,
};

use crate::engine::{answer, Call, Conn, Handle, Hooks};
use crate::stream::{Link, Sink, Subscription, Tracked};

/// Tracks one connection holds.
const TRACKS: usize = 64;
/// Ring bytes of a request or reply beyond its key and value (headers, lengths).
const OVERHEAD: usize = 512;
/// The value buffer of a first GET: most values fit.
const FIRST_GET: usize = 256;
/// GETs [`Cmap::get`] sends at most while the value keeps changing size.
const GET_ATTEMPTS: usize = 4;

type Service = CmapService<TRACKS>;

/// A track's stream item: a change, or [`Tracked::Resync`] / [`Tracked::Lagged`].
pub type TrackItem = Tracked<OwnedTrackNotification>;

/// A CMAP track's stream ([`Cmap::track`]): dropping it deletes the track on the daemon.
pub type TrackStream = Subscription<OwnedTrackNotification>;

impl TrackStream {
    /// The track's handle: the one its notifications carry in
    /// [`OwnedTrackNotification::track`], the daemon's handle of the first TRACK_ADD, kept
    /// across reconnects as the blocking client keeps it (the re-created track's new handle
    /// is mapped to it).
    pub fn track_handle(&self) -> TrackHandle {
        TrackHandle(self.track)
    }
}

/// One open track, as the connection thread keeps it.
#[derive(Debug)]
struct TrackEntry {
    key: Option<String>,
    track_type: TrackType,
    /// The server's handle on the current connection.
    handle: u64,
    /// The handle the stream's notifications carry: the server's first one, kept across
    /// reconnects (as the blocking client keeps it).
    shown: TrackHandle,
    sink: Sink<OwnedTrackNotification>,
}

/// CMAP's subscriptions: the tracks by the context given to the core's track table, and
/// the map to switch to after a reconnect.
#[derive(Debug)]
pub(crate) struct CmapHooks {
    map: Map,
    tracks: HashMap<u64, TrackEntry>,
    link: Link,
}

/// Sends a TRACK_ADD for `key` with `context` for its notifications.
fn submit_track_add(
    conn: &mut Conn<Service>,
    key: Option<&str>,
    track_type: TrackType,
    context: u64,
) -> Result<Token> {
    let key = key.map(checked_key).transpose()?;
    let len = Request::TrackAdd { key, track_type, track_inst_handle: 0 }.encoded_len();
    Ok(conn.submit_with(len, &mut |c, now, timeout, out| {
        c.track_add(key, track_type, context, now, timeout, out)
    })?)
}

fn track_handle(r: Result<Response<'_>>) -> Result<u64> {
    match r? {
        Response::TrackAdd { track_handle } => Ok(track_handle),
        _ => Err(other_kind()),
    }
}

impl Hooks<Service> for CmapHooks {
    fn deliver(&mut self, event: corowire::conn::CmapEvent<'_>) {
        if let Some(t) = self.tracks.get_mut(&event.context) {
            let mut n = OwnedTrackNotification::from(&TrackNotification::from(&event));
            n.track = t.shown;
            t.sink.push(n);
        }
    }

    fn sweep(&mut self, out: &mut Vec<Call<Service, Self>>) {
        self.tracks.retain(|_, t| {
            if !t.sink.is_closed() {
                t.sink.flush();
                return true;
            }
            let handle = t.handle;
            out.push(Call::detached(
                OVERHEAD,
                Box::new(move |conn| {
                    let len = Request::TrackDelete { track_handle: handle }.encoded_len();
                    Ok(conn.submit_with(len, &mut |c, now, timeout, out| {
                        c.track_delete(handle, now, timeout, out)
                    })?)
                }),
            ));
            false
        });
    }

    fn restore(&mut self, conn: &mut Conn<Service>) -> Result<()> {
        if self.map != Map::Default {
            conn.call(&Request::SetCurrentMap { map: self.map }, |_| Ok::<_, Error>(()))?;
        }
        for (&context, t) in &mut self.tracks {
            let token = submit_track_add(conn, t.key.as_deref(), t.track_type, context)?;
            t.handle = conn.finish(token, |r| track_handle(Ok(r)))?;
        }
        self.link.set(true);
        for t in self.tracks.values_mut() {
            t.sink.resync();
        }
        Ok(())
    }

    fn disconnected(&mut self) {
        self.link.set(false);
        for t in self.tracks.values_mut() {
            t.sink.disconnected();
        }
    }

    fn is_idle(&self) -> bool {
        self.tracks.is_empty()
    }

    fn close(&mut self) {
        self.tracks.clear();
    }
}

fn checked_key(name: &str) -> Result<Key<'_>> {
    Key::new(name.as_bytes()).map_err(|error| CheckError::KeyName { key: name.to_owned(), error }.into())
}

/// Writes `req` (announced with the connection thread's next flush).
fn send(conn: &mut Conn<Service>, req: &Request<'_>) -> Result<Token> {
    Ok(conn.submit_deferred(req)?)
}

/// A typed getter's error for a value of another type.
fn wrong_type(key: &str, expected: ValueType, found: &OwnedValue) -> Error {
    CheckError::WrongType { key: key.to_owned(), expected, actual: found.value_type() }.into()
}

/// A reply carrying a value type this client does not know.
const UNKNOWN_TYPE: Error = Error::UnexpectedReply { what: "a value of an unknown type" };

fn other_kind() -> Error {
    Error::UnexpectedReply { what: "a reply of another kind" }
}

/// The daemon's answer to a key operation, with the key.
fn for_key(e: Error, op: KeyOp, key: &str) -> Error {
    match e {
        Error::Cs(error) => Error::Key { op, key: key.to_owned(), error },
        e => e,
    }
}

/// A GET of `key` (checked by the caller) with a `len`-byte value buffer.
fn get_call(key: &str, len: usize) -> (Call<Service, CmapHooks>, oneshot::Receiver<Result<Fetched>>) {
    let name = key.to_owned();
    let submit = move |conn: &mut Conn<Service>| {
        send(conn, &Request::Get { key: checked_key(&name)?, value_len: len as u64 })
    };
    Call::answering(len + OVERHEAD + key.len(), Box::new(submit), |_, r| match r? {
        Response::Get(g) if g.is_truncated() => Ok(Fetched::Truncated(g.value_len)),
        Response::Get(g) => g.typed().map(|v| Fetched::Whole(v.into())).ok_or(UNKNOWN_TYPE),
        _ => Err(other_kind()),
    })
}

/// What a GET reply carried.
enum Fetched {
    /// The whole value.
    Whole(OwnedValue),
    /// Fewer bytes than the stored length given here: ask again with that length.
    Truncated(u64),
}

/// An async connection to corosync's CMAP service, cheap to clone: clones share the one
/// connection, and requests from all of them are pipelined on it. The connection (and its
/// thread) ends when the last clone and the last [`TrackStream`] are dropped.
#[derive(Clone)]
pub struct Cmap {
    handle: Arc<Handle<Service, CmapHooks>>,
    next_context: Arc<AtomicU64>,
    max_value: usize,
    link: Link,
}

impl core::fmt::Debug for Cmap {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Cmap").field("timeout", &self.handle.timeout).finish_non_exhaustive()
    }
}

macro_rules! typed {
    ($(($get:ident, $set:ident, $ty:ty, $variant:ident)),* $(,)?) => {
        $(
            #[doc = concat!("Gets a `", stringify!($ty), "` value (`cmap_get_", stringify!($ty), "`).")]
            ///
            /// # Errors
            /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type.
            pub async fn $get(&self, key: &str) -> Result<$ty> {
                match self.get(key).await? {
                    OwnedValue::$variant(v) => Ok(v),
                    other => Err(wrong_type(key, ValueType::$variant, &other)),
                }
            }

            #[doc = concat!("Sets a `", stringify!($ty), "` value (`cmap_set_", stringify!($ty), "`).")]
            ///
            /// # Errors
            /// As [`Cmap::set`].
            pub async fn $set(&self, key: &str, value: $ty) -> Result<()> {
                self.set(key, Value::$variant(value)).await
            }
        )*
    };
}

impl Cmap {
    /// Connects with the default [`Options`] (`cmap_initialize`).
    ///
    /// # Errors
    /// [`Error::Connect`] if no daemon listens or it refuses; other errors of the handshake.
    pub async fn connect() -> Result<Self> {
        Self::connect_with(Options::default()).await
    }

    /// Connects with `options`: `timeout` bounds every call, `reconnect` makes the
    /// connection wait for the daemon at start and survive its restarts, `map` is switched
    /// to at once (and again after each reconnect). `max_msg_size` bounds the values this
    /// handle gets and sets (less 512 bytes of headers); use [`Options::for_tracking`] for a
    /// connection with tracks. There is no `max_msg_size()` accessor as the blocking
    /// client's: the size is negotiated again at each reconnect, and the one asked for is
    /// what bounds the calls.
    ///
    /// # Errors
    /// As [`Cmap::connect`] (after `reconnect.start_wait` if set), and the map switch's.
    pub async fn connect_with(options: Options) -> Result<Self> {
        let map = options.map;
        let max_value = STORED_MAX_LEN.min((options.max_msg_size as usize).saturating_sub(OVERHEAD));
        let link = Link::up();
        let hooks = CmapHooks { map: Map::Default, tracks: HashMap::new(), link: link.clone() };
        let handle = Arc::new(Handle::start(options, hooks).await?);
        let cmap = Self { handle, next_context: Arc::new(AtomicU64::new(1)), max_value, link };
        if map != Map::Default {
            cmap.set_current_map(map).await?;
        }
        Ok(cmap)
    }

    /// Sends one request (`submit`, on the connection thread) and converts its reply.
    async fn request<R: Send + 'static>(
        &self,
        weight: usize,
        submit: impl FnOnce(&mut Conn<Service>) -> Result<Token> + Send + 'static,
        convert: impl for<'a> FnOnce(&mut CmapHooks, Result<Response<'a>>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.handle.request(move || Call::answering(weight, Box::new(submit), convert)).await
    }

    /// Sends the request `req` builds for `key` (on the connection thread) and converts its
    /// reply; the daemon's answer names the key (`op`).
    async fn on_key<R: Send + 'static>(
        &self,
        op: KeyOp,
        key: &str,
        weight: usize,
        submit: impl FnOnce(&mut Conn<Service>, Key<'_>) -> Result<Token> + Send + 'static,
        convert: impl for<'a> FnOnce(Response<'a>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        checked_key(key)?;
        let name = key.to_owned();
        self.request(
            weight + key.len(),
            move |conn| submit(conn, checked_key(&name)?),
            move |_, r| convert(r?),
        )
        .await
        .map_err(|e| for_key(e, op, key))
    }

    /// One GET with a `len`-byte value buffer.
    async fn get_sized(&self, key: &str, len: usize) -> Result<Fetched> {
        checked_key(key)?;
        self.handle.request(|| get_call(key, len)).await.map_err(|e| for_key(e, KeyOp::Get, key))
    }

    /// What a first GET (256-byte buffer) answered: the value, or [`Cmap::get`]'s.
    async fn complete_get(&self, key: &str, first: Result<Fetched>) -> Result<OwnedValue> {
        match first.map_err(|e| for_key(e, KeyOp::Get, key)) {
            Ok(Fetched::Whole(v)) => Ok(v),
            Ok(Fetched::Truncated(_)) | Err(Error::Key { error: CsError::InvalidParam, .. }) => {
                self.get(key).await
            }
            Err(e) => Err(e),
        }
    }

    /// Gets the value of `key` (`cmap_get`). Asks with a 256-byte buffer first, then with
    /// the value's length if it is longer (at most 4 GETs).
    ///
    /// # Errors
    /// [`Error::Key`] with `CS_ERR_NOT_EXIST` for a missing key, `CS_ERR_NAME_TOO_LONG`;
    /// [`CheckError::TooBig`] for a value larger than the negotiated message size;
    /// [`CheckError::ValueKeptChanging`]; [`Error::Timeout`]; [`Error::Disconnected`].
    pub async fn get(&self, key: &str) -> Result<OwnedValue> {
        let mut len = FIRST_GET.min(self.max_value);
        for _ in 0..GET_ATTEMPTS {
            let need = match self.get_sized(key, len).await {
                Ok(Fetched::Whole(v)) => return Ok(v),
                Ok(Fetched::Truncated(stored)) => stored,
                // GET answers CS_ERR_INVALID_PARAM for a buffer smaller than the value.
                Err(Error::Key { error: CsError::InvalidParam, .. }) if len < self.max_value => {
                    self.get_type(key).await?.1
                }
                Err(e) => return Err(e),
            };
            let need = usize::try_from(need).unwrap_or(usize::MAX);
            if need > self.max_value {
                return Err(
                    CheckError::TooBig { key: Some(key.to_owned()), len: need, max: self.max_value }.into()
                );
            }
            len = need.max(len.saturating_add(1)).min(self.max_value);
        }
        Err(CheckError::ValueKeptChanging { key: key.to_owned(), attempts: GET_ATTEMPTS }.into())
    }

    /// The type and length of `key`'s value (a GET with no buffer).
    ///
    /// # Errors
    /// As [`Cmap::get`].
    pub async fn get_type(&self, key: &str) -> Result<(ValueType, u64)> {
        self.on_key(
            KeyOp::Get,
            key,
            OVERHEAD,
            |c, key| send(c, &Request::Get { key, value_len: 0 }),
            |r| match r {
                Response::Get(g) => Ok((g.value_type.ok_or(UNKNOWN_TYPE)?, g.value_len)),
                _ => Err(other_kind()),
            },
        )
        .await
    }

    /// The values of `keys`, all requests in flight together (as corowire-unix's
    /// `get_many`); each result as [`Cmap::get`]'s.
    ///
    /// # Errors
    /// None of its own: each key has its result, the connection errors included (the
    /// blocking `get_many` returns those once, as the outer `Result`; here a loss fails
    /// the keys not answered yet with [`Error::Disconnected`] and the others keep their
    /// values).
    pub async fn get_many(&self, keys: &[&str]) -> Vec<Result<OwnedValue>> {
        let first = FIRST_GET.min(self.max_value);
        // Send every first GET (as the window allows) before awaiting any answer.
        let mut sent = Vec::with_capacity(keys.len());
        for &key in keys {
            let rx = match checked_key(key) {
                Ok(_) => self.handle.within(self.handle.enqueue(|| get_call(key, first))).await,
                Err(e) => Err(e),
            };
            sent.push(rx);
        }
        let mut out = Vec::with_capacity(keys.len());
        for (key, rx) in keys.iter().zip(sent) {
            let fetched = match rx {
                Ok(rx) => self.handle.within(answer(rx)).await,
                Err(e) => Err(e),
            };
            out.push(self.complete_get(key, fetched).await);
        }
        out
    }

    /// Sets `key` to `value`, creating it (`cmap_set`).
    ///
    /// # Errors
    /// [`Error::Key`] with corosync's answer (e.g. `CS_ERR_ACCESS` for a read-only key);
    /// the connection errors.
    pub async fn set(&self, key: &str, value: Value<'_>) -> Result<()> {
        let value = OwnedValue::from(value);
        let weight = value.wire_len() + OVERHEAD;
        self.on_key(
            KeyOp::Set,
            key,
            weight,
            move |c, key| send(c, &Request::Set { key, value: value.as_value() }),
            |_| Ok(()),
        )
        .await
    }

    /// Sets a string value (`cmap_set_string`).
    ///
    /// # Errors
    /// As [`Cmap::set`].
    pub async fn set_string(&self, key: &str, value: &str) -> Result<()> {
        self.set(key, Value::String(value.as_bytes())).await
    }

    /// Gets a string value (`cmap_get_string`), without its NUL; bytes that are not UTF-8
    /// become U+FFFD.
    ///
    /// # Errors
    /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type.
    pub async fn get_string(&self, key: &str) -> Result<String> {
        match self.get(key).await? {
            OwnedValue::String(v) => Ok(String::from_utf8_lossy(&v).into_owned()),
            other => Err(wrong_type(key, ValueType::String, &other)),
        }
    }

    /// Gets a binary value.
    ///
    /// # Errors
    /// As [`Cmap::get`], and [`CheckError::WrongType`] for a value of another type.
    pub async fn get_binary(&self, key: &str) -> Result<Vec<u8>> {
        match self.get(key).await? {
            OwnedValue::Binary(v) => Ok(v),
            other => Err(wrong_type(key, ValueType::Binary, &other)),
        }
    }

    /// Sets a binary value.
    ///
    /// # Errors
    /// As [`Cmap::set`].
    pub async fn set_binary(&self, key: &str, value: &[u8]) -> Result<()> {
        self.set(key, Value::Binary(value)).await
    }

    typed! {
        (get_u8, set_u8, u8, UInt8), (get_i8, set_i8, i8, Int8),
        (get_u16, set_u16, u16, UInt16), (get_i16, set_i16, i16, Int16),
        (get_u32, set_u32, u32, UInt32), (get_i32, set_i32, i32, Int32),
        (get_u64, set_u64, u64, UInt64), (get_i64, set_i64, i64, Int64),
        (get_float, set_float, f32, Float), (get_double, set_double, f64, Double),
    }

    /// Deletes `key` (`cmap_delete`).
    ///
    /// # Errors
    /// [`Error::Key`] with `CS_ERR_NOT_EXIST` for a missing key; the connection errors.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.on_key(KeyOp::Delete, key, OVERHEAD, |c, key| send(c, &Request::Delete { key }), |_| Ok(()))
            .await
    }

    /// Adds 1 to the integer at `key`, wrapping (`cmap_inc`).
    ///
    /// # Errors
    /// [`Error::Key`] with `CS_ERR_INVALID_PARAM` for a value that is not an integer.
    pub async fn inc(&self, key: &str) -> Result<()> {
        self.on_key(
            KeyOp::Inc,
            key,
            OVERHEAD,
            |c, key| send(c, &Request::AdjustInt { key, step: 1 }),
            |_| Ok(()),
        )
        .await
    }

    /// Subtracts 1 from the integer at `key`, wrapping (`cmap_dec`).
    ///
    /// # Errors
    /// As [`Cmap::inc`].
    pub async fn dec(&self, key: &str) -> Result<()> {
        self.on_key(
            KeyOp::Dec,
            key,
            OVERHEAD,
            |c, key| send(c, &Request::AdjustInt { key, step: -1 }),
            |_| Ok(()),
        )
        .await
    }

    /// Switches this connection (every clone) to `map`: [`Map::Stats`] is corosync's
    /// statistics map (`cmap_initialize_map`). Kept across reconnects.
    ///
    /// # Errors
    /// The connection errors.
    pub async fn set_current_map(&self, map: Map) -> Result<()> {
        let submit = move |conn: &mut Conn<Service>| send(conn, &Request::SetCurrentMap { map });
        self.request(OVERHEAD, submit, move |hooks, r| {
            r?;
            hooks.map = map;
            Ok(())
        })
        .await
    }

    /// The keys under `prefix` (all keys for `None`) with their types and value lengths, in
    /// corosync's order (`cmap_iter_init`, `cmap_iter_next`, `cmap_iter_finalize`).
    ///
    /// All at once, where the blocking client's `iter` yields them one by one: an
    /// iteration holds an iterator handle on the daemon until ITER_FINALIZE, and an async
    /// stream of keys would keep it open for as long as its consumer pauses (or leak it if
    /// dropped while the connection thread is away), so this call walks the whole
    /// iteration and finalizes it before it returns. Even corosync's whole map is a few
    /// thousand keys; for a large subtree, narrow the `prefix`.
    ///
    /// # Errors
    /// ITER_INIT's and ITER_NEXT's errors; the connection errors.
    pub async fn keys(&self, prefix: Option<&str>) -> Result<Vec<(String, ValueType, u64)>> {
        let prefix = prefix.map(|p| checked_key(p).map(|_| p.to_owned())).transpose()?;
        let init = move |conn: &mut Conn<Service>| {
            let prefix = prefix.as_deref().map(checked_key).transpose()?;
            send(conn, &Request::IterInit { prefix })
        };
        let iter = self
            .request(OVERHEAD, init, |_, r| match r? {
                Response::IterInit { iter_handle } => Ok(iter_handle),
                _ => Err(other_kind()),
            })
            .await?;
        let mut keys = Vec::new();
        let result = loop {
            let submit = move |conn: &mut Conn<Service>| send(conn, &Request::IterNext { iter_handle: iter });
            let next = self
                .request(OVERHEAD, submit, |_, r| match r {
                    Ok(Response::IterNext { key, value_len, value_type }) => Ok(Some((
                        String::from_utf8_lossy(key.as_bytes()).into_owned(),
                        value_type.ok_or(UNKNOWN_TYPE)?,
                        value_len,
                    ))),
                    Err(Error::Cs(CsError::NoSections)) => Ok(None),
                    Err(e) => Err(e),
                    Ok(_) => Err(other_kind()),
                })
                .await;
            match next {
                Ok(Some(k)) => keys.push(k),
                Ok(None) => break Ok(keys),
                Err(e) => break Err(e),
            }
        };
        let submit = move |conn: &mut Conn<Service>| send(conn, &Request::IterFinalize { iter_handle: iter });
        let finalize = self.request(OVERHEAD, submit, |_, r| r.map(drop)).await;
        let keys = result?;
        finalize.map(|()| keys)
    }

    /// Every key under `prefix` with its value, the GETs pipelined (what
    /// `corosync-cmapctl` prints).
    ///
    /// # Errors
    /// As [`Cmap::keys`]; each value has [`Cmap::get`]'s result.
    pub async fn dump(&self, prefix: Option<&str>) -> Result<Vec<(String, Result<OwnedValue>)>> {
        let keys = self.keys(prefix).await?;
        let names: Vec<&str> = keys.iter().map(|(k, _, _)| k.as_str()).collect();
        let values = self.get_many(&names).await;
        Ok(keys.iter().map(|(k, _, _)| k.clone()).zip(values).collect())
    }

    /// Starts tracking `key` (or with [`TrackType::PREFIX`] every key under it; `None` is the
    /// root) (`cmap_track_add`). The changes come on the returned stream, each with its old
    /// and new value; dropping the stream deletes the track (`cmap_track_delete`: there is
    /// no separate call). At a loss the stream gets [`Tracked::Disconnected`]; after a
    /// reconnect the track is added again, under the same
    /// [`track_handle`](TrackStream::track_handle), and the stream gets [`Tracked::Resync`].
    ///
    /// As corosync does, a SET that writes the value the key has already makes no
    /// notification. Connect with [`Options::for_tracking`] (1 MiB rings): with the default
    /// 64 KiB rings, a burst of changes backs up in corosync.
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` for a bad track type; [`CheckError::Refused`] with 64 tracks
    /// open; the connection errors.
    pub async fn track(&self, key: Option<&str>, track_type: TrackType) -> Result<TrackStream> {
        let key = key.map(|k| checked_key(k).map(|_| k.to_owned())).transpose()?;
        let context = self.next_context.fetch_add(1, Ordering::Relaxed);
        let (mut stream, sink) = Subscription::new(self.handle.closer());
        let name = key.clone();
        let submit =
            move |conn: &mut Conn<Service>| submit_track_add(conn, name.as_deref(), track_type, context);
        let handle = self
            .request(OVERHEAD, submit, move |hooks, r| {
                let handle = track_handle(r)?;
                let shown = TrackHandle(handle);
                hooks.tracks.insert(context, TrackEntry { key, track_type, handle, shown, sink });
                Ok(handle)
            })
            .await?;
        stream.track = handle;
        Ok(stream)
    }

    /// Whether the connection to the daemon is up now: `false` from the moment the
    /// connection thread sees a loss (when the streams get
    /// [`Tracked::Disconnected`]) until it connected again (with `Options::reconnect`;
    /// without it, for good). A snapshot: the daemon may die just after.
    pub fn is_connected(&self) -> bool {
        self.link.is_up()
    }

    /// Rounds of the connection thread's loop so far (for the idle-CPU proof: an idle
    /// connection makes none). Only with the `testing` feature, for this crate's tests.
    #[cfg(feature = "testing")]
    pub fn rounds(&self) -> u64 {
        self.handle.stats.rounds.load(Ordering::Relaxed)
    }

    /// The most requests this connection had in flight at once (for the pipelining proof).
    /// Only with the `testing` feature, for this crate's tests.
    #[cfg(feature = "testing")]
    pub fn peak_in_flight(&self) -> u64 {
        self.handle.stats.peak_in_flight.load(Ordering::Relaxed)
    }
}
