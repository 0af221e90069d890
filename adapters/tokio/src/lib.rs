#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cmap;
mod engine;
mod stream;
mod votequorum;

pub use cmap::{Cmap, TrackItem, TrackStream};
pub use corowire_unix::{
    CheckError, CsError, Error, KeyOp, Map, NodeInfo, Options, OwnedNotification, OwnedTrackNotification,
    OwnedValue, Reconnect, Result, RingId, TrackEvent, TrackFlags, TrackType, Value, ValueType,
};
pub use stream::{Subscription, Tracked, STREAM_CAPACITY};
pub use votequorum::{Votequorum, VotequorumStream, VotequorumStreams};
