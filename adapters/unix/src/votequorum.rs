//! A blocking votequorum client, wire-compatible with libvotequorum, talking to corosync over
//! libqb IPC (shared memory or sockets, as the daemon chooses).
//!
//! ```no_run
//! use corowire_unix::votequorum::Votequorum;
//! let mut vq = Votequorum::connect()?;
//! let info = vq.get_info(0)?;
//! println!("node {} quorate: {}", info.nodeid, info.is_quorate());
//! # Ok::<(), corowire_unix::Error>(())
//! ```

use core::time::Duration;

use corowire::conn::Votequorum as VotequorumService;
use corowire::votequorum::{QdeviceName, Request, Response};

use crate::client::{Client, Context, Control};
use crate::error::{CheckError, Result};
pub use crate::options::Options;
use crate::resilient::{Resilience, Resilient};
pub use corowire::votequorum::{
    InfoFlags, NodeEntry, NodeIds, NodeInfoOf, NodeList, NodeState, Notification, RingId, TrackFlags,
    QDEVICE_NODEID,
};
pub use corowire::{CsError, DispatchMode};

type Conn = Client<VotequorumService, 8, 16, 65536>;

/// The answer to [`Votequorum::get_info`], owned: the quorum device's name is a `String`
/// (bytes that are not UTF-8 become U+FFFD).
pub type NodeInfo = NodeInfoOf<String>;

/// A notification callback.
type Callback = Box<dyn FnMut(&Notification<'_>) + Send>;

/// A connection to corosync's votequorum service. Finalized (the connection closed) on drop.
pub struct Votequorum {
    client: Conn,
    /// The libqb service name connected to.
    service: String,
    callback: Option<Callback>,
    context: Context,
    control: Control,
    /// The `track_start` in effect (context, flags), restored after a reconnect.
    tracking: Option<(u64, TrackFlags)>,
    /// Reconnecting, with [`Options::reconnect`].
    resilience: Option<Resilience>,
}

impl core::fmt::Debug for Votequorum {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Votequorum").field("service", &self.service).field("client", &self.client).finish()
    }
}

fn qdevice(name: &str) -> Result<QdeviceName<'_>> {
    // libvotequorum rejects an empty or too long name before sending.
    QdeviceName::new(name.as_bytes())
        .map_err(|error| CheckError::QdeviceName { name: name.to_owned(), error }.into())
}

impl Votequorum {
    /// Connects with the default [`Options`].
    ///
    /// # Errors
    /// [`Error::Connect`](crate::Error::Connect) if no daemon (or no votequorum provider)
    /// listens, or it refuses.
    pub fn connect() -> Result<Self> {
        Self::connect_with(Options::default())
    }

    /// Connects with `options`. With [`Options::reconnect`], a daemon that is not (yet)
    /// there is waited for up to its `start_wait`, and a lost connection comes back with
    /// its tracking (see [`Votequorum::dispatch`]).
    ///
    /// # Errors
    /// As [`Votequorum::connect`].
    pub fn connect_with(options: Options) -> Result<Self> {
        let (client, service, resilience) = crate::resilient::connect_resilient(&options)?;
        Ok(Self {
            client,
            service,
            callback: None,
            context: Context::default(),
            control: Control::default(),
            tracking: None,
            resilience,
        })
    }

    /// Sets the callback [`Votequorum::dispatch`] hands notifications to (quorum, node list,
    /// expected votes). Without one, notifications are dropped.
    pub fn set_callback(&mut self, callback: impl FnMut(&Notification<'_>) + Send + 'static) {
        self.callback = Some(Box::new(callback));
    }

    fn status(&mut self, req: &Request<'_>) -> Result<()> {
        self.ready()?;
        self.client.call(req, |_| Ok(()))
    }

    /// Information about node `nodeid` (0: the local node) (`votequorum_getinfo`).
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` for an unknown node; the connection errors.
    pub fn get_info(&mut self, nodeid: u32) -> Result<NodeInfo> {
        let req = Request::GetInfo { nodeid };
        self.ready()?;
        self.client.call(&req, |r| match r {
            Response::GetInfo(i) => Ok(i.map_name(|n| String::from_utf8_lossy(n).into_owned())),
            Response::Status => Err(crate::error::OTHER_KIND),
        })
    }

    /// Sets the cluster's expected votes (`votequorum_setexpected`).
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` if the value would make a quorate cluster inquorate.
    pub fn set_expected(&mut self, expected_votes: u32) -> Result<()> {
        self.status(&Request::SetExpected { expected_votes })
    }

    /// Sets the votes of node `nodeid` (0: the quorum device) (`votequorum_setvotes`).
    ///
    /// # Errors
    /// `CS_ERR_NAME_NOT_FOUND` for an unknown node, `CS_ERR_INVALID_PARAM`.
    pub fn set_votes(&mut self, nodeid: u32, votes: u32) -> Result<()> {
        self.status(&Request::SetVotes { nodeid, votes })
    }

    /// Starts tracking; notifications carry `context` (`votequorum_trackstart`). With
    /// [`TrackFlags::CURRENT`] or [`TrackFlags::CHANGES`] the current node list and quorum
    /// state are queued at once.
    ///
    /// # Errors
    /// `CS_ERR_EXIST` if tracking is already on.
    pub fn track_start(&mut self, context: u64, flags: TrackFlags) -> Result<()> {
        self.status(&Request::TrackStart { context, flags })?;
        self.tracking = Some((context, flags));
        Ok(())
    }

    /// Stops tracking (`votequorum_trackstop`).
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` when not tracking.
    pub fn track_stop(&mut self) -> Result<()> {
        self.status(&Request::TrackStop)?;
        self.tracking = None;
        Ok(())
    }

    /// Registers a quorum device called `name`. Corosync answers only after a cluster-wide
    /// round trip; nothing else is sent on this connection until then.
    ///
    /// # Errors
    /// `CS_ERR_ACCESS` if qdevices are disabled, `CS_ERR_EXIST` for another name.
    pub fn qdevice_register(&mut self, name: &str) -> Result<()> {
        self.status(&Request::QdeviceRegister { name: qdevice(name)? })
    }

    /// Unregisters the quorum device.
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` if none is registered, `CS_ERR_INVALID_PARAM` for another name.
    pub fn qdevice_unregister(&mut self, name: &str) -> Result<()> {
        self.status(&Request::QdeviceUnregister { name: qdevice(name)? })
    }

    /// Renames the quorum device.
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`].
    pub fn qdevice_update(&mut self, old_name: &str, new_name: &str) -> Result<()> {
        self.status(&Request::QdeviceUpdate { old_name: qdevice(old_name)?, new_name: qdevice(new_name)? })
    }

    /// The quorum device's poll: whether it casts its vote, for `ring_id`.
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`]; `CS_ERR_MESSAGE_ERROR` for a stale ring.
    pub fn qdevice_poll(&mut self, name: &str, cast_vote: bool, ring_id: RingId) -> Result<()> {
        self.status(&Request::QdevicePoll { name: qdevice(name)?, cast_vote, ring_id })
    }

    /// Sets the quorum device's master-wins mode.
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`].
    pub fn qdevice_master_wins(&mut self, name: &str, allow: bool) -> Result<()> {
        self.status(&Request::QdeviceMasterWins { name: qdevice(name)?, allow })
    }

    /// Delivers pending notifications to the callback, with `votequorum_dispatch`'s modes;
    /// the callback may end it with [`Control::stop`] or [`Control::finalize`].
    ///
    /// # Errors
    /// [`CheckError::NothingPending`] (`CS_ERR_TRY_AGAIN`) for
    /// [`DispatchMode::OneNonBlocking`] with nothing pending, [`CheckError::Finalized`]
    /// (`CS_ERR_BAD_HANDLE`) once finalized, [`Error::Disconnected`](crate::Error::Disconnected),
    /// [`CheckError::Dispatch`] (`CS_ERR_LIBRARY`) for a malformed event. An event with an
    /// unknown id (such as notification 7 of corosync after 3.1.10) is skipped and counted,
    /// not reported.
    ///
    /// With [`Options::reconnect`], a lost connection is re-established first (the waiting
    /// modes wait at most the dispatch's time limit, or until the daemon is back;
    /// [`DispatchMode::All`] and [`DispatchMode::OneNonBlocking`] try once and never wait,
    /// failing with [`Error::Connect`](crate::Error::Connect) while it is down), tracking is started
    /// again with the same context and flags, and the dispatch ends with
    /// [`Error::Resync`](crate::Error::Resync) once. With [`TrackFlags::CURRENT`] or
    /// [`TrackFlags::CHANGES`] the current state follows at once.
    pub fn dispatch(&mut self, mode: DispatchMode) -> Result<()> {
        self.dispatch_within(mode, None)
    }

    fn dispatch_within(&mut self, mode: DispatchMode, timeout: Option<Duration>) -> Result<()> {
        self.watched(crate::resilient::dispatch_wait(mode, timeout), |vq| {
            let callback = &mut vq.callback;
            crate::client::dispatch(&mut vq.client, mode, timeout, &vq.control, |n| {
                if let Some(cb) = callback.as_mut() {
                    cb(&n);
                }
            })
        })
    }

    /// The next notification, owned, without running the callback (pull style, beside
    /// [`Votequorum::dispatch`]): waits at most `timeout` (`None`: for as long as the daemon
    /// lives) and returns `None` if none came. An event with an unknown id is skipped,
    /// counted as the dispatch counts it, and the wait goes on.
    ///
    /// # Errors
    /// [`CheckError::Finalized`] (`CS_ERR_BAD_HANDLE`) once finalized,
    /// [`Error::Disconnected`](crate::Error::Disconnected), [`CheckError::Dispatch`]
    /// (`CS_ERR_LIBRARY`) for a malformed event.
    ///
    /// With [`Options::reconnect`], [`Error::Resync`](crate::Error::Resync) once after each
    /// reconnect (as [`Votequorum::dispatch`]).
    pub fn next_event(&mut self, timeout: Option<Duration>) -> Result<Option<OwnedNotification>> {
        self.watched(timeout, |vq| {
            crate::client::next_event(&mut vq.client, timeout, |n| OwnedNotification::from(&n))
        })
    }
}

impl Resilient for Votequorum {
    fn resilience(&mut self) -> Option<&mut Resilience> {
        self.resilience.as_mut()
    }

    /// Reconnects; then starts tracking again as it was.
    fn revive(&mut self, wait: Option<Duration>) -> Result<()> {
        let Some(r) = self.resilience.as_mut() else { return Ok(()) };
        let tracking = self.tracking;
        r.revive(&mut self.client, wait, |client| match tracking {
            Some((context, flags)) => client.call(&Request::TrackStart { context, flags }, |_| Ok(())),
            None => Ok(()),
        })
    }
}

/// A votequorum notification, owned ([`Votequorum::next_event`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OwnedNotification {
    /// The quorum state and the nodes with their states.
    Quorum {
        /// Whether the cluster is quorate.
        quorate: bool,
        /// The context given at [`Votequorum::track_start`].
        context: u64,
        /// The nodes (the quorum device as node [`QDEVICE_NODEID`] when one is registered).
        nodes: Vec<NodeEntry>,
    },
    /// The members of a new ring.
    NodeList {
        /// The context given at [`Votequorum::track_start`].
        context: u64,
        /// The ring.
        ring_id: RingId,
        /// The member node ids.
        nodes: Vec<u32>,
    },
    /// The expected votes changed.
    ExpectedVotes {
        /// The context given at [`Votequorum::track_start`].
        context: u64,
        /// New expected votes.
        expected_votes: u32,
    },
}

impl From<&Notification<'_>> for OwnedNotification {
    fn from(n: &Notification<'_>) -> Self {
        match *n {
            Notification::Quorum { quorate, context, nodes } => {
                Self::Quorum { quorate, context, nodes: nodes.iter().collect() }
            }
            Notification::NodeList { context, ring_id, nodes } => {
                Self::NodeList { context, ring_id, nodes: nodes.iter().collect() }
            }
            Notification::ExpectedVotes { context, expected_votes } => {
                Self::ExpectedVotes { context, expected_votes }
            }
        }
    }
}

crate::client::client_handle!(Votequorum, "votequorum");
