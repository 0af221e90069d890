//! Linux OS layer for `corowire`, and blocking CMAP and votequorum clients built on it that
//! talk to a stock corosync daemon without libqb, libcmap or libvotequorum.
//!
//! Clients (see the README for an overview):
//! - [`cmap::Cmap`]: get/set/delete/inc/dec, typed accessors, iteration, tracking with
//!   callbacks, the four dispatch modes, pipelined [`cmap::Cmap::get_many`];
//! - [`votequorum::Votequorum`]: getinfo, expected votes, votes, tracking, qdevice calls.
//!
//! Server: [`server::Server`], a libqb-compatible CMAP and votequorum listener over the core's
//! sans-IO engines, which the stock corosync tools and libraries accept.
//!
//! Transport:
//! - [`transport::Transport`]: the setup handshake, then [`transport::ShmTransport`] (the three
//!   shared-memory rings) or [`socket_transport::SocketTransport`] (datagram sockets), as the
//!   server chose;
//! - [`ring::ShmRing`]: one libqb ring, opened as the client, with every shared value validated.
//!
//! OS layer:
//! - [`sys::shm`]: safe, bounds-checked access to `MAP_SHARED` file mappings (the ring files);
//! - [`sys::futex`]: shared futex wait/wake;
//! - [`sem`]: glibc's process-shared `sem_t` algorithm, which is part of the wire format;
//! - [`sys::sock`]: the setup socket (libqb's padded abstract names, credentials, polling).
//!
//! All `unsafe` code lives in `sys::shm` and `sys::futex`.
//!
//! Only 64-bit Linux is supported: the glibc `sem_t` layout used on the wire is the 64-bit one.

#![deny(unsafe_code)]

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("corowire-unix supports 64-bit Linux only");

mod client;
pub mod cmap;
mod error;
mod options;
pub mod ring;
pub mod sem;
pub mod server;
pub mod socket_transport;
pub mod sys;
pub mod transport;
pub mod votequorum;

pub use error::{ConnectError, Error, Result};
pub use options::NAME_PREFIX_ENV;

/// Compiles the README's examples as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
