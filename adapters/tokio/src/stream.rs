//! Notifications as streams: a bounded buffer per subscription, filled by the connection
//! thread without ever waiting, with explicit items for what the buffer could not hold
//! ([`Tracked::Lagged`]), for a loss ([`Tracked::Disconnected`]) and for a reconnect
//! ([`Tracked::Resync`]).

use core::pin::Pin;
use core::sync::atomic::{AtomicBool, Ordering};
use core::task::{Context, Poll};
use std::sync::Arc;

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
    /// The connection to the daemon was just lost (daemon killed, hang-up, a broken reply):
    /// from now on nothing is known. Whatever the last notification said (say, "quorate")
    /// no longer holds: a quorum-aware service should act as if inquorate until
    /// [`Tracked::Resync`]. Put on every stream at the moment the connection thread sees
    /// the loss. With `Options::reconnect` the stream goes on and [`Tracked::Resync`]
    /// follows once the daemon is back; without it the stream ends (`None`) next.
    ///
    /// A daemon that is stopped (`SIGSTOP`) or slow is not a loss: the connection is still
    /// there, calls time out (`Error::Timeout`) and no marker comes.
    Disconnected,
    /// The connection was lost and made again (`Options::reconnect`), and the subscription
    /// registered anew: changes in between may be missing. Re-read the state.
    Resync,
    /// This many notifications were dropped because the stream's buffer
    /// ([`STREAM_CAPACITY`] items) was full: the consumer read too slowly. Delivered as soon
    /// as the consumer has read the buffer empty, before any later notification.
    Lagged(u64),
}

/// Whether a connection is up, shared by its handles and its connection thread.
#[derive(Debug, Clone)]
pub(crate) struct Link(Arc<AtomicBool>);

impl Link {
    /// A link to a connection just made.
    pub(crate) fn up() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }

    /// Records the connection's state.
    pub(crate) fn set(&self, up: bool) {
        self.0.store(up, Ordering::Release);
    }

    /// Whether the connection is up.
    pub(crate) fn is_up(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

/// The connection thread's end of a subscription.
#[derive(Debug)]
pub(crate) struct Sink<T> {
    tx: mpsc::Sender<Tracked<T>>,
    /// Notifications dropped and not yet reported.
    lost: u64,
    /// A loss marker is owed.
    disconnected: bool,
    /// A resync marker is owed.
    resync: bool,
    /// Whether a marker may be owed: set before each try to send, so a consumer that read
    /// the buffer empty and sees it clear knows nothing is owed (see [`Subscription`]'s
    /// `poll_next`).
    owed: Arc<AtomicBool>,
}

impl<T> Sink<T> {
    /// Whether the stream was dropped.
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }

    /// Owes the stream a loss marker (the connection just broke).
    pub(crate) fn disconnected(&mut self) {
        self.disconnected = true;
        self.flush();
    }

    /// Owes the stream a resync marker (after a reconnect); earlier losses are part of it.
    pub(crate) fn resync(&mut self) {
        self.resync = true;
        self.lost = 0;
        self.flush();
    }

    /// Sends the markers owed, if there is room (the consumer asks for this once it read
    /// the buffer empty).
    pub(crate) fn flush(&mut self) {
        self.owed.store(true, Ordering::SeqCst);
        self.flush_markers();
        self.settle();
    }

    /// Sends the markers owed, in the order of what happened, if there is room; whether
    /// none is owed any more.
    fn flush_markers(&mut self) -> bool {
        if self.lost > 0 {
            if self.tx.try_send(Tracked::Lagged(self.lost)).is_err() {
                return false;
            }
            self.lost = 0;
        }
        for (owed, marker) in
            [(&mut self.disconnected, Tracked::Disconnected), (&mut self.resync, Tracked::Resync)]
        {
            if *owed {
                if self.tx.try_send(marker).is_err() {
                    return false;
                }
                *owed = false;
            }
        }
        true
    }

    /// Clears `owed` if no marker is owed.
    fn settle(&self) {
        if self.lost == 0 && !self.disconnected && !self.resync {
            self.owed.store(false, Ordering::SeqCst);
        }
    }

    /// Hands `event` to the stream, or counts it lost if the buffer is full.
    pub(crate) fn push(&mut self, event: T) {
        self.owed.store(true, Ordering::SeqCst);
        if !self.flush_markers() || self.tx.try_send(Tracked::Event(event)).is_err() {
            self.lost += 1;
        }
        self.settle();
    }
}

/// A stream of notifications: [`Tracked`] items, bounded by [`STREAM_CAPACITY`]. Ends
/// (`None`) after [`Tracked::Disconnected`] when the connection is lost for good (no
/// `Options::reconnect`). Dropping it ends the subscription on the daemon (TRACK_DELETE or
/// TRACK_STOP), sent by the connection thread.
///
/// A stream keeps its connection (and the connection thread) alive: with
/// `Options::reconnect` it does not end when the last [`Cmap`](crate::Cmap) or
/// [`Votequorum`](crate::Votequorum) handle is dropped, and goes on reconnecting while
/// the daemon is away. Drop the streams to end the connection.
///
/// Calls never fail because of a stream: what a call gets at a loss or while the connection
/// thread waits for the daemon to come back is the call's business (`Options::timeout`);
/// the stream says [`Tracked::Disconnected`] at the loss and [`Tracked::Resync`] when the
/// daemon is back, and nothing in between.
///
/// Read it with [`Subscription::next`] or as a [`futures_core::Stream`].
pub struct Subscription<T> {
    rx: mpsc::Receiver<Tracked<T>>,
    closer: Closer,
    /// The sink's `owed`.
    owed: Arc<AtomicBool>,
    /// A CMAP track's handle ([`TrackStream::track_handle`](crate::TrackStream)); 0 for
    /// votequorum.
    pub(crate) track: u64,
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
        let owed = Arc::new(AtomicBool::new(false));
        let sink = Sink { tx, lost: 0, disconnected: false, resync: false, owed: owed.clone() };
        (Self { rx, closer, owed, track: 0 }, sink)
    }

    /// The next item; `None` once the connection is gone for good.
    pub async fn next(&mut self) -> Option<Tracked<T>> {
        core::future::poll_fn(|cx| self.poll_item(cx)).await
    }

    /// The next item if there is one; with the buffer read empty and a marker owed (a
    /// [`Tracked::Lagged`] the connection thread could not put in the full buffer), asks
    /// the connection thread to send it now rather than with the next notification.
    fn poll_item(&mut self, cx: &mut Context<'_>) -> Poll<Option<Tracked<T>>> {
        let item = self.rx.poll_recv(cx);
        // The sink sets `owed` before it tries to send: if it failed for a full buffer, the
        // flag is set by now, since the buffer was emptied after that try.
        if item.is_pending() && self.owed.load(Ordering::SeqCst) {
            (self.closer)();
        }
        item
    }

    /// Items buffered now.
    pub fn buffered(&self) -> usize {
        self.rx.len()
    }
}

impl<T> Stream for Subscription<T> {
    type Item = Tracked<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Tracked<T>>> {
        self.poll_item(cx)
    }
}

impl<T> Drop for Subscription<T> {
    fn drop(&mut self) {
        self.rx.close();
        (self.closer)();
    }
}
