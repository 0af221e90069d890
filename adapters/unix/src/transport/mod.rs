//! The libqb transports, client side: the setup handshake's I/O ([`handshake`], docs/protocol.md §1),
//! then the transport the server chose: the shared-memory rings ([`ShmTransport`], docs/protocol.md §2,
//! appendix A) or the datagram sockets ([`SocketTransport`], docs/protocol.md §3).
//!
//! Both implement `corowire::transport::Transport`, under the core's generic client driver
//! (`corowire::driver::Driver`); the protocol state (what was sent, what a reply answers)
//! lives in `corowire::Connection`.

mod clock;
mod conndir;
mod error;
pub mod handshake;
mod shm;
pub mod socket;
mod spin;

use core::fmt::Debug;
use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use corowire::conn::HandleError;
use corowire::qb::{ConnectResponse, ConnectionType};
use corowire::transport::Transport;
use nix::sys::socket::{shutdown, Shutdown};

pub use conndir::Untrusted;
pub use error::TransportError;
pub use shm::ShmTransport;
pub use socket::SocketTransport;

/// Bytes of replies a pipelining client keeps in flight on the socket transport (the server's
/// send buffer holds them until they are read).
const SOCKET_REPLY_BUDGET: usize = 64 * 1024;

/// A Unix client transport as the clients hold it, chosen at run time: a
/// [`Transport`] with an fd to poll for events and the sizes of its channels.
pub trait ClientTransport: Transport<Error = TransportError> + AsFd + Send + Debug {
    /// The largest request that can be sent: the request ring's largest chunk, or the
    /// negotiated maximum message size.
    fn max_request_len(&self) -> usize;
    /// The largest reply that can arrive.
    fn max_response_len(&self) -> usize;
    /// The largest event that can arrive.
    fn max_event_len(&self) -> usize;
    /// How many bytes of replies may be in flight at once: the response ring's size, or a
    /// fixed budget on sockets.
    fn reply_budget(&self) -> usize;
    /// The reply-wait spin (see `Options::spin`); transports that sleep in `poll` ignore it.
    fn set_spin(&mut self, spin: Option<core::time::Duration>);
    /// Checks, without waiting, that the server is still there (the transport's own
    /// `check_alive`); a resilient client runs it before each call.
    ///
    /// # Errors
    /// [`TransportError::Disconnected`] once the server is gone, [`TransportError::Io`].
    fn check_alive(&self) -> Result<(), TransportError>;
}

impl ClientTransport for ShmTransport {
    fn check_alive(&self) -> Result<(), TransportError> {
        Self::check_alive(self)
    }

    fn max_request_len(&self) -> usize {
        self.request_ring().geometry().max_chunk()
    }

    fn max_response_len(&self) -> usize {
        self.response_ring().geometry().max_chunk()
    }

    fn max_event_len(&self) -> usize {
        self.event_ring().geometry().max_chunk()
    }

    fn reply_budget(&self) -> usize {
        self.response_ring().geometry().bytes()
    }

    fn set_spin(&mut self, spin: Option<core::time::Duration>) {
        Self::set_spin(self, spin);
    }
}

impl ClientTransport for SocketTransport {
    fn check_alive(&self) -> Result<(), TransportError> {
        Self::check_alive(self)
    }

    fn max_request_len(&self) -> usize {
        self.max_msg_size()
    }

    fn max_response_len(&self) -> usize {
        self.max_msg_size()
    }

    fn max_event_len(&self) -> usize {
        self.max_msg_size()
    }

    fn reply_budget(&self) -> usize {
        SOCKET_REPLY_BUDGET
    }

    fn set_spin(&mut self, _spin: Option<core::time::Duration>) {}
}

/// Opens the transport a decoded setup response names, over the connected setup socket
/// `sock` ([`handshake::exchange`]): the three rings (shared memory, type 1), or the control
/// file and datagram sockets (type 0).
///
/// # Errors
/// [`TransportError::Handshake`] ([`HandleError::UnsupportedTransport`]) for another
/// connection type, after shutting the socket down; the transport's own open errors.
pub fn open(
    sock: OwnedFd,
    response: &ConnectResponse<'_>,
) -> Result<Box<dyn ClientTransport>, TransportError> {
    let path = |bytes: &[u8]| Path::new(OsStr::from_bytes(bytes)).to_path_buf();
    let (request, reply, event) = (path(response.request), path(response.response), path(response.event));
    match response.connection_type {
        ConnectionType::Shm => Ok(Box::new(ShmTransport::open(sock, &request, &reply, &event)?)),
        ConnectionType::Socket => {
            Ok(Box::new(SocketTransport::open(sock, &request, &reply, response.max_msg_size as usize)?))
        }
        other => {
            let _ = shutdown(sock.as_raw_fd(), Shutdown::Both);
            Err(TransportError::Handshake(HandleError::UnsupportedTransport(other)))
        }
    }
}
