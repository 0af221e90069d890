//! Notifications as streams: a bounded buffer per subscription, filled by the connection
//! thread without ever waiting, with explicit items for what the buffer could not hold
//! ([`Tracked::Lagged`]) and for a reconnect ([`Tracked::Resync`]).

use core::pin::Pin;
use core::task::{Context, Poll};

use futures_core::Stream;
use tokio::sync::mpsc;

use crate::engine::Closer;

/// Items a subscription's buffer holds before the connection thread counts the next
/// notifications as lost ([`Tracked::Lagged`]).
pub const STREAM_CAPACITY: usize = 1024;

/// One item of a subscription's stream.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tracked<T> {
    /// A notification.
    Event(T),
    /// The connection was lost and made again (`Options::reconnect`), and the subscription
    /// registered anew: changes in between may be missing. Re-read the state.
    Resync,
    /// This many notifications were dropped because the stream's buffer
    /// ([`STREAM_CAPACITY`] items) was full: the consumer read too slowly. Delivered before
    /// the next notification once there is room again.
    Lagged(u64),
}

/// The connection thread's end of a subscription.
#[derive(Debug)]
pub(crate) struct Sink<T> {
    tx: mpsc::Sender<Tracked<T>>,
    /// Notifications dropped and not yet reported.
    lost: u64,
    /// A resync marker is owed.
    resync: bool,
}

impl<T> Sink<T> {
    /// Whether the stream was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Owes the stream a resync marker (after a reconnect); earlier losses are part of it.
    pub(crate) fn resync(&mut self) {
        self.resync = true;
        self.lost = 0;
        self.flush_markers();
    }

    /// Sends the markers owed, if there is room; whether none is owed any more.
    fn flush_markers(&mut self) -> bool {
        if self.resync {
            if self.tx.try_send(Tracked::Resync).is_err() {
                return false;
            }
            self.resync = false;
        }
        if self.lost > 0 {
            if self.tx.try_send(Tracked::Lagged(self.lost)).is_err() {
                return false;
            }
            self.lost = 0;
        }
        true
    }

    /// Hands `event` to the stream, or counts it lost if the buffer is full.
    pub(crate) fn push(&mut self, event: T) {
        if !self.flush_markers() || self.tx.try_send(Tracked::Event(event)).is_err() {
            self.lost += 1;
        }
    }
}

/// A stream of notifications: [`Tracked`] items, bounded by [`STREAM_CAPACITY`]. Ends
/// (`None`) when the connection is lost for good (no `Options::reconnect`). Dropping it ends
/// the subscription on the daemon (TRACK_DELETE or TRACK_STOP), sent by the connection
/// thread.
///
/// Read it with [`Subscription::next`] or as a [`futures_core::Stream`].
pub struct Subscription<T> {
    rx: mpsc::Receiver<Tracked<T>>,
    closer: Closer,
}

impl<T> core::fmt::Debug for Subscription<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Subscription").field("buffered", &self.rx.len()).finish_non_exhaustive()
    }
}

impl<T> Subscription<T> {
    /// A subscription and the connection thread's end of it.
    pub(crate) fn new(closer: Closer) -> (Self, Sink<T>) {
        let (tx, rx) = mpsc::channel(STREAM_CAPACITY);
        (Self { rx, closer }, Sink { tx, lost: 0, resync: false })
    }

    /// The next item; `None` once the connection is gone for good.
    pub async fn next(&mut self) -> Option<Tracked<T>> {
        self.rx.recv().await
    }

    /// Items buffered now.
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Tracked<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Tracked<T>>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.rx.close();
        (self.closer)();
    }
}
