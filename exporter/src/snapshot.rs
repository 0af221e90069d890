//! What one scrape reads from corosync, and the long-lived connections it reads it over.
//!
//! Reads only: CMAP dumps and gets (over one connection to the default map and one to the
//! stats map, opened as `cmap_initialize_map` does) and votequorum `getinfo`. The ring
//! id and member list come from votequorum tracking (`votequorum_trackstart` with
//! `CS_TRACK_CHANGES`), as `corosync-quorumtool` gets them. The default-map part
//! ([`CONFIG_PREFIXES`], [`CONFIG_KEYS`]) changes rarely: it is read at the first scrape and
//! again only after CMAP tracking (`cmap_track_add` on those prefixes) reported a change, so
//! a scrape mostly reads the stats map. (Corosync refuses to switch the map of a connection
//! that tracks keys, with `CS_ERR_BUSY`: hence two CMAP connections.)

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex, PoisonError};

use corowire::cmap::{Map, TrackType};
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{Notification, RingId, TrackFlags};
use corowire::CsError;
use corowire_unix::cmap::{Cmap, OwnedValue};
use corowire_unix::votequorum::{NodeInfo, Options, Votequorum};
use corowire_unix::Error;

/// The default-map prefixes a scrape dumps (when they changed).
pub const CONFIG_PREFIXES: [&str; 2] = ["nodelist.", "runtime.members."];

/// The default-map keys a scrape gets (in one pipelined batch, when they changed).
pub const CONFIG_KEYS: [&str; 3] = ["totem.cluster_name", "totem.transport", "totem.version"];

/// The default-map prefixes tracked for changes: those of [`CONFIG_PREFIXES`] and
/// [`CONFIG_KEYS`].
const TRACKED_PREFIXES: [&str; 3] = ["nodelist.", "runtime.members.", "totem."];

/// The stats-map prefixes whose keys are fixed by the configuration: they are listed (dumped)
/// at the first scrape, again after a change of the default-map part or when a key went
/// away, and every [`RELIST_EVERY`] scrapes in case a key came without either; other scrapes
/// get the listed keys in pipelined batches, which saves the iteration.
pub const STATS_PREFIXES: [&str; 2] = ["stats.knet.", "stats.srp."];

/// Scrapes after which the keys under [`STATS_PREFIXES`] are listed again anyway.
pub const RELIST_EVERY: u32 = 60;

/// The stats-map prefix whose keys come and go (corosync records the last 10 schedule
/// misses): dumped at every scrape.
pub const SCHEDMISS_PREFIX: &str = "stats.schedmiss.";

/// The stats-map keys a scrape gets (in one pipelined batch).
///
/// The per-connection IPC stats (`stats.ipcs.serviceN.PID.HANDLE.*`) are not read: walking
/// them costs a round trip per key (a third of a scrape), and a dump of them a second GET
/// per `procname` (corosync 3.1.7's ITER_NEXT reports length 0 for it, and its reply to a
/// GET with a shorter buffer carries only the buffer's bytes, so `Cmap::dump` asks again).
pub const STATS_KEYS: [&str; 4] = [
    "stats.pg.msg_queue_avail",
    "stats.pg.msg_reserved",
    "stats.ipcs.global.active",
    "stats.ipcs.global.closed",
];

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
    /// Keys under [`CONFIG_PREFIXES`] and the [`CONFIG_KEYS`] that exist, of the default
    /// map, with their values.
    pub config: Vec<(String, OwnedValue)>,
    /// Keys under [`STATS_PREFIXES`] and [`SCHEDMISS_PREFIX`], and the [`STATS_KEYS`] that
    /// exist, of the stats map, with their values.
    pub stats: Vec<(String, OwnedValue)>,
}

/// What the votequorum tracking callback last saw.
#[derive(Debug, Default)]
struct Tracked {
    ring_id: Option<RingId>,
    members: Option<Vec<u32>>,
}

/// Long-lived CMAP (default and stats map) and votequorum connections to the local corosync.
#[derive(Debug)]
pub struct Corosync {
    /// The default map, tracked under [`TRACKED_PREFIXES`].
    cmap: Cmap,
    /// The stats map.
    stats: Cmap,
    votequorum: Votequorum,
    tracked: Arc<Mutex<Tracked>>,
    /// The default-map part of the last snapshot; `None` until read, and again after CMAP
    /// tracking reported a change under [`TRACKED_PREFIXES`].
    config: Option<Vec<(String, OwnedValue)>>,
    /// Set by the CMAP track callback.
    config_changed: Arc<AtomicBool>,
    /// The keys under [`STATS_PREFIXES`] as last listed; `None` when they are to be listed.
    stats_keys: Option<Vec<String>>,
    /// Scrapes since the keys were listed.
    since_listed: u32,
}

/// Context of our votequorum tracking (any value; corosync hands it back).
const TRACK_CONTEXT: u64 = 0x636f_726f_7769_7265;

impl Corosync {
    /// Connects to CMAP twice (`cmap_initialize`, `cmap_initialize_map(CMAP_MAP_STATS)`) and
    /// to votequorum (`votequorum_initialize`), and starts tracking (`cmap_track_add`,
    /// `votequorum_trackstart`), each call waiting at most `timeout`.
    ///
    /// # Errors
    /// The connect and tracking errors (no daemon, refused, timeout).
    pub fn connect(timeout: Duration) -> Result<Self, Error> {
        let options = Options { timeout: Some(timeout), ..Options::default() };
        let mut cmap = Cmap::connect_with(options.clone())?;
        let stats = Cmap::connect_with(Options { map: Map::Stats, ..options.clone() })?;
        let config_changed = Arc::new(AtomicBool::new(false));
        for prefix in TRACKED_PREFIXES {
            let flag = Arc::clone(&config_changed);
            let track = TrackType::ADD | TrackType::DELETE | TrackType::MODIFY | TrackType::PREFIX;
            cmap.track_add(Some(prefix), track, move |_| flag.store(true, Ordering::Relaxed))?;
        }
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
        votequorum.track_start(TRACK_CONTEXT, TrackFlags::CHANGES)?;
        Ok(Self {
            cmap,
            stats,
            votequorum,
            tracked,
            config: None,
            config_changed,
            stats_keys: None,
            since_listed: 0,
        })
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
        let local = self.votequorum.get_info(0)?;
        let members = match member_ids {
            Some(ids) => {
                let mut members = Vec::with_capacity(ids.len());
                for id in ids {
                    // A node that left since the notification is left out (its own
                    // notification is queued).
                    match self.votequorum.get_info(id) {
                        Ok(info) => members.push(info),
                        Err(Error::Cs(CsError::NotExist)) => {}
                        Err(e) => return Err(e),
                    }
                }
                Some(members)
            }
            None => None,
        };
        // Deliver the CMAP change notifications: a change drops the cached default-map part.
        match self.cmap.dispatch(DispatchMode::All) {
            Ok(()) | Err(Error::Cs(CsError::TryAgain)) => {}
            Err(e) => return Err(e),
        }
        if self.config_changed.swap(false, Ordering::Relaxed) {
            self.config = None;
            self.stats_keys = None;
        }
        self.since_listed += 1;
        if self.since_listed >= RELIST_EVERY {
            self.stats_keys = None;
        }
        let config = match self.config.take() {
            Some(config) => config,
            None => read(&mut self.cmap, &CONFIG_PREFIXES, &CONFIG_KEYS)?,
        };
        self.config = Some(config.clone());
        let mut stats = match self.stats_keys.take() {
            Some(keys) => {
                let (values, complete) = get_existing(&mut self.stats, &keys)?;
                // A key went away (a node left the configuration): list them again next time.
                self.stats_keys = complete.then_some(keys);
                values
            }
            None => {
                let values = read(&mut self.stats, &STATS_PREFIXES, &[])?;
                self.stats_keys = Some(values.iter().map(|(k, _)| k.clone()).collect());
                self.since_listed = 0;
                values
            }
        };
        stats.extend(read(&mut self.stats, &[SCHEDMISS_PREFIX], &STATS_KEYS)?);
        Ok(Snapshot { local: Some(local), ring_id, members, config, stats })
    }
}

/// Dumps `prefixes` and gets `keys` (those that exist) over `cmap`.
fn read(cmap: &mut Cmap, prefixes: &[&str], keys: &[&str]) -> Result<Vec<(String, OwnedValue)>, Error> {
    let mut out = Vec::new();
    for prefix in prefixes {
        for (key, value) in cmap.dump(Some(prefix))? {
            out.push((key, value?));
        }
    }
    out.extend(get_existing(cmap, keys)?.0);
    Ok(out)
}

/// Gets `keys` over `cmap` in pipelined batches: those that exist with their values, and
/// whether all did.
fn get_existing<K: AsRef<str>>(
    cmap: &mut Cmap,
    keys: &[K],
) -> Result<(Vec<(String, OwnedValue)>, bool), Error> {
    let names: Vec<&str> = keys.iter().map(AsRef::as_ref).collect();
    let mut out = Vec::with_capacity(names.len());
    let mut complete = true;
    for (key, value) in names.iter().zip(cmap.get_many(&names)?) {
        match value {
            Ok(v) => out.push(((*key).to_owned(), v)),
            Err(e) if e.answered() == Some(CsError::NotExist) => complete = false,
            Err(e) => return Err(e),
        }
    }
    Ok((out, complete))
}
