//! votequorum's rules in the server engine: membership changes, quorum math over them, the
//! `runtime.votequorum.*` keys.

use corowire::cmap::Value;
use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
use corowire::server::ConnId;
use corowire::time::Instant;
use corowire::votequorum::{NodeState, Notification, Request, RingId, TrackFlags};

type Engine = QuorumEngine<4, 8, 16, 2048>;

/// A three-node cluster seen from node 1, all members.
fn three_nodes() -> Engine {
    let mut e = Engine::new(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() });
    for id in [2, 3] {
        e.add_node(id, 1, NodeState::MEMBER).unwrap();
    }
    e
}

/// Starts tracking changes on `conn` and drains the initial notifications.
fn track(e: &mut Engine, conn: ConnId) {
    e.connect(conn).unwrap();
    let mut req = [0u8; 64];
    let n = Request::TrackStart { context: 9, flags: TrackFlags::CHANGES }.encode(&mut req).unwrap();
    e.handle_request(conn, &req[..n], &mut [0u8; 320]).unwrap();
    drain(e);
}

/// The queued notifications, decoded to (kind, ring id or quorate) descriptions.
fn drain(e: &mut Engine) -> Vec<String> {
    let mut buf = [0u8; 512];
    let mut out = Vec::new();
    while let Some((_, n)) = e.poll_notification(&mut buf).unwrap() {
        out.push(match Notification::decode(&buf[..n]).unwrap() {
            Notification::NodeList { ring_id, nodes, .. } => {
                format!("nodelist {ring_id} {:?}", nodes.iter().collect::<Vec<_>>())
            }
            Notification::Quorum { quorate, .. } => format!("quorum {quorate}"),
            Notification::ExpectedVotes { expected_votes, .. } => format!("expected {expected_votes}"),
        });
    }
    out
}

#[test]
fn losing_two_of_three_loses_quorum_and_notifies() {
    let mut e = three_nodes();
    track(&mut e, ConnId(1));
    assert!(e.is_quorate());
    let ring = RingId { nodeid: 1, seq: 8 };
    e.set_membership(&[1, 2], ring, Instant::from_millis(0)).unwrap();
    assert!(e.is_quorate());
    assert_eq!(drain(&mut e), ["nodelist 1.8 [1, 2]"]);
    let ring = RingId { nodeid: 1, seq: 12 };
    e.set_membership(&[1], ring, Instant::from_millis(0)).unwrap();
    assert!(!e.is_quorate());
    assert_eq!((e.quorum(), e.ring_id(), e.member_ids().as_slice()), (2, ring, &[1][..]));
    assert_eq!(drain(&mut e), ["nodelist 1.c [1]", "quorum false"]);
}

#[test]
fn runtime_keys_of_a_three_node_cluster() {
    let e = three_nodes();
    let keys: Vec<_> = e.runtime_keys().collect();
    assert!(keys.contains(&("runtime.votequorum.this_node_id", Value::UInt32(1))));
    assert!(keys.contains(&("runtime.votequorum.highest_node_id", Value::UInt32(3))));
    assert!(keys.contains(&("runtime.votequorum.lowest_node_id", Value::UInt32(1))));
}
