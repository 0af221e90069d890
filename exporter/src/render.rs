//! A [`Scrape`] as metrics, encoded in the Prometheus text format (0.0.4) or OpenMetrics.
//!
//! Two families:
//! - `ha_cluster_corosync_*`: the names, labels and meanings of ClusterLabs'
//!   ha_cluster_exporter (`collector/corosync`), so its dashboards and alerts keep working,
//!   but read from votequorum and the knet link state instead of the text of
//!   `corosync-quorumtool -p` and `corosync-cfgtool -s`;
//! - `corosync_*`: everything else CMAP and votequorum say (knet links, totem srp, IPC,
//!   schedule misses, membership, ring id, votes, the quorum device).
//!
//! When corosync did not answer, only `corosync_up 0` and the exporter's own metrics are
//! written (ha_cluster_exporter writes no corosync metric then either). `docs/metrics.md`
//! lists every metric.

use core::fmt::Write as _;
use core::ops::Bound;
use core::sync::atomic::AtomicU64;
use core::time::Duration;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use corowire::votequorum::InfoFlags;
use corowire_unix::cmap::OwnedValue;
use corowire_unix::votequorum::NodeInfo;
use prometheus_client::encoding::{prometheus_text, text, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::Registry;

use crate::scraper::{Outcome, Scrape};
use crate::snapshot::Snapshot;

/// The exposition format of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// A metric's name (without `_total` for counters: the encoder adds it) and HELP text.
struct Metric<'a> {
    name: &'a str,
    help: &'a str,
}

const fn m(name: &'static str, help: &'static str) -> Metric<'static> {
    Metric { name, help }
}

type Labels = Vec<(String, String)>;
type GaugeFamily = Series<Gauge<f64, AtomicU64>>;
type CounterFamily = Series<Counter<f64, AtomicU64>>;

/// A family's series, encoded in the order they were first set, so every scrape lists them
/// alike (prometheus-client's `Family` keeps them in a `HashMap`, whose order changes).
#[derive(Debug)]
struct Series<M>(Arc<Mutex<Vec<(Labels, M)>>>);

impl<M> Default for Series<M> {
    fn default() -> Self {
        Self(Arc::default())
    }
}

impl<M> Clone for Series<M> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<M: Default> Series<M> {
    /// Applies `f` to the series with `labels`, adding it first if it is new.
    fn with(&self, labels: Labels, f: impl FnOnce(&M)) {
        let mut series = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match series.iter().position(|(l, _)| *l == labels) {
            Some(i) => f(&series[i].1),
            None => {
                let metric = M::default();
                f(&metric);
                series.push((labels, metric));
            }
        }
    }
}

impl<M: EncodeMetric + TypedMetric + core::fmt::Debug + Send + Sync> EncodeMetric for Series<M> {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> core::fmt::Result {
        let series = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        for (labels, metric) in series.iter() {
            metric.encode(encoder.encode_family(labels)?)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        M::TYPE
    }
}

/// The registry of one response: families are registered on first use, in that order.
#[derive(Default)]
struct Out {
    registry: Registry,
    gauges: HashMap<String, GaugeFamily>,
    counters: HashMap<String, CounterFamily>,
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

impl Out {
    fn gauge(&mut self, metric: &Metric<'_>, pairs: &[(&str, &str)], value: f64) {
        let family = self.gauges.entry(metric.name.to_owned()).or_insert_with(|| {
            let family = GaugeFamily::default();
            self.registry.register(metric.name, metric.help, family.clone());
            family
        });
        family.with(labels(pairs), |g| {
            g.set(value);
        });
    }

    fn counter(&mut self, metric: &Metric<'_>, pairs: &[(&str, &str)], value: f64) {
        let family = self.counters.entry(metric.name.to_owned()).or_insert_with(|| {
            let family = CounterFamily::default();
            self.registry.register(metric.name, metric.help, family.clone());
            family
        });
        family.with(labels(pairs), |c| {
            c.inc_by(value);
        });
    }

    fn flag(&mut self, metric: &Metric<'_>, pairs: &[(&str, &str)], on: bool) {
        self.gauge(metric, pairs, if on { 1.0 } else { 0.0 });
    }
}

const UP: Metric<'static> = m("corosync_up", "Whether corosync answered this scrape (1) or not (0: not running, refused, or no answer within the scrape bound)");
const SCRAPE_DURATION: Metric<'static> =
    m("corosync_scrape_duration_seconds", "How long this scrape took to read corosync");
const CONNECTS: Metric<'static> = m("corosync_exporter_connects", "Connections made to corosync's CMAP and votequorum services since the exporter started (one more whenever they are made anew: after a restart of corosync, or after a scrape that failed or timed out, e.g. while corosync was stopped)");
const BUILD_INFO: Metric<'static> =
    m("corosync_exporter_build_info", "The exporter's version, as a label; the value is 1");

/// Renders one scrape; `duration` is how long the scrape took.
pub fn render(scrape: &Scrape, duration: Duration, format: Format) -> String {
    let mut out = Out::default();
    let snapshot = match &scrape.outcome {
        Outcome::Ok(s) => Some(s),
        Outcome::Failed(_) | Outcome::TimedOut => None,
    };
    out.flag(&UP, &[], snapshot.is_some());
    out.gauge(&SCRAPE_DURATION, &[], duration.as_secs_f64());
    out.counter(&CONNECTS, &[], scrape.connects as f64);
    out.gauge(&BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
    if let Some(s) = snapshot {
        Cluster::new(s).render(&mut out);
    }
    let mut text = String::new();
    let encoded = match format {
        Format::Prometheus => prometheus_text::encode(&mut text, &out.registry),
        Format::OpenMetrics => text::encode(&mut text, &out.registry),
    };
    // Encoding into a String fails only if a label or value fails to format; ours are plain.
    if let Err(e) = encoded {
        let _ = writeln!(text, "# encoding failed: {e}");
    }
    text
}

/// A CMAP value as a number (strings and binaries are not).
fn number(v: &OwnedValue) -> Option<f64> {
    Some(match *v {
        OwnedValue::Int8(x) => x.into(),
        OwnedValue::UInt8(x) => x.into(),
        OwnedValue::Int16(x) => x.into(),
        OwnedValue::UInt16(x) => x.into(),
        OwnedValue::Int32(x) => x.into(),
        OwnedValue::UInt32(x) => x.into(),
        OwnedValue::Int64(x) => x as f64,
        OwnedValue::UInt64(x) => x as f64,
        OwnedValue::Float(x) => x.into(),
        OwnedValue::Double(x) => x,
        OwnedValue::String(_) | OwnedValue::Binary(_) => return None,
    })
}

/// A key-value dump, searchable by key and by prefix.
struct Keys<'a>(BTreeMap<&'a str, &'a OwnedValue>);

impl<'a> Keys<'a> {
    fn new(dump: &'a [(String, OwnedValue)]) -> Self {
        Self(dump.iter().map(|(k, v)| (k.as_str(), v)).collect())
    }

    fn number(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(|v| number(v))
    }

    fn string(&self, key: &str) -> Option<&'a str> {
        self.0.get(key).and_then(|v| v.as_str())
    }

    /// The keys under `prefix` with the prefix cut off, and their values.
    fn under<'p>(&'p self, prefix: &'p str) -> impl Iterator<Item = (&'a str, &'a OwnedValue)> + 'p {
        self.0
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .map_while(move |(&k, &v)| Some((k.strip_prefix(prefix)?, v)))
    }
}

/// `"<digits><rest>"` → the number and the rest.
fn leading_number(s: &str) -> Option<(u32, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    Some((s[..end].parse().ok()?, &s[end..]))
}

/// A node of `nodelist.node.*`.
#[derive(Default)]
struct ConfiguredNode<'a> {
    nodeid: Option<u32>,
    name: Option<&'a str>,
    /// `ringN_addr` by link number.
    addrs: BTreeMap<u32, &'a str>,
}

/// The snapshot, indexed.
struct Cluster<'a> {
    snapshot: &'a Snapshot,
    config: Keys<'a>,
    stats: Keys<'a>,
    nodes: Vec<ConfiguredNode<'a>>,
    local_id: Option<u32>,
}

impl<'a> Cluster<'a> {
    fn new(snapshot: &'a Snapshot) -> Self {
        let config = Keys::new(&snapshot.config);
        let stats = Keys::new(&snapshot.stats);
        let mut by_pos: BTreeMap<u32, ConfiguredNode<'a>> = BTreeMap::new();
        for (rest, v) in config.under("nodelist.node.") {
            let Some((pos, field)) = leading_number(rest) else { continue };
            let node = by_pos.entry(pos).or_default();
            match field {
                ".nodeid" => node.nodeid = number(v).map(|n| n as u32),
                ".name" => node.name = v.as_str(),
                _ => {
                    let link = field.strip_prefix(".ring").and_then(leading_number);
                    if let (Some((link, "_addr")), Some(addr)) = (link, v.as_str()) {
                        node.addrs.insert(link, addr);
                    }
                }
            }
        }
        let local_id = snapshot.local.as_ref().map(|l| l.nodeid);
        Self { snapshot, config, stats, nodes: by_pos.into_values().collect(), local_id }
    }

    fn configured(&self, nodeid: u32) -> Option<&ConfiguredNode<'a>> {
        self.nodes.iter().find(|n| n.nodeid == Some(nodeid))
    }

    /// The name `corosync-quorumtool` shows for a node: its `name`, else its `ring0_addr`,
    /// else the node id.
    fn node_name(&self, nodeid: u32) -> String {
        let node = self.configured(nodeid);
        node.and_then(|n| n.name.or_else(|| n.addrs.get(&0).copied()))
            .map_or_else(|| nodeid.to_string(), str::to_owned)
    }

    /// The current members: from votequorum's node list, else `runtime.members.*` that are
    /// `joined`.
    fn member_ids(&self) -> Vec<u32> {
        if let Some(members) = &self.snapshot.members {
            return members.iter().map(|n| n.nodeid).collect();
        }
        self.config
            .under("runtime.members.")
            .filter_map(|(rest, v)| {
                let (id, field) = leading_number(rest)?;
                (field == ".status" && v.as_str() == Some("joined")).then_some(id)
            })
            .collect()
    }

    fn render(&self, out: &mut Out) {
        self.compat(out);
        self.info(out);
        self.quorum(out);
        self.membership(out);
        self.knet(out);
        self.srp(out);
        self.ipcs(out);
        self.schedmiss(out);
    }
}

// ---- ha_cluster_exporter's family -------------------------------------------------------

const HA_QUORATE: Metric<'static> = m("ha_cluster_corosync_quorate", "Whether or not the cluster is quorate");
const HA_QUORUM_VOTES: Metric<'static> = m(
    "ha_cluster_corosync_quorum_votes",
    "Cluster quorum votes; one line per type (expected_votes, highest_expected, total_votes, quorum)",
);
const HA_MEMBER_VOTES: Metric<'static> = m(
    "ha_cluster_corosync_member_votes",
    "How many votes each member node has contributed with to the current quorum",
);
const HA_RINGS: Metric<'static> = m("ha_cluster_corosync_rings", "The status of each Corosync ring (knet link) of the local node; 1 means healthy, 0 means faulty (a current member is not connected over it)");
const HA_RING_ERRORS: Metric<'static> =
    m("ha_cluster_corosync_ring_errors", "The total number of faulty corosync rings (knet links)");

/// knet's per-link stats of one node: `(node id, link number)` → field → value.
type Links<'a> = BTreeMap<(u32, u32), BTreeMap<&'a str, &'a OwnedValue>>;

impl Cluster<'_> {
    fn links(&self) -> Links<'_> {
        let mut links: Links<'_> = BTreeMap::new();
        for (rest, v) in self.stats.under("stats.knet.node") {
            let Some((node, rest)) = leading_number(rest) else { continue };
            let Some((link, field)) = rest.strip_prefix(".link").and_then(leading_number) else { continue };
            let Some(field) = field.strip_prefix('.') else { continue };
            links.entry((node, link)).or_default().insert(field, v);
        }
        links
    }

    fn compat(&self, out: &mut Out) {
        let Some(local) = &self.snapshot.local else { return };
        let node_id = local.nodeid.to_string();
        // ha_cluster_exporter reads the ring id from `Ring ID: <hex rep node>.<hex seq>` and
        // keeps the part before the dot.
        let ring_id = self.snapshot.ring_id.map(|r| format!("{:x}", r.nodeid)).unwrap_or_default();
        let links = self.links();
        let members = self.member_ids();
        let mut faulty = 0u32;
        let local_links: Vec<u32> =
            links.keys().filter(|(n, _)| *n == local.nodeid).map(|(_, l)| *l).collect();
        for link in local_links {
            let healthy = members.iter().all(|member| {
                links.get(&(*member, link)).is_none_or(|f| {
                    let enabled = f.get("enabled").and_then(|v| number(v)) != Some(0.0);
                    !enabled || f.get("connected").and_then(|v| number(v)) == Some(1.0)
                })
            });
            faulty += u32::from(!healthy);
            let address =
                self.configured(local.nodeid).and_then(|n| n.addrs.get(&link).copied()).unwrap_or("");
            let number = link.to_string();
            out.flag(
                &HA_RINGS,
                &[("ring_id", &ring_id), ("node_id", &node_id), ("number", &number), ("address", address)],
                healthy,
            );
        }
        out.gauge(&HA_RING_ERRORS, &[], faulty.into());
        out.flag(&HA_QUORATE, &[], local.is_quorate());
        for (kind, votes) in [
            ("expected_votes", local.expected_votes),
            ("highest_expected", local.highest_expected),
            ("total_votes", local.total_votes),
            ("quorum", local.quorum),
        ] {
            out.gauge(&HA_QUORUM_VOTES, &[("type", kind)], votes.into());
        }
        for member in self.snapshot.members.iter().flatten() {
            let id = member.nodeid.to_string();
            let local = if member.nodeid == local.nodeid { "true" } else { "false" };
            let name = self.node_name(member.nodeid);
            out.gauge(
                &HA_MEMBER_VOTES,
                &[("node_id", &id), ("node", &name), ("local", local)],
                member.votes.into(),
            );
        }
    }
}

// ---- identity, votes, membership --------------------------------------------------------

const INFO: Metric<'static> = m("corosync_info", "The cluster's name, transport and totem protocol version, as labels; the value is 1 (corosync 3.1 publishes no daemon version over IPC)");
const LOCAL_NODE_ID: Metric<'static> = m("corosync_local_node_id", "The local node's id");
const QUORATE: Metric<'static> = m("corosync_quorate", "Whether the cluster is quorate (votequorum)");
const EXPECTED_VOTES: Metric<'static> =
    m("corosync_quorum_expected_votes", "Expected votes of the local node (votequorum)");
const HIGHEST_EXPECTED: Metric<'static> =
    m("corosync_quorum_highest_expected_votes", "Highest expected votes in the cluster (votequorum)");
const TOTAL_VOTES: Metric<'static> = m(
    "corosync_quorum_total_votes",
    "Total votes of the current members, the quorum device's included (votequorum)",
);
const QUORUM_VOTES: Metric<'static> =
    m("corosync_quorum_votes_needed", "Votes needed for quorum (votequorum)");
const QUORUM_FLAG: Metric<'static> = m("corosync_quorum_flag", "Votequorum's configured modes, one line per flag (two_node, wait_for_all, last_man_standing, auto_tie_breaker, allow_downscale): 1 if set");
const NODE_VOTES: Metric<'static> = m("corosync_node_votes", "Votes of each current member (votequorum)");
const NODE_EXPECTED: Metric<'static> =
    m("corosync_node_expected_votes", "Expected votes as each current member sees them (votequorum)");
const NODE_INFO: Metric<'static> = m(
    "corosync_node_info",
    "Each configured node's name and whether it is the local node, as labels; the value is 1",
);
const QDEVICE_REGISTERED: Metric<'static> =
    m("corosync_qdevice_registered", "Whether a quorum device is registered with the local node");
const QDEVICE_ALIVE: Metric<'static> =
    m("corosync_qdevice_alive", "Whether the quorum device polled within its timeout");
const QDEVICE_CAST_VOTE: Metric<'static> =
    m("corosync_qdevice_cast_vote", "Whether the quorum device casts its vote");
const QDEVICE_MASTER_WINS: Metric<'static> =
    m("corosync_qdevice_master_wins", "Whether the quorum device set master-wins mode");
const QDEVICE_VOTES: Metric<'static> = m("corosync_qdevice_votes", "Votes of the quorum device");
const QDEVICE_INFO: Metric<'static> =
    m("corosync_qdevice_info", "The registered quorum device's name, as a label; the value is 1");
const MEMBERS: Metric<'static> = m("corosync_members", "Nodes in the current ring");
const CONFIGURED_NODES: Metric<'static> = m("corosync_configured_nodes", "Nodes in corosync's nodelist");
const RING_SEQ: Metric<'static> = m(
    "corosync_ring_id_sequence",
    "Sequence number of the current ring id (the part after the dot of corosync-quorumtool's Ring ID)",
);
const RING_REP: Metric<'static> = m(
    "corosync_ring_id_representative_node_id",
    "Representative node of the current ring id (the part before the dot of corosync-quorumtool's Ring ID)",
);
const MEMBER_JOINED: Metric<'static> =
    m("corosync_member_joined", "For each node corosync has seen (runtime.members): 1 if joined, 0 if left");
const MEMBER_JOINS: Metric<'static> =
    m("corosync_member_joins", "How many times each node has joined (runtime.members.N.join_count)");
const MEMBER_CONFIG_VERSION: Metric<'static> = m(
    "corosync_member_config_version",
    "Each node's config_version as last seen (runtime.members.N.config_version)",
);

impl Cluster<'_> {
    fn info(&self, out: &mut Out) {
        let cluster = self.config.string("totem.cluster_name").unwrap_or("");
        let transport = self.config.string("totem.transport").unwrap_or("");
        let version = self.config.number("totem.version").map(|v| v.to_string()).unwrap_or_default();
        out.gauge(
            &INFO,
            &[("cluster_name", cluster), ("transport", transport), ("totem_version", &version)],
            1.0,
        );
        if let Some(id) = self.local_id {
            out.gauge(&LOCAL_NODE_ID, &[], id.into());
        }
    }

    fn quorum(&self, out: &mut Out) {
        let Some(local) = &self.snapshot.local else { return };
        out.flag(&QUORATE, &[], local.is_quorate());
        out.gauge(&EXPECTED_VOTES, &[], local.expected_votes.into());
        out.gauge(&HIGHEST_EXPECTED, &[], local.highest_expected.into());
        out.gauge(&TOTAL_VOTES, &[], local.total_votes.into());
        out.gauge(&QUORUM_VOTES, &[], local.quorum.into());
        for (flag, bit) in [
            ("two_node", InfoFlags::TWONODE),
            ("wait_for_all", InfoFlags::WAIT_FOR_ALL),
            ("last_man_standing", InfoFlags::LAST_MAN_STANDING),
            ("auto_tie_breaker", InfoFlags::AUTO_TIE_BREAKER),
            ("allow_downscale", InfoFlags::ALLOW_DOWNSCALE),
        ] {
            out.flag(&QUORUM_FLAG, &[("flag", flag)], local.flags.contains(bit));
        }
        self.qdevice(local, out);
        for member in self.snapshot.members.iter().flatten() {
            let id = member.nodeid.to_string();
            out.gauge(&NODE_VOTES, &[("node_id", &id)], member.votes.into());
            out.gauge(&NODE_EXPECTED, &[("node_id", &id)], member.expected_votes.into());
        }
    }

    fn qdevice(&self, local: &NodeInfo, out: &mut Out) {
        let registered = local.flags.contains(InfoFlags::QDEVICE_REGISTERED);
        out.flag(&QDEVICE_REGISTERED, &[], registered);
        out.flag(&QDEVICE_ALIVE, &[], local.flags.contains(InfoFlags::QDEVICE_ALIVE));
        out.flag(&QDEVICE_CAST_VOTE, &[], local.flags.contains(InfoFlags::QDEVICE_CAST_VOTE));
        out.flag(&QDEVICE_MASTER_WINS, &[], local.flags.contains(InfoFlags::QDEVICE_MASTER_WINS));
        out.gauge(&QDEVICE_VOTES, &[], local.qdevice_votes.into());
        if registered {
            out.gauge(&QDEVICE_INFO, &[("name", &local.qdevice_name)], 1.0);
        }
    }

    fn membership(&self, out: &mut Out) {
        out.gauge(&MEMBERS, &[], self.member_ids().len() as f64);
        out.gauge(&CONFIGURED_NODES, &[], self.nodes.len() as f64);
        for node in &self.nodes {
            let Some(id) = node.nodeid else { continue };
            let name = self.node_name(id);
            let local = if Some(id) == self.local_id { "true" } else { "false" };
            out.gauge(&NODE_INFO, &[("node_id", &id.to_string()), ("name", &name), ("local", local)], 1.0);
        }
        if let Some(ring) = self.snapshot.ring_id {
            out.gauge(&RING_SEQ, &[], ring.seq as f64);
            out.gauge(&RING_REP, &[], ring.nodeid.into());
        }
        for (rest, v) in self.config.under("runtime.members.") {
            let Some((id, field)) = leading_number(rest) else { continue };
            let id = id.to_string();
            let labels = [("node_id", id.as_str())];
            match field {
                ".status" => out.flag(&MEMBER_JOINED, &labels, v.as_str() == Some("joined")),
                ".join_count" => out.counter(&MEMBER_JOINS, &labels, number(v).unwrap_or(0.0)),
                ".config_version" => out.gauge(&MEMBER_CONFIG_VERSION, &labels, number(v).unwrap_or(0.0)),
                _ => {}
            }
        }
    }
}

// ---- knet links ----------------------------------------------------------------------

const LINK_CONNECTED: Metric<'static> = m(
    "corosync_knet_link_connected",
    "Whether the knet link to the node is connected (stats.knet.nodeN.linkM.connected)",
);
const LINK_ENABLED: Metric<'static> =
    m("corosync_knet_link_enabled", "Whether the knet link to the node is enabled");
const LINK_UP: Metric<'static> = m("corosync_knet_link_up", "Times the knet link went up (up_count)");
const LINK_DOWN: Metric<'static> = m("corosync_knet_link_down", "Times the knet link went down (down_count)");
const LINK_LATENCY_AVG: Metric<'static> = m(
    "corosync_knet_link_latency_average_seconds",
    "Average latency of the knet link over knet's recent samples (latency_ave, microseconds on the wire)",
);
const LINK_LATENCY_MIN: Metric<'static> = m(
    "corosync_knet_link_latency_min_seconds",
    "Lowest latency of the knet link over knet's recent samples (latency_min, microseconds on the wire)",
);
const LINK_LATENCY_MAX: Metric<'static> = m(
    "corosync_knet_link_latency_max_seconds",
    "Highest latency of the knet link over knet's recent samples (latency_max, microseconds on the wire)",
);
const LINK_LATENCY_SAMPLES: Metric<'static> = m(
    "corosync_knet_link_latency_samples",
    "Latency samples behind the knet link's latency figures (latency_samples)",
);
const LINK_MTU: Metric<'static> = m("corosync_knet_link_mtu_bytes", "Path MTU of the knet link");
const LINK_RX_PACKETS: Metric<'static> = m(
    "corosync_knet_link_rx_packets",
    "Packets received over the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_RX_BYTES: Metric<'static> = m(
    "corosync_knet_link_rx_bytes",
    "Bytes received over the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_TX_PACKETS: Metric<'static> = m(
    "corosync_knet_link_tx_packets",
    "Packets sent over the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_TX_BYTES: Metric<'static> = m(
    "corosync_knet_link_tx_bytes",
    "Bytes sent over the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_TX_ERRORS: Metric<'static> = m(
    "corosync_knet_link_tx_errors",
    "Send errors on the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_TX_RETRIES: Metric<'static> = m(
    "corosync_knet_link_tx_retries",
    "Send retries on the knet link, by packet type (data, ping, pong, pmtu)",
);
const LINK_RX_RETRIES: Metric<'static> =
    m("corosync_knet_link_rx_retries", "Receive retries on the knet link (rx_total_retries)");

const PACKET_TYPES: [&str; 4] = ["data", "ping", "pong", "pmtu"];
/// knet latencies are in microseconds.
const MICROSECONDS_PER_SECOND: f64 = 1e6;
/// Totem times and schedule misses are in milliseconds.
const MILLISECONDS_PER_SECOND: f64 = 1e3;

impl Cluster<'_> {
    fn knet(&self, out: &mut Out) {
        for ((node, link), fields) in &self.links() {
            let (node, link) = (node.to_string(), link.to_string());
            let labels = [("node_id", node.as_str()), ("link", link.as_str())];
            let get = |field: &str| fields.get(field).and_then(|v| number(v));
            let mut put = |metric: &Metric<'_>, field: &str, counter: bool| {
                if let Some(v) = get(field) {
                    if counter {
                        out.counter(metric, &labels, v);
                    } else {
                        out.gauge(metric, &labels, v);
                    }
                }
            };
            put(&LINK_CONNECTED, "connected", false);
            put(&LINK_ENABLED, "enabled", false);
            put(&LINK_UP, "up_count", true);
            put(&LINK_DOWN, "down_count", true);
            put(&LINK_MTU, "mtu", false);
            put(&LINK_LATENCY_SAMPLES, "latency_samples", false);
            put(&LINK_RX_RETRIES, "rx_total_retries", true);
            // Without samples knet leaves min at u32::MAX: no figure then.
            if get("latency_samples").is_some_and(|n| n > 0.0) {
                for (metric, field) in [
                    (&LINK_LATENCY_AVG, "latency_ave"),
                    (&LINK_LATENCY_MIN, "latency_min"),
                    (&LINK_LATENCY_MAX, "latency_max"),
                ] {
                    if let Some(v) = get(field) {
                        out.gauge(metric, &labels, v / MICROSECONDS_PER_SECOND);
                    }
                }
            }
            for kind in PACKET_TYPES {
                let typed = [labels[0], labels[1], ("type", kind)];
                for (metric, field) in [
                    (&LINK_RX_PACKETS, format!("rx_{kind}_packets")),
                    (&LINK_RX_BYTES, format!("rx_{kind}_bytes")),
                    (&LINK_TX_PACKETS, format!("tx_{kind}_packets")),
                    (&LINK_TX_BYTES, format!("tx_{kind}_bytes")),
                    (&LINK_TX_ERRORS, format!("tx_{kind}_errors")),
                    (&LINK_TX_RETRIES, format!("tx_{kind}_retries")),
                ] {
                    if let Some(v) = get(&field) {
                        out.counter(metric, &typed, v);
                    }
                }
            }
        }
    }
}

// ---- totem srp, process groups -------------------------------------------------------

/// `stats.srp.<key>` counters, as `corosync_srp_<key>_total`: (key, HELP).
const SRP_COUNTERS: [(&str, &str); 23] = [
    ("commit_entered", "Times totem entered the COMMIT state"),
    ("commit_token_lost", "Times the token was lost in the COMMIT state"),
    ("consensus_timeouts", "Times consensus timed out"),
    ("gather_entered", "Times totem entered the GATHER state"),
    ("gather_token_lost", "Times the token was lost in the GATHER state"),
    ("mcast_retx", "Multicast messages retransmitted"),
    ("mcast_rx", "Multicast messages received"),
    ("mcast_tx", "Multicast messages sent"),
    ("memb_commit_token_rx", "Membership commit tokens received"),
    ("memb_commit_token_tx", "Membership commit tokens sent"),
    ("memb_join_rx", "Membership join messages received"),
    ("memb_join_tx", "Membership join messages sent"),
    ("memb_merge_detect_rx", "Membership merge-detect messages received"),
    ("memb_merge_detect_tx", "Membership merge-detect messages sent"),
    ("operational_entered", "Times totem entered the OPERATIONAL state"),
    ("operational_token_lost", "Times the token was lost in the OPERATIONAL state"),
    ("orf_token_rx", "Ordering (ORF) tokens received"),
    ("orf_token_tx", "Ordering (ORF) tokens sent"),
    ("recovery_entered", "Times totem entered the RECOVERY state"),
    ("recovery_token_lost", "Times the token was lost in the RECOVERY state"),
    ("rx_msg_dropped", "Received messages dropped"),
    ("token_hold_cancel_rx", "Token-hold-cancel messages received"),
    ("token_hold_cancel_tx", "Token-hold-cancel messages sent"),
];

/// `stats.*` gauges: (CMAP key, metric, what to divide the value by for the metric's unit).
const STAT_GAUGES: [(&str, Metric<'static>, f64); 9] = [
    (
        "stats.srp.avg_backlog_calc",
        m(
            "corosync_srp_average_backlog",
            "Average backlog of messages waiting to be sent (avg_backlog_calc)",
        ),
        1.0,
    ),
    (
        "stats.srp.avg_token_workload",
        m("corosync_srp_average_token_workload", "Average token workload (avg_token_workload)"),
        1.0,
    ),
    (
        "stats.srp.continuous_gather",
        m("corosync_srp_continuous_gather", "Consecutive GATHER states; high values mean a network problem"),
        1.0,
    ),
    (
        "stats.srp.continuous_sendmsg_failures",
        m("corosync_srp_continuous_sendmsg_failures", "Consecutive send failures"),
        1.0,
    ),
    (
        "stats.srp.firewall_enabled_or_nic_failure",
        m(
            "corosync_srp_firewall_enabled_or_nic_failure",
            "Whether totem suspects a firewall or a failed NIC (1)",
        ),
        1.0,
    ),
    (
        "stats.srp.mtt_rx_token",
        m(
            "corosync_srp_mean_token_rotation_seconds",
            "Mean time between token receipts (mtt_rx_token, milliseconds on the wire)",
        ),
        MILLISECONDS_PER_SECOND,
    ),
    (
        "stats.srp.time_since_token_last_received",
        m(
            "corosync_srp_time_since_token_last_received_seconds",
            "Time since the token was last received (milliseconds on the wire)",
        ),
        MILLISECONDS_PER_SECOND,
    ),
    (
        "stats.pg.msg_queue_avail",
        m(
            "corosync_pg_msg_queue_available",
            "Free space in the process-group message queue (stats.pg.msg_queue_avail)",
        ),
        1.0,
    ),
    (
        "stats.pg.msg_reserved",
        m("corosync_pg_msg_reserved", "Process-group messages reserved (stats.pg.msg_reserved)"),
        1.0,
    ),
];

impl Cluster<'_> {
    fn srp(&self, out: &mut Out) {
        for (key, help) in SRP_COUNTERS {
            if let Some(v) = self.stats.number(&format!("stats.srp.{key}")) {
                out.counter(&Metric { name: &format!("corosync_srp_{key}"), help }, &[], v);
            }
        }
        for (key, metric, divisor) in &STAT_GAUGES {
            if let Some(v) = self.stats.number(key) {
                out.gauge(metric, &[], v / divisor);
            }
        }
    }
}

// ---- IPC, schedule misses -------------------------------------------------------------

const IPCS_ACTIVE: Metric<'static> =
    m("corosync_ipcs_connections", "Open IPC (libqb) client connections (stats.ipcs.global.active)");
const IPCS_CLOSED: Metric<'static> = m(
    "corosync_ipcs_connections_closed",
    "IPC client connections closed since corosync started (stats.ipcs.global.closed)",
);
const SCHEDMISS_COUNT: Metric<'static> = m(
    "corosync_schedule_misses_recorded",
    "Schedule misses corosync keeps a record of (stats.schedmiss.*; it keeps the last 10)",
);
const SCHEDMISS_LAST: Metric<'static> = m(
    "corosync_schedule_miss_last_timestamp_seconds",
    "When the last recorded schedule miss happened (Unix time)",
);
const SCHEDMISS_MAX: Metric<'static> =
    m("corosync_schedule_miss_max_delay_seconds", "The longest delay among the recorded schedule misses");

impl Cluster<'_> {
    fn ipcs(&self, out: &mut Out) {
        if let Some(v) = self.stats.number("stats.ipcs.global.active") {
            out.gauge(&IPCS_ACTIVE, &[], v);
        }
        if let Some(v) = self.stats.number("stats.ipcs.global.closed") {
            out.counter(&IPCS_CLOSED, &[], v);
        }
    }

    fn schedmiss(&self, out: &mut Out) {
        let mut count = 0u32;
        let mut last: Option<f64> = None;
        let mut max_delay: Option<f64> = None;
        for (rest, v) in self.stats.under("stats.schedmiss.") {
            let Some((_, field)) = leading_number(rest) else { continue };
            let Some(v) = number(v) else { continue };
            match field {
                // milliseconds since the epoch
                ".timestamp" => {
                    count += 1;
                    last = Some(last.map_or(v, |l| l.max(v)));
                }
                // milliseconds
                ".delay" => max_delay = Some(max_delay.map_or(v, |d| d.max(v))),
                _ => {}
            }
        }
        out.gauge(&SCHEDMISS_COUNT, &[], count.into());
        if let Some(t) = last {
            out.gauge(&SCHEDMISS_LAST, &[], t / MILLISECONDS_PER_SECOND);
        }
        if let Some(d) = max_delay {
            out.gauge(&SCHEDMISS_MAX, &[], d / MILLISECONDS_PER_SECOND);
        }
    }
}
