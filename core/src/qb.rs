//! The libqb connection handshake, typed: the 24-byte connection request and the 12328-byte
//! connection response, plus corosync's generic reject reply.

use crate::codec::{self, layout, put_cstr, request_msg, response_msg};
use crate::error::{CsError, DecodeError, EncodeError, SetupError};
use crate::wire::qb::{ConnectionRequest, ConnectionResponse, MSG_AUTHENTICATE, PATH_MAX};
use crate::wire::{I32, U32, U64};

/// The maximum message size libcmap and libvotequorum ask for (`IPC_REQUEST_SIZE`).
pub const DEFAULT_MAX_MSG_SIZE: u32 = 1_048_576;
/// Size of the connection response; libqb clients never ask for less.
pub const CONNECTION_RESPONSE_LEN: usize = size_of::<ConnectionResponse>();
/// Size of the connection request.
pub const CONNECTION_REQUEST_LEN: usize = size_of::<ConnectionRequest>();

/// `enum qb_ipc_type`: the transport the server chose.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ConnectionType {
    /// 0: datagram sockets.
    Socket,
    /// 1: shared-memory rings.
    Shm,
    /// Any other value (2 POSIX MQ, 3 SysV MQ, 4 native), which clients cannot use.
    Other(i32),
}

impl ConnectionType {
    /// The raw value.
    pub fn to_raw(self) -> i32 {
        match self {
            Self::Socket => 0,
            Self::Shm => 1,
            Self::Other(n) => n,
        }
    }

    /// The type for a raw value.
    pub fn from_raw(raw: i32) -> Self {
        match raw {
            0 => Self::Socket,
            1 => Self::Shm,
            n => Self::Other(n),
        }
    }
}

/// The connection request (`QB_IPC_MSG_AUTHENTICATE`, client → server).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectRequest {
    /// Requested maximum message size. libqb clients never send less than
    /// [`CONNECTION_RESPONSE_LEN`]; [`ConnectRequest::new`] raises it the same way.
    pub max_msg_size: u32,
}

impl ConnectRequest {
    /// A request for `max_msg_size`, raised to at least [`CONNECTION_RESPONSE_LEN`] as libqb does.
    pub fn new(max_msg_size: u32) -> Self {
        Self { max_msg_size: max_msg_size.max(CONNECTION_RESPONSE_LEN as u32) }
    }

    /// Encodes the 24 bytes into the start of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        let (m, _, n) = request_msg::<ConnectionRequest>(out, MSG_AUTHENTICATE, 0)?;
        m.value = U32::new(self.max_msg_size);
        Ok(n)
    }

    /// Decodes the request (server side). Any id but −1 is an error, as in libqb.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let id = codec::request_frame(buf)?;
        if id != MSG_AUTHENTICATE {
            return Err(DecodeError::UnknownId { id });
        }
        let (m, _) = layout::<ConnectionRequest>(buf, id, 0)?;
        Ok(Self { max_msg_size: m.value.get() })
    }
}

/// A successful connection response: the transport, the negotiated size and the ring names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConnectResponse<'a> {
    /// The transport chosen by the server.
    pub connection_type: ConnectionType,
    /// The negotiated maximum message size.
    pub max_msg_size: u32,
    /// The server's opaque connection pointer.
    pub connection: u64,
    /// Request ring base path (shm) or control file path (socket), without the NUL.
    pub request: &'a [u8],
    /// Response ring base path (shm) or socket base name (socket).
    pub response: &'a [u8],
    /// Event ring base path (shm); unused for sockets.
    pub event: &'a [u8],
}

impl<'a> ConnectResponse<'a> {
    /// Encodes a successful response (server side) into the start of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        for path in [self.request, self.response, self.event] {
            codec::check_name(path, PATH_MAX)?;
        }
        let (m, _, n) = response_msg::<ConnectionResponse>(out, MSG_AUTHENTICATE, 0, 0)?;
        m.connection_type = I32::new(self.connection_type.to_raw());
        m.max_msg_size = U32::new(self.max_msg_size);
        m.connection = U64::new(self.connection);
        put_cstr(&mut m.request, self.request);
        put_cstr(&mut m.response, self.response);
        put_cstr(&mut m.event, self.event);
        Ok(n)
    }

    /// Decodes the response (client side). A negative `error` in the header is returned as
    /// `Ok(Err(SetupError))`: the frame is well-formed, the server refused.
    pub fn decode(buf: &'a [u8]) -> Result<Result<Self, SetupError>, DecodeError> {
        let (id, error) = codec::response_frame(buf)?;
        if id != MSG_AUTHENTICATE {
            return Err(DecodeError::UnknownId { id });
        }
        let (m, _) = layout::<ConnectionResponse>(buf, id, 0)?;
        if error != 0 {
            return Ok(Err(SetupError { errno: error.unsigned_abs() as i32 }));
        }
        Ok(Ok(Self {
            connection_type: ConnectionType::from_raw(m.connection_type.get()),
            max_msg_size: m.max_msg_size.get(),
            connection: m.connection.get(),
            request: codec::cstr(&m.request, "request", 40)?,
            response: codec::cstr(&m.response, "response", 4136)?,
            event: codec::cstr(&m.event, "event", 8232)?,
        }))
    }

    /// Encodes a refusal (server side): only the header, with `-errno`, and the rest zero.
    pub fn encode_error(error: SetupError, out: &mut [u8]) -> Result<usize, EncodeError> {
        let (_, _, n) =
            response_msg::<ConnectionResponse>(out, MSG_AUTHENTICATE, error.errno.wrapping_neg(), 0)?;
        Ok(n)
    }
}

/// Encodes corosync's generic reply to an unknown or rejected request: id 0, 24 bytes,
/// with `error` (corosync sends `CS_ERR_INVALID_PARAM`).
pub fn encode_generic_reply(error: CsError, out: &mut [u8]) -> Result<usize, EncodeError> {
    crate::cmap::encode_status(out, 0, error.to_raw())
}

/// The fields every service reply starts with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReplyHeader {
    /// Response id.
    pub id: i32,
    /// Total size.
    pub size: usize,
    /// The raw `cs_error_t`.
    pub error: i32,
}

impl ReplyHeader {
    /// Reads and checks the header of one reply frame; `buf` must hold exactly the frame.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        let (id, error) = codec::response_frame(buf)?;
        Ok(Self { id, size: buf.len(), error })
    }
}
