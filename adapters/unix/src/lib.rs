#![doc = include_str!("../README.md")]
#![deny(unsafe_code)]

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
compile_error!("corowire-unix supports 64-bit Linux only");

mod client;
pub mod cmap;
mod error;
mod options;
mod resilient;
pub mod ring;
pub mod sem;
pub mod server;
pub mod sys;
pub mod transport;
pub mod votequorum;

/// The core crate, for what the re-exports below do not cover (e.g. the sans-IO
/// `Connection` under [`transport`]).
pub use corowire;

pub use client::{connect as connect_driver, Client as ClientDriver, Control};
pub use cmap::{
    Cmap, Iter, Map, OwnedTrackNotification, OwnedValue, TrackEvent, TrackHandle, TrackNotification,
    TrackType, Value, ValueType, VALUE_MAX_LEN,
};
pub use corowire::{CsError, DispatchMode, EncodeError};
pub use error::{CheckError, ConnectError, Error, KeyOp, Result};
/// The `errno` of [`Error::Io`] and [`ConnectError::NoDaemon`] (nix's).
pub use nix::errno::Errno;
pub use options::{Options, Reconnect, NAME_PREFIX_ENV};
pub use votequorum::{
    InfoFlags, NodeEntry, NodeIds, NodeInfo, NodeInfoOf, NodeList, NodeState, Notification,
    OwnedNotification, RingId, TrackFlags, Votequorum, QDEVICE_NODEID,
};
