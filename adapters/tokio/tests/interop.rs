//! The async clients against a real corosync, the proof: many tasks on one
//! connection, cancelled futures, a restart (SIGKILL) and a pause (SIGSTOP) under open
//! streams, and a consumer that stops reading. Run inside `tests/harness/with-corosync`
//! (`--test-threads=1`: the restart test stops the shared daemon and starts it again).

use core::time::Duration;
use std::process::Command;

#[path = "../../../tests/support/corosync.rs"]
mod corosync;

use corosync::{corosync_pid, ensure_corosync, eventually, signal};
use corowire_tokio::{
    Cmap, Error, Options, Reconnect, TrackFlags, TrackType, Tracked, Votequorum, STREAM_CAPACITY,
};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap()
}

/// Options of a connection that survives corosync restarts, with a 1 s call timeout.
fn resilient() -> Options {
    Options {
        timeout: Some(Duration::from_secs(1)),
        reconnect: Some(Reconnect::default()),
        ..Options::for_tracking()
    }
}

/// A key unique to this process.
fn k(name: &str) -> String {
    format!("corowire.tokio.{}.{name}", std::process::id())
}

fn cmapctl_set(key: &str, value: u32) {
    let status = Command::new("corosync-cmapctl").args(["-s", key, "u32", &value.to_string()]).status();
    assert!(status.unwrap().success(), "corosync-cmapctl -s {key}");
}

/// libqb's entries in `/dev/shm` (the harness's private tmpfs), without the blackbox.
fn rings() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.contains("blackbox"))
        .collect();
    names.sort();
    names
}

/// The next event of `stream` within 10 s (skipping none).
async fn next<T: core::fmt::Debug>(stream: &mut corowire_tokio::Subscription<T>) -> Tracked<T> {
    tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .expect("no item within 10 s")
        .expect("the stream ended")
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn two_hundred_tasks_times_a_hundred_gets() {
    runtime().block_on(async {
        let cmap = Cmap::connect().await.unwrap();
        for i in 0..200u32 {
            cmap.set_u32(&k(&format!("many.{i}")), i).await.unwrap();
        }
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let cmap = cmap.clone();
                tokio::spawn(async move {
                    for j in 0..100u32 {
                        let key = (i * 7 + j) % 200;
                        assert_eq!(cmap.get_u32(&k(&format!("many.{key}"))).await.unwrap(), key);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(cmap.peak_in_flight() > 1, "never more than one request in flight");
    });
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn ten_thousand_dropped_futures_leave_no_ring_and_the_connection_in_step() {
    let before = rings();
    runtime().block_on(async {
        let cmap = Cmap::connect().await.unwrap();
        for i in 0..20u32 {
            cmap.set_u32(&k(&format!("cancel.{i}")), i).await.unwrap();
        }
        let mut seed = 0x2545_f491_u32;
        for round in 0..10_000u32 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let key = k(&format!("cancel.{}", round % 20));
            let limit = Duration::from_micros(u64::from(seed % 200));
            let _ = tokio::time::timeout(limit, cmap.get_u32(&key)).await;
        }
        for i in 0..20u32 {
            assert_eq!(cmap.get_u32(&k(&format!("cancel.{i}"))).await.unwrap(), i);
        }
    });
    // The connection thread ends with the handle, the daemon removes the rings. (Rings of
    // earlier tests' connections may still be going away.)
    let gone = eventually(25, || rings().iter().all(|r| before.contains(r)));
    assert!(gone, "rings left: {:?} (before: {before:?})", rings());
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn a_consumer_that_stops_reading_gets_a_lagged_item() {
    runtime().block_on(async {
        let cmap = Cmap::connect_with(Options::for_tracking()).await.unwrap();
        let writer = Cmap::connect().await.unwrap();
        let prefix = k("slow.");
        let mut stream = cmap.track(Some(&prefix), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        for i in 0..5000u32 {
            writer.set_u32(&format!("{prefix}{i}"), i).await.unwrap();
        }
        // A call on the reader's connection is answered after the events before it were read.
        let _ = cmap.get_u32(&format!("{prefix}4999")).await.unwrap();
        assert!(stream.buffered() <= STREAM_CAPACITY);
        let mut events = 0;
        for _ in 0..STREAM_CAPACITY {
            assert!(matches!(next(&mut stream).await, Tracked::Event(_)));
            events += 1;
        }
        // Reported once the buffer is read, without another change.
        let Tracked::Lagged(lost) = next(&mut stream).await else { panic!("no lagged item") };
        assert!(lost as usize + events <= 5000 && lost > 0, "{lost} lost, {events} read");
    });
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn streams_survive_a_sigkill_restart_and_a_sigstop() {
    let options = resilient();
    let key = k("restart");
    runtime().block_on(async {
        let cmap = Cmap::connect_with(options.clone()).await.unwrap();
        let vq = Votequorum::connect_with(options.clone()).await.unwrap();
        let mut track = cmap.track(Some(&key), TrackType::ALL).await.unwrap();
        let mut quorum = vq.track(TrackFlags::CHANGES).await.unwrap();

        // SIGKILL, then corosync started again as the harness starts it.
        signal("-KILL", &corosync_pid().expect("corosync runs"));
        // Both streams say so at once, before corosync is back.
        assert_eq!(next(&mut track).await, Tracked::Disconnected);
        while !matches!(next(&mut quorum).await, Tracked::Disconnected) {}
        assert!(!cmap.is_connected() && !vq.is_connected());
        // A call made while the daemon is down waits for the reconnect (or its timeout).
        assert!(matches!(cmap.get_u32(&key).await, Err(Error::Timeout | Error::Disconnected)));
        ensure_corosync();
        assert_eq!(next(&mut track).await, Tracked::Resync);
        assert!(cmap.is_connected());
        // The quorum stream first has the state TRACK_START queued (CHANGES implies it).
        while !matches!(next(&mut quorum).await, Tracked::Resync) {}
        cmapctl_set(&key, 7);
        let Tracked::Event(e) = next(&mut track).await else { panic!("not an event") };
        assert_eq!(e.key(), key);
        assert_eq!(cmap.get_u32(&key).await.unwrap(), 7);

        // SIGSTOP for longer than the call timeout: the call fails, the stream stays.
        let pid = corosync_pid().expect("corosync runs");
        signal("-STOP", &pid);
        assert_eq!(cmap.get_u32(&key).await.unwrap_err(), Error::Timeout);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        signal("-CONT", &pid);
        cmapctl_set(&key, 8);
        let Tracked::Event(e) = next(&mut track).await else { panic!("not an event") };
        assert_eq!(
            (e.key().into_owned(), e.new_value.map(|v| v.to_string())),
            (key.clone(), Some("8".into()))
        );
        assert_eq!(cmap.get_u32(&key).await.unwrap(), 8);
    });
    // Leave a serving daemon for the tests after this one.
    ensure_corosync();
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn a_sigstop_longer_than_the_timeout_with_a_full_window_leaves_the_connection_working() {
    // The breaker's wedge: more calls than the window while corosync is stopped; each times
    // out and keeps its place until its late reply, nobody is refused, and after SIGCONT the
    // same connection answers again.
    let key = k("window");
    runtime().block_on(async {
        let cmap = Cmap::connect_with(resilient()).await.unwrap();
        cmap.set_u32(&key, 5).await.unwrap();
        let _track = cmap.track(Some(&key), TrackType::ALL).await.unwrap();
        let pid = corosync_pid().expect("corosync runs");
        signal("-STOP", &pid);
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cmap, key) = (cmap.clone(), key.clone());
                tokio::spawn(async move { [cmap.get_u32(&key).await, cmap.get_u32(&key).await] })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.extend(t.await.unwrap());
        }
        signal("-CONT", &pid);
        assert!(results.iter().all(|r| matches!(r, Ok(5) | Err(Error::Timeout))), "{results:?}");
        let mut answer = None;
        for _ in 0..50 {
            if let Ok(v) = cmap.get_u32(&key).await {
                answer = Some(v);
                break;
            }
        }
        assert_eq!(answer, Some(5));
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let (cmap, key) = (cmap.clone(), key.clone());
                tokio::spawn(async move {
                    for _ in 0..20 {
                        assert_eq!(cmap.get_u32(&key).await.unwrap(), 5);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

#[test]
#[ignore = "needs corosync (tests/harness/with-corosync)"]
fn an_idle_connection_with_open_streams_does_not_wake() {
    runtime().block_on(async {
        let cmap = Cmap::connect_with(Options::for_tracking()).await.unwrap();
        let _track = cmap.track(Some(&k("idle.")), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        cmap.set_u8(&k("other"), 1).await.unwrap();
        // The thread finishes its round after it answered the call: let it go to sleep.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = cmap.rounds();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cmap.rounds(), before, "the connection thread went round its loop while idle");
    });
}
