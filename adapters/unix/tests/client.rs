//! The clients' own behaviour, against the built-in server started in-process: callbacks that
//! stop a dispatch or finalize their connection, dispatch time limits, pull-style events,
//! client-side checks and connect errors. Uses only `corowire_unix` paths.

use core::error::Error as _;
use core::sync::atomic::{AtomicUsize, Ordering};
use core::time::Duration;
use std::sync::Arc;

use corowire_unix::server::IpcType;
use corowire_unix::{
    CheckError, Cmap, CsError, DispatchMode, Error, Options, OwnedNotification, OwnedValue, TrackEventKind,
    TrackFlags, TrackType, ValueType,
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

#[test]
fn a_callback_stops_a_blocking_dispatch() {
    let server = TestServer::start("stop");
    let (mut tracker, seen) = counting_tracker(&server, "test.stop.", |n, control| {
        if n == 2 {
            control.stop();
        }
    });
    let mut writer = server.cmap();
    for i in 0..3 {
        writer.set_u32(&format!("test.stop.{i}"), i).unwrap();
    }
    // Bounded, so that a stop that is ignored fails instead of hanging.
    assert_eq!(tracker.dispatch_timeout(DispatchMode::Blocking, Duration::from_secs(10)), Ok(()));
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    tracker.dispatch(DispatchMode::One).unwrap();
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
        Err(Error::Cs(CsError::BadHandle))
    );
    assert_eq!(seen.load(Ordering::SeqCst), 1);
    assert_eq!(tracker.dispatch(DispatchMode::All), Err(Error::Cs(CsError::BadHandle)));
    assert_eq!(tracker.get_u32("test.fin.a").unwrap_err().cs_error(), CsError::BadHandle);
}

#[test]
fn next_event_pulls_owned_events_without_callbacks() {
    let server = TestServer::start("pull");
    let (mut tracker, seen) = counting_tracker(&server, "test.pull.", |_, _| {});
    let mut writer = server.cmap();
    writer.set_u32("test.pull.x", 7).unwrap();
    let event = tracker.next_event(Some(Duration::from_secs(10))).unwrap().expect("an event");
    assert_eq!(event.key(), "test.pull.x");
    assert_eq!(event.event, TrackEventKind::Add);
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
        assert_eq!(e, Error::Timeout, "{tag}");
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
    cmap.set_str("test.check.str", "ab").unwrap();
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

#[test]
fn connect_errors_name_the_service_used() {
    let name = format!("corowire-client-{}-nobody", std::process::id());
    let e =
        Cmap::connect_with(Options { service_name: Some(name.clone()), ..Options::default() }).unwrap_err();
    assert!(matches!(&e, Error::Connect { service, .. } if *service == name), "{e:?}");
    assert!(e.to_string().contains(&name), "{e}");
    assert!(e.source().is_some(), "the reason is the source");
    assert_eq!(e.cs_error(), CsError::Library);
}
