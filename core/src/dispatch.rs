//! `cmap_dispatch` / `votequorum_dispatch` as a sans-IO policy: the four `CS_DISPATCH_*`
//! modes with libcmap's exact stopping rules and return codes.
//!
//! The adapter loops on [`Dispatch::poll`]:
//! - [`Step::Deliver`]: call the application's callback with the event (the callback may do
//!   anything on the connection, including finalize it), then poll again;
//! - [`Step::Recv`]: read one event frame from the transport, waiting as [`Wait`] says; hand
//!   it in with [`Connection::handle_event`], or report [`Dispatch::handle_empty`] if a
//!   [`Wait::Never`] read found nothing, or [`Connection::handle_closed`] if the peer is gone;
//!   then poll again;
//! - [`Step::Done`]: return the result to the application.
//!
//! | mode | waits | stops after | nothing pending |
//! |---|---|---|---|
//! | `One` (1) | forever | one message | keeps waiting |
//! | `All` (2) | never | the queue is drained | `CS_OK` |
//! | `Blocking` (3) | forever | never (only an error or finalize) | keeps waiting |
//! | `OneNonBlocking` (4) | never | one message | `CS_ERR_TRY_AGAIN` |
//!
//! In every mode: finalizing the connection (also from inside a callback) ends the dispatch
//! with `CS_ERR_BAD_HANDLE`; a lost connection or a malformed event ends it with
//! `CS_ERR_LIBRARY`. A notification for a track deleted locally is skipped but still counts as
//! the one message of `One` and `OneNonBlocking`, as in libcmap.
//!
//! An event with an id the service does not define is skipped without a trace but a count
//! ([`Connection::unknown_events`]), and does not count as the message of `One`: a newer daemon
//! (corosync's development branch after 3.1.10 sends votequorum notification 7 to every
//! tracker) keeps working. Here corowire differs from libvotequorum and libcmap 3.1.x, whose
//! dispatch returns `CS_ERR_LIBRARY` for such an event.

use crate::conn::{Connection, Polled, Service, State};
use crate::error::CsError;

/// `cs_dispatch_flags_t`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u32)]
pub enum DispatchMode {
    /// 1 `CS_DISPATCH_ONE`: wait for one message and handle it.
    One = 1,
    /// 2 `CS_DISPATCH_ALL`: handle every message pending now, without waiting.
    All = 2,
    /// 3 `CS_DISPATCH_BLOCKING`: handle messages until an error or finalize.
    Blocking = 3,
    /// 4 `CS_DISPATCH_ONE_NONBLOCKING`: handle one message if one is pending.
    OneNonBlocking = 4,
}

impl DispatchMode {
    /// The mode for a raw `cs_dispatch_flags_t` (libvotequorum rejects other values with
    /// `CS_ERR_INVALID_PARAM`).
    pub fn from_raw(raw: u32) -> Option<Self> {
        match raw {
            1 => Some(Self::One),
            2 => Some(Self::All),
            3 => Some(Self::Blocking),
            4 => Some(Self::OneNonBlocking),
            _ => None,
        }
    }

    /// How a read in this mode waits.
    pub fn wait(self) -> Wait {
        match self {
            Self::One | Self::Blocking => Wait::Forever,
            Self::All | Self::OneNonBlocking => Wait::Never,
        }
    }
}

/// How long the adapter's read of the event channel may wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Wait {
    /// Until an event arrives or the connection closes (timeout −1).
    Forever,
    /// Not at all (timeout 0).
    Never,
}

/// What the adapter does next.
#[derive(Debug)]
#[must_use = "a dispatch step tells the adapter what to do next"]
pub enum Step<E> {
    /// Deliver this event to the application's callback.
    Deliver(E),
    /// Read one event frame from the transport.
    Recv(Wait),
    /// The dispatch is over; return this.
    Done(Result<(), CsError>),
}

/// One call of `dispatch(mode)`.
#[derive(Clone, Copy, Debug)]
pub struct Dispatch {
    mode: DispatchMode,
    handled_one: bool,
    empty: bool,
}

impl Dispatch {
    /// Starts a dispatch in `mode`.
    pub fn new(mode: DispatchMode) -> Self {
        Self { mode, handled_one: false, empty: false }
    }

    /// The mode.
    pub fn mode(&self) -> DispatchMode {
        self.mode
    }

    /// Reports that a [`Wait::Never`] read found no event.
    pub fn handle_empty(&mut self) {
        self.empty = true;
    }

    /// The next step. Events are copied into `scratch` (at least as large as the largest
    /// event frame); a queued frame larger than `scratch` ends the dispatch with
    /// `CS_ERR_TRY_AGAIN`, as libcmap does for an event larger than its buffer.
    pub fn poll<'o, S: Service, const P: usize, const E: usize, const B: usize>(
        &mut self,
        conn: &mut Connection<S, P, E, B>,
        scratch: &'o mut [u8],
    ) -> Step<S::Event<'o>> {
        if conn.state() == State::Finalized {
            return Step::Done(Err(CsError::BadHandle));
        }
        let one = matches!(self.mode, DispatchMode::One | DispatchMode::OneNonBlocking);
        if one && self.handled_one {
            return Step::Done(Ok(()));
        }
        if !one {
            // All and Blocking move past skipped notifications to the next message.
            conn.drop_skipped_events();
        }
        match conn.poll_event(scratch) {
            Some(Ok(polled)) => {
                self.handled_one = true;
                self.empty = false;
                return match polled {
                    Polled::Event(e) => Step::Deliver(e),
                    // `poll_event` skips unknown ids itself, so only `Skipped` comes here.
                    Polled::Skipped | Polled::Unknown { .. } => Step::Done(Ok(())),
                    Polled::Invalid(_) => Step::Done(Err(CsError::Library)),
                };
            }
            Some(Err(_)) => return Step::Done(Err(CsError::TryAgain)),
            None => {}
        }
        if conn.state() == State::Closed {
            return Step::Done(Err(CsError::Library));
        }
        if self.empty {
            self.empty = false;
            match self.mode {
                DispatchMode::All => return Step::Done(Ok(())),
                DispatchMode::OneNonBlocking => return Step::Done(Err(CsError::TryAgain)),
                DispatchMode::One | DispatchMode::Blocking => {}
            }
        }
        Step::Recv(self.mode.wait())
    }
}
