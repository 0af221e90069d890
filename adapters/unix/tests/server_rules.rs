//! The listener keeps CMAP and votequorum in step (`corowire_unix::server::sync`): a run-time
//! `quorum.*` change reaches the quorum model, and the `runtime.votequorum.*` keys follow with
//! their track events, as corosync's votequorum keeps them through icmap.

use core::time::Duration;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corowire::cmap::{TrackEvent as Ev, TrackType};
use corowire::dispatch::DispatchMode;
use corowire_unix::cmap::OwnedValue;
use corowire_unix::sys::sock::poll_readable;

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
