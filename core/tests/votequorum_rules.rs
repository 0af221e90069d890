//! votequorum's rules in the server engine (corosync 3.1.7's `exec/votequorum.c`): the
//! configuration rules, the quorum math over membership changes, last_man_standing's window,
//! run-time reconfiguration and the `runtime.votequorum.*` keys. The expected values of the
//! configuration table are what corosync 3.1.7 shows on node 1 with the other nodes of the
//! nodelist down (`corosync-quorumtool -s`, `corosync-cmapctl -b runtime.votequorum`).

use corowire::cmap::Value;
use corowire::server::votequorum::{
    ConfigError, ConfigNote, DeviceConfig, NodeMessage, QuorumConfig, QuorumEngine, Reconfigure, TieBreaker,
};
use corowire::server::{ConnId, ServerError};
use corowire::time::Instant;
use corowire::votequorum::{Notification, Reply, Request, Response, RingId, TrackFlags};
use corowire::CsError;

type Engine = QuorumEngine<4, 8, 16, 2048>;

const T0: Instant = Instant::from_millis(1000);

fn ring(seq: u64) -> RingId {
    RingId { nodeid: 1, seq }
}

/// A cluster of nodes 1..=n with one vote each (no expected votes set) and `cfg`'s rules,
/// seen from node 1; returns the engine and corosync's notes.
fn cluster(n: u32, cfg: QuorumConfig) -> (Engine, Vec<ConfigNote>) {
    let nodes: Vec<(u32, u32)> = (1..=n).map(|id| (id, 1)).collect();
    let mut notes = Vec::new();
    let e =
        Engine::configure(QuorumConfig { expected_votes: 0, ..cfg }, &nodes, &mut |m| notes.push(m)).unwrap();
    (e, notes)
}

/// [`cluster`] with all nodes up (ring 1.6).
fn cluster_up(n: u32, cfg: QuorumConfig) -> Engine {
    let (mut e, _) = cluster(n, cfg);
    let all: Vec<u32> = (1..=n).collect();
    e.set_membership(&all, ring(6), Instant::from_millis(0)).unwrap();
    e
}

/// `corosync-quorumtool -s`'s figures: (quorate, expected, total, quorum, flags).
fn status(e: &mut Engine) -> (bool, u32, u32, u32, String) {
    let conn = ConnId(99);
    e.connect(conn).unwrap();
    let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
    let n = Request::GetInfo { nodeid: 0 }.encode(&mut req).unwrap();
    let m = e.handle_request(conn, &req[..n], &mut out).unwrap();
    e.disconnect(conn);
    let Response::GetInfo(info) = Reply::decode(&out[..m]).unwrap().body else { panic!("not GETINFO") };
    let flags: Vec<_> = info.flags.words().collect();
    (e.is_quorate(), info.expected_votes, info.total_votes, info.quorum, flags.join(" "))
}

/// `corosync-cmapctl -b runtime.votequorum`'s lines.
fn keys(e: &Engine) -> Vec<String> {
    e.runtime_keys()
        .map(|(k, v)| match v {
            Value::UInt32(n) => format!("{k} (u32) = {n}"),
            Value::UInt8(n) => format!("{k} (u8) = {n}"),
            other => panic!("{k}: unexpected {other:?}"),
        })
        .collect()
}

/// Starts tracking changes on `conn` and drains the initial notifications.
fn track(e: &mut Engine, conn: ConnId) {
    e.connect(conn).unwrap();
    let mut req = [0u8; 64];
    let n = Request::TrackStart { context: 9, flags: TrackFlags::CHANGES }.encode(&mut req).unwrap();
    e.handle_request(conn, &req[..n], &mut [0u8; 320]).unwrap();
    drain(e);
}

/// The queued notifications, described.
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

fn k(name: &str, ty: &str, v: u32) -> String {
    format!("runtime.votequorum.{name} ({ty}) = {v}")
}

#[test]
fn configuration_rules_as_corosync_applies_them() {
    let d = QuorumConfig::default();
    let atb = QuorumConfig { auto_tie_breaker: true, ..d };
    // (nodes, config, quorate, expected, quorum, flags, notes, keys besides this_node_id)
    type Row = (u32, QuorumConfig, bool, u32, u32, &'static str, Vec<ConfigNote>, Vec<String>);
    let rows: Vec<Row> = vec![
        (
            1,
            d,
            true,
            1,
            1,
            "Quorate",
            vec![],
            vec![k("ev_barrier", "u32", 1), k("highest_node_id", "u32", 1)],
        ),
        (3, d, false, 3, 2, "", vec![], vec![k("ev_barrier", "u32", 3)]),
        (
            2,
            QuorumConfig { two_node: true, ..d },
            false,
            2,
            1,
            "2Node WaitForAll",
            vec![],
            vec![k("ev_barrier", "u32", 2), k("two_node", "u8", 1), k("wait_for_all_status", "u8", 1)],
        ),
        (
            2,
            QuorumConfig { two_node: true, wait_for_all: Some(false), ..d },
            true,
            2,
            1,
            "2Node Quorate",
            vec![],
            vec![k("ev_barrier", "u32", 2), k("highest_node_id", "u32", 1), k("two_node", "u8", 1)],
        ),
        (
            3,
            atb,
            false,
            3,
            2,
            "",
            vec![ConfigNote::AtbDroppedOddNodes],
            vec![k("atb_type", "u32", 0), k("ev_barrier", "u32", 3)],
        ),
        (
            3,
            QuorumConfig {
                wait_for_all: Some(true),
                auto_tie_breaker_node: Some(TieBreaker::Highest),
                ..atb
            },
            false,
            3,
            2,
            "WaitForAll AutoTieBreaker",
            vec![],
            vec![k("atb_type", "u32", 2), k("ev_barrier", "u32", 3), k("wait_for_all_status", "u8", 1)],
        ),
        (
            4,
            QuorumConfig { two_node: true, ..atb },
            false,
            4,
            3,
            "WaitForAll AutoTieBreaker",
            vec![ConfigNote::TwoNodeDropped],
            vec![k("atb_type", "u32", 1), k("ev_barrier", "u32", 4), k("wait_for_all_status", "u8", 1)],
        ),
        (
            4,
            QuorumConfig { auto_tie_breaker_node: TieBreaker::parse("3 4"), ..atb },
            false,
            4,
            3,
            "AutoTieBreaker",
            vec![],
            vec![k("atb_type", "u32", 3), k("ev_barrier", "u32", 4)],
        ),
        (
            1,
            QuorumConfig { last_man_standing: true, wait_for_all: Some(true), ..d },
            true,
            1,
            1,
            "Quorate WaitForAll LastManStanding",
            vec![],
            vec![
                k("ev_barrier", "u32", 1),
                k("highest_node_id", "u32", 1),
                k("wait_for_all_status", "u8", 0),
            ],
        ),
        (
            1,
            QuorumConfig { allow_downscale: true, ..d },
            true,
            1,
            1,
            "Quorate AllowDownscale",
            vec![],
            vec![
                k("ev_barrier", "u32", 1),
                k("ev_tracking_barrier", "u32", 1),
                k("highest_node_id", "u32", 1),
            ],
        ),
    ];
    for (i, (n, cfg, quorate, expected, quorum, flags, notes, mut want)) in rows.into_iter().enumerate() {
        let (mut e, got_notes) = cluster(n, cfg);
        e.set_membership(&[1], ring(5), T0).unwrap();
        let (q, ev, total, qv, f) = status(&mut e);
        assert_eq!((q, ev, total, qv, f.as_str()), (quorate, expected, 1, quorum, flags), "row {i}");
        assert_eq!(got_notes, notes, "row {i}");
        // Corosync's key order: lowest_node_id follows highest_node_id, this_node_id and
        // two_node (0 unless said) follow.
        if want.iter().any(|l| l.contains("highest_node_id")) {
            let at = want.iter().position(|l| l.contains("highest_node_id")).unwrap() + 1;
            want.insert(at, k("lowest_node_id", "u32", 1));
        }
        let at = want.iter().position(|l| l.as_str() > "runtime.votequorum.this").unwrap_or(want.len());
        want.insert(at, k("this_node_id", "u32", 1));
        if !want.iter().any(|l| l.contains("two_node")) {
            let at = want.iter().position(|l| l.contains("wait_for_all")).unwrap_or(want.len());
            want.insert(at, k("two_node", "u8", 0));
        }
        assert_eq!(keys(&e), want, "row {i}");
    }
}

#[test]
fn configuration_errors_corosync_refuses() {
    let lms_atb = QuorumConfig { auto_tie_breaker: true, last_man_standing: true, ..QuorumConfig::default() };
    let nodes = [(1, 1), (2, 1), (3, 1)];
    assert_eq!(Engine::configure(lms_atb, &nodes, &mut |_| {}).err(), Some(ConfigError::AtbLmsOddNodes));
    let none = QuorumConfig { expected_votes: 0, ..QuorumConfig::default() };
    assert_eq!(Engine::configure(none, &[], &mut |_| {}).err(), Some(ConfigError::NoExpectedVotes));
    // corosync 3.1.7 starts these (`Expected votes: 0`, then 1, ev_barrier 0 for both):
    // every node with 0 votes, and votes whose `uint32_t` sum wraps to 0 (the local node's
    // own vote then raises the expected votes to 1).
    for (votes, expected) in [([(1, 0), (2, 0)], 0), ([(1, 1), (2, u32::MAX)], 1)] {
        let e = Engine::configure(none, &votes, &mut |_| {}).unwrap();
        assert_eq!(e.expected_votes(), expected, "{votes:?}");
    }
    let bad =
        QuorumConfig { auto_tie_breaker: true, auto_tie_breaker_node: TieBreaker::parse("x"), ..lms_atb };
    let mut notes = Vec::new();
    Engine::configure(QuorumConfig { last_man_standing: false, ..bad }, &nodes, &mut |n| notes.push(n))
        .unwrap();
    assert_eq!(notes, [ConfigNote::AtbNodeInvalid]);
    assert!(ConfigNote::AtbDroppedOddNodes
        .to_string()
        .starts_with("auto_tie_breaker is set and the cluster"));
}

#[test]
fn tie_breaker_parsing() {
    assert_eq!(TieBreaker::parse("lowest"), Some(TieBreaker::Lowest));
    assert_eq!(TieBreaker::parse("highest"), Some(TieBreaker::Highest));
    let Some(TieBreaker::List { ids, len }) = TieBreaker::parse("3 4 0 5") else { panic!() };
    assert_eq!(&ids[..len], [3, 4]);
    assert_eq!(TieBreaker::parse("0"), None);
    assert_eq!(TieBreaker::parse(""), None);
}

#[test]
fn node_losses_keep_quorum_until_votes_fall_below_it() {
    let mut e = cluster_up(3, QuorumConfig::default());
    track(&mut e, ConnId(1));
    assert_eq!(status(&mut e), (true, 3, 3, 2, "Quorate".into()));
    e.set_membership(&[1, 2], ring(8), T0).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.8 [1, 2]", "quorum true"]);
    assert_eq!(status(&mut e), (true, 3, 2, 2, "Quorate".into()));
    e.set_membership(&[1], ring(12), T0).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.c [1]", "quorum false"]);
    assert_eq!(status(&mut e), (false, 3, 1, 2, "".into()));
    assert_eq!(e.member_ids().as_slice(), [1]);
    // Back to three: quorate again.
    e.set_membership(&[1, 2, 3], ring(16), T0).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.10 [1, 2, 3]", "quorum true"]);
    assert_eq!(status(&mut e), (true, 3, 3, 2, "Quorate".into()));
}

#[test]
fn two_node_keeps_quorum_with_one_node_after_seeing_both() {
    let (mut e, _) = cluster(2, QuorumConfig { two_node: true, ..QuorumConfig::default() });
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert!(!status(&mut e).0, "wait_for_all holds the cold start");
    e.set_membership(&[1, 2], ring(8), T0).unwrap();
    assert_eq!(status(&mut e), (true, 2, 2, 1, "2Node Quorate WaitForAll".into()));
    e.set_membership(&[1], ring(12), T0).unwrap();
    assert_eq!(status(&mut e), (true, 2, 1, 1, "2Node Quorate WaitForAll".into()));
}

#[test]
fn wait_for_all_cold_start_and_cancel() {
    let (mut e, _) = cluster(3, QuorumConfig { wait_for_all: Some(true), ..QuorumConfig::default() });
    track(&mut e, ConnId(1));
    e.set_membership(&[1, 2], ring(8), T0).unwrap();
    assert_eq!(status(&mut e), (false, 3, 2, 2, "WaitForAll".into()));
    assert!(keys(&e).contains(&k("wait_for_all_status", "u8", 1)));
    drain(&mut e);
    e.cancel_wait_for_all().unwrap();
    assert_eq!(drain(&mut e), ["quorum true"]);
    assert_eq!(status(&mut e), (true, 3, 2, 2, "Quorate WaitForAll".into()));
    assert!(keys(&e).contains(&k("wait_for_all_status", "u8", 0)));
}

#[test]
fn auto_tie_breaker_lowest_decides_an_even_split() {
    let cfg = QuorumConfig { auto_tie_breaker: true, ..QuorumConfig::default() };
    // Node 1 (the lowest id) keeps quorum in a 2|2 split.
    let mut e = cluster_up(4, cfg);
    e.set_membership(&[1, 2], ring(8), T0).unwrap();
    assert_eq!(status(&mut e), (true, 4, 2, 3, "Quorate AutoTieBreaker".into()));
    // Seen from node 3, the other half loses it.
    let nodes: Vec<(u32, u32)> = (1..=4).map(|id| (id, 1)).collect();
    let cfg3 = QuorumConfig { nodeid: 3, expected_votes: 0, ..cfg };
    let mut e3 = Engine::configure(cfg3, &nodes, &mut |_| {}).unwrap();
    e3.set_membership(&[1, 2, 3, 4], RingId { nodeid: 1, seq: 6 }, T0).unwrap();
    e3.set_membership(&[3, 4], RingId { nodeid: 3, seq: 8 }, T0).unwrap();
    assert_eq!(status(&mut e3), (false, 4, 2, 3, "AutoTieBreaker".into()));
}

#[test]
fn auto_tie_breaker_list_prefers_the_first_node_listed() {
    let cfg = QuorumConfig {
        auto_tie_breaker: true,
        auto_tie_breaker_node: TieBreaker::parse("3 1"),
        ..QuorumConfig::default()
    };
    let mut e = cluster_up(4, cfg);
    e.set_membership(&[1, 2], ring(8), T0).unwrap();
    assert!(!e.is_quorate(), "node 3 was in the previous partition and is not here");
    let mut e = cluster_up(4, cfg);
    e.set_membership(&[1, 3], ring(8), T0).unwrap();
    assert!(e.is_quorate());
}

#[test]
fn last_man_standing_lowers_expected_votes_after_its_window() {
    let cfg =
        QuorumConfig { last_man_standing: true, last_man_standing_window: 2000, ..QuorumConfig::default() };
    let mut e = cluster_up(5, cfg);
    track(&mut e, ConnId(1));
    assert_eq!(e.poll_timeout(), None);
    e.set_membership(&[1, 2, 3, 4], ring(8), T0).unwrap();
    let deadline = Instant::from_millis(3000);
    assert_eq!(e.poll_timeout(), Some(deadline));
    drain(&mut e);
    e.handle_timeout(Instant::from_millis(2999)).unwrap();
    assert_eq!((e.expected_votes(), e.quorum()), (5, 3), "not due yet");
    e.handle_timeout(deadline).unwrap();
    assert_eq!(e.poll_timeout(), None);
    assert_eq!((e.expected_votes(), e.quorum()), (4, 3));
    assert_eq!(drain(&mut e), Vec::<String>::new(), "quorate all along; expected votes only lowered");
    // Shrinking further, one window at a time, down to two nodes.
    e.set_membership(&[1, 2, 3], ring(12), deadline).unwrap();
    e.handle_timeout(Instant::from_millis(5000)).unwrap();
    assert_eq!(status(&mut e), (true, 3, 3, 2, "Quorate LastManStanding".into()));
    e.set_membership(&[1, 2], ring(16), Instant::from_millis(5000)).unwrap();
    e.handle_timeout(Instant::from_millis(7000)).unwrap();
    assert_eq!(status(&mut e), (true, 2, 2, 2, "Quorate LastManStanding".into()));
    // Without the window, losing one more of two blocks.
    e.set_membership(&[1], ring(20), Instant::from_millis(7000)).unwrap();
    assert!(!status(&mut e).0);
}

#[test]
fn run_time_expected_votes_block_a_one_node_cluster() {
    let (mut e, _) = cluster(1, QuorumConfig::default());
    track(&mut e, ConnId(1));
    let nodes = [(1, 1)];
    e.reconfigure(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() }, &nodes, &mut |_| {})
        .unwrap();
    assert_eq!(drain(&mut e), ["quorum false", "expected 3"]);
    assert_eq!(status(&mut e), (false, 3, 1, 2, "".into()));
    assert!(keys(&e).contains(&k("ev_barrier", "u32", 3)));
    // Unset again: the nodelist's expected votes, quorum allowed to decrease.
    e.reconfigure(QuorumConfig { expected_votes: 0, ..QuorumConfig::default() }, &nodes, &mut |_| {})
        .unwrap();
    assert_eq!(drain(&mut e), ["expected 1", "quorum true"]);
    assert_eq!(status(&mut e), (true, 1, 1, 1, "Quorate".into()));
}

#[test]
fn run_time_two_node_shows_wait_for_all_without_waiting() {
    let (mut e, _) = cluster(2, QuorumConfig::default());
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert_eq!(status(&mut e), (false, 2, 1, 2, "".into()));
    let nodes = [(1, 1), (2, 1)];
    let cfg = QuorumConfig { two_node: true, expected_votes: 0, ..QuorumConfig::default() };
    e.reconfigure(cfg, &nodes, &mut |_| {}).unwrap();
    // A wait_for_all not configured follows two_node (votequorum_readconfig), but only at
    // start does it make the node wait: quorate at once, with the WaitForAll flag, as the real
    // daemon shows (cli/tests/rules.rs).
    assert_eq!(status(&mut e), (true, 2, 1, 1, "2Node Quorate WaitForAll".into()));
    // Off again: the flag goes with two_node.
    e.reconfigure(QuorumConfig::default(), &nodes, &mut |_| {}).unwrap();
    assert!(!status(&mut e).4.contains("WaitForAll"));
}

/// A configured quorum device with `votes` (`None`: not set) and a 2000 ms poll timeout.
fn device(votes: Option<u32>) -> Option<DeviceConfig> {
    Some(DeviceConfig { votes, timeout: 2000, ..DeviceConfig::default() })
}

/// One quorum-device request from `conn`, its result.
fn qdevice(e: &mut Engine, conn: ConnId, req: Request<'_>) -> Result<(), CsError> {
    let (mut buf, mut out) = ([0u8; 400], [0u8; 320]);
    let n = req.encode(&mut buf).unwrap();
    let m = e.handle_request(conn, &buf[..n], &mut out).unwrap();
    Reply::decode(&out[..m]).unwrap().result
}

fn qd_name(n: &str) -> corowire::votequorum::QdeviceName<'_> {
    corowire::votequorum::QdeviceName::new(n.as_bytes()).unwrap()
}

#[test]
fn a_configured_device_counts_in_expected_votes() {
    // Votes not set, three one-vote nodes: the device has 2, expected 5 (as corosync 3.1.7
    // shows on node 1 alone: Expected votes 5, Total votes 1, Quorum 3).
    let (mut e, notes) = cluster(3, QuorumConfig { device: device(None), ..QuorumConfig::default() });
    assert!(notes.is_empty());
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert_eq!(status(&mut e), (false, 5, 1, 3, "".into()));
    assert_eq!(e.votes(0), Some(2));
    assert!(keys(&e).contains(&k("qdevice_can_operate", "u8", 1)));
    // Votes set: the nodelist's expected votes; the device's are added by the first
    // recalculation only when the total passes them.
    let (mut e, _) = cluster(3, QuorumConfig { device: device(Some(1)), ..QuorumConfig::default() });
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert_eq!(status(&mut e), (false, 3, 1, 2, "".into()));
    // No device: no key.
    let (e, _) = cluster(3, QuorumConfig::default());
    assert!(!keys(&e).iter().any(|k| k.contains("qdevice")));
}

#[test]
fn device_votes_4294967295_are_not_set() {
    // corosync 3.1.7, two nodes, node 1 up alone, `quorum.device.votes: 4294967295` (its
    // "not set"): device votes computed 1, Expected votes 3; registered and polling, Total
    // votes 2, Quorate.
    let (mut e, _) = cluster(2, QuorumConfig { device: device(Some(u32::MAX)), ..QuorumConfig::default() });
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert_eq!((status(&mut e), e.votes(0)), ((false, 3, 1, 2, "".into()), Some(1)));
    assert!(keys(&e).contains(&k("ev_barrier", "u32", 3)));
    let c = ConnId(2);
    e.connect(c).unwrap();
    assert_eq!(qdevice(&mut e, c, Request::QdeviceRegister { name: qd_name("qd") }), Ok(()));
    let poll = Request::QdevicePoll { name: qd_name("qd"), cast_vote: true, ring_id: ring(5) };
    assert_eq!(qdevice(&mut e, c, poll), Ok(()));
    assert_eq!(status(&mut e), (true, 3, 2, 2, "Quorate Qdevice QdeviceAlive QdeviceCastVote".into()));
}

#[test]
fn device_configurations_corosync_refuses() {
    let nodes = [(1, 1), (2, 1), (3, 1), (4, 1)];
    let dev = QuorumConfig { expected_votes: 0, device: device(None), ..QuorumConfig::default() };
    let refused = |cfg: QuorumConfig, nodes: &[(u32, u32)]| Engine::configure(cfg, nodes, &mut |_| {}).err();
    let cases = [
        (QuorumConfig { two_node: true, ..dev }, ConfigError::TwoNodeWithDevice),
        (QuorumConfig { last_man_standing: true, ..dev }, ConfigError::DeviceWithLastManStanding),
        (QuorumConfig { auto_tie_breaker: true, ..dev }, ConfigError::DeviceWithAutoTieBreaker),
        (QuorumConfig { allow_downscale: true, ..dev }, ConfigError::DeviceWithAllowDownscale),
        (QuorumConfig { expected_votes: 4, ..dev }, ConfigError::DeviceVotesWithExpectedVotes),
        (QuorumConfig { expected_votes: 4, device: device(Some(3)), ..dev }, ConfigError::DeviceVotesTooHigh),
    ];
    for (cfg, error) in cases {
        assert_eq!(refused(cfg, &nodes), Some(error), "{cfg:?}");
    }
    assert_eq!(refused(dev, &[(1, 2), (2, 1)]), Some(ConfigError::DeviceVotesUnevenNodes));
    assert_eq!(refused(QuorumConfig { expected_votes: 5, device: device(Some(3)), ..dev }, &nodes), None);
    // At run time: the device is disabled instead, with corosync's lines.
    let (mut e, _) = cluster(4, dev);
    let mut notes = Vec::new();
    e.reconfigure(QuorumConfig { expected_votes: 4, ..dev }, &nodes, &mut |n| notes.push(n)).unwrap();
    assert_eq!(notes, [ConfigNote::DeviceDisabled(ConfigError::DeviceVotesWithExpectedVotes)]);
    assert_eq!(
        notes[0].lines().collect::<Vec<_>>(),
        [
            "configuration error: quorum.device.votes must be specified when quorum.expected_votes is set",
            "disabling quorum device operations"
        ]
    );
    assert!(keys(&e).contains(&k("qdevice_can_operate", "u8", 0)));
    e.connect(ConnId(1)).unwrap();
    assert_eq!(
        qdevice(&mut e, ConnId(1), Request::QdeviceRegister { name: qd_name("qd") }),
        Err(CsError::Access)
    );
}

#[test]
fn a_device_that_stops_polling_loses_its_vote() {
    let (mut e, _) = cluster(3, QuorumConfig { device: device(None), ..QuorumConfig::default() });
    e.set_membership(&[1], ring(5), T0).unwrap();
    track(&mut e, ConnId(1));
    let c = ConnId(2);
    e.connect(c).unwrap();
    assert_eq!(qdevice(&mut e, c, Request::QdeviceRegister { name: qd_name("qd") }), Ok(()));
    e.set_clock(T0);
    let poll = |cast_vote| Request::QdevicePoll { name: qd_name("qd"), cast_vote, ring_id: ring(5) };
    assert_eq!(qdevice(&mut e, c, poll(true)), Ok(()));
    assert_eq!(status(&mut e), (true, 5, 3, 3, "Quorate Qdevice QdeviceAlive QdeviceCastVote".into()));
    assert_eq!(e.poll_timeout(), Some(T0.saturating_add(corowire::time::Duration::from_millis(2000))));
    // master_wins: its key, and quorate with the device's vote even when votes fall short.
    let mw = Request::QdeviceMasterWins { name: qd_name("qd"), allow: true };
    assert_eq!(qdevice(&mut e, c, mw), Ok(()));
    assert!(keys(&e).contains(&k("qdevice_master_wins", "u8", 1)));
    drain(&mut e);
    // Not yet due; then due: no longer alive, its vote withdrawn, quorum lost.
    e.handle_timeout(Instant::from_millis(2999)).unwrap();
    assert!(e.is_quorate());
    e.handle_timeout(Instant::from_millis(3000)).unwrap();
    assert_eq!(drain(&mut e), ["quorum false"]);
    assert_eq!(status(&mut e), (false, 5, 1, 3, "Qdevice QdeviceMasterWins".into()));
    assert_eq!(e.poll_timeout(), None);
    // Polling again brings it back; unregistering stops the timer.
    assert_eq!(qdevice(&mut e, c, poll(true)), Ok(()));
    assert!(e.is_quorate());
    assert_eq!(qdevice(&mut e, c, Request::QdeviceUnregister { name: qd_name("qd") }), Ok(()));
    assert_eq!((e.poll_timeout(), e.is_quorate()), (None, false));
}

#[test]
fn a_membership_change_waits_for_the_device_to_poll_with_the_new_ring() {
    // corosync 3.1.7, three nodes, `quorum.device.votes: 2`, a device registered on node 1
    // that polls once (tests/cluster/fake-qdevice): node 3 is killed; the sync waits 30 s
    // (quorum.device.sync_timeout) for a poll, then "lost contact with quorum device", and
    // `corosync-quorumtool -s` (held until then) shows Total votes 2, Quorum 3, Activity
    // blocked; a poll with the new ring id brings Total votes 4, Quorate.
    let mut e = cluster_up(3, QuorumConfig { device: device(Some(2)), ..QuorumConfig::default() });
    track(&mut e, ConnId(1));
    let c = ConnId(2);
    e.connect(c).unwrap();
    let poll = |seq| Request::QdevicePoll { name: qd_name("qd"), cast_vote: true, ring_id: ring(seq) };
    assert_eq!(qdevice(&mut e, c, Request::QdeviceRegister { name: qd_name("qd") }), Ok(()));
    e.set_clock(T0);
    assert_eq!(qdevice(&mut e, c, poll(6)), Ok(()));
    assert_eq!(status(&mut e), (true, 5, 5, 3, "Quorate Qdevice QdeviceAlive QdeviceCastVote".into()));
    drain(&mut e);
    assert!(!e.sync_waiting());
    // Each sync's end counts once (libquorum's notification; none while it waits).
    let synced = e.completed_syncs();
    let syncs = |e: &Engine| e.completed_syncs().wrapping_sub(synced);
    // Node 3 lost: the new ring's node list at once, its QUORUM notification held back.
    e.set_membership(&[1, 2], ring(7), T0).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.7 [1, 2]"]);
    assert!(e.sync_waiting());
    assert_eq!(syncs(&e), 0);
    assert_eq!(e.poll_timeout(), Some(T0.saturating_add(corowire::time::Duration::from_millis(30_000))));
    // A poll with the old ring id does not end the wait.
    assert_eq!(qdevice(&mut e, c, poll(6)), Err(CsError::MessageError));
    e.handle_timeout(Instant::from_millis(30_999)).unwrap();
    assert!(e.sync_waiting());
    e.handle_timeout(Instant::from_millis(31_000)).unwrap();
    assert_eq!((drain(&mut e), e.sync_waiting()), (vec!["quorum false".to_owned()], false));
    assert_eq!(syncs(&e), 1);
    assert_eq!(status(&mut e), (false, 5, 2, 3, "Qdevice".into()));
    assert_eq!(qdevice(&mut e, c, poll(7)), Ok(()));
    assert_eq!(drain(&mut e), ["quorum true"]);
    assert_eq!(syncs(&e), 1, "a poll outside a sync ends none");
    assert_eq!(status(&mut e), (true, 5, 4, 3, "Quorate Qdevice QdeviceAlive QdeviceCastVote".into()));
    // Node 3 back, the device polls in time: one QUORUM notification when it does.
    e.set_membership(&[1, 2, 3], ring(8), Instant::from_millis(32_000)).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.8 [1, 2, 3]"]);
    assert_eq!(syncs(&e), 1);
    assert_eq!(qdevice(&mut e, c, poll(8)), Ok(()));
    assert_eq!((drain(&mut e), e.sync_waiting()), (vec!["quorum true".to_owned()], false));
    assert_eq!(syncs(&e), 2);
    // Unregistering ends a wait too.
    e.set_membership(&[1, 2], ring(9), Instant::from_millis(33_000)).unwrap();
    drain(&mut e);
    assert_eq!(syncs(&e), 2);
    assert_eq!(qdevice(&mut e, c, Request::QdeviceUnregister { name: qd_name("qd") }), Ok(()));
    assert_eq!((drain(&mut e), e.sync_waiting()), (vec!["quorum false".to_owned()], false));
    assert_eq!(syncs(&e), 3);
    // Without a device to wait for, a sync ends at once.
    e.set_membership(&[1, 2, 3], ring(10), Instant::from_millis(34_000)).unwrap();
    assert_eq!(syncs(&e), 4);
}

#[test]
fn the_simulated_device_votes_and_leaves_a_client_device_alone() {
    use corowire::server::votequorum::{SimDeviceError, SIM_QDEVICE_NAME};
    let (mut e, _) = cluster(3, QuorumConfig { device: device(None), ..QuorumConfig::default() });
    e.set_membership(&[1], ring(5), T0).unwrap();
    assert_eq!(e.simulate_qdevice(false).unwrap(), Err(SimDeviceError::NotRegistered));
    track(&mut e, ConnId(1));
    // On: registered under vqsim's name, casting its vote; it keeps polling (no timer), also
    // across a membership change.
    assert_eq!(e.simulate_qdevice(true).unwrap(), Ok(()));
    assert_eq!(drain(&mut e), ["quorum true"]);
    assert_eq!((e.qdevice_name(), e.simulated_qdevice()), (Some(SIM_QDEVICE_NAME.as_bytes()), true));
    e.set_membership(&[1], ring(9), T0).unwrap();
    assert_eq!((e.poll_timeout(), e.is_quorate()), (None, true));
    // Off: one poll without a vote, then silence: dead after the timeout, still registered.
    e.set_clock(T0);
    assert_eq!(e.simulate_qdevice(false).unwrap(), Ok(()));
    assert_eq!(status(&mut e), (false, 5, 1, 3, "Qdevice QdeviceAlive".into()));
    e.handle_timeout(Instant::from_millis(3000)).unwrap();
    assert_eq!(status(&mut e), (false, 5, 1, 3, "Qdevice".into()));
    // A client's device under another name is not overridden.
    let c = ConnId(2);
    e.connect(c).unwrap();
    assert_eq!(qdevice(&mut e, c, Request::QdeviceUnregister { name: qd_name(SIM_QDEVICE_NAME) }), Ok(()));
    assert_eq!(qdevice(&mut e, c, Request::QdeviceRegister { name: qd_name("mine") }), Ok(()));
    assert_eq!(e.simulate_qdevice(true).unwrap(), Err(SimDeviceError::ClientDevice));
    assert_eq!(e.qdevice_name(), Some(&b"mine"[..]));
}

#[test]
fn other_nodes_devices_show_in_their_flags_only() {
    let mut e = cluster_up(3, QuorumConfig { device: device(None), ..QuorumConfig::default() });
    let flags = |e: &mut Engine, nodeid| {
        let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
        let n = Request::GetInfo { nodeid }.encode(&mut req).unwrap();
        e.connect(ConnId(5)).unwrap();
        let m = e.handle_request(ConnId(5), &req[..n], &mut out).unwrap();
        e.disconnect(ConnId(5));
        let Response::GetInfo(info) = Reply::decode(&out[..m]).unwrap().body else { panic!("not GETINFO") };
        info.flags.words().collect::<Vec<_>>().join(" ")
    };
    // Off for a node that never had one: none.
    assert!(e.set_remote_qdevice(3, false));
    assert_eq!(flags(&mut e, 3), "Quorate");
    assert!(e.set_remote_qdevice(2, true));
    assert_eq!(flags(&mut e, 2), "Quorate Qdevice QdeviceAlive QdeviceCastVote");
    // Not the local node's quorum, nor its flags.
    assert_eq!(status(&mut e), (true, 5, 3, 3, "Quorate".into()));
    // Off: registered and alive, without its vote.
    assert!(e.set_remote_qdevice(2, false));
    assert_eq!(flags(&mut e, 2), "Quorate Qdevice QdeviceAlive");
}

/// Other nodes' own state (NODEINFO messages), as `tests/cluster/expected/lms-heal.txt`
/// recorded it on node 2 of the real cluster: the side that shrank with last_man_standing
/// and the side that did not heal into one partition.
#[test]
fn node_messages_carry_each_nodes_own_expected_votes() {
    let cfg = QuorumConfig {
        nodeid: 2,
        last_man_standing: true,
        last_man_standing_window: 2000,
        ..QuorumConfig::default()
    };
    let message = |nodeid, expected_votes, quorate| NodeMessage {
        nodeid,
        votes: 1,
        expected_votes,
        quorate,
        wait_for_all_status: false,
        leaving: false,
    };
    let mut e = cluster_up(3, cfg);
    track(&mut e, ConnId(1));
    // Node 2 in the majority: its expected votes shrink to 2 after the window.
    e.set_membership(&[2, 3], ring(0xd), T0).unwrap();
    e.handle_timeout(Instant::from_millis(3000)).unwrap();
    assert_eq!(status(&mut e), (true, 2, 2, 2, "Quorate LastManStanding".into()));
    drain(&mut e);
    // Node 1 comes back, not quorate and still expecting 3: it counts with node 2's expected
    // votes, which then rise to 3; node 2's own message (sent with 2) lowers them, and they
    // rise again: two notifications, as corosync sends.
    let own = e.node_message();
    assert_eq!(own, message(2, 2, true));
    let messages = [message(1, 3, false), own, message(3, 2, true)];
    e.set_membership_with(&[1, 2, 3], RingId { nodeid: 1, seq: 0x11 }, T0, &messages).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.11 [1, 2, 3]", "expected 3", "expected 3", "quorum true"]);
    // Node 2 cut off (not quorate, expecting 3) while nodes 1 and 3 shrink to 2; healing,
    // it takes the quorate side's expected votes (allowing quorum down), then counts 3.
    e.set_membership(&[2], RingId { nodeid: 2, seq: 0x15 }, T0).unwrap();
    assert!(!e.is_quorate());
    drain(&mut e);
    let messages = [message(1, 2, true), e.node_message(), message(3, 2, true)];
    e.set_membership_with(&[1, 2, 3], RingId { nodeid: 1, seq: 0x19 }, T0, &messages).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.19 [1, 2, 3]", "expected 3", "quorum true"]);
    assert_eq!(status(&mut e), (true, 3, 3, 2, "Quorate LastManStanding".into()));
    // Without the others' messages they are taken to share node 2's view: no notification of
    // expected votes (what the model did before it took them).
    e.set_membership(&[2], RingId { nodeid: 2, seq: 0x1d }, T0).unwrap();
    drain(&mut e);
    e.set_membership(&[1, 2, 3], RingId { nodeid: 1, seq: 0x21 }, T0).unwrap();
    assert_eq!(drain(&mut e), ["nodelist 1.21 [1, 2, 3]", "quorum true"]);
}

/// A SETEXPECTED request is applied by the node that got it and multicast to its partition
/// (`votequorum_exec_send_reconfigure`): the other members apply the same message.
#[test]
fn reconfigure_messages_reach_the_other_members() {
    let mut one = cluster_up(3, QuorumConfig::default());
    let mut two = cluster_up(3, QuorumConfig { nodeid: 2, ..QuorumConfig::default() });
    track(&mut two, ConnId(1));
    assert_eq!(one.poll_reconfigure(), None);
    let conn = ConnId(5);
    one.connect(conn).unwrap();
    let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
    let n = Request::SetExpected { expected_votes: 4 }.encode(&mut req).unwrap();
    let m = one.handle_request(conn, &req[..n], &mut out).unwrap();
    assert_eq!(Reply::decode(&out[..m]).unwrap().result, Ok(()));
    let sent = one.poll_reconfigure();
    assert_eq!((sent, one.poll_reconfigure()), (Some(Reconfigure::ExpectedVotes(4)), None));
    two.apply_reconfigure(sent.unwrap()).unwrap();
    assert_eq!(status(&mut two), (true, 4, 3, 3, "Quorate".into()));
    assert_eq!(drain(&mut two), ["expected 4"]);
    assert_eq!(two.poll_reconfigure(), None, "another node's message is not sent again");
}

/// One SETEXPECTED request from `conn`: the engine's error, else the reply's status.
fn set_expected(
    e: &mut Engine,
    conn: ConnId,
    expected_votes: u32,
) -> Result<Result<(), CsError>, ServerError> {
    let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
    let n = Request::SetExpected { expected_votes }.encode(&mut req).unwrap();
    let m = e.handle_request(conn, &req[..n], &mut out)?;
    Ok(Reply::decode(&out[..m]).unwrap().result)
}

/// The reconfigure messages for the other members are never dropped: a change that would
/// queue a fifth before they are taken is refused whole, and succeeds once they are.
#[test]
fn a_full_reconfigure_queue_refuses_the_change() {
    let mut e = cluster_up(3, QuorumConfig::default());
    track(&mut e, ConnId(1));
    let conn = ConnId(5);
    e.connect(conn).unwrap();
    for expected in [4, 5, 4, 5] {
        assert_eq!(set_expected(&mut e, conn, expected), Ok(Ok(())), "SETEXPECTED {expected}");
    }
    drain(&mut e);
    let before = (status(&mut e), keys(&e));
    assert_eq!(set_expected(&mut e, conn, 3), Err(ServerError::OutboxFull));
    let nodes = [(1, 1), (2, 1), (3, 1)];
    let cfg = QuorumConfig { expected_votes: 4, ..QuorumConfig::default() };
    assert_eq!(e.reconfigure(cfg, &nodes, &mut |_| {}), Err(ServerError::OutboxFull));
    assert_eq!(e.cancel_wait_for_all(), Err(ServerError::OutboxFull));
    assert_eq!((status(&mut e), keys(&e)), before, "a refused change changes nothing");
    assert!(drain(&mut e).is_empty(), "nor notifies");
    let sent: Vec<_> = core::iter::from_fn(|| e.poll_reconfigure()).collect();
    assert_eq!(sent, [4, 5, 4, 5].map(Reconfigure::ExpectedVotes));
    assert_eq!(set_expected(&mut e, conn, 3), Ok(Ok(())));
    assert_eq!(status(&mut e).1, 3);
    assert_eq!((e.poll_reconfigure(), e.poll_reconfigure()), (Some(Reconfigure::ExpectedVotes(3)), None));
}

/// In a one-node partition the multicast reaches only the sender, which applied the change
/// already: nothing waits to be taken, however many changes are made.
#[test]
fn a_one_node_partition_queues_no_reconfigure_message() {
    let (mut e, _) = cluster(3, QuorumConfig::default());
    e.set_membership(&[1], ring(5), T0).unwrap();
    let conn = ConnId(5);
    e.connect(conn).unwrap();
    for i in 0..100 {
        if i % 2 == 0 {
            assert_eq!(set_expected(&mut e, conn, 3 + i), Ok(Ok(())), "change {i}");
        } else {
            e.cancel_wait_for_all().unwrap();
        }
    }
    assert_eq!(status(&mut e).1, 101);
    assert_eq!(e.poll_reconfigure(), None);
}

#[test]
fn run_time_expected_votes_wrap_as_corosyncs_c_arithmetic() {
    // What corosync 3.1.7 shows on one node after `corosync-cmapctl -s quorum.expected_votes u32
    // V`, in sequence (cli/tests/rules.rs compares the same steps with the real daemon): the
    // sum `expected + 2` wraps at 2^32 and the quorum is kept in 8 bits.
    let (mut e, _) = cluster(1, QuorumConfig::default());
    let nodes = [(1, 1)];
    for (expected, quorum, quorate) in [
        (1000, 245, false),
        (1_000_000_000, 1, true),
        (2_147_483_647, 0, true),
        (2_147_483_648, 1, true),
        (4_294_967_293, 255, false),
        (4_294_967_295, 1, true),
        (5, 3, false),
    ] {
        let cfg = QuorumConfig { expected_votes: expected, ..QuorumConfig::default() };
        e.reconfigure(cfg, &nodes, &mut |_| {}).unwrap();
        let (is_quorate, shown, total, q, _) = status(&mut e);
        assert_eq!(
            (is_quorate, shown, total, q),
            (quorate, expected, 1, quorum),
            "expected_votes {expected}"
        );
    }
}

/// allow_downscale, 4 nodes, as corosync 3.1.7 showed on node 1 of a real cluster
/// (`tests/cluster/expected/allow-downscale.txt`): node 4 stopped cleanly (its LEAVING
/// message) lowers the expected votes to 3; node 3 crashing after that leaves them at 3.
#[test]
fn a_clean_leave_with_allow_downscale_lowers_the_expected_votes() {
    let cfg = QuorumConfig { allow_downscale: true, ..QuorumConfig::default() };
    let mut e = cluster_up(4, cfg);
    track(&mut e, ConnId(1));
    assert_eq!(status(&mut e), (true, 4, 4, 3, "Quorate AllowDownscale".into()));
    let node4 = cluster_up(4, QuorumConfig { nodeid: 4, ..cfg });
    let message = node4.leave_message().expect("allow_downscale sends a leave message");
    assert!(message.leaving && message.nodeid == 4);
    e.node_leaving(&message).unwrap();
    // Still quorate: no notification; node 4 is LEAVING until the ring re-forms.
    assert_eq!(drain(&mut e), Vec::<String>::new());
    assert_eq!(status(&mut e), (true, 3, 3, 3, "Quorate AllowDownscale".into()));
    let (mut req, mut out) = ([0u8; 64], [0u8; 320]);
    e.connect(ConnId(2)).unwrap();
    let n = Request::GetInfo { nodeid: 4 }.encode(&mut req).unwrap();
    let m = e.handle_request(ConnId(2), &req[..n], &mut out).unwrap();
    let Response::GetInfo(info) = Reply::decode(&out[..m]).unwrap().body else { panic!("not GETINFO") };
    assert_eq!(info.state, corowire::votequorum::NodeState::LEAVING);
    e.disconnect(ConnId(2));
    e.set_membership(&[1, 2, 3], ring(0xd), T0).unwrap();
    assert_eq!(status(&mut e), (true, 3, 3, 3, "Quorate AllowDownscale".into()));
    // A crash sends nothing: the expected votes stay, quorum is lost.
    e.set_membership(&[1, 2], ring(0x11), T0).unwrap();
    assert_eq!(status(&mut e), (false, 3, 2, 3, "AllowDownscale".into()));
    // Without allow_downscale a clean stop sends nothing either.
    assert_eq!(cluster_up(4, QuorumConfig { nodeid: 4, ..QuorumConfig::default() }).leave_message(), None);
}

#[test]
fn the_simulated_device_ends_a_sync_wait_as_its_poll() {
    use corowire::server::votequorum::SIM_QDEVICE_NAME;
    // A client's device registered under vqsim's name holds node 3's loss; `sim qdevice on`
    // takes it over and polls with the new ring at once, which ends the wait (it had no
    // timer left to end it otherwise).
    let mut e = cluster_up(3, QuorumConfig { device: device(Some(2)), ..QuorumConfig::default() });
    let c = ConnId(2);
    e.connect(c).unwrap();
    let name = qd_name(SIM_QDEVICE_NAME);
    assert_eq!(qdevice(&mut e, c, Request::QdeviceRegister { name }), Ok(()));
    e.set_clock(T0);
    let poll = Request::QdevicePoll { name: qd_name(SIM_QDEVICE_NAME), cast_vote: true, ring_id: ring(6) };
    assert_eq!(qdevice(&mut e, c, poll), Ok(()));
    let synced = e.completed_syncs();
    e.set_membership(&[1, 2], ring(7), T0).unwrap();
    assert!(e.sync_waiting());
    assert_eq!(e.simulate_qdevice(true).unwrap(), Ok(()));
    assert_eq!((e.sync_waiting(), e.completed_syncs().wrapping_sub(synced)), (false, 1));
    assert_eq!(status(&mut e), (true, 5, 4, 3, "Quorate Qdevice QdeviceAlive QdeviceCastVote".into()));
}
