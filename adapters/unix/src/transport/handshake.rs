//! The setup handshake's I/O (docs/protocol.md §1), in bytes: connect the setup socket, `SO_PASSCRED`
//! on, send the setup request, read the response, `SO_PASSCRED` off. Encoding the request and
//! decoding the response is the core connection's job
//! (`corowire::Connection::encode_setup`, `corowire::Connection::handle_setup`).

use core::time::Duration;
use std::os::fd::OwnedFd;

use corowire::qb::CONNECTION_RESPONSE_LEN;
use nix::errno::Errno;
use nix::sys::socket::{setsockopt, sockopt};
use nix::sys::time::TimeVal;

use super::error::{disconnected, TransportError};
use crate::sys::sock::{
    connect_setup, poll_readable, recv_exact_with_creds, send_all, set_passcred, PollState,
};

/// Connects the setup socket to the libqb service `name`, sends `request` (the setup request
/// bytes) and returns the socket with the 12328-byte setup response, waiting at most
/// `timeout` for it. `SO_PASSCRED` is on for the exchange and off afterwards.
///
/// # Errors
/// [`TransportError::NoDaemon`] if nothing listens, [`TransportError::Timeout`],
/// [`TransportError::Disconnected`] if the server closes the socket before answering,
/// [`TransportError::Io`].
pub fn exchange(
    name: &str,
    request: &[u8],
    timeout: Option<Duration>,
) -> Result<(OwnedFd, Vec<u8>), TransportError> {
    let sock = connect_setup(name).map_err(|e| match e {
        Errno::ECONNREFUSED | Errno::ENOENT => TransportError::NoDaemon(e),
        e => TransportError::Io(e),
    })?;
    set_passcred(&sock, true).map_err(TransportError::Io)?;
    send_all(&sock, request).map_err(disconnected)?;
    match poll_readable(&sock, timeout).map_err(TransportError::Io)? {
        PollState::Timeout => return Err(TransportError::Timeout),
        PollState::Readable | PollState::Hup => {}
    }
    let mut resp = vec![0u8; CONNECTION_RESPONSE_LEN];
    if let Some(t) = timeout {
        // Bound the read of the rest of the response too.
        let t = TimeVal::new(
            libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
            libc::suseconds_t::from(t.subsec_micros().max(1)),
        );
        setsockopt(&sock, sockopt::ReceiveTimeout, &t).map_err(TransportError::Io)?;
    }
    recv_exact_with_creds(&sock, &mut resp).map_err(|e| match e {
        Errno::EAGAIN => TransportError::Timeout,
        e => disconnected(e),
    })?;
    if timeout.is_some() {
        setsockopt(&sock, sockopt::ReceiveTimeout, &TimeVal::new(0, 0)).map_err(TransportError::Io)?;
    }
    set_passcred(&sock, false).map_err(TransportError::Io)?;
    Ok((sock, resp))
}
