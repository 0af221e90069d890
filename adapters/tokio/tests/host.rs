//! The async clients against corowire-unix's built-in server, started in-process (no daemon,
//! no root): calls, pipelining from many tasks, cancellation, track streams with their
//! lagged item, both runtimes, and an idle connection that does not wake.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::Arc;

use corowire_tokio::{
    Cmap, Error, Options, OwnedValue, TrackEvent, TrackType, Tracked, Votequorum, STREAM_CAPACITY,
};
use corowire_unix::server::{Server, ServerConfig};
use corowire_unix::{CsError, TrackFlags};

/// A built-in server on names unique to this test; stops when dropped (its connections
/// hang up). [`Built::pause`] makes it stop answering, as a SIGSTOP would.
struct Built {
    cmap: String,
    votequorum: String,
    stop: Arc<AtomicBool>,
    paused: Arc<AtomicBool>,
    /// Whether the server thread has seen the pause (and answers nothing more).
    idle: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Built {
    fn start(test: &str) -> Self {
        let tag = format!("corowire-tokio-{test}-{}", std::process::id());
        let (cmap, votequorum) = (format!("{tag}-cmap"), format!("{tag}-vq"));
        let mut server = Server::bind(ServerConfig {
            cmap_name: cmap.clone(),
            votequorum_name: Some(votequorum.clone()),
            quorum_name: None,
            cfg_name: None,
            ..ServerConfig::default()
        })
        .unwrap();
        let (stop, paused) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
        let idle = Arc::new(AtomicBool::new(false));
        let (flag, pause, seen) = (stop.clone(), paused.clone(), idle.clone());
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let paused = pause.load(Ordering::SeqCst);
                seen.store(paused, Ordering::SeqCst);
                if paused {
                    std::thread::sleep(Duration::from_millis(10));
                } else {
                    server.step(Some(Duration::from_millis(50))).unwrap();
                }
            }
        });
        Self { cmap, votequorum, stop, paused, idle, thread: Some(thread) }
    }

    /// Stops answering (`true`), once the server thread has seen it, or answers again
    /// (`false`); connections stay open.
    fn pause(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
        while paused && !self.idle.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn cmap_options(&self) -> Options {
        Options { service_name: Some(self.cmap.clone()), ..Options::for_tracking() }
    }

    fn vq_options(&self) -> Options {
        Options { service_name: Some(self.votequorum.clone()), ..Options::default() }
    }
}

impl Drop for Built {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// A connection to `server`, after setting `PREFIX.0` .. `PREFIX.n-1` to their numbers.
async fn with_keys(server: &Built, prefix: &str, n: u32) -> Cmap {
    let cmap = Cmap::connect_with(server.cmap_options()).await.unwrap();
    for i in 0..n {
        cmap.set_u32(&format!("{prefix}.{i}"), i).await.unwrap();
    }
    cmap
}

/// A connection tracking every change under `prefix`, and another to make changes with.
async fn tracking(server: &Built, prefix: &str) -> (Cmap, Cmap, corowire_tokio::TrackStream) {
    let cmap = Cmap::connect_with(server.cmap_options()).await.unwrap();
    let writer = Cmap::connect_with(server.cmap_options()).await.unwrap();
    let stream = cmap.track(Some(prefix), TrackType::ALL | TrackType::PREFIX).await.unwrap();
    (cmap, writer, stream)
}

fn multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_time().build().unwrap()
}

fn current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap()
}

#[test]
fn calls_answer_as_the_blocking_client_does() {
    let server = Built::start("calls");
    current().block_on(async {
        let cmap = Cmap::connect_with(server.cmap_options()).await.unwrap();
        cmap.set_u32("t.counter", 41).await.unwrap();
        cmap.inc("t.counter").await.unwrap();
        assert_eq!(cmap.get_u32("t.counter").await.unwrap(), 42);
        cmap.dec("t.counter").await.unwrap();
        assert_eq!(cmap.get("t.counter").await.unwrap(), OwnedValue::UInt32(41));
        let long = "x".repeat(5000);
        cmap.set_string("t.long", &long).await.unwrap();
        assert_eq!(cmap.get_string("t.long").await.unwrap(), long);
        // corosync counts a string's NUL.
        assert_eq!(cmap.get_type("t.long").await.unwrap().1, 5001);
        let keys: Vec<String> = cmap.keys(Some("t.")).await.unwrap().into_iter().map(|k| k.0).collect();
        assert_eq!(keys, ["t.counter", "t.long"]);
        let dump = cmap.dump(Some("t.")).await.unwrap();
        assert_eq!(dump[0].1.as_ref().unwrap(), &OwnedValue::UInt32(41));
        // get_many sends its GETs before it awaits any answer.
        let fresh = with_keys(&server, "m", 50).await;
        let names: Vec<String> = (0..50).map(|i| format!("m.{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let many = fresh.get_many(&names).await;
        assert!(many.iter().enumerate().all(|(i, v)| v.as_ref().ok() == Some(&OwnedValue::UInt32(i as u32))));
        assert!(fresh.peak_in_flight() > 1, "get_many sent one GET at a time");
        cmap.delete("t.counter").await.unwrap();
        let missing = cmap.get("t.counter").await.unwrap_err();
        assert_eq!(missing.answered(), Some(CsError::NotExist), "{missing}");
        assert!(matches!(cmap.get_u8("t.long").await, Err(Error::Check(_))));
        cmap.set_binary("t.bin", &[0, 1, 2]).await.unwrap();
        assert_eq!(cmap.get_binary("t.bin").await.unwrap(), [0, 1, 2]);

        let vq = Votequorum::connect_with(server.vq_options()).await.unwrap();
        let info = vq.get_info(0).await.unwrap();
        assert!(info.nodeid != 0);
        let mut stream = vq.track(TrackFlags::CURRENT | TrackFlags::CHANGES).await.unwrap();
        match stream.next().await.unwrap() {
            Tracked::Event(n) => {
                assert!(matches!(n, corowire_tokio::OwnedNotification::NodeList { context: 0, .. }), "{n:?}")
            }
            other => panic!("{other:?}"),
        }
    });
}

#[test]
fn two_hundred_tasks_share_one_pipelined_connection() {
    let server = Built::start("pipeline");
    multi().block_on(async {
        let cmap = with_keys(&server, "p", 200).await;
        let tasks: Vec<_> = (0..200u32)
            .map(|i| {
                let cmap = cmap.clone();
                tokio::spawn(async move {
                    for j in 0..25u32 {
                        let key = (i + j) % 200;
                        assert_eq!(cmap.get_u32(&format!("p.{key}")).await.unwrap(), key);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert!(cmap.peak_in_flight() > 1, "the tasks' requests were never in flight together");
    });
}

#[test]
fn dropped_futures_leave_the_connection_in_step() {
    let server = Built::start("cancel");
    multi().block_on(async {
        let cmap = with_keys(&server, "c", 50).await;
        // Futures dropped before, while and after their request is sent.
        for round in 0..2000u32 {
            let key = format!("c.{}", round % 50);
            let limit = Duration::from_micros(u64::from(round % 7) * 20);
            let _ = tokio::time::timeout(limit, cmap.get_u32(&key)).await;
        }
        for i in 0..50u32 {
            assert_eq!(cmap.get_u32(&format!("c.{i}")).await.unwrap(), i);
        }
    });
}

#[test]
fn a_slow_track_consumer_gets_a_lagged_item_and_bounded_memory() {
    let server = Built::start("lagged");
    current().block_on(async {
        let (cmap, writer, mut stream) = tracking(&server, "l.").await;
        let changes = STREAM_CAPACITY + 500;
        for i in 0..changes {
            writer.set_u32(&format!("l.{i}"), 1).await.unwrap();
        }
        // The reader's connection delivers as it reads: wait until it has seen them all.
        while cmap.get_u32(&format!("l.{}", changes - 1)).await.is_err() {}
        let _ = cmap.keys(Some("l.")).await.unwrap();
        assert!(stream.buffered() <= STREAM_CAPACITY);
        let mut events = 0;
        while events < STREAM_CAPACITY {
            match stream.next().await.unwrap() {
                Tracked::Event(e) => {
                    assert_eq!(e.event, TrackEvent::Add);
                    events += 1;
                }
                other => panic!("{other:?} before the buffer was read"),
            }
        }
        // The lost changes are reported once the buffer is read, without waiting for
        // another change (a guard, not a timing: without it a failure would hang).
        let lagged = tokio::time::timeout(Duration::from_secs(20), stream.next()).await.unwrap().unwrap();
        let Tracked::Lagged(lost) = lagged else { panic!("{lagged:?}") };
        assert_eq!(lost as usize + events, changes);
        writer.set_u32("l.last", 2).await.unwrap();
        let Tracked::Event(last) = stream.next().await.unwrap() else { panic!("not the event") };
        assert_eq!(last.key(), "l.last");
    });
}

#[test]
fn a_dropped_track_stream_deletes_the_track() {
    let server = Built::start("untrack");
    current().block_on(async {
        let (cmap, writer, mut first) = tracking(&server, "u.").await;
        let second = cmap.track(Some("u."), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        drop(second);
        writer.set_u8("u.a", 1).await.unwrap();
        let Tracked::Event(e) = first.next().await.unwrap() else { panic!() };
        assert_eq!(e.key(), "u.a");
        // The core's track table holds 64 tracks and frees one only when its TRACK_DELETE
        // is answered: 100 tracks opened and dropped one after the other fit only if each
        // drop sent one.
        for _ in 0..100 {
            drop(cmap.track(Some("v."), TrackType::ALL).await.unwrap());
        }
        drop(first);
        // A call after the drop is answered after the TRACK_DELETE, in order.
        writer.set_u8("u.b", 1).await.unwrap();
    });
}

#[test]
fn an_idle_connection_does_not_wake() {
    let server = Built::start("idle");
    current().block_on(async {
        let cmap = Cmap::connect_with(server.cmap_options()).await.unwrap();
        let _stream = cmap.track(Some("i."), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        cmap.set_u8("i.x", 1).await.unwrap();
        // The thread finishes its round after it answered the call: let it go to sleep.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let before = cmap.rounds();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(cmap.rounds(), before, "the connection thread went round its loop while idle");
    });
}

#[test]
fn a_lost_connection_ends_the_streams_and_fails_the_calls() {
    let server = Built::start("lost");
    let rt = current();
    let (cmap, mut stream) = rt.block_on(async {
        let cmap = Cmap::connect_with(server.cmap_options()).await.unwrap();
        let stream = cmap.track(Some("x."), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        (cmap, stream)
    });
    drop(server);
    rt.block_on(async {
        // The idle connection thread sees the hang-up (a guard, not a timing: it must end).
        let guard = Duration::from_secs(20);
        let loss = tokio::time::timeout(guard, stream.next()).await;
        assert_eq!(loss, Ok(Some(Tracked::Disconnected)));
        assert!(!cmap.is_connected());
        let end = tokio::time::timeout(guard, stream.next()).await;
        assert!(matches!(end, Ok(None)), "{end:?}");
        assert_eq!(cmap.get_u8("x.a").await.unwrap_err(), Error::Disconnected);
    });
}

#[test]
fn a_reconnect_resyncs_the_streams_of_a_restarted_server() {
    let server = Built::start("resync");
    let options = Options { reconnect: Some(corowire_tokio::Reconnect::default()), ..server.cmap_options() };
    let vq_options = Options { reconnect: Some(corowire_tokio::Reconnect::default()), ..server.vq_options() };
    let rt = multi();
    let (cmap, vq, mut track, mut quorum, before) = rt.block_on(async {
        let cmap = Cmap::connect_with(options).await.unwrap();
        let vq = Votequorum::connect_with(vq_options).await.unwrap();
        let mut track = cmap.track(Some("r."), TrackType::ALL | TrackType::PREFIX).await.unwrap();
        let quorum = vq.track(TrackFlags::CHANGES).await.unwrap();
        cmap.set_u8("r.before", 1).await.unwrap();
        let Some(Tracked::Event(before)) = track.next().await else { panic!() };
        (cmap, vq, track, quorum, before.track)
    });
    drop(server);
    let again = Built::start("resync");
    rt.block_on(async {
        let guard = Duration::from_secs(20);
        // Each stream says at once that the connection is gone, then that it is back.
        let first = tokio::time::timeout(guard, track.next()).await.unwrap();
        assert_eq!(first, Some(Tracked::Disconnected));
        let second = tokio::time::timeout(guard, track.next()).await.unwrap();
        assert_eq!(second, Some(Tracked::Resync));
        assert!(cmap.is_connected());
        let mut markers = Vec::new();
        while markers.last() != Some(&Tracked::Resync) {
            match tokio::time::timeout(guard, quorum.next()).await.unwrap() {
                Some(Tracked::Event(_)) => {}
                Some(marker) => markers.push(marker),
                None => panic!("the quorum stream ended"),
            }
        }
        assert_eq!(markers, [Tracked::Disconnected, Tracked::Resync]);
        assert!(vq.is_connected());
        // The same stream carries the new server's changes.
        let writer = Cmap::connect_with(again.cmap_options()).await.unwrap();
        writer.set_u8("r.after", 1).await.unwrap();
        let Some(Tracked::Event(e)) = tokio::time::timeout(guard, track.next()).await.unwrap() else {
            panic!()
        };
        assert_eq!(e.key(), "r.after");
        // The track keeps its handle, as the blocking client's does.
        assert_eq!(e.track, before);
        assert_eq!(track.track_handle(), before);
        assert_eq!(cmap.get_u8("r.after").await.unwrap(), 1);
    });
}

#[test]
fn track_each_splits_the_votequorum_notifications_by_kind() {
    let server = Built::start("each");
    current().block_on(async {
        let vq = Votequorum::connect_with(server.vq_options()).await.unwrap();
        let mut streams = vq.track_each(TrackFlags::CURRENT | TrackFlags::CHANGES).await.unwrap();
        let quorum = streams.quorum.next().await.unwrap();
        assert!(
            matches!(quorum, Tracked::Event(corowire_tokio::OwnedNotification::Quorum { .. })),
            "{quorum:?}"
        );
        let list = streams.node_list.next().await.unwrap();
        assert!(
            matches!(list, Tracked::Event(corowire_tokio::OwnedNotification::NodeList { .. })),
            "{list:?}"
        );
        let info = vq.get_info(0).await.unwrap();
        let expected = info.expected_votes;
        // More expected votes keep the cluster quorate only with more votes.
        vq.set_votes(info.nodeid, info.votes + 1).await.unwrap();
        vq.set_expected(expected + 1).await.unwrap();
        let votes = streams.expected_votes.next().await.unwrap();
        let want =
            corowire_tokio::OwnedNotification::ExpectedVotes { context: 0, expected_votes: expected + 1 };
        assert_eq!(votes, Tracked::Event(want));
        // Dropping all three stops tracking: tracking can start again on this connection.
        drop(streams);
        let _again = vq.track(TrackFlags::CHANGES).await.unwrap();
    });
}

#[test]
fn timed_out_calls_keep_their_place_until_their_late_replies_come() {
    // The breaker's SIGSTOP: more calls than the window while the server does not answer.
    let server = Built::start("late");
    let options = Options { timeout: Some(Duration::from_millis(500)), ..server.cmap_options() };
    multi().block_on(async {
        let cmap = Cmap::connect_with(options).await.unwrap();
        cmap.set_u32("late.k", 7).await.unwrap();
        server.pause(true);
        let tasks: Vec<_> = (0..150)
            .map(|_| {
                let cmap = cmap.clone();
                tokio::spawn(async move { [cmap.get_u32("late.k").await, cmap.get_u32("late.k").await] })
            })
            .collect();
        // Each waits for a place (the timed-out ones hold theirs) and times out; none is
        // refused with PipelineFull.
        for t in tasks {
            assert_eq!(t.await.unwrap(), [Err(Error::Timeout), Err(Error::Timeout)]);
        }
        server.pause(false);
        // The late replies are read and discarded; the connection answers again (a bounded
        // poll: a call may still time out on a busy machine).
        let mut answer = None;
        for _ in 0..50 {
            if let Ok(v) = cmap.get_u32("late.k").await {
                answer = Some(v);
                break;
            }
        }
        assert_eq!(answer, Some(7));
        cmap.set_u32("late.j", 8).await.unwrap();
        assert_eq!((cmap.get_u32("late.j").await, cmap.get_u32("late.k").await), (Ok(8), Ok(7)));
    });
}

#[test]
fn calls_behind_a_qdevice_registration_wait_for_it() {
    let server = Built::start("barrier");
    current().block_on(async {
        let vq = Votequorum::connect_with(server.vq_options()).await.unwrap();
        // One batch: the registration, then calls the core may not send behind it.
        let (registered, a, b, c) =
            tokio::join!(vq.qdevice_register("Device"), vq.get_info(0), vq.get_info(0), vq.get_info(0));
        registered.unwrap();
        for info in [a, b, c] {
            assert_eq!(info.unwrap().nodeid, vq.get_info(0).await.unwrap().nodeid);
        }
    });
}
#[test]
fn connect_waits_at_most_start_wait_for_a_server_that_does_not_answer() {
    // A listener on a libqb name that takes connections and never answers the handshake
    // (a stopped daemon); `timeout: None`, the default.
    let name = format!("corowire-tokio-silent-{}", std::process::id());
    // libqb's abstract address: the name padded with zeros to 107 bytes.
    let mut padded = name.clone().into_bytes();
    padded.resize(107, 0);
    let addr =
        <std::os::unix::net::SocketAddr as std::os::linux::net::SocketAddrExt>::from_abstract_name(padded)
            .unwrap();
    let _listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let mut reconnect = corowire_tokio::Reconnect::default();
    reconnect.start_wait = Duration::from_secs(1);
    let options = Options { service_name: Some(name), reconnect: Some(reconnect), ..Options::default() };
    current().block_on(async {
        // A guard, not a timing: without the bound the connect never ends.
        let connected = tokio::time::timeout(Duration::from_secs(30), Cmap::connect_with(options)).await;
        assert!(matches!(connected, Ok(Err(Error::Connect { .. }))), "{connected:?}");
    });
}

#[test]
fn a_call_in_flight_at_the_loss_is_disconnected_and_one_during_the_reconnect_times_out() {
    let server = Built::start("inflight");
    let options = Options {
        timeout: Some(Duration::from_secs(5)),
        reconnect: Some(corowire_tokio::Reconnect::default()),
        ..server.cmap_options()
    };
    multi().block_on(async {
        let cmap = Cmap::connect_with(options).await.unwrap();
        server.pause(true);
        let call = tokio::spawn({
            let cmap = cmap.clone();
            async move { cmap.get_u32("f.k").await }
        });
        // It is sent (a bounded poll), then the server goes away.
        for _ in 0..500 {
            if cmap.peak_in_flight() >= 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(cmap.peak_in_flight(), 1);
        drop(server);
        assert_eq!(call.await.unwrap(), Err(Error::Disconnected));
        // No server: a new call waits for the reconnect within its timeout.
        assert_eq!(cmap.get_u32("f.k").await, Err(Error::Timeout));
        let again = Built::start("inflight");
        let writer = Cmap::connect_with(again.cmap_options()).await.unwrap();
        writer.set_u32("f.k", 4).await.unwrap();
        assert_eq!(cmap.get_u32("f.k").await, Ok(4));
    });
}

#[test]
fn calls_after_a_storm_of_timeouts_wake_the_connection_thread() {
    // The breaker's `short_real`: 200 tasks whose calls time out at random points. A lost
    // wake-up left the thread asleep with calls (and the window's permits) in its channel.
    let server = Built::start("storm");
    let options = Options { timeout: Some(Duration::from_millis(2)), ..server.cmap_options() };
    multi().block_on(async {
        // The 2 ms bound the handshake too: a bounded retry.
        let mut connected = None;
        for _ in 0..500 {
            if let Ok(cmap) = Cmap::connect_with(options.clone()).await {
                connected = Some(cmap);
                break;
            }
        }
        let cmap = connected.unwrap();
        while cmap.set_u32("s.a", 7).await.is_err() {}
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let cmap = cmap.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        assert!(matches!(cmap.get_u32("s.a").await, Ok(7) | Err(Error::Timeout)));
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Every call reaches the thread: some answer (a bounded poll: each may time out).
        let mut answered = false;
        for _ in 0..500 {
            if cmap.get_u32("s.a").await == Ok(7) {
                answered = true;
                break;
            }
        }
        assert!(answered);
    });
}
