//! Rendering without a daemon: a hand-made snapshot of a 3-node cluster with two knet links,
//! content negotiation, the loopback rule, and docs/metrics.md listing every metric.

mod common;

use std::collections::BTreeSet;

use common::{parse, value};
use corowire::votequorum::{InfoFlags, NodeState, RingId};
use corowire_exporter::http::{negotiate, Endpoint, ServeError};
use corowire_exporter::render::{render, Format};
use corowire_exporter::scraper::{Outcome, Scrape};
use corowire_exporter::snapshot::Snapshot;
use corowire_unix::cmap::OwnedValue;
use corowire_unix::votequorum::NodeInfo;

fn info(nodeid: u32, votes: u32, flags: InfoFlags) -> NodeInfo {
    NodeInfo {
        nodeid,
        state: NodeState::MEMBER,
        votes,
        expected_votes: 3,
        highest_expected: 3,
        total_votes: 2,
        quorum: 2,
        flags,
        qdevice_votes: 1,
        qdevice_name: "Qdevice".into(),
    }
}

fn s(v: &str) -> OwnedValue {
    OwnedValue::String(v.as_bytes().to_vec())
}

fn kv(pairs: Vec<(String, OwnedValue)>) -> Vec<(String, OwnedValue)> {
    let mut pairs = pairs;
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs
}

/// Nodes 1 (local), 2 and 3 configured, 1 and 2 members (3 was killed). Link 0 is
/// connected to 2, link 1 is not: ring 1 is faulty. Node 3's links are down, which faults no
/// ring (it is not a member).
fn cluster() -> Snapshot {
    let mut config = vec![
        ("totem.cluster_name".to_owned(), s("alpha")),
        ("totem.transport".to_owned(), s("knet")),
        ("totem.version".to_owned(), OwnedValue::UInt32(2)),
    ];
    for (pos, id) in [(0, 1u32), (1, 2), (2, 3)] {
        config.push((format!("nodelist.node.{pos}.nodeid"), OwnedValue::UInt32(id)));
        config.push((format!("nodelist.node.{pos}.name"), s(&format!("n{id}"))));
        config.push((format!("nodelist.node.{pos}.ring0_addr"), s(&format!("10.0.0.{id}"))));
        config.push((format!("nodelist.node.{pos}.ring1_addr"), s(&format!("10.1.0.{id}"))));
        let status = if id == 3 { "left" } else { "joined" };
        config.push((format!("runtime.members.{id}.status"), s(status)));
        config.push((format!("runtime.members.{id}.join_count"), OwnedValue::UInt32(1)));
        config.push((format!("runtime.members.{id}.config_version"), OwnedValue::UInt64(0)));
    }
    let mut stats = vec![
        ("stats.srp.orf_token_rx".to_owned(), OwnedValue::UInt64(41)),
        ("stats.srp.mtt_rx_token".to_owned(), OwnedValue::UInt32(250)),
        ("stats.pg.msg_reserved".to_owned(), OwnedValue::UInt32(2)),
        ("stats.ipcs.global.active".to_owned(), OwnedValue::UInt64(2)),
        ("stats.ipcs.global.closed".to_owned(), OwnedValue::UInt64(9)),
        ("stats.schedmiss.0.timestamp".to_owned(), OwnedValue::UInt64(1_700_000_000_000)),
        ("stats.schedmiss.0.delay".to_owned(), OwnedValue::Float(1500.0)),
        ("stats.schedmiss.1.timestamp".to_owned(), OwnedValue::UInt64(1_700_000_100_000)),
        ("stats.schedmiss.1.delay".to_owned(), OwnedValue::Float(3250.0)),
    ];
    // Every other key a corosync 3.1.7 stats map has under stats.srp.
    for key in [
        "avg_backlog_calc",
        "avg_token_workload",
        "commit_entered",
        "commit_token_lost",
        "consensus_timeouts",
        "continuous_gather",
        "continuous_sendmsg_failures",
        "firewall_enabled_or_nic_failure",
        "gather_entered",
        "gather_token_lost",
        "mcast_retx",
        "mcast_rx",
        "mcast_tx",
        "memb_commit_token_rx",
        "memb_commit_token_tx",
        "memb_join_rx",
        "memb_join_tx",
        "memb_merge_detect_rx",
        "memb_merge_detect_tx",
        "operational_entered",
        "operational_token_lost",
        "orf_token_tx",
        "recovery_entered",
        "recovery_token_lost",
        "rx_msg_dropped",
        "time_since_token_last_received",
        "token_hold_cancel_rx",
        "token_hold_cancel_tx",
    ] {
        stats.push((format!("stats.srp.{key}"), OwnedValue::UInt64(0)));
    }
    stats.push(("stats.pg.msg_queue_avail".to_owned(), OwnedValue::UInt32(0)));
    for node in 1..=3u32 {
        for link in 0..=1u32 {
            let connected = u8::from(node == 1 || (node == 2 && link == 0));
            let p = format!("stats.knet.node{node}.link{link}");
            stats.push((format!("{p}.connected"), OwnedValue::UInt8(connected)));
            stats.push((format!("{p}.enabled"), OwnedValue::UInt8(1)));
            stats.push((format!("{p}.up_count"), OwnedValue::UInt32(1)));
            stats.push((format!("{p}.down_count"), OwnedValue::UInt32(u32::from(connected == 0))));
            stats.push((format!("{p}.latency_samples"), OwnedValue::UInt32(if node == 2 { 10 } else { 0 })));
            stats.push((format!("{p}.latency_ave"), OwnedValue::UInt32(150)));
            stats.push((
                format!("{p}.latency_min"),
                OwnedValue::UInt32(if node == 2 { 100 } else { u32::MAX }),
            ));
            stats.push((format!("{p}.latency_max"), OwnedValue::UInt32(200)));
            stats.push((format!("{p}.rx_data_packets"), OwnedValue::UInt64(7)));
            stats.push((format!("{p}.tx_ping_errors"), OwnedValue::UInt32(0)));
        }
    }
    let qdevice = InfoFlags::QUORATE | InfoFlags::QDEVICE_REGISTERED | InfoFlags::QDEVICE_ALIVE;
    Snapshot {
        local: Some(info(1, 1, qdevice | InfoFlags::WAIT_FOR_ALL)),
        ring_id: Some(RingId { nodeid: 0x1a, seq: 0x2c }),
        members: Some(vec![info(1, 1, qdevice), info(2, 1, InfoFlags::QUORATE)]),
        config: kv(config),
        stats: kv(stats),
    }
}

fn rendered(format: Format) -> String {
    render(&Scrape { outcome: Outcome::Ok(cluster()), connects: 1 }, Default::default(), format)
}

#[test]
fn compatible_family() {
    let m = parse(&rendered(Format::Prometheus));
    assert_eq!(value(&m, "ha_cluster_corosync_quorate", &[]), Some(1.0));
    for (kind, v) in
        [("expected_votes", 3.0), ("highest_expected", 3.0), ("total_votes", 2.0), ("quorum", 2.0)]
    {
        assert_eq!(value(&m, "ha_cluster_corosync_quorum_votes", &[("type", kind)]), Some(v), "{kind}");
    }
    assert_eq!(
        value(&m, "ha_cluster_corosync_member_votes", &[("node_id", "1"), ("node", "n1"), ("local", "true")]),
        Some(1.0)
    );
    assert_eq!(
        value(
            &m,
            "ha_cluster_corosync_member_votes",
            &[("node_id", "2"), ("node", "n2"), ("local", "false")]
        ),
        Some(1.0)
    );
    let ring = |n: &str, addr: &str| {
        value(
            &m,
            "ha_cluster_corosync_rings",
            &[("ring_id", "1a"), ("node_id", "1"), ("number", n), ("address", addr)],
        )
    };
    assert_eq!(ring("0", "10.0.0.1"), Some(1.0));
    assert_eq!(ring("1", "10.1.0.1"), Some(0.0));
    assert_eq!(value(&m, "ha_cluster_corosync_ring_errors", &[]), Some(1.0));
    assert_eq!(m.keys().filter(|(n, _)| n == "ha_cluster_corosync_member_votes").count(), 2);
}

#[test]
fn native_metrics() {
    let m = parse(&rendered(Format::Prometheus));
    let link = |node: &str, link: &str| vec![("node_id", node.to_owned()), ("link", link.to_owned())];
    let get = |name: &str, labels: Vec<(&str, String)>| {
        let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
        value(&m, name, &labels)
    };
    assert_eq!(get("corosync_knet_link_connected", link("3", "0")), Some(0.0));
    assert_eq!(get("corosync_knet_link_connected", link("2", "0")), Some(1.0));
    assert_eq!(get("corosync_knet_link_down_total", link("2", "1")), Some(1.0));
    assert_eq!(get("corosync_knet_link_latency_average_seconds", link("2", "0")), Some(150e-6));
    assert_eq!(get("corosync_knet_link_latency_min_seconds", link("2", "0")), Some(100e-6));
    // No samples: no latency (knet leaves min at u32::MAX).
    assert_eq!(get("corosync_knet_link_latency_min_seconds", link("3", "0")), None);
    let mut typed = link("2", "0");
    typed.push(("type", "data".into()));
    assert_eq!(get("corosync_knet_link_rx_packets_total", typed), Some(7.0));
    assert_eq!(value(&m, "corosync_members", &[]), Some(2.0));
    assert_eq!(value(&m, "corosync_configured_nodes", &[]), Some(3.0));
    assert_eq!(value(&m, "corosync_member_joined", &[("node_id", "3")]), Some(0.0));
    assert_eq!(value(&m, "corosync_ring_id_sequence", &[]), Some(44.0));
    assert_eq!(value(&m, "corosync_ring_id_representative_node_id", &[]), Some(26.0));
    assert_eq!(value(&m, "corosync_quorum_flag", &[("flag", "wait_for_all")]), Some(1.0));
    assert_eq!(value(&m, "corosync_quorum_flag", &[("flag", "two_node")]), Some(0.0));
    assert_eq!(value(&m, "corosync_qdevice_alive", &[]), Some(1.0));
    assert_eq!(value(&m, "corosync_qdevice_cast_vote", &[]), Some(0.0));
    assert_eq!(value(&m, "corosync_qdevice_info", &[("name", "Qdevice")]), Some(1.0));
    assert_eq!(value(&m, "corosync_srp_orf_token_rx_total", &[]), Some(41.0));
    assert_eq!(value(&m, "corosync_srp_mean_token_rotation_seconds", &[]), Some(0.25));
    assert_eq!(value(&m, "corosync_ipcs_connections_closed_total", &[]), Some(9.0));
    assert_eq!(value(&m, "corosync_ipcs_connections", &[]), Some(2.0));
    assert_eq!(value(&m, "corosync_schedule_misses_recorded", &[]), Some(2.0));
    assert_eq!(value(&m, "corosync_schedule_miss_max_delay_seconds", &[]), Some(3.25));
    assert_eq!(value(&m, "corosync_schedule_miss_last_timestamp_seconds", &[]), Some(1_700_000_100.0));
    assert_eq!(
        value(&m, "corosync_node_info", &[("node_id", "3"), ("name", "n3"), ("local", "false")]),
        Some(1.0)
    );
}

/// The metric families of an exposition (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| l.split(' ').next().unwrap_or("").to_owned())
        .collect()
}

#[test]
fn every_family_has_help_and_counters_end_in_total() {
    let text = rendered(Format::Prometheus);
    for family in families(&text) {
        assert!(text.contains(&format!("# HELP {family} ")), "{family} has no HELP");
    }
    for line in text.lines().filter(|l| l.ends_with(" counter")) {
        assert!(line.trim_end_matches(" counter").ends_with("_total"), "{line}");
    }
}

#[test]
fn docs_list_every_metric() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/metrics.md"))
        .expect("docs/metrics.md");
    let text = rendered(Format::Prometheus);
    for family in families(&text) {
        assert!(docs.contains(&format!("`{family}`")), "docs/metrics.md does not list {family}");
    }
}

#[test]
fn openmetrics_ends_with_eof() {
    let text = rendered(Format::OpenMetrics);
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE corosync_srp_orf_token_rx counter\ncorosync_srp_orf_token_rx_total 41"));
}

#[test]
fn no_answer_writes_only_up_0() {
    for outcome in [Outcome::TimedOut, Outcome::Failed("no daemon".into())] {
        let m = parse(&render(&Scrape { outcome, connects: 3 }, Default::default(), Format::Prometheus));
        assert_eq!(value(&m, "corosync_up", &[]), Some(0.0));
        assert_eq!(value(&m, "corosync_exporter_connects_total", &[]), Some(3.0));
        assert!(m.keys().all(|(n, _)| !n.starts_with("ha_cluster_")), "{m:?}");
        assert!(
            m.keys().all(|(n, _)| n.starts_with("corosync_up")
                || n.starts_with("corosync_scrape")
                || n.starts_with("corosync_exporter")),
            "{m:?}"
        );
    }
}

#[test]
fn negotiation() {
    let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(negotiate(Some(prometheus)), Format::OpenMetrics);
    assert_eq!(negotiate(None), Format::Prometheus);
    assert_eq!(negotiate(Some("*/*")), Format::Prometheus);
    assert_eq!(negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")), Format::Prometheus);
    assert_eq!(negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
}

#[test]
fn only_loopback_without_allow_remote() {
    assert!(matches!(Endpoint::bind("0.0.0.0:0", false), Err(ServeError::NotLoopback(_))));
    let endpoint = Endpoint::bind("127.0.0.1:0", false).expect("loopback binds");
    assert!(endpoint.local_addr().ip().is_loopback());
    let named = Endpoint::bind("localhost:0", false).expect("a name resolving to loopback binds");
    assert!(named.local_addr().ip().is_loopback());
}

#[test]
fn series_keep_their_order_from_scrape_to_scrape() {
    let first = rendered(Format::Prometheus);
    for _ in 0..20 {
        assert_eq!(rendered(Format::Prometheus), first);
    }
}
