//! Interoperability tests against a corosync daemon configured with `qb_ipc_type: socket`
//! (libqb's socket transport, connection type 0).
//!
//! Run them with
//! `tests/harness/with-corosync --qb-ipc-type socket -- cargo test -p corowire-unix --test interop_socket -- --ignored --test-threads=1`.
//! Every test first asserts that the harness runs corosync in socket mode, so that running
//! them elsewhere fails loudly instead of passing silently.

use core::time::Duration;
use std::sync::Arc;

use corowire::cmap::{TrackEvent as Ev, TrackType};
use corowire::dispatch::DispatchMode;
use corowire::CsError;
use corowire_unix::cmap::{Cmap, OwnedValue};
use corowire_unix::votequorum::Votequorum;

mod common;
use common::{cmapctl, dispatch_until, eventually, k, recorder, ring_dirs, run_child_with_own_daemon, Seen};

const IGNORE: &str =
    "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket";

/// Asserts that the harness runs corosync in socket mode, then connects to CMAP.
fn connect_in_socket_mode() -> Cmap {
    assert_eq!(
        std::env::var("COROWIRE_QB_IPC_TYPE").as_deref(),
        Ok("socket"),
        "COROWIRE_QB_IPC_TYPE is not 'socket' ({IGNORE})"
    );
    Cmap::connect().unwrap()
}

#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn get_set_delete_over_sockets() {
    let mut cmap = connect_in_socket_mode();
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire-test");
    let key = k("value");
    cmap.set_u32(&key, 7).unwrap();
    assert_eq!(cmap.get_u32(&key).unwrap(), 7);
    assert!(cmapctl(&["-g", &key]).contains("= 7"));
    // A datagram far larger than a page.
    let big: Vec<u8> = (0..16000u32).map(|i| (i % 251) as u8).collect();
    cmap.set_binary(&k("big"), &big).unwrap();
    assert_eq!(cmap.get(&k("big")).unwrap(), OwnedValue::Binary(big));
    assert_eq!(cmap.get("corowire.no.such.key").unwrap_err().cs_error(), CsError::NotExist);
    let names: Vec<String> = (0..40).map(|i| k(&format!("many.{i}"))).collect();
    for (i, name) in names.iter().enumerate() {
        cmap.set_u32(name, i as u32).unwrap();
    }
    let dump = cmap.dump(Some(&k("many."))).unwrap();
    assert_eq!(dump.len(), 40);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let got = cmap.get_many(&refs).unwrap();
    assert!(got.iter().enumerate().all(|(i, v)| *v == Ok(OwnedValue::UInt32(i as u32))));
    for name in names.iter().chain([&key, &k("big")]) {
        cmap.delete(name).unwrap();
    }
}

#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn track_notifications_over_the_event_socket() {
    let mut cmap = connect_in_socket_mode();
    let prefix = k("tracked.");
    let seen: Seen = Arc::default();
    cmap.track_add(Some(&prefix), TrackType::ALL, recorder(&seen)).unwrap();
    cmapctl(&["-s", &format!("{prefix}a"), "u32", "1"]);
    let mut other = Cmap::connect().unwrap();
    other.set_u32(&format!("{prefix}b"), 2).unwrap();
    other.delete(&format!("{prefix}a")).unwrap();
    // It polls the fd the handle gives: an epoll fd over the event and setup sockets.
    dispatch_until(&mut cmap, &seen, 3);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (Ev::Add, format!("{prefix}a"), Some(OwnedValue::UInt32(1)), None),
            (Ev::Add, format!("{prefix}b"), Some(OwnedValue::UInt32(2)), None),
            (Ev::Delete, format!("{prefix}a"), None, Some(OwnedValue::UInt32(1))),
        ]
    );
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));
    other.delete(&format!("{prefix}b")).unwrap();
}

#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn votequorum_and_cleanup() {
    let first = connect_in_socket_mode();
    drop(first);
    eventually("no libqb files before the test", || ring_dirs().is_empty());
    let mut vq = Votequorum::connect().unwrap();
    let info = vq.get_info(0).unwrap();
    assert!(info.is_quorate(), "{info:?}");
    let cmaps: Vec<Cmap> = (0..4).map(|_| Cmap::connect().unwrap()).collect();
    assert!(!ring_dirs().is_empty(), "the control files live in /dev/shm");
    drop(cmaps);
    drop(vq);
    eventually("every control file and directory removed", || ring_dirs().is_empty());
}

#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn an_event_larger_than_max_msg_size_is_reported() {
    use corowire_unix::{Error, Options};
    drop(connect_in_socket_mode());
    let small = Options { max_msg_size: 1024, ..Options::default() };
    let mut cmap = Cmap::connect_with(small).unwrap();
    let key = k("big.event");
    cmap.track_add(Some(&key), TrackType::ALL, |_| {}).unwrap();
    let long = "e".repeat(corowire::cmap::VALUE_MAX_LEN);
    Cmap::connect().unwrap().set_string(&key, &long).unwrap();
    // 336 bytes and the new value with its NUL.
    match cmap.dispatch(DispatchMode::Blocking) {
        Err(e @ Error::MessageTooLarge(b)) if b.needed == 336 + long.len() + 1 => {
            assert_eq!(e.cs_error(), CsError::TooBig);
            assert!(e.to_string().contains("max_msg_size"), "{e}");
        }
        other => panic!("dispatch of a {}-byte event: {other:?}", 336 + long.len() + 1),
    }
    cmapctl(&["-d", &key]);
}

/// Not a test on its own: runs next to its own socket-mode daemon (a nested harness) for
/// `daemon_death_shows_on_the_fd`, and kills that daemon.
#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn child_daemon_dies() {
    use corowire_unix::sys::sock::{poll_readable, PollState};
    use corowire_unix::Error;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let mut cmap = connect_in_socket_mode();
    if std::env::var("COROWIRE_INTEROP_CHILD").is_err() {
        return;
    }
    let corosync = Pid::from_raw(std::env::var("COROWIRE_COROSYNC_PID").unwrap().parse().unwrap());
    cmap.track_add(None, TrackType::ALL | TrackType::PREFIX, |_| {}).unwrap();
    assert_eq!(poll_readable(&cmap, Some(Duration::ZERO)), Ok(PollState::Timeout), "ready while idle");
    kill(corosync, Signal::SIGKILL).unwrap();
    // The bound is only there so that a regression fails instead of hanging.
    assert_eq!(poll_readable(&cmap, Some(Duration::from_secs(30))), Ok(PollState::Readable));
    assert_eq!(cmap.dispatch(DispatchMode::All), Err(Error::Disconnected));
    println!("CHILD-DONE");
}

#[test]
#[ignore = "needs corosync in socket mode: run via tests/harness/with-corosync --qb-ipc-type socket"]
fn daemon_death_shows_on_the_fd() {
    drop(connect_in_socket_mode());
    run_child_with_own_daemon(&["--qb-ipc-type", "socket"], "child_daemon_dies");
}
