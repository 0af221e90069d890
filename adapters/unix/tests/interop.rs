//! Interoperability tests against a real corosync daemon.
//!
//! Run them next to a private daemon with
//! `tests/harness/with-corosync -- cargo test -p corowire-unix --test interop -- --ignored --test-threads=1`.
//! Every test first asserts that `COROWIRE_DAEMON` is set (the harness exports it), so that
//! running them elsewhere fails loudly instead of passing silently.

use core::time::Duration;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use corowire::cmap::{TrackEvent as Ev, TrackType, Value, ValueType};
use corowire::dispatch::DispatchMode;
use corowire::CsError;
use corowire_unix::cmap::{Cmap, OwnedValue};
use corowire_unix::Error;

mod common;
#[path = "common/world_exe.rs"]
mod world_exe;
use common::{
    cmapctl, dispatch_until, eventually, k, recorder, ring_dirs, run_child, run_child_with_own_daemon, Seen,
};

const IGNORE: &str = "needs a corosync daemon: run via tests/harness/with-corosync";

fn daemon() {
    assert!(
        std::env::var("COROWIRE_DAEMON").is_ok(),
        "COROWIRE_DAEMON is not set: run these tests via tests/harness/with-corosync ({IGNORE})"
    );
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn get_cluster_name() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire-test");
    assert_eq!(cmap.get("totem.cluster_name").unwrap(), OwnedValue::String("corowire-test".into()));
    assert_eq!(cmap.get_type("totem.cluster_name").unwrap(), (ValueType::String, 14));
    assert_eq!(cmap.get("corowire.no.such.key").unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(cmap.get_u32("totem.cluster_name").unwrap_err().cs_error(), CsError::InvalidParam);
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn set_get_every_type() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let big: Vec<u8> = (0..16384u32).map(|i| (i * 7 + 3) as u8).collect();
    let values = [
        Value::Int8(i8::MIN),
        Value::Int8(i8::MAX),
        Value::UInt8(u8::MAX),
        Value::Int16(i16::MIN),
        Value::UInt16(u16::MAX),
        Value::Int32(i32::MIN),
        Value::UInt32(u32::MAX),
        Value::Int64(i64::MIN),
        Value::Int64(i64::MAX),
        Value::UInt64(u64::MAX),
        Value::Float(-1.5e-7),
        Value::Float(f32::MAX),
        Value::Double(core::f64::consts::PI),
        Value::Double(f64::MIN_POSITIVE),
        Value::String("héllo wörld ✓ 日本".as_bytes()),
        Value::String(b""),
        Value::Binary(&big),
        Value::Binary(b""),
        Value::Binary(b"\0\x01\xff\0"),
    ];
    for (i, v) in values.iter().enumerate() {
        let key = k(&format!("type{i}"));
        cmap.set(&key, *v).unwrap_or_else(|e| panic!("set {v:?}: {e}"));
        let got = cmap.get(&key).unwrap();
        assert_eq!(got.as_value(), *v, "round trip of {v:?}");
        assert_eq!(got.value_type(), v.value_type());
        cmap.delete(&key).unwrap();
    }
    // Typed accessors.
    let key = k("typed");
    cmap.set_u64(&key, u64::MAX - 1).unwrap();
    assert_eq!(cmap.get_u64(&key).unwrap(), u64::MAX - 1);
    assert_eq!(cmap.get_i64(&key).unwrap_err().cs_error(), CsError::InvalidParam);
    cmap.set_string(&key, "now a string").unwrap();
    assert_eq!(cmap.get_string(&key).unwrap(), "now a string");
    assert_eq!(cmap.get_type(&key).unwrap(), (ValueType::String, 13));
    cmap.set_f64(&key, -0.25).unwrap();
    assert_eq!(cmap.get_f64(&key).unwrap(), -0.25);
    cmap.delete(&key).unwrap();
    // Server-side checks.
    let too_big = vec![0u8; 16385];
    assert_eq!(cmap.set_binary(&k("big"), &too_big).unwrap_err().cs_error(), CsError::InvalidParam);
    assert_eq!(cmap.set_u8("x!", 1).unwrap_err().cs_error(), CsError::NameTooLong);
    assert_eq!(cmap.set_u32("runtime.config.totem.token", 1).unwrap_err().cs_error(), CsError::Access);
    assert_eq!(cmap.get(&"k".repeat(256)).unwrap_err().cs_error(), CsError::NameTooLong);
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn corowire_writes_cmapctl_reads() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let (a, b, c) = (k("ctl.u32"), k("ctl.str"), k("ctl.i16"));
    cmap.set_u32(&a, 4_000_000_000).unwrap();
    cmap.set_string(&b, "written by corowire").unwrap();
    cmap.set_i16(&c, -12345).unwrap();
    assert_eq!(cmapctl(&["-g", &a]).trim(), format!("{a} (u32) = 4000000000"));
    assert_eq!(cmapctl(&["-g", &b]).trim(), format!("{b} (str) = written by corowire"));
    assert_eq!(cmapctl(&["-g", &c]).trim(), format!("{c} (i16) = -12345"));
    for key in [&a, &b, &c] {
        cmap.delete(key).unwrap();
    }
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn cmapctl_writes_corowire_reads() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let (a, b, c) = (k("ctl2.u64"), k("ctl2.str"), k("ctl2.i8"));
    cmapctl(&["-s", &a, "u64", "18446744073709551615"]);
    cmapctl(&["-s", &b, "str", "from cmapctl"]);
    cmapctl(&["-s", &c, "i8", "127"]);
    assert_eq!(cmap.get_u64(&a).unwrap(), u64::MAX);
    assert_eq!(cmap.get_string(&b).unwrap(), "from cmapctl");
    assert_eq!(cmap.get_i8(&c).unwrap(), i8::MAX);
    cmapctl(&["-d", &a]);
    assert_eq!(cmap.get(&a).unwrap_err().cs_error(), CsError::NotExist);
    cmap.delete(&b).unwrap();
    cmap.delete(&c).unwrap();
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn longest_string_both_ways() {
    // 16384 characters, the most corosync accepts: stored as 16385 bytes with the NUL.
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let long = "s".repeat(corowire::cmap::VALUE_MAX_LEN);
    let (ours, theirs) = (k("long.ours"), k("long.theirs"));
    cmap.set_string(&ours, &long).unwrap();
    assert_eq!(cmapctl(&["-g", &ours]).trim(), format!("{ours} (str) = {long}"));
    cmapctl(&["-s", &theirs, "str", &long]);
    assert_eq!(cmap.get_type(&theirs).unwrap(), (ValueType::String, 16385));
    assert_eq!(cmap.get_string(&theirs).unwrap(), long);
    let prefix = k("long.");
    let dumped: Vec<_> =
        cmap.dump(Some(&prefix)).unwrap().into_iter().map(|(key, value)| (key, value.unwrap())).collect();
    let want = OwnedValue::String(long.clone().into_bytes());
    assert_eq!(dumped, [(ours.clone(), want.clone()), (theirs.clone(), want)]);
    // One more character is refused, as libcmap's cmap_set_string is.
    let err = cmap.set_string(&ours, &format!("{long}s")).unwrap_err();
    assert_eq!(err.cs_error(), CsError::InvalidParam);
    cmap.delete(&ours).unwrap();
    cmap.delete(&theirs).unwrap();
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn delete_inc_dec() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let key = k("counter");
    cmap.set_u8(&key, 254).unwrap();
    cmap.inc(&key).unwrap();
    assert_eq!(cmap.get_u8(&key).unwrap(), 255);
    cmap.inc(&key).unwrap();
    assert_eq!(cmap.get_u8(&key).unwrap(), 0, "ADJUST_INT wraps");
    cmap.dec(&key).unwrap();
    assert_eq!(cmap.get_u8(&key).unwrap(), 255);
    cmap.set_i64(&key, i64::MIN).unwrap();
    cmap.dec(&key).unwrap();
    assert_eq!(cmap.get_i64(&key).unwrap(), i64::MAX);
    cmap.set_string(&key, "text").unwrap();
    assert_eq!(cmap.inc(&key).unwrap_err().cs_error(), CsError::InvalidParam);
    cmap.delete(&key).unwrap();
    assert_eq!(cmap.get(&key).unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(cmap.delete(&key).unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(cmap.inc(&key).unwrap_err().cs_error(), CsError::NotExist);
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn iterate_with_prefix() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let prefix = k("iter.");
    cmap.set_u32(&format!("{prefix}b"), 2).unwrap();
    cmap.set_string(&format!("{prefix}a"), "xyz").unwrap();
    cmap.set_binary(&format!("{prefix}c"), &[1, 2, 3, 4, 5]).unwrap();
    let all: Vec<_> = cmap.iter(Some(&prefix)).unwrap().map(Result::unwrap).collect();
    assert_eq!(
        all,
        vec![
            (format!("{prefix}a"), ValueType::String, 4),
            (format!("{prefix}b"), ValueType::UInt32, 4),
            (format!("{prefix}c"), ValueType::Binary, 5),
        ]
    );
    // Iterating everything reaches well-known keys.
    let keys: Vec<String> = cmap.iter(None).unwrap().map(|r| r.unwrap().0).collect();
    assert!(keys.iter().any(|k| k == "totem.cluster_name"));
    assert!(keys.len() > 20);
    // An abandoned iterator is finalized on drop: otherwise SET_CURRENT_MAP says BUSY.
    {
        let mut it = cmap.iter(Some(&prefix)).unwrap();
        assert!(it.next().is_some());
    }
    cmap.set_current_map(corowire::cmap::Map::Default).unwrap();
    for name in ["a", "b", "c"] {
        cmap.delete(&format!("{prefix}{name}")).unwrap();
    }
    // The stats map.
    cmap.set_current_map(corowire::cmap::Map::Stats).unwrap();
    let stats: Vec<String> = cmap.iter(Some("stats.")).unwrap().map(|r| r.unwrap().0).collect();
    assert!(stats.iter().any(|k| k.starts_with("stats.ipcs.")), "{stats:?}");
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn track_changes_made_by_cmapctl() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let key = k("tracked");
    let seen: Seen = Arc::default();
    let track = cmap
        .track_add(Some(&key), TrackType::ADD | TrackType::MODIFY | TrackType::DELETE, recorder(&seen))
        .unwrap();
    cmapctl(&["-s", &key, "u32", "1"]);
    cmapctl(&["-s", &key, "u32", "2"]);
    cmapctl(&["-d", &key]);
    dispatch_until(&mut cmap, &seen, 3);
    assert_eq!(
        *seen.lock().unwrap(),
        vec![
            (Ev::Add, key.clone(), Some(OwnedValue::UInt32(1)), None),
            (Ev::Modify, key.clone(), Some(OwnedValue::UInt32(2)), Some(OwnedValue::UInt32(1))),
            (Ev::Delete, key.clone(), None, Some(OwnedValue::UInt32(2))),
        ]
    );
    cmap.track_delete(track).unwrap();
    assert_eq!(cmap.track_delete(track).unwrap_err().cs_error(), CsError::BadHandle);
    cmapctl(&["-s", &key, "u32", "3"]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(cmap.dispatch(DispatchMode::All), Ok(()));
    assert_eq!(seen.lock().unwrap().len(), 3, "no events after track_delete");
    cmap.delete(&key).unwrap();
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn dispatch_modes() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));
    assert_eq!(cmap.dispatch(DispatchMode::All), Ok(()));
    let prefix = k("modes.");
    let seen: Seen = Arc::default();
    cmap.track_add(Some(&prefix), TrackType::ALL, recorder(&seen)).unwrap();
    for i in 0..4u32 {
        cmap.set_u32(&format!("{prefix}{i}"), i).unwrap();
    }
    // Events are written before the replies, so all four are pending now.
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking), Ok(()));
    assert_eq!(seen.lock().unwrap().len(), 1);
    assert_eq!(cmap.dispatch(DispatchMode::One), Ok(()));
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(cmap.dispatch(DispatchMode::All), Ok(()));
    assert_eq!(seen.lock().unwrap().len(), 4);
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));
    let keys: Vec<String> = seen.lock().unwrap().iter().map(|e| e.1.clone()).collect();
    assert_eq!(keys, (0..4).map(|i| format!("{prefix}{i}")).collect::<Vec<_>>());
    // Changes by the same connection and by another one are both reported, in order.
    let mut other = Cmap::connect().unwrap();
    other.inc(&format!("{prefix}0")).unwrap();
    dispatch_until(&mut cmap, &seen, 5);
    assert_eq!(seen.lock().unwrap()[4].2, Some(OwnedValue::UInt32(1)));
    // Setting the value a key already has is CS_OK and reports nothing (docs/protocol.md §5.5).
    cmap.set_u32(&format!("{prefix}0"), 1).unwrap();
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));
    for i in 0..4u32 {
        cmap.delete(&format!("{prefix}{i}")).unwrap();
    }
    dispatch_until(&mut cmap, &seen, 9);
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn get_many_pipelined() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    let keys: Vec<String> = (0..200).map(|i| k(&format!("many.{i}"))).collect();
    for (i, key) in keys.iter().enumerate() {
        cmap.set_u32(key, i as u32).unwrap();
    }
    let mut names: Vec<&str> = keys.iter().map(String::as_str).collect();
    names.insert(57, "corowire.no.such.key");
    names.push("totem.cluster_name");
    let big_key = k("many.big");
    let big = vec![0xabu8; 16384];
    cmap.set_binary(&big_key, &big).unwrap();
    names.push(&big_key);
    let start = Instant::now();
    let got = cmap.get_many(&names).unwrap();
    let pipelined = start.elapsed();
    assert_eq!(got.len(), 203);
    for (i, r) in got.iter().enumerate() {
        match i {
            57 => assert_eq!(r.as_ref().map_err(Error::cs_error), Err(CsError::NotExist)),
            201 => assert_eq!(r, &Ok(OwnedValue::String("corowire-test".into()))),
            202 => assert_eq!(r, &Ok(OwnedValue::Binary(big.clone()))),
            _ => assert_eq!(r, &Ok(OwnedValue::UInt32((i - usize::from(i > 57)) as u32))),
        }
    }
    let start = Instant::now();
    for key in &keys {
        cmap.get(key).unwrap();
    }
    eprintln!("200 GETs: pipelined {pipelined:?}, sequential {:?}", start.elapsed());
    for key in &keys {
        cmap.delete(key).unwrap();
    }
    cmap.delete(&big_key).unwrap();
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn votequorum_getinfo_and_tracking() {
    use corowire::votequorum::{Notification, TrackFlags};
    use corowire_unix::votequorum::Votequorum;
    daemon();
    let mut vq = Votequorum::connect().unwrap();
    let info = vq.get_info(0).unwrap();
    assert_eq!(info.nodeid, 1);
    assert!(info.is_quorate(), "{info:?}");
    assert_eq!((info.votes, info.expected_votes, info.total_votes, info.quorum), (1, 1, 1, 1));
    assert_eq!(vq.get_info(1).unwrap(), info);
    assert_eq!(vq.get_info(999).unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(vq.track_stop().unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(vq.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));

    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&seen);
    vq.set_callback(move |n| {
        log.lock().unwrap().push(match n {
            Notification::Quorum { quorate, context, nodes } => {
                format!(
                    "quorum {quorate} {context:#x} {:?}",
                    nodes.iter().map(|e| (e.nodeid, e.state.0)).collect::<Vec<_>>()
                )
            }
            Notification::NodeList { context, nodes, .. } => {
                format!("nodelist {context:#x} {:?}", nodes.iter().collect::<Vec<_>>())
            }
            Notification::ExpectedVotes { context, expected_votes } => {
                format!("expected {context:#x} {expected_votes}")
            }
        })
    });
    vq.track_start(0xC0FFEE, TrackFlags::CURRENT | TrackFlags::CHANGES).unwrap();
    assert_eq!(vq.dispatch(DispatchMode::All), Ok(()));
    assert_eq!(
        *seen.lock().unwrap(),
        vec!["nodelist 0xc0ffee [1]".to_string(), "quorum true 0xc0ffee [(1, 1)]".to_string()]
    );
    assert_eq!(vq.track_start(1, TrackFlags::CHANGES).unwrap_err().cs_error(), CsError::Exist);
    vq.track_stop().unwrap();
    assert_eq!(vq.set_expected(0).unwrap_err().cs_error(), CsError::InvalidParam);
    assert_eq!(vq.set_votes(999, 1).unwrap_err().cs_error(), CsError::NameNotFound);
    assert_eq!(vq.qdevice_unregister("dev").unwrap_err().cs_error(), CsError::NotExist);
    assert_eq!(vq.qdevice_register("").unwrap_err().cs_error(), CsError::InvalidParam);
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn several_connections_and_clean_shm() {
    use corowire_unix::votequorum::Votequorum;
    daemon();
    eventually("no ring directories before the test", || ring_dirs().is_empty());
    let mut cmaps: Vec<Cmap> = (0..8).map(|_| Cmap::connect().unwrap()).collect();
    let mut vqs: Vec<Votequorum> = (0..2).map(|_| Votequorum::connect().unwrap()).collect();
    let dirs = ring_dirs();
    assert_eq!(dirs.len(), 10, "{dirs:?}");
    let pid = std::process::id();
    let corosync_pid: u32 = std::env::var("COROWIRE_COROSYNC_PID").unwrap().parse().unwrap();
    for dir in &dirs {
        assert!(dir.starts_with(&format!("qb-{corosync_pid}-{pid}-")), "{dir}");
        let mut files: Vec<String> = std::fs::read_dir(format!("/dev/shm/{dir}"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(files.len(), 6, "{files:?}");
        assert!(files[0].starts_with("qb-event-") && files[0].ends_with("-data"), "{files:?}");
        // docs/protocol.md §2.1/§2.3: 8252-byte headers; data = round_up(65536 + 13, page) bytes.
        for file in &files {
            let meta = std::fs::metadata(format!("/dev/shm/{dir}/{file}")).unwrap();
            let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).unwrap().unwrap() as usize;
            let data = corowire::ring::data_bytes(65536, page) as u64;
            let expected = if file.ends_with("-header") { 8252 } else { data };
            assert_eq!(meta.len(), expected, "{dir}/{file}");
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777, 0o600, "{file}");
        }
    }
    for round in 0..3u32 {
        for (i, c) in cmaps.iter_mut().enumerate() {
            let key = k(&format!("multi.{i}"));
            c.set_u32(&key, round).unwrap();
        }
        for (i, c) in cmaps.iter_mut().rev().enumerate() {
            let key = k(&format!("multi.{}", 7 - i));
            assert_eq!(c.get_u32(&key).unwrap(), round);
        }
        for v in &mut vqs {
            assert_eq!(v.get_info(0).unwrap().nodeid, 1);
        }
    }
    for i in 0..8 {
        cmaps[0].delete(&k(&format!("multi.{i}"))).unwrap();
    }
    drop(cmaps);
    drop(vqs);
    eventually("ring directories removed after the clients dropped", || ring_dirs().is_empty());
}

/// Not a test on its own: the child process of `sigkilled_client_is_cleaned_up`.
#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn child_connects_and_waits() {
    daemon();
    if std::env::var("COROWIRE_INTEROP_CHILD").is_err() {
        return;
    }
    let mut cmap = Cmap::connect().unwrap();
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire-test");
    println!("CHILD-READY");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn sigkilled_client_is_cleaned_up() {
    use std::io::{BufRead, BufReader};
    daemon();
    eventually("no ring directories before the test", || ring_dirs().is_empty());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "child_connects_and_waits", "--nocapture", "--test-threads=1"])
        .env("COROWIRE_INTEROP_CHILD", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert!(lines.any(|l| l.unwrap().contains("CHILD-READY")), "the child never connected");
    let dirs = ring_dirs();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    assert!(dirs[0].contains(&format!("-{}-", child.id())), "{dirs:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    eventually("ring directory removed after SIGKILL", || ring_dirs().is_empty());
    // The daemon is unharmed.
    assert_eq!(Cmap::connect().unwrap().get_string("totem.cluster_name").unwrap(), "corowire-test");
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn timeout_then_late_reply_is_discarded() {
    use corowire_unix::cmap::Options;
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    daemon();
    let corosync = Pid::from_raw(std::env::var("COROWIRE_COROSYNC_PID").unwrap().parse().unwrap());
    let options = Options { timeout: Some(Duration::from_millis(300)), ..Options::default() };
    let mut cmap = Cmap::connect_with(options).unwrap();
    let (a, b) = (k("late.a"), k("late.b"));
    cmap.set_u32(&a, 1).unwrap();
    cmap.set_u32(&b, 2).unwrap();
    kill(corosync, Signal::SIGSTOP).unwrap();
    let start = Instant::now();
    let outcome = cmap.get_u32(&a);
    kill(corosync, Signal::SIGCONT).unwrap();
    assert_eq!(outcome, Err(Error::Timeout));
    assert_eq!(Error::Timeout.cs_error(), CsError::TryAgain);
    assert!(start.elapsed() >= Duration::from_millis(300), "{:?}", start.elapsed());
    // The reply to the timed-out GET comes now and must not be taken for this one.
    assert_eq!(cmap.get_u32(&b).unwrap(), 2);
    assert_eq!(cmap.get_u32(&a).unwrap(), 1);
    cmap.delete(&a).unwrap();
    cmap.delete(&b).unwrap();
}

/// Not a test on its own: runs next to its own daemon (a nested harness) for
/// `daemon_death_is_reported`, and kills that daemon.
#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn child_daemon_dies() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    daemon();
    if std::env::var("COROWIRE_INTEROP_CHILD").is_err() {
        return;
    }
    let corosync = Pid::from_raw(std::env::var("COROWIRE_COROSYNC_PID").unwrap().parse().unwrap());
    let mut cmap = Cmap::connect().unwrap();
    let mut idle = Cmap::connect().unwrap();
    cmap.track_add(None, TrackType::ALL | TrackType::PREFIX, |_| {}).unwrap();
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire-test");
    kill(corosync, Signal::SIGKILL).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    assert_eq!(cmap.get_string("totem.cluster_name"), Err(Error::Disconnected));
    assert_eq!(cmap.dispatch(DispatchMode::Blocking), Err(Error::Disconnected));
    assert_eq!(idle.dispatch(DispatchMode::One), Err(Error::Disconnected));
    assert_eq!(idle.get("totem.cluster_name").unwrap_err().cs_error(), CsError::Library);
    assert!(start.elapsed() < Duration::from_secs(5), "{:?}", start.elapsed());
    match Cmap::connect().unwrap_err() {
        Error::Connect { service, reason: corowire_unix::ConnectError::NoDaemon(_) } if service == "cmap" => {
        }
        e => panic!("connect after the daemon died: {e:?}"),
    }
    println!("CHILD-DONE");
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn daemon_death_is_reported() {
    daemon();
    run_child_with_own_daemon(&[], "child_daemon_dies");
}

/// Not a test on its own: runs as uid/gid 65534 for `unprivileged_client_is_refused`.
#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn child_unprivileged() {
    daemon();
    if std::env::var("COROWIRE_INTEROP_CHILD").is_err() {
        return;
    }
    assert_eq!(nix::unistd::geteuid().as_raw(), 65534);
    let e = Cmap::connect().unwrap_err();
    match &e {
        Error::Connect { service, reason: corowire_unix::ConnectError::Refused(s) } if service == "cmap" => {
            assert_eq!(s.errno, 13)
        }
        e => panic!("unexpected {e:?}"),
    }
    assert_eq!(e.cs_error(), CsError::Access);
    println!("CHILD-DONE: {e}");
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn unprivileged_client_is_refused() {
    use std::os::unix::process::CommandExt;
    daemon();
    // The checkout may sit where uid 65534 cannot enter: run a copy it can reach.
    let exe = world_exe::WorldExe::new();
    let mut runner = Command::new(exe.path());
    runner.uid(65534).gid(65534);
    run_child(runner, "child_unprivileged");
    eventually("no ring directories left by the refused client", || ring_dirs().is_empty());
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn small_rings() {
    use corowire_unix::cmap::Options;
    daemon();
    let mut small = Cmap::connect_with(Options { max_msg_size: 8192, ..Options::default() }).unwrap();
    assert_eq!(small.max_msg_size(), 12328, "libqb raises the size to the setup response's");
    let mut big = Cmap::connect().unwrap();
    let key = k("small.big");
    let value = vec![1u8; 16384];
    // Checked by the client (nothing is sent), with libcmap's code.
    assert_eq!(small.set_binary(&key, &value).unwrap_err().cs_error(), CsError::TooBig);
    big.set_binary(&key, &value).unwrap();
    assert_eq!(small.get(&key).unwrap_err().cs_error(), CsError::TooBig);
    assert_eq!(small.get_type(&key).unwrap(), (ValueType::Binary, 16384));
    big.set_binary(&key, &value[..12000]).unwrap();
    assert_eq!(small.get_binary(&key).unwrap(), &value[..12000]);
    let got = small.get_many(&[&key, "totem.cluster_name"]).unwrap();
    assert_eq!(got[0], Ok(OwnedValue::Binary(value[..12000].to_vec())));
    big.delete(&key).unwrap();
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn dump_pipelined_matches_iteration() {
    daemon();
    let mut cmap = Cmap::connect().unwrap();
    // Prefixes with no key, fewer keys than the ITER_NEXT window, and more: every request
    // sent past the end must answer CS_ERR_NO_SECTIONS (27), or dump() fails.
    for n in [0usize, 1, 7, 15, 16, 17, 40] {
        let prefix = k(&format!("dump{n}."));
        for i in 0..n {
            cmap.set_u32(&format!("{prefix}{i:03}"), i as u32).unwrap();
        }
        let dumped = cmap.dump(Some(&prefix)).unwrap();
        assert_eq!(dumped.len(), n);
        for (i, (key, value)) in dumped.iter().enumerate() {
            assert_eq!(key, &format!("{prefix}{i:03}"));
            assert_eq!(value, &Ok(OwnedValue::UInt32(i as u32)));
        }
        // The iterator was finalized: SET_CURRENT_MAP would say BUSY otherwise.
        cmap.set_current_map(corowire::cmap::Map::Default).unwrap();
        for i in 0..n {
            cmap.delete(&format!("{prefix}{i:03}")).unwrap();
        }
    }
    // The whole map: the same keys as the one-by-one iteration, with the same values as GET.
    let big_key = k("dump.big");
    let big = vec![0x5au8; 16384];
    cmap.set_binary(&big_key, &big).unwrap();
    let raw_key = k("dump.raw");
    cmap.set(&raw_key, Value::String(&b"caf\xe9"[..])).unwrap();
    let all = cmap.dump(None).unwrap();
    let keys: Vec<String> = cmap.iter(None).unwrap().map(|r| r.unwrap().0).collect();
    assert_eq!(all.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>(), keys);
    for (key, value) in &all {
        if !key.starts_with("runtime.") && !key.starts_with("stats.") {
            assert_eq!(&cmap.get(key), value, "{key}");
        }
    }
    let find = |name: &str| all.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone().unwrap());
    assert_eq!(find(&big_key), Some(OwnedValue::Binary(big)));
    // String values are bytes; get_string is lossy.
    assert_eq!(find(&raw_key), Some(OwnedValue::String(b"caf\xe9".to_vec())));
    assert_eq!(find("totem.cluster_name").unwrap().as_str(), Some("corowire-test"));
    assert_eq!(cmap.get_string(&raw_key).unwrap(), "caf\u{fffd}");
    // A large string is fetched with its exact size after the first small buffer.
    let long = "x".repeat(5000);
    cmap.set_string(&big_key, &long).unwrap();
    assert_eq!(cmap.get_string(&big_key).unwrap(), long);
    // Typed getters ask for exactly the type's size; another type is INVALID_PARAM.
    assert_eq!(cmap.get_u64(&big_key).map_err(|e| e.cs_error()), Err(CsError::InvalidParam));
    cmap.delete(&big_key).unwrap();
    cmap.delete(&raw_key).unwrap();
    // The connection still works.
    assert_eq!(cmap.get_string("totem.cluster_name").unwrap(), "corowire-test");
}

#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn event_backlog_drains_without_peeking() {
    daemon();
    let mut setter = Cmap::connect().unwrap();
    let mut cmap = Cmap::connect_with(corowire_unix::cmap::Options::for_tracking()).unwrap();
    let prefix = k("backlog.");
    let seen: Seen = Arc::default();
    cmap.track_add(Some(&prefix), TrackType::ADD | TrackType::MODIFY | TrackType::PREFIX, recorder(&seen))
        .unwrap();
    let key = format!("{prefix}n");
    for i in 0..1000u32 {
        setter.set_u32(&key, i).unwrap();
    }
    dispatch_until(&mut cmap, &seen, 1000);
    // Nothing is left: no event, and no stray doorbell byte keeping the fd readable.
    assert_eq!(cmap.dispatch(DispatchMode::OneNonBlocking).map_err(|e| e.cs_error()), Err(CsError::TryAgain));
    let mut fds = [nix::poll::PollFd::new(std::os::fd::AsFd::as_fd(&cmap), nix::poll::PollFlags::POLLIN)];
    assert_eq!(nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u8)).unwrap(), 0);
    let last = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(last.2, Some(OwnedValue::UInt32(999)));
    setter.delete(&key).unwrap();
}

/// corosync computes `stats.ipcs.*.procname` when asked: ITER_NEXT reports its length as 0,
/// and a GET with a shorter buffer answers CS_OK with the full length but only the buffer's
/// bytes (docs/protocol.md §5.3). `dump` asks for 8 bytes first, so a process name longer
/// than that (this test binary's, `interop-<hash>`, 15 bytes in `comm`) comes back short and
/// must be fetched again, not fail the dump.
#[test]
#[ignore = "needs a corosync daemon: run via tests/harness/with-corosync"]
fn dump_of_the_stats_map_fetches_short_procnames_again() {
    use corowire_unix::cmap::{Map, Options};
    daemon();
    // A connection of this process, whose procname is long, besides the dumping one.
    let _other = Cmap::connect().unwrap();
    let mut stats = Cmap::connect_with(Options { map: Map::Stats, ..Options::default() }).unwrap();
    let dumped = stats.dump(Some("stats.ipcs.")).unwrap();
    let procnames: Vec<(&str, &Vec<u8>)> = dumped
        .iter()
        .filter(|(key, _)| key.ends_with(".procname"))
        .map(|(key, value)| match value {
            Ok(OwnedValue::String(name)) => (key.as_str(), name),
            other => panic!("{key}: {other:?}"),
        })
        .collect();
    for (key, value) in &dumped {
        assert!(value.is_ok(), "{key}: {value:?}");
    }
    // This process's connections (other processes' may come and go).
    let pid = std::process::id().to_string();
    let ours: Vec<(&str, &Vec<u8>)> =
        procnames.into_iter().filter(|(key, _)| key.split('.').nth(3) == Some(pid.as_str())).collect();
    assert!(ours.len() >= 2, "both connections of this process: {ours:?}");
    assert!(ours.iter().all(|(_, name)| name.len() > 8), "longer than the first buffer: {ours:?}");
    // get and get_many read the same values.
    let keys: Vec<&str> = ours.iter().map(|(key, _)| *key).collect();
    for ((key, name), got) in ours.iter().zip(stats.get_many(&keys).unwrap()) {
        assert_eq!(got.as_ref(), Ok(&OwnedValue::String(name.to_vec())), "{key}");
        assert_eq!(stats.get(key), Ok(OwnedValue::String(name.to_vec())), "{key}");
    }
}
