//! A blocking votequorum client, wire-compatible with libvotequorum, talking to corosync over
//! libqb's shared-memory IPC.
//!
//! ```no_run
//! use corowire_unix::votequorum::Votequorum;
//! let mut vq = Votequorum::connect()?;
//! let info = vq.getinfo(0)?;
//! println!("node {} quorate: {}", info.nodeid, info.is_quorate());
//! # Ok::<(), corowire_unix::Error>(())
//! ```

use corowire::conn::Votequorum as VotequorumService;
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{
    InfoFlags, NodeState, Notification, QdeviceName, Request, Response, RingId, TrackFlags,
};
use corowire::CsError;

use crate::client::Client;
use crate::error::{Error, Result};
pub use crate::options::Options;

type Conn = Client<VotequorumService, 8, 16, 65536>;

/// The answer to [`Votequorum::getinfo`], owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// Node id.
    pub nodeid: u32,
    /// Node state.
    pub state: NodeState,
    /// Votes of the node.
    pub votes: u32,
    /// Expected votes of the node.
    pub expected_votes: u32,
    /// Highest expected votes in the cluster.
    pub highest_expected: u32,
    /// Total votes in the cluster.
    pub total_votes: u32,
    /// Votes needed for quorum.
    pub quorum: u32,
    /// `VOTEQUORUM_INFO_*` flags.
    pub flags: InfoFlags,
    /// Votes of the quorum device.
    pub qdevice_votes: u32,
    /// Name of the quorum device (empty if none).
    pub qdevice_name: String,
}

impl NodeInfo {
    /// Whether the cluster is quorate (`VOTEQUORUM_INFO_QUORATE`).
    pub fn is_quorate(&self) -> bool {
        self.flags.contains(InfoFlags::QUORATE)
    }
}

/// A notification callback.
type Callback = Box<dyn FnMut(&Notification<'_>) + Send>;

/// A connection to corosync's votequorum service. Finalized (the connection closed) on drop.
pub struct Votequorum {
    client: Conn,
    callback: Option<Callback>,
}

impl core::fmt::Debug for Votequorum {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Votequorum").field("client", &self.client).finish()
    }
}

fn qdevice(name: &str) -> Result<QdeviceName<'_>> {
    // libvotequorum rejects an empty or too long name before sending.
    QdeviceName::new(name.as_bytes()).map_err(|_| Error::Cs(CsError::InvalidParam))
}

impl Votequorum {
    /// Connects with the default [`Options`].
    ///
    /// # Errors
    /// [`Error::Connect`] if no daemon (or no votequorum provider) listens, or it refuses.
    pub fn connect() -> Result<Self> {
        Self::connect_with(Options::default())
    }

    /// Connects with `options`.
    ///
    /// # Errors
    /// As [`Votequorum::connect`].
    pub fn connect_with(options: Options) -> Result<Self> {
        let client = Conn::connect(&options)?;
        Ok(Self { client, callback: None })
    }

    /// Sets the callback [`Votequorum::dispatch`] hands notifications to (quorum, node list,
    /// expected votes). Without one, notifications are dropped.
    pub fn set_callback(&mut self, callback: impl FnMut(&Notification<'_>) + Send + 'static) {
        self.callback = Some(Box::new(callback));
    }

    fn status(&mut self, req: &Request<'_>) -> Result<()> {
        self.client.call(req, req.encoded_len(), |_| Ok(()))
    }

    /// Information about node `nodeid` (0: the local node).
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` for an unknown node; the connection errors.
    pub fn getinfo(&mut self, nodeid: u32) -> Result<NodeInfo> {
        let req = Request::GetInfo { nodeid };
        self.client.call(&req, req.encoded_len(), |r| match r {
            Response::GetInfo(i) => Ok(NodeInfo {
                nodeid: i.nodeid,
                state: i.state,
                votes: i.votes,
                expected_votes: i.expected_votes,
                highest_expected: i.highest_expected,
                total_votes: i.total_votes,
                quorum: i.quorum,
                flags: i.flags,
                qdevice_votes: i.qdevice_votes,
                qdevice_name: String::from_utf8_lossy(i.qdevice_name).into_owned(),
            }),
            Response::Status => Err(Error::Cs(CsError::MessageError)),
        })
    }

    /// Sets the cluster's expected votes.
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` if the value would make a quorate cluster inquorate.
    pub fn setexpected(&mut self, expected_votes: u32) -> Result<()> {
        self.status(&Request::SetExpected { expected_votes })
    }

    /// Sets the votes of node `nodeid` (0: the quorum device).
    ///
    /// # Errors
    /// `CS_ERR_NAME_NOT_FOUND` for an unknown node, `CS_ERR_INVALID_PARAM`.
    pub fn setvotes(&mut self, nodeid: u32, votes: u32) -> Result<()> {
        self.status(&Request::SetVotes { nodeid, votes })
    }

    /// Starts tracking; notifications carry `context`. With [`TrackFlags::CURRENT`] or
    /// [`TrackFlags::CHANGES`] the current node list and quorum state are queued at once.
    ///
    /// # Errors
    /// `CS_ERR_EXIST` if tracking is already on.
    pub fn trackstart(&mut self, context: u64, flags: TrackFlags) -> Result<()> {
        self.status(&Request::TrackStart { context, flags })
    }

    /// Stops tracking.
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` when not tracking.
    pub fn trackstop(&mut self) -> Result<()> {
        self.status(&Request::TrackStop)
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

    /// Delivers pending notifications to the callback, with `votequorum_dispatch`'s modes.
    ///
    /// # Errors
    /// `CS_ERR_TRY_AGAIN` for [`DispatchMode::OneNonBlocking`] with nothing pending,
    /// [`Error::Disconnected`], `CS_ERR_LIBRARY` for a malformed event (an event with an
    /// unknown id, such as notification 7 of corosync after 3.1.10, is skipped).
    pub fn dispatch(&mut self, mode: DispatchMode) -> Result<()> {
        let callback = &mut self.callback;
        self.client.dispatch(mode, |n| {
            if let Some(cb) = callback.as_mut() {
                cb(&n);
            }
        })
    }
}

crate::client::client_handle!(Votequorum);
