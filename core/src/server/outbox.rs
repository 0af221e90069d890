//! The bounded notification outbox shared by both engines: encoded frames in one byte arena,
//! with a FIFO of (connection, length).

use super::{ConnId, ServerError};
use crate::error::EncodeError;
use heapless::{Deque, Vec};

/// Encoded notifications waiting for the adapter, oldest first.
#[derive(Debug)]
pub(crate) struct Outbox<const EVENTS: usize, const BYTES: usize> {
    bytes: Vec<u8, BYTES>,
    frames: Deque<(ConnId, usize), EVENTS>,
}

/// A point to roll back to.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mark {
    bytes: usize,
    frames: usize,
}

impl<const EVENTS: usize, const BYTES: usize> Outbox<EVENTS, BYTES> {
    pub(crate) const fn new() -> Self {
        Self { bytes: Vec::new(), frames: Deque::new() }
    }

    pub(crate) fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether `frames` more frames of `bytes` bytes in all fit now.
    pub(crate) fn has_room(&self, frames: usize, bytes: usize) -> bool {
        self.frames.len().saturating_add(frames) <= EVENTS && self.bytes.len().saturating_add(bytes) <= BYTES
    }

    /// Whether they would fit into an empty outbox.
    pub(crate) fn could_ever_fit(frames: usize, bytes: usize) -> bool {
        frames <= EVENTS && bytes <= BYTES
    }

    /// Checks room for a request's notifications: `Ok(true)` if they fit, `Ok(false)` if they
    /// never could (refuse the request), `Err(OutboxFull)` if the adapter should drain first.
    pub(crate) fn reserve(&self, frames: usize, bytes: usize) -> Result<bool, ServerError> {
        if self.has_room(frames, bytes) {
            Ok(true)
        } else if Self::could_ever_fit(frames, bytes) {
            Err(ServerError::OutboxFull)
        } else {
            Ok(false)
        }
    }

    pub(crate) fn mark(&self) -> Mark {
        Mark { bytes: self.bytes.len(), frames: self.frames.len() }
    }

    pub(crate) fn rollback(&mut self, mark: Mark) {
        while self.frames.len() > mark.frames {
            self.frames.pop_back();
        }
        self.bytes.truncate(mark.bytes);
    }

    /// Appends one frame of at most `max_len` bytes, written by `encode`.
    pub(crate) fn push(
        &mut self,
        conn: ConnId,
        max_len: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>,
    ) -> Result<(), ServerError> {
        if self.frames.is_full() {
            return Err(ServerError::OutboxFull);
        }
        let start = self.bytes.len();
        let end = start.checked_add(max_len).ok_or(ServerError::OutboxFull)?;
        self.bytes.resize(end, 0).map_err(|_| ServerError::OutboxFull)?;
        match encode(&mut self.bytes[start..]) {
            Ok(n) if n <= max_len => {
                self.bytes.truncate(start + n);
                // Cannot fail: checked `is_full` above.
                self.frames.push_back((conn, n)).map_err(|_| ServerError::OutboxFull)
            }
            Ok(_) | Err(_) => {
                self.bytes.truncate(start);
                Err(ServerError::OutboxFull)
            }
        }
    }

    /// Moves the oldest frame into `out`.
    pub(crate) fn pop(&mut self, out: &mut [u8]) -> Result<Option<(ConnId, usize)>, ServerError> {
        let Some(&(conn, n)) = self.frames.front() else {
            return Ok(None);
        };
        let Some(dst) = out.get_mut(..n) else {
            return Err(ServerError::BufferTooSmall { required: n, available: out.len() });
        };
        dst.copy_from_slice(&self.bytes[..n]);
        self.bytes.copy_within(n.., 0);
        self.bytes.truncate(self.bytes.len() - n);
        self.frames.pop_front();
        Ok(Some((conn, n)))
    }

    /// Length of the oldest frame.
    pub(crate) fn peek_len(&self) -> Option<usize> {
        self.frames.front().map(|&(_, n)| n)
    }

    /// Drops every frame queued for `conn`.
    pub(crate) fn remove_conn(&mut self, conn: ConnId) {
        let count = self.frames.len();
        let (mut read, mut write) = (0usize, 0usize);
        for _ in 0..count {
            let Some((c, n)) = self.frames.pop_front() else { break };
            if c != conn {
                self.bytes.copy_within(read..read + n, write);
                write += n;
                // Cannot fail: one was just popped.
                let _ = self.frames.push_back((c, n));
            }
            read += n;
        }
        self.bytes.truncate(write);
    }
}
