//! What one scrape reads from corosync, and the long-lived connections it reads it over.
//!
//! Reads only: CMAP dumps and gets (the default map, then the stats map selected with
//! `cmap_initialize_map`'s request, which changes no key) and votequorum `getinfo`. The ring
//! id and member list come from votequorum tracking (`votequorum_trackstart` with
//! `CS_TRACK_CHANGES`), as `corosync-quorumtool` gets them.

use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};

use corowire::cmap::Map;
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{Notification, RingId, TrackFlags};
use corowire::CsError;
use corowire_unix::cmap::{Cmap, OwnedValue};
use corowire_unix::votequorum::{NodeInfo, Options, Votequorum};
use corowire_unix::Error;

/// The default-map prefixes a scrape dumps.
pub const CONFIG_PREFIXES: [&str; 5] =
    ["nodelist.", "totem.", "runtime.members.", "runtime.services.", "runtime.votequorum."];

/// The stats-map prefixes a scrape dumps. The per-connection IPC stats
/// (`stats.ipcs.serviceN.PID.HANDLE.*`) are not dumped: a scrape lists their keys and gets
/// only the `flow_control` values. Their `procname` strings are not read at all: corosync
/// 3.1.7 answers a GET of one with a `value_len` longer than the value it sends when the
/// name has 8 bytes or more, which the client rightly rejects as a malformed frame.
pub const STATS_PREFIXES: [&str; 5] =
    ["stats.knet.", "stats.srp.", "stats.pg.", "stats.schedmiss.", "stats.ipcs.global."];

/// The stats-map prefix of the per-connection IPC stats.
pub const IPCS_CONNECTIONS: &str = "stats.ipcs.service";

/// One scrape's data, as read from corosync. [`crate::render`] turns it into metrics; tests
/// build it by hand.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// `votequorum_getinfo` of the local node (node id 0).
    pub local: Option<NodeInfo>,
    /// The current ring (from the last node-list notification), if one came.
    pub ring_id: Option<RingId>,
    /// The current ring's members with their `votequorum_getinfo` (in the order of the
    /// node-list notification); `None` when no node-list notification has come yet.
    pub members: Option<Vec<NodeInfo>>,
    /// Keys under [`CONFIG_PREFIXES`] of the default map, with their values.
    pub config: Vec<(String, OwnedValue)>,
    /// The keys under [`STATS_PREFIXES`] of the stats map with their values, then the keys
    /// under [`IPCS_CONNECTIONS`] ending in `.procname` (with an empty string as the value)
    /// and `.flow_control` (with their values).
    pub stats: Vec<(String, OwnedValue)>,
}

/// What the votequorum tracking callback last saw.
#[derive(Debug, Default)]
struct Tracked {
    ring_id: Option<RingId>,
    members: Option<Vec<u32>>,
}

/// Long-lived CMAP and votequorum connections to the local corosync.
#[derive(Debug)]
pub struct Corosync {
    cmap: Cmap,
    votequorum: Votequorum,
    tracked: Arc<Mutex<Tracked>>,
}

/// Context of our votequorum tracking (any value; corosync hands it back).
const TRACK_CONTEXT: u64 = 0x636f_726f_7769_7265;

impl Corosync {
    /// Connects to CMAP and votequorum (`cmap_initialize`, `votequorum_initialize`) and starts
    /// votequorum tracking, each call waiting at most `timeout`.
    ///
    /// # Errors
    /// The connect and `votequorum_trackstart` errors (no daemon, refused, timeout).
    pub fn connect(timeout: Duration) -> Result<Self, Error> {
        let options = Options { timeout: Some(timeout), ..Options::default() };
        let cmap = Cmap::connect_with(options.clone())?;
        let mut votequorum = Votequorum::connect_with(options)?;
        let tracked = Arc::new(Mutex::new(Tracked::default()));
        let sink = Arc::clone(&tracked);
        votequorum.set_callback(move |n| {
            if let Notification::NodeList { ring_id, nodes, .. } = n {
                let mut t = sink.lock().unwrap_or_else(PoisonError::into_inner);
                t.ring_id = Some(*ring_id);
                t.members = Some(nodes.iter().collect());
            }
        });
        votequorum.trackstart(TRACK_CONTEXT, TrackFlags::CHANGES)?;
        Ok(Self { cmap, votequorum, tracked })
    }

    /// Reads one [`Snapshot`].
    ///
    /// # Errors
    /// The first CMAP or votequorum error (a closed connection, a timeout, …). The
    /// connections should then be dropped: a timed-out call leaves them out of step.
    pub fn snapshot(&mut self) -> Result<Snapshot, Error> {
        // Deliver the node-list notifications queued since the last scrape.
        match self.votequorum.dispatch(DispatchMode::All) {
            Ok(()) | Err(Error::Cs(CsError::TryAgain)) => {}
            Err(e) => return Err(e),
        }
        let (ring_id, member_ids) = {
            let t = self.tracked.lock().unwrap_or_else(PoisonError::into_inner);
            (t.ring_id, t.members.clone())
        };
        let local = self.votequorum.getinfo(0)?;
        let members = match member_ids {
            Some(ids) => {
                let mut members = Vec::with_capacity(ids.len());
                for id in ids {
                    // A node that left since the notification is left out (its own
                    // notification is queued).
                    match self.votequorum.getinfo(id) {
                        Ok(info) => members.push(info),
                        Err(Error::Cs(CsError::NotExist)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(members)
            }
            None => None,
        };
        self.cmap.set_current_map(Map::Default)?;
        let mut config = Vec::new();
        for prefix in CONFIG_PREFIXES {
            config.extend(self.cmap.dump(Some(prefix))?);
        }
        self.cmap.set_current_map(Map::Stats)?;
        let mut stats = Vec::new();
        for prefix in STATS_PREFIXES {
            stats.extend(self.cmap.dump(Some(prefix))?);
        }
        let mut flow_control = Vec::new();
        for entry in self.cmap.iter(Some(IPCS_CONNECTIONS))? {
            let (key, _, _) = entry?;
            if key.ends_with(".procname") {
                stats.push((key, OwnedValue::String(Vec::new())));
            } else if key.ends_with(".flow_control") {
                flow_control.push(key);
            }
        }
        let keys: Vec<&str> = flow_control.iter().map(String::as_str).collect();
        for (key, value) in flow_control.iter().zip(self.cmap.get_many(&keys)?) {
            // A connection that closed in between is left out.
            match value {
                Ok(v) => stats.push((key.clone(), v)),
                Err(Error::Cs(CsError::NotExist)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Snapshot { local: Some(local), ring_id, members, config, stats })
    }
}
