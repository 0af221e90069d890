//! The clients' own behaviour, against the built-in server started in-process: callbacks that
//! stop a dispatch or finalize their connection, dispatch time limits, pull-style events,
//! client-side checks and connect errors. Uses only `corowire_unix` paths.

use core::error::Error as _;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::sync::Arc;

use corowire_unix::server::IpcType;
use corowire_unix::{
    CheckError, Cmap, ConnectError, CsError, DispatchMode, Errno, Error, KeyOp, Options, OwnedNotification,
    OwnedValue, TrackEvent, TrackFlags, TrackType, ValueType,
};

mod builtin;
use builtin::TestServer;

/// A tracking connection whose callback counts the notifications under `prefix` and runs
/// `then` with the count.
fn counting_tracker(
    server: &TestServer,
    prefix: &str,
    then: impl Fn(usize, &corowire_unix::Control) + Send + 'static,
) -> (Cmap, Arc<AtomicUsize>) {
    let mut cmap = server.cmap();
    let seen = Arc::new(AtomicUsize::new(0));
    let (count, control) = (Arc::clone(&seen), cmap.control());
    cmap.track_add(Some(prefix), TrackType::ALL | TrackType::PREFIX, move |_| {
        let n = count.fetch_add(1, Ordering::SeqCst) + 1;
        then(n, &control);
    })
    .unwrap();
    (cmap, seen)
}

/// A tracker whose callback stops the dispatch at the `stop_at`-th change under
/// `test.<tag>.`, with `before` run on its control first; then three changes and a blocking
/// dispatch, which must end with `Ok`. Gives the server, the tracker and its count.
fn blocking_dispatch_stopped_at(
    tag: &str,
    stop_at: usize,
    before: impl FnOnce(&corowire_unix::Control),
) -> (TestServer, Cmap, Arc<AtomicUsize>) {
    let server = TestServer::start(tag);
    let prefix = format!("test.{tag}.");
    let (mut tracker, seen) = counting_tracker(&server, &prefix, move |n, control| {
        if n == stop_at {
            control.stop();
        }
    });
    before(&tracker.control());
    let mut writer = server.cmap();
    for i in 0..3 {
        writer.set_u32(&format!("{prefix}{i}"), i).unwrap();
    }
    // Bounded, so that a stop that is ignored fails instead of hanging.
    assert_eq!(tracker.dispatch_timeout(DispatchMode::Blocking, Duration::from_secs(10)), Ok(()));
    (server, tracker, seen)
}

#[test]
fn a_callback_stops_a_blocking_dispatch() {
    let (_server, mut tracker, seen) = blocking_dispatch_stopped_at("stop", 2, |_| {});
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    tracker.dispatch(DispatchMode::One).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[test]
fn a_stop_outside_a_dispatch_does_not_cut_the_next_one_short() {
    let (_server, _tracker, seen) = blocking_dispatch_stopped_at("stopout", 3, corowire_unix::Control::stop);
    // Ended by the callback's stop at the third event, not by the earlier one after the first.
    assert_eq!(seen.load(Ordering::SeqCst), 3);
}

#[test]
fn a_callback_finalizes_its_connection() {
    let server = TestServer::start("finalize");
    let (mut tracker, seen) = counting_tracker(&server, "test.fin.", |_, control| control.finalize());
    let mut writer = server.cmap();
    writer.set_u32("test.fin.a", 1).unwrap();
    writer.set_u32("test.fin.b", 2).unwrap();
    // As libcmap after cmap_finalize in a callback: CS_ERR_BAD_HANDLE, then for every call.
    assert_eq!(
        tracker.dispatch_timeout(DispatchMode::Blocking, Duration::from_secs(10)),
        Err(Error::Check(CheckError::Finalized))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    let e = tracker.dispatch(DispatchMode::All).unwrap_err();
    assert_eq!(e, Error::Check(CheckError::Finalized));
    assert_eq!(e.cs_error(), CsError::BadHandle, "libcmap's code");
    assert_eq!(e.answered(), None, "not the daemon's answer");
    assert!(e.to_string().contains("finalized"), "{e}");
    let e = tracker.get_u32("test.fin.a").unwrap_err();
    assert_eq!(e, Error::Check(CheckError::Finalized));
    assert_eq!(e.cs_error(), CsError::BadHandle);
}

#[test]
fn next_event_pulls_owned_events_without_callbacks() {
    let server = TestServer::start("pull");
    let (mut tracker, seen) = counting_tracker(&server, "test.pull.", |_, _| {});
    let mut writer = server.cmap();
    writer.set_u32("test.pull.x", 7).unwrap();
    let event = tracker.next_event(Some(Duration::from_secs(10))).unwrap().expect("an event");
    assert_eq!(event.key(), "test.pull.x");
    assert_eq!(event.event, TrackEvent::Add);
    assert_eq!(event.new_value, Some(OwnedValue::UInt32(7)));
    assert_eq!(seen.load(Ordering::SeqCst), 0, "next_event runs no callback");
    // Nothing more is pending.
    assert_eq!(tracker.next_event(Some(Duration::ZERO)), Ok(None));
}

#[test]
fn dispatch_timeout_ends_a_waiting_dispatch() {
    for (tag, ipc) in [("tm", IpcType::Shm), ("tmsk", IpcType::Socket)] {
        let server = TestServer::start_with(tag, |cfg| cfg.transport = ipc);
        let (mut tracker, seen) = counting_tracker(&server, "test.quiet.", |_, _| {});
        let e = tracker.dispatch_timeout(DispatchMode::One, Duration::from_millis(10)).unwrap_err();
        assert_eq!(e, Error::EventTimeout, "{tag}");
        assert_eq!(e.cs_error(), CsError::TryAgain, "{tag}");
        assert!(e.to_string().contains("no event came"), "{e}");
        // The modes that never wait are unaffected.
        assert_eq!(tracker.dispatch_timeout(DispatchMode::All, Duration::ZERO), Ok(()), "{tag}");
        // An event that comes within the limit is delivered.
        server.cmap().set_u8("test.quiet.now", 1).unwrap();
        tracker.dispatch_timeout(DispatchMode::One, Duration::from_secs(10)).unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 1, "{tag}");
    }
}

#[test]
fn votequorum_pull_events_and_context() {
    let server = TestServer::start("vq");
    let mut vq = server.votequorum();
    vq.context_set(42u32);
    assert_eq!(vq.context_get::<u32>(), Some(&42));
    assert_eq!(vq.context_get::<u64>(), None);
    vq.track_start(0xC0FFEE, TrackFlags::CURRENT | TrackFlags::CHANGES).unwrap();
    let first = vq.next_event(Some(Duration::from_secs(10))).unwrap().expect("a notification");
    let context = match first {
        OwnedNotification::Quorum { context, .. }
        | OwnedNotification::NodeList { context, .. }
        | OwnedNotification::ExpectedVotes { context, .. } => context,
        other => panic!("unexpected {other:?}"),
    };
    assert_eq!(context, 0xC0FFEE);
    vq.track_stop().unwrap();
}

#[test]
fn client_side_checks_say_so() {
    let server = TestServer::start("checks");
    let mut cmap = server.cmap();
    // Three bytes with the NUL: the 4-byte GET of get_u32 succeeds, the type does not match.
    cmap.set_string("test.check.str", "ab").unwrap();
    let e = cmap.get_u32("test.check.str").unwrap_err();
    assert_eq!(
        e,
        Error::Check(CheckError::WrongType {
            key: "test.check.str".into(),
            expected: ValueType::UInt32,
            actual: ValueType::String,
        })
    );
    assert_eq!(e.cs_error(), CsError::InvalidParam, "libcmap's code");
    assert!(e.to_string().contains("checked by the client"), "{e}");

    let mut small = server.cmap_with(Options { max_msg_size: 8192, ..Options::default() });
    let big = vec![0u8; 16000];
    let e = small.set_binary("test.check.big", &big).unwrap_err();
    assert!(
        matches!(&e, Error::Check(CheckError::TooBig { key: Some(k), max, .. }) if k == "test.check.big" && *max == small.max_msg_size()),
        "{e:?}"
    );
    assert_eq!(e.cs_error(), CsError::TooBig, "libcmap's code");
    // Nothing was sent: the connection is still in step.
    assert_eq!(small.get_string("test.check.str").unwrap(), "ab");
}

/// The `Display` texts of `e` and of each `source()` below it.
fn chain(e: &Error) -> Vec<String> {
    let mut texts = vec![e.to_string()];
    let mut cause = e.source();
    while let Some(c) = cause {
        texts.push(c.to_string());
        cause = c.source();
    }
    texts
}

/// `e`'s chain has `parts` parts, none repeats a later one's text, and `report()` joins them.
fn assert_chain(e: &Error, parts: usize) {
    let texts = chain(e);
    assert_eq!(texts.len(), parts, "{texts:?}");
    for (i, outer) in texts.iter().enumerate() {
        for inner in &texts[i + 1..] {
            assert!(!outer.contains(inner.as_str()), "{outer:?} repeats {inner:?}");
        }
    }
    assert_eq!(e.report().to_string(), texts.join(": "));
}

#[test]
fn connect_errors_name_the_service_used() {
    let name = format!("corowire-client-{}-nobody", std::process::id());
    let e =
        Cmap::connect_with(Options { service_name: Some(name.clone()), ..Options::default() }).unwrap_err();
    assert!(
        matches!(&e, Error::Connect { service, reason: ConnectError::NoDaemon(_) } if *service == name),
        "{e:?}"
    );
    assert_eq!(e.to_string(), format!("cannot connect to the libqb service `{name}`"));
    // Error::Connect → ConnectError::NoDaemon → the errno.
    assert_chain(&e, 3);
    assert!(e.source().is_some_and(|c| c.to_string().contains("COROWIRE_NAME_PREFIX=")), "{}", e.report());
    assert!(!e.report().to_string().contains("corosync daemon"), "{}", e.report());
    assert_eq!(e.cs_error(), CsError::Library);
}

#[test]
fn a_service_name_too_long_for_a_socket_is_a_connect_error() {
    let name = "s".repeat(200);
    let e =
        Cmap::connect_with(Options { service_name: Some(name.clone()), ..Options::default() }).unwrap_err();
    assert!(
        matches!(&e, Error::Connect { service, reason: ConnectError::Transport(_) } if *service == name),
        "{e:?}"
    );
    // Error::Connect → (the transparent ConnectError::Transport) TransportError::Io → ENAMETOOLONG.
    assert_chain(&e, 3);
    let texts = chain(&e);
    assert_eq!(texts[1], "system call failed");
    assert_eq!(texts[2], Errno::ENAMETOOLONG.to_string());
}

#[test]
fn typed_getters_report_a_larger_value_of_another_type_as_wrong_type() {
    let server = TestServer::start("larger");
    let mut cmap = server.cmap();
    cmap.set_string("test.larger.str", "abcd").unwrap();
    cmap.set_u32("test.larger.u32", 7).unwrap();
    for (e, key, expected, actual) in [
        (
            cmap.get_u32("test.larger.str").unwrap_err(),
            "test.larger.str",
            ValueType::UInt32,
            ValueType::String,
        ),
        (cmap.get_u8("test.larger.u32").unwrap_err(), "test.larger.u32", ValueType::UInt8, ValueType::UInt32),
        (
            cmap.get_i16("test.larger.str").unwrap_err(),
            "test.larger.str",
            ValueType::Int16,
            ValueType::String,
        ),
    ] {
        assert_eq!(e, Error::Check(CheckError::WrongType { key: key.into(), expected, actual }));
        assert_eq!(e.cs_error(), CsError::InvalidParam, "libcmap's code");
    }
    // The right type still reads.
    assert_eq!(cmap.get_u32("test.larger.u32"), Ok(7));
}

#[test]
fn errors_of_key_operations_name_the_key_and_the_operation() {
    let server = TestServer::start("keyerr");
    let mut cmap = server.cmap();
    let key = "test.keyerr.missing";
    for (e, op) in [
        (cmap.get(key).unwrap_err(), KeyOp::Get),
        (cmap.get_u32(key).unwrap_err(), KeyOp::Get),
        (cmap.delete(key).unwrap_err(), KeyOp::Delete),
        (cmap.inc(key).unwrap_err(), KeyOp::Inc),
        (cmap.dec(key).unwrap_err(), KeyOp::Dec),
    ] {
        assert_eq!(e, Error::Key { op, key: key.into(), error: CsError::NotExist });
        assert_eq!(e.cs_error(), CsError::NotExist);
        assert_eq!(e.answered(), Some(CsError::NotExist));
        // The context, then the daemon's answer as the source.
        assert_eq!(e.to_string(), format!("the daemon refused to {op} {key}"));
        assert_eq!(
            e.report().to_string(),
            format!("the daemon refused to {op} {key}: {}", CsError::NotExist)
        );
        assert_chain(&e, 2);
    }
    let many = cmap.get_many(&[key]).unwrap();
    assert_eq!(many[0], Err(Error::Key { op: KeyOp::Get, key: key.into(), error: CsError::NotExist }));
    let e = cmap.set_u32("totem.cluster_name", 1).unwrap_err();
    assert_eq!(e, Error::Key { op: KeyOp::Set, key: "totem.cluster_name".into(), error: CsError::Access });
}

#[test]
fn errors_the_client_found_itself_are_worded_as_checks() {
    let server = TestServer::start("own");
    let mut cmap = server.cmap();
    let long = "k".repeat(300);
    let e = cmap.get(&long).unwrap_err();
    assert!(matches!(&e, Error::Check(CheckError::KeyName { key, .. }) if *key == long), "{e:?}");
    assert_eq!(e.cs_error(), CsError::NameTooLong, "libcmap's code");
    assert_eq!(e.answered(), None);
    assert!(e.to_string().contains("checked by the client"), "{e}");
    // The transparent Error::Check, the key, then what is wrong with it.
    assert_chain(&e, 2);
    assert!(
        e.report().to_string().ends_with("name of 300 bytes is too long (at most 255)"),
        "{}",
        e.report()
    );
    cmap.track_add(Some("test.own."), TrackType::ALL | TrackType::PREFIX, |_| {}).unwrap();
    let e = cmap.dispatch(DispatchMode::OneNonBlocking).unwrap_err();
    assert_eq!(e, Error::Check(CheckError::NothingPending));
    assert_eq!(e.cs_error(), CsError::TryAgain, "libcmap's code");
    assert!(!e.to_string().contains("corosync"), "{e}");
    let mut vq = server.votequorum();
    let e = vq.qdevice_register("").unwrap_err();
    assert!(matches!(e, Error::Check(CheckError::QdeviceName { .. })), "{e:?}");
    assert_eq!(e.cs_error(), CsError::InvalidParam, "libvotequorum's code");
}

#[test]
fn debug_and_display_are_readable() {
    let server = TestServer::start("fmt");
    let (mut tracker, _) = counting_tracker(&server, "test.fmt.", |_, _| {});
    server.cmap().set_u32("test.fmt.k", 5).unwrap();
    let event = tracker.next_event(Some(Duration::from_secs(10))).unwrap().expect("an event");
    let debug = format!("{event:?}");
    assert!(debug.contains(r#"key: "test.fmt.k""#), "{debug}");
    assert_eq!(event.to_string(), "create test.fmt.k = 5");
    let info = server.votequorum().get_info(0).unwrap();
    let debug = format!("{info:?}");
    assert!(debug.contains("state: Member"), "{debug}");
    assert!(!debug.contains("InfoFlags("), "{debug}");
}

#[test]
fn a_poll_loop_needs_only_this_crates_error() -> corowire_unix::Result<()> {
    use corowire_unix::sys::sock::{poll_readable, PollState};
    let server = TestServer::start("poll");
    let (mut tracker, seen) = counting_tracker(&server, "test.poll.", |_, _| {});
    server.cmap().set_u8("test.poll.a", 1)?;
    while seen.load(Ordering::SeqCst) == 0 {
        if poll_readable(&tracker, Some(Duration::from_secs(10)))? == PollState::Readable {
            tracker.dispatch(DispatchMode::All)?;
        }
    }
    Ok(())
}

#[test]
fn skipped_unknown_events_are_counted() {
    use corowire_unix::ring::ShmRing;
    let server = TestServer::start("unknown");
    let (mut tracker, seen) = counting_tracker(&server, "test.unknown.", |_, _| {});
    assert_eq!(tracker.unknown_events(), 0);
    // The tracker is the server's only client: its ring directory is the only one. Write a
    // well-formed event with an id CMAP does not define (1000) into its event ring, as a
    // newer daemon would.
    let dirs: Vec<_> = std::fs::read_dir(&server.shm_dir).unwrap().map(|d| d.unwrap().path()).collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let base = dirs[0].join(format!("qb-event-{}", server.cmap_name));
    let mut ring = ShmRing::open(&base).unwrap();
    let mut frame = [0u8; 24];
    frame[0..4].copy_from_slice(&1000i32.to_le_bytes());
    frame[8..12].copy_from_slice(&24i32.to_le_bytes());
    frame[16..20].copy_from_slice(&1i32.to_le_bytes());
    ring.write_chunk(&frame).unwrap();
    drop(ring);
    // Then a real change: the dispatch skips the unknown event, counts it, and delivers the
    // change.
    server.cmap().set_u8("test.unknown.k", 1).unwrap();
    tracker.dispatch_timeout(DispatchMode::One, Duration::from_secs(10)).unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(tracker.unknown_events(), 1);
}

#[test]
fn client_decisions_are_not_worded_as_daemon_answers() {
    let gave_up = Error::from(CheckError::ValueKeptChanging { key: "a.b".into(), attempts: 4 });
    assert_eq!(gave_up.cs_error(), CsError::TryAgain, "libcmap's code");
    assert_eq!(gave_up.answered(), None);
    assert_chain(&gave_up, 1);
    assert!(gave_up.to_string().contains("the client gave up"), "{gave_up}");
    let mismatch = Error::UnexpectedReply { what: "a reply of another kind" };
    assert_eq!(mismatch.answered(), None);
    assert_eq!(mismatch.cs_error(), CsError::MessageError);
    assert_eq!(
        mismatch.report().to_string(),
        "protocol error: the daemon's reply did not match the request (a reply of another kind)"
    );
}
