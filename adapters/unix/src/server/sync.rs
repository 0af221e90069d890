//! CMAP <-> votequorum: how the listener keeps the two engines in step, as corosync's
//! votequorum does through icmap (`exec/votequorum.c`).
//!
//! - **Keys -> quorum model** ([`quorum_setup`]), the one place where keys become the
//!   quorum model, at start and at run time: `totem.nodeid` (else the nodelist entry at
//!   `nodelist.local_node_pos`), `quorum.votes`, `quorum.expected_votes`, `quorum.two_node`,
//!   `quorum.wait_for_all`, `quorum.last_man_standing`, `quorum.last_man_standing_window`,
//!   `quorum.auto_tie_breaker`, `quorum.auto_tie_breaker_node` (a string), `quorum.allow_downscale`,
//!   `quorum.expected_votes_tracking` (integers of any type; flags are "not 0"), the quorum
//!   device (`quorum.device.model`, a string: a device is configured when it is not empty, as
//!   corosync's `votequorum_qdevice_is_configured` reads it; `quorum.device.votes`,
//!   `quorum.device.timeout`, `quorum.device.sync_timeout`), and the nodelist `nodelist.node.<i>.nodeid` with `nodelist.node.<i>.quorum_votes`
//!   (default 1).
//! - **Run-time changes** ([`QuorumSync::after_cmap_change`], called by the listener after
//!   each CMAP write — set, delete, adjust — and, when a full outbox left one unseen, after
//!   the next CMAP request): a change under `quorum.` or `nodelist.` re-reads the configuration ([`Quorum::reconfigure`], corosync's
//!   `votequorum_refresh_config`); `quorum.cancel_wait_for_all` set to 1 or more stops
//!   waiting for all nodes and is reset to 0 (which re-reads the configuration too). A deleted key is still seen by that re-read
//!   (corosync's icmap notifies before it removes the key), so deleting `quorum.expected_votes`
//!   changes nothing until the next change, as with corosync 3.1.7.
//! - **Quorum model -> keys** ([`mirror`]): the `runtime.votequorum.*` keys
//!   ([`Quorum::runtime_keys`]) are written after every change, with their track events.
//! - **Time** ([`QuorumSync::now`]): the core's clock is milliseconds since the server started.

use std::collections::{BTreeMap, BTreeSet};

use corowire::cmap::Value;
use corowire::server::store::Store;
use corowire::server::votequorum::{ConfigNote, DeviceConfig, QuorumConfig, TieBreaker};
use corowire::server::ServerError;
use corowire::time::Instant;
use corowire::value::OwnedValue;

use super::{Cmap, Quorum};

/// What the configuration keys say about the quorum model: the configuration and the
/// nodelist (`(nodeid, votes)`, in key order, each node once).
pub type QuorumSetup = (QuorumConfig, Vec<(u32, u32)>);

/// The quorum model configured by `keys` (see the [module documentation](self)), starting from
/// `base` for what they do not say. `quorum.expected_votes` not given counts as 0 (from the
/// nodelist) when there is a nodelist, else `base`'s stays.
pub fn quorum_setup<'a>(
    keys: impl IntoIterator<Item = (&'a [u8], Value<'a>)>,
    base: QuorumConfig,
) -> QuorumSetup {
    let mut cfg = base;
    let mut expected_votes = None;
    // (index, nodeid, votes)
    let mut entries: Vec<(&[u8], Option<u32>, u32)> = Vec::new();
    // Where each index is in `entries`: a node list of n nodes is read in O(n log n).
    let mut at_index: BTreeMap<&[u8], usize> = BTreeMap::new();
    let mut local_pos = None;
    let mut totem_nodeid = None;
    let (mut device, mut model) = (DeviceConfig::default(), false);
    for (key, value) in keys {
        let n = value.as_i64().map(|n| u32::try_from(n.max(0)).unwrap_or(u32::MAX));
        let on = n.map(|n| n != 0);
        if let Some(rest) = key.strip_prefix(b"nodelist.node.") {
            let Some(dot) = rest.iter().position(|&b| b == b'.') else { continue };
            let (index, field) = (&rest[..dot], &rest[dot + 1..]);
            let at = *at_index.entry(index).or_insert_with(|| {
                entries.push((index, None, 1));
                entries.len() - 1
            });
            match (field, n) {
                (b"nodeid", Some(n)) => entries[at].1 = Some(n),
                (b"quorum_votes", Some(n)) => entries[at].2 = n,
                _ => {}
            }
            continue;
        }
        match (key, n, on) {
            (b"totem.nodeid", Some(n), _) => totem_nodeid = Some(n),
            (b"nodelist.local_node_pos", Some(n), _) => local_pos = Some(n),
            (b"quorum.votes", Some(n), _) => cfg.votes = n,
            (b"quorum.expected_votes", Some(n), _) => expected_votes = Some(n),
            (b"quorum.two_node", _, Some(on)) => cfg.two_node = on,
            (b"quorum.wait_for_all", _, Some(on)) => cfg.wait_for_all = Some(on),
            (b"quorum.last_man_standing", _, Some(on)) => cfg.last_man_standing = on,
            (b"quorum.last_man_standing_window", Some(n), _) => cfg.last_man_standing_window = n,
            (b"quorum.auto_tie_breaker", _, Some(on)) => cfg.auto_tie_breaker = on,
            (b"quorum.allow_downscale", _, Some(on)) => cfg.allow_downscale = on,
            (b"quorum.expected_votes_tracking", _, Some(on)) => cfg.expected_votes_tracking = on,
            (b"quorum.device.votes", Some(n), _) => device.votes = Some(n),
            (b"quorum.device.timeout", Some(n), _) => device.timeout = n,
            (b"quorum.device.sync_timeout", Some(n), _) => device.sync_timeout = n,
            (b"quorum.device.model", _, _) => {
                model = value.as_str().is_some_and(|m| !m.trim_end_matches('\0').is_empty());
            }
            (b"quorum.auto_tie_breaker_node", _, _) => {
                let text = value.as_str().unwrap_or_default();
                cfg.auto_tie_breaker_node = TieBreaker::parse(text.trim_end_matches('\0'));
            }
            _ => {}
        }
    }
    cfg.device = model.then_some(device);
    let local_entry = local_pos.and_then(|pos| {
        let pos = pos.to_string();
        at_index.get(pos.as_bytes()).and_then(|&at| entries[at].1)
    });
    if let Some(nodeid) = totem_nodeid.or(local_entry) {
        cfg.nodeid = nodeid;
    }
    let mut seen = BTreeSet::new();
    let nodelist: Vec<(u32, u32)> = entries
        .iter()
        .filter_map(|&(_, nodeid, votes)| nodeid.filter(|&id| seen.insert(id)).map(|id| (id, votes)))
        .collect();
    cfg.expected_votes = match expected_votes {
        Some(n) => n,
        None if !nodelist.is_empty() => 0,
        None => base.expected_votes,
    };
    (cfg, nodelist)
}

/// The keys of `(String, OwnedValue)` pairs in the form [`quorum_setup`] reads.
pub fn owned_keys(keys: &[(String, OwnedValue)]) -> impl Iterator<Item = (&[u8], Value<'_>)> {
    keys.iter().map(|(k, v)| (k.as_bytes(), v.as_value()))
}

/// Writes the `runtime.votequorum.*` keys that differ from `quorum`'s into CMAP, with track
/// events.
///
/// # Errors
/// [`ServerError::OutboxFull`]: drain CMAP's notifications and call again (the keys already
/// written stay).
pub fn mirror(cmap: &mut Cmap, quorum: &Quorum) -> Result<(), ServerError> {
    for (key, value) in quorum.runtime_keys() {
        if cmap.get(key.as_bytes()) != Some(value) {
            // A refused key (a full store) stays as it was; clients see the old value.
            let _ = cmap.update(key.as_bytes(), value)?;
        }
    }
    Ok(())
}

/// The prefixes whose keys configure the quorum model at run time.
const WATCHED: [&[u8]; 2] = [b"quorum.", b"nodelist."];

/// The CMAP key that cancels wait_for_all.
const CANCEL_WFA: &[u8] = b"quorum.cancel_wait_for_all";

/// The listener's side of the sync: the configuration keys last seen and the clock origin.
#[derive(Debug)]
pub struct QuorumSync {
    seen: Vec<(Vec<u8>, OwnedValue)>,
    origin: std::time::Instant,
}

impl QuorumSync {
    /// Starts watching `cmap`'s configuration keys; corosync's configuration messages go to
    /// standard error ([`report`]).
    pub fn new(cmap: &Cmap) -> Self {
        Self { seen: watched(cmap), origin: std::time::Instant::now() }
    }

    /// The core's clock: milliseconds since the server started.
    pub fn now(&self) -> Instant {
        Instant::from_millis(u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX))
    }

    /// How long until `quorum` wants [`Quorum::handle_timeout`], if it does.
    pub fn until_timeout(&self, quorum: &Quorum) -> Option<core::time::Duration> {
        quorum.poll_timeout().map(|at| at.saturating_duration_since(self.now()))
    }

    /// After a request that may have changed CMAP: acts on changed configuration keys as
    /// corosync does (see the [module documentation](self)).
    ///
    /// # Errors
    /// [`ServerError::OutboxFull`]: drain both engines and call again.
    pub fn after_cmap_change(&mut self, cmap: &mut Cmap, quorum: &mut Quorum) -> Result<(), ServerError> {
        let now = watched(cmap);
        if now == self.seen {
            return Ok(());
        }
        let cancel =
            now.iter().any(|(k, v)| k == CANCEL_WFA && v.as_value().as_i64().is_some_and(|n| n >= 1));
        if cancel {
            quorum.cancel_wait_for_all()?;
            // corosync resets the key with an ordinary icmap_set (trackers see it), and that
            // change re-reads the configuration in turn.
            let _ = cmap.update(CANCEL_WFA, Value::UInt8(0))?;
        }
        // corosync's track callback for a deleted key runs before the key is gone (libqb's
        // map notifies first), so the re-read still sees it.
        let deleted = self.seen.iter().any(|(k, _)| !now.iter().any(|(n, _)| n == k));
        let read = if deleted { self.seen.clone() } else { watched(cmap) };
        let keys = read.iter().map(|(k, v)| (k.as_slice(), v.as_value()));
        let (cfg, nodelist) = quorum_setup(keys, QuorumConfig::default());
        quorum.reconfigure(cfg, &nodelist, &mut report)?;
        self.seen = watched(cmap);
        Ok(())
    }
}

/// Prints corosync's log lines for `note` on standard error, always: corosync logs them at
/// `crit` or `warning`, which its default logging shows.
pub fn report(note: ConfigNote) {
    for line in note.lines() {
        eprintln!("corowire serve: votequorum: {line}");
    }
}

/// The current keys under [`WATCHED`], in key order.
fn watched(cmap: &Cmap) -> Vec<(Vec<u8>, OwnedValue)> {
    let mut out = Vec::new();
    for prefix in WATCHED {
        let mut after: Option<Vec<u8>> = None;
        while let Some((key, value)) = cmap.icmap().next_after(prefix, after.as_deref()) {
            out.push((key.to_vec(), OwnedValue::from(value)));
            after = Some(key.to_vec());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::parse_keys;

    #[test]
    fn keys_become_the_quorum_model() {
        let keys = parse_keys(
            "nodelist.node.0.nodeid u32 1\nnodelist.node.0.ring0_addr str 10.0.0.1\n\
             nodelist.node.1.nodeid u32 7\nnodelist.node.1.quorum_votes u32 3\nnodelist.node.2.name str x\n\
             nodelist.local_node_pos u32 1\nquorum.two_node u8 1\nquorum.auto_tie_breaker_node str 7 1\n\
             quorum.last_man_standing_window u32 2000\n",
        )
        .unwrap();
        let (cfg, nodes) = quorum_setup(owned_keys(&keys), QuorumConfig::default());
        assert_eq!(nodes, vec![(1, 1), (7, 3)]);
        assert_eq!((cfg.nodeid, cfg.expected_votes, cfg.two_node, cfg.wait_for_all), (7, 0, true, None));
        assert_eq!(cfg.last_man_standing_window, 2000);
        assert_eq!(cfg.auto_tie_breaker_node, TieBreaker::parse("7 1"));
        // No nodelist: the base's expected votes stay; totem.nodeid wins.
        let keys = parse_keys("totem.nodeid u32 4\nquorum.wait_for_all u8 0\n").unwrap();
        let (cfg, nodes) = quorum_setup(owned_keys(&keys), QuorumConfig::default());
        assert_eq!((cfg.nodeid, cfg.expected_votes, cfg.wait_for_all, nodes.len()), (4, 1, Some(false), 0));
    }
}
