//! The sans-IO half of a link: the frame reader, the setup, and per-channel queues that hold
//! replies and events until the client of their channel asks for them. The blocking and the
//! async link move bytes in and out of it; neither decides anything itself.

use core::fmt;

use corowire::stream::{self, Accept, Channel, Frame, FrameError, FrameReader, Hello, Kind, Services};
use corowire::transport::{BufferTooSmall, ErrorKind, TransportError};
use corowire::{CsError, EncodeError};

/// Why a link failed. Every case but [`LinkError::Timeout`] and [`LinkError::Busy`] is final:
/// the stream is no longer in step and the clients on it fail their requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum LinkError<E> {
    /// The byte stream failed.
    Io(E),
    /// The byte stream ended (a read returned 0 bytes).
    Closed,
    /// The gateway sent a frame that does not decode (`docs/protocol.md` §12.3).
    Frame(FrameError),
    /// The gateway sent a frame that is valid but out of place (a request, a second accept, a
    /// service frame before the accept or for a service not accepted), by its tag.
    Unexpected {
        /// The frame's tag.
        tag: u8,
    },
    /// The gateway sent a reply of `channel` while none of its requests was waiting for one:
    /// the replies would no longer match their requests, so the link fails. The blocking
    /// link reads what the stream has before each request, so it catches a reply that came
    /// while idle before any call takes it; the async link cannot look without waiting and
    /// notices at the next reply (the call waiting then may have taken the stray one).
    UnsolicitedReply {
        /// The channel.
        channel: Channel,
    },
    /// The gateway refused the hello with this `cs_error_t`.
    Refused(CsError),
    /// The gateway lost its upstream connection of this channel (a reset frame: corosync
    /// stopped or restarted). The channel's calls fail with this error (not
    /// `Error::Disconnected`); recover with a new hello on the same stream
    /// ([`Link::connect`](crate::Link::connect)) and new clients.
    Reset,
    /// A reply or event of `channel` did not fit its queue of `capacity` (`Q`) bytes: either
    /// the frame alone is larger than the queue (`len + 2 > capacity`: raise `Q`), or frames
    /// already queued fill it (their client does not take them, e.g. unread events). That
    /// channel fails for good (its queued frames and every later one are discarded, its
    /// client's calls get this error); the other channel's client carries on.
    QueueFull {
        /// The channel.
        channel: Channel,
        /// Reply or event.
        kind: Kind,
        /// The frame's payload bytes (it costs 2 more in the queue).
        len: usize,
        /// The queue's size in bytes (`Q`).
        capacity: usize,
    },
    /// A frame did not fit the caller's buffer (it stays queued).
    BufferTooSmall(BufferTooSmall),
    /// A frame could not be encoded (larger than 65535 bytes).
    Encode(EncodeError),
    /// A deadline passed before the frame came.
    Timeout,
    /// The link was in use by the other client (a call from inside the other's callback).
    Busy,
    /// A frame was left half-written on the stream: the async call writing it was dropped
    /// (cancelled, e.g. by a timeout) or its write failed. What follows on the stream would
    /// not be in step with the gateway's reader, so nothing more is written or read; open a
    /// new link.
    OutOfStep,
}

impl<E: fmt::Display> fmt::Display for LinkError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => write!(f, "stream error: {e}"),
            Self::Closed => f.write_str("the gateway closed the stream"),
            Self::Frame(e) => write!(f, "malformed frame from the gateway: {e}"),
            Self::Unexpected { tag } => write!(f, "unexpected frame {tag:#04x} from the gateway"),
            Self::UnsolicitedReply { channel } => {
                write!(f, "the gateway sent a {channel:?} reply with no request outstanding")
            }
            Self::Refused(e) => write!(f, "the gateway refused the link: {e}"),
            Self::Reset => f.write_str("the gateway lost its connection to corosync"),
            Self::QueueFull { channel, kind, len, capacity } if len + QUEUE_ENTRY > *capacity => write!(
                f,
                "a {len}-byte {channel:?} {kind:?} frame does not fit its {capacity}-byte queue (raise Q)"
            ),
            Self::QueueFull { channel, kind, capacity, .. } => write!(
                f,
                "the {capacity}-byte {channel:?} {kind:?} queue is full: its client does not take its frames"
            ),
            Self::BufferTooSmall(e) => write!(f, "{e}"),
            Self::Encode(e) => write!(f, "cannot frame: {e}"),
            Self::Timeout => f.write_str("timed out waiting for the gateway"),
            Self::Busy => f.write_str("the link is in use by the other client"),
            Self::OutOfStep => f.write_str(
                "a frame was left half-written (its call was dropped or its write failed); \
                 the stream is out of step, open a new link",
            ),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> core::error::Error for LinkError<E> {}

impl<E: embedded_io::Error> TransportError for LinkError<E> {
    fn kind(&self) -> ErrorKind {
        use embedded_io::ErrorKind as Io;
        match self {
            Self::Closed => ErrorKind::Disconnected,
            Self::Timeout => ErrorKind::Timeout,
            Self::Io(e) => match e.kind() {
                Io::TimedOut => ErrorKind::Timeout,
                Io::BrokenPipe | Io::ConnectionReset | Io::ConnectionAborted | Io::NotConnected => {
                    ErrorKind::Disconnected
                }
                _ => ErrorKind::Other,
            },
            _ => ErrorKind::Other,
        }
    }
}

/// Bytes a queued payload costs besides its own: its length.
const QUEUE_ENTRY: usize = 2;

/// A FIFO of frames' payloads in `Q` bytes, each stored as a 2-byte length and the bytes.
#[derive(Clone)]
struct Queue<const Q: usize> {
    buf: [u8; Q],
    len: usize,
}

impl<const Q: usize> Queue<Q> {
    const fn new() -> Self {
        Self { buf: [0; Q], len: 0 }
    }

    /// Appends `bytes`; `false` (and nothing changed) if they do not fit.
    fn push(&mut self, bytes: &[u8]) -> bool {
        let Ok(n) = u16::try_from(bytes.len()) else { return false };
        let end = self.len + QUEUE_ENTRY + bytes.len();
        if end > Q {
            return false;
        }
        self.buf[self.len..self.len + 2].copy_from_slice(&n.to_le_bytes());
        self.buf[self.len + 2..end].copy_from_slice(bytes);
        self.len = end;
        true
    }

    /// Moves the oldest payload into `out`.
    fn pop(&mut self, out: &mut [u8]) -> Result<Option<usize>, BufferTooSmall> {
        if self.len == 0 {
            return Ok(None);
        }
        let n = usize::from(u16::from_le_bytes([self.buf[0], self.buf[1]]));
        let Some(dst) = out.get_mut(..n) else {
            return Err(BufferTooSmall { needed: n, available: out.len() });
        };
        let end = QUEUE_ENTRY + n;
        dst.copy_from_slice(&self.buf[QUEUE_ENTRY..end]);
        self.buf.copy_within(end..self.len, 0);
        self.len -= end;
        Ok(Some(n))
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The queue index of a channel's replies or events.
fn slot(channel: Channel, kind: Kind) -> Option<usize> {
    let c = match channel {
        Channel::Cmap => 0,
        Channel::Votequorum => 2,
    };
    match kind {
        Kind::Reply => Some(c),
        Kind::Event => Some(c + 1),
        Kind::Request => None,
    }
}

/// The protocol state of a link: `RX` bytes of frame reader, four queues of `Q` bytes each.
#[derive(Clone)]
pub(crate) struct Mux<const RX: usize, const Q: usize> {
    reader: FrameReader<RX>,
    queues: [Queue<Q>; 4],
    accepted: Option<Accept>,
    lost: Services,
    /// Per channel (CMAP, votequorum), requests written whose reply has not arrived.
    awaiting: [usize; 2],
    /// Per channel, the error that failed it alone (a full queue): its frames are
    /// discarded from then on, the other channel carries on.
    failed: [Option<LinkError<()>>; 2],
    /// The final error, repeated to every later call.
    broken: Option<LinkError<()>>,
}

impl<const RX: usize, const Q: usize> Mux<RX, Q> {
    /// A link before its hello. `Q` must hold a frame of the smallest maximum payload a
    /// hello may offer (checked at compile time).
    pub(crate) const fn new() -> Self {
        const {
            assert!(
                Q >= QUEUE_ENTRY + stream::MIN_MAX_PAYLOAD as usize,
                "a link's queues (Q) must hold a 64-byte frame"
            )
        };
        Self {
            reader: FrameReader::new(),
            queues: [Queue::new(), Queue::new(), Queue::new(), Queue::new()],
            accepted: None,
            lost: Services::NONE,
            awaiting: [0; 2],
            failed: [None; 2],
            broken: None,
        }
    }

    /// The hello asking for `services`, offering the largest payload both the reader
    /// (`RX - 6`) and a queue (`Q - 2`) can hold, so that any frame the gateway may send
    /// fits an empty queue.
    pub(crate) fn hello(&self, services: Services) -> Frame<'static> {
        let max = self.reader.max_payload().min(Q - QUEUE_ENTRY);
        let max_payload = u16::try_from(max).unwrap_or(u16::MAX);
        Frame::Hello(Hello { version: stream::VERSION, services, max_payload })
    }

    pub(crate) fn accepted(&self) -> Option<Accept> {
        self.accepted
    }

    /// Where the next bytes read go.
    pub(crate) fn space(&mut self) -> &mut [u8] {
        self.reader.space()
    }

    /// Files the `n` bytes read into [`Mux::space`]: every complete frame goes to its queue.
    pub(crate) fn filled<E>(&mut self, n: usize) -> Result<(), LinkError<E>> {
        self.reader.filled(n);
        self.pump().map_err(|e| {
            #[cfg(feature = "defmt")]
            defmt::warn!("corowire-embedded: link broken: {}", e);
            self.broken = Some(e);
            widen(e)
        })
    }

    /// Records that the stream ended; later calls fail with [`LinkError::Closed`].
    pub(crate) fn closed<E>(&mut self) -> LinkError<E> {
        self.broken.get_or_insert(LinkError::Closed);
        LinkError::Closed
    }

    /// Records that a frame was left half-written; later calls fail with
    /// [`LinkError::OutOfStep`] (unless the link had failed already, for another reason).
    pub(crate) fn out_of_step<E>(&mut self) -> LinkError<E> {
        widen(*self.broken.get_or_insert(LinkError::OutOfStep))
    }

    fn pump(&mut self) -> Result<(), LinkError<()>> {
        while let Some(frame) = self.reader.next_frame().map_err(LinkError::Frame)? {
            let tag = frame.tag();
            match (frame, self.accepted) {
                (Frame::Accept(a), None) => {
                    a.result.map_err(LinkError::Refused)?;
                    self.reader.set_max_payload(usize::from(a.max_payload));
                    self.accepted = Some(a);
                    #[cfg(feature = "defmt")]
                    defmt::info!("corowire-embedded: link up: {}", a);
                }
                (Frame::Reset(s), Some(_)) => self.lost = self.lost.union(s),
                (Frame::Message { channel, kind, payload }, Some(a)) if a.services.contains(channel) => {
                    let i = slot(channel, kind).ok_or(LinkError::Unexpected { tag })?;
                    let c = i / 2;
                    if kind == Kind::Reply {
                        let awaiting = &mut self.awaiting[c];
                        *awaiting = awaiting.checked_sub(1).ok_or(LinkError::UnsolicitedReply { channel })?;
                    }
                    if self.failed[c].is_none() && !self.queues[i].push(payload) {
                        // Only this channel's client is behind: fail it, not the link.
                        let e = LinkError::QueueFull { channel, kind, len: payload.len(), capacity: Q };
                        #[cfg(feature = "defmt")]
                        defmt::warn!("corowire-embedded: channel failed: {}", e);
                        self.failed[c] = Some(e);
                        self.queues[2 * c] = Queue::new();
                        self.queues[2 * c + 1] = Queue::new();
                    }
                }
                _ => return Err(LinkError::Unexpected { tag }),
            }
        }
        Ok(())
    }

    /// Records that a request of `channel` was written: one more reply is due.
    pub(crate) fn sent(&mut self, channel: Channel) {
        if let Some(i) = slot(channel, Kind::Reply) {
            self.awaiting[i / 2] += 1;
        }
    }

    /// Whether a frame of `channel` and `kind` is queued.
    pub(crate) fn has(&self, channel: Channel, kind: Kind) -> bool {
        slot(channel, kind).is_some_and(|i| !self.queues[i].is_empty())
    }

    /// Takes the oldest queued frame of `channel` and `kind` into `out`: its length, or `None`
    /// if none is queued (read more).
    ///
    /// # Errors
    /// The link's final error; [`LinkError::Reset`] once the channel was reset and its queue
    /// is empty; [`LinkError::BufferTooSmall`].
    pub(crate) fn pop<E>(
        &mut self,
        channel: Channel,
        kind: Kind,
        out: &mut [u8],
    ) -> Result<Option<usize>, LinkError<E>> {
        let i =
            slot(channel, kind).ok_or(LinkError::Unexpected { tag: stream::message_tag(channel, kind) })?;
        match self.queues[i].pop(out).map_err(LinkError::BufferTooSmall)? {
            Some(n) => Ok(Some(n)),
            None => self.check(channel).map(|()| None),
        }
    }

    /// The link's final error, the channel's reset or the channel's own failure, if any.
    pub(crate) fn check<E>(&self, channel: Channel) -> Result<(), LinkError<E>> {
        if let Some(e) = self.broken {
            return Err(widen(e));
        }
        if self.lost.contains(channel) {
            return Err(LinkError::Reset);
        }
        let c = slot(channel, Kind::Reply).map_or(0, |i| i / 2);
        self.failed[c].map_or(Ok(()), |e| Err(widen(e)))
    }
}

/// A stored error (which never holds an I/O error) as an error of any stream.
fn widen<E>(e: LinkError<()>) -> LinkError<E> {
    match e {
        LinkError::Io(()) | LinkError::Closed => LinkError::Closed,
        LinkError::Frame(f) => LinkError::Frame(f),
        LinkError::Unexpected { tag } => LinkError::Unexpected { tag },
        LinkError::UnsolicitedReply { channel } => LinkError::UnsolicitedReply { channel },
        LinkError::Refused(c) => LinkError::Refused(c),
        LinkError::Reset => LinkError::Reset,
        LinkError::QueueFull { channel, kind, len, capacity } => {
            LinkError::QueueFull { channel, kind, len, capacity }
        }
        LinkError::BufferTooSmall(b) => LinkError::BufferTooSmall(b),
        LinkError::Encode(e) => LinkError::Encode(e),
        LinkError::Timeout => LinkError::Timeout,
        LinkError::Busy => LinkError::Busy,
        LinkError::OutOfStep => LinkError::OutOfStep,
    }
}

/// The header and the CRC trailer of a service frame around `payload`, so that a link
/// writes the payload from where the connection encoded it, without a copy.
///
/// # Errors
/// [`LinkError::Encode`] for a payload over 65535 bytes.
pub(crate) fn frame_parts<E>(
    channel: Channel,
    payload: &[u8],
) -> Result<([u8; stream::HEADER_LEN], [u8; stream::TRAILER_LEN]), LinkError<E>> {
    let len = u16::try_from(payload.len())
        .map_err(|_| LinkError::Encode(EncodeError::MessageTooLarge { len: payload.len() }))?;
    let [lo, hi] = len.to_le_bytes();
    let tag = stream::message_tag(channel, Kind::Request);
    let crc = stream::crc16(stream::crc16(stream::CRC_INIT, &[tag, lo, hi]), payload);
    Ok(([stream::SYNC, tag, lo, hi], crc.to_le_bytes()))
}

#[cfg(test)]
mod tests {
    use std::string::ToString;

    use super::*;

    #[test]
    fn a_full_queue_says_whether_the_frame_or_the_client_is_at_fault() {
        let full = |len| LinkError::<core::convert::Infallible>::QueueFull {
            channel: Channel::Cmap,
            kind: Kind::Reply,
            len,
            capacity: 1024,
        };
        assert_eq!(
            full(1023).to_string(),
            "a 1023-byte Cmap Reply frame does not fit its 1024-byte queue (raise Q)"
        );
        assert_eq!(
            full(1022).to_string(),
            "the 1024-byte Cmap Reply queue is full: its client does not take its frames"
        );
    }

    #[test]
    fn the_hello_offers_what_a_queue_holds() {
        let hello = |frame| match frame {
            Frame::Hello(h) => h.max_payload,
            _ => 0,
        };
        assert_eq!(hello(Mux::<1030, 1024>::new().hello(Services::ALL)), 1022);
        assert_eq!(hello(Mux::<1030, 1026>::new().hello(Services::ALL)), 1024);
        assert_eq!(hello(Mux::<518, 2048>::new().hello(Services::ALL)), 512);
    }
}
