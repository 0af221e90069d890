//! The async link over `embedded_io_async::{Read, Write}` (for embassy, or tokio through an
//! adapter) and its clients. A client owns its connection and buffers but not the link: each
//! call borrows the [`AsyncLink`], so a CMAP and a votequorum client share one stream
//! without locks.
//!
//! Cancel safety and time bounds: see [`AsyncClient`].

use core::fmt;

use corowire::cmap::{Request, TrackType, Value, ValueType};
use corowire::conn::{CmapEvent, Connection, HandleError, Polled, Service};
use corowire::stream::{Accept, Channel, Kind, Services};
use corowire::votequorum::{self, NodeInfo, TrackFlags};
use corowire::CsError;
use corowire::{Cmap, Votequorum};
use embedded_io_async::{Read, Write};

use crate::client::{
    as_text, copy_string, fits, get_request, get_value, key, node_info, track_handle, type_of, type_request,
    Error, OnStream, Result,
};
use crate::mux::{frame_parts, LinkError, Mux};

/// One stream to a gateway, async: `RX` bytes of frame reader, four `Q`-byte queues (see
/// [`Link`](crate::Link)).
pub struct AsyncLink<IO, const RX: usize = 1030, const Q: usize = 1026> {
    io: IO,
    mux: Mux<RX, Q>,
    /// Set while a frame is written, cleared once it is all written and flushed: still set
    /// at the next call if the call writing it was dropped or its write failed.
    writing: bool,
}

impl<IO, const RX: usize, const Q: usize> fmt::Debug for AsyncLink<IO, RX, Q> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLink").field("accepted", &self.mux.accepted()).finish_non_exhaustive()
    }
}

impl<IO: Read + Write, const RX: usize, const Q: usize> AsyncLink<IO, RX, Q> {
    /// A link over `io`; nothing is sent until [`AsyncLink::connect`].
    pub const fn new(io: IO) -> Self {
        Self { io, mux: Mux::new(), writing: false }
    }

    /// Sends the hello asking for `services` and waits for the gateway's accept; returns it.
    /// As [`Link::connect`](crate::Link::connect): it starts the link over (also the recovery
    /// after [`LinkError::Reset`]), and the link keeps its stream whatever happens. It takes
    /// no deadline: bound it with `embassy_time::with_timeout` (a connect dropped while
    /// writing the hello leaves the link [`LinkError::OutOfStep`]).
    ///
    /// # Errors
    /// [`LinkError::Refused`] with the gateway's `cs_error_t`; a stream or framing error.
    pub async fn connect(
        &mut self,
        services: Services,
    ) -> core::result::Result<Accept, LinkError<IO::Error>> {
        self.in_step()?;
        self.mux = Mux::new();
        let hello = self.mux.hello(services);
        let mut out = [0u8; 16];
        let n = hello.encode(&mut out).map_err(LinkError::Encode)?;
        self.writing = true;
        self.io.write_all(&out[..n]).await.map_err(LinkError::Io)?;
        self.io.flush().await.map_err(LinkError::Io)?;
        self.writing = false;
        loop {
            if let Some(accepted) = self.mux.accepted() {
                return Ok(accepted);
            }
            self.read_some().await?;
        }
    }

    /// What the gateway granted; `None` before [`AsyncLink::connect`] succeeded.
    pub fn accepted(&self) -> Option<Accept> {
        self.mux.accepted()
    }

    /// The stream, e.g. to close it.
    pub fn into_inner(self) -> IO {
        self.io
    }

    async fn read_some(&mut self) -> core::result::Result<(), LinkError<IO::Error>> {
        let n = self.io.read(self.mux.space()).await.map_err(LinkError::Io)?;
        if n == 0 {
            return Err(self.mux.closed());
        }
        self.mux.filled(n)
    }

    /// [`LinkError::OutOfStep`] if a frame was left half-written (see [`AsyncClient`]).
    fn in_step(&mut self) -> core::result::Result<(), LinkError<IO::Error>> {
        if self.writing {
            return Err(self.mux.out_of_step());
        }
        Ok(())
    }

    async fn recv(
        &mut self,
        channel: Channel,
        kind: Kind,
        out: &mut [u8],
    ) -> core::result::Result<usize, LinkError<IO::Error>> {
        self.in_step()?;
        loop {
            if let Some(n) = self.mux.pop(channel, kind, out)? {
                return Ok(n);
            }
            self.read_some().await?;
        }
    }

    async fn send(
        &mut self,
        channel: Channel,
        payload: &[u8],
    ) -> core::result::Result<(), LinkError<IO::Error>> {
        self.in_step()?;
        self.mux.check(channel)?;
        let (header, trailer) = frame_parts(channel, payload)?;
        self.writing = true;
        for part in [&header[..], payload, &trailer[..]] {
            self.io.write_all(part).await.map_err(LinkError::Io)?;
        }
        self.mux.sent(channel);
        self.io.flush().await.map_err(LinkError::Io)?;
        self.writing = false;
        Ok(())
    }
}

/// An async client of service `S`: its connection (`P` requests in flight, which a
/// sequential client never exceeds; `E` events in `EB` bytes) and three `BUF`-byte buffers
/// (request, reply, event). Each call takes the link it runs on.
///
/// # Cancel safety
///
/// A call's future may be dropped at any `.await` (by `embassy_time::with_timeout`, a
/// `select`, or by the task being dropped). What then happens depends on where it was:
///
/// - **Waiting for its reply** (the request was written and flushed), or in
///   [`next_event`](Self::next_event) waiting for an event: harmless, provided the stream's
///   `read` is cancel-safe (a dropped `read` consumed no byte it did not return, as with
///   tokio's streams and embassy's buffered UARTs). Frames read so far stay queued in the
///   link. A request whose reply did not come yet stays outstanding in the connection: the
///   next call takes and discards that reply before its own, so replies never go to the
///   wrong call. A stream whose dropped `read` loses bytes (a DMA transfer cut short) breaks
///   the framing: the next frame fails its CRC or sync check and the link fails with
///   [`LinkError::Frame`].
/// - **Writing its request** (the stream's `write` or `flush` had not finished): part of a
///   frame may be on the stream, and anything written after it would be misread by the
///   gateway. The link records this, and every later call on it, by either client, fails
///   at once with [`LinkError::OutOfStep`] (as `Error::Transport`), writing and reading
///   nothing; the connection of the dropped call is closed by the next call that meets it.
///   The same holds after a `write` that failed. Open a new link (on a socket, a new
///   connection; the gateway closes the old stream when it meets the broken frame, or after
///   its `--stall-timeout`).
///
/// # Bounding a call in time
///
/// The async calls take no deadline: wrap them, e.g. with embassy's
/// `embassy_time::with_timeout(Duration::from_secs(2), cmap.get(&mut link, key, f)).await`,
/// which gives `Err(TimeoutError)` and drops the call. After a timeout while waiting for a
/// reply (the usual case: the gateway or the daemon is slow), the link and both clients
/// stay usable; after one while writing (the stream did not take the bytes), the next call
/// reports [`LinkError::OutOfStep`]. The blocking clients take a timeout of their own
/// ([`Client::new`](crate::Client::new)).
pub struct AsyncClient<S: Service, const BUF: usize, const P: usize, const E: usize, const EB: usize> {
    conn: Connection<S, P, E, EB>,
    request: [u8; BUF],
    reply: [u8; BUF],
    event: [u8; BUF],
}

impl<S: Service, const BUF: usize, const P: usize, const E: usize, const EB: usize> fmt::Debug
    for AsyncClient<S, BUF, P, E, EB>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncClient").field("conn", &self.conn).finish_non_exhaustive()
    }
}

/// An async CMAP client with `TRACKS` tracks; see [`AsyncClient`] for the capacities.
pub type AsyncCmapClient<
    const BUF: usize = 1024,
    const TRACKS: usize = 4,
    const P: usize = 2,
    const E: usize = 4,
    const EB: usize = 1024,
> = AsyncClient<Cmap<TRACKS>, BUF, P, E, EB>;

/// An async votequorum client; see [`AsyncClient`] for the capacities.
pub type AsyncVotequorumClient<
    const BUF: usize = 1024,
    const P: usize = 2,
    const E: usize = 4,
    const EB: usize = 1024,
> = AsyncClient<Votequorum, BUF, P, E, EB>;

impl<S: OnStream, const BUF: usize, const P: usize, const E: usize, const EB: usize>
    AsyncClient<S, BUF, P, E, EB>
{
    /// The client of its service on `link`.
    ///
    /// # Errors
    /// As [`Client::new`](crate::Client::new): [`LinkError::Refused`] (`CS_ERR_NOT_EXIST`) if
    /// the gateway did not accept the service; [`LinkError::BufferTooSmall`] if `BUF` is
    /// smaller than the negotiated payload.
    pub fn new<IO: Read + Write, const RX: usize, const Q: usize>(
        link: &AsyncLink<IO, RX, Q>,
    ) -> Result<Self, IO::Error> {
        let accepted = link.accepted().filter(|a| a.services.contains(S::CHANNEL));
        let Some(accepted) = accepted else {
            return Err(Error::Transport(LinkError::Refused(CsError::NotExist)));
        };
        let mut conn = Connection::new(0);
        conn.handle_stream_setup(fits::<BUF, _>(usize::from(accepted.max_payload))?)
            .map_err(Error::Protocol)?;
        Ok(Self { conn, request: [0; BUF], reply: [0; BUF], event: [0; BUF] })
    }

    /// The protocol state.
    pub fn connection(&self) -> &Connection<S, P, E, EB> {
        &self.conn
    }

    /// One request, one reply: `f` turns the reply into the call's result.
    ///
    /// # Errors
    /// The daemon's answer ([`Error::Cs`]), a refused request ([`Error::Submit`],
    /// [`Error::TooBig`]), a link or protocol failure (the connection is then closed).
    pub async fn call<IO: Read + Write, const RX: usize, const Q: usize, R>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        req: &S::Request<'_>,
        f: impl FnOnce(S::Response<'_>) -> Result<R, IO::Error>,
    ) -> Result<R, IO::Error> {
        let len = S::encoded_len(req);
        let max = self.conn.max_msg_size();
        if len > max {
            return Err(Error::TooBig { len, max });
        }
        self.make_room(link).await?;
        let sub = self.conn.submit(req, corowire::Instant::from_millis(0), None, &mut self.request);
        self.finish(link, sub).await.and_then(|r| r.map_or_else(|e| Err(Error::Cs(e)), f))
    }

    /// While the replies of dropped calls fill the pipeline (`P`), waits for them and
    /// discards them, so that calls work again once the gateway answers.
    async fn make_room<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
    ) -> Result<(), IO::Error> {
        while self.conn.outstanding() == P {
            let n = match link.recv(S::CHANNEL, Kind::Reply, &mut self.reply).await {
                Ok(n) => n,
                Err(e) => return Err(self.lost(e)),
            };
            self.conn.handle_response(&self.reply[..n]).map_err(Error::Protocol)?;
        }
        Ok(())
    }

    /// Sends a submitted request and reads replies until its own.
    async fn finish<'s, IO: Read + Write, const RX: usize, const Q: usize>(
        &'s mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        sub: core::result::Result<corowire::conn::Submitted, corowire::conn::SubmitError>,
    ) -> Result<core::result::Result<S::Response<'s>, CsError>, IO::Error> {
        let sub = sub.map_err(Error::Submit)?;
        if let Err(e) = link.send(S::CHANNEL, &self.request[..sub.len]).await {
            return Err(self.lost(e));
        }
        let n = loop {
            let n = match link.recv(S::CHANNEL, Kind::Reply, &mut self.reply).await {
                Ok(n) => n,
                Err(e) => return Err(self.lost(e)),
            };
            match self.conn.handle_response(&self.reply[..n]) {
                Ok(Some(c)) if c.token == sub.token => break n,
                Ok(_) => {}
                Err(e) => return Err(Error::Protocol(e)),
            }
        };
        // Decoded once by `handle_response`; decoded again to lend it to the caller.
        S::decode_reply(&self.reply[..n]).map_err(|e| Error::Protocol(HandleError::Decode(e)))
    }

    /// The link failed under a call: the connection is out of step and closes.
    fn lost<X: embedded_io::Error>(&mut self, e: LinkError<X>) -> Error<X> {
        self.conn.handle_closed();
        while self.conn.poll_failure().is_some() {}
        Error::from_transport(e)
    }

    /// Waits for the next event and hands it to `f`.
    ///
    /// # Errors
    /// A link failure; an event that does not decode or overflows the queue.
    pub async fn next_event<IO: Read + Write, const RX: usize, const Q: usize, R>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        f: impl FnOnce(&S::Event<'_>) -> R,
    ) -> Result<R, IO::Error> {
        loop {
            if !self.has_event() {
                let n = match link.recv(S::CHANNEL, Kind::Event, &mut self.event).await {
                    Ok(n) => n,
                    Err(e) => return Err(self.lost(e)),
                };
                self.conn.handle_event(&self.event[..n]).map_err(Error::Protocol)?;
            }
            match self.conn.poll_event(&mut self.event) {
                Some(Ok(Polled::Event(e))) => return Ok(f(&e)),
                Some(Ok(Polled::Invalid(e))) => return Err(Error::Protocol(HandleError::Decode(e))),
                Some(Err(e)) => return Err(Error::Submit(corowire::conn::SubmitError::Encode(e))),
                Some(Ok(_)) | None => {}
            }
        }
    }

    fn has_event(&self) -> bool {
        self.conn.queued_events() > 0
    }
}

macro_rules! async_typed_get {
    ($($get:ident $ty:ty => $variant:ident;)*) => {$(
        #[doc = concat!("`cmap_", stringify!($get), "`: the `", stringify!($ty), "` under `key` (`CS_ERR_INVALID_PARAM` for another type).")]
        ///
        /// # Errors
        /// As [`AsyncCmapClient::get`].
        pub async fn $get<IO: Read + Write, const RX: usize, const Q: usize>(
            &mut self,
            link: &mut AsyncLink<IO, RX, Q>,
            key: &str,
        ) -> Result<$ty, IO::Error> {
            self.get(link, key, |v| if let Value::$variant(x) = v { Some(x) } else { None }).await?
                .ok_or(Error::Cs(CsError::InvalidParam))
        }
    )*};
}

impl<const BUF: usize, const T: usize, const P: usize, const E: usize, const EB: usize>
    AsyncCmapClient<BUF, T, P, E, EB>
{
    /// `cmap_get`: hands the value under `key` to `f`.
    ///
    /// # Errors
    /// As [`Client::get`](crate::Client::get).
    pub async fn get<IO: Read + Write, const RX: usize, const Q: usize, R>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
        f: impl FnOnce(Value<'_>) -> R,
    ) -> Result<R, IO::Error> {
        let req = get_request(key_name, self.conn.max_msg_size())?;
        self.call(link, &req, |r| get_value(r, f)).await
    }

    /// `cmap_get_string`: the string under `key`, copied into `buf` (without its NUL).
    ///
    /// # Errors
    /// As [`Client::get_string`](crate::Client::get_string).
    pub async fn get_string<'b, IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
        buf: &'b mut [u8],
    ) -> Result<&'b str, IO::Error> {
        let copied = self.get(link, key_name, |v| copy_string(v, buf)).await?;
        as_text(copied, buf)
    }

    /// `cmap_get` with no buffer: the type and length of the value under `key`.
    ///
    /// # Errors
    /// As [`Client::get`](crate::Client::get).
    pub async fn get_type<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
    ) -> Result<(ValueType, u64), IO::Error> {
        self.call(link, &type_request(key_name)?, type_of).await
    }

    async_typed_get! {
        get_u8 u8 => UInt8;
        get_i8 i8 => Int8;
        get_u16 u16 => UInt16;
        get_i16 i16 => Int16;
        get_u32 u32 => UInt32;
        get_i32 i32 => Int32;
        get_u64 u64 => UInt64;
        get_i64 i64 => Int64;
    }

    /// `cmap_delete`.
    ///
    /// # Errors
    /// As [`Client::set`](crate::Client::set).
    pub async fn delete<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
    ) -> Result<(), IO::Error> {
        self.call(link, &Request::Delete { key: key(key_name)? }, |_| Ok(())).await
    }

    /// `cmap_track_delete`.
    ///
    /// # Errors
    /// As [`Client::track_delete`](crate::Client::track_delete).
    pub async fn track_delete<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        track_handle: u64,
    ) -> Result<(), IO::Error> {
        self.make_room(link).await?;
        let now = corowire::Instant::from_millis(0);
        let sub = self.conn.track_delete(track_handle, now, None, &mut self.request);
        self.finish(link, sub).await?.map_or_else(|e| Err(Error::Cs(e)), |_| Ok(()))
    }

    /// `cmap_set`.
    ///
    /// # Errors
    /// As [`Client::set`](crate::Client::set).
    pub async fn set<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
        value: Value<'_>,
    ) -> Result<(), IO::Error> {
        let req = Request::Set { key: key(key_name)?, value };
        self.call(link, &req, |_| Ok(())).await
    }

    /// `cmap_track_add`: returns the track's handle; `context` comes back with each
    /// [`CmapEvent`] ([`AsyncClient::next_event`]).
    ///
    /// # Errors
    /// As [`Client::track_add`](crate::Client::track_add).
    pub async fn track_add<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        key_name: &str,
        track_type: TrackType,
        context: u64,
    ) -> Result<u64, IO::Error> {
        let key = key(key_name)?;
        self.make_room(link).await?;
        let now = corowire::Instant::from_millis(0);
        let sub = self.conn.track_add(Some(key), track_type, context, now, None, &mut self.request);
        self.finish(link, sub).await?.map_or_else(|e| Err(Error::Cs(e)), track_handle)
    }

    /// The next tracked change, handed to `f`.
    ///
    /// # Errors
    /// As [`AsyncClient::next_event`].
    pub async fn next_change<IO: Read + Write, const RX: usize, const Q: usize, R>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        f: impl FnOnce(&CmapEvent<'_>) -> R,
    ) -> Result<R, IO::Error> {
        self.next_event(link, f).await
    }
}

impl<const BUF: usize, const P: usize, const E: usize, const EB: usize> AsyncVotequorumClient<BUF, P, E, EB> {
    /// `votequorum_getinfo`: hands the node's information (`nodeid` 0: the local node) to `f`.
    ///
    /// # Errors
    /// As [`AsyncClient::call`].
    pub async fn get_info<IO: Read + Write, const RX: usize, const Q: usize, R>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        nodeid: u32,
        f: impl FnOnce(&NodeInfo<'_>) -> R,
    ) -> Result<R, IO::Error> {
        self.call(link, &votequorum::Request::GetInfo { nodeid }, |r| node_info(r, f)).await
    }

    /// `votequorum_trackstart`.
    ///
    /// # Errors
    /// As [`AsyncClient::call`].
    pub async fn track_start<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
        context: u64,
        flags: TrackFlags,
    ) -> Result<(), IO::Error> {
        self.call(link, &votequorum::Request::TrackStart { context, flags }, |_| Ok(())).await
    }

    /// `votequorum_trackstop`.
    ///
    /// # Errors
    /// As [`AsyncClient::call`].
    pub async fn track_stop<IO: Read + Write, const RX: usize, const Q: usize>(
        &mut self,
        link: &mut AsyncLink<IO, RX, Q>,
    ) -> Result<(), IO::Error> {
        self.call(link, &votequorum::Request::TrackStop, |_| Ok(())).await
    }
}
