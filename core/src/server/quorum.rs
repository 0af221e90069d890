//! The libquorum (`quorum` service) server engine, sans IO: corosync 3.1.7's
//! `exec/vsf_quorum.c` for model-v0 clients such as `corosync-quorumtool`.
//!
//! It has no quorum state of its own: with a quorum provider it answers from the last
//! [`ClusterView`] it observed ([`Engine::observe`]), which the votequorum engine
//! ([`QuorumEngine`](super::votequorum::QuorumEngine)) publishes. An adapter refreshes the
//! view before every request (see [`super`]), so both services always agree; until the first
//! view the cluster is inquorate with no members. Without a provider (corosync without a
//! `quorum { provider: ... }` section) it ignores the views and answers as corosync's
//! `vsf_quorum.c` does then: quorate, no members, ring sequence number 0.
//!
//! ```
//! use corowire::quorum::{Notification, Reply, Request, Response, TrackFlags};
//! use corowire::server::quorum::QuorumLibEngine;
//! use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
//! use corowire::server::{ClusterView, ConnId, Engine};
//!
//! let vq: QuorumEngine = QuorumEngine::new(QuorumConfig::default());
//! let mut engine: QuorumLibEngine = QuorumLibEngine::new(true);
//! let mut view = ClusterView::default();
//! vq.publish(&mut view);
//! engine.observe(&view);
//! engine.connect(ConnId(1))?;
//! let (mut req, mut out, mut note) = ([0u8; 64], [0u8; 320], [0u8; 64]);
//! let n = Request::GetQuorate.encode(&mut req)?;
//! let m = engine.handle_request(ConnId(1), &req[..n], &mut out)?;
//! assert_eq!(Reply::decode(&out[..m])?.body, Response::GetQuorate { quorate: true });
//! let n = Request::TrackStart { flags: TrackFlags::CURRENT }.encode(&mut req)?;
//! engine.handle_request(ConnId(1), &req[..n], &mut out)?;
//! let (_, len) = engine.poll_notification(&mut note)?.unwrap();
//! let view = Notification::decode(&note[..len])?;
//! assert_eq!((view.ring_seq, view.members.get(0)), (5, Some(1)));
//! # Ok::<(), Box<dyn core::error::Error>>(())
//! ```
//!
//! # Behaviour
//!
//! - GETTYPE: `QUORUM_SET` when a quorum provider is configured, else `QUORUM_FREE`.
//! - GETQUORATE: the votequorum model's quorate state; always quorate without a provider.
//! - TRACKSTART: with CURRENT or CHANGES, a notification (quorate, ring sequence number,
//!   member ids) is queued *before* the reply, also when the answer is `CS_ERR_EXIST`
//!   (tracking already on); CHANGES or CHANGES_ONLY turn tracking on.
//! - TRACKSTOP: turns tracking off and always answers `CS_OK` (corosync sets
//!   `CS_ERR_NOT_EXIST` when not tracking and then overwrites it).
//! - A malformed frame of a known id gets its reply shape with `CS_ERR_INVALID_PARAM`; other
//!   ids get the generic 24-byte reply with `CS_ERR_INVALID_PARAM`.
//!
//! # Not reproduced
//!
//! - MODEL_GETTYPE (id 4) and the model-v1 notifications: treated as an unknown request.
//! - Change notifications are sent when the adapter calls [`QuorumLibEngine::notify`] (the
//!   listener does after each membership change of its simulated cluster); a quorum change a
//!   request causes (e.g. votequorum's SETEXPECTED) does not notify libquorum trackers
//!   (corosync sends a notification on every membership or quorum change).

use super::outbox::Outbox;
use super::session::{handle_request_method, notification_methods, tracking_connection_methods, Sessions};
use super::{forward_engine_methods, ClusterView, ConnId, Engine, Served, ServerError};
use crate::error::CsError;
use crate::quorum::{
    NodeIds, Notification, Reply, Request, RequestKind, Response, TrackFlags, QUORUM_FREE, QUORUM_SET,
};

/// The libquorum engine: `CONNS` connections, an outbox of `EVENTS` notifications or
/// `EVENT_BYTES` bytes.
#[derive(Debug)]
pub struct QuorumLibEngine<const CONNS: usize = 16, const EVENTS: usize = 32, const EVENT_BYTES: usize = 4096>
{
    quorum_type: u32,
    /// Connections and whether each tracks.
    conns: Sessions<bool, CONNS>,
    outbox: Outbox<EVENTS, EVENT_BYTES>,
    /// The votequorum state, as last observed.
    view: ClusterView,
}

impl<const CONNS: usize, const EVENTS: usize, const EVENT_BYTES: usize>
    QuorumLibEngine<CONNS, EVENTS, EVENT_BYTES>
{
    /// An engine; `provider_configured` is whether corosync would have a quorum provider
    /// (`quorum.provider`), which GETTYPE reports. Without one the engine answers quorate
    /// with no members and ignores [`Engine::observe`] (corosync: `vsf_quorum.c` with
    /// `quorum_type` 0).
    pub fn new(provider_configured: bool) -> Self {
        let (quorum_type, quorate) =
            if provider_configured { (QUORUM_SET, false) } else { (QUORUM_FREE, true) };
        let view = ClusterView { quorate, ..ClusterView::default() };
        Self { quorum_type, conns: Sessions::new(), outbox: Outbox::new(), view }
    }

    tracking_connection_methods!();

    /// Whether `conn` tracks changes.
    pub fn is_tracking(&self, conn: ConnId) -> bool {
        self.conns.get(conn).is_some_and(|t| *t)
    }

    notification_methods!();

    /// Takes a new cluster state and queues it for every tracking connection (corosync's
    /// `exec/vsf_quorum.c` sends on every quorum callback: each membership change, and each
    /// change of quorate-ness). Call it after the votequorum engine changed (e.g. its
    /// `set_membership`), with the view all engines publish.
    ///
    /// # Errors
    /// [`ServerError::OutboxFull`]: nothing changed; drain the outbox and call again.
    /// [`ServerError::BufferTooSmall`]: the notifications could not fit even into an empty
    /// outbox (`EVENTS` frames, `EVENT_BYTES` bytes; `required` is their size); the view is
    /// taken but nobody is notified.
    pub fn notify(&mut self, view: &ClusterView) -> Result<(), ServerError> {
        let note = notification_of(view);
        let len = note.encoded_len();
        let trackers = self.conns.iter().filter(|(_, tracking)| **tracking).count();
        let fits = self.outbox.reserve(trackers, trackers.saturating_mul(len))?;
        self.view.clone_from(view);
        if !fits {
            return Err(ServerError::BufferTooSmall {
                required: trackers.saturating_mul(len),
                available: EVENT_BYTES,
            });
        }
        let ids: heapless::Vec<ConnId, CONNS> =
            self.conns.iter().filter(|(_, tracking)| **tracking).map(|(id, _)| id).collect();
        for id in ids {
            self.outbox.push(id, len, |buf| note.encode(buf))?;
        }
        Ok(())
    }

    handle_request_method! {
        /// Handles one request frame from `conn` against the last observed [`ClusterView`] and
        /// writes the reply into `out` (at least [`super::MIN_REPLY_LEN`] bytes); returns the
        /// reply's length. Notifications the request caused are queued; send them first.
        => serve
    }

    fn serve(&mut self, ci: usize, kind: RequestKind, frame: &[u8], out: &mut [u8]) -> Served {
        let (result, body) = match Request::decode(frame) {
            Err(_) => (Err(CsError::InvalidParam), empty_body(kind)),
            Ok(Request::GetType) => (Ok(()), Response::GetType { quorum_type: self.quorum_type }),
            Ok(Request::GetQuorate) => (Ok(()), Response::GetQuorate { quorate: self.view.quorate }),
            Ok(Request::TrackStart { flags }) => (self.track_start(ci, flags)?, Response::TrackStart),
            Ok(Request::TrackStop) => {
                self.conns[ci] = false;
                (Ok(()), Response::TrackStop)
            }
        };
        Ok(Reply { result, body }.encode(out)?)
    }

    fn track_start(&mut self, ci: usize, flags: TrackFlags) -> Result<Result<(), CsError>, ServerError> {
        if flags.contains(TrackFlags::CURRENT) || flags.contains(TrackFlags::CHANGES) {
            let note = notification_of(&self.view);
            let len = note.encoded_len();
            if !self.outbox.reserve(1, len)? {
                return Ok(Err(CsError::NoResources));
            }
            self.outbox.push(self.conns.id(ci), len, |buf| note.encode(buf))?;
        }
        if self.conns[ci] {
            return Ok(Err(CsError::Exist));
        }
        if flags.contains(TrackFlags::CHANGES) || flags.contains(TrackFlags::CHANGES_ONLY) {
            self.conns[ci] = true;
        }
        Ok(Ok(()))
    }
}

/// Answers from the votequorum state it observes (with a quorum provider).
impl<const CONNS: usize, const EVENTS: usize, const EVENT_BYTES: usize> Engine
    for QuorumLibEngine<CONNS, EVENTS, EVENT_BYTES>
{
    fn name(&self) -> &'static str {
        crate::quorum::SERVICE_NAME
    }

    forward_engine_methods!();

    fn observe(&mut self, view: &ClusterView) {
        if self.quorum_type == QUORUM_SET {
            self.view.clone_from(view);
        }
    }
}

/// The libquorum notification of `view`.
fn notification_of(view: &ClusterView) -> Notification<'_> {
    Notification {
        quorate: view.quorate,
        ring_seq: view.ring_id.seq,
        members: NodeIds::from_slice(&view.members),
    }
}

/// The reply shape of `kind` with a zero body (for an error reply).
fn empty_body(kind: RequestKind) -> Response {
    match kind {
        RequestKind::GetQuorate => Response::GetQuorate { quorate: false },
        RequestKind::TrackStart => Response::TrackStart,
        RequestKind::TrackStop => Response::TrackStop,
        RequestKind::GetType => Response::GetType { quorum_type: 0 },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::votequorum::RingId;

    #[test]
    fn notify_reaches_only_trackers_and_waits_for_room() {
        let mut engine: QuorumLibEngine<4, 2, 4096> = QuorumLibEngine::new(true);
        let (mut req, mut out, mut note) = ([0u8; 64], [0u8; 320], [0u8; 64]);
        for conn in [ConnId(1), ConnId(2)] {
            engine.connect(conn).unwrap();
        }
        let n = Request::TrackStart { flags: TrackFlags::CHANGES_ONLY }.encode(&mut req).unwrap();
        engine.handle_request(ConnId(2), &req[..n], &mut out).unwrap();
        let mut view =
            ClusterView { quorate: true, ring_id: RingId { nodeid: 1, seq: 12 }, ..Default::default() };
        view.members.extend_from_slice(&[1, 2]).unwrap();
        engine.notify(&view).unwrap();
        engine.notify(&view).unwrap();
        // The outbox holds two frames: a third waits until it is drained.
        assert_eq!(engine.notify(&view), Err(ServerError::OutboxFull));
        let (conn, len) = engine.poll_notification(&mut note).unwrap().unwrap();
        assert_eq!(conn, ConnId(2));
        let got = Notification::decode(&note[..len]).unwrap();
        assert_eq!((got.quorate, got.ring_seq, got.members.get(1)), (true, 12, Some(2)));
        let n = Request::GetQuorate.encode(&mut req).unwrap();
        let m = engine.handle_request(ConnId(1), &req[..n], &mut out).unwrap();
        assert_eq!(Reply::decode(&out[..m]).unwrap().body, Response::GetQuorate { quorate: true });
    }
}
