//! Blocking CMAP and votequorum clients on a shared [`Link`]: the core's
//! [`Driver`] over a [`Port`], with typed calls in the shape of `corowire-unix`'s clients.

use core::cell::RefCell;
use core::fmt;

use corowire::cmap::{Key, Request, Response, TrackType, Value, ValueType};
use corowire::conn::{Connection, Service};
use corowire::driver::{Buffers, Driver, Flow};
use corowire::stream::Channel;
use corowire::transport::{BufferTooSmall, Transport};
use corowire::votequorum::{self, NodeInfo, TrackFlags};
use corowire::{Cmap, CsError, DispatchMode, Duration, Votequorum};
use embedded_io::{Read, ReadReady, Write};

use crate::blocking::{Link, Port};
use crate::mux::LinkError;

/// The error of a client call: the core driver's, with the link's errors as its transport's.
pub type Error<E> = corowire::driver::Error<LinkError<E>>;

/// `Result` of a client call over a stream whose errors are `E`.
pub type Result<T, E> = core::result::Result<T, Error<E>>;

use corowire::conn::CmapEvent;

/// A blocking client of service `S` on a [`Link`]: the core's [`Driver`] with four `BUF`-byte
/// buffers (request, reply, event read, event delivered), `P` requests in flight and an
/// event queue of `E` events in `EB` bytes. `BUF` must hold the negotiated maximum payload
/// ([`Client::new`] checks), so every reply and event fits.
pub struct Client<
    'l,
    S: Service,
    IO,
    const RX: usize,
    const Q: usize,
    const BUF: usize,
    const P: usize,
    const E: usize,
    const EB: usize,
> where
    IO: Read + Write + ReadReady,
{
    driver: Driver<S, Port<'l, IO, RX, Q>, [u8; BUF], P, E, EB>,
}

impl<
        S: Service,
        IO,
        const RX: usize,
        const Q: usize,
        const BUF: usize,
        const P: usize,
        const E: usize,
        const EB: usize,
    > fmt::Debug for Client<'_, S, IO, RX, Q, BUF, P, E, EB>
where
    IO: Read + Write + ReadReady,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("conn", self.driver.connection()).finish_non_exhaustive()
    }
}

/// A CMAP client (`libcmap`'s calls) with `TRACKS` tracks; see [`Client`] for the other
/// capacities.
pub type CmapClient<
    'l,
    IO,
    const RX: usize = 1030,
    const Q: usize = 1026,
    const BUF: usize = 1024,
    const TRACKS: usize = 4,
    const P: usize = 2,
    const E: usize = 4,
    const EB: usize = 1024,
> = Client<'l, Cmap<TRACKS>, IO, RX, Q, BUF, P, E, EB>;

/// A votequorum client (`libvotequorum`'s calls); see [`Client`] for the capacities.
pub type VotequorumClient<
    'l,
    IO,
    const RX: usize = 1030,
    const Q: usize = 1026,
    const BUF: usize = 1024,
    const P: usize = 2,
    const E: usize = 4,
    const EB: usize = 1024,
> = Client<'l, Votequorum, IO, RX, Q, BUF, P, E, EB>;

/// The service's channel on the stream.
pub trait OnStream: Service {
    /// The channel.
    const CHANNEL: Channel;
}

impl<const T: usize> OnStream for Cmap<T> {
    const CHANNEL: Channel = Channel::Cmap;
}

impl OnStream for Votequorum {
    const CHANNEL: Channel = Channel::Votequorum;
}

impl<
        'l,
        S,
        IO,
        const RX: usize,
        const Q: usize,
        const BUF: usize,
        const P: usize,
        const E: usize,
        const EB: usize,
    > Client<'l, S, IO, RX, Q, BUF, P, E, EB>
where
    S: OnStream,
    IO: Read + Write + ReadReady,
{
    /// The client of its service on `link`; each call waits at most `timeout` on the link's
    /// clock (`None`: as long as the gateway lives, as libcmap).
    ///
    /// # Errors
    /// [`LinkError::Refused`] (`CS_ERR_NOT_EXIST`) if the gateway did not accept the service;
    /// [`LinkError::BufferTooSmall`] if `BUF` is smaller than the negotiated payload (any
    /// reply or event could be that large: size the link's `RX` to `BUF + 6` or less).
    pub fn new(link: &'l RefCell<Link<IO, RX, Q>>, timeout: Option<Duration>) -> Result<Self, IO::Error> {
        let port = Port::new(link, S::CHANNEL).map_err(Error::Transport)?;
        let mut conn = Connection::new(0);
        // A fresh connection is connecting, so this cannot fail.
        conn.handle_stream_setup(fits::<BUF, _>(port.max_payload())?).map_err(Error::Protocol)?;
        let buffers = Buffers { request: [0; BUF], reply: [0; BUF], event: [0; BUF], scratch: [0; BUF] };
        Ok(Self { driver: Driver::new(conn, port, buffers, timeout, None) })
    }

    /// The core driver, for calls without a typed wrapper here
    /// ([`Driver::call`], [`Driver::submit`]).
    pub fn driver(&mut self) -> &mut Driver<S, Port<'l, IO, RX, Q>, [u8; BUF], P, E, EB> {
        &mut self.driver
    }

    /// The negotiated maximum message size.
    pub fn max_msg_size(&self) -> usize {
        self.driver.connection().max_msg_size()
    }

    /// `cmap_dispatch` / `votequorum_dispatch`: hands each event to `deliver` as `mode` says.
    ///
    /// # Errors
    /// As [`Driver::dispatch`].
    pub fn dispatch(
        &mut self,
        mode: DispatchMode,
        deliver: impl FnMut(S::Event<'_>) -> Flow,
    ) -> Result<(), IO::Error> {
        self.driver.dispatch(mode, None, deliver)
    }

    /// The next event (a CMAP [`CmapEvent`], a votequorum notification): waits for one (at
    /// most the client's timeout, on the link's clock) and hands it to `f`.
    ///
    /// # Errors
    /// `Error::Timeout` if none came in time (the client stays usable); as
    /// [`Client::dispatch`].
    pub fn next_event<R>(&mut self, f: impl FnOnce(&S::Event<'_>) -> R) -> Result<R, IO::Error> {
        let mut f = Some(f);
        let mut out = None;
        let deadline = self.driver.timeout().map(|t| self.driver.transport().now().saturating_add(t));
        self.driver.dispatch(DispatchMode::One, deadline, |e| {
            out = f.take().map(|f| f(&e));
            Flow::Stop
        })?;
        out.ok_or(Error::Disconnected)
    }

    /// `*_finalize`: the client refuses every later call with `CS_ERR_BAD_HANDLE`.
    pub fn finalize(&mut self) {
        self.driver.connection_mut().finalize();
    }
}

/// `max_payload`, if a client's `BUF`-byte buffers hold a frame that large.
pub(crate) fn fits<const BUF: usize, E>(max_payload: usize) -> Result<usize, E> {
    if max_payload > BUF {
        return Err(Error::Transport(LinkError::BufferTooSmall(BufferTooSmall {
            needed: max_payload,
            available: BUF,
        })));
    }
    Ok(max_payload)
}

/// A key by name (`CS_ERR_INVALID_PARAM` for an empty or too long one).
pub(crate) fn key<E>(name: &str) -> Result<Key<'_>, E> {
    Key::new(name.as_bytes()).map_err(|_| Error::Cs(CsError::InvalidParam))
}

/// A reply body that the connection matched to another request kind: cannot happen.
fn mismatch<T, E>() -> Result<T, E> {
    Err(Error::Cs(CsError::MessageError))
}

/// Bytes a GET reply needs besides the value.
const GET_REPLY_HEADER: usize = 40;

/// The GET of `key_name` asking for as many value bytes as a reply of `max_msg_size` holds.
pub(crate) fn get_request<E>(key_name: &str, max_msg_size: usize) -> Result<Request<'_>, E> {
    let value_len = max_msg_size.saturating_sub(GET_REPLY_HEADER) as u64;
    Ok(Request::Get { key: key(key_name)?, value_len })
}

/// A GET reply's value, handed to `f` (`CS_ERR_TOO_BIG` if it was cut).
pub(crate) fn get_value<R, E>(r: Response<'_>, f: impl FnOnce(Value<'_>) -> R) -> Result<R, E> {
    match r {
        Response::Get(g) => g.typed().map(f).ok_or(Error::Cs(CsError::TooBig)),
        _ => mismatch(),
    }
}

/// A GET of `key_name` with no value buffer: corosync answers with the type and the length.
pub(crate) fn type_request<E>(key_name: &str) -> Result<Request<'_>, E> {
    Ok(Request::Get { key: key(key_name)?, value_len: 0 })
}

/// The type and length in a reply to [`type_request`].
pub(crate) fn type_of<E>(r: Response<'_>) -> Result<(ValueType, u64), E> {
    match r {
        Response::Get(g) => g.value_type.map(|t| (t, g.value_len)).ok_or(Error::Cs(CsError::InvalidParam)),
        _ => mismatch(),
    }
}

/// A string value copied into `buf` (without its NUL): its length.
pub(crate) fn copy_string(v: Value<'_>, buf: &mut [u8]) -> core::result::Result<usize, CsError> {
    match v {
        Value::String(s) => {
            buf.get_mut(..s.len()).map(|d| d.copy_from_slice(s)).map(|()| s.len()).ok_or(CsError::NoSpace)
        }
        _ => Err(CsError::InvalidParam),
    }
}

/// The first `n` bytes of `buf` (filled by [`copy_string`]) as text.
pub(crate) fn as_text<E>(copied: core::result::Result<usize, CsError>, buf: &[u8]) -> Result<&str, E> {
    let n = copied.map_err(Error::Cs)?;
    core::str::from_utf8(&buf[..n]).map_err(|_| Error::Cs(CsError::InvalidParam))
}

/// A TRACK_ADD reply's track handle.
pub(crate) fn track_handle<E>(r: Response<'_>) -> Result<u64, E> {
    match r {
        Response::TrackAdd { track_handle } => Ok(track_handle),
        _ => mismatch(),
    }
}

/// A GETINFO reply's node information, handed to `f`.
pub(crate) fn node_info<R, E>(
    r: votequorum::Response<'_>,
    f: impl FnOnce(&NodeInfo<'_>) -> R,
) -> Result<R, E> {
    match r {
        votequorum::Response::GetInfo(info) => Ok(f(&info)),
        votequorum::Response::Status => mismatch(),
    }
}

macro_rules! typed_get {
    ($($get:ident $set:ident $ty:ty => $variant:ident;)*) => {$(
        #[doc = concat!("`cmap_", stringify!($get), "`: the `", stringify!($ty), "` under `key` (`CS_ERR_INVALID_PARAM` for another type).")]
        ///
        /// # Errors
        /// As [`Client::get`].
        pub fn $get(&mut self, key: &str) -> Result<$ty, IO::Error> {
            self.get(key, |v| if let Value::$variant(x) = v { Some(x) } else { None })?
                .ok_or(Error::Cs(CsError::InvalidParam))
        }

        #[doc = concat!("`cmap_", stringify!($set), "`: stores a `", stringify!($ty), "` under `key`.")]
        ///
        /// # Errors
        /// As [`Client::set`].
        pub fn $set(&mut self, key: &str, value: $ty) -> Result<(), IO::Error> {
            self.set(key, Value::$variant(value))
        }
    )*};
}

impl<
        IO,
        const RX: usize,
        const Q: usize,
        const BUF: usize,
        const T: usize,
        const P: usize,
        const E: usize,
        const EB: usize,
    > CmapClient<'_, IO, RX, Q, BUF, T, P, E, EB>
where
    IO: Read + Write + ReadReady,
{
    /// `cmap_get`: hands the value under `key` to `f` (it borrows the reply buffer).
    ///
    /// # Errors
    /// The daemon's `cs_error_t` (`CS_ERR_NOT_EXIST`, ...); `CS_ERR_TOO_BIG` for a value larger
    /// than a reply can carry; a link or protocol failure.
    pub fn get<R>(&mut self, key_name: &str, f: impl FnOnce(Value<'_>) -> R) -> Result<R, IO::Error> {
        let req = get_request(key_name, self.max_msg_size())?;
        self.driver.call(&req, |r| get_value(r, f))
    }

    /// `cmap_get_string`: the string under `key`, copied into `buf` (without its NUL).
    ///
    /// # Errors
    /// As [`Client::get`]; `CS_ERR_INVALID_PARAM` for another type or a string that is not
    /// UTF-8; `CS_ERR_NO_SPACE` if `buf` is too small.
    pub fn get_string<'b>(&mut self, key: &str, buf: &'b mut [u8]) -> Result<&'b str, IO::Error> {
        let copied = self.get(key, |v| copy_string(v, buf))?;
        as_text(copied, buf)
    }

    /// `cmap_get` with no buffer: the type and length of the value under `key`.
    ///
    /// # Errors
    /// As [`Client::get`].
    pub fn get_type(&mut self, key_name: &str) -> Result<(ValueType, u64), IO::Error> {
        self.driver.call(&type_request(key_name)?, type_of)
    }

    /// `cmap_set_string`: stores `value` under `key` (as corosync does, with a final NUL).
    ///
    /// # Errors
    /// As [`Client::set`].
    pub fn set_string(&mut self, key: &str, value: &str) -> Result<(), IO::Error> {
        self.set(key, Value::String(value.as_bytes()))
    }

    /// `cmap_set` of a binary value.
    ///
    /// # Errors
    /// As [`Client::set`].
    pub fn set_binary(&mut self, key: &str, value: &[u8]) -> Result<(), IO::Error> {
        self.set(key, Value::Binary(value))
    }

    /// `cmap_inc`: adds 1 to the integer under `key` (wrapping).
    ///
    /// # Errors
    /// As [`Client::set`]; `CS_ERR_INVALID_PARAM` for a value that is not an integer.
    pub fn inc(&mut self, key_name: &str) -> Result<(), IO::Error> {
        self.driver.call(&Request::AdjustInt { key: key(key_name)?, step: 1 }, |_| Ok(()))
    }

    /// `cmap_dec`: subtracts 1 from the integer under `key` (wrapping).
    ///
    /// # Errors
    /// As [`Client::inc`].
    pub fn dec(&mut self, key_name: &str) -> Result<(), IO::Error> {
        self.driver.call(&Request::AdjustInt { key: key(key_name)?, step: -1 }, |_| Ok(()))
    }

    /// The next tracked change ([`Client::next_event`] of a CMAP client).
    ///
    /// # Errors
    /// As [`Client::next_event`].
    pub fn next_change<R>(&mut self, f: impl FnOnce(&CmapEvent<'_>) -> R) -> Result<R, IO::Error> {
        self.next_event(f)
    }

    typed_get! {
        get_u8 set_u8 u8 => UInt8;
        get_i8 set_i8 i8 => Int8;
        get_u16 set_u16 u16 => UInt16;
        get_i16 set_i16 i16 => Int16;
        get_u32 set_u32 u32 => UInt32;
        get_i32 set_i32 i32 => Int32;
        get_u64 set_u64 u64 => UInt64;
        get_i64 set_i64 i64 => Int64;
    }

    /// `cmap_set`: stores `value` under `key`.
    ///
    /// # Errors
    /// The daemon's `cs_error_t` (`CS_ERR_ACCESS` for a read-only key or a gateway that does
    /// not grant writes), `CS_ERR_TOO_BIG`; a link or protocol failure.
    pub fn set(&mut self, key_name: &str, value: Value<'_>) -> Result<(), IO::Error> {
        let key = key(key_name)?;
        self.driver.call(&Request::Set { key, value }, |_| Ok(()))
    }

    /// `cmap_delete`.
    ///
    /// # Errors
    /// As [`Client::set`].
    pub fn delete(&mut self, key_name: &str) -> Result<(), IO::Error> {
        let key = key(key_name)?;
        self.driver.call(&Request::Delete { key }, |_| Ok(()))
    }

    /// `cmap_iter_init` / `cmap_iter_next` / `cmap_iter_finalize`: hands each key under
    /// `prefix` (all keys if `None`) with its type and value length to `f`, which may stop
    /// the iteration by returning `false`.
    ///
    /// # Errors
    /// As [`Client::get`]; `CS_ERR_INVALID_PARAM` for a key that is not UTF-8.
    pub fn iter(
        &mut self,
        prefix: Option<&str>,
        mut f: impl FnMut(&str, Option<ValueType>, u64) -> bool,
    ) -> Result<(), IO::Error> {
        let prefix = prefix.map(key).transpose()?;
        let iter_handle = self.driver.call(&Request::IterInit { prefix }, |r| match r {
            Response::IterInit { iter_handle } => Ok(iter_handle),
            _ => mismatch(),
        })?;
        let walk = loop {
            let more = self.driver.call(&Request::IterNext { iter_handle }, |r| match r {
                Response::IterNext { key, value_len, value_type } => {
                    match core::str::from_utf8(key.as_bytes()) {
                        Ok(k) => Ok(f(k, value_type, value_len)),
                        Err(_) => Err(Error::Cs(CsError::InvalidParam)),
                    }
                }
                _ => mismatch(),
            });
            match more {
                Ok(true) => {}
                Ok(false) | Err(Error::Cs(CsError::NoSections)) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        let done = self.driver.call(&Request::IterFinalize { iter_handle }, |_| Ok(()));
        walk.and(done)
    }

    /// `cmap_track_add`: tracks `key` (a prefix with [`TrackType::PREFIX`]); `context` comes
    /// back with each [`CmapEvent`]. Returns the track's handle.
    ///
    /// # Errors
    /// `SubmitError::TooManyTracks` once `TRACKS` are in use; as [`Client::set`].
    pub fn track_add(
        &mut self,
        key_name: &str,
        track_type: TrackType,
        context: u64,
    ) -> Result<u64, IO::Error> {
        let key = key(key_name)?;
        let len =
            Cmap::<T>::encoded_len(&Request::TrackAdd { key: Some(key), track_type, track_inst_handle: 0 });
        let token = self.driver.submit_with(len, &mut |conn, now, timeout, out| {
            conn.track_add(Some(key), track_type, context, now, timeout, out)
        })?;
        self.driver.finish(token, track_handle)
    }

    /// `cmap_track_delete`.
    ///
    /// # Errors
    /// `SubmitError::UnknownTrack` for a handle not of this client; as [`Client::set`].
    pub fn track_delete(&mut self, track_handle: u64) -> Result<(), IO::Error> {
        let len = Cmap::<T>::encoded_len(&Request::TrackDelete { track_handle });
        let token = self.driver.submit_with(len, &mut |conn, now, timeout, out| {
            conn.track_delete(track_handle, now, timeout, out)
        })?;
        self.driver.finish(token, |_| Ok(()))
    }
}

impl<
        IO,
        const RX: usize,
        const Q: usize,
        const BUF: usize,
        const P: usize,
        const E: usize,
        const EB: usize,
    > VotequorumClient<'_, IO, RX, Q, BUF, P, E, EB>
where
    IO: Read + Write + ReadReady,
{
    /// `votequorum_getinfo`: hands the node's information (`nodeid` 0: the local node) to `f`.
    ///
    /// # Errors
    /// The daemon's `cs_error_t`; a link or protocol failure.
    pub fn get_info<R>(&mut self, nodeid: u32, f: impl FnOnce(&NodeInfo<'_>) -> R) -> Result<R, IO::Error> {
        self.driver.call(&votequorum::Request::GetInfo { nodeid }, |r| node_info(r, f))
    }

    /// `votequorum_trackstart`: notifications as `flags` says, carrying `context`.
    ///
    /// # Errors
    /// As [`VotequorumClient::get_info`].
    pub fn track_start(&mut self, context: u64, flags: TrackFlags) -> Result<(), IO::Error> {
        self.driver.call(&votequorum::Request::TrackStart { context, flags }, |_| Ok(()))
    }

    /// `votequorum_trackstop`.
    ///
    /// # Errors
    /// As [`VotequorumClient::get_info`].
    pub fn track_stop(&mut self) -> Result<(), IO::Error> {
        self.driver.call(&votequorum::Request::TrackStop, |_| Ok(()))
    }

    /// `votequorum_setexpected`: the cluster's expected votes.
    ///
    /// # Errors
    /// As [`VotequorumClient::get_info`] (`CS_ERR_ACCESS` from a gateway without
    /// `--allow-votequorum-write`).
    pub fn set_expected(&mut self, expected_votes: u32) -> Result<(), IO::Error> {
        self.driver.call(&votequorum::Request::SetExpected { expected_votes }, |_| Ok(()))
    }

    /// `votequorum_setvotes`: the votes of node `nodeid`.
    ///
    /// # Errors
    /// As [`VotequorumClient::set_expected`].
    pub fn set_votes(&mut self, nodeid: u32, votes: u32) -> Result<(), IO::Error> {
        self.driver.call(&votequorum::Request::SetVotes { nodeid, votes }, |_| Ok(()))
    }
}
