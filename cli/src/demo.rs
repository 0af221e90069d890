//! `corowire demo`: a guided tour of the cmap and votequorum clients against a running corosync.
//!
//! It sets keys of every type under `demo.`, reads them back, iterates the prefix, tracks it
//! while changing a key (printing the notifications as dispatch delivers them), deletes the
//! keys and reads the quorum state. Any failure ends it with exit status 1.

use std::ffi::OsString;
use std::sync::{Arc, Mutex};

use corowire::cmap::{TrackType, Value};
use corowire::dispatch::DispatchMode;
use corowire::votequorum::{Notification, TrackFlags};
use corowire_unix::cmap::Cmap;
use corowire_unix::votequorum::Votequorum;
use corowire_unix::{ConnectError, Error};

use crate::cmapctl::key_line;
use crate::json::Typed;
use crate::out;

const PREFIX: &str = "demo.";

/// Runs the demo; returns the exit status.
pub(crate) fn run(args: &[OsString]) -> u8 {
    if !args.is_empty() {
        out::eprint("usage: corowire demo\n");
        return 1;
    }
    match demo() {
        Ok(()) => {
            out::print("\nDemo finished: every step succeeded.\n");
            0
        }
        Err(msg) => {
            out::flush();
            out::eprint(&format!("corowire demo: {msg}\n"));
            1
        }
    }
}

/// The message for a failed step (with a clear one when no daemon runs).
fn failed(step: &str, e: &Error) -> String {
    match e {
        Error::Connect { service, reason: ConnectError::NoDaemon(_) } => format!(
            "{step}: no corosync daemon is running here (nothing listens on the `{service}` IPC \
             socket); start corosync, or run the demo via tests/harness/with-corosync"
        ),
        _ => format!("{step}: {e} ({})", crate::cformat::cs_strerror(e.cs_error())),
    }
}

fn line(key: &str, v: &Typed) -> String {
    String::from_utf8_lossy(&key_line(key.as_bytes(), v.ty, Some(v), false, true)).into_owned()
}

/// `VALUE (TYPE)`, the value printed as `corosync-cmapctl -q -b` does.
fn value_text(v: &Typed) -> String {
    let quiet = key_line(b"", v.ty, Some(v), true, true);
    let text = String::from_utf8_lossy(&quiet);
    let text = text.trim_end_matches('\n');
    let text = text.strip_prefix("bin) = ").unwrap_or(text);
    format!("{text} ({})", v.ty.cmapctl_name())
}

fn step(title: &str) {
    out::print(&format!("\n== {title}\n"));
}

fn demo() -> Result<(), String> {
    step("Connecting to corosync's cmap service");
    let mut cmap = Cmap::connect().map_err(|e| failed("connect to cmap", &e))?;
    let cluster = cmap.get_string("totem.cluster_name").map_err(|e| failed("get totem.cluster_name", &e))?;
    out::print(&format!("connected; cluster name is {cluster:?}\n"));

    // Leftovers from an interrupted run would confuse the tour.
    let stale: Vec<String> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .map_while(Result::ok)
        .map(|(k, ..)| k)
        .collect();
    for k in stale {
        cmap.delete(&k).map_err(|e| failed(&format!("delete stale {k}"), &e))?;
    }

    step("Setting one key of each type under demo.");
    let samples: Vec<(&str, Value<'_>)> = vec![
        ("demo.i8", Value::Int8(-8)),
        ("demo.u8", Value::UInt8(8)),
        ("demo.i16", Value::Int16(-1616)),
        ("demo.u16", Value::UInt16(1616)),
        ("demo.i32", Value::Int32(-323_232)),
        ("demo.u32", Value::UInt32(323_232)),
        ("demo.i64", Value::Int64(-6_464_646_464)),
        ("demo.u64", Value::UInt64(6_464_646_464)),
        ("demo.flt", Value::Float(1.5)),
        ("demo.dbl", Value::Double(-2.25)),
        ("demo.str", Value::String(b"hello from corowire")),
        ("demo.bin", Value::Binary(b"\x00\x01\x02bin\xff")),
    ];
    for (key, value) in &samples {
        cmap.set(key, *value).map_err(|e| failed(&format!("set {key}"), &e))?;
        out::print(&format!("set  {}", line(key, &Typed::from(*value))));
    }

    step("Reading them back");
    for (key, value) in &samples {
        let got = cmap.get(key).map_err(|e| failed(&format!("get {key}"), &e))?;
        let got = Typed::from(&got);
        if got != Typed::from(*value) {
            return Err(format!("get {key}: read back {got:?}, expected {value:?}"));
        }
        out::print(&format!("get  {}", line(key, &got)));
    }

    step("Iterating the prefix demo.");
    let listed: Vec<(String, corowire::cmap::ValueType, u64)> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .collect::<Result<_, _>>()
        .map_err(|e| failed("iterate demo.", &e))?;
    for (key, ty, len) in &listed {
        out::print(&format!("iter {key} ({}) {len} bytes\n", ty.cmapctl_name()));
    }
    if listed.len() != samples.len() {
        return Err(format!("iterate demo.: found {} keys, expected {}", listed.len(), samples.len()));
    }

    step("Tracking demo. while changing keys");
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&events);
    let track = cmap
        .track_add(Some(PREFIX), TrackType(TrackType::ALL.0), move |e| {
            let what = match e.event {
                corowire::cmap::TrackEvent::Add => "create",
                corowire::cmap::TrackEvent::Modify => "modify",
                corowire::cmap::TrackEvent::Delete => "delete",
            };
            let show = |v: Option<Value<'_>>| v.map_or("-".to_owned(), |v| value_text(&Typed::from(v)));
            let text = format!(
                "notification: {what} {} new: {} old: {}\n",
                e.key(),
                show(e.new_value),
                show(e.old_value)
            );
            if let Ok(mut q) = sink.lock() {
                q.push(text);
            }
        })
        .map_err(|e| failed("track demo.", &e))?;
    out::print(&format!("tracking demo. (track handle {:#x})\n", track.0));
    cmap.set_u32("demo.u32", 42).map_err(|e| failed("set demo.u32", &e))?;
    out::print("changed demo.u32 to 42\n");
    cmap.inc("demo.u32").map_err(|e| failed("inc demo.u32", &e))?;
    out::print("incremented demo.u32\n");
    cmap.set_str("demo.added", "new key").map_err(|e| failed("set demo.added", &e))?;
    out::print("added demo.added\n");
    let want = 3;
    let mut seen = 0;
    let deadline = std::time::Instant::now() + core::time::Duration::from_secs(5);
    while seen < want {
        match cmap.dispatch(DispatchMode::OneNonBlocking) {
            Ok(()) => {}
            Err(e) if e.cs_error() == corowire::CsError::TryAgain => {
                if std::time::Instant::now() > deadline {
                    return Err(format!("dispatch: only {seen} of {want} notifications arrived"));
                }
                std::thread::sleep(core::time::Duration::from_millis(10));
            }
            Err(e) => return Err(failed("dispatch", &e)),
        }
        let batch: Vec<String> = events.lock().map(|mut q| q.drain(..).collect()).unwrap_or_default();
        seen += batch.len();
        for text in batch {
            out::print(&text);
        }
    }
    let value = cmap.get_u32("demo.u32").map_err(|e| failed("get demo.u32", &e))?;
    if value != 43 {
        return Err(format!("demo.u32 is {value}, expected 43"));
    }
    cmap.track_delete(track).map_err(|e| failed("track delete", &e))?;
    out::print("stopped tracking\n");

    step("Deleting the demo. keys");
    let keys: Vec<String> = cmap
        .iter(Some(PREFIX))
        .map_err(|e| failed("iterate demo.", &e))?
        .map_while(Result::ok)
        .map(|(k, ..)| k)
        .collect();
    for key in &keys {
        cmap.delete(key).map_err(|e| failed(&format!("delete {key}"), &e))?;
        out::print(&format!("deleted {key}\n"));
    }
    if cmap.iter(Some(PREFIX)).map_err(|e| failed("iterate demo.", &e))?.next().is_some() {
        return Err("delete: keys are left under demo.".into());
    }

    step("Reading the quorum state from votequorum");
    let mut vq = Votequorum::connect().map_err(|e| failed("connect to votequorum", &e))?;
    let info = vq.getinfo(0).map_err(|e| failed("votequorum getinfo", &e))?;
    out::print(&format!(
        "node {}: votes {}, expected {}, total {}, quorum {}, quorate: {}\n",
        info.nodeid,
        info.votes,
        info.expected_votes,
        info.total_votes,
        info.quorum,
        if info.is_quorate() { "yes" } else { "no" }
    ));
    let notes: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = Arc::clone(&notes);
    vq.set_callback(move |n| {
        let text = match n {
            Notification::Quorum { quorate, nodes, .. } => {
                format!("quorum notification: quorate {quorate}, {} node(s)\n", nodes.len())
            }
            Notification::NodeList { ring_id, nodes, .. } => format!(
                "node list notification: ring {:x}.{:x}, members {:?}\n",
                ring_id.nodeid,
                ring_id.seq,
                nodes.iter().collect::<Vec<_>>()
            ),
            Notification::ExpectedVotes { expected_votes, .. } => {
                format!("expected votes notification: {expected_votes}\n")
            }
        };
        if let Ok(mut q) = sink.lock() {
            q.push(text);
        }
    });
    vq.trackstart(0, TrackFlags::CURRENT).map_err(|e| failed("votequorum trackstart", &e))?;
    while notes.lock().map_or(0, |q| q.len()) < 2 {
        vq.dispatch(DispatchMode::One).map_err(|e| failed("votequorum dispatch", &e))?;
    }
    for text in notes.lock().map(|mut q| q.drain(..).collect::<Vec<_>>()).unwrap_or_default() {
        out::print(&text);
    }
    Ok(())
}
