//! Resilient connections ([`Options::reconnect`]) against the built-in server, stopped and
//! started again on a thread of the test process: no corosync, no root (the daemon case is
//! `tests/resilience.rs`).

use core::time::Duration;

use corowire::votequorum::TrackFlags;
use corowire_unix::cmap::{Cmap, OwnedValue, TrackType};
use corowire_unix::votequorum::{OwnedNotification, Votequorum};
use corowire_unix::{Error, Options, Reconnect};

mod builtin;
use builtin::TestServer;

/// `server`'s names, reconnecting, calls timing out after 10 s.
fn resilient(service: &str) -> Options {
    Options {
        service_name: Some(service.to_owned()),
        timeout: Some(Duration::from_secs(10)),
        reconnect: Some(Reconnect::default()),
        ..Options::for_tracking()
    }
}

#[test]
fn a_restarted_server_gets_the_tracks_back_and_a_resync_marker() {
    let tag = "resil-restart";
    let server = TestServer::start(tag);
    let mut cmap = Cmap::connect_with(resilient(&server.cmap_name)).unwrap();
    let mut plain = server.cmap();
    let mut plain_vq = server.votequorum();
    let track = cmap.track_add(Some("r.a"), TrackType::ADD | TrackType::MODIFY, |_| {}).unwrap();
    let mut vq = Votequorum::connect_with(resilient(&server.vq_name)).unwrap();
    vq.track_start(5, TrackFlags::CHANGES).unwrap();
    while vq.next_event(Some(Duration::from_millis(100))).unwrap().is_some() {}

    // Stopped, its folder removed, then a new one under the same names.
    drop(server);
    let server = TestServer::start(tag);
    let wait = Some(Duration::from_secs(10));
    assert_eq!(cmap.next_event(wait).unwrap_err(), Error::Resync);
    assert_eq!(vq.next_event(wait).unwrap_err(), Error::Resync);
    // The handles without the option are gone for good.
    assert_eq!(plain.get_u32("r.a").unwrap_err(), Error::Disconnected);
    assert_eq!(plain.get_u32("r.a").unwrap_err(), Error::Disconnected);
    assert_eq!(plain_vq.get_info(0).unwrap_err(), Error::Disconnected);

    server.cmap().set_u32("r.a", 3).unwrap();
    let n = cmap.next_event(wait).unwrap().expect("a notification");
    assert_eq!(
        (n.track, n.key().into_owned(), n.new_value),
        (track, "r.a".to_owned(), Some(OwnedValue::UInt32(3)))
    );
    let quorum = core::iter::from_fn(|| vq.next_event(wait).unwrap())
        .find(|n| matches!(n, OwnedNotification::Quorum { .. }))
        .expect("a quorum notification");
    assert!(matches!(quorum, OwnedNotification::Quorum { context: 5, .. }), "{quorum:?}");
    // Once only.
    assert_eq!(cmap.next_event(Some(Duration::from_millis(50))).unwrap(), None);
    cmap.track_delete(track).unwrap();
}

#[test]
fn a_call_after_the_loss_waits_for_the_server_within_its_timeout() {
    let tag = "resil-wait";
    let server = TestServer::start(tag);
    let mut cmap = Cmap::connect_with(resilient(&server.cmap_name)).unwrap();
    cmap.set_u32("w.a", 1).unwrap();
    drop(server);
    let restart = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        TestServer::start(tag)
    });
    // The loss is seen before sending: the call reconnects instead of failing.
    assert_eq!(cmap.get_u32("w.a").unwrap_err().cs_error(), corowire::CsError::NotExist);
    let _server = restart.join().unwrap();
}

/// Runs `run` on a thread; its result, or a failure if it has not returned within 20 s
/// (instead of hanging the suite).
fn returns<T: Send + 'static>(run: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(run()).unwrap());
    rx.recv_timeout(Duration::from_secs(20)).expect("the call returns while the server is down")
}

#[test]
fn a_dispatch_that_does_not_wait_returns_while_the_server_is_down() {
    use corowire_unix::DispatchMode;
    let tag = "resil-nowait";
    let server = TestServer::start(tag);
    let mut cmap = Cmap::connect_with(Options { timeout: None, ..resilient(&server.cmap_name) }).unwrap();
    cmap.track_add(Some("n.a"), TrackType::ADD, |_| {}).unwrap();
    let mut vq = Votequorum::connect_with(Options { timeout: None, ..resilient(&server.vq_name) }).unwrap();
    vq.track_start(1, TrackFlags::CHANGES).unwrap();
    drop(server);
    let (mut cmap, mut vq) = returns(move || {
        for mode in [DispatchMode::All, DispatchMode::OneNonBlocking, DispatchMode::All] {
            assert!(matches!(cmap.dispatch(mode).unwrap_err(), Error::Connect { .. }));
            assert!(matches!(vq.dispatch(mode).unwrap_err(), Error::Connect { .. }));
        }
        (cmap, vq)
    });
    // Back: the next dispatch reconnects and reports it.
    let _server = TestServer::start(tag);
    assert_eq!(cmap.dispatch(DispatchMode::All).unwrap_err(), Error::Resync);
    assert_eq!(vq.dispatch(DispatchMode::All).unwrap_err(), Error::Resync);
}
