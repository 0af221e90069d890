//! How the CMAP and votequorum clients connect: the setup handshake in bytes, the transport
//! the server chose, and the core's generic [`Driver`] over it (which holds the collect loop,
//! the batched announcements, the `TRY_AGAIN` retries and the dispatch loop).

use core::any::Any;
use core::sync::atomic::AtomicU8;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Release};
use std::sync::Arc;

use corowire::conn::{Connection, Service};
use corowire::driver::{Buffers, Driver, Error as DriverError, Flow};
use corowire::transport::{Retry, Transport};
use corowire::{CsError, DispatchMode};

use crate::error::{Error, Result};
use crate::options::Options;
use crate::transport::{handshake, ClientTransport, TransportError};

/// A blocking client of one service: the core driver over the transport the server chose,
/// with `Vec` buffers; boxed, as the connection's queues are stored inline. Public (as
/// `ClientDriver`) for other adapters (corowire-tokio) that drive it from their own thread.
pub type Client<S, const P: usize, const E: usize, const EB: usize> =
    Box<Driver<S, Box<dyn ClientTransport>, Vec<u8>, P, E, EB>>;

/// The handle plumbing every blocking client shares: finalize on drop, `Send`, the fd to poll
/// for `POLLIN` before dispatching (`cmap_fd_get`, `votequorum_fd_get`), the application
/// context (`cmap_context_set`, ...), the callbacks' [`Control`] and the dispatch with a
/// deadline. `$c` is the C library's prefix; the handle has `dispatch` and a private
/// `dispatch_within(mode, Option<Duration>)`.
macro_rules! client_handle {
    ($handle:ident, $c:literal) => {
        impl $handle {
            #[doc = concat!("[`", stringify!($handle), "::dispatch`], waiting for notifications at most `timeout` in all")]
            /// (the waiting modes [`DispatchMode::One`](crate::DispatchMode::One) and
            /// [`DispatchMode::Blocking`](crate::DispatchMode::Blocking) end with
            /// [`Error::EventTimeout`](crate::Error::EventTimeout) then; the others never wait).
            ///
            /// # Errors
            #[doc = concat!("As [`", stringify!($handle), "::dispatch`], and [`Error::EventTimeout`](crate::Error::EventTimeout).")]
            pub fn dispatch_timeout(
                &mut self,
                mode: corowire::DispatchMode,
                timeout: core::time::Duration,
            ) -> $crate::Result<()> {
                self.dispatch_within(mode, Some(timeout))
            }

            /// The libqb service name this handle connected to: `Options::service_name`, or
            /// the standard name (or the one [`NAME_PREFIX_ENV`](crate::NAME_PREFIX_ENV) gave).
            pub fn service_name(&self) -> &str {
                &self.service
            }

            /// Notifications skipped so far because their id is not one this client knows
            /// (the core's `Connection::unknown_events`): nonzero when a newer daemon sends
            /// notifications this library does not decode. The C library ends its dispatch
            #[doc = concat!("with `CS_ERR_LIBRARY` on such a message (`", $c, "_dispatch`'s `default:` branch);")]
            /// this client skips it, counts it here, and goes on.
            pub fn unknown_events(&self) -> u64 {
                self.client.connection().unknown_events()
            }

            /// A handle a callback can use to stop a dispatch or finalize this connection.
            pub fn control(&self) -> $crate::Control {
                self.control.clone()
            }

            #[doc = concat!("Stores an application value with the handle (`", $c, "_context_set`).")]
            pub fn context_set<T: core::any::Any + Send>(&mut self, value: T) {
                self.context.set(value);
            }

            #[doc = concat!("The value stored with [`", stringify!($handle), "::context_set`], if it is a `T` (`", $c, "_context_get`).")]
            pub fn context_get<T: core::any::Any>(&self) -> Option<&T> {
                self.context.get()
            }

            /// The stored value, mutably.
            pub fn context_get_mut<T: core::any::Any>(&mut self) -> Option<&mut T> {
                self.context.get_mut()
            }
        }

        impl Drop for $handle {
            fn drop(&mut self) {
                self.client.connection_mut().finalize();
            }
        }

        // The handle may move between threads.
        const _: fn() = || {
            fn send<T: Send>() {}
            send::<$handle>();
        };

        impl std::os::fd::AsFd for $handle {
            /// The setup socket (shared memory) or an epoll fd over the event and setup sockets:
            /// readable on an event or a hang-up; poll it for `POLLIN`, then dispatch with
            /// `DispatchMode::All`, which tells which.
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.client.transport().as_fd()
            }
        }

        impl std::os::fd::AsRawFd for $handle {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&std::os::fd::AsFd::as_fd(self))
            }
        }
    };
}
pub(crate) use client_handle;

/// The largest reply or event a client keeps room for: every CMAP and votequorum reply and
/// event fits (the largest is a CMAP notification carrying two 16385-byte values,
/// `corowire::cmap::NOTIFICATION_MAX_LEN`); a larger frame is `Error::MessageTooLarge`.
const INBOUND_FRAME_MAX: usize = corowire::cmap::NOTIFICATION_MAX_LEN.next_power_of_two();

/// Connects to `options.service_name`, or if `None` to the service's standard name (or the
/// `COROWIRE_NAME_PREFIX` one, see [`crate::NAME_PREFIX_ENV`]): sends the setup request,
/// decodes the response, opens the transport it names; retries `CS_ERR_TRY_AGAIN` (daemon
/// not ready) per `options.retry_try_again`. Also gives the service name used.
///
/// # Errors
/// As `Cmap::connect_with`: [`Error::Connect`] if no daemon listens or it refuses, and the
/// handshake's other errors.
pub fn connect<S: Service, const P: usize, const E: usize, const EB: usize>(
    options: &Options,
) -> Result<(Client<S, P, E, EB>, String)> {
    let Options { max_msg_size, timeout, spin, .. } = *options;
    let retry = options.retry();
    let name = crate::options::service_name(options.service_name.as_deref(), S::NAME);
    let mut attempt = 0;
    loop {
        match open::<S, P, E, EB>(max_msg_size, &name, timeout) {
            Ok((conn, mut transport)) => {
                transport.set_spin(spin);
                // Sized by the channels actually opened, and never larger than the protocol needs
                // (replies and events) or than this client asked for (requests): the size the
                // server claims is the peer's word, and must not decide an allocation.
                let inbound = |len: usize| vec![0; len.min(INBOUND_FRAME_MAX)];
                let request = conn.max_msg_size().min(transport.max_request_len());
                let buffers = Buffers {
                    request: vec![0; request.min((max_msg_size as usize).max(INBOUND_FRAME_MAX))],
                    reply: inbound(transport.max_response_len()),
                    event: inbound(transport.max_event_len()),
                    scratch: inbound(transport.max_event_len()),
                };
                let client = Box::new(Driver::new(conn, transport, buffers, timeout, retry));
                return Ok((client, name.into_owned()));
            }
            Err(e) => {
                let e = Error::from_transport(&name, e);
                match Retry::next_pause(retry, &mut attempt) {
                    Some(pause) if e.cs_error() == CsError::TryAgain => std::thread::sleep(pause),
                    _ => return Err(e),
                }
            }
        }
    }
}

/// The next event, converted by `own`, without running callbacks: waits at most `timeout`
/// (`None`: for as long as the daemon lives); `None` if none came. Events that are skipped
/// (a deleted track's) are not counted.
pub(crate) fn next_event<S: Service, const P: usize, const E: usize, const EB: usize, O>(
    client: &mut Client<S, P, E, EB>,
    timeout: Option<core::time::Duration>,
    mut own: impl FnMut(S::Event<'_>) -> O,
) -> Result<Option<O>> {
    let deadline = timeout.map(|t| client.transport().now().saturating_add(t));
    loop {
        let mut got = None;
        let r = client.dispatch(DispatchMode::One, deadline, |e| {
            got = Some(own(e));
            Flow::Stop
        });
        match (r, got) {
            (_, Some(event)) => return Ok(Some(event)),
            (Err(DriverError::Timeout), None) => return Ok(None),
            (Err(e), None) => return Err(Error::from_dispatch(e, DispatchMode::One)),
            // A skipped notification: wait for the next.
            (Ok(()), None) => {}
        }
    }
}

/// `dispatch(mode)` with the events handed to `deliver`, and `control` asked after each
/// one; waiting at most `timeout` in all if given.
pub(crate) fn dispatch<S: Service, const P: usize, const E: usize, const EB: usize>(
    client: &mut Client<S, P, E, EB>,
    mode: DispatchMode,
    timeout: Option<core::time::Duration>,
    control: &Control,
    mut deliver: impl FnMut(S::Event<'_>),
) -> Result<()> {
    let deadline = timeout.map(|t| client.transport().now().saturating_add(t));
    control.begin_dispatch();
    client
        .dispatch(mode, deadline, |e| {
            deliver(e);
            control.take()
        })
        .map_err(|e| Error::from_dispatch(e, mode))
}

/// One connection attempt: the handshake (bytes out, bytes in), then the transport.
fn open<S: Service, const P: usize, const E: usize, const EB: usize>(
    max_msg_size: u32,
    name: &str,
    timeout: Option<core::time::Duration>,
) -> core::result::Result<(Connection<S, P, E, EB>, Box<dyn ClientTransport>), TransportError> {
    let mut conn = Connection::<S, P, E, EB>::new(max_msg_size);
    let mut request = [0u8; 64];
    let n = conn.encode_setup(&mut request).map_err(|_| TransportError::Io(nix::errno::Errno::EINVAL))?;
    let (sock, response) = handshake::exchange(name, &request[..n], timeout)?;
    let names = conn.handle_setup(&response).map_err(TransportError::Handshake)?;
    let transport = crate::transport::open(sock, &names)?;
    Ok((conn, transport))
}

/// An application value stored with a handle (`cmap_context_set`, `votequorum_context_set`).
#[derive(Default)]
pub(crate) struct Context(Option<Box<dyn Any + Send>>);

impl core::fmt::Debug for Context {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(if self.0.is_some() { "Context(Some(..))" } else { "Context(None)" })
    }
}

impl Context {
    pub(crate) fn set<T: Any + Send>(&mut self, value: T) {
        self.0 = Some(Box::new(value));
    }

    pub(crate) fn get<T: Any>(&self) -> Option<&T> {
        self.0.as_ref()?.downcast_ref()
    }

    pub(crate) fn get_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.0.as_mut()?.downcast_mut()
    }
}

/// Lets a callback end the dispatch that runs it ([`Control::stop`]) or finalize its own
/// connection ([`Control::finalize`], `cmap_finalize` / `votequorum_finalize` inside a
/// callback). Get one from `Cmap::control` or `Votequorum::control` and move a clone into
/// the callback. A request takes effect when the running callback returns.
///
/// A [`Control::stop`] made outside a dispatch is dropped when the next dispatch starts (it
/// has no dispatch to end, and must not cut the next one short); a [`Control::finalize`]
/// made outside a dispatch takes effect after the first callback of the next one.
#[derive(Debug, Clone, Default)]
pub struct Control(Arc<AtomicU8>);

/// [`Control`] states.
const GO_ON: u8 = 0;
const STOP: u8 = 1;
const FINALIZE: u8 = 2;

impl Control {
    /// Ends the running dispatch after this callback with `Ok(())`, also a
    /// [`DispatchMode::Blocking`](crate::DispatchMode::Blocking) one. Outside a dispatch it
    /// has no effect.
    pub fn stop(&self) {
        let _ = self.0.compare_exchange(GO_ON, STOP, AcqRel, Acquire);
    }

    /// Finalizes the connection after this callback: the dispatch returns
    /// `CS_ERR_BAD_HANDLE` (as libcmap's after `cmap_finalize` in a callback), and so does
    /// every later call on the handle. The connection is closed when the handle is dropped.
    pub fn finalize(&self) {
        self.0.store(FINALIZE, Release);
    }

    /// Drops a stop asked for outside a dispatch; a finalize stays.
    pub(crate) fn begin_dispatch(&self) {
        let _ = self.0.compare_exchange(STOP, GO_ON, AcqRel, Acquire);
    }

    /// Takes the request made since the last call, as the driver's [`Flow`].
    pub(crate) fn take(&self) -> Flow {
        match self.0.swap(GO_ON, AcqRel) {
            STOP => Flow::Stop,
            FINALIZE => Flow::Finalize,
            _ => Flow::Continue,
        }
    }
}
