//! Resilient connections ([`Options::reconnect`]) against a real corosync that the tests kill,
//! stop and start again. Run them inside a private daemon of their own (they restart it):
//!
//! ```sh
//! cargo test --workspace --no-run --locked
//! tests/harness/with-corosync -- cargo test --locked --offline -p corowire-unix \
//!     --test resilience -- --ignored --test-threads=1
//! ```

use core::time::Duration;
use std::process::Command;

use corowire::votequorum::TrackFlags;
use corowire_unix::cmap::{Cmap, OwnedTrackNotification, OwnedValue, TrackType};
use corowire_unix::votequorum::{OwnedNotification, Votequorum};
use corowire_unix::{Error, Options, Reconnect};

#[path = "../../../tests/support/corosync.rs"]
mod corosync;
use corosync::{corosync_pid, ensure_corosync, eventually, signal};

/// Resilient options: calls time out after 2 s, the daemon is waited for up to 60 s.
fn resilient() -> Options {
    let mut reconnect = Reconnect::default();
    reconnect.start_wait = Duration::from_secs(60);
    Options { timeout: Some(Duration::from_secs(2)), reconnect: Some(reconnect), ..Options::for_tracking() }
}

/// Kills the daemon with SIGKILL and waits until it is gone.
fn kill_corosync() {
    let pid = corosync_pid().expect("corosync runs");
    signal("-KILL", &pid);
    assert!(eventually(100, || corosync_pid().is_none()), "corosync did not die");
}

/// Sets `key` to the u32 `value` with the C tool.
fn c_set(key: &str, value: u32) {
    let ok = Command::new("corosync-cmapctl").args(["-s", key, "u32", &value.to_string()]).status();
    assert!(ok.expect("run corosync-cmapctl").success());
}

/// Pulls events until `want` picks one, at most `tries` waits of 1 s; the events before it
/// may be anything, including connect errors while the daemon is away.
fn pull<T, E: core::fmt::Debug>(
    tries: u32,
    mut next: impl FnMut() -> Result<Option<T>, Error>,
    mut want: impl FnMut(&Result<Option<T>, Error>) -> Option<E>,
) -> E {
    for _ in 0..tries {
        let got = next();
        if let Some(found) = want(&got) {
            return found;
        }
    }
    panic!("nothing wanted came in {tries} waits");
}

fn modified(n: &Result<Option<OwnedTrackNotification>, Error>, key: &str) -> Option<OwnedTrackNotification> {
    match n {
        Ok(Some(n)) if n.key() == key => Some(n.clone()),
        _ => None,
    }
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn tracks_survive_a_killed_and_restarted_daemon() {
    ensure_corosync();
    let key = format!("corowire.resil.{}", std::process::id());
    let mut cmap = Cmap::connect_with(resilient()).unwrap();
    let track = cmap.track_add(Some(&key), TrackType::MODIFY | TrackType::ADD, |_| {}).unwrap();
    let mut vq = Votequorum::connect_with(resilient()).unwrap();
    vq.track_start(77, TrackFlags::CHANGES).unwrap();
    let wait = Some(Duration::from_secs(1));
    // Drain what tracking queued at once.
    while vq.next_event(Some(Duration::from_millis(200))).unwrap().is_some() {}

    kill_corosync();
    ensure_corosync();

    // The marker comes once, then the same handles flow again.
    pull(60, || cmap.next_event(wait), |r| matches!(r, Err(Error::Resync)).then_some(()));
    c_set(&key, 7);
    let n = pull(20, || cmap.next_event(wait), |r| modified(r, &key));
    assert_eq!(n.track, track, "the notification comes through the handle the user was given");
    assert_eq!(n.new_value, Some(OwnedValue::UInt32(7)));
    c_set(&key, 8);
    let n = pull(20, || cmap.next_event(wait), |r| modified(r, &key));
    assert_eq!((n.track, n.new_value), (track, Some(OwnedValue::UInt32(8))));
    cmap.track_delete(track).unwrap();

    pull(60, || vq.next_event(wait), |r| matches!(r, Err(Error::Resync)).then_some(()));
    // Tracking started again with the same context: CHANGES queues the current state.
    let quorate = pull(
        20,
        || vq.next_event(wait),
        |r| match r {
            Ok(Some(OwnedNotification::Quorum { quorate, context, .. })) => Some((*quorate, *context)),
            _ => None,
        },
    );
    assert_eq!(quorate, (true, 77));
    // Calls work on the new connection.
    assert_eq!(cmap.get_u32(&key).unwrap(), 8);
    assert!(vq.get_info(0).unwrap().is_quorate());
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn a_call_pending_while_the_daemon_is_stopped_fails_then_calls_work() {
    ensure_corosync();
    let key = format!("corowire.stop.{}", std::process::id());
    let mut options = resilient();
    options.timeout = Some(Duration::from_millis(500));
    let mut cmap = Cmap::connect_with(options).unwrap();
    cmap.set_u32(&key, 1).unwrap();
    let track = cmap.track_add(Some(&key), TrackType::MODIFY, |_| {}).unwrap();
    let pid = corosync_pid().expect("corosync runs");
    signal("-STOP", &pid);
    let pending = cmap.get_u32(&key);
    signal("-CONT", &pid);
    assert_eq!(pending, Err(Error::Timeout));
    assert_eq!(cmap.get_u32(&key).unwrap(), 1);
    c_set(&key, 2);
    let n = pull(20, || cmap.next_event(Some(Duration::from_secs(1))), |r| modified(r, &key));
    assert_eq!((n.track, n.new_value), (track, Some(OwnedValue::UInt32(2))));
    cmap.delete(&key).unwrap();
}

#[test]
#[ignore = "needs corosync: run via tests/harness/with-corosync"]
fn connect_waits_for_the_daemon_to_come_up() {
    ensure_corosync();
    kill_corosync();
    // Without the option, connecting fails at once.
    let refused = Cmap::connect().unwrap_err();
    assert!(matches!(refused, Error::Connect { .. }), "{refused:?}");
    let waiting = std::thread::spawn(|| {
        let mut cmap = Cmap::connect_with(resilient())?;
        let mut vq = Votequorum::connect_with(resilient())?;
        Ok::<_, Error>((cmap.get_string("totem.cluster_name")?, vq.get_info(0)?.is_quorate()))
    });
    ensure_corosync();
    let (name, quorate) = waiting.join().unwrap().unwrap();
    assert_eq!(name, "corowire-test");
    assert!(quorate);
}
