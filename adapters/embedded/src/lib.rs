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
pub use corowire::driver::Flow;
pub use corowire::stream::{Channel, Services};
pub use mux::LinkError;
