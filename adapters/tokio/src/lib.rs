#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod cmap;
mod engine;
mod stream;
mod votequorum;

pub use cmap::{Cmap, TrackItem, TrackStream};
pub use corowire_unix::{
    CheckError, CsError, Error, KeyOp, Map, NodeInfo, Options, OwnedNotification, OwnedTrackNotification,
    OwnedValue, Reconnect, Result, RingId, TrackEvent, TrackFlags, TrackHandle, TrackType, Value, ValueType,
};
pub use stream::{Subscription, Tracked, STREAM_CAPACITY};
pub use votequorum::{Votequorum, VotequorumStream, VotequorumStreams};

// The futures of the calls and of the stream subscriptions are `Send`: they may run on any
// worker of a multi-thread runtime.
const _: fn(&Cmap, &Votequorum) = |c, v| {
    fn send<T: Send>(_: T) {}
    send(c.get("k"));
    send(c.set("k", Value::UInt8(1)));
    send(c.dump(None));
    send(c.track(None, TrackType::ALL));
    send(v.get_info(0));
    send(v.track_each(TrackFlags::CHANGES));
};
