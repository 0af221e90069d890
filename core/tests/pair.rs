//! End-to-end protocol tests: client connections against the server engines through the
//! in-memory pair (`corowire::testing`), with a fake clock. No OS, no root, no daemon. Each
//! test asserts what a C client would see: statuses, values, events and their contexts.

use corowire::cmap::{Key, Request, Response, TrackEvent, TrackType, Value, ValueType};
use corowire::conn::{Cmap, CmapEvent, FailureReason, Polled, State, SubmitError, Votequorum};
use corowire::server::cmap::CmapEngine;
use corowire::server::store::BTreeStore;
use corowire::server::votequorum::{QuorumConfig, QuorumEngine};
use corowire::server::ConnId;
use corowire::testing::{CallError, ClientId, Pair};
use corowire::votequorum::{self as vq, NodeState, TrackFlags};
use corowire::{CsError, Duration};

type Error = Box<dyn core::error::Error>;
type CmapPair = Pair<CmapEngine<BTreeStore>, Cmap<4>, 4, 8, 8192>;

fn cmap_pair() -> CmapPair {
    let mut engine = CmapEngine::new(BTreeStore::new(), BTreeStore::new(), 7);
    engine.set_initial(b"totem.cluster_name", Value::String(b"pair")).unwrap();
    Pair::new(engine)
}

fn key(name: &'static [u8]) -> Key<'static> {
    Key::new(name).unwrap()
}

fn set(pair: &mut CmapPair, c: ClientId, name: &'static [u8], value: Value<'_>) -> Result<(), CsError> {
    pair.call(c, &Request::Set { key: key(name), value }).unwrap().status()
}

/// The value a GET with a 64-byte buffer returns, as (type, bytes).
fn get(pair: &mut CmapPair, c: ClientId, name: &'static [u8]) -> Result<(ValueType, Vec<u8>), CsError> {
    let done = pair.call(c, &Request::Get { key: key(name), value_len: 64 }).unwrap();
    match done.response()? {
        Response::Get(g) => Ok((g.value_type.unwrap(), g.value.to_vec())),
        other => panic!("GET answered with {other:?}"),
    }
}

/// Adds a track on `c` and drives it to its reply; returns the server's track handle.
fn track_add(pair: &mut CmapPair, c: ClientId, name: Option<&'static [u8]>, tt: TrackType, ctx: u64) -> u64 {
    let key = name.map(key);
    let t = pair.submit_with(c, |conn, now, out| conn.track_add(key, tt, ctx, now, None, out)).unwrap();
    pair.drive().unwrap();
    let done = pair.take_done(c, t).unwrap();
    let Ok(Response::TrackAdd { track_handle }) = done.response() else { panic!("{done:?}") };
    track_handle
}

/// Deletes a track of `c` and drives it to its reply; returns the reply's status.
fn track_delete(pair: &mut CmapPair, c: ClientId, handle: u64) -> Result<(), CsError> {
    let t = pair.submit_with(c, |conn, now, out| conn.track_delete(handle, now, None, out)).unwrap();
    pair.drive().unwrap();
    pair.take_done(c, t).unwrap().status()
}

/// A routed CMAP event: context, event, key, and "old -> new" value.
type Seen = (u64, TrackEvent, Vec<u8>, String);

/// Every event queued on `c`, routed: `Some(event)` or `None` for a skipped one.
fn events(pair: &mut CmapPair, c: ClientId) -> Vec<Option<Seen>> {
    let mut scratch = vec![0u8; 8192];
    let mut out = Vec::new();
    while let Some(polled) = pair.conn_mut(c).poll_event(&mut scratch) {
        out.push(match polled.unwrap() {
            Polled::Event(CmapEvent { context, notification: n, .. }) => Some((
                context,
                n.event,
                n.key.as_bytes().to_vec(),
                format!("{:?} -> {:?}", n.old_value, n.new_value),
            )),
            Polled::Skipped => None,
            Polled::Invalid(e) => panic!("invalid event: {e}"),
            Polled::Unknown { id } => panic!("poll_event skips unknown ids, yet gave {id}"),
        });
    }
    out
}

#[test]
fn set_get_delete_and_inc() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let c = pair.connect()?;
    assert_eq!(set(&mut pair, c, b"test.counter", Value::UInt32(41)), Ok(()));
    assert_eq!(get(&mut pair, c, b"test.counter"), Ok((ValueType::UInt32, 41u32.to_ne_bytes().to_vec())));

    let inc = pair.call(c, &Request::AdjustInt { key: key(b"test.counter"), step: 1 })?;
    assert_eq!(inc.response(), Ok(Response::AdjustInt));
    assert_eq!(get(&mut pair, c, b"test.counter"), Ok((ValueType::UInt32, 42u32.to_ne_bytes().to_vec())));

    // A string comes back with its NUL; a read-only key refuses writes; a bad name is refused.
    assert_eq!(set(&mut pair, c, b"test.name", Value::String(b"node1")), Ok(()));
    assert_eq!(get(&mut pair, c, b"test.name"), Ok((ValueType::String, b"node1\0".to_vec())));
    assert_eq!(get(&mut pair, c, b"totem.cluster_name"), Ok((ValueType::String, b"pair\0".to_vec())));
    assert_eq!(set(&mut pair, c, b"totem.cluster_name", Value::String(b"x")), Err(CsError::Access));
    assert_eq!(set(&mut pair, c, b"a b", Value::UInt8(1)), Err(CsError::NameTooLong));
    let inc = pair.call(c, &Request::AdjustInt { key: key(b"test.name"), step: 1 })?;
    assert_eq!(inc.status(), Err(CsError::InvalidParam));

    let del = pair.call(c, &Request::Delete { key: key(b"test.counter") })?;
    assert_eq!(del.response(), Ok(Response::Delete));
    assert_eq!(get(&mut pair, c, b"test.counter"), Err(CsError::NotExist));
    let del = pair.call(c, &Request::Delete { key: key(b"test.counter") })?;
    assert_eq!(del.status(), Err(CsError::NotExist));
    Ok(())
}

#[test]
fn iterate_with_prefix() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let c = pair.connect()?;
    for name in [&b"test.b"[..], b"test.a", b"tesu.x", b"test.c.d"] {
        pair.call(c, &Request::Set { key: Key::new(name)?, value: Value::UInt8(1) })?.status()?;
    }
    let init = pair.call(c, &Request::IterInit { prefix: Some(key(b"test.")) })?;
    let Ok(Response::IterInit { iter_handle }) = init.response() else { panic!("{init:?}") };
    let mut keys = Vec::new();
    loop {
        let next = pair.call(c, &Request::IterNext { iter_handle })?;
        match next.response() {
            Ok(Response::IterNext { key, value_len, value_type }) => {
                assert_eq!((value_len, value_type), (1, Some(ValueType::UInt8)));
                keys.push(key.as_bytes().to_vec());
            }
            Err(CsError::NoSections) => break,
            other => panic!("ITER_NEXT answered with {other:?}"),
        }
    }
    assert_eq!(keys, [&b"test.a"[..], b"test.b", b"test.c.d"]);
    // The end is sticky; finalizing frees the handle.
    let again = pair.call(c, &Request::IterNext { iter_handle })?;
    assert_eq!(again.status(), Err(CsError::NoSections));
    assert_eq!(pair.call(c, &Request::IterFinalize { iter_handle })?.status(), Ok(()));
    assert_eq!(pair.call(c, &Request::IterNext { iter_handle })?.status(), Err(CsError::BadHandle));
    Ok(())
}

#[test]
fn tracks_route_notifications_of_another_connection_to_their_contexts() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let (watcher, writer) = (pair.connect()?, pair.connect()?);
    let changes = TrackType::ADD | TrackType::MODIFY | TrackType::DELETE;
    let exact = track_add(&mut pair, watcher, Some(b"test.exact"), changes, 100);
    let prefix = track_add(&mut pair, watcher, Some(b"test."), TrackType::ALL, 200);
    assert_ne!(exact, prefix);

    assert_eq!(set(&mut pair, writer, b"test.exact", Value::UInt16(1)), Ok(()));
    assert_eq!(set(&mut pair, writer, b"test.exact", Value::UInt16(2)), Ok(()));
    assert_eq!(set(&mut pair, writer, b"test.other", Value::String(b"v")), Ok(()));
    assert_eq!(pair.call(writer, &Request::Delete { key: key(b"test.exact") })?.status(), Ok(()));
    // Setting the same value again changes nothing, so nobody hears of it.
    assert_eq!(set(&mut pair, writer, b"test.other", Value::String(b"v")), Ok(()));

    assert_eq!(events(&mut pair, writer), []);
    let ev = |ctx, event, key: &[u8], change: &str| Some((ctx, event, key.to_vec(), change.to_string()));
    assert_eq!(
        events(&mut pair, watcher),
        [
            ev(100, TrackEvent::Add, b"test.exact", "None -> Some(UInt16(1))"),
            ev(200, TrackEvent::Add, b"test.exact", "None -> Some(UInt16(1))"),
            ev(100, TrackEvent::Modify, b"test.exact", "Some(UInt16(1)) -> Some(UInt16(2))"),
            ev(200, TrackEvent::Modify, b"test.exact", "Some(UInt16(1)) -> Some(UInt16(2))"),
            ev(200, TrackEvent::Add, b"test.other", "None -> Some(String(\"v\"))"),
            ev(100, TrackEvent::Delete, b"test.exact", "Some(UInt16(2)) -> None"),
            ev(200, TrackEvent::Delete, b"test.exact", "Some(UInt16(2)) -> None"),
        ]
    );

    // The event carries the server's track handle, as libcmap's callback gets it.
    set(&mut pair, writer, b"test.exact", Value::UInt16(3))?;
    let mut scratch = [0u8; 512];
    let Some(Ok(Polled::Event(e))) = pair.conn_mut(watcher).poll_event(&mut scratch) else { panic!() };
    assert_eq!((e.track_handle, e.context), (exact, 100));

    // Deleted tracks hear nothing more.
    for handle in [exact, prefix] {
        assert_eq!(track_delete(&mut pair, watcher, handle), Ok(()));
    }
    events(&mut pair, watcher);
    set(&mut pair, writer, b"test.exact", Value::UInt16(4))?;
    assert_eq!(events(&mut pair, watcher), []);
    Ok(())
}

#[test]
fn notification_for_a_track_deleted_meanwhile_is_skipped() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let (watcher, writer) = (pair.connect()?, pair.connect()?);
    let track_handle = track_add(&mut pair, watcher, Some(b"test.k"), TrackType::ADD, 5);
    // The change's notification is queued, unread, when the watcher deletes its track.
    set(&mut pair, writer, b"test.k", Value::Int8(-1))?;
    assert_eq!(pair.conn(watcher).queued_events(), 1);
    assert_eq!(track_delete(&mut pair, watcher, track_handle), Ok(()));
    assert_eq!(events(&mut pair, watcher), [None]);
    Ok(())
}

#[test]
fn timed_out_request_discards_its_late_reply_and_the_next_request_gets_its_own() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let c = pair.connect()?;
    set(&mut pair, c, b"test.a", Value::UInt32(1))?;
    set(&mut pair, c, b"test.b", Value::UInt32(2))?;

    pair.hold_replies(c, true);
    let slow =
        pair.submit(c, &Request::Get { key: key(b"test.a"), value_len: 4 }, Some(Duration::from_secs(2)))?;
    pair.drive()?;
    assert_eq!(pair.conn(c).poll_timeout(), Some(pair.now().saturating_add(Duration::from_secs(2))));
    pair.advance(Duration::from_millis(1999));
    assert_eq!(pair.conn_mut(c).poll_failure(), None);
    pair.advance(Duration::from_millis(1));
    let failure = pair.conn_mut(c).poll_failure().unwrap();
    assert_eq!((failure.token, failure.reason.cs_error()), (slow, CsError::Timeout));

    // The next request is sent while the late reply is still on its way.
    let next = pair.submit(c, &Request::Get { key: key(b"test.b"), value_len: 4 }, None)?;
    pair.hold_replies(c, false);
    pair.drive()?;
    assert!(pair.take_done(c, slow).is_none());
    let done = pair.take_done(c, next).unwrap();
    let Ok(Response::Get(g)) = done.response() else { panic!("{done:?}") };
    assert_eq!(g.typed(), Some(Value::UInt32(2)));
    assert_eq!((pair.next_done(c).is_none(), pair.conn(c).outstanding()), (true, 0));
    Ok(())
}

#[test]
fn pipelined_requests_complete_in_order() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let c = pair.connect()?;
    pair.hold_replies(c, true);
    let reqs = [
        Request::Set { key: key(b"test.p"), value: Value::Int64(-5) },
        Request::AdjustInt { key: key(b"test.p"), step: 10 },
        Request::Get { key: key(b"test.p"), value_len: 8 },
        Request::Delete { key: key(b"test.p") },
    ];
    let tokens = reqs.iter().map(|r| pair.submit(c, r, None)).collect::<Result<Vec<_>, _>>()?;
    // The pipeline is full: the next request is refused and nothing is sent.
    assert_eq!(pair.submit(c, &reqs[2], None), Err(SubmitError::PipelineFull { capacity: 4 }));
    pair.drive()?;
    assert_eq!(pair.in_flight(c), (0, 4, 0));
    pair.hold_replies(c, false);
    pair.drive()?;
    let done: Vec<_> = core::iter::from_fn(|| pair.next_done(c)).collect();
    assert_eq!(done.iter().map(|d| d.token).collect::<Vec<_>>(), tokens);
    let Ok(Response::Get(g)) = done[2].response() else { panic!() };
    assert_eq!(g.typed(), Some(Value::Int64(5)));
    assert_eq!(done[3].status(), Ok(()));
    Ok(())
}

#[test]
fn finalize_fails_outstanding_requests_and_frees_the_server_side() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let (c, other) = (pair.connect()?, pair.connect()?);
    track_add(&mut pair, c, Some(b"test."), TrackType::ALL, 1);
    assert_eq!(pair.engine.open_tracks(ConnId(c.0 as u32)), 1);

    pair.hold_replies(c, true);
    let pending = pair.submit(c, &Request::Get { key: key(b"test.x"), value_len: 0 }, None)?;
    pair.finalize(c);
    assert_eq!(pair.conn(c).state(), State::Finalized);
    let f = pair.conn_mut(c).poll_failure().unwrap();
    assert_eq!((f.token, f.reason), (pending, FailureReason::ConnectionLost));
    assert_eq!(pair.submit(c, &Request::Delete { key: key(b"test.x") }, None), Err(SubmitError::Finalized));
    assert!(!pair.engine.is_connected(ConnId(c.0 as u32)));

    // The other connection's writes no longer produce events for the finalized one.
    set(&mut pair, other, b"test.y", Value::UInt8(1))?;
    assert_eq!(pair.in_flight(c), (0, 0, 0));
    assert_eq!(pair.conn(c).queued_events(), 0);
    Ok(())
}

#[test]
fn connection_closed_by_the_server_fails_outstanding_requests() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let c = pair.connect()?;
    pair.hold_replies(c, true);
    let a = pair.submit(c, &Request::Set { key: key(b"test.z"), value: Value::UInt8(1) }, None)?;
    let b =
        pair.submit(c, &Request::Get { key: key(b"test.z"), value_len: 1 }, Some(Duration::from_secs(1)))?;
    pair.drive()?;
    pair.close_by_server(c);
    let failures: Vec<_> = core::iter::from_fn(|| pair.conn_mut(c).poll_failure()).collect();
    assert_eq!(
        failures.iter().map(|f| (f.token, f.reason.cs_error())).collect::<Vec<_>>(),
        [(a, CsError::Library), (b, CsError::Library)]
    );
    assert_eq!(pair.conn(c).state(), State::Closed);
    assert_eq!(
        pair.call(c, &Request::Delete { key: key(b"test.z") }).err(),
        Some(CallError::Submit(SubmitError::Closed))
    );
    // The clock passing the old deadline reports nothing more.
    pair.advance(Duration::from_secs(5));
    assert_eq!(pair.conn_mut(c).poll_failure(), None);
    // The server had applied the SET before it dropped the connection.
    assert_eq!(pair.engine.get(b"test.z"), Some(Value::UInt8(1)));
    Ok(())
}

type VqPair = Pair<QuorumEngine, Votequorum, 4, 8, 1024>;

#[test]
fn votequorum_getinfo_and_track_start() -> Result<(), Error> {
    let mut engine = QuorumEngine::new(QuorumConfig { expected_votes: 3, ..QuorumConfig::default() });
    engine.add_node(2, 1, NodeState::MEMBER)?;
    let mut pair: VqPair = Pair::new(engine);
    let (tracker, admin) = (pair.connect()?, pair.connect()?);

    let info = pair.call(admin, &vq::Request::GetInfo { nodeid: 0 })?;
    let Ok(vq::Response::GetInfo(i)) = info.response() else { panic!("{info:?}") };
    assert_eq!((i.nodeid, i.votes, i.expected_votes, i.total_votes, i.quorum), (1, 1, 3, 2, 2));
    assert!(i.flags.contains(vq::InfoFlags::QUORATE));
    let unknown = pair.call(admin, &vq::Request::GetInfo { nodeid: 9 })?;
    assert_eq!(unknown.status(), Err(CsError::NotExist));

    // TRACKSTART with CURRENT|CHANGES: the current node list and quorum come first.
    let flags = TrackFlags::CURRENT | TrackFlags::CHANGES;
    let start = pair.call(tracker, &vq::Request::TrackStart { context: 0xc0ffee, flags })?;
    assert_eq!(start.status(), Ok(()));
    let mut scratch = [0u8; 1024];
    let mut seen = Vec::new();
    while let Some(polled) = pair.conn_mut(tracker).poll_event(&mut scratch) {
        let Polled::Event(n) = polled? else { panic!("not an event") };
        seen.push(match n {
            vq::Notification::NodeList { context, nodes, .. } => {
                (context, "nodelist", nodes.iter().collect::<Vec<_>>())
            }
            vq::Notification::Quorum { context, quorate, nodes } => {
                assert!(quorate);
                (context, "quorum", nodes.iter().map(|n| n.nodeid).collect())
            }
            vq::Notification::ExpectedVotes { context, expected_votes } => {
                (context, "expected", vec![expected_votes])
            }
        });
    }
    // corosync lists the quorum notification's nodes as its `cluster_members_list`: the other
    // nodes, then the local one (seen on a real 3-node cluster: `2, 3, 1` on node 1).
    assert_eq!(seen, [(0xc0ffee, "nodelist", vec![1, 2]), (0xc0ffee, "quorum", vec![2, 1])]);

    // A change by another connection is reported to the tracker, not to the writer.
    let set = pair.call(admin, &vq::Request::SetExpected { expected_votes: 2 })?;
    assert_eq!(set.status(), Ok(()));
    let Some(Ok(Polled::Event(n))) = pair.conn_mut(tracker).poll_event(&mut scratch) else { panic!() };
    assert_eq!(n, vq::Notification::ExpectedVotes { context: 0xc0ffee, expected_votes: 2 });
    assert_eq!(pair.conn(admin).queued_events(), 0);

    let again =
        pair.call(tracker, &vq::Request::TrackStart { context: 1, flags: TrackFlags::CHANGES_ONLY })?;
    assert_eq!(again.status(), Err(CsError::Exist));
    assert_eq!(pair.call(tracker, &vq::Request::TrackStop)?.status(), Ok(()));
    assert_eq!(pair.call(tracker, &vq::Request::TrackStop)?.status(), Err(CsError::NotExist));
    Ok(())
}

#[test]
fn events_wait_on_the_wire_while_the_client_queue_is_full() -> Result<(), Error> {
    let mut pair = cmap_pair();
    let (watcher, writer) = (pair.connect()?, pair.connect()?);
    track_add(&mut pair, watcher, None, TrackType::ALL | TrackType::PREFIX, 9);
    for i in 0..10u8 {
        set(&mut pair, writer, b"test.q", Value::UInt8(i))?;
    }
    // The queue holds 8; two more wait on the event wire, in order.
    assert_eq!((pair.conn(watcher).queued_events(), pair.in_flight(watcher).2), (8, 2));
    let mut got = events(&mut pair, watcher);
    pair.drive()?;
    got.extend(events(&mut pair, watcher));
    let values: Vec<_> = got.into_iter().map(|e| e.unwrap().3).collect();
    assert_eq!(values.len(), 10);
    assert_eq!(values[0], "None -> Some(UInt8(0))");
    assert_eq!(values[9], "Some(UInt8(8)) -> Some(UInt8(9))");
    Ok(())
}
