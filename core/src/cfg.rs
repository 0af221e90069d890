//! libcfg messages (the `cfg` service), typed: the two requests `corosync-quorumtool` and
//! `corosync-cfgtool`-style clients need for node identity (GET_NODE_ADDRS, LOCAL_GET), the
//! shutdown exchange of `corosync-cfgtool -H` and of shutdown trackers such as pacemakerd
//! (TRACKSTART, TRACKSTOP, TRYSHUTDOWN, REPLYTOSHUTDOWN, and the TESTSHUTDOWN
//! [`Notification`]), and their replies, each with `encode` into a caller's buffer and a
//! borrowing `decode`.
//!
//! Addresses travel as corosync's `totem_ip_address.addr`: 16 bytes, an IPv4 address in the
//! first 4 (network order) and zeros after it, with one `AF_*` family for all of a node's
//! addresses. The family numbers are Linux's ([`AF_INET`], [`AF_INET6`]).
//!
//! ```
//! use core::net::{IpAddr, Ipv4Addr};
//! use corowire::cfg::{NodeAddrs, Reply, Request, Response};
//! let mut buf = [0u8; 64];
//! let n = Request::GetNodeAddrs { nodeid: 1 }.encode(&mut buf)?;
//! assert_eq!(Request::decode(&buf[..n])?, Request::GetNodeAddrs { nodeid: 1 });
//! let addrs = [IpAddr::V4(Ipv4Addr::LOCALHOST)];
//! let reply = Reply { result: Ok(()), body: Response::GetNodeAddrs(NodeAddrs::from_slice(&addrs)?) };
//! let n = reply.encode(&mut buf)?;
//! assert_eq!(n, 48);
//! let back = Reply::decode(&buf[..n])?;
//! let Response::GetNodeAddrs(got) = back.body else { unreachable!() };
//! assert_eq!(got.iter().collect::<heapless::Vec<IpAddr, 4>>()[..], addrs[..]);
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```

use crate::codec::{
    self, exact, expect_empty, layout, message, request_msg, response_msg, take, wire_ids, MAX_TAIL,
};
use crate::error::{CsError, DecodeError, EncodeError};
use crate::wire::cfg::{
    ReqGetNodeAddrs, ReqReplyToShutdown, ReqTrackStart, ReqTryShutdown, ResGetNodeAddrs, ResLocalGet,
    ResTestShutdown, ADDR_LEN,
};
use crate::wire::qb::{RequestHeader, ResponseHeader};
use crate::wire::U32;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The libqb service name of libcfg.
pub const SERVICE_NAME: &str = "cfg";

/// `AF_INET` on Linux.
pub const AF_INET: u32 = 2;
/// `AF_INET6` on Linux.
pub const AF_INET6: u32 = 10;

/// Response id of the TRACKSTART reply (`MESSAGE_RES_CFG_STATETRACKSTART`).
pub const RESPONSE_TRACK_START: i32 = 2;
/// Response id of the TRACKSTOP reply (`MESSAGE_RES_CFG_STATETRACKSTOP`).
pub const RESPONSE_TRACK_STOP: i32 = 3;
/// Response id of the TRYSHUTDOWN reply.
pub const RESPONSE_TRY_SHUTDOWN: i32 = 9;
/// Id of the TESTSHUTDOWN notification ([`Notification`]), sent on the event channel.
pub const NOTIFY_TEST_SHUTDOWN: i32 = 10;
/// Response id of the REPLYTOSHUTDOWN reply.
pub const RESPONSE_REPLY_TO_SHUTDOWN: i32 = 13;
/// Response id of the GET_NODE_ADDRS reply.
pub const RESPONSE_GET_NODE_ADDRS: i32 = 11;
/// Response id of the LOCAL_GET reply.
pub const RESPONSE_LOCAL_GET: i32 = 12;
/// Response id of corosync's generic reply to an unknown request ([`Response::Generic`]).
pub const RESPONSE_GENERIC: i32 = 0;

/// TRYSHUTDOWN flag `CFG_SHUTDOWN_FLAG_REQUEST`: shut down if every tracker agrees in time.
pub const SHUTDOWN_FLAG_REQUEST: u32 = 0;
/// TRYSHUTDOWN flag `CFG_SHUTDOWN_FLAG_REGARDLESS` (`corosync-cfgtool -H --force`): ask the
/// trackers, then shut down whatever they answer.
pub const SHUTDOWN_FLAG_REGARDLESS: u32 = 1;
/// TRYSHUTDOWN flag `CFG_SHUTDOWN_FLAG_IMMEDIATE`: shut down without asking.
pub const SHUTDOWN_FLAG_IMMEDIATE: u32 = 2;

wire_ids! {
    /// Request ids (`MESSAGE_REQ_CFG_*`) of the requests this module knows, and their reply ids
    /// (the other cfg requests are not supported: `from_id` gives `None`).
    pub enum RequestKind {
        /// 5: the addresses of a node's links.
        GetNodeAddrs = 5 => RESPONSE_GET_NODE_ADDRS,
        /// 6: the local node id.
        LocalGet = 6 => RESPONSE_LOCAL_GET,
        /// 3: ask to shut corosync down.
        TryShutdown = 3 => RESPONSE_TRY_SHUTDOWN,
        /// 4: a tracker's answer to TESTSHUTDOWN.
        ReplyToShutdown = 4 => RESPONSE_REPLY_TO_SHUTDOWN,
        /// 10: become a shutdown tracker.
        TrackStart = 10 => RESPONSE_TRACK_START,
        /// 11: stop tracking.
        TrackStop = 11 => RESPONSE_TRACK_STOP,
    }
}

message! {
    Request: m => m.kind().id(),
    Reply<'a>: m => m.body.id(),
    Notification: _m => NOTIFY_TEST_SHUTDOWN,
}

/// A libcfg request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Request {
    /// GET_NODE_ADDRS (24 bytes).
    GetNodeAddrs {
        /// The node (0: the local node).
        nodeid: u32,
    },
    /// LOCAL_GET (16 bytes).
    LocalGet,
    /// TRYSHUTDOWN (24 bytes).
    TryShutdown {
        /// [`SHUTDOWN_FLAG_REQUEST`], [`SHUTDOWN_FLAG_REGARDLESS`] or
        /// [`SHUTDOWN_FLAG_IMMEDIATE`] (other values act as REQUEST and reach the trackers
        /// as they are).
        flags: u32,
    },
    /// REPLYTOSHUTDOWN (24 bytes).
    ReplyToShutdown {
        /// The answer: 0 no, anything else yes (`COROSYNC_CFG_SHUTDOWN_FLAG_NO` / `_YES`).
        response: u32,
    },
    /// TRACKSTART (24 bytes).
    TrackStart {
        /// `track_flags` (ignored by corosync).
        flags: u8,
    },
    /// TRACKSTOP (16 bytes).
    TrackStop,
}

impl Request {
    /// The kind (and id) of this request.
    pub fn kind(&self) -> RequestKind {
        match self {
            Self::GetNodeAddrs { .. } => RequestKind::GetNodeAddrs,
            Self::LocalGet => RequestKind::LocalGet,
            Self::TryShutdown { .. } => RequestKind::TryShutdown,
            Self::ReplyToShutdown { .. } => RequestKind::ReplyToShutdown,
            Self::TrackStart { .. } => RequestKind::TrackStart,
            Self::TrackStop => RequestKind::TrackStop,
        }
    }

    /// Length of the encoded request.
    pub fn encoded_len(&self) -> usize {
        match self {
            Self::GetNodeAddrs { .. } | Self::TryShutdown { .. } | Self::ReplyToShutdown { .. } => {
                size_of::<ReqGetNodeAddrs>()
            }
            Self::TrackStart { .. } => size_of::<ReqTrackStart>(),
            Self::LocalGet | Self::TrackStop => size_of::<RequestHeader>(),
        }
    }

    /// Encodes the request into the start of `out` and returns its length. On error `out` is
    /// untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.kind() as i32;
        match *self {
            Self::GetNodeAddrs { nodeid: value }
            | Self::TryShutdown { flags: value }
            | Self::ReplyToShutdown { response: value } => {
                // The three share one layout (`ReqU32`).
                let (m, _, n) = request_msg::<ReqGetNodeAddrs>(out, id, 0)?;
                m.value = U32::new(value);
                Ok(n)
            }
            Self::TrackStart { flags } => {
                let (m, _, n) = request_msg::<ReqTrackStart>(out, id, 0)?;
                m.track_flags = flags;
                Ok(n)
            }
            Self::LocalGet | Self::TrackStop => {
                let (_, _, n) = request_msg::<RequestHeader>(out, id, 0)?;
                Ok(n)
            }
        }
    }

    /// Decodes one request frame (server side). `buf` must hold exactly the frame.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let id = codec::request_frame(buf)?;
        match RequestKind::from_id(id).ok_or(DecodeError::UnknownId { id })? {
            RequestKind::GetNodeAddrs => {
                Ok(Self::GetNodeAddrs { nodeid: exact::<ReqGetNodeAddrs>(buf, id)?.value.get() })
            }
            RequestKind::TryShutdown => {
                Ok(Self::TryShutdown { flags: exact::<ReqTryShutdown>(buf, id)?.value.get() })
            }
            RequestKind::ReplyToShutdown => {
                Ok(Self::ReplyToShutdown { response: exact::<ReqReplyToShutdown>(buf, id)?.value.get() })
            }
            RequestKind::TrackStart => {
                Ok(Self::TrackStart { flags: exact::<ReqTrackStart>(buf, id)?.track_flags })
            }
            RequestKind::LocalGet => exact::<RequestHeader>(buf, id).map(|_| Self::LocalGet),
            RequestKind::TrackStop => exact::<RequestHeader>(buf, id).map(|_| Self::TrackStop),
        }
    }
}

/// Why a list of addresses cannot be sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MixedFamilies;

impl fmt::Display for MixedFamilies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a node's addresses must all be IPv4 or all IPv6")
    }
}

impl core::error::Error for MixedFamilies {}

#[derive(Clone, Copy)]
enum Addrs<'a> {
    Wire { family: u32, bytes: &'a [u8] },
    Slice(&'a [IpAddr]),
}

/// The addresses of a GET_NODE_ADDRS reply: a view over the frame (when decoded) or over a
/// caller's slice (for encoding), never a copy. All of one family, as on the wire.
#[derive(Clone, Copy)]
pub struct NodeAddrs<'a>(Addrs<'a>);

impl<'a> NodeAddrs<'a> {
    /// A list over `addrs`, for encoding.
    ///
    /// # Errors
    /// The addresses are not all of one family.
    pub fn from_slice(addrs: &'a [IpAddr]) -> Result<Self, MixedFamilies> {
        match addrs.first() {
            Some(first) if addrs.iter().any(|a| a.is_ipv4() != first.is_ipv4()) => Err(MixedFamilies),
            _ => Ok(Self(Addrs::Slice(addrs))),
        }
    }

    /// The `AF_*` family on the wire ([`AF_INET`] for an empty list).
    pub fn family(&self) -> u32 {
        match self.0 {
            Addrs::Wire { family, .. } => family,
            Addrs::Slice(s) => match s.first() {
                Some(IpAddr::V6(_)) => AF_INET6,
                _ => AF_INET,
            },
        }
    }

    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self.0 {
            Addrs::Wire { bytes, .. } => bytes.len() / ADDR_LEN,
            Addrs::Slice(s) => s.len(),
        }
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Address `i`: read as the family says (a family other than [`AF_INET6`] is read as
    /// IPv4, from the first 4 bytes).
    pub fn get(&self, i: usize) -> Option<IpAddr> {
        match self.0 {
            Addrs::Slice(s) => s.get(i).copied(),
            Addrs::Wire { family, bytes } => {
                let raw: [u8; ADDR_LEN] = bytes.get(i * ADDR_LEN..(i + 1) * ADDR_LEN)?.try_into().ok()?;
                Some(if family == AF_INET6 {
                    IpAddr::V6(Ipv6Addr::from(raw))
                } else {
                    IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3]))
                })
            }
        }
    }

    /// The addresses, in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = IpAddr> + 'a {
        let list = *self;
        (0..self.len()).map(move |i| list.get(i).unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)))
    }
}

impl Default for NodeAddrs<'_> {
    /// No addresses (family [`AF_INET`]), as in an error reply.
    fn default() -> Self {
        Self(Addrs::Slice(&[]))
    }
}

impl PartialEq for NodeAddrs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.family() == other.family() && self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for NodeAddrs<'_> {}

impl fmt::Debug for NodeAddrs<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

#[cfg(feature = "defmt")]
impl defmt::Format for NodeAddrs<'_> {
    fn format(&self, f: defmt::Formatter<'_>) {
        defmt::write!(f, "NodeAddrs(family {=u32}, {=usize} addresses)", self.family(), self.len());
    }
}

/// The body of a libcfg reply; which variant it is follows from the response id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Response<'a> {
    /// Id 11: `32 + 16 * addresses` bytes.
    GetNodeAddrs(NodeAddrs<'a>),
    /// Id 12 (32 bytes).
    LocalGet {
        /// The local node id.
        nodeid: u32,
    },
    /// Id 2, `MESSAGE_RES_CFG_STATETRACKSTART` (24 bytes, the header alone).
    TrackStart,
    /// Id 3, `MESSAGE_RES_CFG_STATETRACKSTOP` (24 bytes, the header alone).
    TrackStop,
    /// Id 9 (24 bytes, the header alone): `CS_OK` when corosync shuts down, else why not.
    TryShutdown,
    /// Id 13 (24 bytes, the header alone).
    ReplyToShutdown,
    /// Id 0 (24 bytes, the header alone): corosync's generic reply to a request its cfg
    /// service does not know (`CS_ERR_INVALID_PARAM`), as every service sends it
    /// ([`crate::qb::encode_generic_reply`]).
    Generic,
}

impl Response<'_> {
    /// The response id.
    pub fn id(&self) -> i32 {
        match self {
            Self::GetNodeAddrs(_) => RESPONSE_GET_NODE_ADDRS,
            Self::LocalGet { .. } => RESPONSE_LOCAL_GET,
            Self::TrackStart => RESPONSE_TRACK_START,
            Self::TrackStop => RESPONSE_TRACK_STOP,
            Self::TryShutdown => RESPONSE_TRY_SHUTDOWN,
            Self::ReplyToShutdown => RESPONSE_REPLY_TO_SHUTDOWN,
            Self::Generic => RESPONSE_GENERIC,
        }
    }
}

/// A libcfg reply: the status from the header, and the body.
pub type Reply<'a> = codec::Reply<Response<'a>>;

impl<'a> Reply<'a> {
    /// Length of the encoded reply (saturating).
    pub fn encoded_len(&self) -> usize {
        match self.body {
            Response::GetNodeAddrs(a) => {
                size_of::<ResGetNodeAddrs>().saturating_add(a.len().saturating_mul(ADDR_LEN))
            }
            Response::LocalGet { .. } => size_of::<ResLocalGet>(),
            _ => size_of::<ResponseHeader>(),
        }
    }

    /// Encodes the reply (server side) into the start of `out`; returns its length. On error
    /// `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let id = self.body.id();
        let err = CsError::raw_of(self.result);
        match self.body {
            Response::GetNodeAddrs(addrs) => {
                let too_large = EncodeError::MessageTooLarge { len: self.encoded_len() };
                let tail_len = addrs.len().checked_mul(ADDR_LEN).ok_or(too_large)?;
                let count = u32::try_from(addrs.len()).map_err(|_| too_large)?;
                let (m, tail, n) = response_msg::<ResGetNodeAddrs>(out, id, err, tail_len)?;
                m.family = U32::new(addrs.family());
                m.num_addrs = U32::new(count);
                for (slot, addr) in tail.chunks_exact_mut(ADDR_LEN).zip(addrs.iter()) {
                    match addr {
                        IpAddr::V4(a) => slot[..4].copy_from_slice(&a.octets()),
                        IpAddr::V6(a) => slot.copy_from_slice(&a.octets()),
                    }
                }
                Ok(n)
            }
            Response::LocalGet { nodeid } => {
                let (m, _, n) = response_msg::<ResLocalGet>(out, id, err, 0)?;
                m.value = U32::new(nodeid);
                Ok(n)
            }
            Response::TrackStart
            | Response::TrackStop
            | Response::TryShutdown
            | Response::ReplyToShutdown
            | Response::Generic => {
                let (_, _, n) = response_msg::<ResponseHeader>(out, id, err, 0)?;
                Ok(n)
            }
        }
    }

    /// Decodes one reply frame (client side). `buf` must hold exactly the frame; a
    /// GET_NODE_ADDRS reply must hold exactly `num_addrs` addresses.
    pub fn decode(buf: &'a [u8]) -> Result<Self, DecodeError> {
        let (id, raw_error) = codec::response_frame(buf)?;
        let result = CsError::check(raw_error);
        let body = match id {
            RESPONSE_GET_NODE_ADDRS => {
                let (m, mut tail) = layout::<ResGetNodeAddrs>(buf, id, MAX_TAIL)?;
                let len = u64::from(m.num_addrs.get()) * ADDR_LEN as u64;
                let bytes = take(&mut tail, len, "num_addrs", 28)?;
                expect_empty(tail, id, buf.len())?;
                Response::GetNodeAddrs(NodeAddrs(Addrs::Wire { family: m.family.get(), bytes }))
            }
            RESPONSE_LOCAL_GET => Response::LocalGet { nodeid: exact::<ResLocalGet>(buf, id)?.value.get() },
            RESPONSE_GENERIC => exact::<ResponseHeader>(buf, id).map(|_| Response::Generic)?,
            RESPONSE_TRACK_START => exact::<ResponseHeader>(buf, id).map(|_| Response::TrackStart)?,
            RESPONSE_TRACK_STOP => exact::<ResponseHeader>(buf, id).map(|_| Response::TrackStop)?,
            RESPONSE_TRY_SHUTDOWN => exact::<ResponseHeader>(buf, id).map(|_| Response::TryShutdown)?,
            RESPONSE_REPLY_TO_SHUTDOWN => {
                exact::<ResponseHeader>(buf, id).map(|_| Response::ReplyToShutdown)?
            }
            _ => return Err(DecodeError::UnknownId { id }),
        };
        Ok(Self { result, body })
    }
}

/// The TESTSHUTDOWN notification (id 10, 32 bytes: `flags` u32 @24), which corosync sends
/// shutdown trackers on their event channel: with `CS_OK` when a TRYSHUTDOWN asks them, and
/// with `CS_ERR_TIMEOUT` when it ran out of time (libcfg calls the shutdown callback with
/// `flags` either way; the status is not passed on).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Notification {
    /// The header's status.
    pub status: Result<(), CsError>,
    /// The shutdown's TRYSHUTDOWN flags.
    pub flags: u32,
}

impl Notification {
    /// Length of the encoded notification.
    pub fn encoded_len(&self) -> usize {
        size_of::<ResTestShutdown>()
    }

    /// Encodes the notification (server side) into the start of `out`; returns its length. On
    /// error `out` is untouched.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let err = CsError::raw_of(self.status);
        let (m, _, n) = response_msg::<ResTestShutdown>(out, NOTIFY_TEST_SHUTDOWN, err, 0)?;
        m.value = U32::new(self.flags);
        Ok(n)
    }

    /// Decodes one notification frame (client side). `buf` must hold exactly the frame.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (m, tail) = codec::notification::<ResTestShutdown>(buf, NOTIFY_TEST_SHUTDOWN)?;
        expect_empty(tail, NOTIFY_TEST_SHUTDOWN, buf.len())?;
        Ok(Self { status: CsError::check(m.hdr.error.get()), flags: m.value.get() })
    }
}
