//! The exporter on a real 3-node cluster: kill a node, and the next scrape shows the member
//! gone, the votes changed and the link down. Run inside `tests/harness/with-cluster`
//! (each node in namespaces of its own; `$CLUSTER_CTL exec N` runs a command on node N):
//!
//! ```sh
//! cargo test --workspace --no-run --locked
//! tests/harness/with-cluster -- cargo test --locked --offline -p corowire-exporter \
//!     --test cluster -- --ignored --test-threads=1
//! ```

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::thread::sleep;

use core::time::Duration;

use common::{parse, value, Exporter, SampleKey, EXPORTER};

fn cluster_ctl() -> String {
    std::env::var("CLUSTER_CTL").expect("run inside tests/harness/with-cluster")
}

fn ctl(args: &[&str]) -> std::process::Output {
    let out = Command::new(cluster_ctl()).args(args).output().expect("run cluster-ctl");
    assert!(out.status.success(), "cluster-ctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// A scrape of node 1: of the long-running `exporter` there (through curl, in node 1's
/// network namespace), or with `corowire-exporter --once` (fresh connections).
fn scrape(exporter: Option<&Exporter>) -> BTreeMap<SampleKey, f64> {
    let url = exporter.map(|e| format!("http://127.0.0.1:{}/metrics", e.port));
    let out = match &url {
        Some(url) => ctl(&["exec", "1", "curl", "-sS", url]),
        None => ctl(&["exec", "1", EXPORTER, "--once"]),
    };
    parse(&String::from_utf8(out.stdout).expect("UTF-8"))
}

fn link_connected(s: &BTreeMap<SampleKey, f64>, node: &str) -> Option<f64> {
    value(s, "corosync_knet_link_connected", &[("node_id", node), ("link", "0")])
}

/// The node ids of `ha_cluster_corosync_member_votes`, sorted.
fn member_votes(s: &BTreeMap<SampleKey, f64>) -> Vec<String> {
    let mut ids: Vec<String> = s
        .keys()
        .filter(|(n, _)| n == "ha_cluster_corosync_member_votes")
        .filter_map(|(_, l)| l.get("node_id").cloned())
        .collect();
    ids.sort();
    ids
}

#[test]
#[ignore = "needs the 3-node cluster harness (tests/harness/with-cluster)"]
fn a_killed_node_shows_in_the_next_scrape() {
    ctl(&["wait-members", "1", "3"]);
    let ctl_path = cluster_ctl();
    // Long-lived connections (the cached nodelist and stats keys must follow the change).
    let exporter = Exporter::start_in(&[&ctl_path, "exec", "1"], &[]);
    let s = scrape(Some(&exporter));
    assert_eq!(value(&s, "corosync_up", &[]), Some(1.0));
    assert_eq!(value(&s, "corosync_members", &[]), Some(3.0));
    assert_eq!(value(&s, "ha_cluster_corosync_quorum_votes", &[("type", "total_votes")]), Some(3.0));
    assert_eq!(member_votes(&s), ["1", "2", "3"]);
    assert_eq!(link_connected(&s, "3"), Some(1.0));
    assert_eq!(value(&s, "ha_cluster_corosync_ring_errors", &[]), Some(0.0));
    let ring_seq = value(&s, "corosync_ring_id_sequence", &[]).expect("a ring id");

    ctl(&["kill", "3"]);
    ctl(&["wait-members", "1", "2"]);
    let mut s = scrape(Some(&exporter));
    // knet declares the link down on its own schedule (pong timeout), which may come after
    // the membership change: give it a bounded number of scrapes.
    for _ in 0..50 {
        if link_connected(&s, "3") == Some(0.0) {
            break;
        }
        sleep(Duration::from_millis(200));
        s = scrape(Some(&exporter));
    }
    assert_eq!(link_connected(&s, "3"), Some(0.0));
    assert_eq!(value(&s, "corosync_members", &[]), Some(2.0));
    assert_eq!(value(&s, "ha_cluster_corosync_quorum_votes", &[("type", "total_votes")]), Some(2.0));
    assert_eq!(value(&s, "ha_cluster_corosync_quorate", &[]), Some(1.0));
    assert_eq!(member_votes(&s), ["1", "2"]);
    assert_eq!(value(&s, "corosync_member_joined", &[("node_id", "3")]), Some(0.0));
    assert!(value(&s, "corosync_ring_id_sequence", &[]).is_some_and(|seq| seq > ring_seq));
    // Node 3 is no member any more, so its dead link faults no ring.
    assert_eq!(value(&s, "ha_cluster_corosync_ring_errors", &[]), Some(0.0));
    // Fresh connections see the same.
    let fresh = scrape(None);
    assert_eq!(value(&fresh, "corosync_members", &[]), Some(2.0));
    assert_eq!(member_votes(&fresh), ["1", "2"]);

    ctl(&["start", "3"]);
    ctl(&["wait-members", "1", "3"]);
    assert_eq!(value(&scrape(Some(&exporter)), "corosync_members", &[]), Some(3.0));
}
