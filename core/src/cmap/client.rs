//! The client half of CMAP: its [`Service`] implementation for [`Connection`], the track
//! table, and the TRACK_ADD / TRACK_DELETE helpers (libcmap's `cmap_track_add` and
//! `cmap_track_delete`, `lib/cmap.c`).

use super::{Key, Notification, Reply, Request, RequestKind, Response, TrackType, SERVICE_NAME};
use crate::conn::{Connection, Service, SubmitError, Submitted, Token};
use crate::error::{CsError, DecodeError};
use crate::time::{Duration, Instant};
use heapless::Vec;

/// The CMAP service, with room for `TRACKS` concurrent tracks.
#[derive(Debug)]
pub struct Cmap<const TRACKS: usize = 32>;

/// One CMAP track, as the client knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Track {
    /// The cookie sent as `track_inst_handle`.
    pub cookie: u64,
    /// The caller's context, handed back with every notification.
    pub context: u64,
    /// The server's handle, once the TRACK_ADD reply has arrived.
    pub server_handle: Option<u64>,
    /// The token of the TRACK_ADD request.
    token: Token,
}

/// CMAP's client-side state: the track table.
#[derive(Debug)]
pub struct CmapState<const TRACKS: usize> {
    tracks: Vec<Track, TRACKS>,
    next_cookie: u64,
}

impl<const TRACKS: usize> Default for CmapState<TRACKS> {
    fn default() -> Self {
        Self { tracks: Vec::new(), next_cookie: 1 }
    }
}

impl<const TRACKS: usize> CmapState<TRACKS> {
    /// The tracks currently registered.
    pub fn tracks(&self) -> &[Track] {
        &self.tracks
    }

    /// The cookie [`Connection::track_add`] sends next (one more than the last TRACK_ADD's).
    pub fn next_cookie(&self) -> u64 {
        self.next_cookie
    }
}

/// A CMAP notification routed to its track.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct CmapEvent<'a> {
    /// The server's track handle (what libcmap passes to the callback).
    pub track_handle: u64,
    /// The context given to [`Connection::track_add`].
    pub context: u64,
    /// The notification: key, event, new and old value.
    pub notification: Notification<'a>,
}

impl<const TRACKS: usize> Service for Cmap<TRACKS> {
    const NAME: &'static str = SERVICE_NAME;
    type Kind = RequestKind;
    type Request<'a> = Request<'a>;
    type Response<'a> = Response<'a>;
    type Event<'a> = CmapEvent<'a>;
    type State = CmapState<TRACKS>;
    /// The context of a TRACK_ADD (ignored for the other requests).
    type Context = u64;

    fn kind(req: &Request<'_>) -> RequestKind {
        req.kind()
    }

    fn response_id(kind: RequestKind) -> i32 {
        kind.response_id()
    }

    fn is_barrier(_: RequestKind) -> bool {
        false
    }

    fn on_submit(
        state: &mut Self::State,
        req: &Request<'_>,
        context: u64,
        token: Token,
    ) -> Result<(), SubmitError> {
        if let Request::TrackAdd { track_inst_handle, .. } = *req {
            let track = Track { cookie: track_inst_handle, context, server_handle: None, token };
            state.tracks.push(track).map_err(|_| SubmitError::TooManyTracks { capacity: TRACKS })?;
            state.next_cookie = state.next_cookie.max(track_inst_handle.wrapping_add(1));
        }
        Ok(())
    }

    fn decode_reply(buf: &[u8]) -> Result<Result<Response<'_>, CsError>, DecodeError> {
        Reply::decode(buf).map(Reply::into_result)
    }

    fn on_reply(state: &mut Self::State, token: Token, reply: &Result<Response<'_>, CsError>, expired: bool) {
        match reply {
            Ok(Response::TrackAdd { track_handle }) if !expired => {
                if let Some(t) = state.tracks.iter_mut().find(|t| t.token == token) {
                    t.server_handle = Some(*track_handle);
                }
            }
            Ok(Response::TrackDelete { track_inst_handle }) => {
                state.tracks.retain(|t| t.cookie != *track_inst_handle);
            }
            // A failed or abandoned TRACK_ADD leaves no track the caller can use.
            _ => state.tracks.retain(|t| t.token != token || t.server_handle.is_some()),
        }
    }

    fn route<'a>(state: &Self::State, buf: &'a [u8]) -> Result<Option<CmapEvent<'a>>, DecodeError> {
        let notification = Notification::decode(buf)?;
        Ok(state.tracks.iter().find(|t| t.cookie == notification.track_inst_handle).map(|t| CmapEvent {
            track_handle: t.server_handle.unwrap_or(0),
            context: t.context,
            notification,
        }))
    }
}

impl<const T: usize, const P: usize, const E: usize, const B: usize> Connection<Cmap<T>, P, E, B> {
    /// Submits a TRACK_ADD with a fresh cookie, remembering `context` for its notifications.
    /// The track's server handle is known once the reply completes.
    #[must_use = "the request must be sent, or its error handled"]
    pub fn track_add(
        &mut self,
        key: Option<Key<'_>>,
        track_type: TrackType,
        context: u64,
        now: Instant,
        timeout: Option<Duration>,
        out: &mut [u8],
    ) -> Result<Submitted, SubmitError> {
        let req = Request::TrackAdd { key, track_type, track_inst_handle: self.service_state().next_cookie };
        self.submit_with_context(&req, context, now, timeout, out)
    }

    /// Submits a TRACK_DELETE for a track of this connection, by its server handle.
    #[must_use = "the request must be sent, or its error handled"]
    pub fn track_delete(
        &mut self,
        track_handle: u64,
        now: Instant,
        timeout: Option<Duration>,
        out: &mut [u8],
    ) -> Result<Submitted, SubmitError> {
        if !self.service_state().tracks.iter().any(|t| t.server_handle == Some(track_handle)) {
            return Err(SubmitError::UnknownTrack { track_handle });
        }
        self.submit(&Request::TrackDelete { track_handle }, now, timeout, out)
    }
}
