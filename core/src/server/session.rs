//! The per-connection state table shared by the engines, and the connection and notification
//! methods that every engine exposes the same way.

use super::{check_out, frame_id, ConnId, ServerError};
use crate::error::CsError;
use crate::qb::encode_generic_reply;
use crate::wire::qb::MSG_DISCONNECT;
use core::ops::{Index, IndexMut};
use heapless::Vec;

/// Up to `CONNS` connections, each with its engine-specific state `T`, in no particular order
/// (a disconnect moves the last one into the freed slot).
#[derive(Debug)]
pub(crate) struct Sessions<T, const CONNS: usize> {
    conns: Vec<(ConnId, T), CONNS>,
}

impl<T, const CONNS: usize> Sessions<T, CONNS> {
    pub(crate) const fn new() -> Self {
        Self { conns: Vec::new() }
    }

    /// Registers `conn` with the state `state`; returns its slot.
    pub(crate) fn connect(&mut self, conn: ConnId, state: T) -> Result<usize, ServerError> {
        if self.is_connected(conn) {
            return Err(ServerError::AlreadyConnected(conn));
        }
        self.conns.push((conn, state)).map_err(|_| ServerError::TooManyConnections)?;
        Ok(self.conns.len() - 1)
    }

    /// Forgets `conn`; returns its state, or `None` if it was not connected.
    pub(crate) fn disconnect(&mut self, conn: ConnId) -> Option<T> {
        let i = self.slot(conn)?;
        Some(self.conns.swap_remove(i).1)
    }

    pub(crate) fn is_connected(&self, conn: ConnId) -> bool {
        self.slot(conn).is_some()
    }

    /// The slot of `conn`, valid until the next connect or disconnect.
    pub(crate) fn slot(&self, conn: ConnId) -> Option<usize> {
        self.conns.iter().position(|(c, _)| *c == conn)
    }

    /// The slot of `conn`, or [`ServerError::UnknownConnection`].
    pub(crate) fn require(&self, conn: ConnId) -> Result<usize, ServerError> {
        self.slot(conn).ok_or(ServerError::UnknownConnection(conn))
    }

    /// The start of every engine's `handle_request`: checks `out` (at least
    /// [`super::MIN_REPLY_LEN`] bytes), finds the slot of `conn` and reads the request kind of
    /// `frame` with `from_id`. A frame without a known request id is answered at once with
    /// corosync's generic reply (`CS_ERR_INVALID_PARAM`): `Ok(Err(reply length))`; libqb's
    /// DISCONNECT request (id −3) is not answered: [`ServerError::Disconnect`].
    pub(crate) fn begin_request<K>(
        &self,
        conn: ConnId,
        frame: &[u8],
        out: &mut [u8],
        from_id: impl FnOnce(i32) -> Option<K>,
    ) -> Result<Result<(usize, K), usize>, ServerError> {
        check_out(out)?;
        let ci = self.require(conn)?;
        if frame_id(frame) == Some(MSG_DISCONNECT) {
            return Err(ServerError::Disconnect);
        }
        match frame_id(frame).and_then(from_id) {
            Some(kind) => Ok(Ok((ci, kind))),
            None => Ok(Err(encode_generic_reply(CsError::InvalidParam, out)?)),
        }
    }

    /// The connection in slot `i`.
    pub(crate) fn id(&self, i: usize) -> ConnId {
        self.conns[i].0
    }

    pub(crate) fn get(&self, conn: ConnId) -> Option<&T> {
        self.slot(conn).map(|i| &self.conns[i].1)
    }

    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Every connection and its state.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (ConnId, &T)> + Clone {
        self.conns.iter().map(|(c, t)| (*c, t))
    }
}

impl<T, const CONNS: usize> Index<usize> for Sessions<T, CONNS> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.conns[i].1
    }
}

impl<T, const CONNS: usize> IndexMut<usize> for Sessions<T, CONNS> {
    fn index_mut(&mut self, i: usize) -> &mut T {
        &mut self.conns[i].1
    }
}

/// `pending_notifications`, `next_notification_len` and `poll_notification` of an engine with
/// an `outbox` field; extra doc lines for `poll_notification` may be given.
macro_rules! notification_methods {
    ($(#[doc = $poll_doc:literal])*) => {
        /// Number of queued notifications.
        pub fn pending_notifications(&self) -> usize {
            self.outbox.len()
        }

        /// Length of the next queued notification.
        pub fn next_notification_len(&self) -> Option<usize> {
            self.outbox.peek_len()
        }

        /// Moves the oldest queued notification into `out`: the connection whose event channel it
        /// goes to, and its length. Drain these before sending a reply.
        $(#[doc = $poll_doc])*
        pub fn poll_notification(
            &mut self,
            out: &mut [u8],
        ) -> Result<Option<(ConnId, usize)>, ServerError> {
            self.outbox.pop(out)
        }
    };
}

/// `connect`, `disconnect` and `is_connected` of an engine with a `conns: Sessions` field whose
/// state starts as `T::default()` and an `outbox` field.
macro_rules! tracking_connection_methods {
    () => {
        /// Registers a new connection.
        pub fn connect(&mut self, conn: ConnId) -> Result<(), ServerError> {
            self.conns.connect(conn, Default::default()).map(drop)
        }

        /// Forgets a connection: stops its tracking and drops its queued notifications.
        pub fn disconnect(&mut self, conn: ConnId) {
            if self.conns.disconnect(conn).is_some() {
                self.outbox.remove_conn(conn);
            }
        }

        /// Whether `conn` is connected.
        pub fn is_connected(&self, conn: ConnId) -> bool {
            self.conns.is_connected(conn)
        }
    };
}

/// `handle_request` (with the given docs) of an engine with a `conns: Sessions` field: the
/// common start ([`Sessions::begin_request`] with the module's `RequestKind`), then
/// `self.$serve(slot, kind, frame, out)`.
macro_rules! handle_request_method {
    ($(#[doc = $doc:literal])* => $serve:ident) => {
        $(#[doc = $doc])*
        pub fn handle_request(
            &mut self,
            conn: ConnId,
            frame: &[u8],
            out: &mut [u8],
        ) -> Result<usize, ServerError> {
            match self.conns.begin_request(conn, frame, out, RequestKind::from_id)? {
                Ok((ci, kind)) => self.$serve(ci, kind, frame, out),
                Err(len) => Ok(len),
            }
        }
    };
}

pub(crate) use {handle_request_method, notification_methods, tracking_connection_methods};
