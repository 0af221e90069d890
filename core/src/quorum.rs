//! libquorum messages (the `quorum` service), typed: the requests `corosync-quorumtool` sends,
//! their replies and the quorum notification (model v0), each with `encode` into a caller's
//! buffer and a borrowing `decode`.
//!
//! ```
//! use corowire::quorum::{Reply, Request, Response};
//! let mut buf = [0u8; 64];
//! let n = Request::GetType.encode(&mut buf)?;
//! assert_eq!(n, 16);
//! assert_eq!(Request::decode(&buf[..n])?, Request::GetType);
//! let reply = Reply { result: Ok(()), body: Response::GetType { quorum_type: 1 } };
//! let n = reply.encode(&mut buf)?;
//! assert_eq!((n, Reply::decode(&buf[..n])?), (32, reply));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

use crate::codec::{self, exact, expect_empty, message, request_msg, response_msg, take, wire_ids};
use crate::error::{CsError, DecodeError, EncodeError};
use crate::wire::qb::{RequestHeader, ResponseHeader};
use crate::wire::quorum::{ReqTrackStart, ResNotification, ResU32, NOTIFICATION_TAIL_PAD};
use crate::wire::{I32, U32, U64};

pub use crate::votequorum::{NodeIds, TrackFlags};

/// The libqb service name of libquorum.
pub const SERVICE_NAME: &str = "quorum";

/// Response id of the GETQUORATE reply.
pub const RESPONSE_GETQUORATE: i32 = 0;
/// Response id of the TRACKSTART reply.
pub const RESPONSE_TRACKSTART: i32 = 1;
/// Response id of the TRACKSTOP reply.
pub const RESPONSE_TRACKSTOP: i32 = 2;
/// Response id of the quorum notification (model v0, on the event channel).
pub const NOTIFY_QUORUM: i32 = 3;
/// Response id of the GETTYPE reply.
pub const RESPONSE_GETTYPE: i32 = 4;

/// `quorum_type` when a quorum provider is configured (`QUORUM_SET`).
pub const QUORUM_SET: u32 = 1;
/// `quorum_type` without a quorum provider (`QUORUM_FREE`).
pub const QUORUM_FREE: u32 = 0;

wire_ids! {
    /// Request ids (`MESSAGE_REQ_QUORUM_*`) of the requests this module knows, and their reply
    /// ids (4, MODEL_GETTYPE, is not supported: `from_id` gives `None`).
    pub enum RequestKind {
        /// 0: whether the cluster is quorate.
        GetQuorate = 0 => RESPONSE_GETQUORATE,
        /// 1: start tracking (and/or get the current state as a notification).
        TrackStart = 1 => RESPONSE_TRACKSTART,
        /// 2: stop tracking.
        TrackStop = 2 => RESPONSE_TRACKSTOP,
        /// 3: whether a quorum provider is configured (sent by `quorum_initialize`).
        GetType = 3 => RESPONSE_GETTYPE,
    }
}

message! {
    Request: m => m.kind().id(),
    Reply: m => m.body.id(),
    Notification<'a>: _m => NOTIFY_QUORUM,
}

/// A libquorum request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request {
    /// GETQUORATE (16 bytes).
    GetQuorate,
    /// TRACKSTART (24 bytes).
    TrackStart {
        /// `CS_TRACK_*` flags.
        flags: TrackFlags,
    },
    /// TRACKSTOP (16 bytes).
    TrackStop,
    /// GETTYPE (16 bytes).
    GetType,
}

impl Request {
    /// The kind (and id) of this request.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::GetQuorate => RequestKind::GetQuorate,
            Self::TrackStart { .. } => RequestKind::TrackStart,
            Self::TrackStop => RequestKind::TrackStop,
            Self::GetType => RequestKind::GetType,
        }
    }

    /// Length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::TrackStart { .. } => size_of::<ReqTrackStart>(),
            _ => size_of::<RequestHeader>(),
        }
    }

    /// Encodes the request into the start of `out` and returns its length. On error `out` is
    /// untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.kind() as i32;
        match *self {
            Self::TrackStart { flags } => {
                let (m, _, n) = request_msg::<ReqTrackStart>(out, id, 0)?;
                m.value = U32::new(flags.0);
                Ok(n)
            }
            _ => {
                let (_, _, n) = request_msg::<RequestHeader>(out, id, 0)?;
                Ok(n)
            }
        }
    }

    /// Decodes one request frame (server side). `buf` must hold exactly the frame.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let id = codec::request_frame(buf)?;
        let kind = RequestKind::from_id(id).ok_or(DecodeError::UnknownId { id })?;
        if kind == RequestKind::TrackStart {
            let m = exact::<ReqTrackStart>(buf, id)?;
            return Ok(Self::TrackStart { flags: TrackFlags(m.value.get()) });
        }
        exact::<RequestHeader>(buf, id)?;
        Ok(match kind {
            RequestKind::GetQuorate => Self::GetQuorate,
            RequestKind::TrackStop => Self::TrackStop,
            _ => Self::GetType,
        })
    }
}

/// The body of a libquorum reply; which variant it is follows from the response id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Response {
    /// Id 0 (32 bytes).
    GetQuorate {
        /// Whether the cluster is quorate (any non-zero value on the wire).
        quorate: bool,
    },
    /// Id 1 (24 bytes).
    TrackStart,
    /// Id 2 (24 bytes).
    TrackStop,
    /// Id 4 (32 bytes).
    GetType {
        /// [`QUORUM_SET`] or [`QUORUM_FREE`].
        quorum_type: u32,
    },
}

impl Response {
    /// The response id.
    pub fn id(&self) -> i32 {
        match self {
            Self::GetQuorate { .. } => RESPONSE_GETQUORATE,
            Self::TrackStart => RESPONSE_TRACKSTART,
            Self::TrackStop => RESPONSE_TRACKSTOP,
            Self::GetType { .. } => RESPONSE_GETTYPE,
        }
    }
}

/// A libquorum reply: the status from the header, and the body.
pub type Reply = codec::Reply<Response>;

impl Reply {
    /// Length of the encoded reply.
    pub fn encoded_len(&self) -> usize {
        match self.body {
            Response::GetQuorate { .. } | Response::GetType { .. } => size_of::<ResU32>(),
            Response::TrackStart | Response::TrackStop => size_of::<ResponseHeader>(),
        }
    }

    /// Encodes the reply (server side) into the start of `out`; returns its length. On error
    /// `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.body.id();
        let err = CsError::raw_of(self.result);
        let value = match self.body {
            Response::GetQuorate { quorate } => u32::from(quorate),
            Response::GetType { quorum_type } => quorum_type,
            Response::TrackStart | Response::TrackStop => {
                let (_, _, n) = response_msg::<ResponseHeader>(out, id, err, 0)?;
                return Ok(n);
            }
        };
        let (m, _, n) = response_msg::<ResU32>(out, id, err, 0)?;
        m.value = U32::new(value);
        Ok(n)
    }

    /// Decodes one reply frame (client side). `buf` must hold exactly the frame.
    /// The notification id is [`DecodeError::UnknownId`] here; see [`Notification::decode`].
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (id, raw_error) = codec::response_frame(buf)?;
        let result = CsError::check(raw_error);
        let body = match id {
            RESPONSE_GETQUORATE => {
                Response::GetQuorate { quorate: exact::<ResU32>(buf, id)?.value.get() != 0 }
            }
            RESPONSE_GETTYPE => Response::GetType { quorum_type: exact::<ResU32>(buf, id)?.value.get() },
            RESPONSE_TRACKSTART | RESPONSE_TRACKSTOP => {
                exact::<ResponseHeader>(buf, id)?;
                if id == RESPONSE_TRACKSTART {
                    Response::TrackStart
                } else {
                    Response::TrackStop
                }
            }
            _ => return Err(DecodeError::UnknownId { id }),
        };
        Ok(Self { result, body })
    }
}

/// The quorum notification (id 3, model v0): `48 + 4 * members` bytes, the member ids at
/// offset 44 and 4 zero bytes after them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Notification<'a> {
    /// Whether the cluster is quorate (any non-zero value on the wire).
    pub quorate: bool,
    /// The ring's sequence number (v0 carries no ring node id).
    pub ring_seq: u64,
    /// The member node ids.
    pub members: NodeIds<'a>,
}

impl<'a> Notification<'a> {
    /// Length of the encoded notification (saturating).
    pub fn encoded_len(&self) -> usize {
        (size_of::<ResNotification>() + NOTIFICATION_TAIL_PAD).saturating_add(self.members.encoded_len())
    }

    /// Encodes the notification (server side) into the start of `out`; returns its length. On
    /// error `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let too_large = EncodeError::MessageTooLarge { len: self.encoded_len() };
        let list_len = self.members.checked_encoded_len().ok_or(too_large)?;
        let tail_len = list_len.checked_add(NOTIFICATION_TAIL_PAD).ok_or(too_large)?;
        let (m, tail, n) = response_msg::<ResNotification>(out, NOTIFY_QUORUM, CsError::RAW_OK, tail_len)?;
        m.quorate = I32::new(self.quorate.into());
        m.ring_seq = U64::new(self.ring_seq);
        m.view_list_entries = U32::new(self.members.len() as u32);
        self.members.encode_into(&mut tail[..list_len]).ok_or(too_large)?;
        Ok(n)
    }

    /// Decodes one notification frame (client side). `buf` must hold exactly the frame: the
    /// member ids and then exactly 4 more bytes (their value is ignored).
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let id = NOTIFY_QUORUM;
        let (m, mut tail) = codec::notification::<ResNotification>(buf, id)?;
        let members = NodeIds::decode(&mut tail, m.view_list_entries.get(), 40)?;
        take(&mut tail, NOTIFICATION_TAIL_PAD as u64, "view_list_entries", 40)?;
        expect_empty(tail, id, buf.len())?;
        Ok(Self { quorate: m.quorate.get() != 0, ring_seq: m.ring_seq.get(), members })
    }
}
