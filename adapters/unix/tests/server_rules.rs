//! The listener keeps CMAP and votequorum in step (`corowire_unix::server::sync`): a run-time
//! `quorum.*` change reaches the quorum model, and the `runtime.votequorum.*` keys follow with
//! their track events, as corosync's votequorum keeps them through icmap; a membership change
//! reaches votequorum's trackers.

use core::sync::atomic::{AtomicBool, Ordering};
use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corowire::cmap::{TrackEvent as Ev, TrackType};
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{RingId, TrackFlags};
use corowire_unix::cmap::{self, Cmap, OwnedValue};
use corowire_unix::server::{Server, ServerConfig};
use corowire_unix::sys::sock::poll_readable;
use corowire_unix::votequorum::{self, OwnedNotification, Votequorum};

mod builtin;
use builtin::TestServer;

/// A track event: (event, key, new value).
type Event = (Ev, String, Option<OwnedValue>);

#[test]
fn run_time_quorum_changes_update_the_model_and_the_runtime_keys() {
    let server = TestServer::start("rules");
    let mut tracker = server.cmap();
    let seen: Arc<Mutex<Vec<Event>>> = Arc::default();
    let log = Arc::clone(&seen);
    tracker
        .track_add(Some("runtime.votequorum."), TrackType::ALL, move |e| {
            log.lock().unwrap().push((e.event, e.key().into_owned(), e.new_value.map(OwnedValue::from)));
        })
        .unwrap();
    let mut vq = server.votequorum();
    assert!(vq.get_info(0).unwrap().is_quorate());

    let mut writer = server.cmap();
    writer.set_u32("quorum.expected_votes", 3).unwrap();
    let wanted = (Ev::Modify, "runtime.votequorum.ev_barrier".to_owned(), Some(OwnedValue::UInt32(3)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.lock().unwrap().contains(&wanted) {
        assert!(Instant::now() < deadline, "no ev_barrier event: {:?}", seen.lock().unwrap());
        let _ = poll_readable(&tracker, Some(Duration::from_millis(20)));
        tracker.dispatch(DispatchMode::All).unwrap();
    }
    let info = vq.get_info(0).unwrap();
    assert_eq!((info.expected_votes, info.quorum, info.is_quorate()), (3, 2, false));
    // The first run-time re-read makes atb_type appear, as in corosync.
    assert_eq!(writer.get("runtime.votequorum.atb_type").unwrap(), OwnedValue::UInt32(0));

    // cancel_wait_for_all is acted on and reset to 0.
    writer.set_u8("quorum.cancel_wait_for_all", 1).unwrap();
    assert_eq!(writer.get("quorum.cancel_wait_for_all").unwrap(), OwnedValue::UInt8(0));
}

/// [`Server::set_membership`] (what the simulated cluster calls): trackers get NODELIST and
/// QUORUM, the model and the runtime keys follow, before it returns.
#[test]
fn a_membership_change_reaches_trackers_and_the_runtime_keys() {
    let base = format!("corowire-test-{}-members", std::process::id());
    let shm_dir = std::path::PathBuf::from(format!("/dev/shm/{base}"));
    let _ = std::fs::remove_dir_all(&shm_dir);
    std::fs::create_dir(&shm_dir).unwrap();
    let mut cfg = ServerConfig {
        cmap_name: format!("{base}-cmap"),
        votequorum_name: Some(format!("{base}-votequorum")),
        quorum_name: None,
        cfg_name: None,
        shm_dir: shm_dir.clone(),
        ..ServerConfig::default()
    };
    for (i, id) in [1u32, 2, 3].into_iter().enumerate() {
        cfg.initial.push((format!("nodelist.node.{i}.nodeid"), OwnedValue::UInt32(id)));
    }
    let server = Arc::new(Mutex::new(Server::bind(cfg).unwrap()));
    let stop = Arc::new(AtomicBool::new(false));
    let (looping, flag) = (Arc::clone(&server), Arc::clone(&stop));
    let thread = std::thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            looping.lock().unwrap().step(Some(Duration::from_millis(5))).unwrap();
        }
    });
    let timeout = Some(Duration::from_secs(10));
    let mut vq = Votequorum::connect_with(votequorum::Options {
        service_name: Some(format!("{base}-votequorum")),
        timeout,
        ..votequorum::Options::default()
    })
    .unwrap();
    let mut cmap = Cmap::connect_with(cmap::Options {
        service_name: Some(format!("{base}-cmap")),
        timeout,
        ..cmap::Options::default()
    })
    .unwrap();
    assert!(vq.get_info(0).unwrap().is_quorate());
    assert_eq!(cmap.get("runtime.votequorum.highest_node_id").unwrap(), OwnedValue::UInt32(3));
    vq.track_start(7, TrackFlags::CHANGES_ONLY).unwrap();

    let ring = RingId { nodeid: 1, seq: 12 };
    server.lock().unwrap().set_membership(&[1], ring).unwrap();
    let mut events = Vec::new();
    while events.len() < 2 {
        match vq.next_event(Some(Duration::from_secs(5))).unwrap() {
            Some(OwnedNotification::NodeList { ring_id, nodes, .. }) => {
                events.push(format!("{ring_id} {nodes:?}"))
            }
            Some(OwnedNotification::Quorum { quorate, .. }) => events.push(format!("quorate {quorate}")),
            Some(other) => events.push(format!("{other:?}")),
            None => panic!("no notification: {events:?}"),
        }
    }
    assert_eq!(events, ["1.c [1]", "quorate false"]);
    let info = vq.get_info(0).unwrap();
    assert_eq!((info.total_votes, info.quorum, info.is_quorate()), (1, 2, false));
    // Quorate once with all three: the ids stay as corosync leaves them.
    assert_eq!(cmap.get("runtime.votequorum.lowest_node_id").unwrap(), OwnedValue::UInt32(1));
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
    drop(server);
    let _ = std::fs::remove_dir_all(&shm_dir);
}
