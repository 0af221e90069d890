#![doc = include_str!("../README.md")]
#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod asynch;
mod blocking;
mod client;
mod mux;

pub use asynch::{AsyncClient, AsyncCmapClient, AsyncLink, AsyncVotequorumClient};
pub use blocking::{no_clock, Clock, Link, Port};
pub use client::{Client, CmapClient, Error, OnStream, Result, VotequorumClient};
pub use corowire::cmap::{TrackType, Value, ValueType};
pub use corowire::conn::CmapEvent;
pub use corowire::driver::Flow;
pub use corowire::stream::{Accept, Channel, Services};
pub use corowire::votequorum::{NodeInfo, Notification, TrackFlags};
pub use corowire::{CsError, DispatchMode, Duration, Instant};
pub use mux::LinkError;
