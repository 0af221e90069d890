//! The sans-IO client state machine driven with wire bytes: pipelining, generic replies,
//! timeouts, tracking, queues at capacity, and every dispatch mode. No I/O, no sleeps.

use corowire::cmap::{self, Key, Notification, Reply, Request, Response, TrackEvent, TrackType, Value};
use corowire::conn::{
    Cmap, CmapEvent, Connection, FailureReason, HandleError, Polled, State, SubmitError, Votequorum,
};
use corowire::qb::{ConnectResponse, ConnectionType};
use corowire::{
    votequorum as vq, CsError, Dispatch, DispatchMode, Duration, Instant, SetupError, Step, Wait,
};

type CmapConn = Connection<Cmap<2>, 3, 4, 2048>;

const T0: Instant = Instant::from_millis(0);

fn setup_response(buf: &mut [u8]) -> usize {
    ConnectResponse {
        connection_type: ConnectionType::Shm,
        max_msg_size: 8192,
        connection: 7,
        request: b"/dev/shm/qb-1-2-3-x/qb-request-cmap",
        response: b"/dev/shm/qb-1-2-3-x/qb-response-cmap",
        event: b"/dev/shm/qb-1-2-3-x/qb-event-cmap",
    }
    .encode(buf)
    .unwrap()
}

fn ready<S: corowire::conn::Service, const P: usize, const E: usize, const B: usize>(
) -> Connection<S, P, E, B> {
    let mut conn = Connection::new(8192);
    let mut buf = vec![0u8; 12328];
    let n = setup_response(&mut buf);
    conn.handle_setup(&buf[..n]).unwrap();
    conn
}

fn reply(result: Result<(), CsError>, body: Response<'_>) -> Vec<u8> {
    let r = Reply { result, body };
    let mut buf = vec![0u8; r.encoded_len()];
    r.encode(&mut buf).unwrap();
    buf
}

fn generic_reject() -> Vec<u8> {
    let mut buf = vec![0u8; 24];
    corowire::qb::encode_generic_reply(CsError::InvalidParam, &mut buf).unwrap();
    buf
}

fn notification(
    cookie: u64,
    key: &[u8],
    event: TrackEvent,
    new: Option<Value<'_>>,
    old: Option<Value<'_>>,
) -> Vec<u8> {
    let n = Notification {
        track_inst_handle: cookie,
        key: Key::new(key).unwrap(),
        event,
        new_value: new,
        old_value: old,
    };
    let mut buf = vec![0u8; n.encoded_len()];
    n.encode(&mut buf).unwrap();
    buf
}

fn key(k: &str) -> Key<'_> {
    Key::new(k.as_bytes()).unwrap()
}

fn submit(conn: &mut CmapConn, req: &Request<'_>, timeout: Option<Duration>) -> corowire::conn::Token {
    let mut out = [0u8; 512];
    conn.submit(req, T0, timeout, &mut out).unwrap().token
}

/// Adds a track with `context` and completes it with server handle `handle`; returns the cookie.
fn tracked(conn: &mut CmapConn, context: u64, handle: u64) -> u64 {
    let mut out = [0u8; 512];
    conn.track_add(Some(key("a.b")), TrackType::MODIFY | TrackType::PREFIX, context, T0, None, &mut out)
        .unwrap();
    let cookie = Request::decode(&out[..296]).map(|r| match r {
        Request::TrackAdd { track_inst_handle, .. } => track_inst_handle,
        other => panic!("not a track add: {other:?}"),
    });
    conn.handle_response(&reply(Ok(()), Response::TrackAdd { track_handle: handle })).unwrap();
    cookie.unwrap()
}

/// What a dispatch returned, the (key, context) of each delivered event, and each read's wait.
type Outcome = (Result<(), CsError>, Vec<(String, u64)>, Vec<Wait>);

/// Runs a dispatch to its end, feeding `incoming` frames when it asks to read (`None` = the
/// read found nothing). Returns the result and the (key, context) of each delivered event.
fn run_dispatch(
    conn: &mut CmapConn,
    mode: DispatchMode,
    incoming: &mut Vec<Option<Vec<u8>>>,
    mut on_event: impl FnMut(&mut CmapConn, &CmapEvent<'_>),
) -> Outcome {
    let mut scratch = [0u8; 2048];
    let mut d = Dispatch::new(mode);
    let (mut seen, mut waits) = (Vec::new(), Vec::new());
    for _ in 0..100 {
        match d.poll(conn, &mut scratch) {
            Step::Deliver(e) => {
                seen.push((e.notification.key.to_string(), e.context));
                on_event(conn, &e);
            }
            Step::Recv(w) => {
                waits.push(w);
                match incoming.pop() {
                    Some(Some(frame)) => conn.handle_event(&frame).unwrap(),
                    Some(None) => d.handle_empty(),
                    None if w == Wait::Never => d.handle_empty(),
                    None => return (Ok(()), seen, waits), // would block forever: stop here
                }
            }
            Step::Done(r) => return (r, seen, waits),
        }
    }
    panic!("dispatch did not end");
}

#[test]
fn setup_refused_maps_errno_and_closes() {
    let mut conn = CmapConn::new(8192);
    let mut buf = vec![0u8; 12328];
    ConnectResponse::encode_error(SetupError { errno: 13 }, &mut buf).unwrap();
    let err = conn.handle_setup(&buf).unwrap_err();
    assert_eq!(err, HandleError::Setup(SetupError { errno: 13 }));
    assert_eq!(err.cs_error(), CsError::Access);
    assert_eq!(conn.state(), State::Closed);
    let mut out = [0u8; 512];
    assert_eq!(
        conn.submit(&Request::Get { key: key("a.b"), value_len: 0 }, T0, None, &mut out),
        Err(SubmitError::Closed)
    );
}

#[test]
fn setup_request_bytes_and_submit_before_setup() {
    let mut conn = CmapConn::new(100);
    let mut out = [0u8; 512];
    assert_eq!(conn.encode_setup(&mut out), Ok(24));
    // libqb raises a small request to the size of the setup response.
    assert_eq!(&out[16..20], &12328u32.to_ne_bytes());
    assert_eq!(
        conn.submit(&Request::Delete { key: key("a.b") }, T0, None, &mut out),
        Err(SubmitError::NotReady)
    );
}

#[test]
fn pipelined_replies_match_by_position() {
    let mut conn: CmapConn = ready();
    let a = submit(&mut conn, &Request::Get { key: key("a.b"), value_len: 0 }, None);
    let b = submit(&mut conn, &Request::Delete { key: key("a.c") }, None);
    let c = submit(&mut conn, &Request::AdjustInt { key: key("a.d"), step: 1 }, None);
    assert_eq!(conn.outstanding(), 3);
    let get =
        cmap::GetReply { value_type: Some(cmap::ValueType::UInt32), value_len: 4, value: b"", buffer_len: 0 };
    let frame = reply(Ok(()), Response::Get(get));
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(r.token, a);
    assert!(matches!(r.result, Ok(Response::Get(g)) if g.value_len == 4));
    let frame = reply(Err(CsError::NotExist), Response::Delete);
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!((r.token, r.result.err()), (b, Some(CsError::NotExist)));
    let frame = reply(Ok(()), Response::AdjustInt);
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!((r.token, r.result.is_ok()), (c, true));
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn generic_reject_in_the_middle_of_a_pipeline() {
    let mut conn: CmapConn = ready();
    let a = submit(&mut conn, &Request::Delete { key: key("a.b") }, None);
    let b = submit(&mut conn, &Request::IterNext { iter_handle: 99 }, None);
    let c = submit(&mut conn, &Request::Delete { key: key("a.c") }, None);
    conn.handle_response(&reply(Ok(()), Response::Delete)).unwrap();
    let frame = generic_reject();
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!((r.token, r.result.err()), (b, Some(CsError::InvalidParam)));
    let frame = reply(Ok(()), Response::Delete);
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(r.token, c);
    assert_ne!(a, c);
}

#[test]
fn a_reply_that_answers_nothing_outstanding_closes_the_connection() {
    let mut conn: CmapConn = ready();
    let a = submit(&mut conn, &Request::IterInit { prefix: None }, None);
    let err = conn.handle_response(&reply(Ok(()), Response::Delete)).unwrap_err();
    assert_eq!(err, HandleError::ReplyMismatch { expected: 4, got: 1 });
    assert_eq!(conn.state(), State::Closed);
    let f = conn.poll_failure().unwrap();
    assert_eq!((f.token, f.reason), (a, FailureReason::ConnectionLost));
    // With nothing outstanding any reply is unexpected.
    assert_eq!(conn.handle_response(&reply(Ok(()), Response::Delete)).unwrap_err(), HandleError::Unexpected);
}

#[test]
fn pipeline_capacity_is_a_typed_error() {
    let mut conn: CmapConn = ready();
    for _ in 0..3 {
        submit(&mut conn, &Request::IterNext { iter_handle: 1 }, None);
    }
    let mut out = [0u8; 64];
    let err = conn.submit(&Request::IterNext { iter_handle: 1 }, T0, None, &mut out).unwrap_err();
    assert_eq!(err, SubmitError::PipelineFull { capacity: 3 });
    assert_eq!(err.cs_error(), CsError::TryAgain);
    assert_eq!(conn.outstanding(), 3);
}

#[test]
fn a_request_larger_than_the_negotiated_size_is_refused() {
    let mut conn: CmapConn = ready();
    let big = vec![7u8; 9000];
    let mut out = vec![0u8; 10000];
    let err = conn.submit(&Request::Set { key: key("a.b"), value: Value::Binary(&big) }, T0, None, &mut out);
    assert_eq!(err, Err(SubmitError::TooLarge { len: 9296, max: 8192 }));
    assert_eq!(err.unwrap_err().cs_error(), CsError::TooBig);
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn timeout_fails_the_request_and_its_late_reply_is_discarded() {
    let mut conn: CmapConn = ready();
    let a = submit(&mut conn, &Request::Delete { key: key("a.b") }, Some(Duration::from_millis(100)));
    let b = submit(&mut conn, &Request::Delete { key: key("a.c") }, Some(Duration::from_millis(300)));
    assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(100)));
    conn.handle_timeout(Instant::from_millis(99));
    assert_eq!(conn.poll_failure(), None);
    conn.handle_timeout(Instant::from_millis(150));
    let f = conn.poll_failure().unwrap();
    assert_eq!((f.token, f.reason, f.reason.cs_error()), (a, FailureReason::TimedOut, CsError::Timeout));
    assert!(!conn.is_waiting(a) && conn.is_waiting(b));
    assert_eq!(conn.poll_timeout(), Some(Instant::from_millis(300)));
    // The late reply to `a` is recognised and dropped; the next reply goes to `b`.
    assert!(conn.handle_response(&reply(Ok(()), Response::Delete)).unwrap().is_none());
    let frame = reply(Err(CsError::NotExist), Response::Delete);
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(r.token, b);
    assert_eq!(conn.poll_timeout(), None);
}

#[test]
fn lost_connection_fails_every_outstanding_request_once() {
    let mut conn: CmapConn = ready();
    let a = submit(&mut conn, &Request::Delete { key: key("a.b") }, Some(Duration::from_millis(1)));
    let b = submit(&mut conn, &Request::Delete { key: key("a.c") }, None);
    conn.handle_timeout(Instant::from_millis(5));
    conn.handle_closed();
    let fs: Vec<_> = core::iter::from_fn(|| conn.poll_failure()).map(|f| (f.token, f.reason)).collect();
    assert_eq!(fs, [(a, FailureReason::TimedOut), (b, FailureReason::ConnectionLost)]);
    assert_eq!(conn.state(), State::Closed);
}

#[test]
fn notifications_are_routed_to_their_track_with_context_and_values() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 42, 0x77);
    let frame =
        notification(cookie, b"a.b.c", TrackEvent::Modify, Some(Value::UInt32(2)), Some(Value::UInt32(1)));
    conn.handle_event(&frame).unwrap();
    let mut scratch = [0u8; 1024];
    let mut d = Dispatch::new(DispatchMode::One);
    match d.poll(&mut conn, &mut scratch) {
        Step::Deliver(e) => {
            assert_eq!((e.track_handle, e.context), (0x77, 42));
            assert_eq!(e.notification.key.as_bytes(), b"a.b.c");
            assert_eq!(e.notification.event, TrackEvent::Modify);
            assert_eq!(e.notification.new_value, Some(Value::UInt32(2)));
            assert_eq!(e.notification.old_value, Some(Value::UInt32(1)));
        }
        other => panic!("expected an event, got {other:?}"),
    }
    assert!(matches!(d.poll(&mut conn, &mut scratch), Step::Done(Ok(()))));
}

#[test]
fn track_delete_forgets_the_track_and_later_notifications_are_skipped() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 0x77);
    let mut out = [0u8; 64];
    assert_eq!(
        conn.track_delete(0x55, T0, None, &mut out),
        Err(SubmitError::UnknownTrack { track_handle: 0x55 })
    );
    conn.track_delete(0x77, T0, None, &mut out).unwrap();
    conn.handle_response(&reply(Ok(()), Response::TrackDelete { track_inst_handle: cookie })).unwrap();
    assert!(conn.service_state().tracks().is_empty());
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Delete, None, Some(Value::Int8(-1))))
        .unwrap();
    // ONE counts the skipped notification as its message and returns CS_OK without a callback.
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::One, &mut vec![], |_, _| {});
    assert_eq!((r, seen.len()), (Ok(()), 0));
}

#[test]
fn all_skips_unknown_tracks_and_delivers_the_rest() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 5, 0x10);
    conn.handle_event(&notification(cookie + 100, b"x.y", TrackEvent::Add, Some(Value::UInt8(1)), None))
        .unwrap();
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::UInt8(1)), None)).unwrap();
    let (r, seen, waits) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![], |_, _| {});
    assert_eq!(r, Ok(()));
    assert_eq!(seen, [("a.b".to_string(), 5)]);
    assert_eq!(waits, [Wait::Never]);
}

#[test]
fn track_table_capacity_is_a_typed_error() {
    let mut conn: CmapConn = ready();
    tracked(&mut conn, 1, 1);
    tracked(&mut conn, 2, 2);
    let mut out = [0u8; 512];
    let err = conn.track_add(None, TrackType::ADD, 3, T0, None, &mut out).unwrap_err();
    assert_eq!(err, SubmitError::TooManyTracks { capacity: 2 });
    assert_eq!(conn.outstanding(), 0);
}

#[test]
fn a_failed_track_add_leaves_no_track() {
    let mut conn: CmapConn = ready();
    let mut out = [0u8; 512];
    conn.track_add(None, TrackType(64), 3, T0, None, &mut out).unwrap();
    conn.handle_response(&reply(Err(CsError::InvalidParam), Response::TrackAdd { track_handle: 0 })).unwrap();
    assert!(conn.service_state().tracks().is_empty());
}

#[test]
fn event_queue_capacity_is_a_typed_error_and_nothing_is_dropped() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 9, 1);
    let frame = notification(cookie, b"a.b", TrackEvent::Add, Some(Value::UInt64(1)), None);
    for _ in 0..4 {
        conn.handle_event(&frame).unwrap();
    }
    assert_eq!(conn.handle_event(&frame), Err(HandleError::EventQueueFull { events: 4, bytes: 2048 }));
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![], |_, _| {});
    assert_eq!((r, seen.len()), (Ok(()), 4));
    // The byte capacity is enforced too: 2048 bytes hold two 936-byte frames, not three.
    let big = notification(cookie, b"a.b", TrackEvent::Add, Some(Value::Binary(&[0; 600])), None);
    conn.handle_event(&big).unwrap();
    conn.handle_event(&big).unwrap();
    assert!(matches!(conn.handle_event(&big), Err(HandleError::EventQueueFull { .. })));
}

#[test]
fn dispatch_one_waits_forever_and_stops_after_one() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    let ev = |k: &str| Some(notification(cookie, k.as_bytes(), TrackEvent::Add, Some(Value::Int16(3)), None));
    // Nothing queued: ONE reads with an infinite wait, ignores "empty", then gets an event.
    let mut incoming = vec![ev("a.b.2"), ev("a.b.1"), None];
    let (r, seen, waits) = run_dispatch(&mut conn, DispatchMode::One, &mut incoming, |_, _| {});
    assert_eq!(r, Ok(()));
    assert_eq!(seen, [("a.b.1".to_string(), 1)]);
    assert_eq!(waits, [Wait::Forever, Wait::Forever]);
    assert_eq!(incoming.len(), 1);
}

#[test]
fn dispatch_all_drains_and_returns_ok_when_nothing_is_pending() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    let ev = |k: &str| Some(notification(cookie, k.as_bytes(), TrackEvent::Add, Some(Value::Int16(3)), None));
    conn.handle_event(&ev("a.b.1").unwrap()).unwrap();
    let mut incoming = vec![None, ev("a.b.3"), ev("a.b.2")];
    let (r, seen, waits) = run_dispatch(&mut conn, DispatchMode::All, &mut incoming, |_, _| {});
    assert_eq!(r, Ok(()));
    assert_eq!(seen.iter().map(|s| s.0.as_str()).collect::<Vec<_>>(), ["a.b.1", "a.b.2", "a.b.3"]);
    assert!(waits.iter().all(|w| *w == Wait::Never));
    // And with nothing at all pending: CS_OK.
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![None], |_, _| {});
    assert_eq!((r, seen.len()), (Ok(()), 0));
}

#[test]
fn dispatch_one_nonblocking_returns_try_again_when_nothing_is_pending() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    let (r, _, waits) = run_dispatch(&mut conn, DispatchMode::OneNonBlocking, &mut vec![None], |_, _| {});
    assert_eq!((r, waits), (Err(CsError::TryAgain), vec![Wait::Never]));
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::Int16(3)), None)).unwrap();
    conn.handle_event(&notification(cookie, b"a.c", TrackEvent::Add, Some(Value::Int16(3)), None)).unwrap();
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::OneNonBlocking, &mut vec![], |_, _| {});
    assert_eq!((r, seen.len(), conn.queued_events()), (Ok(()), 1, 1));
}

#[test]
fn dispatch_blocking_only_ends_on_finalize_inside_a_callback() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    let ev = |k: &str| Some(notification(cookie, k.as_bytes(), TrackEvent::Add, Some(Value::Int16(3)), None));
    let mut incoming = vec![ev("a.b.stop"), ev("a.b.2"), None, ev("a.b.1")];
    let (r, seen, waits) = run_dispatch(&mut conn, DispatchMode::Blocking, &mut incoming, |c, e| {
        if e.notification.key.as_bytes().ends_with(b"stop") {
            c.finalize();
        }
    });
    assert_eq!(r, Err(CsError::BadHandle));
    assert_eq!(seen.len(), 3);
    assert!(waits.iter().all(|w| *w == Wait::Forever));
    // Dispatch on a finalized connection: CS_ERR_BAD_HANDLE at once.
    let (r, _, _) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![], |_, _| {});
    assert_eq!(r, Err(CsError::BadHandle));
}

#[test]
fn a_callback_may_submit_and_track_delete_on_the_same_connection() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 0x99);
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::Int16(3)), None)).unwrap();
    conn.handle_event(&notification(cookie, b"a.c", TrackEvent::Add, Some(Value::Int16(3)), None)).unwrap();
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![], |c, e| {
        let mut out = [0u8; 64];
        c.track_delete(e.track_handle, T0, None, &mut out).unwrap();
        c.handle_response(&reply(Ok(()), Response::TrackDelete { track_inst_handle: cookie })).unwrap();
    });
    // The second notification belongs to the track deleted in the first callback: skipped.
    assert_eq!((r, seen.len()), (Ok(()), 1));
}

#[test]
fn lost_connection_mid_dispatch_is_cs_err_library() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::Int16(3)), None)).unwrap();
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::Blocking, &mut vec![], |c, _| c.handle_closed());
    // The queued event is still delivered; then the loss is reported.
    assert_eq!((r, seen.len()), (Err(CsError::Library), 1));
}

#[test]
fn an_event_with_an_unknown_id_is_skipped_and_counted() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 5, 0x10);
    // A well-formed frame, but id 3 is not an event of CMAP.
    conn.handle_event(&reply(Ok(()), Response::AdjustInt)).unwrap();
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::UInt8(1)), None)).unwrap();
    // ONE skips it without counting it as its message, and delivers the notification.
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::One, &mut vec![], |_, _| {});
    assert_eq!((r, seen), (Ok(()), vec![("a.b".to_string(), 5)]));
    assert_eq!(conn.unknown_events(), 1);
    // Routed directly, it is reported and counted too.
    assert!(matches!(conn.route(&reply(Ok(()), Response::AdjustInt)), Polled::Unknown { id: 3 }));
    assert_eq!(conn.unknown_events(), 2);
}

#[test]
fn a_malformed_event_of_a_known_id_is_cs_err_library() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 5, 0x10);
    let mut frame = notification(cookie, b"a.b", TrackEvent::Add, Some(Value::UInt8(1)), None);
    // An event type corosync does not define.
    frame[296..300].copy_from_slice(&99i32.to_ne_bytes());
    conn.handle_event(&frame).unwrap();
    let (r, seen, _) = run_dispatch(&mut conn, DispatchMode::All, &mut vec![], |_, _| {});
    assert_eq!((r, seen.len()), (Err(CsError::Library), 0));
    assert_eq!(conn.unknown_events(), 0);
}

#[test]
fn an_event_larger_than_the_scratch_buffer_is_try_again_and_stays_queued() {
    let mut conn: CmapConn = ready();
    let cookie = tracked(&mut conn, 1, 1);
    conn.handle_event(&notification(cookie, b"a.b", TrackEvent::Add, Some(Value::Binary(&[1; 100])), None))
        .unwrap();
    let mut small = [0u8; 64];
    assert!(matches!(
        Dispatch::new(DispatchMode::All).poll(&mut conn, &mut small),
        Step::Done(Err(CsError::TryAgain))
    ));
    assert_eq!(conn.queued_events(), 1);
}

type VqConn = Connection<Votequorum, 4, 4, 1024>;

fn vq_status(result: Result<(), CsError>) -> Vec<u8> {
    let r = vq::Reply { result, body: vq::Response::Status };
    let mut buf = vec![0u8; r.encoded_len()];
    r.encode(&mut buf).unwrap();
    buf
}

#[test]
fn qdevice_register_is_a_barrier() {
    let mut conn: VqConn = ready();
    let mut out = [0u8; 600];
    let name = vq::QdeviceName::new(b"Qdevice").unwrap();
    conn.submit(&vq::Request::GetInfo { nodeid: 0 }, T0, None, &mut out).unwrap();
    let reg = conn.submit(&vq::Request::QdeviceRegister { name }, T0, None, &mut out).unwrap();
    let err = conn.submit(
        &vq::Request::QdevicePoll { name, cast_vote: true, ring_id: vq::RingId { nodeid: 1, seq: 4 } },
        T0,
        None,
        &mut out,
    );
    assert_eq!(err, Err(SubmitError::Barrier));
    // A generic reject answers the GETINFO (id 0 where id 1 was expected), then the register.
    assert!(conn.handle_response(&generic_reject()).unwrap().unwrap().result.is_err());
    let frame = vq_status(Ok(()));
    let r = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(r.token, reg.token);
    conn.submit(&vq::Request::QdeviceUnregister { name }, T0, None, &mut out).unwrap();
}

#[test]
fn votequorum_notifications_carry_the_trackstart_context() {
    let mut conn: VqConn = ready();
    let mut out = [0u8; 64];
    let flags = vq::TrackFlags::CURRENT | vq::TrackFlags::CHANGES;
    conn.submit(&vq::Request::TrackStart { context: 0xabc, flags }, T0, None, &mut out).unwrap();
    let nodes = [vq::NodeEntry { nodeid: 1, state: vq::NodeState::MEMBER }];
    let n =
        vq::Notification::Quorum { quorate: true, context: 0xabc, nodes: vq::NodeList::from_slice(&nodes) };
    let mut frame = vec![0u8; n.encoded_len()];
    n.encode(&mut frame).unwrap();
    conn.handle_event(&frame).unwrap();
    conn.handle_response(&vq_status(Ok(()))).unwrap();
    let mut scratch = [0u8; 256];
    match Dispatch::new(DispatchMode::One).poll(&mut conn, &mut scratch) {
        Step::Deliver(vq::Notification::Quorum { quorate, context, nodes }) => {
            assert!(quorate);
            assert_eq!(context, 0xabc);
            assert_eq!(nodes.iter().map(|e| e.nodeid).collect::<Vec<_>>(), [1]);
        }
        other => panic!("expected a quorum notification, got {other:?}"),
    }
}

#[test]
fn an_abandoned_iteration_is_finalized_on_the_daemon() {
    use corowire::cmap::{IterStep, Iteration};
    let mut conn: CmapConn = ready();
    let mut it = Iteration::new(Some(key("totem.")));
    let mut out = [0u8; 512];
    conn.submit(&it.next_request().unwrap(), T0, None, &mut out).unwrap();
    let frame = reply(Ok(()), Response::IterInit { iter_handle: 0x1600_0000 });
    let done = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(it.handle_reply(done.result), Ok(IterStep::Started));
    conn.submit(&it.next_request().unwrap(), T0, None, &mut out).unwrap();
    assert_eq!(Request::decode(&out[..24]), Ok(Request::IterNext { iter_handle: 0x1600_0000 }));
    let frame = reply(Ok(()), Response::IterNext { key: key("totem.token"), value_len: 4, value_type: None });
    let done = conn.handle_response(&frame).unwrap().unwrap();
    assert!(matches!(it.handle_reply(done.result), Ok(IterStep::Item { value_len: 4, .. })));
    // The caller stops here: the iteration still owes the daemon its ITER_FINALIZE.
    assert_eq!(it.finalize_request(), Some(Request::IterFinalize { iter_handle: 0x1600_0000 }));
    // A generic reject in the middle ends the iteration with that error.
    let frame = generic_reject();
    conn.submit(&it.next_request().unwrap(), T0, None, &mut out).unwrap();
    let done = conn.handle_response(&frame).unwrap().unwrap();
    assert_eq!(it.handle_reply(done.result), Err(CsError::InvalidParam));
    assert_eq!(it.next_request(), None);
}

/// A votequorum quorum notification frame for `context`, quorate or not.
fn vq_quorum(quorate: bool, context: u64) -> Vec<u8> {
    let nodes = [vq::NodeEntry { nodeid: 1, state: vq::NodeState::MEMBER }];
    let n = vq::Notification::Quorum { quorate, context, nodes: vq::NodeList::from_slice(&nodes) };
    let mut frame = vec![0u8; n.encoded_len()];
    n.encode(&mut frame).unwrap();
    frame
}

#[test]
fn a_newer_daemons_votequorum_notification_7_is_skipped_and_counted() {
    // corosync after 3.1.10 sends notification 7 (qdevice extra info) to every tracker. Its
    // body is not known here: any well-formed frame with that id stands for it.
    let mut id7 = vq_quorum(true, 0);
    id7[0..4].copy_from_slice(&7i32.to_ne_bytes());
    for mode in [DispatchMode::All, DispatchMode::One] {
        let mut conn: VqConn = ready();
        for frame in [vq_quorum(false, 1), id7.clone(), vq_quorum(true, 2)] {
            conn.handle_event(&frame).unwrap();
        }
        let mut scratch = [0u8; 256];
        let mut delivered = Vec::new();
        while delivered.len() < 2 {
            match Dispatch::new(mode).poll(&mut conn, &mut scratch) {
                Step::Deliver(vq::Notification::Quorum { quorate, context, .. }) => {
                    delivered.push((quorate, context));
                }
                other => panic!("{mode:?}: expected a quorum notification, got {other:?}"),
            }
        }
        assert_eq!(delivered, [(false, 1), (true, 2)], "{mode:?}");
        assert_eq!(conn.unknown_events(), 1, "{mode:?}");
        assert_eq!(conn.queued_events(), 0, "{mode:?}");
    }
}

#[test]
fn submit_with_context_reaches_the_track_table() {
    let mut conn: CmapConn = ready();
    let mut buf = vec![0u8; 512];
    let req =
        Request::TrackAdd { key: Some(key("a.key")), track_type: TrackType::ADD, track_inst_handle: 40 };
    conn.submit_with_context(&req, 0xfeed, T0, None, &mut buf).unwrap();
    // track_add takes the cookie after the highest one sent.
    conn.track_add(Some(key("a.key")), TrackType::ADD, 7, T0, None, &mut buf).unwrap();
    let tracks: Vec<(u64, u64)> =
        conn.service_state().tracks().iter().map(|t| (t.cookie, t.context)).collect();
    assert_eq!(tracks, [(40, 0xfeed), (41, 7)]);
}
