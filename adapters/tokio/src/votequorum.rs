//! The async votequorum client ([`Votequorum`]), libvotequorum's calls as `async fn`s on a
//! cloneable handle.

use std::sync::Arc;

use corowire::conn::Votequorum as Service;
use corowire::votequorum::{Notification, QdeviceName, Request, Response};
use corowire_unix::{CheckError, Error, NodeInfo, Options, OwnedNotification, Result, RingId, TrackFlags};

use crate::engine::{Call, Conn, Handle, Hooks};
use crate::stream::{Link, Sink, Subscription};

/// Ring bytes of a votequorum request or reply, at most (a GETINFO reply is 320 bytes).
const WEIGHT: usize = 512;

/// The votequorum notifications' stream ([`Votequorum::track`]): quorum, node-list and
/// expected-votes notifications in the daemon's order; dropping it stops tracking.
pub type VotequorumStream = Subscription<OwnedNotification>;

/// Which notifications a stream gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    All,
    Quorum,
    NodeList,
    ExpectedVotes,
}

impl Kind {
    fn wants(self, n: &OwnedNotification) -> bool {
        match (self, n) {
            (Self::All, _)
            | (Self::Quorum, OwnedNotification::Quorum { .. })
            | (Self::NodeList, OwnedNotification::NodeList { .. })
            | (Self::ExpectedVotes, OwnedNotification::ExpectedVotes { .. }) => true,
            (Self::Quorum | Self::NodeList | Self::ExpectedVotes, _) => false,
        }
    }
}

/// The context every TRACK_START of this client sends: libvotequorum passes it back in each
/// notification so that one callback can tell trackings apart; a stream needs no such tag.
const CONTEXT: u64 = 0;

/// The tracking, as the connection thread keeps it: its streams, each with what it gets.
#[derive(Debug)]
struct Tracking {
    flags: TrackFlags,
    sinks: Vec<(Kind, Sink<OwnedNotification>)>,
}

/// The three votequorum streams of [`Votequorum::track_each`]; tracking stops when all
/// three are dropped.
#[derive(Debug)]
#[non_exhaustive]
pub struct VotequorumStreams {
    /// Quorum notifications (quorate or not, the nodes and their states).
    pub quorum: VotequorumStream,
    /// Node-list notifications (the members of a new ring).
    pub node_list: VotequorumStream,
    /// Expected-votes notifications.
    pub expected_votes: VotequorumStream,
}

/// votequorum's subscription: the one tracking a connection may have.
#[derive(Debug)]
pub(crate) struct VotequorumHooks {
    tracking: Option<Tracking>,
    link: Link,
}

impl Hooks<Service> for VotequorumHooks {
    fn deliver(&mut self, event: Notification<'_>) {
        if let Some(t) = &mut self.tracking {
            let n = OwnedNotification::from(&event);
            for (kind, sink) in &mut t.sinks {
                if kind.wants(&n) {
                    sink.push(n.clone());
                }
            }
        }
    }

    fn sweep(&mut self, out: &mut Vec<Call<Service, Self>>) {
        if let Some(t) = &mut self.tracking {
            t.sinks.retain_mut(|(_, sink)| {
                sink.flush();
                !sink.is_closed()
            });
        }
        if self.tracking.as_ref().is_some_and(|t| t.sinks.is_empty()) {
            self.tracking = None;
            out.push(Call::detached(WEIGHT, Box::new(|conn| Ok(conn.submit_deferred(&Request::TrackStop)?))));
        }
    }

    fn restore(&mut self, conn: &mut Conn<Service>) -> Result<()> {
        if let Some(t) = &self.tracking {
            let req = Request::TrackStart { context: CONTEXT, flags: t.flags };
            conn.call(&req, |_| Ok::<_, Error>(()))?;
        }
        self.link.set(true);
        for (_, sink) in self.tracking.iter_mut().flat_map(|t| &mut t.sinks) {
            sink.resync();
        }
        Ok(())
    }

    fn disconnected(&mut self) {
        self.link.set(false);
        for (_, sink) in self.tracking.iter_mut().flat_map(|t| &mut t.sinks) {
            sink.disconnected();
        }
    }

    fn is_idle(&self) -> bool {
        self.tracking.is_none()
    }

    fn close(&mut self) {
        self.tracking = None;
    }
}

fn qdevice(name: &str) -> Result<QdeviceName<'_>> {
    QdeviceName::new(name.as_bytes())
        .map_err(|error| CheckError::QdeviceName { name: name.to_owned(), error }.into())
}

/// An async connection to corosync's votequorum service, cheap to clone: clones share the
/// one connection. The connection (and its thread) ends when the last clone and the
/// [`VotequorumStream`] are dropped.
#[derive(Clone)]
pub struct Votequorum {
    handle: Arc<Handle<Service, VotequorumHooks>>,
    link: Link,
}

impl core::fmt::Debug for Votequorum {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Votequorum").field("timeout", &self.handle.timeout).finish_non_exhaustive()
    }
}

impl Votequorum {
    /// Connects with the default [`Options`] (`votequorum_initialize`).
    ///
    /// # Errors
    /// [`Error::Connect`] if no daemon listens or it refuses; other errors of the handshake.
    pub async fn connect() -> Result<Self> {
        Self::connect_with(Options::default()).await
    }

    /// Connects with `options` (`timeout` bounds every call; `reconnect` waits for the
    /// daemon at start and survives its restarts).
    ///
    /// # Errors
    /// As [`Votequorum::connect`].
    pub async fn connect_with(options: Options) -> Result<Self> {
        let link = Link::up();
        let hooks = VotequorumHooks { tracking: None, link: link.clone() };
        let handle = Arc::new(Handle::start(options, hooks).await?);
        Ok(Self { handle, link })
    }

    /// Sends the request `req` builds (on the connection thread) and converts its reply.
    async fn call<R: Send + 'static>(
        &self,
        req: impl FnOnce() -> Result<Request<'static>> + Send + 'static,
        convert: impl for<'a> FnOnce(&mut VotequorumHooks, Result<Response<'a>>) -> Result<R> + Send + 'static,
    ) -> Result<R> {
        self.handle
            .request(move || {
                Call::answering(WEIGHT, Box::new(move |conn| Ok(conn.submit_deferred(&req()?)?)), convert)
            })
            .await
    }

    /// A request answered with a status only.
    async fn status(&self, req: impl FnOnce() -> Result<Request<'static>> + Send + 'static) -> Result<()> {
        self.call(req, |_, r| r.map(drop)).await
    }

    /// A quorum device request naming `names` (checked before anything is sent); a
    /// `barrier` (QDEVICE_REGISTER) holds back every later call until it is answered.
    async fn qdevice_call<const N: usize>(
        &self,
        barrier: bool,
        names: [&str; N],
        req: impl for<'n> FnOnce([QdeviceName<'n>; N]) -> Request<'n> + Send + 'static,
    ) -> Result<()> {
        for n in names {
            qdevice(n)?;
        }
        let owned = names.map(str::to_owned);
        self.handle
            .request(move || {
                let submit = move |conn: &mut Conn<Service>| {
                    let mut checked = [const { None }; N];
                    for (slot, n) in checked.iter_mut().zip(&owned) {
                        *slot = Some(qdevice(n)?);
                    }
                    let names = checked.map(|n| n.unwrap_or_else(|| unreachable!("every name was checked")));
                    Ok(conn.submit_deferred(&req(names))?)
                };
                let (call, rx) = Call::answering(WEIGHT, Box::new(submit), |_, r| r.map(drop));
                (if barrier { call.barrier() } else { call }, rx)
            })
            .await
    }

    /// Information about node `nodeid` (0: the local node) (`votequorum_getinfo`).
    ///
    /// # Errors
    /// `CS_ERR_NOT_EXIST` for an unknown node; the connection errors.
    pub async fn get_info(&self, nodeid: u32) -> Result<NodeInfo> {
        self.call(
            move || Ok(Request::GetInfo { nodeid }),
            |_, r| match r? {
                Response::GetInfo(i) => Ok(i.map_name(|n| String::from_utf8_lossy(n).into_owned())),
                Response::Status => Err(Error::UnexpectedReply { what: "a reply of another kind" }),
            },
        )
        .await
    }

    /// Sets the cluster's expected votes (`votequorum_setexpected`).
    ///
    /// # Errors
    /// `CS_ERR_INVALID_PARAM` if the value would make a quorate cluster inquorate.
    pub async fn set_expected(&self, expected_votes: u32) -> Result<()> {
        self.status(move || Ok(Request::SetExpected { expected_votes })).await
    }

    /// Sets the votes of node `nodeid` (0: the quorum device) (`votequorum_setvotes`).
    ///
    /// # Errors
    /// `CS_ERR_NAME_NOT_FOUND` for an unknown node, `CS_ERR_INVALID_PARAM`.
    pub async fn set_votes(&self, nodeid: u32, votes: u32) -> Result<()> {
        self.status(move || Ok(Request::SetVotes { nodeid, votes })).await
    }

    /// Starts tracking (`votequorum_trackstart`, corosync-quorumtool's `-m`); the
    /// notifications come on the returned stream. With [`TrackFlags::CURRENT`] or
    /// [`TrackFlags::CHANGES`] the current node list and quorum state come at once. Dropping
    /// the stream stops tracking (`votequorum_trackstop`): there is no separate
    /// `track_stop`. After a reconnect tracking starts again with the same flags and the
    /// stream gets [`Tracked::Resync`](crate::Tracked::Resync).
    ///
    /// libvotequorum's `context` argument is not taken: it only comes back in each
    /// notification for a callback to tell trackings apart, which a stream does not need.
    /// This client sends 0, and the notifications' `context` fields are 0.
    ///
    /// # Errors
    /// `CS_ERR_EXIST` if this connection tracks already; the connection errors.
    pub async fn track(&self, flags: TrackFlags) -> Result<VotequorumStream> {
        let (stream, sink) = Subscription::new(self.handle.closer());
        self.track_start(flags, vec![(Kind::All, sink)]).await?;
        Ok(stream)
    }

    /// [`Votequorum::track`] with one stream per kind of notification: quorum, node list,
    /// expected votes. Tracking stops when the three streams are dropped.
    ///
    /// # Errors
    /// As [`Votequorum::track`].
    pub async fn track_each(&self, flags: TrackFlags) -> Result<VotequorumStreams> {
        let (quorum, q) = Subscription::new(self.handle.closer());
        let (node_list, l) = Subscription::new(self.handle.closer());
        let (expected_votes, e) = Subscription::new(self.handle.closer());
        let sinks = vec![(Kind::Quorum, q), (Kind::NodeList, l), (Kind::ExpectedVotes, e)];
        self.track_start(flags, sinks).await?;
        Ok(VotequorumStreams { quorum, node_list, expected_votes })
    }

    /// TRACK_START, then the streams' sinks are registered.
    async fn track_start(
        &self,
        flags: TrackFlags,
        sinks: Vec<(Kind, Sink<OwnedNotification>)>,
    ) -> Result<()> {
        self.call(
            move || Ok(Request::TrackStart { context: CONTEXT, flags }),
            move |hooks, r| {
                r?;
                hooks.tracking = Some(Tracking { flags, sinks });
                Ok(())
            },
        )
        .await
    }

    /// Registers a quorum device called `name` (`votequorum_qdevice_register`). Corosync
    /// answers after a cluster-wide round trip; nothing else is sent on this connection until
    /// then: later calls wait (within their timeout) and are sent after the reply.
    ///
    /// # Errors
    /// [`CheckError::QdeviceName`] for an empty or too long name; `CS_ERR_EXIST` if a device
    /// is registered.
    pub async fn qdevice_register(&self, name: &str) -> Result<()> {
        self.qdevice_call(true, [name], |[name]| Request::QdeviceRegister { name }).await
    }

    /// Unregisters the quorum device `name` (`votequorum_qdevice_unregister`).
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_register`]; `CS_ERR_INVALID_PARAM` for another name.
    pub async fn qdevice_unregister(&self, name: &str) -> Result<()> {
        self.qdevice_call(false, [name], |[name]| Request::QdeviceUnregister { name }).await
    }

    /// Renames the quorum device (`votequorum_qdevice_update`).
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`].
    pub async fn qdevice_update(&self, old_name: &str, new_name: &str) -> Result<()> {
        self.qdevice_call(false, [old_name, new_name], |[old_name, new_name]| Request::QdeviceUpdate {
            old_name,
            new_name,
        })
        .await
    }

    /// Reports the quorum device alive, casting its vote or not (`votequorum_qdevice_poll`).
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`]; `CS_ERR_MESSAGE_ERROR` for a stale `ring_id`.
    pub async fn qdevice_poll(&self, name: &str, cast_vote: bool, ring_id: RingId) -> Result<()> {
        self.qdevice_call(false, [name], move |[name]| Request::QdevicePoll { name, cast_vote, ring_id })
            .await
    }

    /// Sets whether the quorum device's master wins (`votequorum_qdevice_master_wins`).
    ///
    /// # Errors
    /// As [`Votequorum::qdevice_unregister`].
    pub async fn qdevice_master_wins(&self, name: &str, allow: bool) -> Result<()> {
        self.qdevice_call(false, [name], move |[name]| Request::QdeviceMasterWins { name, allow }).await
    }

    /// Whether the connection to the daemon is up now: `false` from the moment the
    /// connection thread sees a loss (when the streams get
    /// [`Tracked::Disconnected`](crate::Tracked::Disconnected)) until it connected again
    /// (with `Options::reconnect`; without it, for good). A snapshot: the daemon may die
    /// just after.
    pub fn is_connected(&self) -> bool {
        self.link.is_up()
    }
}
