//! The stream framing (`docs/protocol.md` §12): the core's CMAP and votequorum messages over
//! one reliable byte stream (a UART, a TCP or Unix stream socket, a pty), for clients that
//! cannot speak libqb (a microcontroller behind a gateway).
//!
//! Every frame is
//!
//! ```text
//! | 0xC5 | tag | len (u16 LE) | payload (len bytes) | CRC-16 (u16 LE) |
//! ```
//!
//! where the tag names the channel (control, CMAP, votequorum) and the kind (request, reply,
//! event; or the control frames hello, accept, reset), and the payload of a service frame is
//! the libqb message as it is (request header + body, reply header + body, event). The CRC is
//! CRC-16/CCITT-FALSE over the tag, the length and the payload.
//!
//! There is no resynchronisation: a frame that does not decode (a wrong sync byte, an unknown
//! tag, a length over the negotiated maximum, a wrong checksum) ends the stream, and both
//! sides treat it as closed. The length bound keeps a receiver from waiting for more than one
//! maximum frame of garbage; the checksum keeps line noise from reaching the daemon.
//!
//! Decoding is zero-copy and incremental: [`decode`] says "need more bytes"
//! ([`Status::Partial`]) apart from "malformed" ([`FrameError`]), and [`FrameReader`] is a
//! fixed-capacity accumulator for a byte stream. Nothing here allocates.

use core::fmt;

use crate::codec::Status;
use crate::error::{CsError, EncodeError};

/// The first byte of every frame.
pub const SYNC: u8 = 0xC5;
/// The protocol version this module speaks (the hello's and the accept's `version`).
pub const VERSION: u8 = 1;
/// Bytes before the payload: sync, tag, length.
pub const HEADER_LEN: usize = 4;
/// Bytes after the payload: the CRC.
pub const TRAILER_LEN: usize = 2;
/// Bytes a frame adds to its payload.
pub const OVERHEAD: usize = HEADER_LEN + TRAILER_LEN;
/// The smallest maximum payload a side may offer or grant: room for every control frame and a
/// libqb request header with a short key.
pub const MIN_MAX_PAYLOAD: u16 = 64;
/// Payload length of a hello.
pub const HELLO_LEN: usize = 4;
/// Payload length of an accept.
pub const ACCEPT_LEN: usize = 8;
/// Payload length of a reset.
pub const RESET_LEN: usize = 1;

/// A service carried on the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Channel {
    /// CMAP (`libcmap`).
    Cmap,
    /// votequorum (`libvotequorum`).
    Votequorum,
}

impl Channel {
    const fn nibble(self) -> u8 {
        match self {
            Self::Cmap => 1,
            Self::Votequorum => 2,
        }
    }

    /// The set holding only this service.
    pub const fn services(self) -> Services {
        Services(1 << (self.nibble() - 1))
    }
}

/// What a service frame carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Kind {
    /// Client to gateway: a libqb request.
    Request,
    /// Gateway to client: the reply to the oldest outstanding request of the channel.
    Reply,
    /// Gateway to client: an event (notification) of the channel.
    Event,
}

/// A set of services, as a bit mask (bit 0 CMAP, bit 1 votequorum; the other bits are
/// reserved and must be 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Services(u8);

impl Services {
    /// No service.
    pub const NONE: Self = Self(0);
    /// Every service this version knows.
    pub const ALL: Self = Self(0b11);

    /// The set of a mask, if it names no reserved bit.
    pub const fn from_bits(bits: u8) -> Option<Self> {
        if bits & !Self::ALL.0 == 0 {
            Some(Self(bits))
        } else {
            None
        }
    }

    /// The mask.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether `channel` is in the set.
    pub const fn contains(self, channel: Channel) -> bool {
        self.0 & channel.services().0 != 0
    }

    /// The services in both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// The services in either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }
}

/// The client's opening frame: what it speaks and wants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Hello {
    /// The client's protocol version ([`VERSION`]).
    pub version: u8,
    /// The services the client wants.
    pub services: Services,
    /// The largest payload the client can receive, at least [`MIN_MAX_PAYLOAD`].
    pub max_payload: u16,
}

/// The gateway's answer to a [`Hello`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Accept {
    /// The version both speak (at most the client's).
    pub version: u8,
    /// The services connected upstream (a subset of those asked for).
    pub services: Services,
    /// The negotiated maximum payload in both directions: at most the client's.
    pub max_payload: u16,
    /// `Ok` or why the gateway refuses the client (it then closes the stream), as a
    /// `cs_error_t` (e.g. `CS_ERR_TRY_AGAIN` while the daemon is down, `CS_ERR_ACCESS`).
    pub result: Result<(), CsError>,
}

impl Hello {
    /// The gateway's side of the negotiation: what it grants for this hello, given the
    /// services it can offer and the largest payload it takes. Refuses with
    /// `CS_ERR_NOT_SUPPORTED` for a version other than [`VERSION`], with `CS_ERR_INVALID_PARAM`
    /// for a maximum below [`MIN_MAX_PAYLOAD`], and with `CS_ERR_NOT_EXIST` if no service
    /// asked for is offered.
    pub fn negotiate(&self, offered: Services, max_payload: u16) -> Accept {
        let services = self.services.intersection(offered);
        let max_payload = self.max_payload.min(max_payload);
        let result = if self.version != VERSION {
            Err(CsError::NotSupported)
        } else if max_payload < MIN_MAX_PAYLOAD {
            Err(CsError::InvalidParam)
        } else if services == Services::NONE {
            Err(CsError::NotExist)
        } else {
            Ok(())
        };
        Accept { version: VERSION, services, max_payload, result }
    }
}

/// One decoded frame; service payloads borrow from the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Frame<'a> {
    /// Control: the client's opening frame.
    Hello(Hello),
    /// Control: the gateway's answer.
    Accept(Accept),
    /// Control, gateway to client: the upstream connections of these services were lost (a
    /// daemon restart); outstanding requests of them fail and their tracks are gone. The
    /// client may reconnect them with a new stream.
    Reset(Services),
    /// A libqb message of a service.
    Message {
        /// The service.
        channel: Channel,
        /// Request, reply or event.
        kind: Kind,
        /// The libqb message, as the core encodes and decodes it.
        payload: &'a [u8],
    },
}

const TAG_HELLO: u8 = 0x00;
const TAG_ACCEPT: u8 = 0x01;
const TAG_RESET: u8 = 0x02;

/// The tag byte of a service frame.
pub const fn message_tag(channel: Channel, kind: Kind) -> u8 {
    let kind = match kind {
        Kind::Request => 0,
        Kind::Reply => 1,
        Kind::Event => 2,
    };
    channel.nibble() << 4 | kind
}

/// A frame that does not decode. Every case is final: the stream is closed, not resynchronised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum FrameError {
    /// The frame does not start with [`SYNC`].
    BadSync {
        /// The byte found.
        found: u8,
    },
    /// The tag names no channel and kind.
    UnknownTag {
        /// The tag.
        tag: u8,
    },
    /// The length is over the receiver's maximum payload.
    TooLarge {
        /// The declared payload length.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The CRC does not match.
    BadChecksum {
        /// The CRC computed over the frame.
        computed: u16,
        /// The CRC the frame carries.
        carried: u16,
    },
    /// A control frame's payload has the wrong length or an invalid field.
    BadControl {
        /// The frame's tag.
        tag: u8,
    },
}

impl fmt::Display for FrameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadSync { found } => {
                write!(f, "frame starts with {found:#04x}, not the sync byte {SYNC:#04x}")
            }
            Self::UnknownTag { tag } => write!(f, "unknown frame tag {tag:#04x}"),
            Self::TooLarge { len, max } => {
                write!(f, "frame payload of {len} bytes is over the maximum of {max}")
            }
            Self::BadChecksum { computed, carried } => {
                write!(f, "frame CRC {carried:#06x} does not match the computed {computed:#06x}")
            }
            Self::BadControl { tag } => write!(f, "control frame {tag:#04x} has a malformed payload"),
        }
    }
}

impl core::error::Error for FrameError {}

/// CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
/// XOR) of `bytes`, continuing from `crc`.
pub fn crc16(mut crc: u16, bytes: &[u8]) -> u16 {
    for &b in bytes {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 { crc << 1 ^ 0x1021 } else { crc << 1 };
        }
    }
    crc
}

/// The CRC's initial value.
pub const CRC_INIT: u16 = 0xFFFF;

/// Turns the `payload_len` bytes at `out[HEADER_LEN..]` into a frame with `tag`: writes the
/// header before them and the CRC after them; returns the frame's length. A service frame is
/// built by encoding its libqb message at `out[HEADER_LEN..]` and sealing it, without a copy.
///
/// # Errors
/// [`EncodeError::MessageTooLarge`] for a payload over 65535 bytes;
/// [`EncodeError::BufferTooSmall`] if `out` cannot hold the frame (nothing is written).
pub fn seal(tag: u8, payload_len: usize, out: &mut [u8]) -> Result<usize, EncodeError> {
    let len = u16::try_from(payload_len).map_err(|_| EncodeError::MessageTooLarge { len: payload_len })?;
    let total = payload_len + OVERHEAD;
    if out.len() < total {
        return Err(EncodeError::BufferTooSmall { required: total, available: out.len() });
    }
    out[0] = SYNC;
    out[1] = tag;
    out[2..4].copy_from_slice(&len.to_le_bytes());
    let crc = crc16(CRC_INIT, &out[1..HEADER_LEN + payload_len]);
    out[HEADER_LEN + payload_len..total].copy_from_slice(&crc.to_le_bytes());
    Ok(total)
}

impl Frame<'_> {
    /// The frame's tag byte.
    pub fn tag(&self) -> u8 {
        match self {
            Self::Hello(_) => TAG_HELLO,
            Self::Accept(_) => TAG_ACCEPT,
            Self::Reset(_) => TAG_RESET,
            Self::Message { channel, kind, .. } => message_tag(*channel, *kind),
        }
    }

    /// The payload's length.
    pub fn payload_len(&self) -> usize {
        match self {
            Self::Hello(_) => HELLO_LEN,
            Self::Accept(_) => ACCEPT_LEN,
            Self::Reset(_) => RESET_LEN,
            Self::Message { payload, .. } => payload.len(),
        }
    }

    /// The frame's encoded length.
    pub fn encoded_len(&self) -> usize {
        self.payload_len() + OVERHEAD
    }

    /// Encodes the frame into the start of `out`; returns its length.
    ///
    /// # Errors
    /// As [`seal`]; `out` is untouched on error.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let len = self.payload_len();
        if len > usize::from(u16::MAX) {
            return Err(EncodeError::MessageTooLarge { len });
        }
        let total = len + OVERHEAD;
        let Some(p) = out.get_mut(HEADER_LEN..HEADER_LEN + len) else {
            return Err(EncodeError::BufferTooSmall { required: total, available: out.len() });
        };
        match self {
            Self::Hello(h) => {
                p[0] = h.version;
                p[1] = h.services.bits();
                p[2..4].copy_from_slice(&h.max_payload.to_le_bytes());
            }
            Self::Accept(a) => {
                p[0] = a.version;
                p[1] = a.services.bits();
                p[2..4].copy_from_slice(&a.max_payload.to_le_bytes());
                p[4..8].copy_from_slice(&CsError::raw_of(a.result).to_le_bytes());
            }
            Self::Reset(s) => p[0] = s.bits(),
            Self::Message { payload, .. } => p.copy_from_slice(payload),
        }
        seal(self.tag(), len, out)
    }
}

fn control(tag: u8, p: &[u8]) -> Result<Frame<'_>, FrameError> {
    let bad = FrameError::BadControl { tag };
    let services = |b: u8| Services::from_bits(b).ok_or(bad);
    let u16_at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]);
    match (tag, p.len()) {
        (TAG_HELLO, HELLO_LEN) => {
            Ok(Frame::Hello(Hello { version: p[0], services: services(p[1])?, max_payload: u16_at(2) }))
        }
        (TAG_ACCEPT, ACCEPT_LEN) => {
            let raw = i32::from_le_bytes([p[4], p[5], p[6], p[7]]);
            Ok(Frame::Accept(Accept {
                version: p[0],
                services: services(p[1])?,
                max_payload: u16_at(2),
                result: CsError::check(raw),
            }))
        }
        (TAG_RESET, RESET_LEN) => Ok(Frame::Reset(services(p[0])?)),
        _ => Err(bad),
    }
}

fn classify(tag: u8) -> Result<Option<(Channel, Kind)>, FrameError> {
    let channel = match tag >> 4 {
        0 if tag <= TAG_RESET => return Ok(None),
        1 => Channel::Cmap,
        2 => Channel::Votequorum,
        _ => return Err(FrameError::UnknownTag { tag }),
    };
    let kind = match tag & 0x0F {
        0 => Kind::Request,
        1 => Kind::Reply,
        2 => Kind::Event,
        _ => return Err(FrameError::UnknownTag { tag }),
    };
    Ok(Some((channel, kind)))
}

/// Decodes the frame at the start of `buf`, whose payload may be at most `max_payload`
/// bytes: the frame and the bytes it took, or [`Status::Partial`] with the bytes needed in
/// all. The sync byte, the tag and the length are checked as soon as they arrive, so garbage
/// is reported without waiting for a frame's worth of it.
///
/// # Errors
/// [`FrameError`], each final.
pub fn decode(buf: &[u8], max_payload: usize) -> Result<Status<(Frame<'_>, usize)>, FrameError> {
    match buf.first() {
        None => return Ok(Status::Partial { needed: HEADER_LEN }),
        Some(&b) if b != SYNC => return Err(FrameError::BadSync { found: b }),
        Some(_) => {}
    }
    let Some(&tag) = buf.get(1) else {
        return Ok(Status::Partial { needed: HEADER_LEN });
    };
    let class = classify(tag)?;
    let Some(len) = buf.get(2..HEADER_LEN) else {
        return Ok(Status::Partial { needed: HEADER_LEN });
    };
    let len = usize::from(u16::from_le_bytes([len[0], len[1]]));
    if len > max_payload {
        return Err(FrameError::TooLarge { len, max: max_payload });
    }
    let total = len + OVERHEAD;
    let Some(frame) = buf.get(..total) else {
        return Ok(Status::Partial { needed: total });
    };
    let end = HEADER_LEN + len;
    let computed = crc16(CRC_INIT, &frame[1..end]);
    let carried = u16::from_le_bytes([frame[end], frame[end + 1]]);
    if computed != carried {
        return Err(FrameError::BadChecksum { computed, carried });
    }
    let payload = &frame[HEADER_LEN..end];
    let frame = match class {
        None => control(tag, payload)?,
        Some((channel, kind)) => Frame::Message { channel, kind, payload },
    };
    Ok(Status::Complete((frame, total)))
}

/// A fixed-capacity frame accumulator for a byte stream: read into [`FrameReader::space`],
/// report the count with [`FrameReader::filled`], take frames with [`FrameReader::next_frame`].
/// A frame taken stays valid until the next call of `next_frame` (which drops it) or `space`.
///
/// `N` bounds the largest frame: the maximum payload is `N - OVERHEAD` (at most 65535) until
/// [`FrameReader::set_max_payload`] lowers it to the negotiated one.
#[derive(Clone)]
pub struct FrameReader<const N: usize> {
    buf: [u8; N],
    /// Bytes held.
    len: usize,
    /// Bytes at the start that belong to the frame last returned.
    taken: usize,
    max_payload: usize,
}

impl<const N: usize> fmt::Debug for FrameReader<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameReader")
            .field("held", &self.len)
            .field("max_payload", &self.max_payload)
            .finish_non_exhaustive()
    }
}

impl<const N: usize> Default for FrameReader<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> FrameReader<N> {
    /// An empty reader. `N` must exceed [`OVERHEAD`] + [`MIN_MAX_PAYLOAD`] (checked at
    /// compile time).
    pub const fn new() -> Self {
        const { assert!(N >= OVERHEAD + MIN_MAX_PAYLOAD as usize, "FrameReader too small for a frame") };
        let max = N - OVERHEAD;
        Self { buf: [0; N], len: 0, taken: 0, max_payload: if max > 65535 { 65535 } else { max } }
    }

    /// The largest payload accepted now.
    pub fn max_payload(&self) -> usize {
        self.max_payload
    }

    /// Lowers (never raises past `N - OVERHEAD`) the largest payload accepted, after the
    /// negotiation.
    pub fn set_max_payload(&mut self, max: usize) {
        self.max_payload = max.min(N - OVERHEAD).min(usize::from(u16::MAX));
    }

    /// Bytes held that are not part of a frame returned yet.
    pub fn buffered(&self) -> usize {
        self.len - self.taken
    }

    fn drop_taken(&mut self) {
        if self.taken > 0 {
            self.buf.copy_within(self.taken..self.len, 0);
            self.len -= self.taken;
            self.taken = 0;
        }
    }

    /// Where the next bytes read go (empty only while a whole frame is held and not taken).
    /// Drops the frame last returned.
    pub fn space(&mut self) -> &mut [u8] {
        self.drop_taken();
        &mut self.buf[self.len..]
    }

    /// Records that `n` bytes were read into [`FrameReader::space`] (clamped to its size).
    pub fn filled(&mut self, n: usize) {
        self.len = (self.len + n).min(N);
    }

    /// The next complete frame, or `Ok(None)` if more bytes are needed. Drops the frame last
    /// returned.
    ///
    /// # Errors
    /// [`FrameError`]: the stream is broken; the reader keeps failing the same way.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        self.drop_taken();
        match decode(&self.buf[..self.len], self.max_payload)? {
            Status::Complete((frame, used)) => {
                self.taken = used;
                Ok(Some(frame))
            }
            Status::Partial { .. } => Ok(None),
        }
    }
}

/// What a gateway does with a frame from its client ([`GatewaySession::handle_frame`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FromClient<'a> {
    /// The hello was negotiated: send this accept; if its `result` is an error, close the
    /// stream after it. On success the gateway connects `services` upstream (before it
    /// sends the accept, and refuses with `CS_ERR_TRY_AGAIN` if it cannot).
    Accept(Accept),
    /// A request of an accepted service: relay the libqb message upstream unchanged.
    Request {
        /// The service.
        channel: Channel,
        /// The libqb request.
        payload: &'a [u8],
    },
}

/// A client broke the gateway side of the protocol; the gateway closes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum SessionError {
    /// A frame only the gateway sends, a second hello, or a request before the hello.
    Unexpected {
        /// The frame's tag.
        tag: u8,
    },
    /// A request of a service the accept did not grant.
    NotAccepted {
        /// The service.
        channel: Channel,
    },
}

impl fmt::Display for SessionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unexpected { tag } => write!(f, "frame {tag:#04x} is out of place from a client"),
            Self::NotAccepted { channel } => {
                write!(f, "request on the {channel:?} channel, which was not accepted")
            }
        }
    }
}

impl core::error::Error for SessionError {}

/// The gateway's end of one stream, sans-IO (`docs/protocol.md` §12.2): negotiates the
/// hello, then lets through only requests of the accepted services. Decode the client's
/// bytes with a [`FrameReader`] (or [`decode`]) bounded by [`GatewaySession::max_payload`];
/// send replies and events as [`Frame::Message`]s and a lost upstream as [`Frame::Reset`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct GatewaySession {
    offered: Services,
    max_payload: u16,
    accepted: Option<Accept>,
}

impl GatewaySession {
    /// A session offering `offered` services and payloads of at most `max_payload` bytes.
    pub const fn new(offered: Services, max_payload: u16) -> Self {
        Self { offered, max_payload, accepted: None }
    }

    /// The largest payload to accept from the client now: a hello's before the accept, the
    /// negotiated maximum after it.
    pub fn max_payload(&self) -> usize {
        match self.accepted {
            Some(a) => usize::from(a.max_payload),
            None => HELLO_LEN,
        }
    }

    /// What was accepted (`None` before the hello, or if it was refused).
    pub fn accepted(&self) -> Option<Accept> {
        self.accepted.filter(|a| a.result.is_ok())
    }

    /// Hands in one frame from the client.
    ///
    /// # Errors
    /// [`SessionError`]: close the client (nothing reaches the daemon).
    pub fn handle_frame<'a>(&mut self, frame: Frame<'a>) -> Result<FromClient<'a>, SessionError> {
        match (frame, self.accepted) {
            (Frame::Hello(h), None) => {
                let a = h.negotiate(self.offered, self.max_payload);
                self.accepted = Some(a);
                Ok(FromClient::Accept(a))
            }
            (Frame::Message { channel, kind: Kind::Request, payload }, Some(a)) if a.result.is_ok() => {
                if a.services.contains(channel) {
                    Ok(FromClient::Request { channel, payload })
                } else {
                    Err(SessionError::NotAccepted { channel })
                }
            }
            (frame, _) => Err(SessionError::Unexpected { tag: frame.tag() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_check_value() {
        assert_eq!(crc16(CRC_INIT, b"123456789"), 0x29B1);
    }

    #[test]
    fn golden_hello() {
        let hello = Frame::Hello(Hello { version: 1, services: Services::ALL, max_payload: 512 });
        let mut out = [0u8; 16];
        let n = hello.encode(&mut out).unwrap();
        let crc = crc16(CRC_INIT, &[0x00, 4, 0, 1, 3, 0x00, 0x02]).to_le_bytes();
        assert_eq!(&out[..n], &[0xC5, 0x00, 4, 0, 1, 3, 0x00, 0x02, crc[0], crc[1]]);
        assert_eq!(decode(&out[..n], 64), Ok(Status::Complete((hello, n))));
        for k in 0..n {
            assert!(matches!(decode(&out[..k], 64), Ok(Status::Partial { .. })), "{k}");
        }
    }

    #[test]
    fn malformed() {
        assert_eq!(decode(&[0x00], 64), Err(FrameError::BadSync { found: 0 }));
        assert_eq!(decode(&[SYNC, 0x33], 64), Err(FrameError::UnknownTag { tag: 0x33 }));
        assert_eq!(decode(&[SYNC, 0x13], 64), Err(FrameError::UnknownTag { tag: 0x13 }));
        assert_eq!(decode(&[SYNC, 0x10, 65, 0], 64), Err(FrameError::TooLarge { len: 65, max: 64 }));
        let mut out = [0u8; 16];
        let n = Frame::Reset(Services::ALL).encode(&mut out).unwrap();
        out[4] ^= 0x04;
        assert!(matches!(decode(&out[..n], 64), Err(FrameError::BadChecksum { .. })));
        let n = Frame::Message { channel: Channel::Cmap, kind: Kind::Request, payload: &[] }
            .encode(&mut out)
            .unwrap();
        out[1] = TAG_HELLO;
        let crc = crc16(CRC_INIT, &out[1..4]).to_le_bytes();
        out[4..6].copy_from_slice(&crc);
        assert_eq!(decode(&out[..n], 64), Err(FrameError::BadControl { tag: TAG_HELLO }));
    }

    #[test]
    fn negotiate() {
        let hello = Hello { version: VERSION, services: Services::ALL, max_payload: 1024 };
        let a = hello.negotiate(Channel::Cmap.services(), 512);
        assert_eq!((a.services, a.max_payload, a.result), (Channel::Cmap.services(), 512, Ok(())));
        assert_eq!(
            Hello { version: 2, ..hello }.negotiate(Services::ALL, 512).result,
            Err(CsError::NotSupported)
        );
        assert_eq!(hello.negotiate(Services::ALL, 10).result, Err(CsError::InvalidParam));
        assert_eq!(hello.negotiate(Services::NONE, 512).result, Err(CsError::NotExist));
    }

    #[test]
    fn gateway_session() {
        let mut g = GatewaySession::new(Channel::Cmap.services(), 512);
        assert_eq!(g.max_payload(), HELLO_LEN);
        let req = Frame::Message { channel: Channel::Cmap, kind: Kind::Request, payload: b"x" };
        assert_eq!(g.handle_frame(req), Err(SessionError::Unexpected { tag: 0x10 }));
        let hello = Frame::Hello(Hello { version: VERSION, services: Services::ALL, max_payload: 1024 });
        let Ok(FromClient::Accept(a)) = g.handle_frame(hello) else { panic!("no accept") };
        assert_eq!((a.services, a.max_payload, g.max_payload()), (Channel::Cmap.services(), 512, 512));
        assert_eq!(g.handle_frame(hello), Err(SessionError::Unexpected { tag: 0x00 }));
        assert_eq!(g.handle_frame(req), Ok(FromClient::Request { channel: Channel::Cmap, payload: b"x" }));
        let vq = Frame::Message { channel: Channel::Votequorum, kind: Kind::Request, payload: b"x" };
        assert_eq!(g.handle_frame(vq), Err(SessionError::NotAccepted { channel: Channel::Votequorum }));
        let reply = Frame::Message { channel: Channel::Cmap, kind: Kind::Reply, payload: b"x" };
        assert_eq!(g.handle_frame(reply), Err(SessionError::Unexpected { tag: 0x11 }));
        let mut refused = GatewaySession::new(Services::NONE, 512);
        assert!(matches!(refused.handle_frame(hello), Ok(FromClient::Accept(Accept { result: Err(_), .. }))));
        assert_eq!(refused.accepted(), None);
        assert_eq!(refused.handle_frame(req), Err(SessionError::Unexpected { tag: 0x10 }));
    }

    #[test]
    fn reader_byte_at_a_time() {
        let mut wire = [0u8; 64];
        let a = Frame::Reset(Channel::Votequorum.services()).encode(&mut wire).unwrap();
        let payload = [7u8; 9];
        let msg = Frame::Message { channel: Channel::Votequorum, kind: Kind::Event, payload: &payload };
        let b = msg.encode(&mut wire[a..]).unwrap();
        let mut r = FrameReader::<80>::new();
        let mut got = 0;
        for &byte in &wire[..a + b] {
            r.space()[0] = byte;
            r.filled(1);
            if let Some(f) = r.next_frame().unwrap() {
                let expected = if got == 0 { Frame::Reset(Channel::Votequorum.services()) } else { msg };
                assert_eq!(f, expected);
                got += 1;
            }
        }
        assert_eq!((got, r.buffered()), (2, 0));
        assert_eq!(r.next_frame(), Ok(None));
    }
}
